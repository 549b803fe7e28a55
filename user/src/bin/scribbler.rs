//! Writes garbage over the whole part of its heap arena in use (every block
//! and past it), then keeps allocating and freeing: the heap's metadata is
//! elsewhere, so everything must still work. Exit 0 when it did.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::vec::Vec;
use pkrt::{heap, println};

fn main() -> i32 {
    let mut blocks: Vec<Vec<u8>> = (0..500).map(|i| alloc::vec![1u8; 16 + (i * 37) % 2000]).collect();
    blocks.truncate(250);
    let used = heap::with_heap(|h| h.arena_in_use());
    println!("scribbler: writing 0xee over {:#x}..{:#x}", used.start, used.end);
    // SAFETY: not safe for the data (that is the point); the heap keeps no
    // metadata in the arena, so only our own blocks' contents change.
    unsafe { core::ptr::write_bytes(used.start as *mut u8, 0xee, used.len()) };
    core::mem::forget(blocks); // their contents are garbage now; never freed
    let mut fresh: Vec<Vec<u8>> = Vec::new();
    for i in 0..2000usize {
        fresh.push(alloc::vec![(i % 200) as u8; 16 + (i * 53) % 3000]);
        if i % 3 == 0 {
            fresh.swap_remove(i % fresh.len());
        }
    }
    let intact = fresh.iter().all(|v| v.iter().all(|&x| x == v[0]));
    println!("scribbler: {} blocks allocated after scribbling, all intact: {intact}", fresh.len());
    if intact {
        0
    } else {
        1
    }
}

pkrt::entry!(main);
