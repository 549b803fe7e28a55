//! The in-kernel test framework.
//!
//! Tests are plain functions registered with `#[test_case]` (Rust's
//! `custom_test_frameworks`) or passed to [`run_tests_with`] by a test kernel.
//! Each runs inside a *guard*: before the call the runner saves its
//! callee-saved registers and stack pointer ([`JumpBuf`]); if the test panics,
//! the panic handler jumps back there, and if it runs past its deadline the
//! timer interrupt edits its return frame to land there. Either way the test is
//! reported as failed and the next one runs, so one bad test cannot hide the
//! results of the others.
//!
//! Output follows libtest, so the host can read it like `cargo test`:
//!
//! ```text
//! running 3 tests
//! test pagekeeper::arch::tests::breakpoint_continues ... ok
//! test ... FAILED
//!     panicked at kernel/src/x.rs:10:5: assertion failed
//!
//! test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.52s
//! ```
//!
//! Limits, by construction: a failed test's stack frames are abandoned, not
//! unwound, so what it owned is leaked and a lock it held stays held (the
//! console lock is broken by the panic path). A test that hangs with
//! interrupts disabled cannot be interrupted; the host's QEMU timeout catches it.

use crate::arch::context::{self, JumpBuf};
use crate::arch::{gdt, qemu, timer, trap::TrapFrame};
use crate::println;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A test the runner can execute.
pub trait Testable {
    fn name(&self) -> &'static str;
    fn run(&self);
}

impl<T: Fn()> Testable for T {
    fn name(&self) -> &'static str {
        core::any::type_name::<T>()
    }

    fn run(&self) {
        self()
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RunnerConfig {
    /// A test still running after this long is stopped and fails.
    pub timeout_ms: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig { timeout_ms: 60_000 }
    }
}

/// The runner's saved context; written by `pk_guarded_call`, read by the
/// panic path and the watchdog. Only touched through raw pointers.
static mut JUMP: JumpBuf = JumpBuf::new();
/// A guarded test is running: JUMP is valid to jump back to.
static RUNNING: AtomicBool = AtomicBool::new(false);
static DEADLINE_TICK: AtomicU64 = AtomicU64::new(u64::MAX);
static TIMED_OUT: AtomicBool = AtomicBool::new(false);

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Passed,
    Panicked,
    TimedOut,
}

extern "C" fn call_test(arg: *mut u8) {
    // SAFETY: `arg` is the `&&dyn Testable` that `run_guarded` passed, alive
    // for the whole call.
    let test = unsafe { &*(arg as *const &dyn Testable) };
    test.run();
}

fn run_guarded(test: &dyn Testable, timeout_ms: u64) -> Verdict {
    let timeout_ticks = timeout_ms.div_ceil(1000 / timer::TICK_HZ);
    TIMED_OUT.store(false, Ordering::SeqCst);
    DEADLINE_TICK.store(timer::ticks() + timeout_ticks, Ordering::SeqCst);
    RUNNING.store(true, Ordering::SeqCst);
    let mut test_ref = test;
    // SAFETY: JUMP is only used by this runner (one test at a time); the
    // callee is a plain extern "C" fn taking the pointer we pass.
    let returned = unsafe {
        context::guarded_call(
            core::ptr::addr_of_mut!(JUMP),
            call_test,
            &mut test_ref as *mut &dyn Testable as *mut u8,
        )
    };
    RUNNING.store(false, Ordering::SeqCst);
    // A panic inside an interrupt handler jumps back with interrupts off.
    x86_64::instructions::interrupts::enable();
    match (returned, TIMED_OUT.load(Ordering::SeqCst)) {
        (true, _) => Verdict::Passed,
        (_, true) => Verdict::TimedOut,
        _ => Verdict::Panicked,
    }
}

/// Timer hook: stops a test that has run past its deadline by making the
/// interrupt return into `pk_jump_back` instead of into the test.
fn watchdog(frame: &mut TrapFrame) {
    if !RUNNING.load(Ordering::SeqCst) || timer::ticks() < DEADLINE_TICK.load(Ordering::SeqCst) {
        return;
    }
    RUNNING.store(false, Ordering::SeqCst);
    TIMED_OUT.store(true, Ordering::SeqCst);
    let selectors = gdt::selectors();
    let jump = core::ptr::addr_of!(JUMP);
    frame.rip = context::jump_back_address();
    frame.rdi = jump as u64;
    // SAFETY: JUMP.rsp was written by pk_guarded_call before RUNNING was set.
    frame.rsp = unsafe { (*jump).rsp() };
    frame.cs = u64::from(selectors.kernel_code.0);
    frame.ss = u64::from(selectors.kernel_data.0);
}

/// Called by the kernel's panic handler first. When a guarded test is running
/// it reports the panic as that test's failure and resumes the runner (never
/// returns); otherwise it returns and the panic is fatal.
pub fn on_panic(info: &PanicInfo) {
    if !RUNNING.swap(false, Ordering::SeqCst) {
        return;
    }
    println!("FAILED");
    println!("    {info}");
    // SAFETY: RUNNING was set, so JUMP holds the context of the runner, whose
    // stack frame is still live below the panicking test's frames.
    unsafe { context::jump_back(core::ptr::addr_of!(JUMP)) }
}

/// Entry point for `#[test_case]` suites (`#![test_runner]`).
pub fn test_runner(tests: &[&dyn Testable]) {
    run_tests_with(tests, RunnerConfig::default())
}

/// Runs `tests`, prints a libtest-style report and exits QEMU with success
/// exactly when every test passed.
pub fn run_tests_with(tests: &[&dyn Testable], config: RunnerConfig) -> ! {
    timer::set_tick_hook(watchdog);
    let start = timer::uptime_ms();
    println!("\nrunning {} tests", tests.len());
    let (mut passed, mut failed) = (0usize, 0usize);
    for test in tests {
        crate::print!("test {} ... ", test.name());
        match run_guarded(*test, config.timeout_ms) {
            Verdict::Passed => {
                passed += 1;
                println!("ok");
            }
            Verdict::Panicked => failed += 1,
            Verdict::TimedOut => {
                failed += 1;
                println!("FAILED\n    timed out after {} ms", config.timeout_ms);
            }
        }
    }
    let elapsed = timer::uptime_ms() - start;
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {}.{:02}s",
        elapsed / 1000,
        elapsed % 1000 / 10
    );
    qemu::exit(if failed == 0 { qemu::ExitCode::Success } else { qemu::ExitCode::Failure })
}

/// Asserts that every process in `done` exited with code 0 (for test
/// kernels that run programs to the end).
pub fn assert_exited_ok(done: &[crate::process::Finished]) {
    for f in done {
        assert_eq!(f.status, crate::process::ExitStatus::Exited(0), "{} ({}): {}", f.pid, f.name, f.status);
    }
}

/// Helpers of the benchmark kernels (`kernel/tests/*_bench.rs`), which
/// measure in TSC cycles and report ratios measured in the same boot.
pub mod bench {
    use crate::arch::qemu;
    use crate::println;

    pub fn cycles() -> u64 {
        // SAFETY: rdtsc has no side effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// Cycles `f` took.
    pub fn timed(f: impl FnOnce()) -> u64 {
        let start = cycles();
        f();
        cycles() - start
    }

    /// Ends a benchmark boot that could not measure: says why, in the
    /// test runner's format, and exits QEMU with failure.
    pub fn fail(bench: &str, what: &str) -> ! {
        println!("{bench}: {what}");
        println!("test result: FAILED. 0 passed; 1 failed");
        qemu::exit(qemu::ExitCode::Failure)
    }
}
