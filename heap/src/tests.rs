extern crate std;

use super::*;
use crate::host::HostKernel as FakeKernel;
use proptest::prelude::*;
use std::vec::Vec;

fn heap() -> Heap<FakeKernel> {
    Heap::new(FakeKernel::default(), HeapConfig { arena: 8 << 20 }).expect("heap")
}

/// A heap of an 8 MiB arena whose kernel holds it to `budget` bytes made
/// writable (None: no limit) and tracks every writable page.
fn budgeted_heap(budget: Option<usize>) -> Heap<FakeKernel> {
    let mut kernel = FakeKernel::default();
    kernel.byte_budget = budget;
    kernel.writable_pages = Some(Default::default());
    Heap::new(kernel, HeapConfig { arena: 8 << 20 }).expect("heap")
}

fn fill(p: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: test blocks are at least `len` long and owned by the test.
    unsafe { core::ptr::write_bytes(p.as_ptr(), byte, len) };
}

fn all(p: NonNull<u8>, len: usize, byte: u8) -> bool {
    // SAFETY: as in fill.
    unsafe { core::slice::from_raw_parts(p.as_ptr(), len) }.iter().all(|&b| b == byte)
}

#[test]
fn classes_are_sorted_aligned_and_their_spans_waste_little() {
    assert!(CLASSES.windows(2).all(|w| w[0] < w[1]));
    assert!(CLASSES.iter().all(|&c| c % 16 == 0));
    for (c, &size) in CLASSES.iter().enumerate() {
        let span = classes::SPAN_PAGES[c] as usize * PAGE;
        let blocks = classes::BLOCKS[c] as usize;
        assert!((1..=classes::MAX_BLOCKS).contains(&blocks));
        assert_eq!(blocks, span / size as usize);
        assert!(
            span % CLASSES[c] as usize * 64 <= span * 3,
            "class {} wastes {} of {span}",
            CLASSES[c],
            span % CLASSES[c] as usize
        );
    }
    // At most 12.5 % above any request past 128 bytes.
    for size in 129..=MAX_SMALL {
        let c = class_for(size, 16).unwrap();
        assert!(CLASSES[c] as usize * 8 <= size * 9, "{size} -> {}", CLASSES[c]);
    }
}

#[test]
fn the_class_lookup_matches_a_search_of_the_table() {
    for align in [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 65536] {
        for size in 1..=MAX_SMALL + 1 {
            let searched =
                CLASSES.iter().position(|&c| c as usize >= size && (c as usize).is_multiple_of(align));
            assert_eq!(class_for(size, align), searched, "size {size} align {align}");
        }
    }
}

#[test]
fn block_index_by_reciprocal_is_exact_for_every_offset_of_every_class() {
    for (c, &size) in CLASSES.iter().enumerate() {
        let size = size as usize;
        for offset in 0..classes::SPAN_PAGES[c] as usize * PAGE {
            assert_eq!(classes::block_index(offset, c), offset / size, "offset {offset} class {size}");
        }
    }
}

#[test]
fn blocks_are_aligned_distinct_and_keep_their_contents() {
    let mut h = heap();
    let sizes = [1, 15, 16, 17, 100, 1000, 4096, 5000, 32768, 40000, 300_000];
    let blocks: Vec<_> = sizes.iter().map(|&s| (h.allocate(s, 16).unwrap(), s)).collect();
    for (i, &(p, s)) in blocks.iter().enumerate() {
        assert_eq!(p.as_ptr() as usize % 16, 0);
        fill(p, s, i as u8 + 1);
    }
    for (i, &(p, s)) in blocks.iter().enumerate() {
        assert!(all(p, s, i as u8 + 1), "block {i} overwritten");
    }
    let page_aligned = h.allocate(100, 4096).unwrap();
    assert_eq!(page_aligned.as_ptr() as usize % 4096, 0);
    assert_eq!(h.allocate(16, 8192), Err(AllocError::BadAlignment { align: 8192 }), "above a page");
    assert_eq!(h.allocate(16, 24), Err(AllocError::BadAlignment { align: 24 }), "not a power of two");
}

#[test]
fn double_free_and_foreign_pointers_are_refused() {
    let mut h = heap();
    let a = h.allocate(100, 16).unwrap();
    let big = h.allocate(100_000, 16).unwrap();
    let before = h.stats();
    let local = 0u64;
    let foreign = NonNull::from(&local).cast::<u8>();
    let interior = NonNull::new(a.as_ptr().wrapping_add(8)).unwrap();
    let unused_span = NonNull::new((h.arena().start + (1 << 20)) as *mut u8).unwrap();
    assert_eq!(h.free(foreign), Err(HeapError::ForeignPointer(foreign.as_ptr() as usize)));
    assert_eq!(h.free(interior), Err(HeapError::ForeignPointer(interior.as_ptr() as usize)));
    assert_eq!(h.free(unused_span), Err(HeapError::ForeignPointer(unused_span.as_ptr() as usize)));
    assert_eq!(h.stats(), before);
    h.free(a).unwrap();
    h.free(big).unwrap();
    assert_eq!(h.free(big), Err(HeapError::ForeignPointer(big.as_ptr() as usize)), "freed large region");
    let b = h.allocate(100, 16).unwrap(); // keeps the span alive
    let c = h.allocate(100, 16).unwrap();
    h.free(c).unwrap();
    assert_eq!(h.free(c), Err(HeapError::DoubleFree(c.as_ptr() as usize)));
    h.free(b).unwrap();
}

#[test]
fn large_blocks_are_page_runs_that_grow_and_shrink_in_place() {
    let mut h = heap();
    let big = h.allocate(MAX_SMALL + 1, 16).unwrap();
    assert!(h.arena().contains(&(big.as_ptr() as usize)));
    assert_eq!(big.as_ptr() as usize % PAGE, 0);
    assert_eq!(h.usable_size(big), Ok(9 * PAGE), "whole pages, not 64 KiB steps");
    fill(big, MAX_SMALL + 1, 7);
    // At the frontier: grows in place.
    let grown = h.reallocate(big, 100_000, 16).unwrap().unwrap();
    assert_eq!(grown, big);
    assert_eq!(h.usable_size(big), Ok(25 * PAGE));
    // Shrinks in place; the tail is free and taken by the next block.
    assert_eq!(h.reallocate(big, 40_000, 16), Ok(Some(big)));
    assert_eq!(h.usable_size(big), Ok(10 * PAGE));
    assert!(all(big, MAX_SMALL + 1, 7));
    let next = h.allocate(60_000, 16).unwrap();
    assert_eq!(next.as_ptr() as usize, big.as_ptr() as usize + 10 * PAGE, "the freed tail");
    // Boxed in: growing moves it, contents kept.
    let moved = h.reallocate(big, 50_000, 16).unwrap().unwrap();
    assert_ne!(moved, big);
    assert!(all(moved, MAX_SMALL + 1, 7));
    // Freeing `next` then lets `moved` grow into its pages... or the
    // frontier; either way in place.
    h.free(next).unwrap();
    assert_eq!(h.reallocate(moved, 200_000, 16), Ok(Some(moved)));
    assert_eq!(h.stats().large_bytes, 49 * PAGE);
    h.free(moved).unwrap();
    assert_eq!(h.stats().live_bytes, 0);
    assert_eq!(h.free(moved), Err(HeapError::ForeignPointer(moved.as_ptr() as usize)));
}

#[test]
fn a_boxed_in_large_block_slides_into_the_holes_beside_it_or_stays_as_it_was() {
    // A 64-page arena, full: [a 9][b 10][c 9][d 36]; then a and c freed.
    let mut h = Heap::new(FakeKernel::default(), HeapConfig { arena: 64 * PAGE }).unwrap();
    let [a, b, c, d] = [9, 10, 9, 36].map(|pages| h.allocate(pages * PAGE, 16).unwrap());
    assert_eq!(d.as_ptr() as usize + 36 * PAGE, h.arena().end, "the arena is full");
    fill(b, 10 * PAGE, 0xb);
    h.free(a).unwrap();
    h.free(c).unwrap();
    // 29 pages fit nowhere, not even in a, b and c together (28): refused,
    // and b is as it was.
    assert_eq!(h.reallocate(b, 29 * PAGE, 16), Ok(None));
    assert_eq!(h.usable_size(b), Ok(10 * PAGE));
    assert!(all(b, 10 * PAGE, 0xb));
    h.check();
    // 25 pages fit in a, b and c: b moves down to a's place, contents kept.
    let moved = h.reallocate(b, 25 * PAGE, 16).unwrap().expect("the holes beside it fit");
    assert_eq!(moved, a);
    assert_eq!(h.usable_size(moved), Ok(25 * PAGE));
    assert!(all(moved, 10 * PAGE, 0xb));
    assert_eq!(h.free(b), Err(HeapError::ForeignPointer(b.as_ptr() as usize)), "b is inside the moved block");
    assert_eq!(h.free_run_bytes(), 3 * PAGE);
    h.check();
}

#[test]
fn scribbling_over_every_block_and_past_it_does_not_break_the_heap() {
    let mut h = heap();
    let mut live = Vec::new();
    for i in 0..2000usize {
        live.push((h.allocate(16 + (i * 37) % 3000, 16).unwrap(), 16 + (i * 37) % 3000));
    }
    for (p, _) in live.drain(..).step_by(2).collect::<Vec<_>>() {
        h.free(p).unwrap();
    }
    // The program writes garbage over the whole part of the arena in use:
    // its blocks, the free blocks between them, and past them.
    let used = h.arena_in_use();
    // SAFETY: the arena is fake-kernel memory the test owns; the heap keeps
    // nothing there.
    unsafe { core::ptr::write_bytes(used.start as *mut u8, 0xee, used.len()) };
    let stats = h.stats();
    // Everything still works: allocations are distinct and usable, frees
    // succeed, and the counters are unchanged by the scribbling.
    let mut fresh = Vec::new();
    for i in 0..1500usize {
        let size = 16 + (i * 53) % 5000;
        let p = h.allocate(size, 16).unwrap();
        fill(p, size, (i % 250) as u8);
        fresh.push((p, size, (i % 250) as u8));
    }
    for &(p, size, byte) in &fresh {
        assert!(all(p, size, byte), "blocks overlap");
    }
    for (p, _, _) in fresh {
        h.free(p).unwrap();
    }
    assert_eq!(h.stats().live_blocks, stats.live_blocks);
}

#[test]
fn scavenge_hands_back_free_pages_and_they_come_back_zeroed() {
    let mut h = heap();
    let blocks: Vec<_> = (0..64).map(|_| h.allocate(4096, 16).unwrap()).collect();
    for &p in &blocks {
        fill(p, 4096, 0xaa);
    }
    let resident = h.stats().resident_estimate;
    assert_eq!(resident, 64 * 4096);
    // Free every other block: single free pages, below an 8 KiB minimum.
    for &p in blocks.iter().step_by(2) {
        h.free(p).unwrap();
    }
    let mut seen = Vec::new();
    assert_eq!(
        h.scavenge(8192, |a, l| {
            seen.push((a, l));
            true
        }),
        0
    );
    assert!(seen.is_empty());
    assert_eq!(h.scavenge_to_kernel(4096), 32 * 4096);
    assert_eq!(h.kernel().decommitted.len(), 32);
    assert_eq!(h.stats().resident_estimate, 32 * 4096);
    assert_eq!(h.scavenge_to_kernel(4096), 0, "nothing handed back twice");
    // Free the rest: whole spans become free and are handed back as runs.
    for &p in blocks.iter().skip(1).step_by(2) {
        h.free(p).unwrap();
    }
    assert_eq!(h.scavenge_to_kernel(4096), 32 * 4096);
    assert_eq!(h.stats().resident_estimate, 0);
    // calloc in scavenged memory reads zero (without a memset); plain malloc
    // there reads zero too, because the kernel zeroed the pages.
    let z = h.allocate_zeroed(4096, 16).unwrap();
    assert!(all(z, 4096, 0));
    let m = h.allocate(4096, 16).unwrap();
    assert!(all(m, 4096, 0));
}

#[test]
fn calloc_zeroes_reused_memory() {
    let mut h = heap();
    let a = h.allocate(64, 16).unwrap();
    fill(a, 64, 0x77);
    h.free(a).unwrap();
    let b = h.allocate_zeroed(64, 16).unwrap();
    assert_eq!(a, b, "same block reused");
    assert!(all(b, 64, 0));
}

#[test]
fn realloc_keeps_contents_and_the_block_when_it_fits() {
    let mut h = heap();
    let a = h.allocate(100, 16).unwrap();
    fill(a, 100, 5);
    assert_eq!(h.reallocate(a, 110, 16), Ok(Some(a)), "same class: same block");
    let b = h.reallocate(a, 5000, 16).unwrap().unwrap();
    assert_ne!(a, b);
    assert!(all(b, 100, 5));
    let c = h.reallocate(b, 200_000, 16).unwrap().unwrap();
    assert!(all(c, 100, 5));
    let d = h.reallocate(c, 50, 16).unwrap().unwrap();
    assert!(all(d, 50, 5));
    // `a`'s span is entirely free by now; freeing `a` again is still
    // recognised as a double free (the span remembers its last class).
    assert_eq!(h.reallocate(a, 10, 16), Err(HeapError::DoubleFree(a.as_ptr() as usize)));
    assert_eq!(h.free(a), Err(HeapError::DoubleFree(a.as_ptr() as usize)));
}

#[test]
fn a_shrink_stays_put_while_the_data_fills_a_quarter_of_what_is_kept() {
    let mut h = heap();
    let a = h.allocate(1000, 16).unwrap();
    assert_eq!(h.usable_size(a), Ok(1024));
    fill(a, 1000, 3);
    assert_eq!(h.reallocate(a, 256, 16), Ok(Some(a)), "a quarter of its class: stays");
    let b = h.reallocate(a, 255, 16).unwrap().unwrap();
    assert_ne!(a, b, "less: moves to a smaller class");
    assert!(all(b, 255, 3));
    // A large block keeps the pages the new size needs, the tail freed.
    let big = h.allocate(100_000, 16).unwrap();
    fill(big, 100_000, 4);
    assert_eq!(h.reallocate(big, 10_000, 16), Ok(Some(big)), "small now, in 3 pages of its own");
    assert_eq!(h.usable_size(big), Ok(3 * PAGE));
    assert_eq!(h.reallocate(big, 1_100, 16), Ok(Some(big)), "a quarter of a page");
    assert_eq!(h.usable_size(big), Ok(PAGE));
    let small = h.reallocate(big, 1_000, 16).unwrap().unwrap();
    assert_ne!(small, big, "less: into a class");
    assert_eq!(h.usable_size(small), Ok(1024));
    assert!(all(small, 1_000, 4));
    h.check();
}

#[test]
fn realloc_with_the_size_in_use_copies_only_that() {
    let mut h = heap();
    // Small to small: 100 bytes live in a 112-byte class.
    let a = h.allocate(100, 16).unwrap();
    let usable = h.usable_size(a).unwrap();
    fill(a, usable, 7);
    let b = h.reallocate_in_use(a, 40, 5000, 16).unwrap().unwrap();
    assert!(all(b, 40, 7), "the bytes in use moved");
    // The new block lies on fresh pages (they read zero): nothing past
    // the bytes in use was copied.
    assert!(all_zero(b, 40, usable), "bytes past in_use were copied");
    // Large to large (no room to grow in place: a block right after it).
    let c = h.allocate(40_000, 16).unwrap();
    let _after = h.allocate(40_000, 16).unwrap();
    fill(c, h.usable_size(c).unwrap(), 9);
    let d = h.reallocate_in_use(c, 30_000, 120_000, 16).unwrap().unwrap();
    assert_ne!(c, d, "it had to move");
    assert!(all(d, 30_000, 9));
    assert!(all_zero(d, 30_000, 40_960), "bytes past in_use were copied");
}

/// Every byte of `ptr[from..to]` reads zero.
fn all_zero(ptr: NonNull<u8>, from: usize, to: usize) -> bool {
    // SAFETY: the caller's block holds at least `to` bytes.
    (from..to).all(|i| unsafe { *ptr.as_ptr().add(i) } == 0)
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align: usize, zeroed: bool },
    Free { which: usize },
    Realloc { which: usize, size: usize },
    Scavenge { min_pages: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![8 => 1usize..600, 3 => 600usize..9000, 1 => 9000usize..70_000];
    let align = prop_oneof![6 => Just(16usize), 1 => Just(64), 1 => Just(4096)];
    prop_oneof![
        5 => (size.clone(), align, any::<bool>()).prop_map(|(size, align, zeroed)| Op::Alloc { size, align, zeroed }),
        4 => any::<usize>().prop_map(|which| Op::Free { which }),
        1 => (any::<usize>(), size).prop_map(|(which, size)| Op::Realloc { which, size }),
        1 => (1usize..4).prop_map(|min_pages| Op::Scavenge { min_pages }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Random malloc/calloc/realloc/free/scavenge against a model of live
    /// blocks: blocks are aligned and never overlap, their contents survive
    /// everything (scavenge included: the fake kernel zero-fills what is
    /// handed back, so handing back a live page would show), calloc reads
    /// zero, and the statistics count the live blocks. Under a budget the
    /// kernel refuses growth, free runs are given back, and every live
    /// block must still lie in pages the kernel made writable.
    #[test]
    fn heap_follows_the_model(
        ops in prop::collection::vec(op(), 1..250),
        budget in prop_oneof![Just(None), (2usize..8).prop_map(|quarter_mib| Some(quarter_mib << 18))],
    ) {
        let mut h = budgeted_heap(budget);
        let mut live: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
        let mut tag = 0u8;
        for op in ops {
            match op {
                Op::Alloc { size, align, zeroed } => {
                    let p = if zeroed { h.allocate_zeroed(size, align) } else { h.allocate(size, align) };
                    let Ok(p) = p else { continue };
                    prop_assert_eq!(p.as_ptr() as usize % align, 0);
                    if zeroed {
                        prop_assert!(all(p, size, 0), "calloc returned dirty memory");
                    }
                    let (start, end) = (p.as_ptr() as usize, p.as_ptr() as usize + size);
                    for &(q, qs, _) in &live {
                        let (qa, qe) = (q.as_ptr() as usize, q.as_ptr() as usize + qs);
                        prop_assert!(end <= qa || qe <= start, "overlap");
                    }
                    tag = tag.wrapping_add(1).max(1);
                    fill(p, size, tag);
                    live.push((p, size, tag));
                }
                Op::Free { which } if !live.is_empty() => {
                    let (p, size, t) = live.swap_remove(which % live.len());
                    prop_assert!(all(p, size, t), "contents changed");
                    h.free(p).unwrap();
                    prop_assert!(h.free(p).is_err(), "second free accepted");
                }
                Op::Realloc { which, size } if !live.is_empty() => {
                    let i = which % live.len();
                    let (p, old, t) = live[i];
                    if let Some(q) = h.reallocate(p, size, 16).unwrap() {
                        prop_assert!(all(q, old.min(size), t), "realloc lost contents");
                        fill(q, size, t);
                        live[i] = (q, size, t);
                    }
                }
                Op::Scavenge { min_pages } => {
                    h.scavenge_to_kernel(min_pages * PAGE);
                }
                _ => {}
            }
            prop_assert_eq!(h.stats().live_blocks, live.len());
            h.check();
            let writable = h.kernel().writable_pages.as_ref().unwrap();
            for &(p, size, _) in &live {
                let start = p.as_ptr() as usize / PAGE * PAGE;
                let in_writable = (start..p.as_ptr() as usize + size).step_by(PAGE).all(|page| writable.contains(&page));
                prop_assert!(in_writable, "a live block in a page not writable");
            }
            prop_assert_eq!(h.kernel().writable_bytes, h.arena_writable() + h.stats().metadata_bytes);
            prop_assert!(budget.is_none_or(|b| h.kernel().writable_bytes <= b));
        }
        for &(p, size, t) in &live {
            prop_assert!(all(p, size, t), "contents changed at the end");
        }
    }
}

#[test]
fn the_arena_grows_a_mib_at_a_time_and_a_refused_growth_is_a_failed_allocation() {
    let budget = 3 << 20;
    let mut h = Heap::new(FakeKernel::with_byte_budget(budget), HeapConfig { arena: 8 << 20 }).unwrap();
    assert!(h.kernel().grown.is_empty(), "nothing made writable before the first block");
    let mut blocks = Vec::new();
    while let Ok(p) = h.allocate(MAX_SMALL, 8) {
        fill(p, MAX_SMALL, 0x5a);
        blocks.push(p);
    }
    let arena_grows: Vec<_> =
        h.kernel().grown.iter().filter(|(a, _)| h.arena().contains(a)).copied().collect();
    // A megabyte at a time; once the kernel refuses a megabyte, just what
    // each span needs (the end of the budget is not lost to the step).
    let span = classes::SPAN_PAGES[CLASS_COUNT - 1] as usize * PAGE;
    let whole = arena_grows.iter().take_while(|&&(_, len)| len == 1 << 20).count();
    assert_eq!(whole, 2, "{arena_grows:?}");
    assert!(arena_grows[whole..].iter().all(|&(_, len)| len == span), "{arena_grows:?}");
    assert_eq!(arena_grows[0].0, h.arena().start);
    assert_eq!(h.kernel().writable_bytes, h.arena_writable() + h.stats().metadata_bytes);
    assert!(h.kernel().writable_bytes <= budget);
    assert_eq!(
        blocks.len() * MAX_SMALL,
        h.arena_writable(),
        "every byte of the grown arena used, none past it"
    );
    // Freed memory is reused without growing again.
    let grows = h.kernel().grown.len();
    h.free(blocks.pop().unwrap()).unwrap();
    assert!(h.allocate(MAX_SMALL, 8).is_ok());
    assert!(h.allocate(100_000, 8).is_err(), "the budget is spent");
    assert_eq!(h.kernel().grown.len(), grows);
    assert!(blocks.iter().all(|&p| all(p, MAX_SMALL, 0x5a)));
}

#[test]
fn free_runs_give_their_charge_back_when_the_kernel_refuses_to_grow() {
    let budget = 2 << 20;
    let mut h = budgeted_heap(Some(budget));
    // Large blocks of 9 pages (large: past MAX_SMALL) until the budget is spent; every other one
    // freed leaves holes of 9 pages, none of which holds 10.
    let mut blocks = Vec::new();
    while let Ok(p) = h.allocate(9 * PAGE, 8) {
        fill(p, 9 * PAGE, 0x77);
        blocks.push(p);
    }
    let kept: Vec<_> = blocks.iter().copied().step_by(2).collect();
    for &p in blocks.iter().skip(1).step_by(2) {
        h.free(p).unwrap();
    }
    let holes = h.free_run_bytes();
    assert!(holes >= 400 * 1024, "{holes}");
    // Refused, and nothing to give back with: the allocation fails.
    h.kernel_mut().refuse_give_back = true;
    assert!(h.allocate(10 * PAGE, 8).is_err());
    // Given back, the holes no longer count against the budget: blocks
    // of 10 pages take their place past the frontier.
    h.kernel_mut().refuse_give_back = false;
    let mut bigger = Vec::new();
    while let Ok(p) = h.allocate(10 * PAGE, 8) {
        fill(p, 10 * PAGE, 0x44);
        bigger.push(p);
    }
    assert!(bigger.len() * 10 * PAGE >= holes * 9 / 10, "{} blocks for {holes} bytes of holes", bigger.len());
    assert_eq!(h.stats().given_back_bytes, holes, "every hole given back, and none grown again");
    assert_eq!(h.kernel().writable_bytes, h.arena_writable() + h.stats().metadata_bytes);
    assert!(h.kernel().writable_bytes <= budget);
    // Small blocks fit in the holes: their pages are grown again first,
    // and read zero.
    for p in bigger.drain(..2) {
        h.free(p).unwrap();
    }
    let small = h.allocate_zeroed(MAX_SMALL / 4, 8).unwrap();
    assert!(all_zero(small, 0, MAX_SMALL / 4));
    let writable = h.kernel().writable_pages.as_ref().unwrap();
    assert!(writable.contains(&(small.as_ptr() as usize / PAGE * PAGE)));
    assert!(kept.iter().all(|&p| all(p, 9 * PAGE, 0x77)));
    assert!(bigger.iter().all(|&p| all(p, 10 * PAGE, 0x44)));
    h.check();
}

#[test]
fn span_pages_of_free_blocks_give_their_charge_back_and_are_grown_again_before_use() {
    let budget = 2 << 20;
    let mut h = budgeted_heap(Some(budget));
    // Small blocks of two pages until the budget is spent; every other
    // one freed leaves its two pages holding no live block, inside spans
    // that stay (each keeps a live block).
    let size = 2 * PAGE;
    let mut blocks = Vec::new();
    while let Ok(p) = h.allocate(size, 8) {
        fill(p, size, 0x33);
        blocks.push(p);
    }
    let kept: Vec<_> = blocks.iter().copied().step_by(2).collect();
    for &p in blocks.iter().skip(1).step_by(2) {
        h.free(p).unwrap();
    }
    assert!(h.free_run_bytes() < 64 * PAGE, "{}", h.free_run_bytes());
    // A large block: refused, then the free blocks' pages are given back
    // and it fits past the frontier.
    let freed = (blocks.len() - kept.len()) * size;
    let large = h.allocate(freed / 2, 8).expect("room made by giving span pages back");
    fill(large, freed / 2, 0x55);
    assert!(h.stats().given_back_bytes >= freed / 2, "{} given back", h.stats().given_back_bytes);
    assert_eq!(h.kernel().writable_bytes, h.arena_writable() + h.stats().metadata_bytes);
    assert!(h.kernel().writable_bytes <= budget);
    h.check();
    // The large block gone, small blocks take the free blocks again: their
    // pages are grown first, and read zero.
    h.free(large).unwrap();
    let mut again = Vec::new();
    for _ in 0..blocks.len() - kept.len() {
        let p = h.allocate_zeroed(size, 8).unwrap();
        assert!(all_zero(p, 0, size));
        let writable = h.kernel().writable_pages.as_ref().unwrap();
        assert!((0..2).all(|i| writable.contains(&(p.as_ptr() as usize + i * PAGE))));
        fill(p, size, 0x66);
        again.push(p);
    }
    assert!(kept.iter().all(|&p| all(p, size, 0x33)));
    assert!(again.iter().all(|&p| all(p, size, 0x66)));
    assert!(h.kernel().writable_bytes <= budget);
    h.check();
}

#[test]
fn a_full_arena_gives_nothing_back_only_a_refused_grow_does() {
    // No budget, a 1 MiB arena: holes of 9 pages, a request of 10 that
    // fails because the arena is full, not because the kernel said no.
    let mut h = Heap::new(FakeKernel::default(), HeapConfig { arena: 1 << 20 }).unwrap();
    let mut blocks = Vec::new();
    while let Ok(p) = h.allocate(9 * PAGE, 8) {
        blocks.push(p);
    }
    for &p in blocks.iter().step_by(2) {
        h.free(p).unwrap();
    }
    assert!(h.allocate(10 * PAGE, 8).is_err());
    assert_eq!((h.stats().grows_refused, h.stats().given_back_bytes), (0, 0));
    assert!(h.kernel().given_back.is_empty(), "no system calls for nothing");
    h.check();
}

#[test]
fn a_bounded_scavenge_step_hands_back_at_most_its_budget_and_the_next_goes_on() {
    let mut h = heap();
    let blocks: Vec<_> = (0..64).map(|_| h.allocate(MAX_SMALL, 8).unwrap()).collect();
    for &p in &blocks {
        fill(p, MAX_SMALL, 1);
    }
    for p in blocks {
        h.free(p).unwrap();
    }
    let step = 64 * 1024 + 100;
    let mut steps = Vec::new();
    loop {
        let bytes = h.scavenge_some(PAGE, step);
        if bytes == 0 {
            break;
        }
        steps.push(bytes);
    }
    assert!(steps.iter().all(|&b| b <= 64 * 1024), "{steps:?}");
    assert_eq!(steps.iter().sum::<usize>(), 64 * MAX_SMALL, "every freed page handed back once, in steps");
    assert_eq!(h.scavenge_to_kernel(PAGE), 0, "nothing left");
}
