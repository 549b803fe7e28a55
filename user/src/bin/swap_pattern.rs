//! Swap exerciser. The argument: bits 0..16 MiB to use, bits 16..24 the
//! mode, bits 32..64 the seed of the pattern.
//!
//! - mode 0, pattern: writes a seeded pattern over every word of MiB MiB,
//!   then reads it all back; exit 0 when bit-exact, 2 at the first wrong
//!   word (printed).
//! - mode 1, hot and cold: a 1 MiB hot set touched after every cold MiB
//!   while MiB MiB of cold pages are written, then read back; prints the
//!   pages each set swapped in (read-ahead's included: `swap_in_pages`);
//!   exit 0 when the hot set stayed resident (fewer pages swapped in than
//!   1 % of its touches) while the cold set was swapped, 3 otherwise.
//! - mode 2, give back: writes the pattern, decommits the first half,
//!   releases the second; exit 0 when no page of the region is left in
//!   swap (no more pages in swap than the process has outside it), 4
//!   otherwise.
//! - mode 3, exit with pages in swap: writes the pattern and exits 0 at once
//!   (destroy must free its slots).
//! - mode 4, loop: writes the pattern, then reads it all back in order
//!   [`LOOP_PASSES`] times, printing the pages each pass swapped in (read
//!   ahead or faulted); exit 0 when every
//!   pass is bit-exact and each pass after the first swapped in fewer than
//!   half of the pages (a plain second-chance clock swaps in every page of a
//!   loop larger than memory: each leaves just before its next use), 5
//!   otherwise, 2 at a wrong word.
//! - mode 5, one commit: with a pressure handler, commits all MiB MiB in
//!   one call (larger than memory, the call evicts as it goes) and exits
//!   at once: 0 when the call says it brought in every page at least
//!   once (its own reclaim may have evicted some it brought in, which it
//!   then brought in again) and the handler ran meanwhile (the level
//!   rises during the call, and the kernel restarts the call at the end
//!   of each time slice, so the handler runs between its parts: twice
//!   at least, as the return of the call alone would deliver it once);
//!   6 when the count is short, 7 when the handler ran less than twice,
//!   8 when the call did not give its registers back as they were.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use abi::{EVENT_PRESSURE, NO_RESERVE, PROT_WRITE};
use pkrt::{events, println, sys};

const MIB: u64 = 1 << 20;
const PAGE: u64 = abi::PAGE_SIZE;

/// The pattern word at byte offset `offset` (splitmix64 of seed and offset).
fn word(seed: u64, offset: u64) -> u64 {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ offset;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes the pattern words of `base + offsets`.
fn write_pattern_part(base: u64, offsets: core::ops::Range<u64>, seed: u64) {
    for offset in offsets.step_by(8) {
        // SAFETY: inside a region this process reserved writable.
        unsafe { core::ptr::write_volatile((base + offset) as *mut u64, word(seed, offset)) };
    }
}

fn write_pattern(base: u64, len: u64, seed: u64) {
    write_pattern_part(base, 0..len, seed);
}

/// The first offset whose word is wrong, with what was read there.
fn check_pattern(base: u64, len: u64, seed: u64) -> Option<(u64, u64)> {
    (0..len).step_by(8).find_map(|offset| {
        // SAFETY: as in write_pattern.
        let got = unsafe { core::ptr::read_volatile((base + offset) as *const u64) };
        (got != word(seed, offset)).then_some((offset, got))
    })
}

fn touch_pages(base: u64, len: u64) {
    for offset in (0..len).step_by(PAGE as usize) {
        // SAFETY: as in write_pattern.
        unsafe { core::ptr::read_volatile((base + offset) as *const u64) };
    }
}

fn report(what: &str) {
    let s = sys::memstats();
    println!(
        "swap_pattern: {what}: {} resident, {} swapped, {} swap-in faults, {} pages read back",
        s.resident_pages, s.swapped_pages, s.swap_in_faults, s.swap_in_pages
    );
}

fn pattern(base: u64, len: u64, seed: u64) -> i32 {
    write_pattern(base, len, seed);
    report("written");
    if let Some((offset, got)) = check_pattern(base, len, seed) {
        println!("swap_pattern: word at +{offset:#x} is {got:#x}, expected {:#x}", word(seed, offset));
        return 2;
    }
    report("read back bit-exact");
    0
}

fn hot_and_cold(cold: u64, len: u64, seed: u64) -> i32 {
    let hot = sys::reserve(MIB, PROT_WRITE).expect("reserve the hot set");
    write_pattern(hot, MIB, seed ^ 1);
    let mut hot_swap_ins = 0;
    let mut hot_touches = 0;
    for mib in 0..len / MIB {
        write_pattern_part(cold, mib * MIB..(mib + 1) * MIB, seed);
        let before = sys::memstats().swap_in_pages;
        touch_pages(hot, MIB);
        hot_swap_ins += sys::memstats().swap_in_pages - before;
        hot_touches += MIB / PAGE;
    }
    let before = sys::memstats().swap_in_pages;
    let cold_ok = check_pattern(cold, len, seed).is_none();
    let cold_swap_ins = sys::memstats().swap_in_pages - before;
    let hot_ok = check_pattern(hot, MIB, seed ^ 1).is_none();
    println!(
        "swap_pattern: hot set {hot_swap_ins} pages swapped in in {hot_touches} touches, cold set {cold_swap_ins} pages swapped in reading {} pages",
        len / PAGE
    );
    if !(cold_ok && hot_ok) {
        println!("swap_pattern: pattern wrong (hot {hot_ok}, cold {cold_ok})");
        return 2;
    }
    if hot_swap_ins * 100 < hot_touches && cold_swap_ins > 0 {
        0
    } else {
        3
    }
}

/// Read passes of mode 4.
const LOOP_PASSES: u64 = 3;

fn looping(base: u64, len: u64, seed: u64) -> i32 {
    write_pattern(base, len, seed);
    report("written");
    let pages = len / PAGE;
    let mut resisted = true;
    for pass in 1..=LOOP_PASSES {
        let before = sys::memstats().swap_in_pages;
        if let Some((offset, got)) = check_pattern(base, len, seed) {
            println!(
                "swap_pattern: pass {pass}: word at +{offset:#x} is {got:#x}, expected {:#x}",
                word(seed, offset)
            );
            return 2;
        }
        let swap_ins = sys::memstats().swap_in_pages - before;
        println!("swap_pattern: loop pass {pass}: {swap_ins} pages swapped in for {pages} pages");
        resisted &= pass == 1 || swap_ins * 2 < pages;
    }
    if resisted {
        0
    } else {
        5
    }
}

fn give_back(base: u64, len: u64, seed: u64) -> i32 {
    write_pattern(base, len, seed);
    report("written");
    // The process's own pages outside the region (stack, runtime data) may
    // be in swap too: reclaim takes any page that went unused.
    let s = sys::memstats();
    let outside = s.resident_pages + s.swapped_pages - len / PAGE;
    let half = (len / 2) & !(PAGE - 1);
    sys::decommit(base, half).expect("decommit the first half");
    sys::release(base + half, len - half).expect("release the second half");
    let s = sys::memstats();
    report("decommitted and released");
    if s.swapped_pages <= outside {
        0
    } else {
        4
    }
}

fn one_commit(base: u64, len: u64) -> i32 {
    events::on_pressure(|_| {}).expect("a pressure handler");
    // The call checked register by register: the ABI keeps every register
    // but rax, a restarted call included.
    let (ret, kept) = sys::raw_keeping_registers(abi::Syscall::Commit as u64, [base, len, 0, 0]);
    if !kept {
        println!("swap_pattern: commit did not give its registers back as they were");
        return 8;
    }
    let brought_in = abi::Error::from_return(ret);
    let handled = events::runs(EVENT_PRESSURE);
    println!(
        "swap_pattern: one commit of {} MiB: {brought_in:?} pages, the pressure handler ran {handled} times during it",
        len / MIB
    );
    if !brought_in.is_ok_and(|pages| pages >= len / PAGE) {
        6
    } else if handled < 2 {
        // One run could be the one the call's return delivers: only a
        // second shows the handler ran between the call's parts.
        7
    } else {
        0
    }
}

fn main(arg: u64) -> i32 {
    let len = (arg & 0xffff) * MIB;
    let mode = (arg >> 16) & 0xff;
    let seed = arg >> 32;
    let base = sys::reserve(len.max(PAGE), PROT_WRITE | NO_RESERVE).expect("reserve");
    match mode {
        0 => pattern(base, len, seed),
        1 => hot_and_cold(base, len, seed),
        2 => give_back(base, len, seed),
        3 => {
            write_pattern(base, len, seed);
            report("written, exiting");
            0
        }
        4 => looping(base, len, seed),
        5 => one_commit(base, len),
        _ => 1,
    }
}

pkrt::entry!(with_arg main);
