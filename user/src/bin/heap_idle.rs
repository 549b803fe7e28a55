//! Fills its heap with ARG MiB (default 4, at most 60) of small blocks,
//! frees them all, and then idles for good (yielding), its free heap pages
//! still resident: the process the shell's `scavenge PID` and `kill PID`
//! are shown on.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use pkrt::{println, sys};

const BLOCK: usize = 2048;
/// The most it takes: the blocks, and the vector that holds them, must fit
/// the heap's arena (64 MiB of blocks would not, with the vector beside them).
const MAX_MIB: u64 = (pkrt::heap::ARENA_BYTES >> 20) as u64 - 4;

fn main(arg: u64) -> i32 {
    let mib = if arg == 0 { 4 } else { arg.min(MAX_MIB) } as usize;
    let blocks: Vec<Box<[u8]>> =
        (0..(mib << 20) / BLOCK).map(|i| alloc::vec![i as u8; BLOCK].into_boxed_slice()).collect();
    let full = sys::memstats().resident_pages;
    drop(blocks);
    let freed = sys::memstats().resident_pages;
    println!(
        "heap_idle: {mib} MiB of blocks freed; resident {full} pages full, {freed} after the free; idling"
    );
    loop {
        sys::yield_now();
    }
}

pkrt::entry!(with_arg main);
