//! File-mapping exerciser, over `data/pages32` of the file disk (32 MiB of
//! self-checking pages, `abi::pattern`). The argument: bits 0..8 the mode,
//! bits 8..32 a count (pages, or MiB).
//!
//! - mode 0, read: maps the file shared read-only and checks every page;
//!   exit 0 when all are intact, 2 at the first bad one (printed).
//! - mode 1, share: maps the first COUNT pages, touches them, yields a few
//!   times (so a second copy runs meanwhile) and checks them; prints its
//!   file pages; exit 0 when intact.
//! - mode 2, private: maps COUNT pages twice, private writable and shared
//!   read-only; writes every private page; exit 0 when the private pages
//!   read back what was written and the shared ones still read the file.
//! - mode 3, past the end: maps the last page of the file and two more,
//!   reads the last page, then the next: the kernel kills the process (a
//!   bus error); exit 5 if it returns.
//! - mode 4, bad arguments: every bad call gets its error code; exit 0
//!   when they all did, 6 at the first that did not (printed).
//! - mode 5, pressure: maps and checks the whole file, then commits and
//!   writes COUNT MiB of anonymous memory (reclaim must drop file pages
//!   for it), then
//!   checks the whole file again; exit 0 when both passes were intact.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use abi::{pattern, Error, MAP_PRIVATE, PAGE_SIZE as PAGE, PROT_EXEC, PROT_WRITE};
use pkrt::{println, sys};

const FILE: &str = "data/pages32";

fn page(base: u64, index: u64) -> &'static [u8] {
    // SAFETY: `base` is a mapping of at least `index + 1` pages that this
    // process made and does not unmap while the slice is used.
    unsafe { core::slice::from_raw_parts((base + index * PAGE) as *const u8, PAGE as usize) }
}

/// The first page of `first..first + count` (file pages mapped at `base`)
/// that is not intact.
fn first_bad(base: u64, first: u64, count: u64) -> Option<u64> {
    (0..count).find(|&i| !pattern::check(first + i, page(base, i)))
}

fn open() -> (u64, u64) {
    let file = sys::open(FILE).expect("open data/pages32");
    (file, sys::file_size(file).expect("its size") / PAGE)
}

fn check(what: &str, base: u64, count: u64) -> i32 {
    match first_bad(base, 0, count) {
        None => {
            let s = sys::memstats();
            println!(
                "file_check: {what}: {count} pages intact; {} resident, {} of them file pages",
                s.resident_pages, s.file_pages
            );
            0
        }
        Some(i) => {
            println!("file_check: {what}: page {i} is not intact");
            2
        }
    }
}

fn read_all() -> i32 {
    let (file, pages) = open();
    let base = sys::map(file, 0, pages * PAGE, 0).expect("map shared");
    check("read", base, pages)
}

fn share(count: u64) -> i32 {
    let (file, _) = open();
    let base = sys::map(file, 0, count * PAGE, 0).expect("map shared");
    let _ = first_bad(base, 0, count);
    for _ in 0..20 {
        sys::yield_now();
    }
    check("share", base, count)
}

fn private(count: u64) -> i32 {
    let (file, _) = open();
    let mine = sys::map(file, 0, count * PAGE, PROT_WRITE | MAP_PRIVATE).expect("map private");
    let shared = sys::map(file, 0, count * PAGE, 0).expect("map shared");
    for i in 0..count {
        // SAFETY: a writable private mapping of `count` pages.
        unsafe { core::ptr::write_volatile((mine + i * PAGE + 8) as *mut u64, 0x5eed_0000 + i) };
    }
    // SAFETY: as above, read back.
    let written = (0..count)
        .all(|i| unsafe { core::ptr::read_volatile((mine + i * PAGE + 8) as *const u64) } == 0x5eed_0000 + i);
    let s = sys::memstats();
    println!(
        "file_check: private: wrote {count} pages ({} file pages, {} resident)",
        s.file_pages, s.resident_pages
    );
    if !written {
        println!("file_check: private: a written page did not keep its value");
        return 2;
    }
    check("private: the shared mapping still reads the file", shared, count)
}

fn past_end() -> i32 {
    let (file, pages) = open();
    let base = sys::map(file, (pages - 1) * PAGE, 3 * PAGE, 0).expect("map across the end");
    if !pattern::check(pages - 1, page(base, 0)) {
        return 2;
    }
    println!("file_check: past the end: last page intact, now touching the page after it");
    // SAFETY: mapped (as part of the file mapping); the kernel kills us here.
    let _ = unsafe { core::ptr::read_volatile((base + PAGE) as *const u64) };
    5
}

fn bad_arguments() -> i32 {
    let (file, pages) = open();
    let size = pages * PAGE;
    let cases: [(&str, Result<u64, Error>, Error); 11] = [
        ("open of a missing file", sys::open("no/such/file"), Error::NotFound),
        ("open with an empty name", sys::open(""), Error::Invalid),
        ("size of a bad id", sys::file_size(9999), Error::NotFound),
        ("size of an id past u16", sys::file_size(1 << 40), Error::NotFound),
        ("map of a bad id", sys::map(4000, 0, PAGE, 0), Error::NotFound),
        ("map at an unaligned offset", sys::map(file, 100, PAGE, 0), Error::Invalid),
        ("map starting past the end", sys::map(file, size, PAGE, 0), Error::OutOfRange),
        ("map of zero bytes", sys::map(file, 0, 0, 0), Error::Invalid),
        ("map of an unaligned length", sys::map(file, 0, 100, 0), Error::Invalid),
        ("shared writable map", sys::map(file, 0, PAGE, PROT_WRITE), Error::ReadOnly),
        ("map with unknown flags", sys::map(file, 0, PAGE, 1 << 20), Error::Invalid),
    ];
    for (what, got, expected) in cases {
        if got != Err(expected) {
            println!("file_check: {what}: got {got:?}, expected {expected:?}");
            return 6;
        }
    }
    let shared = sys::map(file, 0, PAGE, PROT_EXEC).expect("map shared executable");
    if sys::protect(shared, PAGE, PROT_WRITE) != Err(Error::ReadOnly) {
        println!("file_check: making a shared file mapping writable was not refused");
        return 6;
    }
    if sys::raw(abi::Syscall::Open as u64, 0x10, 4, 0) != Error::BadAddress.to_return() {
        println!("file_check: open with a bad name pointer was not refused");
        return 6;
    }
    println!("file_check: bad arguments: every one refused with its error");
    0
}

fn pressure(mib: u64) -> i32 {
    let (file, pages) = open();
    let base = sys::map(file, 0, pages * PAGE, 0).expect("map shared");
    if check("pressure, first pass", base, pages) != 0 {
        return 2;
    }
    let hog = sys::reserve(mib << 20, PROT_WRITE).expect("reserve the hog");
    let brought = sys::commit(hog, mib << 20);
    // Data in every page: reclaim drops a page that reads all zero without
    // a write (even with no swap), and the point is to make it drop file
    // pages.
    for page in 0..(mib << 20) / PAGE {
        // SAFETY: inside the writable range just reserved.
        unsafe { core::ptr::write_volatile((hog + page * PAGE) as *mut u64, page + 1) };
    }
    println!("file_check: pressure: committed {mib} MiB of anonymous memory and wrote it: {brought:?}");
    check("pressure, second pass", base, pages)
}

fn main(arg: u64) -> i32 {
    let count = (arg >> 8) & 0xff_ffff;
    match arg & 0xff {
        0 => read_all(),
        1 => share(count),
        2 => private(count),
        3 => past_end(),
        4 => bad_arguments(),
        5 => pressure(count),
        _ => 1,
    }
}

pkrt::entry!(with_arg main);
