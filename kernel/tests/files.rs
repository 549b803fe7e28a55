//! The file test kernel: booted by the host tests at 64 MiB, without swap,
//! with the standard file disk (every user program as `bin/NAME`, and
//! `data/pages32`: 32 MiB of self-checking pages). Programs start from the
//! disk. Each test checks what the processes reported and that process
//! frames, page tables and the page cache's books balance afterwards.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{entry_point, BootInfo};
use mm::files::cache::CacheStats;
use mm::files::FileError;
use mm::frame::Owner;
use pagekeeper::memory::frames;
use pagekeeper::process::{programs, run_until_idle, ExitStatus, Finished};
use pagekeeper::testing::{assert_exited_ok, run_tests_with, RunnerConfig, Testable};
use pagekeeper::vm::FaultOutcome;
use pagekeeper::{files, println, BOOTLOADER_CONFIG};

entry_point!(main, config = &BOOTLOADER_CONFIG);

const READ: u64 = 0;
const SHARE: u64 = 1;
const PRIVATE: u64 = 2;
const PAST_END: u64 = 3;
const BAD_ARGUMENTS: u64 = 4;
const PRESSURE: u64 = 5;

fn arg(mode: u64, count: u64) -> u64 {
    mode | count << 8
}

fn cache() -> CacheStats {
    files::info().expect("the file disk is attached").stats
}

/// Runs the programs to the end; checks that every process frame and page
/// table came back, that no entry maps a cached page any more, and that
/// the page cache's frames are exactly its pages.
fn run(programs_and_args: &[(&'static str, u64)]) -> Vec<Finished> {
    let before = frames::stats();
    for &(name, arg) in programs_and_args {
        programs::spawn_with_arg(name, arg).expect("spawn");
    }
    let done = run_until_idle();
    let after = frames::stats();
    for owner in [Owner::Process, Owner::PageTable] {
        assert_eq!(after.used_by(owner), before.used_by(owner), "{owner:?} frames came back");
    }
    let stats = cache();
    assert_eq!((stats.mapped_pages, stats.mappings), (0, 0), "no entry maps a cached page after exit");
    assert_eq!(after.used_by(Owner::PageCache), stats.pages, "page-cache frames are its pages");
    println!("{}", files::info().expect("file disk"));
    done
}

fn a_32_mib_file_is_mapped_and_read_bit_exact_at_64_mib() {
    assert_exited_ok(&run(&[("file_check", arg(READ, 0))]));
}

fn two_processes_share_the_frames_of_a_mapped_file() {
    files::drop_unmapped();
    let data = files::open("data/pages32").expect("the test data").0;
    let before = cache();
    assert_exited_ok(&run(&[("file_check", arg(SHARE, 1024)), ("file_check", arg(SHARE, 1024))]));
    let after = cache();
    assert_eq!(files::cached_pages_of(data), 1024, "each page cached once, not once per process");
    let reads = after.misses - before.misses;
    assert!((1024..1024 + 64).contains(&reads), "{reads} disk reads for 1024 shared pages and the program");
    assert!(after.hits - before.hits >= 1024, "the second process found the pages cached");
}

fn a_private_write_is_seen_by_the_writer_only() {
    assert_exited_ok(&run(&[("file_check", arg(PRIVATE, 256))]));
    // A reader that starts afterwards sees the file as it is on the disk.
    assert_exited_ok(&run(&[("file_check", arg(READ, 0))]));
}

fn under_pressure_clean_pages_are_dropped_and_read_again_bit_exact() {
    let before = cache();
    assert_exited_ok(&run(&[("file_check", arg(PRESSURE, 40))]));
    let after = cache();
    let (dropped, reads) = (after.dropped - before.dropped, after.misses - before.misses);
    println!("pressure: {dropped} cached pages dropped, {reads} disk reads");
    assert!(dropped > 1024, "reclaim dropped file pages ({dropped})");
    assert!(reads > 8192, "dropped pages were read again ({reads})");
}

/// Shadow entries: a page reclaim drops leaves its eviction stamp behind,
/// found again when the page is read again (the replacement policy then
/// judges its refault distance, as for a page back from swap: the host
/// tests of `mm::reclaim::hot_cold` cover that judgement). Pages dropped
/// by hand (`drop_unmapped`, not reclaim's choice) leave none.
fn a_dropped_page_read_again_finds_its_shadow_entry() {
    use pagekeeper::vm::reclaim;
    const PAGES: u64 = 256;
    let (data, _) = files::open("data/pages32").expect("the test data");
    files::drop_unmapped();
    assert_eq!(files::cached_pages_of(data), 0);
    let shadows = || files::info().expect("file disk").shadows;
    let read_all = || {
        let mut page = [0u8; 4096];
        for p in 0..PAGES {
            files::read(data, p * 4096, &mut page).expect("a page of the file");
        }
    };
    read_all();
    let by_hand = shadows();
    files::drop_unmapped();
    read_all();
    assert_eq!(shadows(), by_hand, "pages dropped by hand leave no shadow");
    let (before, policy_before) = (cache(), reclaim::info().policy);
    let evicted = reclaim::evict(PAGES);
    let dropped = cache().dropped - before.dropped;
    assert!(evicted > 0 && dropped > 0, "reclaim dropped cached pages ({evicted}, {dropped})");
    assert_eq!(shadows().remembered - by_hand.remembered, dropped, "each dropped page left a shadow");
    // Ours are the only pages of the file cached before the eviction.
    let reread = PAGES - files::cached_pages_of(data);
    read_all();
    let refaults = shadows().refaults - by_hand.refaults;
    let policy = reclaim::info().policy;
    let judged = (policy.refaulted_hot + policy.refaulted_cold)
        - (policy_before.refaulted_hot + policy_before.refaulted_cold);
    println!("shadows: {dropped} pages dropped, {reread} of ours read again, {refaults} found their shadow");
    assert!(reread > 0, "some of the pages read were dropped");
    // Every page of every file has a place of its own: none is lost.
    assert_eq!(refaults, reread, "every page read again found its shadow");
    // The policy judges the distance of a page it admitted cold; with
    // room in its hot share (as here, memory is not short) pages come in
    // hot and need no judgement.
    assert!(judged <= refaults, "{judged} judged, {refaults} refaults");
}

fn touching_a_page_past_the_end_of_the_file_is_a_bus_error() {
    let done = run(&[("file_check", arg(PAST_END, 0)), ("hello", 0)]);
    let checker = done.iter().find(|f| f.name == "file_check").expect("it ran");
    match checker.status {
        ExitStatus::KilledByFault(report) => {
            assert!(matches!(report.outcome, FaultOutcome::File(FileError::PastEnd { .. })), "{report}");
            assert!(alloc::format!("{report}").contains("SIGBUS"), "{report}");
        }
        other => panic!("not killed by the fault: {other}"),
    }
    let hello = done.iter().find(|f| f.name == "hello").expect("it ran");
    assert_eq!(hello.status, ExitStatus::Exited(0), "the others go on");
}

fn every_bad_argument_gets_its_error() {
    assert_exited_ok(&run(&[("file_check", arg(BAD_ARGUMENTS, 0))]));
}

fn a_program_costs_only_the_pages_it_touches_and_shares_its_text() {
    let (file, entry) = files::open("bin/big_text").expect("big_text on the disk");
    files::drop_unmapped();
    let done = run(&[("big_text", 0), ("big_text", 0)]);
    let size_pages = entry.pages();
    for f in &done {
        let ExitStatus::Exited(resident) = f.status else { panic!("{}: {}", f.name, f.status) };
        println!("big_text: {resident} pages resident of a {size_pages}-page program");
        assert!((resident as u64) * 20 < size_pages, "{resident} resident pages of {size_pages}");
    }
    let cached = files::cached_pages_of(file);
    assert!(cached * 20 < size_pages, "{cached} of its pages cached once for both processes");
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    let tests: &[&dyn Testable] = &[
        &a_32_mib_file_is_mapped_and_read_bit_exact_at_64_mib,
        &two_processes_share_the_frames_of_a_mapped_file,
        &a_private_write_is_seen_by_the_writer_only,
        &under_pressure_clean_pages_are_dropped_and_read_again_bit_exact,
        &a_dropped_page_read_again_finds_its_shadow_entry,
        &touching_a_page_past_the_end_of_the_file_is_a_bus_error,
        &every_bad_argument_gets_its_error,
        &a_program_costs_only_the_pages_it_touches_and_shares_its_text,
    ];
    run_tests_with(tests, RunnerConfig { timeout_ms: 600_000 })
}
