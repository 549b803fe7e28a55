//! Architecture glue: the only code in Pagekeeper that touches x86_64
//! hardware state (descriptor tables, interrupt controller, I/O ports, control
//! registers). Everything above it is written against the functions here.

pub mod context;
pub mod fpu;
pub mod fw_cfg;
pub mod gdt;
pub mod idt;
pub mod pic;
pub mod probe;
pub mod qemu;
pub mod serial;
pub mod timer;
pub mod trap;

/// Brings up the CPU tables and the timer, then enables interrupts.
pub fn init() {
    enable_protection();
    close_fast_system_calls();
    fpu::init();
    gdt::init();
    idt::init();
    pic::init();
    timer::init();
    x86_64::instructions::interrupts::enable();
}

/// Turns on what the memory manager relies on, whatever the firmware left:
/// NX (so no-execute mappings are honoured, not a reserved-bit fault) and
/// CR0.WP (so the kernel too faults on writes to read-only pages).
fn enable_protection() {
    use x86_64::registers::control::{Cr0, Cr0Flags};
    use x86_64::registers::model_specific::{Efer, EferFlags};
    // SAFETY: both bits only add checks; every mapping the bootloader made is
    // valid under them (it sets NX and read-only bits expecting them on).
    unsafe {
        Efer::update(|flags| flags.insert(EferFlags::NO_EXECUTE_ENABLE));
        Cr0::update(|flags| flags.insert(Cr0Flags::WRITE_PROTECT));
    }
}

/// Makes `int 0x80` the only way from ring 3 into the kernel, whatever the
/// firmware left: with EFER.SCE clear `syscall` is an invalid opcode, and
/// with IA32_SYSENTER_CS at 0 `sysenter` is a #GP (an invalid opcode on
/// AMD in long mode). Left set, either would enter ring 0 at an address
/// nobody here chose, on the process's own stack.
fn close_fast_system_calls() {
    use x86_64::registers::model_specific::{Efer, EferFlags, Msr};
    const IA32_SYSENTER_CS: u32 = 0x174;
    // SAFETY: clearing SCE and SYSENTER_CS only disables two instructions
    // this kernel never uses; nothing else depends on either.
    unsafe {
        Efer::update(|flags| flags.remove(EferFlags::SYSTEM_CALL_EXTENSIONS));
        Msr::new(IA32_SYSENTER_CS).write(0);
    }
}

/// Lets pending interrupts run, then restores the interrupt flag: long
/// kernel work that runs with interrupts off (system calls are interrupt
/// gates) calls it between steps, so timer ticks are taken, not lost.
/// Interrupt handlers must not take locks the caller may hold: ours (PIC,
/// timer tick, test watchdog) take none.
pub fn let_interrupts_in() {
    if !x86_64::instructions::interrupts::are_enabled() {
        // SAFETY: `sti` takes effect after the next instruction, so the
        // `nop` is the one window where pending interrupts are delivered;
        // `cli` restores the caller's state.
        unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
    }
}

/// Parks the CPU for good; interrupts still run.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::hlt();
    }
}

#[cfg(test)]
mod tests {
    use super::trap::BREAKPOINTS;
    use super::{gdt, timer};
    use core::sync::atomic::Ordering;

    #[test_case]
    fn breakpoint_is_reported_and_execution_continues() {
        let before = BREAKPOINTS.load(Ordering::Relaxed);
        x86_64::instructions::interrupts::int3();
        assert_eq!(BREAKPOINTS.load(Ordering::Relaxed), before + 1);
    }

    #[test_case]
    fn timer_ticks_advance() {
        let start = timer::ticks();
        while timer::ticks() < start + 3 {
            x86_64::instructions::hlt();
        }
        assert!(timer::uptime_ms() >= 30);
    }

    /// The stopwatch agrees with the timer interrupt's ticks, and keeps
    /// counting with interrupts off, where the ticks stand still.
    #[test_case]
    fn the_stopwatch_measures_time_with_interrupts_on_and_off() {
        let mut watch = timer::Stopwatch::start();
        let start = timer::ticks();
        // Read often (not halted through ticks): the PIT's count wraps once
        // a tick, and the stopwatch must see every wrap.
        let mut elapsed = 0;
        while timer::ticks() < start + 5 {
            elapsed = watch.elapsed_ms();
        }
        assert!(watch.elapsed_ms() >= elapsed, "it only goes forward");
        let elapsed = watch.elapsed_ms();
        // 40..=50 ms passed between the first tick's start and the fifth.
        // (Wide bounds: a busy host can hold the virtual CPU back for
        // longer than a tick, which both clocks then undercount.)
        assert!((20..=150).contains(&elapsed), "{elapsed} ms for 5 ticks of 10 ms");
        x86_64::instructions::interrupts::without_interrupts(|| {
            let (mut watch, ticks) = (timer::Stopwatch::start(), timer::ticks());
            while watch.elapsed_ms() < 30 {
                core::hint::spin_loop();
            }
            assert_eq!(timer::ticks(), ticks, "no tick was taken with interrupts off");
        });
    }

    #[test_case]
    fn kernel_runs_on_its_own_gdt_and_tss() {
        use x86_64::instructions::segmentation::{Segment, CS};
        let selectors = gdt::selectors();
        assert_eq!(CS::get_reg(), selectors.kernel_code);
        assert_eq!(x86_64::instructions::tables::sgdt().limit as usize, 7 * 8 - 1);
    }

    #[test_case]
    fn interrupts_are_enabled_after_init() {
        assert!(x86_64::instructions::interrupts::are_enabled());
    }
}
