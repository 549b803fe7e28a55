//! Boots Pagekeeper kernels in QEMU and judges them by serial output and exit
//! code. Each test is one boot; the in-kernel suite groups many tests per boot.

use pagekeeper_boot::session::Session;
use pagekeeper_boot::{Firmware, QemuExit};
use pagekeeper_tests::{
    boot, config, expect_suite_passed, parse_summary, repo_root, standard_files, test_lines, Kernel, Summary,
};
use std::collections::HashMap;
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
/// full, batch writes failing in the middle of write-behind
/// (kernel/tests/swap.rs).
#[test]
fn swap_suite_passes_at_64_mib_with_256_mib_of_swap() {
    let mut config = config(Kernel::Named("swap"));
    config.memory_mib = 64;
    config.swap_mib = 256;
    config.timeout = Some(Duration::from_secs(900));
    let outcome = boot(&config);
    let summary = expect_suite_passed("qemu-swap", &outcome);
    assert_eq!(summary.passed, 18, "{}", outcome.serial);
    let console = &outcome.serial;
    for line in console
        .lines()
        .filter(|l| l.contains("read-ahead:") || l.contains("loop pass") || l.contains("one commit"))
    {
        println!("{line}");
    }
    assert!(console.contains("swap on disk 0: 255 MiB (65535 slots)"), "{console}");
    assert!(console.contains("no memory is left (swap full)"), "{console}");
    assert!(console.contains("no memory is left (swap disk out of service)"), "{console}");
    for line in console.lines().filter(|l| l.contains("swap_pattern: hot set")) {
        println!("{line}");
    }
}

/// Memory policy at 64 MiB without swap: overcommit boundaries, quota,
/// redline, pressure page, background scavenger, OOM storm, a heap at
/// the commit limit giving back its free runs' charge and its spans'
/// free pages, reads through the shared zero frame, a system call that
/// finds no memory.
#[test]
fn policy_suite_passes_at_64_mib() {
    let mut config = config(Kernel::Named("policy"));
    config.memory_mib = 64;
    config.timeout = Some(Duration::from_secs(600));
    let outcome = boot(&config);
    let summary = expect_suite_passed("qemu-policy", &outcome);
    assert_eq!(summary.passed, 12, "{}", outcome.serial);
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

/// A swap disk that really stalls: QEMU throttles it to 2 KiB/s, so a
/// swap write takes seconds, and the swap kernel, told so through fw_cfg,
/// runs its one test for it with a request timeout of 1 s: three
/// timeouts, each a real device reset while a request is on its way, then
/// the disk out of service and the kernel running on without swap.
#[test]
fn a_stalled_swap_disk_is_reset_then_put_out_of_service() {
    let mut config = config(Kernel::Named("swap"));
    config.memory_mib = 64;
    config.swap_mib = 256;
    config.swap_bytes_per_second = Some(2048);
    config.settings.push(("opt/pagekeeper/swap-disk".into(), "stalled".into()));
    let outcome = boot(&config);
    let summary = expect_suite_passed("qemu-swap-stalled", &outcome);
    assert_eq!(summary.passed, 1, "{}", outcome.serial);
    let console = &outcome.serial;
    assert!(console.contains("device reset and started again"), "{console}");
    assert!(console.contains("not started again (3 timeouts in a row): out of service"), "{console}");
    assert!(console.contains("no memory is left (swap disk out of service)"), "{console}");
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
    assert_eq!(summary.passed, 8, "{}", outcome.serial);
    let shown = |l: &&str| l.contains("big_text:") || l.starts_with("pressure:") || l.contains("shadows:");
    for line in outcome.serial.lines().filter(shown) {
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
    config.stop_after = Some(("pk> ".into(), Duration::from_secs(1)));
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
        "picture: 1280x800 framebuffer",
        "Pagekeeper shell: type help for the commands.",
        "pk> ",
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
    config.icount = std::env::var("PK_ICOUNT").is_ok();
    let outcome = boot(&config);
    for line in outcome.serial.lines().filter(|l| l.starts_with("swap bench") || l.starts_with("  ")) {
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

/// `make bench`: demand-zero faults against commit + touch with the zeroed
/// pool empty and full, a fault's cost breakdown, and ring-3 round trips,
/// in one boot (kernel/tests/fault_bench.rs).
#[test]
#[ignore = "a benchmark; run by make bench"]
fn fault_syscall_and_switch_costs() {
    let mut config = config(Kernel::Named("fault_bench"));
    config.memory_mib = 256;
    config.icount = std::env::var("PK_ICOUNT").is_ok();
    let outcome = boot(&config);
    for line in outcome
        .serial
        .lines()
        .filter(|l| l.starts_with("fault bench") || l.starts_with("  ") || l.starts_with("zeroed pool"))
    {
        println!("{line}");
    }
    assert_eq!(outcome.exit, QemuExit::Success, "{}", outcome.serial);
}

/// The fuzz boot (kernel/tests/fuzz.rs): rounds of four fuzz processes at
/// 48 MiB with a 64 MiB swap disk and the standard file disk, so hostile
/// calls run against reclaim, swap and the page cache; no panic, no hang,
/// no page of a kept hog read wrong, the footprint (frames, heap, swap
/// slots) back after the rounds. `make test` runs it for 30 s of uptime
/// from seed 1; `make fuzz SEED=.. SECONDS=.. FUZZ_MEMORY=.. FUZZ_SWAP=..`
/// for longer or on another machine (the kernel reads seed and seconds at
/// build time, this test the machine at run time).
#[test]
fn fuzzing_for_a_while_leaves_the_kernel_intact() {
    fuzz_boot(env_number("PK_FUZZ_MEMORY_MIB", 48), env_number("PK_FUZZ_SWAP_MIB", 64));
}

/// The number in environment variable `name`, or `default`.
fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The same boot without swap: memory runs out for real, the page cache
/// is all reclaim can take, and the OOM killer ends processes (this boot
/// hung twice before: direct reclaim retrying without bound, and two
/// processes thrashing on each other's code pages).
#[test]
fn fuzzing_without_swap_leaves_the_kernel_intact() {
    fuzz_boot(48, 0);
}

fn fuzz_boot(memory_mib: u32, swap_mib: u32) {
    let seconds: u64 = env_number("PK_FUZZ_SECONDS", 30);
    let mut config = config(Kernel::Named("fuzz"));
    config.memory_mib = memory_mib;
    config.swap_mib = swap_mib;
    config.files = Some(standard_files());
    // Uptime is emulated: give QEMU generous wall-clock time.
    config.timeout = Some(Duration::from_secs(seconds * 4 + 120));
    let outcome = boot(&config);
    let console = &outcome.serial;
    let summary = console.lines().rev().find(|l| l.starts_with("fuzz: ") && l.contains(" rounds, "));
    println!("{}", summary.unwrap_or("fuzz: no summary"));
    let totals = console.lines().skip_while(|l| !l.contains(" rounds, ")).skip(1);
    for line in totals.take_while(|l| !l.starts_with("test result")) {
        println!("{line}");
    }
    assert_eq!(outcome.exit, QemuExit::Success, "{console}");
    assert_eq!(parse_summary(console), Some(Summary { passed: 1, failed: 0 }), "{console}");
}

/// A session with the shell test kernel (kernel/tests/shell.rs): 128 MiB,
/// 16 MiB of swap, the standard file disk; waits for the first prompt.
fn shell_session() -> Session {
    let mut config = config(Kernel::Named("shell"));
    config.swap_mib = 16;
    config.files = Some(standard_files());
    let mut session = Session::start(&config).expect("starting QEMU");
    session.wait_for("pk> ", Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
    session
}

/// Types `line` and Enter; returns the answer (up to the next prompt).
fn ask(session: &mut Session, line: &str) -> String {
    session.send(format!("{line}\r").as_bytes()).expect("typing");
    session.wait_for("\npk> ", Duration::from_secs(60)).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The number after `word` in `text` ("resident 12 pages" → 12 for "resident").
fn number_after(text: &str, word: &str) -> Option<u64> {
    let rest = &text[text.find(word)? + word.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
}

#[test]
fn shell_answers_commands_and_survives_garbage() {
    let mut s = shell_session();
    let help = ask(&mut s, "help");
    for command in [
        "meminfo",
        "ps",
        "vmmap PID",
        "pte PID ADDR",
        "run PROG",
        "kill PID",
        "scavenge PID",
        "frames",
        "swapinfo",
        "swapoff",
        "swapon",
        "oom_adj PID N",
        "overcommit",
        "log",
        "picture",
    ] {
        assert!(help.contains(command), "help lacks {command}:\n{help}");
    }
    assert!(ask(&mut s, "meminfo").contains("commit: CommitLimit"));
    assert!(ask(&mut s, "ps").contains("0 processes"));

    let started = ask(&mut s, "run heap_idle 8");
    assert!(started.contains("started process 1 (heap_idle)"), "{started}");
    s.wait_for("idling", Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    let ps = ask(&mut s, "ps");
    let row = ps.lines().find(|l| l.contains("heap_idle")).unwrap_or_else(|| panic!("{ps}"));
    let resident_kib = number_after(row, "ready").or_else(|| number_after(row, "running")).expect("resident");
    assert!(resident_kib > 8 * 1024, "8 MiB touched: {row}");
    let vmmap = ask(&mut s, "vmmap 1");
    for expected in ["rw-u stack", "kernel-shared", "resident", "untouched", "r-xu file (private)"] {
        assert!(vmmap.contains(expected), "vmmap lacks {expected}:\n{vmmap}");
    }
    let pte = ask(&mut s, "pte 1 0x7ffffffef000");
    for expected in [
        "PML4 (level 4)",
        "PDPT (level 3)",
        "PD   (level 2)",
        "PT   (level 1)",
        "leaf: present, anonymous frame",
        "rw-u stack",
    ] {
        assert!(pte.contains(expected), "pte lacks {expected}:\n{pte}");
    }
    let unmapped = ask(&mut s, "pte 1 0x600000000000");
    assert!(unmapped.contains("no region: touching it kills the process"), "{unmapped}");

    assert!(ask(&mut s, "scavenge 1").contains("scavenge asked of process 1"));
    let report = s.wait_for("resident pages", Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let before = number_after(&report, "on request: ").expect("before");
    let after = number_after(&report, " -> ").expect("after");
    assert!(before > 2000 && after < before / 10, "scavenge gave back its free pages: {report}");

    assert!(ask(&mut s, "oom_adj 1 500").contains("oom_score_adj 500"));
    assert!(ask(&mut s, "oom_adj 1 5000").contains("error:"));
    assert!(ask(&mut s, "kill 1").contains("killed from the shell"));
    assert!(ask(&mut s, "kill 1").contains("error: no process 1"));
    assert!(ask(&mut s, "ps").contains("0 processes"));

    let off = ask(&mut s, "swapoff");
    assert!(off.contains("swap off: 0 pages brought back"), "{off}");
    assert!(ask(&mut s, "swapinfo").contains("swap: none"));
    assert!(ask(&mut s, "swapoff").contains("error: swap stays on: no swap device is on"));
    assert!(ask(&mut s, "swapon").contains("swap on: 16380 KiB"));
    assert!(ask(&mut s, "swapon").contains("error: swap is not off"));
    assert!(ask(&mut s, "swapinfo").contains("16380 KiB total"));

    // Garbage: every kind of bad line gets an error, none takes the kernel down.
    for (line, error) in [
        ("frobnicate", "unknown command 'frobnicate'"),
        ("vmmap", "missing argument; usage: vmmap PID"),
        ("kill 1 2 3", "too many arguments"),
        ("kill 99999999999999999999999", "not a number in range"),
        ("vmmap -1", "not a number in range"),
        ("pte 7 0x1000", "error: no process 7"),
        ("pte 1 0xffffffffffffffff", "is not a user address"),
        ("run no_such_program", "cannot start no_such_program: NoSuchProgram"),
        ("scavenge 42", "error: no process 42"),
        ("overcommit 9:999", "is not MODE or MODE:RATIO"),
        ("log loud", "is not a level"),
    ] {
        let answer = ask(&mut s, line);
        assert!(answer.contains(error), "{line:?} → {answer}");
    }
    let mut noise: Vec<u8> = (0u8..=255).filter(|b| *b != b'\r' && *b != b'\n' && *b != 3).collect();
    noise.extend_from_slice(b"\x1b[A\x1b[B\x1b[C\x1b[D\x1b[3~\x1bOP\x7f\x7f\x08");
    noise.extend(std::iter::repeat_n(b'x', 3000));
    s.send(&noise).expect("typing");
    s.send(b"\x03").expect("Ctrl-C"); // abandon whatever is left of that line
    s.wait_for("^C\r\npk> ", Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    // Editing: a typo, erased, then the history brings a line back.
    assert!(ask(&mut s, "psx\x7f").contains("0 processes"));
    assert!(ask(&mut s, "\x1b[A").contains("0 processes"), "Up recalls ps");
    let meminfo = ask(&mut s, "meminfo");
    assert!(meminfo.contains("process memory              0.0 MiB         0 frames"), "{meminfo}");
    let console = s.serial();
    assert!(!console.contains("KERNEL PANIC"), "{console}");
}

/// A screendump as (width, height, RGB bytes) from QEMU's binary PPM.
fn read_ppm(path: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let data = std::fs::read(path).expect("reading the screendump");
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"), "a binary 8-bit PPM");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, data[at + 1..at + 1 + w * h * 3].to_vec())
}

/// Pixels of each colour inside the rectangle (x, y, w, h).
fn colour_counts(ppm: &(usize, usize, Vec<u8>), rect: (usize, usize, usize, usize)) -> HashMap<u32, u64> {
    let (width, _, rgb) = ppm;
    let mut counts = HashMap::new();
    for y in rect.1..rect.1 + rect.3 {
        for x in rect.0..rect.0 + rect.2 {
            let p = &rgb[(y * width + x) * 3..][..3];
            *counts.entry(u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2])).or_insert(0) += 1;
        }
    }
    counts
}

/// Asks for `picture`; screendumps; checks that every colour's cells in the
/// grid are the kernel's own count of that category's frames. Returns
/// (colour → frames shown) and the dump.
fn picture_matches_the_kernel(s: &mut Session, dump: &std::path::Path) -> HashMap<u32, u64> {
    let answer = ask(s, "picture");
    let grid =
        answer.lines().find(|l| l.starts_with("picture: grid at")).unwrap_or_else(|| panic!("{answer}"));
    let numbers: Vec<usize> = grid
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    let [x, y, w, h, cell, per_cell] = numbers[..] else { panic!("{grid}") };
    assert_eq!(per_cell, 1, "128 MiB fits one frame per cell");
    s.screendump(dump).expect("screendump");
    let shown = colour_counts(&read_ppm(dump), (x, y, w, h));
    let mut frames = HashMap::new();
    for line in answer.lines().filter(|l| l.starts_with("picture: colour ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let colour = u32::from_str_radix(words[2], 16).unwrap();
        let pixels = shown.get(&colour).copied().unwrap_or(0);
        assert_eq!(pixels % (cell * cell) as u64, 0, "whole cells of {colour:06x}");
        let cells = pixels / (cell * cell) as u64;
        let said: u64 = words[6].parse().unwrap();
        assert_eq!(cells, said, "{line}: the picture shows what it says");
        if let Ok(kernel) = words[4].parse::<u64>() {
            // The kernel heap may grow by a frame or two between the
            // drawing and the count (the answer's own strings).
            let slack =
                if line.ends_with("kernel heap") || line.ends_with("free") || line.ends_with("page tables") {
                    4
                } else {
                    0
                };
            assert!(
                cells.abs_diff(kernel) <= slack,
                "{line}: the kernel counts {kernel}, the screen has {cells}"
            );
        }
        frames.insert(colour, cells);
    }
    frames
}

#[test]
fn memory_picture_colours_match_the_kernels_counts_and_follow_a_process() {
    let mut s = shell_session();
    let dir = repo_root().join("target/picture");
    std::fs::create_dir_all(&dir).unwrap();
    let before = picture_matches_the_kernel(&mut s, &dir.join("before.ppm"));
    let process_colour = 0x40e040;
    assert_eq!(before.get(&process_colour), Some(&0), "no process yet");
    assert!(before[&0x1f3a1f] > 20_000, "mostly free");
    ask(&mut s, "run heap_idle 8");
    s.wait_for("idling", Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    let after = picture_matches_the_kernel(&mut s, &dir.join("after.ppm"));
    assert!(after[&process_colour] > 2000, "the process's 8 MiB are drawn in its colour: {after:?}");
    assert!(after[&0x1f3a1f] + 2000 < before[&0x1f3a1f], "free shrank by what it took");
    // For the README: the same picture as PNG, when this QEMU can write one.
    let _ = s.screendump(&dir.join("picture.png"));
}
