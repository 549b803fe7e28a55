//! Event handlers in user space: the redline (the process crossed its
//! soft limit: free caches, scavenge), memory pressure (the level on
//! the pressure page changed), and the operator's scavenge request (the
//! runtime's own: the heap hands its free pages back).
//!
//! The kernel diverts the process into [`trampoline`] on its next return
//! to user mode, wherever it was, possibly in the middle of `malloc`.
//! Like a signal handler, a handler must not then touch the heap: so the
//! trampoline runs handlers at once only when the heap is not in use, and
//! otherwise leaves them pending for the heap to run when its operation
//! ends (a safe point). Handlers registered here are plain `fn`s.

use crate::sys;
use abi::{EVENT_PRESSURE, EVENT_REDLINE, EVENT_SCAVENGE};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The program's handlers (0: none), pending kinds (bit `kind`), and the
/// info of the latest event of each kind.
static REDLINE: AtomicUsize = AtomicUsize::new(0);
static PRESSURE: AtomicUsize = AtomicUsize::new(0);
static PENDING: AtomicU64 = AtomicU64::new(0);
static INFO: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// Handler runs, by kind (for tests and reports).
static RUNS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Runs `handler(bytes charged)` once each time the process crosses its
/// redline upwards.
pub fn on_redline(handler: fn(u64)) -> Result<(), abi::Error> {
    REDLINE.store(handler as usize, Ordering::Relaxed);
    sys::on_event(EVENT_REDLINE, trampoline_address()).map(|_| ())
}

/// Runs `handler(level)` when the pressure level changes. The runtime's
/// background scavenger listens too (see `heap`).
pub fn on_pressure(handler: fn(u64)) -> Result<(), abi::Error> {
    PRESSURE.store(handler as usize, Ordering::Relaxed);
    listen_to_pressure()
}

/// The heap's events, registered when it is made: pressure (the
/// background scavenger) and the operator's scavenge request.
pub(crate) fn listen_for_the_heap() -> Result<(), abi::Error> {
    sys::on_event(EVENT_SCAVENGE, trampoline_address())?;
    listen_to_pressure()
}

fn listen_to_pressure() -> Result<(), abi::Error> {
    sys::on_event(EVENT_PRESSURE, trampoline_address()).map(|_| ())
}

/// How many times the handlers of `kind` ran.
pub fn runs(kind: u64) -> u64 {
    RUNS.get(kind as usize).map_or(0, |r| r.load(Ordering::Relaxed))
}

fn trampoline_address() -> u64 {
    trampoline as *const () as u64
}

extern "C" fn trampoline(kind: u64, info: u64) -> ! {
    if let Some(slot) = INFO.get(kind as usize) {
        slot.store(info, Ordering::Relaxed);
        PENDING.fetch_or(1 << kind, Ordering::Relaxed);
    }
    if !crate::heap::in_use() {
        run_pending();
    }
    sys::event_return()
}

/// Runs the handlers of pending events (called by the trampoline, or by
/// the heap when an operation an event interrupted is over).
pub(crate) fn run_pending() {
    let pending = PENDING.swap(0, Ordering::Relaxed);
    for kind in [EVENT_REDLINE, EVENT_PRESSURE, EVENT_SCAVENGE] {
        if pending & (1 << kind) == 0 {
            continue;
        }
        let info = INFO[kind as usize].load(Ordering::Relaxed);
        RUNS[kind as usize].fetch_add(1, Ordering::Relaxed);
        match kind {
            EVENT_PRESSURE => crate::heap::on_pressure(),
            EVENT_SCAVENGE => {
                crate::heap::scavenge();
                continue;
            }
            _ => {}
        }
        let handler = if kind == EVENT_REDLINE { &REDLINE } else { &PRESSURE };
        let f = handler.load(Ordering::Relaxed);
        if f != 0 {
            // SAFETY: only on_redline/on_pressure store here, from a `fn(u64)`.
            let f: fn(u64) = unsafe { core::mem::transmute::<usize, fn(u64)>(f) };
            f(info);
        }
    }
}
