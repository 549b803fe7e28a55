//! The system tick: PIT channel 0 at [`TICK_HZ`]. Uptime and the test
//! runner's watchdog are counted in ticks.

use super::trap::TrapFrame;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use x86_64::instructions::port::Port;

pub const TICK_HZ: u64 = 100;

const PIT_INPUT_HZ: u64 = 1_193_182;
const PIT_COMMAND: u16 = 0x43;
const PIT_CHANNEL0: u16 = 0x40;
/// Channel 0, lobyte/hibyte access, mode 2 (rate generator), binary.
const PIT_MODE_RATE: u8 = 0x34;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// A function the tick calls with the interrupted frame (the test watchdog);
/// 0 when none is set.
static TICK_HOOK: AtomicUsize = AtomicUsize::new(0);

pub fn init() {
    let divisor = (PIT_INPUT_HZ / TICK_HZ) as u16;
    // SAFETY: the PIT's ports; only this module programs the PIT.
    unsafe {
        Port::<u8>::new(PIT_COMMAND).write(PIT_MODE_RATE);
        Port::<u8>::new(PIT_CHANNEL0).write(divisor as u8);
        Port::<u8>::new(PIT_CHANNEL0).write((divisor >> 8) as u8);
    }
}

pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

pub fn uptime_ms() -> u64 {
    ticks() * 1000 / TICK_HZ
}

pub fn set_tick_hook(hook: fn(&mut TrapFrame)) {
    TICK_HOOK.store(hook as usize, Ordering::Release);
}

/// Called by the trap dispatcher on every timer interrupt.
pub(super) fn on_tick(frame: &mut TrapFrame) {
    TICKS.fetch_add(1, Ordering::Relaxed);
    let hook = TICK_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: the only non-zero value ever stored is a `fn(&mut TrapFrame)`
        // (set_tick_hook).
        let hook: fn(&mut TrapFrame) = unsafe { core::mem::transmute(hook) };
        hook(frame);
    }
}
