//! Events a process asked to hear about (`abi::Syscall::OnEvent`): its
//! redline crossed (shared/seeds/001's depletion handler), the pressure
//! level changed, or stays above normal (seed 002's low-memory
//! notification; repeated every tick while it lasts, see
//! `policy::pressure`), and the operator's request to scavenge its heap
//! (the shell's `scavenge PID`). The kernel never
//! calls into user code from inside itself: an event is noted, and on the
//! next return to user mode the process is diverted into its handler, like
//! a signal:
//!
//! ```text
//!  trap ─► kernel ─► before_return: event pending, handler set, not in one?
//!                      save registers + FPU; rip = handler, rdi = kind,
//!                      rsi = info, rsp = below the red zone, 16-aligned - 8
//!  handler(kind, info) runs in ring 3 ─► event_return() ─► registers and
//!                                         FPU as saved; the code goes on
//! ```
//!
//! One handler runs at a time: events meanwhile wait for its return.
//! A redline crossing is reported once per crossing (`AddressSpace::
//! poll_redline`); a pressure change when the published generation differs
//! from the one the process last heard.

use super::{with_running, Process};
use crate::arch::fpu::FpuState;
use crate::arch::trap::TrapFrame;
use crate::vm::{self, SpaceId};
use abi::{Error, EVENT_PRESSURE, EVENT_REDLINE, EVENT_SCAVENGE};
use mm::vm::USER_END;

/// A process's handlers and what is pending for them.
pub(super) struct Events {
    redline_handler: u64,
    pressure_handler: u64,
    scavenge_handler: u64,
    redline_pending: bool,
    /// Resident pages when the operator asked for a scavenge not delivered yet.
    scavenge_pending: Option<u64>,
    /// The pressure generation last delivered (or seen at registration).
    pressure_seen: u64,
    /// The registers a running handler interrupted, and its event's kind
    /// and info.
    interrupted: Option<(TrapFrame, FpuState)>,
    handling: (u64, u64),
}

/// Why an event could not be requested for a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    NoSuchProcess,
    /// It registered no handler for the event (not a pkrt program, or one
    /// without a heap yet).
    NoHandler,
}

impl Events {
    pub(super) const fn new() -> Events {
        Events {
            redline_handler: 0,
            pressure_handler: 0,
            scavenge_handler: 0,
            redline_pending: false,
            scavenge_pending: None,
            pressure_seen: 0,
            interrupted: None,
            handling: (0, 0),
        }
    }

    /// A handler is running (the process has not called event_return).
    pub(super) fn in_handler(&self) -> bool {
        self.interrupted.is_some()
    }

    /// Notes the operator's scavenge request for the next return to user
    /// mode.
    pub(super) fn request_scavenge(&mut self, space: SpaceId) -> Result<(), RequestError> {
        if self.scavenge_handler == 0 {
            return Err(RequestError::NoHandler);
        }
        self.scavenge_pending = Some(vm::with(space, |s| s.stats().resident_pages).unwrap_or(0));
        Ok(())
    }
}

/// on_event(kind, handler).
pub(super) fn on_event(kind: u64, handler: u64) -> Result<u64, Error> {
    if handler >= USER_END {
        return Err(Error::BadAddress);
    }
    let generation = crate::policy::pressure::generation();
    with_running(|_, p| {
        match kind {
            EVENT_REDLINE => p.events.redline_handler = handler,
            EVENT_SCAVENGE => p.events.scavenge_handler = handler,
            EVENT_PRESSURE => {
                p.events.pressure_handler = handler;
                p.events.pressure_seen = generation;
            }
            _ => return Err(Error::Invalid),
        }
        Ok(0)
    })
}

/// event_return(): restores what the handler interrupted into `frame`.
pub(super) fn event_return(frame: &mut TrapFrame) -> Result<(), Error> {
    let (saved, fpu) = with_running(|pid, p| {
        let saved = p.events.interrupted.take()?;
        if let (EVENT_SCAVENGE, before) = p.events.handling {
            let after = vm::with(p.space, |s| s.stats().resident_pages).unwrap_or(0);
            crate::info!(
                "process {pid} ({}) scavenged on request: {before} -> {after} resident pages",
                p.name
            );
        }
        Some(saved)
    })
    .ok_or(Error::Invalid)?;
    *frame = saved;
    fpu.restore();
    Ok(())
}

/// Called on every return to the running process from a trap: notes a
/// redline crossing when `memory_changed` (its charge can only rise in a
/// fault or a system call), then diverts `frame` into a handler if one is
/// due (the FPU state to save is the CPU's).
pub(super) fn before_return(frame: &mut TrapFrame, memory_changed: bool) {
    with_running(|_, p| {
        let crossed = memory_changed && vm::with(p.space, |s| s.poll_redline()).unwrap_or(false);
        p.events.redline_pending |= crossed && p.events.redline_handler != 0;
        deliver(&mut p.events, p.space, frame, || {
            let mut fpu = FpuState::INITIAL;
            fpu.save();
            fpu
        });
    });
}

/// Called when the scheduler resumes `p`, whose registers are `p.context`
/// and `p.fpu`: a process that only yields hears of events too.
pub(super) fn before_resume(p: &mut Process) {
    let Process { events, space, context, fpu, .. } = p;
    deliver(events, *space, context, || fpu.clone());
}

/// Diverts `frame` into the handler of the first event due, saving it
/// and the FPU state (`fpu` makes it: only when an event is delivered)
/// for event_return.
fn deliver(e: &mut Events, space: SpaceId, frame: &mut TrapFrame, fpu: impl FnOnce() -> FpuState) {
    if e.interrupted.is_some() {
        return;
    }
    let generation = crate::policy::pressure::generation();
    let (handler, kind, info) = if e.redline_pending {
        e.redline_pending = false;
        let charged = vm::with(space, |s| s.stats().charged_bytes()).unwrap_or(0);
        (e.redline_handler, EVENT_REDLINE, charged)
    } else if let Some(resident) = e.scavenge_pending.take() {
        (e.scavenge_handler, EVENT_SCAVENGE, resident)
    } else if e.pressure_handler != 0 && e.pressure_seen != generation {
        e.pressure_seen = generation;
        (e.pressure_handler, EVENT_PRESSURE, crate::policy::pressure::current() as u64)
    } else {
        return;
    };
    e.interrupted = Some((frame.clone(), fpu()));
    e.handling = (kind, info);
    frame.rip = handler;
    frame.rdi = kind;
    frame.rsi = info;
    // Below the System V red zone, aligned as at a call (RSP + 8 is
    // 16-byte aligned at the handler's first instruction).
    frame.rsp = (frame.rsp.wrapping_sub(128) & !15).wrapping_sub(8);
}
