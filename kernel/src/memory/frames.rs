//! The kernel's physical frame allocator: `mm::frame::FrameAllocator` (the
//! algorithm, host-tested) over the bootloader's memory map, behind a lock.
//!
//! Its metadata (≈2.3 bytes per frame) lives in the first usable region large
//! enough, reached through the physical-memory window, and is accounted as
//! owned by `Owner::AllocatorMetadata`, so the statistics cover every usable
//! frame.

use super::{phys_to_virt, BootMemory};
use bootloader_api::info::MemoryRegionKind;
use core::ops::Range;
use mm::addr::{Pfn, FRAME_SIZE};
use mm::frame::{AllocError, FrameAllocator, FrameBlock, FrameStats, FreeFailure, Owner};
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

/// Builds the allocator from the memory map (once, at boot).
pub fn init(boot: &'static BootMemory) {
    FRAMES.call_once(|| Mutex::new(build(boot)));
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

fn with<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    // Interrupts off: a fault handler that allocates must not find the lock
    // held by the code it interrupted.
    without_interrupts(|| f(&mut FRAMES.get().expect("frames::init has run").lock()))
}

pub fn allocate(order: u8, owner: Owner) -> Result<FrameBlock, AllocError> {
    with(|frames| frames.allocate(order, owner))
}

/// Like [`allocate`], with the block's memory zeroed.
pub fn allocate_zeroed(order: u8, owner: Owner) -> Result<FrameBlock, AllocError> {
    let block = allocate(order, owner)?;
    zero(&block);
    Ok(block)
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
    mm::reclaim::Watermarks::for_total(stats.total).min
}

/// Like [`allocate`] (zeroed when `zeroed`), but refuses to dip into the
/// kernel's reserve.
pub fn allocate_for_process(order: u8, owner: Owner, zeroed: bool) -> Result<FrameBlock, AllocError> {
    let block = with(|frames| {
        if frames.stats().free < reserve_of(frames.stats()) + (1 << order) {
            return Err(AllocError::OutOfFrames { order });
        }
        frames.allocate(order, owner)
    })?;
    if zeroed {
        zero(&block);
    }
    Ok(block)
}

fn zero(block: &FrameBlock) {
    let bytes = (block.frames() * FRAME_SIZE) as usize;
    // SAFETY: the block was just handed to us, so nothing else uses it; it is
    // mapped read-write in the physical-memory window.
    unsafe { core::ptr::write_bytes(phys_to_virt(block.start()).as_mut_ptr::<u8>(), 0, bytes) };
}

pub fn free(block: FrameBlock) -> Result<(), FreeFailure> {
    with(|frames| frames.free(block))
}

pub fn stats() -> FrameStats {
    with(|frames| frames.stats().clone())
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
        let before = stats();
        let (head, count) = exhaust(0);
        assert_eq!(count, before.free, "allocated frames = reported free total");
        assert_eq!(stats().free, 0);
        assert_eq!(stats().used_by(Owner::Kernel), before.used_by(Owner::Kernel) + count);
        assert_eq!(free_chain(head, 0), count);
        assert_eq!(stats(), before, "statistics return exactly");
    }

    #[test_case]
    fn every_2mib_run_can_be_allocated_and_comes_back() {
        let before = stats();
        let (head, count) = exhaust(9);
        let possible: u64 = before.free_blocks[9..].iter().enumerate().map(|(i, n)| n << i).sum();
        assert_eq!(count, possible, "order-9 runs = free blocks of order >= 9, split");
        assert_eq!(free_chain(head, 9), count);
        assert_eq!(stats(), before);
    }

    #[test_case]
    fn bad_frees_are_refused_and_change_nothing() {
        let before = stats();
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
        assert_eq!(stats(), before);
    }

    #[test_case]
    fn allocator_built_from_the_real_memory_map_keeps_its_invariants() {
        let block = allocate(3, Owner::Kernel).unwrap();
        let checked = without_interrupts(|| FRAMES.get().unwrap().lock().verify());
        free(block).unwrap();
        assert_eq!(checked, Ok(()));
    }
}
