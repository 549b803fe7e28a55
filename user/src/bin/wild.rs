//! Writes through a wild pointer: the kernel must kill this process with a
//! report and keep everything else running.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use pkrt::println;

fn main() -> i32 {
    let _scratch = alloc::vec![1u8; 10_000]; // some memory to free on kill
    println!("wild: writing to 0x5555dead0000");
    // SAFETY: not safe at all; this is the bug under test.
    unsafe { core::ptr::write_volatile(0x5555_dead_0000 as *mut u64, 42) };
    println!("wild: still alive (wrong)");
    0
}

extern crate alloc;
pkrt::entry!(main);
