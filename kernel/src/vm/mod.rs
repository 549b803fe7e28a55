//! Address spaces on the real machine: the registry of live spaces, switching
//! CR3, and the page-fault handler. The logic (regions, page states, fault
//! classification) is `mm::vm`, host-tested; this module gives it page
//! tables, frames and a CPU.
//!
//! Locking: every space sits in one registry behind a spin lock taken with
//! interrupts off. The page-fault handler only *tries* the lock: a fault
//! while the lock is held is a kernel bug, reported instead of deadlocking.

mod platform;
pub mod probe;
pub mod reclaim;
#[cfg(test)]
mod tests;

pub use mm::vm::{FaultOutcome, Limits, Region, RegionKind, SpaceStats, Violation, VmError};
pub use platform::KernelPlatform;

use crate::arch::trap::{self, PageFault, PageFaultCause, Report, TrapFrame};
use alloc::collections::BTreeMap;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use mm::vm::{AddressSpace, FaultCounters, KERNEL_START};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::idt::PageFaultErrorCode;
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

/// Names a live address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpaceId(pub u32);

/// An address space on the real machine.
pub type Space = AddressSpace<KernelPlatform>;

static SPACES: Mutex<BTreeMap<SpaceId, Space>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
/// The space in CR3; 0 when the kernel's own root is active.
static ACTIVE: AtomicU32 = AtomicU32::new(0);
/// Faults outside any space (kernel half, or no space active), by outcome.
static KERNEL_FAULTS: AtomicU64 = AtomicU64::new(0);
/// Counters of destroyed spaces, so totals survive them.
static RETIRED: Mutex<FaultCounters> = Mutex::new(FaultCounters::ZERO);

/// What a process's space may take (docs/process.md, "What a process
/// cannot do to the kernel"): 64 GiB of address space (like `ulimit -v`),
/// 16,384 regions (Linux's `vm.max_map_count` is 65,530), and 8 MiB of
/// kernel memory for its region records and page tables (enough to map
/// 4 GiB densely).
/// No RAM quota or redline unless the process is started with one.
pub const PROCESS_LIMITS: Limits = Limits {
    address_space: 64 << 30,
    regions: 16_384,
    kernel_memory: 8 << 20,
    ram_quota: u64::MAX,
    redline: u64::MAX,
};

pub fn init() {
    platform::init();
    reclaim::init();
    trap::set_kernel_page_fault_handler(kernel_page_fault);
}

/// A new, empty space that may take what `limits` allow.
pub fn create(limits: Limits) -> Result<SpaceId, VmError> {
    let id = SpaceId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    // The reverse map has room for 2^29 space numbers; past that (after
    // half a billion processes) new spaces are refused, never mislabelled.
    if id.0 > mm::reclaim::MAX_SPACE {
        return Err(VmError::OutOfMemory);
    }
    let space = AddressSpace::new(KernelPlatform::new(id), limits)?;
    without_interrupts(|| SPACES.lock().insert(id, space));
    Ok(id)
}

/// Runs `f` on space `id`; `None` if there is no such space. `f` must not
/// touch the space's memory (a fault would find the registry locked).
pub fn with<R>(id: SpaceId, f: impl FnOnce(&mut Space) -> R) -> Option<R> {
    without_interrupts(|| SPACES.lock().get_mut(&id).map(f))
}

/// Like [`with`], and when `f` runs out of memory, reclaims a batch of
/// pages (direct reclaim) and tries again, as long as reclaim frees some.
/// For system calls that allocate (commit).
pub fn with_reclaim<R>(
    id: SpaceId,
    mut f: impl FnMut(&mut Space) -> Result<R, VmError>,
) -> Option<Result<R, VmError>> {
    without_interrupts(|| {
        let mut spaces = SPACES.lock();
        if !spaces.contains_key(&id) {
            return None;
        }
        Some(reclaim::direct(
            &mut spaces,
            |spaces| f(spaces.get_mut(&id).expect("checked above")),
            |result| matches!(result, Err(VmError::OutOfMemory)),
        ))
    })
}

/// A space whose swapped pages could not all come back ([`swap_in_all`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapInStopped {
    pub space: SpaceId,
    pub error: VmError,
    /// Pages brought back (in every space) before it stopped; they stay.
    pub brought_in: u64,
}

impl fmt::Display for SwapInStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not take its pages back: {} ({} pages came back and stay)",
            self.error, self.brought_in
        )
    }
}

/// Brings every page in swap back into RAM, space by space, with direct
/// reclaim when memory runs short (the half of `swapoff` that reads;
/// [`crate::swap::swap_off`] is the rest). Returns the pages brought in.
/// One space is locked at a time, so a long drain keeps its yield points
/// (interrupts are let in once per page table's worth of pages).
pub fn swap_in_all() -> Result<u64, SwapInStopped> {
    let mut brought_in = 0;
    let mut next = SpaceId(0);
    while let Some(id) = with_all(|spaces| spaces.range(next..).next().map(|(&id, _)| id)) {
        if let Some(Err(error)) = with_reclaim(id, |space| space.swap_in_all(&mut brought_in)) {
            return Err(SwapInStopped { space: id, error, brought_in });
        }
        next = SpaceId(id.0 + 1);
    }
    Ok(brought_in)
}

/// Runs `f` on every live space (for reclaim).
fn with_all<R>(f: impl FnOnce(&mut BTreeMap<SpaceId, Space>) -> R) -> R {
    without_interrupts(|| f(&mut SPACES.lock()))
}

fn load_cr3(root: mm::addr::Pfn) {
    let frame = PhysFrame::containing_address(PhysAddr::new(root.addr()));
    // SAFETY: `root` is a valid top-level table whose kernel half is the
    // kernel's (alloc_root copies it), so the code, stack and data in use
    // stay mapped across the switch.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// There is no live space with this id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSuchSpace(pub SpaceId);

/// Makes `id` the active address space (loads its root into CR3). When it
/// is active already, CR3 is left alone: the VMM flushes what it changes
/// itself (`invlpg`, or a reload when it changed many entries), and a
/// reload for nothing costs every TLB entry (under QEMU's TCG, about twice
/// a system call: what a process that yields to itself would pay).
pub fn activate(id: SpaceId) -> Result<(), NoSuchSpace> {
    without_interrupts(|| {
        let spaces = SPACES.lock();
        let space = spaces.get(&id).ok_or(NoSuchSpace(id))?;
        if ACTIVE.load(Ordering::SeqCst) != id.0 {
            load_cr3(space.root());
            ACTIVE.store(id.0, Ordering::SeqCst);
        }
        Ok(())
    })
}

/// Switches back to the kernel's own root (left alone when it is active).
pub fn activate_kernel() {
    without_interrupts(|| {
        if ACTIVE.load(Ordering::SeqCst) != 0 {
            load_cr3(platform::kernel_root());
            ACTIVE.store(0, Ordering::SeqCst);
        }
    });
}

pub fn active() -> Option<SpaceId> {
    let id = ACTIVE.load(Ordering::SeqCst);
    (id != 0).then_some(SpaceId(id))
}

/// Frees every frame of space `id` (switching away first if it is active).
/// Returns its final statistics, or `None` if there is no such space.
pub fn destroy(id: SpaceId) -> Option<SpaceStats> {
    without_interrupts(|| {
        if active() == Some(id) {
            activate_kernel();
        }
        let space = SPACES.lock().remove(&id)?;
        let stats = space.destroy();
        RETIRED.lock().add(&stats.faults);
        Some(stats)
    })
}

/// Everything the page-fault report says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultReport {
    pub address: u64,
    pub rip: u64,
    pub error: PageFaultErrorCode,
    pub space: Option<SpaceId>,
    pub region: Option<Region>,
    pub outcome: FaultOutcome,
    /// Why memory ran out, when it did: "swap full", "no swap device".
    pub out_of_memory_reason: Option<&'static str>,
}

impl FaultReport {
    /// The access was the kernel's (a probe: a system call copying the
    /// process's memory), not the process's own.
    pub fn by_kernel(&self) -> bool {
        !self.error.contains(PageFaultErrorCode::USER_MODE)
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "page fault at {:#x}, RIP {:#x}, error {:#x} [{}], ",
            self.address,
            self.rip,
            self.error.bits(),
            PageFaultCause(self.error)
        )?;
        match (&self.region, self.space) {
            (Some(region), _) => write!(f, "region {region}")?,
            (None, _) if self.address >= KERNEL_START => write!(f, "kernel half")?,
            (None, Some(_)) => write!(f, "unreserved")?,
            (None, None) => write!(f, "unreserved (no address space active)")?,
        }
        write!(f, ": {}", self.outcome)?;
        if let Some(reason) = self.out_of_memory_reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// What a fault outside every space's user half means: the kernel half is
/// mapped by the kernel alone, so a fault there is never resolved.
fn kernel_half_violation(fault: &PageFault) -> Violation {
    let access = fault.access();
    if !fault.protection_violation() {
        Violation::Unreserved
    } else if access.user {
        Violation::KernelOnly
    } else if access.exec {
        Violation::ExecuteNotAllowed
    } else {
        Violation::WriteToReadOnly
    }
}

/// Classifies (and, where legal, resolves) `fault` in the active space.
/// When free frames are at the min watermark, reclaims a batch first; when
/// the fault still found no frame, reclaims again and retries, as long as
/// reclaim frees some (direct reclaim).
fn resolve(fault: &PageFault) -> (Option<SpaceId>, FaultOutcome, Option<Region>) {
    let space = active();
    let Some(space_id) = space.filter(|_| fault.address < KERNEL_START) else {
        KERNEL_FAULTS.fetch_add(1, Ordering::Relaxed);
        return (space, FaultOutcome::Violation(kernel_half_violation(fault)), None);
    };
    let Some(mut spaces) = SPACES.try_lock() else {
        panic!("page fault at {:#x} while the address-space registry is locked (kernel bug)", fault.address);
    };
    if !spaces.contains_key(&space_id) {
        return (Some(space_id), FaultOutcome::Violation(Violation::Unreserved), None);
    }
    let (outcome, region) = reclaim::direct(
        &mut spaces,
        |spaces| {
            spaces.get_mut(&space_id).expect("checked above").resolve_fault(fault.address, fault.access())
        },
        |(outcome, _)| *outcome == FaultOutcome::OutOfMemory,
    );
    (Some(space_id), outcome, region)
}

/// Why a fault found no memory even after reclaim.
fn out_of_memory_reason(outcome: FaultOutcome) -> Option<&'static str> {
    if outcome == FaultOutcome::Thrashing {
        return Some("thrashing");
    }
    if outcome != FaultOutcome::OutOfMemory {
        return None;
    }
    Some(match crate::swap::info() {
        None => "no swap device",
        Some(swap) if swap.out_of_service => "swap disk out of service",
        Some(swap) if swap.free_slots == 0 => "swap full",
        Some(_) => "nothing left to evict",
    })
}

/// The one entry of the fault path, for both rings: resolves `fault` when
/// it is legal (the access is then retried); otherwise returns the report,
/// and the caller decides what it means (the process layer kills the
/// process; [`kernel_page_fault`] fixes up a probe or panics).
// A report is made once per killed process; boxing it would allocate in
// the fault path, which must not.
#[allow(clippy::result_large_err)]
pub fn handle_fault(fault: &PageFault) -> Result<(), FaultReport> {
    let (space, outcome, region) = resolve(fault);
    if outcome.is_resolved() {
        return Ok(());
    }
    Err(FaultReport {
        address: fault.address,
        rip: fault.rip,
        error: fault.error,
        space,
        region,
        outcome,
        out_of_memory_reason: out_of_memory_reason(outcome),
    })
}

/// A page fault in ring 0 (installed in the trap dispatcher).
fn kernel_page_fault(frame: &mut TrapFrame, fault: &PageFault) {
    let Err(report) = handle_fault(fault) else { return };
    if let Some(fixup) = crate::arch::probe::fixup_for(frame.rip) {
        probe::record(report);
        frame.rip = fixup;
        return;
    }
    panic!("{report}\n{}", Report::page_fault(frame, fault));
}

/// Totals over live and destroyed spaces, for meminfo.
#[derive(Clone, Copy, Debug, Default)]
pub struct VmSummary {
    pub spaces: usize,
    pub resident_pages: u64,
    /// Of the resident pages, page-cache pages mapped (counted once per
    /// entry: a page two spaces share counts twice).
    pub file_pages: u64,
    pub swapped_pages: u64,
    pub table_frames: u64,
    pub faults: FaultCounters,
    pub kernel_faults: u64,
}

pub fn summary() -> VmSummary {
    without_interrupts(|| {
        let spaces = SPACES.lock();
        let mut s = VmSummary { spaces: spaces.len(), faults: *RETIRED.lock(), ..VmSummary::default() };
        s.kernel_faults = KERNEL_FAULTS.load(Ordering::Relaxed);
        for space in spaces.values() {
            let st = space.stats();
            s.resident_pages += st.resident_pages;
            s.file_pages += st.file_pages;
            s.swapped_pages += st.swapped_pages;
            s.table_frames += st.table_frames;
            s.faults.add(&st.faults);
        }
        s
    })
}

impl fmt::Display for VmSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fc = &self.faults;
        writeln!(
            f,
            "vm: {} address spaces, {} resident pages ({} of them file pages), {} swapped pages, {} page-table frames",
            self.spaces, self.resident_pages, self.file_pages, self.swapped_pages, self.table_frames
        )?;
        write!(
            f,
            "  faults: demand-zero {} (and {} pages mapped ahead), swap-in {} (and {} pages read ahead), file {}, copy-on-write {}, spurious {}, violations {}, file errors {}, out-of-memory {}, swap-in failed {}, outside any space {}",
            fc.demand_zero, fc.mapped_ahead, fc.swapped_in, fc.read_ahead, fc.file_mapped, fc.copied_on_write, fc.spurious, fc.violations, fc.file_errors, fc.out_of_memory, fc.swap_in_failed, self.kernel_faults
        )
    }
}
