//! Reserves 63 GiB, touches four pages far apart, then protects,
//! decommits and releases the whole range: each call must cost what is
//! populated (a few page tables), not what is reserved. Exits 0 when every
//! call succeeded and the touched pages read back.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use abi::{NO_RESERVE, PROT_WRITE};
use pkrt::{println, sys};

const GIB: u64 = 1 << 30;

fn main() -> i32 {
    let len = 63 * GIB;
    let Ok(start) = sys::reserve(len, PROT_WRITE | NO_RESERVE) else { return 1 };
    for i in 0..4u64 {
        let at = (start + i * 20 * GIB) as *mut u64;
        // SAFETY: inside the range just reserved, writable.
        unsafe { at.write_volatile(i + 1) };
    }
    // SAFETY: as above; read back before the range changes.
    let sum: u64 = (0..4u64).map(|i| unsafe { ((start + i * 20 * GIB) as *const u64).read_volatile() }).sum();
    let ok = sum == 10
        && sys::protect(start, len, 0).is_ok()
        && sys::decommit(start, len) == Ok(4)
        && sys::protect(start, len, PROT_WRITE).is_ok()
        && sys::release(start, len) == Ok(0);
    println!(
        "sparse_release: 63 GiB protected, decommitted and released: {}",
        if ok { "ok" } else { "FAILED" }
    );
    if ok {
        0
    } else {
        1
    }
}

pkrt::entry!(main);
