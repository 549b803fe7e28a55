//! QEMU tests of processes: each spawns embedded user programs, runs them to
//! the end, and checks what they reported and that every frame came back.

use super::*;
use crate::arch::timer;
use crate::memory::frames;
use mm::frame::Owner;

/// Frames held by processes (data pages and page tables): must return to
/// what it was before, exactly.
fn process_frames() -> (u64, u64) {
    let s = frames::stats();
    (s.used_by(Owner::Process), s.used_by(Owner::PageTable))
}

/// Free frames plus what the kernel heap holds: constant across a run, since
/// the only frames a run may move are the kernel heap's (its growth, and the
/// whole free pages it gives back). `memory::footprint()` is the exact check.
fn free_or_kernel_heap() -> u64 {
    let s = frames::stats();
    s.free + s.used_by(Owner::KernelHeap)
}

fn run(names: &[&'static str]) -> Vec<Finished> {
    for &name in names {
        programs::spawn(name).expect("spawn");
    }
    run_until_idle()
}

fn status_of(done: &[Finished], name: &str) -> ExitStatus {
    done.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name} did not finish")).status
}

#[test_case]
fn a_program_runs_in_ring_3_and_exits_with_its_code() {
    let before = (process_frames(), free_or_kernel_heap());
    let done = run(&["hello"]);
    assert_eq!(status_of(&done, "hello"), ExitStatus::Exited(0));
    assert_eq!((process_frames(), free_or_kernel_heap()), before, "exit freed everything");
}

#[test_case]
fn every_bad_syscall_argument_gets_its_error_code() {
    let done = run(&["syscall_check"]);
    assert_eq!(status_of(&done, "syscall_check"), ExitStatus::Exited(0), "failed checks = exit code");
}

#[test_case]
fn a_killed_process_leaves_the_others_running_and_frames_balanced() {
    let before = (process_frames(), free_or_kernel_heap());
    let done = run(&["hello", "wild", "stack_overflow", "kernel_peek", "hello"]);
    assert_eq!(done.len(), 5);
    match status_of(&done, "wild") {
        ExitStatus::KilledByFault(report) => {
            assert_eq!(report.address, 0x5555_dead_0000);
            assert_eq!(report.outcome, vm::FaultOutcome::Violation(vm::Violation::Unreserved));
            assert!(report.error.contains(x86_64::structures::idt::PageFaultErrorCode::USER_MODE));
        }
        other => panic!("wild: {other}"),
    }
    match status_of(&done, "stack_overflow") {
        ExitStatus::KilledByFault(report) => {
            assert_eq!(report.outcome, vm::FaultOutcome::Violation(vm::Violation::GuardPage));
        }
        other => panic!("stack_overflow: {other}"),
    }
    match status_of(&done, "kernel_peek") {
        ExitStatus::KilledByFault(report) => {
            assert_eq!(report.address, 0xffff_8000_0000_0000);
            assert!(report.error.contains(x86_64::structures::idt::PageFaultErrorCode::PROTECTION_VIOLATION));
            assert_eq!(report.outcome, vm::FaultOutcome::Violation(vm::Violation::KernelOnly));
            let text = alloc::format!("{report}");
            assert!(
                text.contains("kernel half: access violation: user access to a kernel-only page"),
                "{text}"
            );
        }
        other => panic!("kernel_peek: {other}"),
    }
    assert_eq!(done.iter().filter(|f| f.status == ExitStatus::Exited(0)).count(), 2, "both hellos finished");
    assert_eq!((process_frames(), free_or_kernel_heap()), before);
}

#[test_case]
fn each_privileged_instruction_kills_only_its_process_with_the_cpus_exception() {
    const DIVIDE: u8 = 0;
    const DEBUG: u8 = 1;
    const INVALID_OPCODE: u8 = 6;
    const STACK_SEGMENT: u8 = 12;
    const GENERAL_PROTECTION: u8 = 13;
    // The argument of `privileged` (its ATTEMPTS, in order) and the
    // vectors that may end it.
    let expected: [(&str, &[u8]); 17] = [
        ("hlt", &[GENERAL_PROTECTION]),
        ("cli", &[GENERAL_PROTECTION]),
        ("port read", &[GENERAL_PROTECTION]),
        ("int3", &[GENERAL_PROTECTION]),
        ("int 0x20", &[GENERAL_PROTECTION]),
        ("int 0x0e", &[GENERAL_PROTECTION]),
        ("ud2", &[INVALID_OPCODE]),
        ("syscall", &[INVALID_OPCODE]),
        // #GP on Intel, #UD on AMD (QEMU's default CPU model says AMD).
        ("sysenter", &[GENERAL_PROTECTION, INVALID_OPCODE]),
        ("mov to cr3", &[GENERAL_PROTECTION]),
        ("divide by zero", &[DIVIDE]),
        ("trap flag, then a system call", &[DEBUG]),
        ("wrmsr", &[GENERAL_PROTECTION]),
        ("lidt", &[GENERAL_PROTECTION]),
        ("kernel selector into ds", &[GENERAL_PROTECTION]),
        ("iretq to ring 0", &[GENERAL_PROTECTION]),
        // Its stack pointer crossed ticks and a system call untouched.
        ("a non-canonical stack", &[STACK_SEGMENT, GENERAL_PROTECTION]),
    ];
    let before = (process_frames(), free_or_kernel_heap());
    let pids: Vec<Pid> = (0..expected.len())
        .map(|arg| programs::spawn_with_arg("privileged", arg as u64).expect("spawn"))
        .collect();
    programs::spawn("hello").expect("spawn");
    let done = run_until_idle();
    for (&(name, vectors), pid) in expected.iter().zip(pids) {
        let status = done.iter().find(|f| f.pid == pid).expect("it finished").status;
        match status {
            ExitStatus::KilledByException { vector, .. } if vectors.contains(&vector) => {}
            other => panic!("privileged {name}: {other}"),
        }
    }
    assert_eq!(status_of(&done, "hello"), ExitStatus::Exited(0), "a neighbour ran to its end");
    assert_eq!((process_frames(), free_or_kernel_heap()), before, "every frame came back");
}

#[test_case]
fn scavenge_lowers_resident_frames_by_the_freed_pages() {
    // alloc_demo checks it against the kernel's own resident count
    // (memstats) and exits 0 only if it held.
    let done = run(&["alloc_demo"]);
    assert_eq!(status_of(&done, "alloc_demo"), ExitStatus::Exited(0));
}

#[test_case]
fn scribbling_over_the_whole_arena_does_not_break_the_heap() {
    let done = run(&["scribbler"]);
    assert_eq!(status_of(&done, "scribbler"), ExitStatus::Exited(0));
}

#[test_case]
fn a_double_free_is_refused_with_a_clear_error() {
    let done = run(&["double_free"]);
    assert_eq!(status_of(&done, "double_free"), ExitStatus::Exited(3), "pkrt::heap::HEAP_ERROR_EXIT");
}

#[test_case]
fn bad_elf_images_are_refused() {
    assert_eq!(spawn("empty", &[]).unwrap_err(), SpawnError::Elf(ElfError::NotElf64LittleEndian));
    let mut image = alloc::vec::Vec::from(programs::image("hello").unwrap());
    image[18] = 3; // e_machine: i386
    assert_eq!(spawn("i386", &image).unwrap_err(), SpawnError::Elf(ElfError::NotX86_64));
    let truncated = &programs::image("hello").unwrap()[..200];
    assert!(spawn("truncated", truncated).is_err());
    // A segment whose vaddr + mem_size wraps around.
    let mut wrapping = alloc::vec::Vec::from(programs::image("hello").unwrap());
    let phoff = u64::from_le_bytes(wrapping[32..40].try_into().unwrap()) as usize;
    let load = (0..usize::from(wrapping[56]))
        .map(|i| phoff + i * 56)
        .find(|&at| wrapping[at..at + 4] == [1, 0, 0, 0])
        .expect("a PT_LOAD header");
    wrapping[load + 16..load + 24].copy_from_slice(&(u64::MAX - 4095).to_le_bytes());
    assert_eq!(spawn("wrapping", &wrapping).unwrap_err(), SpawnError::Elf(ElfError::SegmentOutsideUserSpace));
    assert_eq!(programs::spawn("no-such-program").unwrap_err(), SpawnError::NoSuchProgram);
    assert!(with_table(|t| t.ready.is_empty()), "nothing was queued");
}

#[test_case]
fn fpu_and_sse_state_never_crosses_processes() {
    // Two spies, so that a spy also runs right after the other spy and
    // right after the secret keeper.
    let done = run(&["fpu_secret", "fpu_spy", "fpu_spy"]);
    assert_eq!(status_of(&done, "fpu_secret"), ExitStatus::Exited(0), "its own state survived every switch");
    for spy in done.iter().filter(|f| f.name == "fpu_spy") {
        assert_eq!(spy.status, ExitStatus::Exited(0), "rounds in which the spy saw foreign state");
    }
}

#[test_case]
fn console_output_of_processes_is_tagged_and_escaped() {
    // The host test reads the console: every spoofed line carries the tag.
    let done = run(&["spoof"]);
    assert_eq!(status_of(&done, "spoof"), ExitStatus::Exited(0));
}

#[test_case]
fn a_region_flood_ends_in_an_error_code_and_the_kernel_keeps_nothing() {
    let before = crate::memory::footprint();
    let status = status_of(&run(&["region_flood"]), "region_flood");
    assert_eq!(status, ExitStatus::Exited(0));
    // Now with every frame taken first: the region records must come from
    // a kernel that has almost nothing left, and still fail cleanly.
    programs::spawn_with_arg("region_flood", 1).expect("spawn");
    let status = status_of(&run_until_idle(), "region_flood");
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(crate::memory::footprint(), before, "the kernel heap and every frame are back");
}

#[test_case]
fn a_huge_sparse_release_is_quick_and_others_keep_running() {
    let start = timer::ticks();
    let done = run(&["sparse_release", "hello"]);
    let ticks = timer::ticks() - start;
    assert_eq!(status_of(&done, "sparse_release"), ExitStatus::Exited(0));
    assert_eq!(status_of(&done, "hello"), ExitStatus::Exited(0));
    // A page-by-page walk of 63 GiB took seconds per call under TCG; a
    // walk of what exists takes well under one tick. (A loose bound: this
    // guards against the regression, it does not measure speed.)
    assert!(ticks < 3 * timer::TICK_HZ, "took {ticks} ticks");
}

/// Fixed seeds for the short fuzzing round of `make test`.
const FUZZ_SEEDS: [u64; 4] = [0x5eed_0001, 0x5eed_0002, 0x5eed_0003, 0x5eed_0004];

#[test_case]
fn fuzzing_processes_leave_the_kernel_as_they_found_it() {
    // A first round warms the kernel's own tables up (the process table's
    // nodes, the ready queue) to the size a round needs.
    fuzz::round(&FUZZ_SEEDS.map(|s| s + 100)).expect("warm-up round");
    let before = crate::memory::footprint();
    let stats = fuzz::round(&FUZZ_SEEDS).unwrap_or_else(|f| panic!("fuzz process {}: {}", f.pid, f.status));
    assert_eq!(stats.exited + stats.killed, FUZZ_SEEDS.len());
    assert_eq!(crate::memory::footprint(), before, "frames, owners and kernel heap are back");
}
