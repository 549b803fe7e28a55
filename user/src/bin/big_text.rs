//! A program of 2 MiB, almost all of it a read-only table, that touches
//! four pages of the table. Started from the file disk it costs the pages
//! it touches, not its size: exits with its resident page count (checked
//! against its file size by kernel/tests/files.rs).
#![no_std]
#![no_main]

use pkrt::{println, sys};

static TABLE: [u8; 2 << 20] = [0x5a; 2 << 20];

fn main() -> i32 {
    let sum: u32 = (0..4).map(|i| u32::from(core::hint::black_box(&TABLE)[i * 500_000])).sum();
    let s = sys::memstats();
    println!(
        "big_text: read {sum:#x} from a 2 MiB table; {} pages resident, {} of them file pages",
        s.resident_pages, s.file_pages
    );
    s.resident_pages as i32
}

pkrt::entry!(main);
