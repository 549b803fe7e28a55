// Fixtures take lists of usable ranges; a list of one range is intended.
#![allow(clippy::single_range_in_vec_init)]

extern crate std;

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::vec;
use std::vec::Vec;

/// An allocator over `span` with `free` ranges added, storage on the heap.
struct Fixture {
    storage: Vec<u64>,
    span: Range<Pfn>,
    free: Vec<Range<Pfn>>,
}

impl Fixture {
    fn new(span: Range<u64>, free: &[Range<u64>]) -> Self {
        let span = Pfn::new(span.start)..Pfn::new(span.end);
        let storage = vec![0xdead_beef; FrameAllocator::metadata_words(span.clone())];
        Fixture { storage, span, free: free.iter().map(|r| Pfn::new(r.start)..Pfn::new(r.end)).collect() }
    }

    fn allocator(&mut self) -> FrameAllocator<'_> {
        let mut a = FrameAllocator::new(self.span.clone(), &mut self.storage).expect("new");
        for r in &self.free {
            a.add_free(r.clone()).expect("add_free");
        }
        a.verify().expect("fresh allocator is consistent");
        a
    }
}

fn raw(start: u64, order: u8, owner: Owner) -> FrameBlock {
    FrameBlock::from_raw(Pfn::new(start), order, owner)
}

#[test]
fn carves_ranges_into_maximal_aligned_blocks() {
    let blocks: Vec<_> = aligned_blocks(3..17).collect();
    assert_eq!(blocks, vec![(3, 0), (4, 2), (8, 3), (16, 0)]);
    let huge: Vec<_> = aligned_blocks(0..(3 << MAX_ORDER)).collect();
    assert_eq!(huge.len(), 3);
    assert!(huge.iter().all(|&(_, o)| o == MAX_ORDER));
}

#[test]
fn fresh_allocator_counts_every_usable_frame() {
    let mut f = Fixture::new(0x100..0x1000, &[0x100..0x180, 0x200..0x1000]);
    let a = f.allocator();
    assert_eq!(a.stats().total, 0x80 + 0xe00);
    assert_eq!(a.stats().free, a.stats().total);
    assert_eq!(a.stats().used(), 0);
}

#[test]
fn allocates_lowest_address_of_smallest_order_first() {
    let mut f = Fixture::new(0..64, &[0..64]);
    let mut a = f.allocator();
    let b0 = a.allocate(0, Owner::Kernel).unwrap();
    assert_eq!(b0.start(), Pfn::new(0));
    let b1 = a.allocate(0, Owner::Kernel).unwrap();
    assert_eq!(b1.start(), Pfn::new(1));
    let b2 = a.allocate(2, Owner::Kernel).unwrap();
    assert_eq!(b2.start(), Pfn::new(4));
    a.verify().unwrap();
    for b in [b0, b1, b2] {
        a.free(b).unwrap();
    }
    a.verify().unwrap();
    assert_eq!(a.stats().free_blocks[6], 1, "everything merged back into one block");
}

#[test]
fn runs_are_naturally_aligned() {
    let mut f = Fixture::new(5..3000, &[5..3000]);
    let mut a = f.allocator();
    for order in [9u8, 3, 0, 7, 1] {
        let b = a.allocate(order, Owner::Process).unwrap();
        assert!(b.start().is_aligned(order), "{b:?}");
        assert!(b.start().number() >= 5 && b.start().number() + b.frames() <= 3000);
        let _ = b.into_raw(); // deliberately leaked
    }
    a.verify().unwrap();
}

#[test]
fn exhaustion_returns_out_of_frames_and_frees_restore_everything() {
    let mut f = Fixture::new(0..100, &[0..37, 40..100]);
    let mut a = f.allocator();
    let initial = a.stats().clone();
    let mut held = Vec::new();
    while let Ok(b) = a.allocate(0, Owner::Kernel) {
        held.push(b);
    }
    assert_eq!(held.len() as u64, initial.total);
    assert_eq!(a.allocate(0, Owner::Kernel), Err(AllocError::OutOfFrames { order: 0 }));
    assert_eq!(a.stats().used_by(Owner::Kernel), initial.total);
    for b in held {
        a.free(b).unwrap();
    }
    assert_eq!(a.stats(), &initial);
    a.verify().unwrap();
}

#[test]
fn large_order_fails_when_memory_is_fragmented() {
    let mut f = Fixture::new(0..8, &[0..8]);
    let mut a = f.allocator();
    let blocks: Vec<_> = (0..8).map(|_| a.allocate(0, Owner::Kernel).unwrap()).collect();
    let mut it = blocks.into_iter();
    // Free every other frame: 4 frames free, but no two contiguous.
    let mut kept = Vec::new();
    while let (Some(free), Some(keep)) = (it.next(), it.next()) {
        a.free(free).unwrap();
        kept.push(keep);
    }
    assert_eq!(a.stats().free, 4);
    assert_eq!(a.allocate(1, Owner::Kernel), Err(AllocError::OutOfFrames { order: 1 }));
    assert_eq!(
        a.allocate(MAX_ORDER + 1, Owner::Kernel),
        Err(AllocError::OrderTooLarge { order: MAX_ORDER + 1 })
    );
    for b in kept {
        let _ = b.into_raw(); // deliberately leaked
    }
}

#[test]
fn bad_frees_are_refused_and_change_nothing() {
    let mut f = Fixture::new(0..64, &[0..32, 40..64]);
    let mut a = f.allocator();
    let pair = a.allocate(1, Owner::Process).unwrap();
    let start = pair.start().number();
    let single = a.allocate(0, Owner::Kernel).unwrap();
    let single_pfn = single.start().number();
    a.free(single).unwrap();
    let before = a.stats().clone();

    let cases = [
        (raw(64, 0, Owner::Kernel), FreeError::NotManaged(Pfn::new(64))),
        (raw(35, 0, Owner::Kernel), FreeError::Reserved(Pfn::new(35))),
        (raw(single_pfn, 0, Owner::Kernel), FreeError::DoubleFree(Pfn::new(single_pfn))),
        (raw(50, 0, Owner::Kernel), FreeError::NeverAllocated(Pfn::new(50))),
        (
            raw(start + 1, 0, Owner::Process),
            FreeError::InsideAllocation { pfn: Pfn::new(start + 1), head: Pfn::new(start), order: 1 },
        ),
        (
            raw(start, 0, Owner::Process),
            FreeError::WrongOrder { pfn: Pfn::new(start), allocated: 1, given: 0 },
        ),
        (
            raw(start, 1, Owner::KernelHeap),
            FreeError::WrongOwner {
                pfn: Pfn::new(start),
                owner: Some(Owner::Process),
                given: Owner::KernelHeap,
            },
        ),
    ];
    for (block, expected) in cases {
        let echo = FrameBlock::from_raw(block.start, block.order, block.owner);
        let failure = a.free(block).expect_err("must be refused");
        assert_eq!(failure.error, expected);
        assert_eq!(failure.block, echo, "the block is handed back");
        assert_eq!(a.stats(), &before);
        a.verify().unwrap();
    }
    a.free(pair).unwrap();
}

#[test]
fn add_allocated_accounts_by_owner_and_can_be_freed() {
    let span = Pfn::new(0)..Pfn::new(16);
    let mut storage = vec![0; FrameAllocator::metadata_words(span.clone())];
    let mut a = FrameAllocator::new(span, &mut storage).unwrap();
    a.add_allocated(Pfn::new(0)..Pfn::new(4), Owner::AllocatorMetadata).unwrap();
    a.add_free(Pfn::new(4)..Pfn::new(16)).unwrap();
    assert_eq!(a.stats().used_by(Owner::AllocatorMetadata), 4);
    assert_eq!(a.stats().total, 16);
    assert_eq!(a.add_free(Pfn::new(3)..Pfn::new(5)), Err(InitError::AlreadyAdded(Pfn::new(3))));
    assert_eq!(
        a.add_free(Pfn::new(15)..Pfn::new(17)),
        Err(InitError::OutsideSpan { range: Pfn::new(15)..Pfn::new(17) })
    );
    a.free(raw(0, 2, Owner::AllocatorMetadata)).unwrap();
    assert_eq!(a.stats().free_blocks[4], 1);
    a.verify().unwrap();
}

#[test]
fn init_errors() {
    let mut small = vec![0; 3];
    assert!(matches!(
        FrameAllocator::new(Pfn::new(0)..Pfn::new(1000), &mut small),
        Err(InitError::StorageTooSmall { given: 3, .. })
    ));
    assert!(matches!(FrameAllocator::new(Pfn::new(5)..Pfn::new(5), &mut small), Err(InitError::EmptySpan)));
}

#[test]
fn metadata_is_about_two_and_a_quarter_bytes_per_frame() {
    let frames = 1u64 << 20; // 4 GiB
    let bytes = FrameAllocator::metadata_words(Pfn::new(0)..Pfn::new(frames)) as u64 * 8;
    assert!(bytes < frames * 23 / 10, "{bytes} bytes for {frames} frames");
}

#[test]
fn block_containing_finds_the_head() {
    let mut f = Fixture::new(0..64, &[0..64]);
    let mut a = f.allocator();
    let b = a.allocate(3, Owner::Kernel).unwrap();
    assert_eq!(a.block_containing(Pfn::new(5)), Some((Pfn::new(0), 3, Kind::AllocatedHead)));
    assert_eq!(a.block_containing(Pfn::new(8)), Some((Pfn::new(8), 3, Kind::FreeHead)));
    assert_eq!(a.block_containing(Pfn::new(40)), Some((Pfn::new(32), 5, Kind::FreeHead)));
    assert_eq!(a.block_containing(Pfn::new(64)), None);
    a.free(b).unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Allocate {
        order: u8,
        owner: usize,
    },
    Free {
        which: usize,
    },
    BogusFree {
        pfn: u64,
        order: u8,
    },
    /// Idle work: take frames to zero and give them back zeroed.
    Zero {
        frames: usize,
    },
    AllocateZeroed {
        owner: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0..Owner::COUNT).prop_map(|(order, owner)| Op::Allocate { order, owner }),
        3 => any::<usize>().prop_map(|which| Op::Free { which }),
        1 => (0u64..1200, 0u8..4).prop_map(|(pfn, order)| Op::BogusFree { pfn, order }),
        1 => (1usize..40).prop_map(|frames| Op::Zero { frames }),
        2 => (0..Owner::COUNT).prop_map(|owner| Op::AllocateZeroed { owner }),
    ]
}

/// Usable ranges with holes, inside a span that does not start at 0.
fn memory_map() -> impl Strategy<Value = (Range<u64>, Vec<Range<u64>>)> {
    prop::collection::vec((0u64..40, 1u64..200), 1..6).prop_map(|gaps_and_lens| {
        let base = 17;
        let mut at = base;
        let mut ranges = Vec::new();
        for (gap, len) in gaps_and_lens {
            at += gap;
            ranges.push(at..at + len);
            at += len;
        }
        (base..at + 3, ranges)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random alloc/free/bogus-free sequences against a model: no frame is
    /// ever handed out twice, every block is inside usable memory and
    /// aligned, bad frees change nothing, and freeing everything restores the
    /// initial state exactly.
    /// With the recently-freed cache on (of a random size) too: cached
    /// frames are free, never handed out twice, and merge when flushed.
    /// And with a zeroed pool (of a random size): a frame it hands out as
    /// zeroed was zeroed (given back by `add_zeroed`) and not handed out
    /// since; its frames are free and merge when it is drained.
    #[test]
    fn never_hands_out_a_frame_twice((span, usable) in memory_map(), ops in prop::collection::vec(op(), 1..300), cache in prop_oneof![Just(0usize), 1usize..=CACHE_CAPACITY], pool in 0usize..50) {
        let mut pool_storage = vec![0u64; pool];
        let mut f = Fixture::new(span, &usable);
        let mut a = f.allocator();
        a.set_cache(cache);
        a.set_zeroed_pool(&mut pool_storage);
        let initial = a.stats().clone();
        let mut held: Vec<FrameBlock> = Vec::new();
        let mut owner_of: BTreeMap<u64, Owner> = BTreeMap::new(); // frame → owner, the model
        let mut clean: BTreeSet<u64> = BTreeSet::new(); // frames zeroed and not handed out since
        for op in ops {
            match op {
                Op::Allocate { order, owner } => {
                    let owner = Owner::ALL[owner];
                    match a.allocate(order, owner) {
                        Ok(b) => {
                            prop_assert!(b.start().is_aligned(order));
                            for p in b.start().number()..b.start().number() + b.frames() {
                                prop_assert!(usable.iter().any(|r| r.contains(&p)), "frame {p} not usable");
                                prop_assert!(owner_of.insert(p, owner).is_none(), "frame {p} handed out twice");
                                clean.remove(&p);
                            }
                            held.push(b);
                        }
                        Err(AllocError::OutOfFrames { .. }) => {
                            // Only legal when no free aligned run of that size
                            // exists (the failed call flushed the cache).
                            prop_assert!(a.stats().free_blocks[order as usize..].iter().all(|&n| n == 0));
                            prop_assert_eq!((a.stats().cached, a.stats().zeroed), (0, 0));
                        }
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::Free { which } if !held.is_empty() => {
                    let b = held.swap_remove(which % held.len());
                    for p in b.start().number()..b.start().number() + b.frames() {
                        owner_of.remove(&p);
                    }
                    a.free(b).unwrap();
                }
                Op::Free { .. } => {}
                Op::Zero { frames } => {
                    for _ in 0..frames {
                        let Some(b) = a.take_for_zeroing() else {
                            let z = a.zeroed_pool();
                            prop_assert!(z.held == z.capacity || a.stats().free_blocks.iter().all(|&n| n == 0));
                            break;
                        };
                        let p = b.start().number();
                        prop_assert!(usable.iter().any(|r| r.contains(&p)) && !owner_of.contains_key(&p));
                        clean.insert(p);
                        a.add_zeroed(b).unwrap();
                    }
                }
                Op::AllocateZeroed { owner } => {
                    let owner = Owner::ALL[owner];
                    if let Ok((b, contents)) = a.allocate_zeroed_frame(owner) {
                        let p = b.start().number();
                        prop_assert!(owner_of.insert(p, owner).is_none(), "frame {p} handed out twice");
                        prop_assert!(clean.remove(&p) || contents == Contents::Unknown, "frame {p} handed out as zeroed");
                        held.push(b);
                    } else {
                        prop_assert_eq!(a.stats().free, 0);
                    }
                }
                Op::BogusFree { pfn, order } => {
                    let genuine = held.iter().any(|b| b.start().number() == pfn && b.order() == order && b.owner() == Owner::Kernel);
                    if !genuine {
                        let before = a.stats().clone();
                        prop_assert!(a.free(raw(pfn, order, Owner::Kernel)).is_err());
                        prop_assert_eq!(a.stats(), &before);
                    }
                }
            }
            prop_assert_eq!(a.stats().used(), owner_of.len() as u64);
        }
        a.verify().map_err(|v| TestCaseError::fail(std::format!("{v:?}")))?;
        for b in held {
            a.free(b).unwrap();
        }
        a.verify().map_err(|v| TestCaseError::fail(std::format!("{v:?}")))?;
        let z = a.zeroed_pool();
        prop_assert_eq!((z.held, z.held <= z.capacity), (a.stats().zeroed, true));
        a.drain_cache();
        a.drain_zeroed();
        prop_assert_eq!(a.stats(), &initial);
        a.verify().map_err(|v| TestCaseError::fail(std::format!("{v:?}")))?;
    }
}

#[test]
fn the_cache_gives_back_the_frame_just_freed_and_refuses_a_double_free() {
    let mut f = Fixture::new(0..4096, &[16..4096]);
    let mut a = f.allocator();
    a.set_cache(4);
    let blocks: Vec<_> = (0..6).map(|_| a.allocate(0, Owner::Process).unwrap()).collect();
    let starts: Vec<_> = blocks.iter().map(|b| b.start()).collect();
    for b in blocks {
        a.free(b).unwrap();
    }
    // Six frees into a cache of four: the first full one flushed its older
    // half (two frames) to the bitmaps.
    assert_eq!(a.stats().cached, 4);
    assert_eq!(a.allocate(0, Owner::Kernel).unwrap().start(), starts[5], "last freed, first out");
    let again = a.free(raw(starts[4].number(), 0, Owner::Process)).unwrap_err();
    assert_eq!(again.error, FreeError::DoubleFree(starts[4]));
    a.verify().unwrap();
    // A larger allocation that needs the cached frames merged gets them.
    let everything = a.stats().free;
    let mut held = Vec::new();
    while let Ok(b) = a.allocate(3, Owner::Kernel) {
        held.push(b);
    }
    assert_eq!(a.stats().cached, 0);
    assert!(a.stats().free < 8 && everything - a.stats().free == held.len() as u64 * 8);
    a.verify().unwrap();
}

#[test]
fn the_zeroed_pool_serves_zeroed_requests_and_ordinary_ones_only_last() {
    let mut storage = vec![0u64; 3];
    let mut f = Fixture::new(0..64, &[0..64]);
    let mut a = f.allocator();
    a.set_zeroed_pool(&mut storage);
    let initial = a.stats().clone();
    let mut zeroed = Vec::new();
    while let Some(b) = a.take_for_zeroing() {
        zeroed.push(b.start());
        a.add_zeroed(b).unwrap();
    }
    assert_eq!(zeroed, [Pfn::new(0), Pfn::new(1), Pfn::new(2)], "the smallest free blocks, lowest first");
    assert_eq!((a.stats().zeroed, a.stats().free), (3, 64));
    a.verify().unwrap();
    // An ordinary request leaves the pool alone while the bitmaps have frames.
    let plain = a.allocate(0, Owner::Kernel).unwrap();
    assert_eq!(plain.start(), Pfn::new(3));
    let (z, contents) = a.allocate_zeroed_frame(Owner::Process).unwrap();
    assert_eq!((z.start(), contents), (Pfn::new(2), Contents::Zeroed));
    // A frame in the pool is free: freeing it is a double free.
    let again = a.free(raw(1, 0, Owner::Kernel)).unwrap_err();
    assert_eq!(again.error, FreeError::DoubleFree(Pfn::new(1)));
    // A larger request that finds nothing gets the pool's frames merged.
    let mut big = Vec::new();
    while let Ok(b) = a.allocate(2, Owner::Kernel) {
        big.push(b);
    }
    assert_eq!((a.stats().zeroed, big.len()), (0, 15), "frames 0 and 1 merged back with 4..8's neighbours");
    let (late, contents) = a.allocate_zeroed_frame(Owner::Process).unwrap();
    assert_eq!(contents, Contents::Unknown, "an empty pool: the caller zeroes");
    let counters = a.zeroed_pool();
    assert_eq!(
        (counters.capacity, counters.held, counters.hits, counters.misses, counters.filled),
        (3, 0, 1, 1, 3)
    );
    a.verify().unwrap();
    for b in big.into_iter().chain([plain, z, late]) {
        a.free(b).unwrap();
    }
    assert_eq!(a.stats(), &initial);
    a.verify().unwrap();
}

#[test]
fn a_full_zeroed_pool_takes_frames_back_as_ordinary_frees() {
    let mut storage = vec![0u64; 1];
    let mut f = Fixture::new(0..64, &[0..64]);
    let mut a = f.allocator();
    a.set_zeroed_pool(&mut storage);
    let (first, second) = (a.allocate(0, Owner::Kernel).unwrap(), a.allocate(0, Owner::Kernel).unwrap());
    a.add_zeroed(first).unwrap();
    a.add_zeroed(second).unwrap();
    assert_eq!((a.stats().zeroed, a.stats().free, a.zeroed_pool().filled), (1, 64, 1));
    assert!(a.take_for_zeroing().is_none(), "full");
    let bogus = a.add_zeroed(raw(5, 0, Owner::Kernel)).unwrap_err();
    assert_eq!(bogus.error, FreeError::NeverAllocated(Pfn::new(5)));
    a.verify().unwrap();
}

#[test]
fn for_each_allocated_visits_every_block_once_with_its_owner() {
    let mut f = Fixture::new(0..4096, &[16..1000, 2048..4096]);
    let mut a = f.allocator();
    let blocks = [(0, Owner::Kernel), (3, Owner::PageTable), (9, Owner::Process), (0, Owner::Dma)];
    let mut expected = BTreeMap::new();
    for (order, owner) in blocks {
        let b = a.allocate(order, owner).unwrap();
        expected.insert(b.start().number(), (order, owner));
        let _ = b.into_raw();
    }
    let mut seen = BTreeMap::new();
    a.for_each_allocated(&mut |pfn, order, owner| {
        assert!(seen.insert(pfn.number(), (order, owner)).is_none())
    });
    assert_eq!(seen, expected);
    let counted: u64 = seen.values().map(|(order, _)| 1u64 << order).sum();
    assert_eq!(counted, a.stats().used());
}

#[test]
fn a_flush_of_cached_neighbours_merges_them_as_freeing_them_one_by_one_does() {
    // Reclaim's pattern: frames freed in address order, more than the
    // cache holds, with a hole (frame 21 stays out) and a run that is not
    // aligned (it starts at 3).
    let free_in_order = |cache: usize| {
        let mut f = Fixture::new(0..256, &[0..256]);
        let mut a = f.allocator();
        a.set_cache(cache);
        let mut held: Vec<_> = (0..100).map(|_| Some(a.allocate(0, Owner::Process).unwrap())).collect();
        for (i, block) in held.iter_mut().enumerate().skip(3) {
            if i != 21 {
                a.free(block.take().unwrap()).unwrap();
            }
        }
        a.verify().unwrap();
        a.drain_cache();
        a.verify().unwrap();
        let stats = a.stats().clone();
        held.into_iter().flatten().for_each(|b| a.free(b).unwrap());
        a.drain_cache();
        a.verify().unwrap();
        (stats, a.stats().free_blocks)
    };
    let (merged_one_by_one, _) = free_in_order(0);
    let (flushed, everything_back) = free_in_order(CACHE_CAPACITY);
    assert_eq!(flushed, merged_one_by_one);
    assert_eq!(everything_back.iter().sum::<u64>(), 1, "one block of 256 frames again");
}
