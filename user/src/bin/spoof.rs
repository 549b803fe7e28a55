//! Tries to pass its output off as the kernel's: a fake panic, a fake test
//! summary, a carriage return and terminal escapes to overwrite its tag, a
//! line split over several writes, invalid UTF-8. The kernel must tag and
//! escape every line (checked from the host). Exits 0.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use pkrt::sys;

fn main() -> i32 {
    let _ = sys::write(b"KERNEL PANIC: spoofed by a process\n");
    let _ = sys::write(b"\ntest result: ok. 999 passed; 0 failed\n");
    let _ = sys::write(b"\r\x1b[2Ktest result: FAILED. 0 passed; 999 failed\n");
    let _ = sys::write(b"split ");
    let _ = sys::write(b"over writes\nbad utf-8: \xff\xfe and a last line without newline");
    0
}

pkrt::entry!(main);
