//! A test kernel whose tests misbehave on purpose, to test the runner itself:
//! a panicking test, a hung one (in the kernel, and in a ring-3 process) and ones raising #PF, #DE, #UD and #GP must
//! each be reported as FAILED (the exceptions with their register report),
//! the tests after them must still run, and the run must exit with failure.
//! The host side (tests/tests/qemu.rs) checks the exact report.
#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};
use pagekeeper::testing::{run_tests_with, RunnerConfig, Testable};
use pagekeeper::BOOTLOADER_CONFIG;

entry_point!(main, config = &BOOTLOADER_CONFIG);

fn passes_first() {}

fn panics_with_a_message() {
    panic!("deliberate failure 42");
}

fn hangs_forever() {
    loop {
        x86_64::instructions::hlt();
    }
}

fn faults_on_an_unmapped_address() {
    // SAFETY: not safe at all: the point is the page fault, which the panic
    // path turns into this test's failure.
    unsafe { core::ptr::read_volatile(0x0000_5555_dead_0000 as *const u64) };
}

fn divides_by_zero() {
    // SAFETY: deliberately faulting: #DE must become this test's failure.
    unsafe {
        core::arch::asm!("xor edx, edx", "xor eax, eax", "xor ecx, ecx", "div ecx", out("eax") _, out("ecx") _, out("edx") _)
    };
}

fn executes_an_invalid_opcode() {
    // SAFETY: deliberately faulting: #UD.
    unsafe { core::arch::asm!("ud2") };
}

fn loads_a_non_canonical_address() {
    // SAFETY: deliberately faulting: a non-canonical address raises #GP.
    unsafe { core::ptr::read_volatile(0x8000_0000_0000_0000u64 as *const u64) };
}

fn hangs_in_a_user_process() {
    pagekeeper::process::programs::spawn("spin").expect("spawn spin");
    pagekeeper::process::run_until_idle();
}

fn passes_after_the_failures() {
    let two = core::hint::black_box(2);
    assert_eq!(two + two, 4);
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    let tests: &[&dyn Testable] = &[
        &passes_first,
        &panics_with_a_message,
        &hangs_forever,
        &faults_on_an_unmapped_address,
        &divides_by_zero,
        &executes_an_invalid_opcode,
        &loads_a_non_canonical_address,
        &hangs_in_a_user_process,
        &passes_after_the_failures,
    ];
    run_tests_with(tests, RunnerConfig { timeout_ms: 2_000 })
}
