//! System calls (`int 0x80`; ABI in the `abi` crate, docs/process.md).
//!
//! Every argument is checked before use: lengths and alignment by the VMM's
//! range checks, pointers by range (user half only) and then accessed
//! through probes, so an unmapped, unreserved or read-only buffer is an
//! error code, never a kernel fault. A copy that finds no memory goes to
//! the OOM killer, as the process's own access would (`user_access`).

use super::{oom, running_pid, running_space, write_output, ExitStatus, Next, OomKill};
use crate::arch::trap::TrapFrame;
use crate::memory::frames;
use crate::vm::{self, probe, FaultOutcome, FaultReport, RegionKind, VmError};
use abi::{Error, MemStats, Syscall, MAP_PRIVATE, MAX_WRITE, NO_RESERVE, PROT_EXEC, PROT_MASK, PROT_WRITE};
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::PAGE_SIZE;
use mm::files::{FileEntry, FileError, FileId, MAX_NAME};
use mm::pte::Prot;
use mm::pte::MAX_FILE_PAGE;
use mm::vm::{Accounting, USER_END};

pub(super) fn handle(frame: &mut TrapFrame) -> Next {
    let (a, b, c, d) = (frame.rdi, frame.rsi, frame.rdx, frame.r10);
    let result = match Syscall::from_number(frame.rax) {
        None => Err(Error::NoSuchCall),
        Some(Syscall::Exit) => return Next::End(ExitStatus::Exited(a as i32)),
        Some(Syscall::Yield) => {
            frame.rax = 0;
            return Next::Requeue;
        }
        Some(Syscall::Write) => return reply(frame, write(a, b)),
        Some(Syscall::Reserve) => reserve(a, b, c),
        Some(Syscall::Commit) => return commit(frame, a, b),
        Some(Syscall::Decommit) => space_op(|s| s.decommit(a, b)),
        Some(Syscall::Release) => {
            let result = space_op(|s| s.release(a, b));
            crate::memory::heap::trim_slack(); // released regions may free heap pages
            result
        }
        Some(Syscall::Protect) => prot(c).and_then(|p| space_op(|s| s.protect(a, b, p).map(|()| 0))),
        Some(Syscall::MemStats) => return reply(frame, memstats(a)),
        Some(Syscall::Open) => return reply(frame, open(a, b)),
        Some(Syscall::FileSize) => file(a).map(|(_, entry)| entry.size),
        Some(Syscall::Map) => map(a, b, c, d),
        Some(Syscall::OnEvent) => super::events::on_event(a, b),
        Some(Syscall::EventReturn) => match super::events::event_return(frame) {
            // Every register is the interrupted code's again, rax too.
            Ok(()) => return Next::Resume,
            Err(e) => Err(e),
        },
        Some(Syscall::SetOomScoreAdj) => super::set_own_oom_score_adj(a as i64),
    };
    reply(frame, result.map_err(Stop::Error))
}

/// Why a system call did not return a value.
enum Stop {
    /// It failed: the process gets this error code.
    Error(Error),
    /// The process ends instead: the OOM killer chose it while the call
    /// copied its memory.
    KilledByOom(OomKill),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Error(e)
    }
}

/// Puts a call's result in the process's rax, or ends the process.
fn reply(frame: &mut TrapFrame, result: Result<u64, Stop>) -> Next {
    frame.rax = match result {
        Ok(value) => value,
        Err(Stop::Error(e)) => e.to_return() as u64,
        Err(Stop::KilledByOom(kill)) => return Next::End(ExitStatus::KilledByOom(kill)),
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
        | VmError::CommitRefused(_)
        | VmError::RegionLimit { .. }
        | VmError::KernelMemoryLimit { .. } => Error::NoMemory,
        VmError::Corrupt { .. } => Error::NotSupported,
        VmError::SwapIn { .. } => Error::Io,
        VmError::File { error, .. } => match error {
            FileError::NoSuchFile => Error::NotFound,
            FileError::PastEnd { .. } => Error::OutOfRange,
            FileError::Device(_) => Error::Io,
            FileError::NoMemory => Error::NoMemory,
        },
        VmError::SharedFileWritable { .. } => Error::ReadOnly,
        VmError::QuotaExceeded { .. } => Error::QuotaExceeded,
        VmError::KernelShared { .. } => Error::Protected,
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
/// for longer than 512 pages' work. The count returned is every page the
/// call brought in, the attempts before a retry's included (a page the
/// call's own reclaim evicted and the call brought in again counts twice).
/// A call whose time slice ends with work left is restarted: its progress
/// goes into the process's registers (the rest of the range in rdi and
/// rsi, RIP back on its `int 0x80`) and the process goes to the back of
/// the ready queue; when it runs again the same instruction asks for the
/// rest, and the call returns the pages of every part, with rdi and rsi
/// as the process set them. So a commit larger than free memory, which
/// evicts to swap page by page inside the call, cannot keep the other
/// processes waiting until it is done. Every part does at least one step,
/// so a call always gets on.
fn commit(frame: &mut TrapFrame, addr: u64, len: u64) -> Next {
    let resumed = resumed_commit(frame.rip, addr, len);
    let asked = resumed.map_or((addr, len), |r| r.asked);
    let mut brought_in = resumed.map_or(0, |r| r.brought_in);
    let result = match mm::vm::check_user_range(addr, len) {
        Ok(range) => match commit_steps(range.start.as_u64(), range.end.as_u64(), &mut brought_in) {
            Steps::Done(result) => result,
            Steps::SliceOver { at, end } => {
                let rest = RestartedCommit { rip: frame.rip, addr: at, len: end - at, brought_in, asked };
                return restart_commit(frame, rest);
            }
        },
        Err(e) => Err(error(e)),
    };
    // The process sees one call: its argument registers as it set them.
    (frame.rdi, frame.rsi) = asked;
    reply(frame, result.map(|()| brought_in).map_err(Stop::Error))
}

/// How [`commit_steps`] stopped.
enum Steps {
    /// The range is committed, or a step failed.
    Done(Result<(), Error>),
    /// The time slice ended with `at..end` still to do.
    SliceOver { at: u64, end: u64 },
}

/// Commits `start..end` in 2 MiB steps with direct reclaim, adding the
/// pages brought in to `brought_in`; stops after a step when the time
/// slice is over (never before the first).
fn commit_steps(start: u64, end: u64, brought_in: &mut u64) -> Steps {
    const STEP: u64 = 2 << 20;
    let space = running_space();
    let mut at = start;
    while at < end {
        if at > start && super::slice_over() {
            return Steps::SliceOver { at, end };
        }
        let step = STEP.min(end - at);
        let counted = |s: &mut vm::Space| s.commit_counting(at, step, brought_in);
        if let Err(e) = vm::with_reclaim(space, counted).expect("the running process has a space") {
            return Steps::Done(Err(error(e)));
        }
        at += step;
    }
    Steps::Done(Ok(()))
}

/// A `commit` cut short by the end of its time slice (Linux's
/// `restart_syscall` in spirit): what the same `int 0x80` will ask for
/// when the process runs again, and what the parts before brought in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RestartedCommit {
    /// RIP after the `int 0x80` (the trap frame's at the call).
    rip: u64,
    /// The rest of the range.
    addr: u64,
    len: u64,
    /// Pages the earlier parts brought in.
    brought_in: u64,
    /// The call's arguments as the process gave them (addr, len): put
    /// back in rdi and rsi when the call returns, as the ABI keeps every
    /// register but rax.
    asked: (u64, u64),
}

/// Length of `int 0x80` (CD 80). A prefix before it, which a hostile
/// program may add, is skipped by the restart and changes nothing.
const INT_0X80_LEN: u64 = 2;

/// Commits restarted since boot.
static RESTARTED: AtomicU64 = AtomicU64::new(0);

/// How many `commit` calls were cut short by their time slice and
/// restarted, since boot.
pub fn restarted_commits() -> u64 {
    RESTARTED.load(Ordering::Relaxed)
}

fn restart_commit(frame: &mut TrapFrame, rest: RestartedCommit) -> Next {
    super::with_running(|_, p| p.restart = Some(rest));
    frame.rdi = rest.addr;
    frame.rsi = rest.len;
    // (Never below 2: page 0 cannot be reserved, so no code runs there;
    // wrapping keeps even a nonsense RIP the process's own problem.)
    frame.rip = rest.rip.wrapping_sub(INT_0X80_LEN);
    RESTARTED.fetch_add(1, Ordering::Relaxed);
    Next::Requeue
}

/// The restarted commit this call continues (the same instruction asking
/// for the rest of the range), taken from the process; `None` for any
/// other call (an event handler's own commit, say, which leaves the
/// restart waiting for its call).
fn resumed_commit(rip: u64, addr: u64, len: u64) -> Option<RestartedCommit> {
    super::with_running(|_, p| {
        let rest = p.restart.filter(|r| (r.rip, r.addr, r.len) == (rip, addr, len))?;
        p.restart = None;
        Some(rest)
    })
}

fn prot(bits: u64) -> Result<Prot, Error> {
    if bits & !PROT_MASK != 0 {
        return Err(Error::Invalid);
    }
    Ok(Prot { write: bits & PROT_WRITE != 0, exec: bits & PROT_EXEC != 0, user: true })
}

fn reserve(len: u64, flags: u64, addr: u64) -> Result<u64, Error> {
    let prot = prot(flags & !NO_RESERVE)?;
    let accounting = if flags & NO_RESERVE != 0 { Accounting::NoReserve } else { Accounting::Normal };
    let anon = RegionKind::Anonymous;
    space_op(|s| {
        if addr == 0 {
            s.reserve_with(len, prot, anon, accounting)
        } else {
            s.reserve_at_with(addr, len, prot, anon, accounting)
        }
        .map(|a| a.as_u64())
    })
}

/// True when `ptr..ptr+len` lies in the user half.
fn user_range(ptr: u64, len: u64) -> bool {
    ptr.checked_add(len).is_some_and(|end| end <= USER_END)
}

/// The file with id `id`.
fn file(id: u64) -> Result<(FileId, &'static FileEntry), Error> {
    let id = FileId(u16::try_from(id).map_err(|_| Error::NotFound)?);
    Ok((id, crate::files::table().get(id).ok_or(Error::NotFound)?))
}

fn open(ptr: u64, len: u64) -> Result<u64, Stop> {
    if len == 0 || len > MAX_NAME as u64 {
        return Err(Error::Invalid.into());
    }
    let mut buf = [0u8; MAX_NAME];
    let name = read_user(ptr, &mut buf[..len as usize])?;
    let name = core::str::from_utf8(name).map_err(|_| Error::Invalid)?;
    Ok(crate::files::open(name).map(|(id, _)| u64::from(id.0)).ok_or(Error::NotFound)?)
}

/// Maps `len` bytes of file `id` from page-aligned `offset` (see
/// `abi::Syscall::Map`). The range may run past the file's end, but must
/// start inside it.
fn map(id: u64, offset: u64, len: u64, flags: u64) -> Result<u64, Error> {
    if flags & !(PROT_MASK | MAP_PRIVATE) != 0 || !offset.is_multiple_of(PAGE_SIZE) {
        return Err(Error::Invalid);
    }
    let (id, entry) = file(id)?;
    let first_page = offset / PAGE_SIZE;
    if first_page >= entry.pages() || first_page.saturating_add(len / PAGE_SIZE) > MAX_FILE_PAGE {
        return Err(Error::OutOfRange);
    }
    let (prot, private) = (prot(flags & PROT_MASK)?, flags & MAP_PRIVATE != 0);
    let kind = RegionKind::File { file: id.0, first_page, private };
    space_op(|s| s.reserve(len, prot, kind).map(|a| a.as_u64()))
}

/// Copies `buf.len()` bytes from user address `ptr`.
// The probe's closure returns a report; see user_access.
#[allow(clippy::result_large_err)]
fn read_user(ptr: u64, buf: &mut [u8]) -> Result<&[u8], Stop> {
    if !user_range(ptr, buf.len() as u64) {
        return Err(Error::BadAddress.into());
    }
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = user_access(|| probe::read(ptr + i as u64))?;
    }
    Ok(buf)
}

/// One probed access to the running process's memory. A fault that finds
/// no memory goes to the OOM killer, as the same fault from ring 3 would,
/// and the access is retried once another process has been killed; any
/// other fault is the call's error.
// The report is made once per failed access; boxing it would allocate in
// the fault path, which must not.
#[allow(clippy::result_large_err)]
fn user_access<T>(mut access: impl FnMut() -> Result<T, FaultReport>) -> Result<T, Stop> {
    loop {
        let report = match access() {
            Ok(value) => return Ok(value),
            Err(report) => report,
        };
        if !report.outcome.is_out_of_memory() {
            return Err(access_error(report.outcome).into());
        }
        match oom::out_of_memory(running_pid(), &report) {
            oom::Verdict::Retry => continue,
            oom::Verdict::KillSelf(kill) => return Err(Stop::KilledByOom(kill)),
            oom::Verdict::Refused => return Err(Error::NoMemory.into()),
        }
    }
}

/// The error code of a probed access that faulted (`outcome`, not out of
/// memory): what the same fault from ring 3 would have killed the
/// process for.
fn access_error(outcome: FaultOutcome) -> Error {
    match outcome {
        FaultOutcome::SwapInFailed(_) | FaultOutcome::File(FileError::Device(_)) => Error::Io,
        FaultOutcome::QuotaExceeded { .. } => Error::QuotaExceeded,
        FaultOutcome::KernelMemoryLimit
        | FaultOutcome::File(FileError::NoMemory)
        | FaultOutcome::OutOfMemory
        | FaultOutcome::Thrashing => Error::NoMemory,
        // A page past the end of its file, an unreserved, guard or
        // read-only page, a corrupt entry; resolved outcomes never fail
        // a probe.
        FaultOutcome::Violation(_)
        | FaultOutcome::File(FileError::PastEnd { .. } | FileError::NoSuchFile)
        | FaultOutcome::DemandZero
        | FaultOutcome::SwappedIn
        | FaultOutcome::FileMapped
        | FaultOutcome::CopiedOnWrite
        | FaultOutcome::Spurious => Error::BadAddress,
    }
}

fn write(ptr: u64, len: u64) -> Result<u64, Stop> {
    if len > MAX_WRITE {
        return Err(Error::Invalid.into());
    }
    let mut buf = [0u8; MAX_WRITE as usize];
    write_output(read_user(ptr, &mut buf[..len as usize])?);
    Ok(len)
}

// The probe's closure returns a report; see user_access.
#[allow(clippy::result_large_err)]
fn memstats(ptr: u64) -> Result<u64, Stop> {
    // The whole destination is checked before any byte is written (in the
    // user half, reserved, writable), so a bad one leaves the process's
    // memory as it was. (The probes below can then fail only if memory is
    // out, which goes to the OOM killer, or a swap-in fails.)
    let (writable, space, limits) =
        in_running_space(|s| (s.user_may_write(ptr, MemStats::SIZE as u64), s.stats(), s.limits()));
    if !writable {
        return Err(Error::BadAddress.into());
    }
    let stats = MemStats {
        resident_pages: space.resident_pages,
        page_table_frames: space.table_frames,
        reserved_bytes: space.reserved_bytes,
        demand_zero_faults: space.faults.demand_zero,
        free_frames: frames::stats().free,
        swapped_pages: space.swapped_pages,
        swap_in_faults: space.faults.swapped_in,
        file_pages: space.file_pages,
        charged_bytes: space.charged_bytes(),
        ram_quota: limits.ram_quota,
        redline: limits.redline,
        committed_pages: space.committed_pages,
        swap_in_pages: space.faults.swapped_in + space.faults.read_ahead,
    };
    for (i, byte) in stats.to_bytes().into_iter().enumerate() {
        // SAFETY: the range is in the user half of the running process and
        // was checked writable; the probe turns any fault into an error.
        user_access(|| unsafe { probe::write(ptr + i as u64, byte) })?;
    }
    Ok(0)
}
