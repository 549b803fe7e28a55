//! System calls (`int 0x80`; ABI in the `abi` crate, docs/process.md).
//!
//! Every argument is checked before use: lengths and alignment by the VMM's
//! range checks, pointers by range (user half only) and then accessed
//! through probes, so an unmapped, unreserved or read-only buffer is an
//! error code, never a kernel fault.

use super::{running_space, write_output, ExitStatus, Next};
use crate::arch::trap::TrapFrame;
use crate::memory::frames;
use crate::vm::{self, probe, RegionKind, VmError};
use abi::{Error, MemStats, Syscall, MAX_WRITE, PROT_EXEC, PROT_MASK, PROT_WRITE};
use mm::pte::Prot;
use mm::vm::USER_END;

pub(super) fn handle(frame: &mut TrapFrame) -> Next {
    let (a, b, c) = (frame.rdi, frame.rsi, frame.rdx);
    let result = match Syscall::from_number(frame.rax) {
        None => Err(Error::NoSuchCall),
        Some(Syscall::Exit) => return Next::End(ExitStatus::Exited(a as i32)),
        Some(Syscall::Yield) => {
            frame.rax = 0;
            return Next::Requeue;
        }
        Some(Syscall::Write) => write(a, b),
        Some(Syscall::Reserve) => reserve(a, b, c),
        Some(Syscall::Commit) => commit(a, b),
        Some(Syscall::Decommit) => space_op(|s| s.decommit(a, b)),
        Some(Syscall::Release) => {
            let result = space_op(|s| s.release(a, b));
            crate::memory::heap::trim_slack(); // released regions may free heap pages
            result
        }
        Some(Syscall::Protect) => prot(c).and_then(|p| space_op(|s| s.protect(a, b, p).map(|()| 0))),
        Some(Syscall::MemStats) => memstats(a),
    };
    frame.rax = match result {
        Ok(value) => value,
        Err(e) => e.to_return() as u64,
    };
    Next::Resume
}

fn error(e: VmError) -> Error {
    match e {
        VmError::ZeroLength | VmError::Unaligned { .. } => Error::Invalid,
        VmError::NullPage | VmError::NonCanonical { .. } | VmError::KernelHalf { .. } => Error::OutOfRange,
        VmError::Overlap { .. } => Error::Overlap,
        VmError::NotReserved { .. } => Error::NotReserved,
        VmError::LimitExceeded { .. }
        | VmError::NoSpace { .. }
        | VmError::OutOfMemory
        | VmError::RegionLimit { .. }
        | VmError::KernelMemoryLimit { .. } => Error::NoMemory,
        VmError::NotYetBacked { .. } | VmError::Corrupt { .. } => Error::NotSupported,
        VmError::SwapIn { .. } => Error::Io,
    }
}

fn in_running_space<R>(f: impl FnOnce(&mut vm::Space) -> R) -> R {
    vm::with(running_space(), f).expect("the running process has a space")
}

fn space_op(f: impl FnOnce(&mut vm::Space) -> Result<u64, VmError>) -> Result<u64, Error> {
    in_running_space(f).map_err(error)
}

/// Commit in 2 MiB steps, each with direct reclaim when memory is short:
/// a step that runs out of frames is retried after reclaim (work done stays,
/// so a retry only walks the step again), and no step holds the registry
/// for longer than 512 pages' work.
fn commit(addr: u64, len: u64) -> Result<u64, Error> {
    const STEP: u64 = 2 << 20;
    let range = mm::vm::check_user_range(addr, len).map_err(error)?;
    let (start, end) = (range.start.as_u64(), range.end.as_u64());
    let space = running_space();
    let mut brought_in = 0;
    let mut at = start;
    while at < end {
        let step = STEP.min(end - at);
        brought_in += vm::with_reclaim(space, |s| s.commit(at, step))
            .expect("the running process has a space")
            .map_err(error)?;
        at += step;
    }
    Ok(brought_in)
}

fn prot(bits: u64) -> Result<Prot, Error> {
    if bits & !PROT_MASK != 0 {
        return Err(Error::Invalid);
    }
    Ok(Prot { write: bits & PROT_WRITE != 0, exec: bits & PROT_EXEC != 0, user: true })
}

fn reserve(len: u64, prot_bits: u64, addr: u64) -> Result<u64, Error> {
    let prot = prot(prot_bits)?;
    let anon = RegionKind::Anonymous;
    space_op(|s| {
        if addr == 0 { s.reserve(len, prot, anon) } else { s.reserve_at(addr, len, prot, anon) }
            .map(|a| a.as_u64())
    })
}

/// True when `ptr..ptr+len` lies in the user half.
fn user_range(ptr: u64, len: u64) -> bool {
    ptr.checked_add(len).is_some_and(|end| end <= USER_END)
}

fn write(ptr: u64, len: u64) -> Result<u64, Error> {
    if len > MAX_WRITE {
        return Err(Error::Invalid);
    }
    if !user_range(ptr, len) {
        return Err(Error::BadAddress);
    }
    let mut buf = [0u8; MAX_WRITE as usize];
    for (i, byte) in buf[..len as usize].iter_mut().enumerate() {
        *byte = probe::read(ptr + i as u64).map_err(|_| Error::BadAddress)?;
    }
    write_output(&buf[..len as usize]);
    Ok(len)
}

fn memstats(ptr: u64) -> Result<u64, Error> {
    // The whole destination is checked before any byte is written (in the
    // user half, reserved, writable), so a bad one leaves the process's
    // memory as it was. (The probes below can
    // then fail only if no frame is left for a demand-zero page.)
    let (writable, space) = in_running_space(|s| (s.user_may_write(ptr, MemStats::SIZE as u64), s.stats()));
    if !writable {
        return Err(Error::BadAddress);
    }
    let stats = MemStats {
        resident_pages: space.resident_pages,
        page_table_frames: space.table_frames,
        reserved_bytes: space.reserved_bytes,
        demand_zero_faults: space.faults.demand_zero,
        free_frames: frames::stats().free,
        swapped_pages: space.swapped_pages,
        swap_in_faults: space.faults.swapped_in,
    };
    for (i, byte) in stats.to_bytes().into_iter().enumerate() {
        // SAFETY: the range is in the user half of the running process and
        // was checked writable; the probe turns any fault into an error.
        unsafe { probe::write(ptr + i as u64, byte) }.map_err(|_| Error::BadAddress)?;
    }
    Ok(0)
}
