//! The kernel's physical frame allocator: `mm::frame::FrameAllocator` (the
//! algorithm, host-tested) over the bootloader's memory map, behind a lock.
//!
//! Its metadata (≈2.3 bytes per frame) lives in the first usable region large
//! enough, reached through the physical-memory window, and is accounted as
//! owned by `Owner::AllocatorMetadata`, so the statistics cover every usable
//! frame.
//!
//! Zeroed pages: a zeroed page (a demand-zero fault, a commit, a page
//! table) comes from the allocator's zeroed pool when it holds one, and is
//! zeroed here only when it does not. [`zero_idle_frames`] refills the pool
//! when there is nothing else to do (the shell's idle loop calls it), so
//! while the pool lasts no fault zeroes on its critical path
//! (docs/frame-allocator.md, "The zeroed pool").
//!
//! Recently freed frames: the allocator's LIFO of up to 64 single frames is
//! on, so a frame freed and soon needed again (reclaim freeing what the
//! next fault takes, a page table torn down and rebuilt) skips the buddy
//! merge and split. Its frames are free in every count; only the free
//! blocks by order differ until they merge, so a test that compares whole
//! statistics reads [`settled_stats`], which drains the cache first.

use super::{phys_to_virt, BootMemory};
use bootloader_api::info::MemoryRegionKind;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::{Pfn, FRAME_SIZE};
use mm::frame::{
    AllocError, Contents, FrameAllocator, FrameBlock, FrameStats, FreeFailure, Owner, ZeroedPoolCounters,
    CACHE_CAPACITY,
};
use spin::{Mutex, Once};
use x86_64::instructions::interrupts::without_interrupts;

static FRAMES: Once<Mutex<FrameAllocator<'static>>> = Once::new();

/// The usable regions as whole frames (partial frames at the edges dropped).
fn usable_ranges(boot: &BootMemory) -> impl Iterator<Item = Range<Pfn>> + '_ {
    boot.regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .map(|r| Pfn::first_at_or_after(r.start)..Pfn::containing(r.end))
        .filter(|r| r.start < r.end)
}

/// Usable frames according to the memory map: what `stats().total` must be.
pub fn usable_frames(boot: &BootMemory) -> u64 {
    usable_ranges(boot).map(|r| r.end.number() - r.start.number()).sum()
}

/// The zeroed pool holds up to 1/8 of memory: enough for a burst of
/// faults (a process touching a fresh 16 MiB at 128 MiB of RAM) without
/// zeroing, small enough that refilling it is a short idle job. Its frames
/// stay free, so the size costs only the pool's list: a word per frame.
const ZEROED_POOL_SHARE: u64 = 8;

/// Builds the allocator from the memory map (once, at boot).
pub fn init(boot: &'static BootMemory) {
    FRAMES.call_once(|| {
        let mut frames = build(boot);
        give_zeroed_pool(&mut frames);
        frames.set_cache(CACHE_CAPACITY);
        Mutex::new(frames)
    });
    ZERO_FRAME.call_once(|| {
        let block = allocate_zeroed(0, Owner::Kernel).ok()?;
        Some(block.into_raw().0)
    });
}

/// The shared zero frame: one frame of zeros, taken at boot and never
/// freed or written, that reads of read-only demand-zero pages map
/// (`mm::pte::PageKind::Zero`). None only if memory was out at boot.
static ZERO_FRAME: Once<Option<Pfn>> = Once::new();

pub fn zero_frame() -> Option<Pfn> {
    ZERO_FRAME.get().copied().flatten()
}

/// Gives the allocator its zeroed pool's list, in frames of its own
/// (accounted as allocator metadata). Without memory for it, no pool.
fn give_zeroed_pool(frames: &mut FrameAllocator<'static>) {
    let capacity = frames.stats().total / ZEROED_POOL_SHARE;
    let order = (capacity * 8).div_ceil(FRAME_SIZE).next_power_of_two().trailing_zeros() as u8;
    let Ok(block) = frames.allocate(order, Owner::AllocatorMetadata) else { return };
    let (start, _, _) = block.into_raw();
    // SAFETY: the block was just allocated to the allocator's own metadata
    // and is never freed; it is RAM mapped read-write in the physical
    // window, and this Once-guarded call is its only user.
    let storage = unsafe {
        core::slice::from_raw_parts_mut(phys_to_virt(start).as_mut_ptr::<u64>(), capacity as usize)
    };
    frames.set_zeroed_pool(storage);
}

fn build(boot: &'static BootMemory) -> FrameAllocator<'static> {
    let first = usable_ranges(boot).map(|r| r.start).min().expect("no usable memory");
    let end = usable_ranges(boot).map(|r| r.end).max().expect("no usable memory");
    let words = FrameAllocator::metadata_words(first..end);
    let meta_frames = (words as u64 * 8).div_ceil(FRAME_SIZE);
    let home = usable_ranges(boot)
        .find(|r| r.end.number() - r.start.number() >= meta_frames)
        .expect("no usable region can hold the frame allocator's metadata");
    let meta = home.start..home.start.add(meta_frames);
    // SAFETY: `meta` is usable RAM that nobody owns yet (the bootloader marks
    // what it used as non-usable), mapped read-write at the physical-memory
    // offset; it is excluded from the free ranges below, so it is never
    // handed out, and this Once-guarded call is its only user.
    let storage =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(meta.start).as_mut_ptr::<u64>(), words) };
    let mut frames = FrameAllocator::new(first..end, storage).expect("metadata sized by metadata_words");
    frames.add_allocated(meta.clone(), Owner::AllocatorMetadata).expect("metadata range");
    for range in usable_ranges(boot) {
        let rest = if range == home { meta.end..range.end } else { range };
        frames.add_free(rest).expect("usable regions do not overlap");
    }
    frames
}

/// Frames in the zeroed pool as the last call into the allocator left it:
/// a hint read without the lock, so that fault-around can tell an empty
/// pool before it walks anything (`zeroed_pool_hint`).
static ZEROED_HELD: AtomicU64 = AtomicU64::new(0);

fn with<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    // Interrupts off: a fault handler that allocates must not find the lock
    // held by the code it interrupted.
    without_interrupts(|| {
        let mut frames = FRAMES.get().expect("frames::init has run").lock();
        let result = f(&mut frames);
        ZEROED_HELD.store(frames.stats().zeroed, Ordering::Relaxed);
        result
    })
}

/// How many frames the zeroed pool held after the last allocator call (it
/// may have changed since: a hint, see [`allocate_prezeroed`]).
pub fn zeroed_pool_hint() -> u64 {
    ZEROED_HELD.load(Ordering::Relaxed)
}

pub fn allocate(order: u8, owner: Owner) -> Result<FrameBlock, AllocError> {
    with(|frames| frames.allocate(order, owner))
}

/// Like [`allocate`], with the block's memory zeroed (a single frame from
/// the zeroed pool when it has one).
pub fn allocate_zeroed(order: u8, owner: Owner) -> Result<FrameBlock, AllocError> {
    let taken = with(|frames| take(frames, order, owner, true))?;
    Ok(finish(taken))
}

/// A block from `frames`, and whether it still has to be zeroed: with
/// `zeroed`, a single frame comes from the zeroed pool when it can.
fn take(
    frames: &mut FrameAllocator<'static>,
    order: u8,
    owner: Owner,
    zeroed: bool,
) -> Result<(FrameBlock, bool), AllocError> {
    if zeroed && order == 0 {
        let (block, contents) = frames.allocate_zeroed_frame(owner)?;
        return Ok((block, contents == Contents::Unknown));
    }
    Ok((frames.allocate(order, owner)?, zeroed))
}

/// The block of [`take`], zeroed here if it has to be (outside the
/// allocator's lock: zeroing is the slow part).
fn finish((block, to_zero): (FrameBlock, bool)) -> FrameBlock {
    if to_zero {
        zero(&block);
    }
    block
}

/// Frames that process memory (data pages and page tables) may not take:
/// kept for the kernel's own needs (its heap, its page tables, DMA), so that
/// a process that exhausts memory gets an error or an out-of-memory kill,
/// while the kernel goes on. The `min` watermark: 1/64 of memory, between
/// 128 and 1024 frames.
pub fn kernel_reserve() -> u64 {
    with(|frames| reserve_of(frames.stats()))
}

fn reserve_of(stats: &FrameStats) -> u64 {
    watermarks_of(stats).min
}

/// Reclaim's watermarks for this much memory (the reserve is their `min`).
fn watermarks_of(stats: &FrameStats) -> mm::reclaim::Watermarks {
    mm::reclaim::Watermarks::for_total(stats.total)
}

/// Like [`allocate`] (zeroed when `zeroed`), but refuses to dip into the
/// kernel's reserve.
pub fn allocate_for_process(order: u8, owner: Owner, zeroed: bool) -> Result<FrameBlock, AllocError> {
    let taken = with(|frames| {
        if frames.stats().free < reserve_of(frames.stats()) + (1 << order) {
            return Err(AllocError::OutOfFrames { order });
        }
        take(frames, order, owner, zeroed)
    })?;
    Ok(finish(taken))
}

/// A process frame from the zeroed pool only, and only while free memory
/// is above reclaim's low watermark: `None` rather than zeroing a frame now
/// or pressing on memory. Fault-around's frames (`mm::vm::fault_around`):
/// a page mapped ahead of use may only spend work done in idle time.
pub fn allocate_prezeroed(owner: Owner) -> Option<FrameBlock> {
    with(|frames| {
        if frames.stats().free <= watermarks_of(frames.stats()).low {
            return None;
        }
        frames.allocate_from_zeroed_pool(owner)
    })
}

fn zero(block: &FrameBlock) {
    let bytes = (block.frames() * FRAME_SIZE) as usize;
    // SAFETY: the block was just handed to us, so nothing else uses it; it is
    // mapped read-write in the physical-memory window.
    unsafe { core::ptr::write_bytes(phys_to_virt(block.start()).as_mut_ptr::<u8>(), 0, bytes) };
}

/// Idle work: zeroes up to `limit` free frames into the zeroed pool, one
/// at a time with interrupts on (the allocator's lock is held only to
/// take and give back each frame). Returns how many it zeroed: 0 when the
/// pool is full or every free frame is in it already.
pub fn zero_idle_frames(limit: usize) -> usize {
    for done in 0..limit {
        let Some(block) = with(|frames| frames.take_for_zeroing()) else { return done };
        zero(&block);
        if let Err(failure) = with(|frames| frames.add_zeroed(block)) {
            panic!("the zeroed pool refused a frame it handed out: {}", failure.error);
        }
    }
    limit
}

/// The zeroed pool's size and hit counts.
pub fn zeroed_pool() -> ZeroedPoolCounters {
    with(|frames| frames.zeroed_pool())
}

/// Gives the zeroed pool's frames back to the buddy bitmaps (benchmarks
/// measure with an empty pool; tests compare statistics without one).
pub fn drain_zeroed_pool() {
    with(|frames| frames.drain_zeroed());
}

pub fn free(block: FrameBlock) -> Result<(), FreeFailure> {
    with(|frames| frames.free(block))
}

/// Frees several blocks under one lock (a batch of evictions); stops at
/// the first that is refused and returns it with the reason.
pub fn free_all(blocks: impl Iterator<Item = FrameBlock>) -> Result<(), FreeFailure> {
    with(|frames| blocks.into_iter().try_for_each(|block| frames.free(block)))
}

/// Free frames (the hot paths' question: one word, not a copy of every
/// counter).
pub fn free_count() -> u64 {
    with(|frames| frames.stats().free)
}

/// Free and total frames, read together (the pressure page, refreshed
/// after every fault and system call).
pub fn free_and_total() -> (u64, u64) {
    with(|frames| (frames.stats().free, frames.stats().total))
}

pub fn stats() -> FrameStats {
    with(|frames| frames.stats().clone())
}

/// The statistics with the recently-freed cache drained first: every free
/// frame merged, so two readings compare equal exactly when every frame is
/// where it was (what tests of "everything came back" compare).
pub fn settled_stats() -> FrameStats {
    with(|frames| {
        frames.drain_cache();
        frames.stats().clone()
    })
}

/// Calls `visit(first frame, order, owner)` for every allocated block
/// (the memory picture). Interrupts stay off for the whole pass.
pub fn for_each_allocated(visit: &mut dyn FnMut(Pfn, u8, Owner)) {
    with(|frames| frames.for_each_allocated(visit))
}

pub fn span() -> Range<Pfn> {
    with(|frames| frames.span())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::boot_memory;
    use mm::frame::FreeError;

    const MAGIC: u64 = 0x5041_4745_4b45_4550; // "PAGEKEEP"

    /// A frame's first two words: MAGIC and the previous frame in the chain.
    fn link(pfn: Pfn) -> *mut [u64; 3] {
        phys_to_virt(pfn).as_mut_ptr()
    }

    /// Allocates blocks of `order` until memory runs out, chaining them
    /// through physical memory (no heap needed while memory is exhausted):
    /// each block records the previous one and its own frame number, so a
    /// block handed out twice breaks the chain. Returns (chain head, count).
    fn exhaust(order: u8) -> (Option<Pfn>, u64) {
        let (mut head, mut count) = (None, 0);
        while let Ok(block) = allocate(order, Owner::Kernel) {
            assert!(block.start().is_aligned(order), "{:?}", block);
            let (pfn, _, _) = block.into_raw();
            // SAFETY: the block is ours; its first frame is mapped at the offset.
            unsafe { link(pfn).write([MAGIC, head.map_or(u64::MAX, |p: Pfn| p.number()), pfn.number()]) };
            head = Some(pfn);
            count += 1;
        }
        (head, count)
    }

    /// Walks the chain from `exhaust`, checking every record, and frees it.
    fn free_chain(mut head: Option<Pfn>, order: u8) -> u64 {
        let mut count = 0;
        while let Some(pfn) = head {
            // SAFETY: every frame in the chain is still ours and was written by `exhaust`.
            let [magic, prev, own] = unsafe { link(pfn).read() };
            assert_eq!((magic, own), (MAGIC, pfn.number()), "{pfn} was overwritten: handed out twice?");
            free(FrameBlock::from_raw(pfn, order, Owner::Kernel)).expect("chain frame frees");
            head = (prev != u64::MAX).then_some(Pfn::new(prev));
            count += 1;
        }
        count
    }

    #[test_case]
    fn statistics_cover_every_usable_frame() {
        let stats = stats();
        assert_eq!(stats.total, usable_frames(boot_memory()));
        let used: u64 = stats.used_by.iter().sum();
        assert_eq!(stats.free + used, stats.total);
        assert!(stats.used_by(Owner::AllocatorMetadata) > 0);
        assert!(stats.used_by(Owner::KernelHeap) > 0);
        assert!(stats.used_by(Owner::PageTable) > 0, "the heap's slot needed page tables");
    }

    #[test_case]
    fn every_free_frame_can_be_allocated_once_and_comes_back() {
        let before = settled_stats();
        let (head, count) = exhaust(0);
        assert_eq!(count, before.free, "allocated frames = reported free total");
        assert_eq!(stats().free, 0);
        assert_eq!(stats().used_by(Owner::Kernel), before.used_by(Owner::Kernel) + count);
        assert_eq!(free_chain(head, 0), count);
        assert_eq!(settled_stats(), before, "statistics return exactly");
    }

    #[test_case]
    fn every_2mib_run_can_be_allocated_and_comes_back() {
        let before = settled_stats();
        let (head, count) = exhaust(9);
        let possible: u64 = before.free_blocks[9..].iter().enumerate().map(|(i, n)| n << i).sum();
        assert_eq!(count, possible, "order-9 runs = free blocks of order >= 9, split");
        assert_eq!(free_chain(head, 9), count);
        assert_eq!(settled_stats(), before);
    }

    #[test_case]
    fn bad_frees_are_refused_and_change_nothing() {
        let before = settled_stats();
        let kernel_frame = Pfn::containing(boot_memory().kernel_image.start);
        let failure = free(FrameBlock::from_raw(kernel_frame, 0, Owner::Kernel)).unwrap_err();
        assert!(
            matches!(failure.error, FreeError::Reserved(_) | FreeError::NotManaged(_)),
            "{:?}",
            failure.error
        );
        let beyond = span().end.add(10);
        assert_eq!(
            free(FrameBlock::from_raw(beyond, 0, Owner::Kernel)).unwrap_err().error,
            FreeError::NotManaged(beyond)
        );

        let block = allocate(0, Owner::Kernel).unwrap();
        let pfn = block.start();
        free(block).unwrap();
        let again = free(FrameBlock::from_raw(pfn, 0, Owner::Kernel)).unwrap_err();
        assert_eq!(again.error, FreeError::DoubleFree(pfn));
        let heap_frame = allocate(0, Owner::KernelHeap).unwrap();
        let hp = heap_frame.start();
        let wrong = free(FrameBlock::from_raw(hp, 0, Owner::Process)).unwrap_err();
        assert!(matches!(wrong.error, FreeError::WrongOwner { .. }));
        free(heap_frame).unwrap();
        assert_eq!(settled_stats(), before);
    }

    /// Every free frame is written first (the chain of `exhaust`), so a
    /// frame the idle pass did not really zero would show it.
    #[test_case]
    fn idle_zeroing_fills_the_pool_and_zeroed_requests_get_zero_pages_from_it() {
        drain_zeroed_pool();
        let (head, count) = exhaust(0);
        assert_eq!(free_chain(head, 0), count);
        // The list of frames taken, allocated before the snapshot (its
        // kernel-heap growth is not the pool's doing).
        let mut taken = alloc::vec::Vec::with_capacity((stats().total / 8) as usize);
        let before = settled_stats();
        let pool = zeroed_pool();
        assert!(pool.capacity >= before.total / 8 - 1 && pool.held == 0, "{pool}");
        assert_eq!(zero_idle_frames(usize::MAX), pool.capacity as usize, "fills up to capacity");
        assert_eq!(zero_idle_frames(8), 0, "then has nothing to do");
        assert_eq!((stats().free, stats().zeroed), (before.free, pool.capacity), "pool frames stay free");
        for _ in 0..pool.capacity {
            let block = allocate_for_process(0, Owner::Process, true).expect("a zeroed frame");
            let words = phys_to_virt(block.start()).as_ptr::<[u64; 512]>();
            // SAFETY: the frame was just handed to us; it is RAM in the physical window.
            assert!(unsafe { &*words }.iter().all(|&w| w == 0), "{} is not zero", block.start());
            taken.push(block);
        }
        let after = zeroed_pool();
        assert_eq!((after.held, after.hits - pool.hits, after.misses), (0, pool.capacity, pool.misses));
        for block in taken {
            free(block).unwrap();
        }
        assert_eq!(settled_stats(), before, "statistics return exactly");
    }

    #[test_case]
    fn a_freed_frame_waits_in_the_recently_freed_cache_and_is_the_next_one_handed_out() {
        let before = settled_stats();
        let block = allocate(0, Owner::Kernel).unwrap();
        let (pfn, held) = (block.start(), stats());
        free(block).unwrap();
        let cached = stats();
        assert_eq!((cached.free, cached.cached), (before.free, 1), "free in the counts, parked in the cache");
        assert_eq!(cached.free_blocks, held.free_blocks, "in no bitmap until drained");
        let again = allocate(0, Owner::Process).unwrap();
        assert_eq!(again.start(), pfn, "the next single frame is the one freed last");
        assert_eq!(stats().cached, 0);
        free(again).unwrap();
        assert_eq!(settled_stats(), before, "drained, it merged back");
    }

    #[test_case]
    fn allocator_built_from_the_real_memory_map_keeps_its_invariants() {
        let block = allocate(3, Owner::Kernel).unwrap();
        let checked = without_interrupts(|| FRAMES.get().unwrap().lock().verify());
        free(block).unwrap();
        assert_eq!(checked, Ok(()));
    }
}
