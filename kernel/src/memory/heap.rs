//! The kernel heap: `linked_list_allocator` behind `alloc`'s global allocator.
//!
//! For now it is a fixed arena in the kernel's .bss; the frame allocator makes
//! it grow on demand.

use linked_list_allocator::LockedHeap;

pub const INITIAL_HEAP_SIZE: usize = 1024 * 1024;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

#[repr(C, align(4096))]
struct Arena([u8; INITIAL_HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; INITIAL_HEAP_SIZE]);

pub fn init() {
    // SAFETY: ARENA is used by nothing but the heap, and init runs once at
    // boot before any allocation (a second call would re-initialise a live
    // heap, which the Once in lib::init prevents).
    unsafe { HEAP.lock().init(core::ptr::addr_of_mut!(ARENA) as *mut u8, INITIAL_HEAP_SIZE) };
}

/// Bytes currently handed out and bytes the heap holds in all.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.used(), heap.size())
}
