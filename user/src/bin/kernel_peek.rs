//! Reads kernel memory from ring 3: the page is mapped, but kernel-only, so
//! the access faults and the kernel must kill this process.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use pkrt::println;

fn main() -> i32 {
    println!("kernel_peek: reading 0xffff800000000000");
    // SAFETY: not safe: the point is the protection fault.
    let value = unsafe { core::ptr::read_volatile(0xffff_8000_0000_0000 as *const u64) };
    println!("kernel_peek: read {value:#x} (wrong)");
    0
}

pkrt::entry!(main);
