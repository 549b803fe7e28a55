//! A system-call fuzzer: random system calls with random, boundary and
//! hostile arguments, and touches of random addresses, from a seed (the
//! program's argument). It uses no heap (it releases ranges at random, its
//! own heap's included) and keeps what it reserved in a fixed table, so that
//! most calls hit real regions and go deep into the kernel.
//!
//! It exits 0 after its calls, 42 if the kernel ever returned a value
//! that is neither a result nor a known error code, or 43 if a page of a
//! hog it set aside does not read back as it wrote it. Being killed for a bad
//! touch is a normal end: the kernel must just survive it and clean up.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use abi::{Error, Syscall, MAP_PRIVATE, PROT_EXEC, PROT_WRITE};
use pkrt::{println, sys, Rng};

const PAGE: u64 = abi::PAGE_SIZE;
const CALLS: u32 = 600;
/// What the fuzzer does not release, decommit or protect away from itself,
/// so that it lives long enough to make its calls: its image (linked at
/// 2 MiB) and its stack (64 KiB below 0x7fff_ffff_0000, plus the guard).
const IMAGE: core::ops::Range<u64> = 0x20_0000..0x40_0000;
const STACK: core::ops::Range<u64> = 0x7fff_fffe_0000..0x7fff_ffff_0000;
const SLOTS: usize = 48;
/// Hogs set aside to be checked: no call of the fuzzer's own touches them.
const KEPT: usize = 4;
/// Names to open: files of the standard file disk (when the boot has one),
/// a directory, near misses and junk.
const NAMES: [&str; 8] =
    ["data/pages32", "bin/hello", "bin/fuzz", "data", "data/pages3", "", "bin/hello/x", "\u{fffd}\0"];

/// Addresses a hostile caller likes.
const NASTY: [u64; 12] = [
    0,
    1,
    PAGE - 1,
    0x0000_7fff_ffff_f000,
    0x0000_8000_0000_0000,
    0xffff_8000_0000_0000,
    0xffff_ffff_ffff_f000,
    u64::MAX,
    0x0000_7fff_fffe_0000, // near the stack
    0x0020_0000,           // near the program image
    1 << 46,
    0x0000_4000_0000_0000,
];

struct Fuzzer {
    rng: Rng,
    /// (start, pages, writable) of ranges this process reserved.
    regions: [(u64, u64, bool); SLOTS],
    calls: u32,
    errors: u32,
    /// (start, pages, salt) of hogs kept aside: each page's first word
    /// holds [`expected`] of its address, checked by [`Fuzzer::check_kept`].
    kept: [(u64, u64, u64); KEPT],
}

/// What a kept hog's page at `at` must read: a mix of its address and
/// the hog's salt, so a page swapped back into the wrong place, or not
/// at all, reads wrong.
fn expected(at: u64, salt: u64) -> u64 {
    let x = (at ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

impl Fuzzer {
    fn length(&mut self) -> u64 {
        match self.rng.below(10) {
            0 => 0,
            1 => self.rng.next_u64(),
            2 => self.rng.below(PAGE * 4) + 1, // often unaligned
            3 => (63 << 30) + PAGE * self.rng.below(2),
            _ => PAGE * (1 + self.rng.below(64)),
        }
    }

    fn address(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => NASTY[self.rng.below(NASTY.len() as u64) as usize],
            1 => self.rng.next_u64(),
            2 => self.rng.next_u64() & 0x0000_7fff_ffff_f000,
            _ => {
                let (start, pages, _) = self.regions[self.rng.below(SLOTS as u64) as usize];
                start + PAGE * self.rng.below(pages.max(1) + 2)
            }
        }
    }

    fn prot(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => self.rng.next_u64(),
            1 => PROT_EXEC,
            2 => PROT_WRITE | PROT_EXEC,
            3 => 0,
            _ => PROT_WRITE,
        }
    }

    /// Whether `at..at+len` spares the fuzzer's own image and stack, and
    /// the hogs it keeps to check.
    fn spares_me(&self, at: u64, len: u64) -> bool {
        let end = at.saturating_add(len);
        let kept =
            self.kept.iter().filter(|k| k.1 != 0).map(|&(start, pages, _)| start..start + pages * PAGE);
        [IMAGE, STACK].into_iter().chain(kept).all(|own| end <= own.start || at >= own.end)
    }

    /// Checks a return value against the ABI: a result or a known error.
    fn returned(&mut self, value: i64) -> Result<u64, Error> {
        self.calls += 1;
        if value < 0 && !Error::ALL.iter().any(|e| e.to_return() == value) {
            println!("fuzz: the kernel returned {value}, which is no error code");
            sys::exit(42);
        }
        if value < 0 {
            self.errors += 1;
        }
        Error::from_return(value)
    }

    fn call(&mut self, number: Syscall, a: u64, b: u64, c: u64) -> Result<u64, Error> {
        self.call4(number, a, b, c, 0)
    }

    fn call4(&mut self, number: Syscall, a: u64, b: u64, c: u64, d: u64) -> Result<u64, Error> {
        self.returned(sys::raw4(number as u64, a, b, c, d))
    }

    /// Keeps the table true after a successful release or protect of
    /// `at..at+len`: released slots are forgotten, protected ones marked.
    fn changed(&mut self, at: u64, len: u64, still_there: bool, writable: bool) {
        for slot in self.regions.iter_mut() {
            let (start, pages, _) = *slot;
            let overlaps = start < at.saturating_add(len) && at < start + pages * PAGE;
            if start != 0 && overlaps {
                *slot = if still_there { (start, pages, slot.2 && writable) } else { (0, 0, false) };
            }
        }
    }

    fn remember(&mut self, start: u64, len: u64, writable: bool) {
        let slot = self.rng.below(SLOTS as u64) as usize;
        self.regions[slot] = (start, len / PAGE, writable);
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=14 => {
                let (len, prot) = (self.length(), self.prot());
                let at = if self.rng.below(3) == 0 { self.address() } else { 0 };
                if let Ok(start) = self.call(Syscall::Reserve, len, prot, at) {
                    self.remember(start, len, prot & PROT_WRITE != 0);
                }
            }
            15..=26 => {
                let (at, len) = (self.address(), self.length().min(512 * PAGE));
                let _ = self.call(Syscall::Commit, at, len, 0);
            }
            27..=36 => {
                let (at, len) = (self.address(), self.length());
                if self.spares_me(at, len) {
                    let _ = self.call(Syscall::Decommit, at, len, 0);
                }
            }
            37..=46 => {
                let (at, len) = (self.address(), self.length());
                if self.spares_me(at, len) && self.call(Syscall::Release, at, len, 0).is_ok() {
                    self.changed(at, len, false, false);
                }
            }
            47..=56 => {
                let (at, len, prot) = (self.address(), self.length(), self.prot());
                if self.spares_me(at, len) && self.call(Syscall::Protect, at, len, prot).is_ok() {
                    self.changed(at, len, true, prot & PROT_WRITE != 0);
                }
            }
            57..=61 => {
                let (at, len) = (self.address(), self.rng.below(5000));
                let _ = self.call(Syscall::Write, at, len, 0);
            }
            62..=65 => {
                let at = self.address();
                if self.spares_me(at, abi::MemStats::SIZE as u64) {
                    let _ = self.call(Syscall::MemStats, at, 0, 0);
                }
            }
            66..=69 => {
                let number = if self.rng.below(2) == 0 { self.rng.below(20) } else { self.rng.next_u64() };
                // Never exit through the random call: the count must go on.
                let (a, b, c) = (self.address(), self.length(), self.rng.next_u64());
                if number != Syscall::Exit as u64 && self.spares_me(a, b) {
                    let value = sys::raw(number, a, b, c);
                    // Keep the table true when the call released or
                    // protected part of it, as the typed calls above do.
                    let changed = self.returned(value).is_ok();
                    if changed && number == Syscall::Release as u64 {
                        self.changed(a, b, false, false);
                    } else if changed && number == Syscall::Protect as u64 {
                        self.changed(a, b, true, c & PROT_WRITE != 0);
                    }
                }
            }
            70..=84 => self.touch(),
            85..=89 => self.flood(),
            90..=91 => sys::yield_now(),
            92 => self.check_kept(),
            93..=95 => self.map_file(),
            96..=97 => self.hog(),
            _ => self.huge_sparse(),
        }
    }

    /// Reads or writes a page of a known region; rarely, a hostile address.
    fn touch(&mut self) {
        let (start, pages, writable) = self.regions[self.rng.below(SLOTS as u64) as usize];
        if start == 0 {
            return; // an empty slot
        }
        if self.rng.below(200) == 0 {
            let at = self.address();
            if self.spares_me(at, 1) {
                // SAFETY: not safe: a hostile touch; the kernel kills us if it is bad.
                unsafe { (at as *mut u8).write_volatile(1) };
            }
            return;
        }
        let at = (start + PAGE * self.rng.below(pages.max(1))) as *mut u64;
        // SAFETY: a page this process reserved; if it was released or
        // protected since (the fuzzer does that too), the kernel kills us,
        // which is an allowed end.
        unsafe {
            if writable && self.rng.below(2) == 0 {
                at.write_volatile(self.rng.next_u64());
            } else {
                at.read_volatile();
            }
        }
    }

    /// Opens a file (a real name, a wrong one or a hostile pointer) and maps
    /// part of it with random offset, length and flags; a mapping made is
    /// remembered, so touches read it (from the disk, through the page
    /// cache) and write it (copy on write when private; a kill when
    /// shared, or past the file's end).
    fn map_file(&mut self) {
        let id = if self.rng.below(4) == 0 {
            let (at, len) = (self.address(), self.rng.below(300));
            self.call(Syscall::Open, at, len, 0)
        } else {
            let name = NAMES[self.rng.below(NAMES.len() as u64) as usize];
            self.call(Syscall::Open, name.as_ptr() as u64, name.len() as u64, 0)
        };
        let id = match id {
            Ok(id) if self.rng.below(10) != 0 => id,
            _ => self.rng.below(4) + if self.rng.below(2) == 0 { 0 } else { self.rng.next_u64() },
        };
        let pages = self.call(Syscall::FileSize, id, 0, 0).map_or(4, |size| size.div_ceil(PAGE));
        let offset = match self.rng.below(6) {
            0 => self.rng.next_u64(),
            1 => self.rng.below(PAGE),
            _ => PAGE * self.rng.below(pages + 2),
        };
        let len = self.length();
        let private = if self.rng.below(2) == 0 { MAP_PRIVATE } else { 0 };
        let flags = if self.rng.below(10) == 0 { self.rng.next_u64() } else { self.prot() | private };
        if let Ok(start) = self.call4(Syscall::Map, id, offset, len, flags) {
            self.remember(start, len, flags & PROT_WRITE != 0);
        }
    }

    /// Up to 4 MiB made writable and written, kept: rounds of four fuzzers
    /// on a small machine run it short of memory, so reclaim (and swap,
    /// when the boot has a disk) work under the other calls. Most hogs go
    /// into the table, where those calls decommit, release and protect
    /// them at random; some are set aside, written with a pattern no call
    /// of ours disturbs, and checked later ([`Fuzzer::check_kept`]): every
    /// page must read back as written, wherever reclaim sent it meanwhile.
    fn hog(&mut self) {
        let len = PAGE * (64 + self.rng.below(960));
        let Ok(start) = self.call(Syscall::Reserve, len, PROT_WRITE, 0) else { return };
        let aside = self.kept.iter().position(|k| k.1 == 0).filter(|_| self.rng.below(3) == 0);
        let salt = self.rng.next_u64();
        match aside {
            Some(i) => {
                // The table may still name regions that were here before
                // (released by a random call, which keeps no books): they
                // must not lead a touch into the hog.
                self.changed(start, len, false, false);
                self.kept[i] = (start, len / PAGE, salt);
            }
            None => self.remember(start, len, true),
        }
        if self.rng.below(2) == 0 {
            let _ = self.call(Syscall::Commit, start, len, 0);
        }
        for at in (start..start + len).step_by(PAGE as usize) {
            // SAFETY: a writable range this process just reserved; nothing
            // else in this process released or protected it since.
            unsafe { (at as *mut u64).write_volatile(expected(at, salt)) };
        }
    }

    /// Reads every page of the hogs kept aside; exits with 43 at the first
    /// that does not hold what was written (a kernel bug: none of this
    /// process's calls touched it).
    fn check_kept(&self) {
        for &(start, pages, salt) in self.kept.iter().filter(|k| k.1 != 0) {
            for at in (start..start + pages * PAGE).step_by(PAGE as usize) {
                // SAFETY: a kept hog: reserved writable by this process and
                // never released, decommitted or protected by it since.
                let found = unsafe { (at as *const u64).read_volatile() };
                if found != expected(at, salt) {
                    println!(
                        "fuzz: page {at:#x} of a kept hog reads {found:#x}, not {:#x}",
                        expected(at, salt)
                    );
                    sys::exit(43);
                }
            }
        }
    }

    /// Many one-page regions at once, most given back.
    fn flood(&mut self) {
        for _ in 0..self.rng.below(200) {
            match self.call(Syscall::Reserve, PAGE, PROT_WRITE, 0) {
                Ok(start) if self.rng.below(8) == 0 => self.remember(start, PAGE, true),
                Ok(start) => {
                    let _ = self.call(Syscall::Release, start, PAGE, 0);
                }
                Err(_) => break,
            }
        }
    }

    /// A huge region with a few pages touched, changed and given back whole.
    fn huge_sparse(&mut self) {
        let len = 63 << 30;
        let Ok(start) = self.call(Syscall::Reserve, len, PROT_WRITE, 0) else { return };
        for i in 0..4 {
            let _ = self.call(Syscall::Commit, start + i * (15 << 30), PAGE, 0);
        }
        let _ = self.call(Syscall::Protect, start, len, 0);
        let _ = self.call(Syscall::Decommit, start, len, 0);
        let _ = self.call(Syscall::Release, start, len, 0);
    }
}

fn main(seed: u64) -> i32 {
    let mut fuzzer = Fuzzer {
        rng: Rng::new(seed),
        regions: [(0, 0, false); SLOTS],
        calls: 0,
        errors: 0,
        kept: [(0, 0, 0); KEPT],
    };
    for _ in 0..CALLS {
        fuzzer.step();
    }
    fuzzer.check_kept();
    println!("fuzz seed {seed}: {} calls, {} refused with an error code", fuzzer.calls, fuzzer.errors);
    0
}

pkrt::entry!(with_arg main);
