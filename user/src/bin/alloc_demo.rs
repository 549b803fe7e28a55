//! Allocates, frees most of it, and scavenges: resident memory (as the
//! kernel counts it) must drop by the freed pages, and memory allocated
//! again in the scavenged range must read zero. Exit 0 when all held.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use pkrt::{heap, println, sys};

fn main() -> i32 {
    let start = sys::memstats();
    let mut blocks: Vec<Box<[u8]>> =
        (0..3000).map(|i| alloc::vec![(i % 251) as u8; 64 + (i * 97) % 4000].into_boxed_slice()).collect();
    let big = alloc::vec![7u8; 300_000]; // a large block: its own region
    let full = sys::memstats();
    println!("alloc_demo: {} blocks, resident {} pages", blocks.len() + 1, full.resident_pages);
    // Keep one block in ten; drop the large one.
    let mut i = 0;
    blocks.retain(|_| {
        i += 1;
        i % 10 == 0
    });
    drop(big);
    let freed = sys::memstats();
    let scavenged = heap::scavenge();
    let after = sys::memstats();
    println!(
        "alloc_demo: resident {} pages after free, {} after scavenge ({} KiB handed back)",
        freed.resident_pages,
        after.resident_pages,
        scavenged / 1024
    );
    let kept_ok = blocks.iter().all(|b| b.iter().all(|&x| x == b[0]));
    let zeroed: Vec<u64> = alloc::vec![0; 50_000];
    let zero_ok = zeroed.iter().all(|&x| x == 0);
    let dropped = freed.resident_pages.saturating_sub(after.resident_pages);
    // Scavenge hands back pages with only free blocks; residency drops by at
    // most that (a page the heap counted as used may never have been
    // touched: the rounded-up tail of a block) and, here, by at least 90 %.
    let handed_back = scavenged as u64 / abi::PAGE_SIZE;
    let ok = kept_ok
        && zero_ok
        && handed_back > 0
        && dropped <= handed_back
        && dropped * 10 >= handed_back * 9
        && after.resident_pages > start.resident_pages;
    println!("alloc_demo: kept blocks intact {kept_ok}, zeroed memory reads zero {zero_ok}, resident dropped by {dropped} pages");
    if ok {
        0
    } else {
        1
    }
}

pkrt::entry!(main);
