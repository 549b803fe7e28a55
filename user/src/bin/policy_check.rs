//! Memory policy exerciser (docs/memory-policy.md). The argument: bits
//! 0..8 the mode, bits 8..64 its parameter `n`.
//!
//! - 0, commit boundary: reads `CommitLimit - Committed_AS` from the
//!   pressure page, reserves exactly that many writable pages (must
//!   succeed), then one page more (must fail: NoMemory, in mode 2), a
//!   read-only page (never charged), releases, and reserves it again.
//!   Exit 0 when each call did what strict overcommit promises.
//! - 1, single request: reserves `n` writable pages, then `n + 1` (mode 0
//!   refuses only the second when `n` = RAM + swap). Exit 0 = both as
//!   expected: the first succeeds, the second fails.
//! - 2, quota: commits 1 MiB steps until refused (must be QuotaExceeded,
//!   with the charge at most the quota), then touches a page more: the
//!   kernel kills it (the exit code is never reached).
//! - 3, redline: with a redline handler, commits past the redline, further,
//!   decommits below it and crosses again. Exit 0 when the handler ran
//!   exactly once per crossing (2), 5 otherwise.
//! - 4, pressure watcher: yields, watching the pressure page and counting
//!   notifications, until the level rose to at least `n` and fell back to
//!   normal. Exit 0 then (with at least one notification), 6 on timeout.
//! - 5, hog: for `n >> 16` time slices, commits one more MiB each (after
//!   a refusal it tries again the next), up to `n & 0xffff` MiB; exits 0.
//! - 6, background scavenger: allocates and frees 8 MiB of heap blocks,
//!   then waits (a little heap churn, yields) until the runtime's
//!   background scavenger handed 90 % of what it grew by back without a
//!   `scavenge` call. Exit 0 then, 7 on timeout; prints its cost against its budget.
//! - 7, grower: touches `n` MiB page by page, yielding every 64 pages,
//!   and holds it for 100 time slices (OOM storms: whoever the killer
//!   chooses never exits). Exit 0.
//! - 8, a system call's copy when memory is out: yields `n` time slices
//!   (for a neighbour to grow), commits until refused (NoMemory), then
//!   asks memstats to write into a page it reserved and never touched, so
//!   that the kernel's copy is the access that finds no frame. Exit 0 when
//!   the call succeeded (the OOM killer made room) with sane figures, 10
//!   when it returned NoMemory, 9 on another error, 8 when the commits
//!   ended otherwise than in NoMemory.
//! - 9, the heap at the commit limit (run in mode 2): allocates 36 KiB
//!   blocks (9 pages, large) until the heap cannot grow, frees every other
//!   one, then allocates 40 KiB blocks (10 pages: none fits a hole) until
//!   it fails again. The heap gives the holes' charge back when the kernel
//!   refuses to grow it, so the new blocks take their place past the
//!   frontier. Exit 0 when the 40 KiB blocks filled at least 90 % of the
//!   holes and every kept block still holds its bytes; 11 when they did
//!   not; 12 when a kept block changed.
//! - 10, reads of a read-only region: reserves 32 MiB read-only (no
//!   charge) and reads a word of every page, the second half after a
//!   `commit` of it. Each read (or commit) maps the kernel's
//!   shared zero frame, so the process's resident pages and its commit
//!   charge do not move (only the page tables for the entries are new).
//!   Exit 0 then; 13 when a page read other than zero, 14 when the reads
//!   took frames or a commit charge.
//! - 11, the heap's spans at the commit limit (run in mode 2): allocates
//!   8 KiB blocks (small: four to a span) until the heap cannot grow,
//!   frees every other one, then allocates 40 KiB blocks until it fails
//!   again: the freed blocks' pages, inside spans that live on, are given
//!   back when the kernel refuses to grow, and the large blocks take their
//!   charge. Then it frees those and allocates 8 KiB blocks again, writing
//!   each: the heap grows the given-back pages before it hands out a
//!   block on them (a write to a page left read-only would kill the
//!   process). Exit 0 when the 40 KiB blocks took at least 80 % of the
//!   freed blocks' bytes, 98 % of the 8 KiB blocks freed came back (the
//!   page tags of the arena the large blocks grew into keep a little of
//!   the charge), and every block holds its bytes; 15, 16, 17 when not,
//!   in that order.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use abi::{Error, MemStats, Syscall, EVENT_PRESSURE, EVENT_REDLINE, NO_RESERVE, PROT_WRITE};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, Ordering};
use pkrt::{events, heap, pressure, println, sys};

const PAGE: u64 = abi::PAGE_SIZE;
const MIB: u64 = 1 << 20;

fn commit_boundary() -> i32 {
    let p = pressure::read();
    let headroom = p.commit_limit.saturating_sub(p.committed);
    println!(
        "policy_check: CommitLimit {} pages, Committed_AS {} pages: {headroom} pages left",
        p.commit_limit, p.committed
    );
    let Ok(base) = sys::reserve(headroom * PAGE, PROT_WRITE) else {
        println!("policy_check: a reserve of exactly the headroom was refused");
        return 1;
    };
    let one_more = sys::reserve(PAGE, PROT_WRITE);
    let read_only = sys::reserve(PAGE, 0);
    println!("policy_check: one page more: {one_more:?}; a read-only page: {read_only:?}");
    let released = sys::release(base, headroom * PAGE).is_ok();
    let again = sys::reserve(headroom * PAGE, PROT_WRITE).is_ok();
    i32::from(!(one_more == Err(Error::NoMemory) && read_only.is_ok() && released && again))
}

fn single_request(pages: u64) -> i32 {
    let first = sys::reserve(pages * PAGE, PROT_WRITE);
    let second = sys::reserve((pages + 1) * PAGE, PROT_WRITE);
    println!(
        "policy_check: {pages} pages: {:?}; {} pages: {:?}",
        first.map(|_| ()),
        pages + 1,
        second.map(|_| ())
    );
    i32::from(!(first.is_ok() && second == Err(Error::NoMemory)))
}

/// A big no-reserve region to commit or touch in.
fn arena(len: u64) -> u64 {
    sys::reserve(len, PROT_WRITE | NO_RESERVE).expect("reserve the arena")
}

fn quota() -> i32 {
    let base = arena(1 << 30);
    let mut committed = 0;
    let error = loop {
        match sys::commit(base + committed, MIB) {
            Ok(_) => committed += MIB,
            Err(e) => break e,
        }
    };
    let s = sys::memstats();
    println!(
        "policy_check: commit refused after {} MiB: {error:?}; charged {} KiB of a {} KiB quota",
        committed / MIB,
        s.charged_bytes / 1024,
        s.ram_quota / 1024
    );
    if error != Error::QuotaExceeded || s.charged_bytes > s.ram_quota {
        return 1;
    }
    // The first page the commit could not bring in: past the quota.
    let past = (base + committed) as *mut u64;
    for i in 0..MIB / PAGE {
        // SAFETY: inside the arena reserved above, writable.
        unsafe { past.add((i * PAGE / 8) as usize).write_volatile(i) };
    }
    println!("policy_check: touched past the quota and was not stopped");
    2
}

static REDLINE_RUNS: AtomicU64 = AtomicU64::new(0);

fn redline() -> i32 {
    events::on_redline(|charged| {
        REDLINE_RUNS.fetch_add(1, Ordering::Relaxed);
        println!("policy_check: redline handler: {} KiB charged", charged / 1024);
    })
    .expect("register the redline handler");
    let line = sys::memstats().redline;
    let len = (line + 4 * MIB).next_multiple_of(MIB);
    let base = arena(2 * len);
    let ok = sys::commit(base, len).is_ok();
    let first = REDLINE_RUNS.load(Ordering::Relaxed);
    let more = sys::commit(base + len, len / 2).is_ok();
    let still = REDLINE_RUNS.load(Ordering::Relaxed);
    let down = sys::decommit(base, 2 * len).is_ok();
    let again = sys::commit(base, len).is_ok();
    let second = REDLINE_RUNS.load(Ordering::Relaxed);
    println!("policy_check: redline {} KiB: runs after crossing {first}, further {still}, crossing again {second} (events seen: {})", line / 1024, events::runs(EVENT_REDLINE));
    if ok && more && down && again && (first, still, second) == (1, 1, 2) {
        0
    } else {
        5
    }
}

static HIGHEST: AtomicU64 = AtomicU64::new(0);

fn watch(target: u64) -> i32 {
    events::on_pressure(|level| {
        HIGHEST.fetch_max(level, Ordering::Relaxed);
    })
    .expect("register the pressure handler");
    let mut seen_high = false;
    for round in 0..200_000u64 {
        let level = pressure::level();
        HIGHEST.fetch_max(level, Ordering::Relaxed);
        seen_high |= level >= target;
        if seen_high && level == 0 {
            let p = pressure::read();
            let notes = events::runs(EVENT_PRESSURE);
            println!(
                "policy_check: pressure rose to {} and fell back to normal after {round} rounds; {notes} notifications; page rewritten {} times",
                pressure::level_name(HIGHEST.load(Ordering::Relaxed)),
                p.updates
            );
            return if notes > 0 { 0 } else { 6 };
        }
        sys::yield_now();
    }
    println!(
        "policy_check: the pressure never rose to {target} and fell back (highest {})",
        HIGHEST.load(Ordering::Relaxed)
    );
    6
}

fn hog(arg: u64) -> i32 {
    let (mib, rounds) = (arg & 0xffff, arg >> 16);
    let base = arena(mib * MIB);
    let mut committed = 0;
    let mut highest = 0;
    // Keeps asking for more (what others give back, it takes) until it
    // holds `mib` MiB, for `rounds` time slices.
    for _ in 0..rounds {
        if committed < mib && sys::commit(base + committed * MIB, MIB).is_ok() {
            committed += 1;
        }
        highest = highest.max(pressure::level());
        sys::yield_now();
    }
    println!("policy_check: hog held {committed} MiB; pressure reached {}", pressure::level_name(highest));
    0
}

fn background_scavenger() -> i32 {
    const BLOCK: usize = 16 * 1024;
    let base = sys::memstats().resident_pages;
    let blocks: Vec<Vec<u8>> = (0..(8 * MIB as usize) / BLOCK).map(|i| alloc::vec![i as u8; BLOCK]).collect();
    let held = sys::memstats().resident_pages;
    drop(blocks);
    let after_free = sys::memstats().resident_pages;
    for round in 0..100_000u64 {
        // A little churn, as a program would have: each free may take a step.
        drop(alloc::vec![0u8; 64]);
        let now = sys::memstats().resident_pages;
        if now - base <= (held - base) / 10 {
            let s = heap::scavenger_stats();
            let permille = s.spent_cycles * 1000 / s.elapsed_cycles.max(1);
            println!(
                "policy_check: {} of {held} resident pages returned after {round} rounds, no scavenge call; {} steps, {} KiB; scavenger time {}.{} % of elapsed (budget {} %)",
                held - now,
                s.steps,
                s.bytes_returned / 1024,
                permille / 10,
                permille % 10,
                heap::SCAVENGER_BUDGET_PERCENT
            );
            return 0;
        }
        sys::yield_now();
    }
    let now = sys::memstats().resident_pages;
    println!("policy_check: resident {base} before, {held} with the blocks, {after_free} at free, still {now}; scavenger {:?}", heap::scavenger_stats());
    7
}

fn grow(mib: u64) -> i32 {
    let base = arena(mib * MIB);
    for page in 0..mib * MIB / PAGE {
        // SAFETY: inside the arena reserved above, writable.
        unsafe { ((base + page * PAGE) as *mut u64).write_volatile(page) };
        if page % 64 == 63 {
            sys::yield_now();
        }
    }
    println!("policy_check: grew to {mib} MiB");
    // Holds it a while, so that the storm is on with everyone in it.
    for _ in 0..100 {
        sys::yield_now();
    }
    0
}

fn copy_when_memory_is_out(wait: u64) -> i32 {
    // What is needed once memory is out is in place before it is: the
    // page the call writes into (reserved, not touched) and, through the
    // printing, the stack depth.
    let target = sys::reserve(PAGE, PROT_WRITE | NO_RESERVE).expect("reserve the target page");
    let base = arena(1 << 30);
    println!("policy_check: waiting {wait} time slices, then committing until memory is out");
    for _ in 0..wait {
        sys::yield_now();
    }
    let (mut committed, mut step) = (0, MIB);
    let refusal = loop {
        match sys::commit(base + committed, step) {
            Ok(_) => committed += step,
            // The last MiB would not fit: fill what is left page by page.
            Err(_) if step > PAGE => step = PAGE,
            Err(e) => break e,
        }
    };
    if refusal != Error::NoMemory {
        println!("policy_check: commit ended in {refusal:?} after {committed} bytes");
        return 8;
    }
    match Error::from_return(sys::raw(Syscall::MemStats as u64, target, 0, 0)) {
        Ok(_) => {
            // SAFETY: the kernel wrote a MemStats there (the call succeeded);
            // the page is ours, reserved writable above.
            let stats = unsafe { (target as *const MemStats).read_volatile() };
            println!(
                "policy_check: memstats into a fresh page after {} MiB committed: {} resident pages",
                committed / MIB,
                stats.resident_pages
            );
            if stats.resident_pages > committed / PAGE {
                0
            } else {
                9
            }
        }
        Err(Error::NoMemory) => 10,
        Err(e) => {
            println!("policy_check: memstats into a fresh page: {e:?}");
            9
        }
    }
}

fn heap_gives_back() -> i32 {
    const HOLE: usize = 9 * PAGE as usize;
    const BIGGER: usize = 10 * PAGE as usize;
    // The lists are made before memory runs out.
    let mut blocks: Vec<*mut u8> = Vec::with_capacity(4096);
    let mut bigger: Vec<*mut u8> = Vec::with_capacity(4096);
    fill_blocks(&mut blocks, HOLE);
    let full = pressure::read();
    free_blocks(blocks.iter().skip(1).step_by(2), HOLE);
    let holes = blocks.len() / 2;
    fill_blocks(&mut bigger, BIGGER);
    let given_back = heap::with_heap(|h| h.stats().given_back_bytes);
    println!(
        "policy_check: {} blocks of 36 KiB at the commit limit ({} of {} pages promised), {holes} freed; \
         then {} blocks of 40 KiB; {} KiB of free runs given back",
        blocks.len(),
        full.committed,
        full.commit_limit,
        bigger.len(),
        given_back / 1024
    );
    if !blocks_intact(&blocks, HOLE, 2) {
        return 12;
    }
    i32::from(bigger.len() * BIGGER * 10 < holes * HOLE * 9) * 11
}

/// Fills `list` up to its capacity with blocks of `size` bytes, each
/// written with its index, until an allocation fails.
fn fill_blocks(list: &mut Vec<*mut u8>, size: usize) {
    let layout = Layout::from_size_align(size, 16).expect("layout");
    while list.len() < list.capacity() {
        // SAFETY: a layout of non-zero size.
        let p = unsafe { alloc::alloc::alloc(layout) };
        if p.is_null() {
            break;
        }
        // SAFETY: a fresh block of `size` bytes, ours.
        unsafe { p.write_bytes(list.len() as u8, size) };
        list.push(p);
    }
}

/// Frees `blocks` (of `size` bytes). (An iterator, not a list: the
/// callers are at the commit limit, where a new list could not be had.)
fn free_blocks<'a>(blocks: impl Iterator<Item = &'a *mut u8>, size: usize) {
    for &p in blocks {
        // SAFETY: allocated by fill_blocks with this layout, freed once.
        unsafe { alloc::alloc::dealloc(p, Layout::from_size_align(size, 16).expect("layout")) };
    }
}

/// Every `step`-th block of `list` (of `size` bytes, live), from the
/// first, still holds its index.
fn blocks_intact(list: &[*mut u8], size: usize, step: usize) -> bool {
    list.iter().enumerate().step_by(step).all(|(i, &p)| {
        // SAFETY: a live block of `size` bytes, written with its index.
        unsafe { core::slice::from_raw_parts(p, size) }.iter().all(|&b| b == i as u8)
    })
}

fn heap_spans_give_back() -> i32 {
    const SMALL: usize = 2 * PAGE as usize;
    const LARGE: usize = 10 * PAGE as usize;
    // The lists are made before memory runs out.
    let mut small: Vec<*mut u8> = Vec::with_capacity(8192);
    let mut large: Vec<*mut u8> = Vec::with_capacity(4096);
    fill_blocks(&mut small, SMALL);
    free_blocks(small.iter().skip(1).step_by(2), SMALL);
    let freed = small.len() / 2;
    fill_blocks(&mut large, LARGE);
    let given_back = heap::with_heap(|h| h.stats().given_back_bytes);
    free_blocks(large.iter(), LARGE);
    // (Room for this list again now: the large blocks are gone.)
    let mut again: Vec<*mut u8> = Vec::with_capacity(freed);
    fill_blocks(&mut again, SMALL);
    println!(
        "policy_check: {} blocks of 8 KiB at the commit limit, {} freed; then {} blocks of 40 KiB \
         ({} KiB given back), freed; then {} blocks of 8 KiB again",
        small.len(),
        freed,
        large.len(),
        given_back / 1024,
        again.len()
    );
    if large.len() * LARGE * 10 < freed * SMALL * 8 {
        return 15;
    }
    // Not all of them: the large blocks grew the arena past its frontier,
    // and the page tags for that part (metadata, never given back) keep
    // a little of the charge: 64 KiB in the run of 2026-12-08.
    if again.len() * 100 < freed * 98 {
        return 16;
    }
    i32::from(!(blocks_intact(&small, SMALL, 2) && blocks_intact(&again, SMALL, 1))) * 17
}

fn read_only_reads() -> i32 {
    const LEN: u64 = 32 * MIB;
    let before = sys::memstats();
    let base = sys::reserve(LEN, 0).expect("reserve read-only");
    let mut sum = 0u64;
    for page in 0..LEN / PAGE / 2 {
        // SAFETY: inside the region reserved above, readable.
        sum |= unsafe { ((base + page * PAGE) as *const u64).read_volatile() };
    }
    // The other half populated with commit (MAP_POPULATE), then read.
    sys::commit(base + LEN / 2, LEN / 2).expect("commit of a read-only half");
    for page in LEN / PAGE / 2..LEN / PAGE {
        // SAFETY: as above.
        sum |= unsafe { ((base + page * PAGE) as *const u64).read_volatile() };
    }
    let after = sys::memstats();
    println!(
        "policy_check: read {} pages of a read-only region: resident {} -> {} pages, committed {} -> {} pages, \
         page tables {} -> {}",
        LEN / PAGE,
        before.resident_pages,
        after.resident_pages,
        before.committed_pages,
        after.committed_pages,
        before.page_table_frames,
        after.page_table_frames
    );
    if sum != 0 {
        return 13;
    }
    // The page tables the entries need are the only memory the reads take.
    let took =
        after.resident_pages > before.resident_pages + 2 || after.committed_pages > before.committed_pages;
    i32::from(took) * 14
}

fn main(arg: u64) -> i32 {
    let n = arg >> 8;
    match arg & 0xff {
        0 => commit_boundary(),
        1 => single_request(n),
        2 => quota(),
        3 => redline(),
        4 => watch(n),
        5 => hog(n),
        6 => background_scavenger(),
        7 => grow(n),
        8 => copy_when_memory_is_out(n),
        9 => heap_gives_back(),
        10 => read_only_reads(),
        11 => heap_spans_give_back(),
        _ => 1,
    }
}

pkrt::entry!(with_arg main);
