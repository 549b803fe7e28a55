//! Boots Pagekeeper kernels in QEMU and judges them by serial output and exit
//! code. Each test is one boot; the in-kernel suite groups many tests per boot.

use pagekeeper_boot::{Firmware, QemuExit};
use pagekeeper_tests::{
    boot, config, expect_suite_passed, parse_summary, standard_files, test_lines, Kernel, Summary,
};
use std::time::Duration;

#[test]
fn in_kernel_suite_passes_under_uefi() {
    let outcome = boot(&config(Kernel::Suite));
    expect_suite_passed("qemu-suite-uefi", &outcome);
    // The breakpoint test must have printed the report and then continued.
    assert!(outcome.serial.contains("breakpoint, continuing\n--- int3 (vector 3) in ring 0 ---"));
    let breakpoint = test_lines(&outcome.serial)
        .into_iter()
        .find(|(name, _)| name.ends_with("breakpoint_is_reported_and_execution_continues"))
        .expect("the breakpoint test ran");
    assert!(!breakpoint.1.contains("FAILED"), "{breakpoint:?}");
    // A process printed a fake panic and fake summaries: each came out as
    // a tagged line, escaped, and none starts a console line.
    let console = &outcome.serial;
    for spoof in ["KERNEL PANIC: spoofed", "test result: ok. 999", "test result: FAILED. 0 passed; 999"] {
        assert!(!console.lines().any(|l| l.starts_with(spoof)), "{spoof:?} starts a line:\n{console}");
    }
    for tagged in [
        "] KERNEL PANIC: spoofed by a process\n",
        "] test result: ok. 999 passed; 0 failed\n",
        "] \\x0d\\x1b[2Ktest result: FAILED. 0 passed; 999 failed\n",
        "] split over writes\n",
        "] bad utf-8: \\xff\\xfe and a last line without newline\n",
    ] {
        let line = console.lines().find(|l| format!("{l}\n").ends_with(tagged)).unwrap_or_default();
        assert!(line.starts_with("[pid ") && line.contains(" spoof] "), "missing {tagged:?} in:\n{console}");
    }
}

/// The region flood and the fuzzers on a small machine: every refusal is an
/// error code, and the kernel heap and frames come back exactly.
#[test]
fn in_kernel_suite_passes_with_48_mib() {
    let mut config = config(Kernel::Suite);
    config.memory_mib = 48;
    expect_suite_passed("qemu-suite-48mib", &boot(&config));
}

/// The frame allocator's exhaustion tests (every frame, every 2 MiB run)
/// and the heap growth test on a small and a large machine.
#[test]
fn in_kernel_suite_passes_with_64_mib() {
    let mut config = config(Kernel::Suite);
    config.memory_mib = 64;
    expect_suite_passed("qemu-suite-64mib", &boot(&config));
}

#[test]
fn in_kernel_suite_passes_with_1_gib() {
    let mut config = config(Kernel::Suite);
    config.memory_mib = 1024;
    expect_suite_passed("qemu-suite-1gib", &boot(&config));
}

/// Swap at 64 MiB with a 256 MiB virtio-blk swap disk: 160 MiB written and
/// read back bit-exact, two hogs at once, a hot set that stays resident,
/// every slot back after decommit/release/exit, a clean kill when swap is
/// full (kernel/tests/swap.rs).
#[test]
fn swap_suite_passes_at_64_mib_with_256_mib_of_swap() {
    let mut config = config(Kernel::Named("swap"));
    config.memory_mib = 64;
    config.swap_mib = 256;
    config.timeout = Some(Duration::from_secs(900));
    let outcome = boot(&config);
    let summary = expect_suite_passed("qemu-swap", &outcome);
    assert_eq!(summary.passed, 5, "{}", outcome.serial);
    let console = &outcome.serial;
    assert!(console.contains("swap on disk 0: 255 MiB (65535 slots)"), "{console}");
    assert!(console.contains("no memory is left (swap full)"), "{console}");
    for line in console.lines().filter(|l| l.contains("swap_pattern: hot set")) {
        println!("{line}");
    }
}

/// Memory policy at 64 MiB without swap: overcommit boundaries, quota,
/// redline, pressure page, background scavenger, OOM storm.
#[test]
fn policy_suite_passes_at_64_mib() {
    let mut config = config(Kernel::Named("policy"));
    config.memory_mib = 64;
    config.timeout = Some(Duration::from_secs(600));
    let outcome = boot(&config);
    let summary = expect_suite_passed("qemu-policy", &outcome);
    assert_eq!(summary.passed, 8, "{}", outcome.serial);
    let console = &outcome.serial;
    assert!(console.contains("oom: killed process"), "the storm's report: {console}");
    for line in console
        .lines()
        .filter(|l| l.contains("policy_check:") || l.starts_with("oom") || l.contains("  oom:"))
    {
        println!("{line}");
    }
}

/// The same kernel without a swap disk: the process bigger than RAM gets
/// the out-of-memory kill, as before swap existed, and the kernel goes on.
#[test]
fn without_swap_a_process_bigger_than_ram_is_killed() {
    let mut config = config(Kernel::Named("swap"));
    config.memory_mib = 64;
    let outcome = boot(&config);
    let summary = expect_suite_passed("qemu-no-swap", &outcome);
    assert_eq!(summary.passed, 1, "{}", outcome.serial);
    assert!(outcome.serial.contains("no memory is left (no swap device)"), "{}", outcome.serial);
}

/// Files at 64 MiB without swap, from the standard file disk: a 32 MiB
/// file mapped and checked page by page, pages shared by two processes,
/// copy on write, clean pages dropped under pressure and read again, the
/// bus error past the end, every bad argument, a program that costs only
/// the pages it touches (kernel/tests/files.rs).
#[test]
fn files_suite_passes_at_64_mib_from_the_file_disk() {
    let mut config = config(Kernel::Named("files"));
    config.memory_mib = 64;
    config.files = Some(standard_files());
    config.timeout = Some(Duration::from_secs(600));
    let outcome = boot(&config);
    let summary = expect_suite_passed("qemu-files", &outcome);
    assert_eq!(summary.passed, 7, "{}", outcome.serial);
    for line in outcome.serial.lines().filter(|l| l.contains("big_text:") || l.starts_with("pressure:")) {
        println!("{line}");
    }
}

#[test]
fn in_kernel_suite_passes_under_bios() {
    let mut config = config(Kernel::Suite);
    config.firmware = Firmware::Bios;
    expect_suite_passed("qemu-suite-bios", &boot(&config));
}

#[test]
fn runner_reports_panics_hangs_and_faults_and_goes_on() {
    let outcome = boot(&config(Kernel::Named("runner_selftest")));
    let console = &outcome.serial;
    assert_eq!(outcome.exit, QemuExit::Failure, "{console}");
    assert_eq!(parse_summary(console), Some(Summary { passed: 2, failed: 7 }), "{console}");
    let results: Vec<(&str, &str)> = test_lines(console)
        .into_iter()
        .map(|(name, result)| (name.trim_start_matches("runner_selftest::"), result))
        .collect();
    assert_eq!(
        results,
        vec![
            ("passes_first", "ok"),
            ("panics_with_a_message", "FAILED"),
            ("hangs_forever", "FAILED"),
            ("faults_on_an_unmapped_address", "FAILED"),
            ("divides_by_zero", "FAILED"),
            ("executes_an_invalid_opcode", "FAILED"),
            ("loads_a_non_canonical_address", "FAILED"),
            ("hangs_in_a_user_process", "FAILED"),
            ("passes_after_the_failures", "ok"),
        ],
        "{console}"
    );
    assert!(console.contains("deliberate failure 42"), "{console}");
    assert_eq!(console.matches("timed out after 2000 ms").count(), 2, "{console}");
    assert!(console.contains("address 0x00005555dead0000"), "{console}");
    for report in [
        "--- divide error (vector 0) in ring 0 ---",
        "--- invalid opcode (vector 6) in ring 0 ---",
        "--- general protection fault (vector 13) in ring 0 ---",
    ] {
        assert!(console.contains(report), "missing {report:?} in:\n{console}");
    }
}

#[test]
fn kernel_page_fault_prints_report_and_fails() {
    let outcome = boot(&config(Kernel::Named("page_fault_report")));
    let console = &outcome.serial;
    assert_eq!(outcome.exit, QemuExit::Failure, "{console}");
    assert!(!console.contains("the fault did not happen"), "{console}");
    for expected in [
        "KERNEL PANIC",
        "page fault at 0x5555dead0000, RIP 0x",
        "unreserved (no address space active): access violation: access to unreserved memory",
        "--- page fault (vector 14) in ring 0 ---",
        "address 0x00005555dead0000",
        "[read, kernel mode, page not present]",
        "RIP 0x",
        "R15 0x",
    ] {
        assert!(console.contains(expected), "missing {expected:?} in:\n{console}");
    }
}

#[test]
fn demo_kernel_runs_processes_and_stays_up() {
    let mut config = config(Kernel::Demo);
    config.swap_mib = 256;
    config.files = Some(standard_files());
    config.stop_after = Some(("kernel up".into(), Duration::from_secs(3)));
    let outcome = boot(&config);
    let console = &outcome.serial;
    assert_eq!(outcome.exit, QemuExit::Stopped, "{console}");
    for expected in [
        "memory map:",
        "usable",
        "bootloader",
        "kernel",
        "ACPI",
        "reserved",
        "meminfo:",
        "allocator metadata",
        "kernel heap",
        "page tables",
        "free blocks by order:",
        "process 4 (wild) killed: page fault at 0x5555dead0000",
        "access violation: touched a guard page",
        "(alloc_demo): exited with code 0",
        "(scribbler): exited with code 0",
        "after scavenge",
        "swap on disk 0: 255 MiB",
        "MiB) and reads it back",
        "file disk: ",
        "big_text: read 0x168 from a 2 MiB table",
        "(big_text): exited with code 6",
        "are in the page cache, shared by both",
        "file_check: read: 8192 pages intact",
        "(file_check): exited with code 0",
        "dropped",
        "swap_pattern: read back bit-exact",
        "(swap_pattern): exited with code 0",
        "pages out,",
        "reclaim: watermarks min",
        "an OOM storm",
        "oom_score_adj  score",
        "oom: killed process",
        "killed by the OOM killer",
        "commit: CommitLimit",
        "pressure: normal",
        "vm: 0 address spaces, 0 resident pages (0 of them file pages), 0 swapped pages, 0 page-table frames",
        "kernel up",
    ] {
        assert!(console.contains(expected), "missing {expected:?} in:\n{console}");
    }
}

/// `make bench`: swap-out and swap-in throughput against the raw device in
/// one boot (kernel/tests/swap_bench.rs); prints the ratios.
#[test]
#[ignore = "a benchmark; run by make bench"]
fn swap_throughput_against_the_raw_device() {
    let mut config = config(Kernel::Named("swap_bench"));
    config.swap_mib = 64;
    let outcome = boot(&config);
    for line in outcome.serial.lines().filter(|l| l.starts_with("swap bench") || l.contains(" of raw ")) {
        println!("{line}");
    }
    assert_eq!(outcome.exit, QemuExit::Success, "{}", outcome.serial);
}

/// `make bench`: file faults against their neighbours, in one boot
/// (kernel/tests/files_bench.rs).
#[test]
#[ignore = "a benchmark; run by make bench"]
fn file_fault_costs_against_copy_and_demand_zero() {
    let mut config = config(Kernel::Named("files_bench"));
    config.files = Some(standard_files());
    let outcome = boot(&config);
    for line in outcome.serial.lines().filter(|l| l.starts_with("files bench") || l.contains(" = ")) {
        println!("{line}");
    }
    assert_eq!(outcome.exit, QemuExit::Success, "{}", outcome.serial);
}

/// `make fuzz SEED=.. SECONDS=..` (ignored by `make test`, which runs the
/// short fixed-seed round inside every suite boot).
#[test]
#[ignore = "long; run by make fuzz"]
fn fuzzing_for_a_while_leaves_the_kernel_intact() {
    let seconds: u64 = std::env::var("PK_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut config = config(Kernel::Named("fuzz"));
    // Uptime is emulated: give QEMU generous wall-clock time.
    config.timeout = Some(Duration::from_secs(seconds * 4 + 120));
    let outcome = boot(&config);
    let console = &outcome.serial;
    let summary = console.lines().rev().find(|l| l.starts_with("fuzz: ") && l.contains(" rounds, "));
    println!("{}", summary.unwrap_or("fuzz: no summary"));
    assert_eq!(outcome.exit, QemuExit::Success, "{console}");
    assert_eq!(parse_summary(console), Some(Summary { passed: 1, failed: 0 }), "{console}");
}
