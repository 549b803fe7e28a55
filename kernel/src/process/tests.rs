//! QEMU tests of processes: each spawns embedded user programs, runs them to
//! the end, and checks what they reported and that every frame came back.

use super::*;
use crate::memory::frames;
use mm::frame::Owner;

/// Frames held by processes (data pages and page tables): must return to
/// what it was before, exactly.
fn process_frames() -> (u64, u64) {
    let s = frames::stats();
    (s.used_by(Owner::Process), s.used_by(Owner::PageTable))
}

/// Free frames plus what the kernel heap holds: constant across a run, since
/// the only frames a run may keep are the kernel heap's own growth (process
/// table entries), which it reuses and never returns.
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
            assert!(alloc::format!("{report}").contains("kernel half"));
        }
        other => panic!("kernel_peek: {other}"),
    }
    assert_eq!(done.iter().filter(|f| f.status == ExitStatus::Exited(0)).count(), 2, "both hellos finished");
    assert_eq!((process_frames(), free_or_kernel_heap()), before);
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
    assert!(with_table(|t| t.ready.is_empty()), "nothing was queued");
}
