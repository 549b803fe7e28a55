//! Page faults: what a fault at an address means, and bringing the page in
//! when the access is legal. The fault path in one read: `resolve_fault`
//! finds the region, takes the page's state (its entry, or the region's
//! default), checks the access against its protection, and either maps a
//! zeroed frame (demand-zero), reads the page back (swapped), maps the page
//! cache's frame (file), copies a file page for a writer (copy on write),
//! flushes a stale translation (spurious), or names the violation. Errors met on the way map to outcomes with a full
//! match (`FaultOutcome::from_table_error`), so a new error cannot silently
//! become "out of memory".

use super::{AddressSpace, Platform, Region, VmError, USER_END, USER_START};
use crate::addr::{UserAddr, PAGE_SIZE};
use crate::files::FileError;
use crate::pte::{Mapping, PageKind, Prot, PteState};
use crate::swap::SwapError;
use core::fmt;

/// The kind of access that faulted (from the page-fault error code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    pub exec: bool,
    pub user: bool,
}

/// Why a fault is the faulting code's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// No region there: never reserved, or released.
    Unreserved,
    GuardPage,
    WriteToReadOnly,
    ExecuteNotAllowed,
    /// User-mode access to a kernel-only page.
    KernelOnly,
    /// The entry holds bits Pagekeeper never writes.
    CorruptEntry(u64),
}

/// What a page fault turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// A zeroed frame was mapped; retry the access.
    DemandZero,
    /// The page was read back from its swap slot (now free); retry.
    SwappedIn,
    /// The page cache's frame of a file page was mapped (read from the
    /// disk first if it was not cached); retry.
    FileMapped,
    /// A write to a page of a private file mapping: the space got its own
    /// anonymous copy of the page; retry.
    CopiedOnWrite,
    /// The page was already mapped with enough rights (a stale TLB entry):
    /// flushed; retry.
    Spurious,
    Violation(Violation),
    /// A file page that cannot be had: it lies wholly past the end of the
    /// file (Linux's SIGBUS), or the disk failed.
    File(FileError),
    /// Legal, but no frame could be had.
    OutOfMemory,
    /// The page was brought in (it is mapped), but this was the
    /// [`THRASH_LIMIT`](super::thrash::THRASH_LIMIT)th fault in a row to
    /// bring back a page the space brought in lately: reclaim takes its
    /// pages before the process can use them, so memory is too short for
    /// progress. Not resolved: the caller frees memory (the OOM killer)
    /// before the access is retried (`vm/thrash.rs`).
    Thrashing,
    /// Legal, but the page could not be read back from swap (it stays
    /// swapped).
    SwapInFailed(SwapError),
    /// Legal, but the page table it needs would pass the space's
    /// kernel-memory limit.
    KernelMemoryLimit,
    /// Legal, but the page (or its page table) would pass the space's RAM
    /// quota.
    QuotaExceeded {
        quota: u64,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    pub demand_zero: u64,
    pub swapped_in: u64,
    pub file_mapped: u64,
    pub copied_on_write: u64,
    pub spurious: u64,
    pub violations: u64,
    /// File pages past the end of their file, or unreadable.
    pub file_errors: u64,
    /// No frame, or the kernel-memory limit, stopped a legal fault.
    pub out_of_memory: u64,
    pub swap_in_failed: u64,
    /// The space's RAM quota stopped a legal fault.
    pub quota_exceeded: u64,
    /// Pages mapped ahead of demand-zero faults (fault-around), beyond
    /// the faulting pages counted in `demand_zero`.
    pub mapped_ahead: u64,
    /// Pages read from swap ahead of the faulting page, in the same
    /// request (swap-in read-ahead), beyond the faults in `swapped_in`.
    pub read_ahead: u64,
}

impl FaultCounters {
    /// Every count at 0 (for a `static`, where `Default` cannot be called).
    pub const ZERO: FaultCounters = FaultCounters {
        demand_zero: 0,
        swapped_in: 0,
        file_mapped: 0,
        copied_on_write: 0,
        spurious: 0,
        violations: 0,
        file_errors: 0,
        out_of_memory: 0,
        swap_in_failed: 0,
        quota_exceeded: 0,
        mapped_ahead: 0,
        read_ahead: 0,
    };

    /// Adds `other`'s counts to these (totals over several spaces).
    pub fn add(&mut self, other: &FaultCounters) {
        self.demand_zero += other.demand_zero;
        self.swapped_in += other.swapped_in;
        self.swap_in_failed += other.swap_in_failed;
        self.file_mapped += other.file_mapped;
        self.copied_on_write += other.copied_on_write;
        self.spurious += other.spurious;
        self.violations += other.violations;
        self.file_errors += other.file_errors;
        self.out_of_memory += other.out_of_memory;
        self.quota_exceeded += other.quota_exceeded;
        self.mapped_ahead += other.mapped_ahead;
        self.read_ahead += other.read_ahead;
    }

    fn count(&mut self, outcome: FaultOutcome) {
        let counter = match outcome {
            FaultOutcome::DemandZero => &mut self.demand_zero,
            FaultOutcome::SwappedIn => &mut self.swapped_in,
            FaultOutcome::SwapInFailed(_) => &mut self.swap_in_failed,
            FaultOutcome::FileMapped => &mut self.file_mapped,
            FaultOutcome::CopiedOnWrite => &mut self.copied_on_write,
            FaultOutcome::Spurious => &mut self.spurious,
            FaultOutcome::Violation(_) => &mut self.violations,
            FaultOutcome::File(_) => &mut self.file_errors,
            FaultOutcome::OutOfMemory | FaultOutcome::KernelMemoryLimit | FaultOutcome::Thrashing => {
                &mut self.out_of_memory
            }
            FaultOutcome::QuotaExceeded { .. } => &mut self.quota_exceeded,
        };
        *counter += 1;
    }
}

impl<P: Platform> AddressSpace<P> {
    /// Whether user code may write every byte of `addr..addr+len`: each
    /// page reserved, user-writable and no guard page. Judged from regions
    /// and entries alone: nothing is brought in, so a system call can check
    /// a whole destination before it writes any of it.
    pub fn user_may_write(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        if len == 0 || end > USER_END || addr < USER_START {
            return false;
        }
        let first = UserAddr::new(addr).page_down();
        let last = UserAddr::new(end - 1).page_down();
        (first.as_u64()..=last.as_u64()).step_by(PAGE_SIZE as usize).all(|va| {
            let va = UserAddr::new(va);
            let prot = match self.effective_state(va) {
                Ok(PteState::Present(m)) => self.logical_prot(va, m),
                Ok(
                    PteState::DemandZero { prot }
                    | PteState::Swapped { prot, .. }
                    | PteState::File { prot, .. },
                ) => prot,
                // An entry that cannot be read (corrupt) is no destination either.
                Ok(PteState::Guard | PteState::Absent) | Err(_) => return false,
            };
            check_access(Access { write: true, exec: false, user: true }, prot).is_none()
        })
    }

    /// What a fault at `addr` with `access` means; brings the page in when
    /// the access is legal. Returns the outcome and the region involved.
    pub fn resolve_fault(&mut self, addr: u64, access: Access) -> (FaultOutcome, Option<Region>) {
        let va = UserAddr::new(addr).page_down();
        let region = self.regions.find(va).copied();
        let outcome = self.classify_and_resolve(va, access, region.as_ref());
        self.stats.faults.count(outcome);
        let brought_in = matches!(outcome, FaultOutcome::FileMapped | FaultOutcome::SwappedIn);
        if !brought_in {
            self.refaults.broken();
        } else if self.refaults.brought_in(va) {
            return (FaultOutcome::Thrashing, region);
        }
        (outcome, region)
    }

    fn classify_and_resolve(
        &mut self,
        va: UserAddr,
        access: Access,
        region: Option<&Region>,
    ) -> FaultOutcome {
        let Some(region) = region else { return FaultOutcome::Violation(Violation::Unreserved) };
        let state = match self.effective_state(va) {
            Ok(state) => state,
            Err(e) => return FaultOutcome::from_table_error(e),
        };
        let prot = match state {
            PteState::Guard => return FaultOutcome::Violation(Violation::GuardPage),
            PteState::Present(m) => self.logical_prot(va, m),
            PteState::DemandZero { prot } | PteState::Swapped { prot, .. } | PteState::File { prot, .. } => {
                prot
            }
            PteState::Absent => region.prot,
        };
        if let Some(violation) = check_access(access, prot) {
            return FaultOutcome::Violation(violation);
        }
        let done = |result: Result<(), VmError>, outcome| match result {
            Ok(()) => outcome,
            Err(e) => FaultOutcome::from_table_error(e),
        };
        match state {
            // Only a private file page can be writable here (check_access
            // refused the rest): the writer gets its own copy.
            PteState::Present(m) if access.write && m.kind == PageKind::File => {
                done(self.copy_mapped_file_page(va, m, prot), FaultOutcome::CopiedOnWrite)
            }
            PteState::Present(_) => {
                self.platform.flush(va);
                FaultOutcome::Spurious
            }
            PteState::File { file, page, prot } if access.write => {
                done(self.copy_file_page(va, file, page, prot), FaultOutcome::CopiedOnWrite)
            }
            PteState::File { file, page, prot } => {
                done(self.map_file(va, file, page, prot), FaultOutcome::FileMapped)
            }
            // A read of a page nothing can write: the shared zero frame,
            // no frame and no promise of the space's own.
            PteState::DemandZero { prot } if self.shares_zero_frame(prot) => {
                done(self.map_zero_frame(va, prot), FaultOutcome::DemandZero)
            }
            PteState::DemandZero { prot } => match self.map_zeroed(va, prot) {
                Ok(slot) => {
                    let window = self.sequential.window_for(va);
                    let ahead = if window > 0 { self.map_ahead(va, slot, region, window) } else { 0 };
                    self.sequential.mapped(va, ahead);
                    FaultOutcome::DemandZero
                }
                Err(e) => FaultOutcome::from_table_error(e),
            },
            PteState::Swapped { slot, prot } => match self.map_swapped(va, slot, prot) {
                Ok(_) => FaultOutcome::SwappedIn,
                Err(e) => FaultOutcome::from_table_error(e),
            },
            PteState::Guard | PteState::Absent => {
                unreachable!("handled above / replaced by the region default")
            }
        }
    }
}

impl<P: Platform> AddressSpace<P> {
    /// What a present page allows: its entry's rights, except for a page
    /// of the page cache, which is mapped read-only whatever its region
    /// allows (a write to a private one must fault, to be copied).
    pub(super) fn logical_prot(&self, va: UserAddr, m: Mapping) -> Prot {
        match (m.kind, self.regions.find(va)) {
            (PageKind::File, Some(region)) => region.prot,
            _ => m.prot,
        }
    }
}

fn check_access(access: Access, prot: Prot) -> Option<Violation> {
    if access.user && !prot.user {
        Some(Violation::KernelOnly)
    } else if access.write && !prot.write {
        Some(Violation::WriteToReadOnly)
    } else if access.exec && !prot.exec {
        Some(Violation::ExecuteNotAllowed)
    } else {
        None
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unreserved => write!(f, "access to unreserved memory"),
            Violation::GuardPage => write!(f, "touched a guard page"),
            Violation::WriteToReadOnly => write!(f, "write to a read-only page"),
            Violation::ExecuteNotAllowed => write!(f, "execute from a no-execute page"),
            Violation::KernelOnly => write!(f, "user access to a kernel-only page"),
            Violation::CorruptEntry(raw) => write!(f, "corrupt page-table entry {raw:#x}"),
        }
    }
}

impl FaultOutcome {
    /// The page is usable now: the faulting access may be retried.
    pub fn is_resolved(&self) -> bool {
        match self {
            FaultOutcome::DemandZero
            | FaultOutcome::SwappedIn
            | FaultOutcome::FileMapped
            | FaultOutcome::CopiedOnWrite
            | FaultOutcome::Spurious => true,
            FaultOutcome::SwapInFailed(_)
            | FaultOutcome::Violation(_)
            | FaultOutcome::File(_)
            | FaultOutcome::OutOfMemory
            | FaultOutcome::Thrashing
            | FaultOutcome::KernelMemoryLimit
            | FaultOutcome::QuotaExceeded { .. } => false,
        }
    }

    /// No frame could be had for a legal access, or the space is
    /// thrashing: only freeing memory elsewhere (the OOM killer) lets the
    /// access go on.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, FaultOutcome::OutOfMemory | FaultOutcome::Thrashing)
    }

    /// What an error met while resolving a fault means for the fault. Only
    /// page-table errors can arise there; the argument errors cannot.
    fn from_table_error(e: VmError) -> FaultOutcome {
        match e {
            VmError::Corrupt { raw, .. } => FaultOutcome::Violation(Violation::CorruptEntry(raw)),
            VmError::OutOfMemory => FaultOutcome::OutOfMemory,
            VmError::KernelMemoryLimit { .. } => FaultOutcome::KernelMemoryLimit,
            VmError::QuotaExceeded { quota, .. } => FaultOutcome::QuotaExceeded { quota },
            VmError::SwapIn { error, .. } => FaultOutcome::SwapInFailed(error),
            VmError::File { error, .. } => FaultOutcome::File(error),
            VmError::ZeroLength
            | VmError::Unaligned { .. }
            | VmError::NullPage
            | VmError::NonCanonical { .. }
            | VmError::KernelHalf { .. }
            | VmError::Overlap { .. }
            | VmError::NotReserved { .. }
            | VmError::LimitExceeded { .. }
            | VmError::NoSpace { .. }
            | VmError::RegionLimit { .. }
            | VmError::CommitRefused(_)
            | VmError::KernelShared { .. }
            | VmError::SharedFileWritable { .. } => {
                unreachable!("fault resolution does not check arguments: {e}")
            }
        }
    }
}

impl fmt::Display for FaultOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultOutcome::DemandZero => write!(f, "demand-zero page mapped"),
            FaultOutcome::SwappedIn => write!(f, "page read back from swap"),
            FaultOutcome::FileMapped => write!(f, "file page mapped from the page cache"),
            FaultOutcome::CopiedOnWrite => write!(f, "private copy of a file page made for a write"),
            FaultOutcome::SwapInFailed(e) => write!(f, "could not read the page back from swap: {e}"),
            FaultOutcome::Spurious => write!(f, "spurious (stale translation flushed)"),
            FaultOutcome::Violation(v) => write!(f, "access violation: {v}"),
            FaultOutcome::File(e @ FileError::PastEnd { .. }) => write!(f, "bus error (SIGBUS): {e}"),
            FaultOutcome::File(e) => write!(f, "file page unavailable: {e}"),
            FaultOutcome::OutOfMemory => write!(f, "out of memory"),
            FaultOutcome::Thrashing => write!(
                f,
                "thrashing: {} faults in a row brought back pages reclaim had taken again before their use",
                super::thrash::THRASH_LIMIT
            ),
            FaultOutcome::KernelMemoryLimit => {
                write!(f, "the page table it needs would pass the process's kernel-memory limit")
            }
            FaultOutcome::QuotaExceeded { quota } => {
                write!(f, "the page would pass the process's RAM quota of {} KiB", quota / 1024)
            }
        }
    }
}
