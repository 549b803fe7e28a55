//! `make bench`'s fault boot: what a page fault, a system call and a
//! context switch cost, measured in this one boot (TSC cycles; under TCG
//! only the ratios mean anything), and what the zeroed pool buys.
//!
//! - a demand-zero fault (a kernel-mode first write to a reserved page)
//!   against commit + touch of the same pages (the frames mapped eagerly by
//!   one call, then written), with the zeroed pool empty (both zero on
//!   demand) and full (neither does), with the pool's hit rate;
//! - the cost breakdown of one demand-zero fault: the trap (exception
//!   entry, dispatch, return, the retried write), the frame allocation,
//!   the zeroing, and the rest of the handler (region lookup, page-table
//!   walk, entry write, reverse map);
//! - from ring 3 (the `bench_probe` program): a system-call round trip, a
//!   demand-zero fault round trip, a yield, and a context switch.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use bootloader_api::{entry_point, BootInfo};
use mm::frame::Owner;
use mm::pte::Prot;
use pagekeeper::arch::qemu;
use pagekeeper::arch::trap::PageFault;
use pagekeeper::memory::{frames, phys_to_virt};
use pagekeeper::process::{self, programs, ExitStatus};
use pagekeeper::testing::bench::{self, timed};
use pagekeeper::vm::{self, RegionKind, SpaceId, PROCESS_LIMITS};
use pagekeeper::{println, BOOTLOADER_CONFIG};
use x86_64::structures::idt::PageFaultErrorCode;

entry_point!(main, config = &BOOTLOADER_CONFIG);

/// Pages per measurement: fewer than the zeroed pool holds at 256 MiB
/// (8,192 frames), with room for their page tables.
const PAGES: u64 = 4096;
const PAGE: u64 = 4096;
const RING3_COUNT: u64 = 2000;
const RUNS: usize = 5;

fn fail(what: &str) -> ! {
    bench::fail("fault bench", what)
}

/// A new active space with `PAGES` writable anonymous pages reserved.
fn space() -> (SpaceId, u64) {
    space_with_fault_around(mm::vm::MAX_FAULT_AROUND)
}

/// The same, with fault-around limited to `pages` (0: off).
fn space_with_fault_around(pages: u32) -> (SpaceId, u64) {
    let id = vm::create(PROCESS_LIMITS).unwrap_or_else(|_| fail("create"));
    vm::with(id, |s| s.set_fault_around(pages)).unwrap_or_else(|| fail("set_fault_around"));
    let base = vm::with(id, |s| s.reserve(PAGES * PAGE, Prot::USER_RW, RegionKind::Anonymous))
        .and_then(|r| r.ok())
        .unwrap_or_else(|| fail("reserve"));
    vm::activate(id).unwrap_or_else(|_| fail("activate"));
    (id, base.as_u64())
}

fn done_with(id: SpaceId) {
    vm::activate_kernel();
    vm::destroy(id);
}

/// Writes the first byte of every page (each a demand-zero fault when the
/// page is not mapped yet).
fn touch_all(base: u64) {
    for i in 0..PAGES {
        // SAFETY: inside the writable range this bench reserved in the
        // active space.
        unsafe { core::ptr::write_volatile((base + i * PAGE) as *mut u8, 1) };
    }
}

/// Empties the zeroed pool, or fills it (the idle loop's work, done here
/// before the clock starts).
fn set_pool(full: bool) {
    frames::drain_zeroed_pool();
    if full {
        while frames::zero_idle_frames(256) > 0 {}
    }
}

/// A run of first writes: cycles per page, the pool's hits and misses,
/// and the faults it took.
#[derive(Clone, Copy)]
struct FirstTouch {
    cycles: u64,
    hits: u64,
    misses: u64,
    faults: u64,
}

/// Cycles per page of a sequential first write to every page, with
/// fault-around limited to `fault_around` pages (0: a fault per page).
fn demand_zero(pool_full: bool, fault_around: u32) -> FirstTouch {
    let (id, base) = space_with_fault_around(fault_around);
    // The page-table levels above the last are made once, outside the clock.
    make_first_table(id, base);
    set_pool(pool_full);
    let faults = || vm::with(id, |s| s.stats().faults.demand_zero).unwrap_or_else(|| fail("stats"));
    let (before, faults_before) = (frames::zeroed_pool(), faults());
    let cycles = timed(|| touch_all(base));
    let (after, faults_after) = (frames::zeroed_pool(), faults());
    done_with(id);
    FirstTouch {
        cycles: cycles / PAGES,
        hits: after.hits - before.hits,
        misses: after.misses - before.misses,
        faults: faults_after - faults_before,
    }
}

/// Commits every page of a fresh space in one call, then writes each.
fn commit_and_touch(pool_full: bool) -> u64 {
    let (id, base) = space();
    make_first_table(id, base);
    set_pool(pool_full);
    let cycles = timed(|| {
        vm::with(id, |s| s.commit(base, PAGES * PAGE)).and_then(|r| r.ok()).unwrap_or_else(|| fail("commit"));
        touch_all(base);
    });
    done_with(id);
    cycles / PAGES
}

/// Faults the first page in and decommits it: the upper tables (and the
/// first last-level table) exist before the clock starts, as they would
/// in a running process.
fn make_first_table(id: SpaceId, base: u64) {
    // SAFETY: inside the writable range this bench reserved.
    unsafe { core::ptr::write_volatile(base as *mut u8, 1) };
    vm::with(id, |s| s.decommit(base, PAGE)).and_then(|r| r.ok()).unwrap_or_else(|| fail("decommit"));
}

/// Cycles per page of the fault handler called directly, without a trap
/// (pool empty).
fn handler_alone() -> u64 {
    let (id, base) = space();
    make_first_table(id, base);
    set_pool(false);
    let error = PageFaultErrorCode::CAUSED_BY_WRITE;
    let cycles = timed(|| {
        for i in 0..PAGES {
            let fault = PageFault { address: base + i * PAGE, error, rip: 0 };
            vm::handle_fault(&fault).unwrap_or_else(|r| fail(&format!("{r}")));
        }
    });
    done_with(id);
    cycles / PAGES
}

/// Cycles per frame to allocate `PAGES` frames for a process (not
/// zeroed), and to zero each.
fn allocation_and_zeroing() -> (u64, u64) {
    set_pool(false);
    let mut blocks = alloc::vec::Vec::with_capacity(PAGES as usize);
    let allocation = timed(|| {
        for _ in 0..PAGES {
            blocks.push(
                frames::allocate_for_process(0, Owner::Process, false).unwrap_or_else(|_| fail("frames")),
            );
        }
    });
    let zeroing = timed(|| {
        for block in &blocks {
            // SAFETY: the frame is ours (just allocated), RAM in the physical window.
            unsafe {
                core::ptr::write_bytes(phys_to_virt(block.start()).as_mut_ptr::<u8>(), 0, PAGE as usize)
            };
        }
    });
    for block in blocks {
        frames::free(block).unwrap_or_else(|_| fail("free"));
    }
    (allocation / PAGES, zeroing / PAGES)
}

/// Runs `copies` of `bench_probe` in `mode` and returns each one's cycles
/// per round trip (its exit code).
fn ring3(mode: u64, copies: usize, pool_full: bool) -> alloc::vec::Vec<u64> {
    for _ in 0..copies {
        programs::spawn_with_arg("bench_probe", mode | RING3_COUNT << 8)
            .unwrap_or_else(|e| fail(&format!("spawn bench_probe: {e:?}")));
    }
    set_pool(pool_full);
    process::run_until_idle()
        .into_iter()
        .map(|done| match done.status {
            ExitStatus::Exited(cycles) if cycles > 0 => cycles as u64,
            other => fail(&format!("bench_probe mode {mode}: {other}")),
        })
        .collect()
}

/// The fastest of `RUNS` runs of `measure` (by `key`): the
/// machine is shared, and a run that was interrupted says nothing.
fn best<T: Copy>(measure: impl Fn() -> T, key: impl Fn(&T) -> u64) -> T {
    (0..RUNS).map(|_| measure()).min_by_key(|t| key(t)).expect("RUNS > 0")
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    if frames::zeroed_pool().capacity < PAGES + 64 {
        fail("the zeroed pool is too small for the bench (boot with 256 MiB)");
    }
    // Warm-up: the first space's kernel-heap growth stays out of the numbers.
    let _ = demand_zero(false, 0);

    let off = 0;
    let on = mm::vm::MAX_FAULT_AROUND;
    let cold = best(|| demand_zero(false, on), |r| r.cycles);
    let commit_cold = best(|| commit_and_touch(false), |&c| c);
    let warm_single = best(|| demand_zero(true, off), |r| r.cycles);
    let warm = best(|| demand_zero(true, on), |r| r.cycles);
    let commit_warm = best(|| commit_and_touch(true), |&c| c);
    let hit_rate = |r: &FirstTouch| r.hits as f64 * 100.0 / (r.hits + r.misses).max(1) as f64;
    println!("fault bench: {PAGES} pages, cycles per page (kernel-mode writes, upper tables present):");
    println!(
        "  zeroed pool empty:                  demand-zero fault {:>7}   commit + touch {commit_cold:>7}   fault = {:.2}x commit + touch ({} faults, {} zeroed on demand)",
        cold.cycles,
        ratio(cold.cycles, commit_cold),
        cold.faults,
        cold.misses
    );
    println!(
        "  zeroed pool full, no fault-around:  demand-zero fault {:>7}   commit + touch {commit_warm:>7}   fault = {:.2}x commit + touch ({} faults, pool hit rate {:.1} %)",
        warm_single.cycles,
        ratio(warm_single.cycles, commit_warm),
        warm_single.faults,
        hit_rate(&warm_single)
    );
    println!(
        "  zeroed pool full, fault-around {on}:  demand-zero fault {:>7}   commit + touch {commit_warm:>7}   fault = {:.2}x commit + touch ({} faults for {PAGES} pages, pool hit rate {:.1} %: {} hits, {} misses)",
        warm.cycles,
        ratio(warm.cycles, commit_warm),
        warm.faults,
        hit_rate(&warm),
        warm.hits,
        warm.misses
    );
    println!(
        "  the pool against zeroing on demand: fault = {:.2}x (one fault per page), commit + touch = {:.2}x; pooled fault with fault-around = {:.2}x commit + touch with zeroing",
        ratio(warm_single.cycles, cold.cycles),
        ratio(commit_warm, commit_cold),
        ratio(warm.cycles, commit_cold)
    );

    // Each part the best of its own runs: the parts are measured apart,
    // so the trap is what the whole fault costs beyond the handler.
    let whole = cold.cycles;
    let handler = best(handler_alone, |&c| c);
    let parts: alloc::vec::Vec<(u64, u64)> = (0..RUNS).map(|_| allocation_and_zeroing()).collect();
    let allocation = parts.iter().map(|p| p.0).min().expect("RUNS > 0");
    let zeroing = parts.iter().map(|p| p.1).min().expect("RUNS > 0");
    let trap = whole.saturating_sub(handler);
    let rest = handler.saturating_sub(allocation + zeroing);
    let share = |part: u64| part as f64 * 100.0 / whole as f64;
    println!(
        "  one demand-zero fault, pool empty: {whole} = trap {trap} ({:.0} %) + frame allocation {allocation} ({:.0} %) + zeroing {zeroing} ({:.0} %) + lookup, walk, entry write and reverse map {rest} ({:.0} %)",
        share(trap),
        share(allocation),
        share(zeroing),
        share(rest)
    );

    let alone = |mode, pool_full| best(|| ring3(mode, 1, pool_full)[0], |&c| c);
    let syscall = alone(0, false);
    let user_fault = alone(1, true);
    let user_fault_cold = alone(1, false);
    let user_sequential = alone(3, true);
    let yield_alone = alone(2, false);
    // Each copy's iteration holds two switches (to the other and back).
    let switch = best(|| ring3(2, 2, false).iter().sum::<u64>() / 4, |&c| c);
    println!("fault bench: from ring 3, {RING3_COUNT} round trips each, cycles per round trip:");
    println!("  system call (unknown number, refused) {syscall:>7}");
    println!(
        "  demand-zero fault, pool full           {user_fault:>7}   pool empty {user_fault_cold:>7}   pool full = {:.2}x the system call, {:.2}x pool empty",
        ratio(user_fault, syscall),
        ratio(user_fault, user_fault_cold)
    );
    println!(
        "  sequential first touch, pool full      {user_sequential:>7}   per page (fault-around: most writes take no fault) = {:.2}x a fault round trip",
        ratio(user_sequential, user_fault)
    );
    println!("  yield, no other process               {yield_alone:>7}");
    println!(
        "  context switch (two processes yielding) {switch:>6}   = {:.2}x a yield alone, {:.2}x the system call",
        ratio(switch, yield_alone),
        ratio(switch, syscall)
    );
    println!("{}", frames::zeroed_pool());
    println!("test result: ok. 1 passed; 0 failed");
    qemu::exit(qemu::ExitCode::Success)
}
