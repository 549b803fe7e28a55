//! `make fuzz SEED=.. SECONDS=..`: runs rounds of four fuzz processes at
//! once, each round from seeds derived from SEED, until SECONDS of uptime
//! have passed; then checks that the kernel's footprint (free frames, every
//! owner's frames, kernel heap, swap slots) is what it was after the first
//! round, the page cache's unmapped pages dropped before each look. The
//! boot has the standard file disk and a swap disk on a small machine, so
//! the fuzzers' file mappings and memory hogs run through the page cache,
//! reclaim and swap.
//! Any kernel panic ends the run as a failure (the panic handler exits QEMU
//! with failure); so does a process that ends with an unknown exit code.
//! SEED and SECONDS are read at build time (`PK_FUZZ_SEED`,
//! `PK_FUZZ_SECONDS`), so a changed value rebuilds this kernel.
#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};
use pagekeeper::arch::{qemu, timer};
use pagekeeper::process::fuzz;
use pagekeeper::{files, memory, println, swap, vm, BOOTLOADER_CONFIG};

entry_point!(main, config = &BOOTLOADER_CONFIG);

const PROCESSES: u64 = 4;

fn number(text: Option<&str>, default: u64) -> u64 {
    text.and_then(|t| t.trim().parse().ok()).unwrap_or(default)
}

/// The footprint once the page cache holds no page that nothing maps: a
/// round's file pages stay cached after it, which is no leak.
fn settled_footprint() -> memory::Footprint {
    files::drop_unmapped();
    memory::footprint()
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    let seed = number(option_env!("PK_FUZZ_SEED"), 1);
    let seconds = number(option_env!("PK_FUZZ_SECONDS"), 30);
    // Rounds before this one are skipped: a failure at round N comes back
    // with PK_FUZZ_FIRST_ROUND=N (`make fuzz ... FIRST_ROUND=N`).
    let first_round = number(option_env!("PK_FUZZ_FIRST_ROUND"), 0);
    println!("fuzz: seed {seed}, {seconds} s, {PROCESSES} processes a round, from round {first_round}");
    let mut totals = fuzz::RoundStats::default();
    let mut before = None;
    let mut round = first_round;
    let deadline = timer::uptime_ms() + seconds * 1000;
    while round == first_round || timer::uptime_ms() < deadline {
        let batch: [u64; PROCESSES as usize] =
            core::array::from_fn(|i| seed.wrapping_mul(1000).wrapping_add(round * PROCESSES + i as u64));
        match fuzz::round(&batch) {
            Ok(stats) => {
                totals.exited += stats.exited;
                totals.killed += stats.killed;
            }
            Err(finished) => {
                println!("fuzz: process {} ({}) ended with {}", finished.pid, finished.name, finished.status);
                println!("test result: FAILED. 0 passed; 1 failed");
                qemu::exit(qemu::ExitCode::Failure);
            }
        }
        // The first round warms the kernel's own tables up.
        before.get_or_insert_with(settled_footprint);
        round += 1;
    }
    let after = settled_footprint();
    let intact = Some(&after) == before.as_ref();
    println!(
        "fuzz: {} rounds, {} processes exited, {} killed; kernel footprint {}",
        round - first_round,
        totals.exited,
        totals.killed,
        if intact { "unchanged" } else { "CHANGED" }
    );
    if !intact {
        println!("  before: {before:?}\n  after:  {after:?}");
    }
    // What the rounds went through: file faults and page-cache reads,
    // swap-outs and swap-ins, out-of-memory kills.
    println!("fuzz: {}", vm::summary());
    if let Some(cache) = files::info() {
        println!("fuzz: {cache}");
    }
    if let Some(swap) = swap::info() {
        println!("fuzz: {swap}");
    }
    println!(
        "fuzz: {} commits restarted at the end of a time slice, {} processes killed by the OOM killer",
        pagekeeper::process::restarted_commits(),
        pagekeeper::process::oom::kills()
    );
    let (passed, failed) = if intact { (1, 0) } else { (0, 1) };
    println!("test result: {}. {passed} passed; {failed} failed", if intact { "ok" } else { "FAILED" });
    qemu::exit(if intact { qemu::ExitCode::Success } else { qemu::ExitCode::Failure })
}
