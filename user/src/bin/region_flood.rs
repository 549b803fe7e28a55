//! Floods the kernel with one-page regions until it says no. With argument
//! 1 it first takes every frame it can get (a large region committed page by
//! page), so that the region records must come from a kernel that is out of
//! memory. Exits 0 when the flood ended with `NoMemory` (the limit, or no
//! memory) and everything could be given back; 1 otherwise.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use abi::{Error, NO_RESERVE, PROT_WRITE};
use alloc::vec;
use pkrt::{println, sys};

const PAGE: u64 = abi::PAGE_SIZE;

/// More than the kernel's region limit.
const MAX: usize = 20_000;

fn main(exhaust_first: u64) -> i32 {
    // Room for every address, taken (and touched) before anything else: the
    // heap needs regions and frames too, and there will be none left.
    let mut starts = vec![0u64; MAX];
    for i in (0..MAX).step_by(512) {
        // SAFETY: an element of our own vector; written so that its pages
        // are brought in now (fresh heap pages are demand-zero).
        unsafe { core::ptr::write_volatile(&mut starts[i], 1) };
    }
    let mut hog = (0, 0);
    if exhaust_first == 1 {
        let len = 1 << 30;
        let start = sys::reserve(len, PROT_WRITE | NO_RESERVE).expect("reserve 1 GiB");
        let mut committed = 0;
        while committed < len && sys::commit(start + committed, 64 * PAGE).is_ok() {
            committed += 64 * PAGE;
        }
        println!("region_flood: took {} MiB of frames first", committed >> 20);
        hog = (start, len);
    }
    let mut count = 0;
    let error = loop {
        if count == MAX {
            break Error::Invalid; // the kernel's limit should have come first
        }
        match sys::reserve(PAGE, PROT_WRITE) {
            Ok(start) => {
                starts[count] = start;
                count += 1;
            }
            Err(e) => break e,
        }
    };
    println!("region_flood: {count} regions, then {error:?}");
    if error != Error::NoMemory {
        return 1;
    }
    let released = starts[..count].iter().filter(|&&start| sys::release(start, PAGE).is_ok()).count();
    if hog.1 != 0 {
        let _ = sys::release(hog.0, hog.1);
    }
    println!("region_flood: released {released} of {count}");
    if released == count {
        0
    } else {
        1
    }
}

pkrt::entry!(with_arg main);
