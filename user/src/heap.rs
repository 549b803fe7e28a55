//! The process's global allocator: Pagekeeper's heap (the `heap` crate) on
//! three system calls. A double free or a foreign pointer is reported and
//! ends the process with [`HEAP_ERROR_EXIT`].

use crate::sys;
use abi::PROT_WRITE;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use heap::{Heap, HeapConfig, Kernel};

/// Exit code of a process whose heap refused a free.
pub const HEAP_ERROR_EXIT: i32 = 3;

/// The heap's view of the kernel.
pub struct SysKernel;

// SAFETY: reserve returns fresh demand-zero memory of this process that
// nothing else uses until release (reserve_growable: read-only until grow
// makes it writable); decommit makes pages read zero.
unsafe impl Kernel for SysKernel {
    fn reserve(&mut self, len: usize) -> Option<usize> {
        sys::reserve(len as u64, PROT_WRITE).ok().map(|a| a as usize)
    }

    fn reserve_growable(&mut self, len: usize) -> Option<usize> {
        // Read-only: no commit charge until the heap grows into it.
        sys::reserve(len as u64, 0).ok().map(|a| a as usize)
    }

    fn grow(&mut self, addr: usize, len: usize) -> bool {
        sys::protect(addr as u64, len as u64, PROT_WRITE).is_ok()
    }

    fn release(&mut self, addr: usize, len: usize) {
        sys::release(addr as u64, len as u64).expect("release of a heap region");
    }

    fn decommit(&mut self, addr: usize, len: usize) {
        sys::decommit(addr as u64, len as u64).expect("decommit of heap pages");
    }
}

struct ProcessHeap(UnsafeCell<Option<Heap<SysKernel>>>);

// SAFETY: Pagekeeper processes are single-threaded and the kernel never
// calls into user code, so there is never concurrent access.
unsafe impl Sync for ProcessHeap {}

#[global_allocator]
static HEAP: ProcessHeap = ProcessHeap(UnsafeCell::new(None));

/// Runs `f` on the process heap, creating it on first use.
pub fn with_heap<R>(f: impl FnOnce(&mut Heap<SysKernel>) -> R) -> R {
    // SAFETY: single-threaded (see ProcessHeap), and no caller re-enters
    // with_heap from inside `f`.
    let slot = unsafe { &mut *HEAP.0.get() };
    let heap = slot.get_or_insert_with(|| {
        let config = HeapConfig { arena: 64 << 20, large_slots: 1024 };
        Heap::new(SysKernel, config).expect("address space for the heap")
    });
    f(heap)
}

/// Hands free heap pages back to the kernel; returns the bytes.
pub fn scavenge() -> usize {
    with_heap(|h| h.scavenge_to_kernel(heap::PAGE))
}

fn refused(error: heap::HeapError) -> ! {
    crate::println!("heap error: {error}");
    sys::exit(HEAP_ERROR_EXIT)
}

// SAFETY: blocks come from Pagekeeper's heap, which returns distinct blocks
// of at least the requested size and alignment.
unsafe impl GlobalAlloc for ProcessHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        with_heap(|h| h.allocate(layout.size(), layout.align()))
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        with_heap(|h| h.allocate_zeroed(layout.size(), layout.align()))
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _: Layout) {
        let Some(ptr) = NonNull::new(ptr) else { return };
        if let Err(e) = with_heap(|h| h.free(ptr)) {
            refused(e);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else { return core::ptr::null_mut() };
        match with_heap(|h| h.reallocate(ptr, new_size, layout.align())) {
            Ok(new) => new.map_or(core::ptr::null_mut(), NonNull::as_ptr),
            Err(e) => refused(e),
        }
    }
}
