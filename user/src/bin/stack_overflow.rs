//! Recurses until the stack runs into its guard page: killed, "guard page".
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::hint::black_box;
use pkrt::println;

#[allow(unconditional_recursion)] // the overflow is the point
fn deeper(n: u64) -> u64 {
    let frame = black_box([n; 64]);
    frame[0] + deeper(n + 1)
}

fn main() -> i32 {
    println!("stack_overflow: recursing");
    deeper(0) as i32
}

pkrt::entry!(main);
