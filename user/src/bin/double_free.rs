//! Frees the same block twice: the heap must refuse with a clear error
//! (the runtime then exits with pkrt::heap::HEAP_ERROR_EXIT).
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::alloc::{alloc, dealloc, Layout};
use pkrt::println;

fn main() -> i32 {
    let layout = Layout::from_size_align(64, 16).unwrap();
    // SAFETY: the first dealloc is correct; the second is the bug under test.
    unsafe {
        let p = alloc(layout);
        let keep = alloc(layout); // keeps the span in use
        dealloc(p, layout);
        println!("double_free: freeing {p:p} again");
        dealloc(p, layout);
        dealloc(keep, layout);
    }
    println!("double_free: not stopped (wrong)");
    0
}

pkrt::entry!(main);
