//! The kernel heap: `linked_list_allocator` behind `alloc`'s global
//! allocator, in a 512 GiB kernel-half slot of its own, growing on demand and
//! giving whole free pages back.
//!
//! It starts with [`INITIAL_HEAP_SIZE`] mapped. When an allocation does not
//! fit, the heap first maps frames again under pages it gave back earlier
//! (a run of them long enough for the allocation), else maps fresh frames
//! (`Owner::KernelHeap`) at its top, at least [`GROW_STEP`] at a time, up to
//! [`MAX_HEAP_SIZE`] of address space; then the allocation is retried.
//!
//! Giving back ([`trim`]) works *through* the allocator, which has no API to
//! shrink: the heap allocates whole, page-aligned free pages from itself, so
//! that it will never hand them out, unmaps them and frees their frames. A
//! bitmap records these *lent* pages. Growing maps them again and
//! deallocates them into the heap, where they merge with their neighbours.
//!
//! ```text
//!  bottom                                                         top
//!  | used | free | lent lent lent | used | free  | lent | free |
//!           ^ mapped, reusable     ^ unmapped: frames are back in the
//!                                    frame allocator; "used" to the allocator
//! ```
//!
//! Invariant: a page is lent exactly when its bit is set; a lent page is
//! unmapped and is one live 4 KiB allocation of the underlying heap. So
//! `used - lent` is what the kernel really holds and `size - lent` is what is
//! mapped.

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
/// Free heap memory [`trim_slack`] keeps mapped, so that a process exiting
/// and another starting do not unmap and map the same pages each time.
pub const TRIM_SLACK: usize = 512 * 1024;
const PAGE: usize = mm::paging::PAGE_SIZE as usize;
const MAX_PAGES: usize = MAX_HEAP_SIZE / PAGE;
const PAGE_LAYOUT: Layout = match Layout::from_size_align(PAGE, PAGE) {
    Ok(layout) => layout,
    Err(_) => panic!("a page is a valid layout"),
};

/// Which heap pages are lent out (unmapped, frame returned).
struct LentPages {
    bits: [u64; MAX_PAGES / 64],
    count: usize,
}

impl LentPages {
    fn is_lent(&self, page: usize) -> bool {
        self.bits[page / 64] & (1 << (page % 64)) != 0
    }

    fn set(&mut self, page: usize, lent: bool) {
        debug_assert_ne!(self.is_lent(page), lent);
        if lent {
            self.bits[page / 64] |= 1 << (page % 64);
            self.count += 1;
        } else {
            self.bits[page / 64] &= !(1 << (page % 64));
            self.count -= 1;
        }
    }

    /// The first run of at least `pages` lent pages below `limit`.
    fn find_run(&self, pages: usize, limit: usize) -> Option<usize> {
        let (mut start, mut run, mut page) = (0, 0, 0);
        while page < limit {
            if page % 64 == 0 && self.bits[page / 64] == 0 {
                (run, page) = (0, page + 64); // nothing lent in this word
                continue;
            }
            if self.is_lent(page) {
                if run == 0 {
                    start = page;
                }
                run += 1;
                if run == pages {
                    return Some(start);
                }
            } else {
                run = 0;
            }
            page += 1;
        }
        None
    }
}

struct State {
    heap: Heap,
    lent: LentPages,
}

pub struct GrowingHeap {
    state: Mutex<State>,
}

#[global_allocator]
static HEAP: GrowingHeap = GrowingHeap {
    state: Mutex::new(State { heap: Heap::empty(), lent: LentPages { bits: [0; MAX_PAGES / 64], count: 0 } }),
};

#[derive(Debug)]
pub enum GrowError {
    LimitReached,
    OutOfFrames,
}

/// Maps the initial heap in a free kernel slot (once, at boot, after the
/// frame allocator).
pub fn init() {
    let start = kernel_pages::free_kernel_slot();
    let mut state = HEAP.state.lock();
    assert_eq!(map_pages(start, INITIAL_HEAP_SIZE), INITIAL_HEAP_SIZE, "memory for the initial kernel heap");
    // SAFETY: the range was just mapped read-write and belongs to the heap alone.
    unsafe { state.heap.init(start.as_mut_ptr(), INITIAL_HEAP_SIZE) };
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

impl State {
    fn page_address(&self, page: usize) -> VirtAddr {
        VirtAddr::from_ptr(self.heap.bottom()) + (page * PAGE) as u64
    }

    fn page_index(&self, ptr: NonNull<u8>) -> usize {
        (ptr.as_ptr() as usize - self.heap.bottom() as usize) / PAGE
    }

    /// Makes room for `layout`: lent pages mapped again if a long enough run
    /// exists, else fresh pages at the top.
    fn grow(&mut self, layout: Layout) -> Result<(), GrowError> {
        let needed = (layout.size() + layout.align()).next_multiple_of(PAGE);
        let limit = self.heap.size() / PAGE;
        if let Some(first) = self.lent.find_run(needed / PAGE, limit) {
            return self.return_lent(first, needed / PAGE);
        }
        let wanted = needed.max(GROW_STEP);
        if self.heap.size() + wanted > MAX_HEAP_SIZE {
            return Err(GrowError::LimitReached);
        }
        let top = VirtAddr::from_ptr(self.heap.top());
        let mapped = map_pages(top, wanted);
        if mapped > 0 {
            // SAFETY: [top, top + mapped) was just mapped read-write, directly
            // above the heap, and nothing else uses it. (A partial grow is kept:
            // it is usable memory, and the next grow starts above it.)
            unsafe { self.heap.extend(mapped) };
        }
        if mapped < wanted {
            return Err(GrowError::OutOfFrames);
        }
        Ok(())
    }

    /// Maps `pages` lent pages from `first` again and frees them into the heap.
    fn return_lent(&mut self, first: usize, pages: usize) -> Result<(), GrowError> {
        for page in first..first + pages {
            let address = self.page_address(page);
            if map_pages(address, PAGE) < PAGE {
                return Err(GrowError::OutOfFrames);
            }
            self.lent.set(page, false);
            // SAFETY: the page was allocated from this heap with PAGE_LAYOUT
            // when it was lent, and is mapped again.
            unsafe {
                self.heap.deallocate(NonNull::new(address.as_mut_ptr()).expect("heap page"), PAGE_LAYOUT)
            };
        }
        Ok(())
    }

    /// Lends whole free pages while more than `keep` bytes are free.
    fn trim(&mut self, keep: usize) -> usize {
        let mut lent = 0;
        while self.heap.free() > keep + PAGE {
            let Ok(ptr) = self.heap.allocate_first_fit(PAGE_LAYOUT) else { break };
            let page = self.page_index(ptr);
            let frame = kernel_pages::unmap_kernel_page(VirtAddr::from_ptr(ptr.as_ptr()))
                .expect("every heap page that is not lent is mapped");
            frames::free(frame).expect("a heap frame goes back to the frame allocator");
            self.lent.set(page, true);
            lent += 1;
        }
        lent
    }
}

// SAFETY: allocation and deallocation go through the locked linked-list heap,
// which returns non-overlapping blocks that fit the layout; lent pages are
// live allocations of that heap, so they are never handed out.
unsafe impl GlobalAlloc for GrowingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        without_interrupts(|| {
            let mut state = self.state.lock();
            loop {
                if let Ok(block) = state.heap.allocate_first_fit(layout) {
                    return block.as_ptr();
                }
                if state.grow(layout).is_err() {
                    return core::ptr::null_mut();
                }
            }
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller (alloc's contract) passes a pointer this heap
        // returned for `layout`, so it is non-null and ours.
        without_interrupts(|| unsafe {
            self.state.lock().heap.deallocate(NonNull::new_unchecked(ptr), layout)
        })
    }
}

/// Gives every whole free page back to the frame allocator; returns how many.
pub fn trim() -> usize {
    without_interrupts(|| HEAP.state.lock().trim(0))
}

/// Gives whole free pages back while more than [`TRIM_SLACK`] is free (after
/// a process ends, and after large releases).
pub fn trim_slack() -> usize {
    without_interrupts(|| {
        let mut state = HEAP.state.lock();
        if state.heap.free() > 2 * TRIM_SLACK {
            state.trim(TRIM_SLACK)
        } else {
            0
        }
    })
}

/// What the heap holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapUsage {
    /// The heap's lowest address.
    pub start: usize,
    /// Bytes handed out to kernel code.
    pub used: usize,
    /// Bytes backed by frames (what the heap costs in memory).
    pub mapped: usize,
    /// Pages given back to the frame allocator.
    pub lent_pages: usize,
}

pub fn usage() -> HeapUsage {
    without_interrupts(|| {
        let state = HEAP.state.lock();
        let lent = state.lent.count * PAGE;
        HeapUsage {
            start: state.heap.bottom() as usize,
            used: state.heap.used() - lent,
            mapped: state.heap.size() - lent,
            lent_pages: state.lent.count,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test_case]
    fn heap_grows_well_past_its_initial_size_and_reuses_freed_memory() {
        let heap_frames_before = frames::stats().used_by(Owner::KernelHeap);
        let used_before = usage().used;
        let big = 8 * 1024 * 1024; // 32x the initial heap
        let mut v: Vec<u8> = Vec::with_capacity(big);
        v.resize(big, 0xa5);
        assert!(v.iter().step_by(4096).all(|&b| b == 0xa5));
        assert!(usage().mapped >= big, "heap maps {} bytes", usage().mapped);
        let grown = frames::stats().used_by(Owner::KernelHeap) - heap_frames_before;
        assert!(grown >= (big / PAGE) as u64, "only {grown} frames were mapped");
        drop(v);
        assert_eq!(usage().used, used_before, "everything freed");
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

    #[test_case]
    fn trim_gives_whole_free_pages_back_and_growth_takes_them_again() {
        trim();
        let frames_before = frames::stats().used_by(Owner::KernelHeap);
        let mapped_before = usage().mapped;
        // Grow by 4 MiB of small blocks, free them, trim: back where we were.
        let boxes: Vec<alloc::boxed::Box<[u8; 1000]>> =
            (0..4096).map(|_| alloc::boxed::Box::new([7; 1000])).collect();
        let grown = frames::stats().used_by(Owner::KernelHeap) - frames_before;
        assert!(grown >= 1000, "grew by {grown} frames");
        drop(boxes);
        let lent = trim();
        assert!(lent as u64 >= grown, "lent {lent} of {grown}");
        assert_eq!(frames::stats().used_by(Owner::KernelHeap), frames_before, "every grown frame returned");
        assert_eq!(usage().mapped, mapped_before);
        // Allocating again maps lent pages (a run long enough) before the top.
        let size_before = without_interrupts(|| HEAP.state.lock().heap.size());
        let v: Vec<u8> = alloc::vec![9; 2 * 1024 * 1024];
        assert!(v.iter().all(|&b| b == 9));
        assert_eq!(without_interrupts(|| HEAP.state.lock().heap.size()), size_before, "no growth at the top");
        drop(v);
        trim();
        assert_eq!(frames::stats().used_by(Owner::KernelHeap), frames_before);
    }
}
