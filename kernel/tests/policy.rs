//! The memory-policy test kernel (docs/memory-policy.md), booted by the
//! host tests at 64 MiB without swap: each overcommit mode's boundary, a
//! quota'd process beside a neighbour, the redline handler, the pressure
//! page under a hog, the runtime's background scavenger, an OOM storm, a
//! heap at the commit limit giving its free runs' charge back, reads of a
//! read-only region through the shared zero frame, and a system call whose
//! copy of user memory finds none left.
//! Every test checks that process frames and page tables all came back.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{entry_point, BootInfo};
use mm::frame::Owner;
use mm::policy::commit::{OvercommitMode, OvercommitPolicy};
use mm::policy::pressure::PressureLevel;
use pagekeeper::memory::frames;
use pagekeeper::policy::{commit, pressure};
use pagekeeper::process::{programs, run_until_idle, ExitStatus, Finished, SpawnOptions};
use pagekeeper::testing::{run_tests_with, RunnerConfig, Testable};
use pagekeeper::vm::FaultOutcome;
use pagekeeper::{println, swap, BOOTLOADER_CONFIG};

entry_point!(main, config = &BOOTLOADER_CONFIG);

const MIB: u64 = 1 << 20;

/// policy_check's modes (see its documentation).
const COMMIT_BOUNDARY: u64 = 0;
const SINGLE_REQUEST: u64 = 1;
const QUOTA: u64 = 2;
const REDLINE: u64 = 3;
const WATCH: u64 = 4;
const HOG: u64 = 5;
const SCAVENGER: u64 = 6;
const GROW: u64 = 7;
const COPY_WHEN_OUT: u64 = 8;
const HEAP_GIVES_BACK: u64 = 9;
const READ_ONLY_READS: u64 = 10;
const HEAP_SPANS_GIVE_BACK: u64 = 11;

fn check(mode: u64, n: u64) -> u64 {
    mode | n << 8
}

fn balance() -> (u64, u64, u64) {
    let s = frames::stats();
    (s.used_by(Owner::Process), s.used_by(Owner::PageTable), commit::info().committed)
}

/// Starts every (program, argument, options), runs them all to the end,
/// and checks that their frames, page tables and commit charges came back.
fn run(list: &[(u64, SpawnOptions)]) -> Vec<Finished> {
    let before = balance();
    for &(arg, options) in list {
        programs::spawn_with("policy_check", arg, options).expect("spawn");
    }
    let done = run_until_idle();
    assert_eq!(balance(), before, "process frames, page tables and Committed_AS all came back");
    done
}

/// How the `index`-th process started by one `run` ended.
fn status_of(done: &[Finished], index: usize) -> ExitStatus {
    done.iter().find(|f| f.pid.0 == first_pid(done) + index as u32).expect("it ran").status
}

fn first_pid(done: &[Finished]) -> u32 {
    done.iter().map(|f| f.pid.0).min().expect("something ran")
}

fn with_policy(mode: OvercommitMode, ratio: u64, f: impl FnOnce()) {
    commit::set_policy(OvercommitPolicy { mode, ratio });
    f();
    commit::set_policy(OvercommitPolicy::DEFAULT);
}

fn ram_and_swap() -> (u64, u64) {
    (frames::stats().total, swap::info().map_or(0, |s| s.total_slots))
}

fn strict_overcommit_refuses_one_page_past_the_computed_commit_limit() {
    with_policy(OvercommitMode::Never, 60, || {
        let (ram, swap) = ram_and_swap();
        assert_eq!(commit::info().limit, swap + ram * 60 / 100, "CommitLimit = swap + RAM x ratio / 100");
        let done = run(&[(check(COMMIT_BOUNDARY, 0), SpawnOptions::DEFAULT)]);
        assert_eq!(status_of(&done, 0), ExitStatus::Exited(0));
    });
}

fn heuristic_overcommit_refuses_only_one_request_larger_than_ram_and_swap() {
    with_policy(OvercommitMode::Heuristic, 50, || {
        let (ram, swap) = ram_and_swap();
        let done = run(&[(check(SINGLE_REQUEST, ram + swap), SpawnOptions::DEFAULT)]);
        assert_eq!(status_of(&done, 0), ExitStatus::Exited(0), "RAM + swap pages allowed, one more refused");
    });
}

fn always_overcommit_allows_any_request() {
    with_policy(OvercommitMode::Always, 50, || {
        let (ram, swap) = ram_and_swap();
        let done = run(&[(check(SINGLE_REQUEST, ram + swap), SpawnOptions::DEFAULT)]);
        // 1: the request mode 0 refuses was allowed too.
        assert_eq!(status_of(&done, 0), ExitStatus::Exited(1));
    });
}

fn a_process_at_its_quota_gets_an_error_then_a_kill_and_its_neighbours_go_on() {
    let quota = SpawnOptions { ram_quota: Some(8 * MIB), ..SpawnOptions::DEFAULT };
    let done = run(&[
        (check(QUOTA, 0), quota),
        (check(GROW, 16), SpawnOptions::DEFAULT),
        (check(GROW, 16), SpawnOptions::DEFAULT),
    ]);
    match status_of(&done, 0) {
        ExitStatus::KilledByFault(report) => {
            assert_eq!(report.outcome, FaultOutcome::QuotaExceeded { quota: 8 * MIB }, "{report}")
        }
        other => panic!("the quota'd process was not stopped at its quota: {other}"),
    }
    for i in 1..3 {
        assert_eq!(status_of(&done, i), ExitStatus::Exited(0), "neighbour {i}");
    }
}

fn the_redline_handler_runs_once_per_crossing() {
    let options = SpawnOptions { ram_quota: Some(32 * MIB), redline: Some(8 * MIB), ..SpawnOptions::DEFAULT };
    let done = run(&[(check(REDLINE, 0), options)]);
    assert_eq!(status_of(&done, 0), ExitStatus::Exited(0));
}

fn a_heap_at_the_commit_limit_gives_its_free_runs_charge_back_and_goes_on() {
    exits_cleanly_under_strict_overcommit(HEAP_GIVES_BACK);
}

fn a_heap_at_the_commit_limit_gives_its_spans_free_pages_back_and_grows_them_again() {
    exits_cleanly_under_strict_overcommit(HEAP_SPANS_GIVE_BACK);
}

/// policy_check in `mode`, alone, in overcommit mode 2 (ratio 60), ends
/// with exit code 0.
fn exits_cleanly_under_strict_overcommit(mode: u64) {
    with_policy(OvercommitMode::Never, 60, || {
        let done = run(&[(check(mode, 0), SpawnOptions::DEFAULT)]);
        assert_eq!(status_of(&done, 0), ExitStatus::Exited(0));
    });
}

fn reads_of_a_read_only_region_take_no_frame_and_no_charge() {
    let used = frames::stats().used_by(Owner::Process);
    let done = run(&[(check(READ_ONLY_READS, 0), SpawnOptions::DEFAULT)]);
    assert_eq!(status_of(&done, 0), ExitStatus::Exited(0), "32 MiB read through the shared zero frame");
    assert_eq!(frames::stats().used_by(Owner::Process), used);
}

fn the_pressure_page_rises_with_a_hog_and_falls_back_when_it_exits() {
    assert_eq!(pressure::current(), PressureLevel::Normal);
    let done = run(&[
        (check(WATCH, PressureLevel::Medium as u64), SpawnOptions::DEFAULT),
        (check(HOG, 1000 | 400 << 16), SpawnOptions::DEFAULT),
    ]);
    assert_eq!(status_of(&done, 0), ExitStatus::Exited(0), "the watcher saw it rise and fall");
    assert_eq!(status_of(&done, 1), ExitStatus::Exited(0));
    assert_eq!(pressure::current(), PressureLevel::Normal);
}

fn the_background_scavenger_returns_freed_heap_pages_without_a_call() {
    let done = run(&[
        (check(SCAVENGER, 0), SpawnOptions::DEFAULT),
        // Waits while the scavenger allocates, then takes what is given
        // back, keeping memory short, until the scavenger is done.
        (check(HOG, 1000 | 20_000 << 16), SpawnOptions::DEFAULT),
    ]);
    assert_eq!(status_of(&done, 0), ExitStatus::Exited(0), "its pages came back without scavenge");
}

fn an_oom_storm_kills_the_highest_scores_only_and_spares_the_protected() {
    let protected = SpawnOptions { oom_score_adj: -1000, ..SpawnOptions::DEFAULT };
    let preferred = SpawnOptions { oom_score_adj: 500, ..SpawnOptions::DEFAULT };
    let done = run(&[
        (check(GROW, 24), SpawnOptions::DEFAULT),
        (check(GROW, 24), SpawnOptions::DEFAULT),
        (check(GROW, 24), SpawnOptions::DEFAULT),
        (check(GROW, 8), protected),
        (check(GROW, 4), preferred),
    ]);
    let mut kills = 0;
    for f in &done {
        match f.status {
            ExitStatus::KilledByOom(kill) => {
                kills += 1;
                assert!(kill.score >= kill.next_score, "process {} was not the highest score: {kill}", f.pid);
            }
            ExitStatus::Exited(0) => {}
            other => panic!("process {} ended otherwise than exit or OOM kill: {other}", f.pid),
        }
    }
    assert!(kills >= 1, "80 MiB wanted at 64 MiB without swap: someone had to go");
    assert_eq!(status_of(&done, 3), ExitStatus::Exited(0), "oom_score_adj -1000 is never chosen");
    assert!(matches!(status_of(&done, 4), ExitStatus::KilledByOom(_)), "adj +500 made the small one first");
    assert!(kills < 5, "not everyone");
    println!("oom storm: {kills} killed of 5");
}

/// The process `trigger`'s own system call (not a fault of its code)
/// found no memory and woke the OOM killer, which ended `status`'s process.
fn killed_for_a_system_call(status: ExitStatus, trigger: u32) -> bool {
    matches!(status, ExitStatus::KilledByOom(kill) if kill.trigger.0 == trigger && kill.in_system_call)
}

fn a_system_call_that_finds_no_memory_wakes_the_oom_killer_as_a_fault_would() {
    let protected = SpawnOptions { oom_score_adj: -1000, ..SpawnOptions::DEFAULT };
    let preferred = SpawnOptions { oom_score_adj: 1000, ..SpawnOptions::DEFAULT };
    // A neighbour the killer prefers: it goes, and the call goes on.
    let done = run(&[(check(GROW, 8), preferred), (check(COPY_WHEN_OUT, 50), SpawnOptions::DEFAULT)]);
    let copier = first_pid(&done) + 1;
    assert_eq!(
        status_of(&done, 1),
        ExitStatus::Exited(0),
        "the copy was retried after the kill and succeeded"
    );
    assert!(killed_for_a_system_call(status_of(&done, 0), copier), "{}", status_of(&done, 0));
    // Alone, the process itself is the one to go.
    let done = run(&[(check(COPY_WHEN_OUT, 0), SpawnOptions::DEFAULT)]);
    let status = status_of(&done, 0);
    assert!(killed_for_a_system_call(status, first_pid(&done)), "{status}");
    // Alone and protected: nothing can be freed, and the call says so.
    let done = run(&[(check(COPY_WHEN_OUT, 0), protected)]);
    assert_eq!(status_of(&done, 0), ExitStatus::Exited(10), "NoMemory, not BadAddress or a kill");
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    let tests: &[&dyn Testable] = &[
        &strict_overcommit_refuses_one_page_past_the_computed_commit_limit,
        &heuristic_overcommit_refuses_only_one_request_larger_than_ram_and_swap,
        &always_overcommit_allows_any_request,
        &a_process_at_its_quota_gets_an_error_then_a_kill_and_its_neighbours_go_on,
        &the_redline_handler_runs_once_per_crossing,
        &a_heap_at_the_commit_limit_gives_its_free_runs_charge_back_and_goes_on,
        &a_heap_at_the_commit_limit_gives_its_spans_free_pages_back_and_grows_them_again,
        &reads_of_a_read_only_region_take_no_frame_and_no_charge,
        &the_pressure_page_rises_with_a_hog_and_falls_back_when_it_exits,
        &the_background_scavenger_returns_freed_heap_pages_without_a_call,
        &an_oom_storm_kills_the_highest_scores_only_and_spares_the_protected,
        &a_system_call_that_finds_no_memory_wakes_the_oom_killer_as_a_fault_would,
    ];
    run_tests_with(tests, RunnerConfig { timeout_ms: 600_000 })
}
