//! The kernel heap: `linked_list_allocator` behind `alloc`'s global
//! allocator, in a 512 GiB kernel-half slot of its own, growing on demand.
//!
//! It starts with [`INITIAL_HEAP_SIZE`] mapped. When an allocation does not
//! fit, the heap maps more frames (`Owner::KernelHeap`) at its top and
//! extends itself, at least [`GROW_STEP`] at a time, up to [`MAX_HEAP_SIZE`];
//! then the allocation is retried. Freed heap memory stays mapped and is
//! reused by later allocations.

use super::{frames, kernel_pages};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use mm::frame::Owner;
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::VirtAddr;

pub const INITIAL_HEAP_SIZE: usize = 256 * 1024;
pub const GROW_STEP: usize = 64 * 1024;
pub const MAX_HEAP_SIZE: usize = 1 << 30;
const PAGE: usize = 4096;

pub struct GrowingHeap {
    heap: Mutex<Heap>,
}

#[global_allocator]
static HEAP: GrowingHeap = GrowingHeap { heap: Mutex::new(Heap::empty()) };

#[derive(Debug)]
pub enum GrowError {
    LimitReached,
    OutOfFrames,
}

/// Maps the initial heap in a free kernel slot (once, at boot, after the
/// frame allocator).
pub fn init() {
    let start = kernel_pages::free_kernel_slot();
    let mut heap = HEAP.heap.lock();
    assert_eq!(map_pages(start, INITIAL_HEAP_SIZE), INITIAL_HEAP_SIZE, "memory for the initial kernel heap");
    // SAFETY: the range was just mapped read-write and belongs to the heap alone.
    unsafe { heap.init(start.as_mut_ptr(), INITIAL_HEAP_SIZE) };
}

/// Maps up to `bytes` of fresh frames at `start`; returns how many bytes it
/// mapped (less when frames run out).
fn map_pages(start: VirtAddr, bytes: usize) -> usize {
    for offset in (0..bytes).step_by(PAGE) {
        let Ok(frame) = frames::allocate(0, Owner::KernelHeap) else { return offset };
        if let Err((_, frame)) = kernel_pages::map_kernel_page(start + offset as u64, frame) {
            frames::free(frame).expect("an unmapped heap frame goes back");
            return offset;
        }
    }
    bytes
}

/// Maps enough new pages at the top of `heap` for `layout` and extends it.
fn grow(heap: &mut Heap, layout: Layout) -> Result<(), GrowError> {
    let wanted = (layout.size() + layout.align()).max(GROW_STEP).next_multiple_of(PAGE);
    if heap.size() + wanted > MAX_HEAP_SIZE {
        return Err(GrowError::LimitReached);
    }
    let top = VirtAddr::from_ptr(heap.top());
    let mapped = map_pages(top, wanted);
    if mapped > 0 {
        // SAFETY: [top, top + mapped) was just mapped read-write, directly
        // above the heap, and nothing else uses it. (A partial grow is kept:
        // it is usable memory, and the next grow starts above it.)
        unsafe { heap.extend(mapped) };
    }
    if mapped < wanted {
        return Err(GrowError::OutOfFrames);
    }
    Ok(())
}

// SAFETY: allocation and deallocation go through the locked linked-list heap,
// which returns non-overlapping blocks that fit the layout.
unsafe impl GlobalAlloc for GrowingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        without_interrupts(|| {
            let mut heap = self.heap.lock();
            loop {
                if let Ok(block) = heap.allocate_first_fit(layout) {
                    return block.as_ptr();
                }
                if grow(&mut heap, layout).is_err() {
                    return core::ptr::null_mut();
                }
            }
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller (alloc's contract) passes a pointer this heap
        // returned for `layout`, so it is non-null and ours.
        without_interrupts(|| unsafe { self.heap.lock().deallocate(NonNull::new_unchecked(ptr), layout) })
    }
}

/// Bytes handed out and bytes the heap spans (both grow; size never shrinks).
pub fn usage() -> (usize, usize) {
    without_interrupts(|| {
        let heap = HEAP.heap.lock();
        (heap.used(), heap.size())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test_case]
    fn heap_grows_well_past_its_initial_size_and_reuses_freed_memory() {
        let heap_frames_before = frames::stats().used_by(Owner::KernelHeap);
        let (used_before, _) = usage();
        let big = 8 * 1024 * 1024; // 32x the initial heap
        let mut v: Vec<u8> = Vec::with_capacity(big);
        v.resize(big, 0xa5);
        assert!(v.iter().step_by(4096).all(|&b| b == 0xa5));
        let (_, size) = usage();
        assert!(size >= INITIAL_HEAP_SIZE + big, "heap spans {size} bytes");
        let grown = frames::stats().used_by(Owner::KernelHeap) - heap_frames_before;
        assert!(grown >= (big / PAGE) as u64, "only {grown} frames were mapped");
        drop(v);
        assert_eq!(usage().0, used_before, "everything freed");
        // The grown memory is reused, not mapped again.
        let again: Vec<u8> = Vec::with_capacity(big);
        assert_eq!(frames::stats().used_by(Owner::KernelHeap) - heap_frames_before, grown);
        drop(again);
    }

    #[test_case]
    fn many_small_allocations_survive_growth() {
        let boxes: Vec<alloc::boxed::Box<[u64; 8]>> =
            (0..20_000u64).map(|i| alloc::boxed::Box::new([i; 8])).collect();
        assert!(boxes.iter().enumerate().all(|(i, b)| b.iter().all(|&x| x == i as u64)));
    }
}
