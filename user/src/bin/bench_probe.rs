//! The ring-3 half of `make bench`'s fault boot (kernel/tests/fault_bench.rs):
//! times one kind of round trip into the kernel from user mode with the
//! time-stamp counter and exits with the cycles per round trip (the kernel
//! side prints it). The argument: bits 0..8 the mode, bits 8..32 the count.
//!
//! - mode 0, system call: `count` calls of an unknown system-call number
//!   (gate in, decode, refuse, gate out: the bare round trip).
//! - mode 1, page fault: `count` first writes to fresh demand-zero pages
//!   (trap, resolve, return, the write retried), from the last page down:
//!   fault-around follows only ascending runs, so each write is a fault.
//! - mode 3, sequential first touch: the same pages written from the first
//!   up, as a program filling a new buffer does: fault-around maps ahead
//!   (from the zeroed pool), so most writes take no fault.
//! - mode 2, yield: `count` yields. Alone, the kernel resumes the caller;
//!   with a second copy running, each yield switches to the other process
//!   and back, so one iteration holds two context switches.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use abi::PROT_WRITE;
use pkrt::sys;

const PAGE: u64 = abi::PAGE_SIZE;
/// No system call has this number.
const UNKNOWN_CALL: u64 = 0x7fff;

fn cycles() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter (CR4.TSD is clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn system_calls(count: u64) -> Option<u64> {
    let start = cycles();
    for _ in 0..count {
        if sys::raw(UNKNOWN_CALL, 0, 0, 0) >= 0 {
            return None;
        }
    }
    Some(cycles() - start)
}

fn page_faults(count: u64, ascending: bool) -> Option<u64> {
    let base = sys::reserve(count * PAGE, PROT_WRITE).ok()?;
    let start = cycles();
    for n in 0..count {
        let i = if ascending { n } else { count - 1 - n };
        // SAFETY: inside the writable range just reserved; the first write
        // to each page is the demand-zero fault being timed.
        unsafe { core::ptr::write_volatile((base + i * PAGE) as *mut u8, 1) };
    }
    Some(cycles() - start)
}

fn yields(count: u64) -> Option<u64> {
    let start = cycles();
    for _ in 0..count {
        sys::yield_now();
    }
    Some(cycles() - start)
}

fn main(arg: u64) -> i32 {
    let count = (arg >> 8) & 0xff_ffff;
    let total = match (arg & 0xff, count) {
        (_, 0) => None,
        (0, n) => system_calls(n),
        (1, n) => page_faults(n, false),
        (3, n) => page_faults(n, true),
        (2, n) => yields(n),
        _ => None,
    };
    // Negative: could not measure (the kernel side reports it).
    total.map_or(-1, |cycles| i32::try_from(cycles / count).unwrap_or(i32::MAX))
}

pkrt::entry!(with_arg main);
