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
    let divisor = divisor();
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

/// Time measured with interrupts off, where [`ticks`] stands still (a
/// polled disk request waited for under a lock): it reads PIT channel 0's
/// count, which runs down from the divisor once per tick whatever the
/// interrupt flag says, and adds up what it ran down between two reads.
/// A gap of more than one tick between reads is counted as less than it
/// was, never more, so a deadline kept with it comes late, never early;
/// its callers poll it far more often than that.
pub struct Stopwatch {
    last: u16,
    pit_counts: u64,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch { last: read_pit_count(), pit_counts: 0 }
    }

    /// Milliseconds since [`Self::start`].
    pub fn elapsed_ms(&mut self) -> u64 {
        let now = read_pit_count();
        self.pit_counts += pit_counts_between(self.last, now, divisor());
        self.last = now;
        self.pit_counts * 1000 / PIT_INPUT_HZ
    }
}

fn divisor() -> u16 {
    (PIT_INPUT_HZ / TICK_HZ) as u16
}

/// Counts the PIT ran down from `last` to `now`: mode 2 counts from the
/// divisor down to 1, then starts again at the divisor.
fn pit_counts_between(last: u16, now: u16, divisor: u16) -> u64 {
    if now <= last {
        u64::from(last - now)
    } else {
        u64::from(last) + u64::from(divisor) - u64::from(now)
    }
}

fn read_pit_count() -> u16 {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: the PIT's ports. Latching (command 0: channel 0, latch)
        // freezes the count for the two reads that follow, low byte
        // first; the timer keeps running and only this module uses the
        // ports, with interrupts off around the sequence.
        unsafe {
            Port::<u8>::new(PIT_COMMAND).write(0x00);
            let low = Port::<u8>::new(PIT_CHANNEL0).read();
            let high = Port::<u8>::new(PIT_CHANNEL0).read();
            u16::from_le_bytes([low, high])
        }
    })
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
