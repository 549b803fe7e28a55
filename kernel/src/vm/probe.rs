//! Kernel accesses that are allowed to fault: the test path for violations
//! (and, later, for copying from and to user memory). A violation during a
//! probe returns its [`FaultReport`] instead of panicking.

use super::FaultReport;
use crate::arch::probe as arch;
use spin::Mutex;

/// The report of the last probe that faulted (single CPU: one at a time).
static LAST: Mutex<Option<FaultReport>> = Mutex::new(None);

pub(super) fn record(report: FaultReport) {
    *LAST.lock() = Some(report);
}

fn take() -> FaultReport {
    LAST.lock().take().expect("a faulting probe recorded its report")
}

/// Reads the byte at `addr`, or returns the fault report.
// A report is made once per killed process; boxing it would allocate in
// the fault path, which must not.
#[allow(clippy::result_large_err)]
pub fn read(addr: u64) -> Result<u8, FaultReport> {
    arch::read_u8(addr).ok_or_else(take)
}

/// Writes `value` at `addr`, or returns the fault report.
///
/// # Safety
/// A successful write changes memory at `addr`: the caller must own it.
// A report is made once per killed process; boxing it would allocate in
// the fault path, which must not.
#[allow(clippy::result_large_err)]
pub unsafe fn write(addr: u64, value: u8) -> Result<(), FaultReport> {
    // SAFETY: forwarded to the caller.
    if unsafe { arch::write_u8(addr, value) } {
        Ok(())
    } else {
        Err(take())
    }
}
