//! Address spaces: regions of the user half, page state in page-table
//! entries, and the resolution of page faults.
//!
//! An [`AddressSpace`] owns a top-level page table whose kernel half is
//! shared with the kernel (the [`Platform`] provides it) and manages only the
//! user half, `USER_START..USER_END`. Its operations:
//!
//! - [`reserve`](AddressSpace::reserve) / [`reserve_at`](AddressSpace::reserve_at):
//!   take a range for a region. Nothing is written to the page tables and no
//!   frame is allocated: an untouched page's state is the region's default
//!   (demand-zero, guard, file page).
//! - [`commit`](AddressSpace::commit): bring every page of a range in now.
//! - [`decommit`](AddressSpace::decommit): give the frames back; the pages
//!   become demand-zero again (`PteState::DemandZero` in the entry).
//! - [`protect`](AddressSpace::protect): change a range's protection.
//! - [`release`](AddressSpace::release): drop the pages and the region, and
//!   free page tables left empty.
//! - [`resolve_fault`](AddressSpace::resolve_fault): what a page fault at an
//!   address means, and bringing the page in when it is legal.
//!
//! Frames are freed only after their entry is gone *and* the translation is
//! flushed ([`Platform::flush`]), so no stale TLB entry can reach a frame
//! that was handed to someone else.

mod platform;
mod region;
#[cfg(test)]
mod tests;

pub use platform::Platform;
pub use region::{NoRoomForRegions, Region, RegionKind, RegionMap};

use crate::addr::{Pfn, VirtAddr, PAGE_SIZE};
use crate::pte::{self, CorruptPte, Mapping, PageKind, Prot, PteState};
use core::fmt;
use core::ops::Range;

/// The lowest user address: page 0 stays unmapped so null pointers fault.
pub const USER_START: u64 = PAGE_SIZE;
/// One past the highest user address (the canonical lower half).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// The start of the kernel half.
pub const KERNEL_START: u64 = 0xffff_8000_0000_0000;
/// Top-level entries of the user half.
const USER_ROOT_ENTRIES: usize = 256;
/// Entries in one page table, at every level.
const TABLE_ENTRIES: usize = 512;

/// Bytes one entry of a table at `level` (1 = page table .. 4 = root) maps.
const fn entry_span(level: u32) -> u64 {
    1 << (12 + 9 * (level - 1))
}

/// What a space may take, so that one process cannot exhaust the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of address space reserved at once (like `ulimit -v`).
    pub address_space: u64,
    /// Regions at once (like Linux's `vm.max_map_count`).
    pub regions: usize,
    /// Kernel memory the space may cause: its region records plus its
    /// page-table frames, in bytes.
    pub kernel_memory: u64,
}

impl Limits {
    pub const UNLIMITED: Limits =
        Limits { address_space: u64::MAX, regions: usize::MAX, kernel_memory: u64::MAX };
}

/// Why an operation on an address space was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    ZeroLength,
    /// Address or length not a multiple of the page size.
    Unaligned {
        addr: u64,
        len: u64,
    },
    /// The range includes page 0, which stays unmapped.
    NullPage,
    /// The range is not in canonical user space (or wraps around).
    NonCanonical {
        addr: u64,
        len: u64,
    },
    /// The range is in the kernel half.
    KernelHalf {
        addr: u64,
    },
    /// The range overlaps an existing region.
    Overlap {
        region_start: u64,
        region_end: u64,
    },
    /// Part of the range is not reserved.
    NotReserved {
        addr: u64,
    },
    /// Reserving would take the space past its address-space limit.
    LimitExceeded {
        limit: u64,
        reserved: u64,
        requested: u64,
    },
    /// No free gap of that size in the user half.
    NoSpace {
        len: u64,
    },
    /// No frame for a page or a page table, or no kernel heap for a region
    /// record. Work done before it stays.
    OutOfMemory,
    /// The space already has as many regions as [`Limits::regions`] allows.
    RegionLimit {
        limit: usize,
    },
    /// Region records and page tables would pass [`Limits::kernel_memory`].
    KernelMemoryLimit {
        limit: u64,
        charged: u64,
        requested: u64,
    },
    /// A page of the range has contents elsewhere that cannot be brought in
    /// yet (swapped or file-backed).
    NotYetBacked {
        addr: u64,
    },
    /// A page-table entry that Pagekeeper did not write.
    Corrupt {
        addr: u64,
        raw: u64,
    },
}

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

/// Pages whose backing store is not implemented yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    Swap { slot: u64 },
    File { file: u16, page: u64 },
}

/// What a page fault turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// A zeroed frame was mapped; retry the access.
    DemandZero,
    /// The page was already mapped with enough rights (a stale TLB entry):
    /// flushed; retry.
    Spurious,
    Violation(Violation),
    /// The page is legal but its backing store is not implemented yet.
    NotYetBacked(Backing),
    /// Legal, but no frame could be had.
    OutOfMemory,
    /// Legal, but the page table it needs would pass the space's
    /// kernel-memory limit.
    KernelMemoryLimit,
}

/// Per-space counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceStats {
    /// Data pages mapped now.
    pub resident_pages: u64,
    /// Page-table frames, the root included.
    pub table_frames: u64,
    pub reserved_bytes: u64,
    pub regions: u64,
    /// Kernel heap taken by the region records (their capacity).
    pub region_bytes: u64,
    pub faults: FaultCounters,
}

impl SpaceStats {
    /// Kernel memory this space causes: what [`Limits::kernel_memory`] bounds.
    pub fn kernel_bytes(&self) -> u64 {
        self.region_bytes + self.table_frames * PAGE_SIZE
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    pub demand_zero: u64,
    pub spurious: u64,
    pub violations: u64,
    pub not_yet_backed: u64,
    /// No frame, or the kernel-memory limit, stopped a legal fault.
    pub out_of_memory: u64,
}

impl FaultCounters {
    /// Adds `other`'s counts to these (totals over several spaces).
    pub fn add(&mut self, other: &FaultCounters) {
        self.demand_zero += other.demand_zero;
        self.spurious += other.spurious;
        self.violations += other.violations;
        self.not_yet_backed += other.not_yet_backed;
        self.out_of_memory += other.out_of_memory;
    }

    fn count(&mut self, outcome: FaultOutcome) {
        let counter = match outcome {
            FaultOutcome::DemandZero => &mut self.demand_zero,
            FaultOutcome::Spurious => &mut self.spurious,
            FaultOutcome::Violation(_) => &mut self.violations,
            FaultOutcome::NotYetBacked(_) => &mut self.not_yet_backed,
            FaultOutcome::OutOfMemory | FaultOutcome::KernelMemoryLimit => &mut self.out_of_memory,
        };
        *counter += 1;
    }
}

/// See the module documentation.
pub struct AddressSpace<P: Platform> {
    platform: P,
    root: Pfn,
    regions: RegionMap,
    limits: Limits,
    stats: SpaceStats,
    destroyed: bool,
}

/// Checks that `addr..addr+len` is a page-aligned, non-empty range of the
/// user half.
pub fn check_user_range(addr: u64, len: u64) -> Result<Range<VirtAddr>, VmError> {
    if len == 0 {
        return Err(VmError::ZeroLength);
    }
    if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
        return Err(VmError::Unaligned { addr, len });
    }
    if addr >= KERNEL_START {
        return Err(VmError::KernelHalf { addr });
    }
    let end = addr.checked_add(len).ok_or(VmError::NonCanonical { addr, len })?;
    if end > USER_END {
        return Err(VmError::NonCanonical { addr, len });
    }
    if addr < USER_START {
        return Err(VmError::NullPage);
    }
    Ok(VirtAddr(addr)..VirtAddr(end))
}

fn pages(range: &Range<VirtAddr>) -> impl Iterator<Item = VirtAddr> {
    (range.start.0..range.end.0).step_by(PAGE_SIZE as usize).map(VirtAddr)
}

/// The part of `range` that entry `index` of a table at `level` maps. The
/// range must lie inside that one table's span.
fn entry_range(range: &Range<VirtAddr>, level: u32, index: usize) -> Range<VirtAddr> {
    let span = entry_span(level);
    let table_base = range.start.0 & !(span * TABLE_ENTRIES as u64 - 1);
    let base = table_base + index as u64 * span;
    VirtAddr(range.start.0.max(base))..VirtAddr(range.end.0.min(base + span))
}

/// Page-table frames unlinked from the tree but not freed yet: the CPU may
/// still hold them in its paging-structure caches until a full flush.
struct UnlinkedTables {
    tables: [Pfn; 32],
    len: usize,
}

/// A visitor of leaf slots: gets the space, the slot and the page's address.
type LeafVisitor<'a, P> = dyn FnMut(&mut AddressSpace<P>, Slot, VirtAddr) -> Result<(), VmError> + 'a;

/// Where a page's leaf entry lives.
#[derive(Clone, Copy)]
struct Slot {
    table: Pfn,
    index: usize,
}

impl<P: Platform> AddressSpace<P> {
    /// An empty space that may take what `limits` allow.
    pub fn new(mut platform: P, limits: Limits) -> Result<Self, VmError> {
        let root = platform.alloc_root().ok_or(VmError::OutOfMemory)?;
        let stats = SpaceStats { table_frames: 1, ..SpaceStats::default() };
        Ok(AddressSpace { platform, root, regions: RegionMap::default(), limits, stats, destroyed: false })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The top-level table's frame (what CR3 gets).
    pub fn root(&self) -> Pfn {
        self.root
    }

    pub fn stats(&self) -> SpaceStats {
        SpaceStats { regions: self.regions.len() as u64, region_bytes: self.regions.bytes(), ..self.stats }
    }

    pub fn platform(&self) -> &P {
        &self.platform
    }

    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter()
    }

    pub fn region_at(&self, va: VirtAddr) -> Option<Region> {
        self.regions.find(va).copied()
    }

    /// Reserves `len` bytes at the lowest free address.
    pub fn reserve(&mut self, len: u64, prot: Prot, kind: RegionKind) -> Result<VirtAddr, VmError> {
        check_user_range(USER_START, len)?;
        self.check_limit(len)?;
        let start = self
            .regions
            .find_gap(len, VirtAddr(USER_START)..VirtAddr(USER_END))
            .ok_or(VmError::NoSpace { len })?;
        self.reserve_at(start.0, len, prot, kind)
    }

    /// Reserves exactly `addr..addr+len`.
    pub fn reserve_at(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        kind: RegionKind,
    ) -> Result<VirtAddr, VmError> {
        let range = check_user_range(addr, len)?;
        if let Some(r) = self.regions.first_overlap(&range) {
            return Err(VmError::Overlap { region_start: r.start.0, region_end: r.end.0 });
        }
        self.check_limit(len)?;
        self.make_region_room(1)?;
        self.regions.insert(Region { start: range.start, end: range.end, prot, kind });
        self.stats.reserved_bytes += len;
        Ok(range.start)
    }

    fn check_limit(&self, len: u64) -> Result<(), VmError> {
        let (reserved, limit) = (self.stats.reserved_bytes, self.limits.address_space);
        if reserved.checked_add(len).is_none_or(|total| total > limit) {
            return Err(VmError::LimitExceeded { limit, reserved, requested: len });
        }
        Ok(())
    }

    /// Refuses kernel memory past [`Limits::kernel_memory`]: `region_bytes`
    /// of region records and `table_frames` page tables in all.
    fn check_kernel_memory(&self, region_bytes: u64, table_frames: u64) -> Result<(), VmError> {
        let charged = self.stats().kernel_bytes();
        let total = region_bytes + table_frames * PAGE_SIZE;
        if total > self.limits.kernel_memory {
            let limit = self.limits.kernel_memory;
            return Err(VmError::KernelMemoryLimit {
                limit,
                charged,
                requested: total.saturating_sub(charged),
            });
        }
        Ok(())
    }

    /// Makes room for `extra` more region records within the limits, so the
    /// inserts and splits that follow cannot fail or allocate.
    fn make_region_room(&mut self, extra: usize) -> Result<(), VmError> {
        if extra == 0 {
            return Ok(());
        }
        if self.regions.len() + extra > self.limits.regions {
            return Err(VmError::RegionLimit { limit: self.limits.regions });
        }
        self.check_kernel_memory(self.regions.bytes_after_growth(extra), self.stats.table_frames)?;
        self.regions.try_reserve(extra).map_err(|NoRoomForRegions| VmError::OutOfMemory)
    }

    /// A reserved range: checked, and every page inside some region.
    fn reserved_range(&self, addr: u64, len: u64) -> Result<Range<VirtAddr>, VmError> {
        let range = check_user_range(addr, len)?;
        match self.regions.first_gap(&range) {
            Some(gap) => Err(VmError::NotReserved { addr: gap.0 }),
            None => Ok(range),
        }
    }

    /// The state of the page at `va`: its entry, or its region's default.
    fn effective_state(&self, va: VirtAddr) -> Result<PteState, VmError> {
        let recorded = match self.leaf(va)? {
            Some(slot) => self.read(slot, va)?,
            None => PteState::Absent,
        };
        Ok(match (recorded, self.regions.find(va)) {
            (PteState::Absent, Some(region)) => region.default_state(va),
            (state, _) => state,
        })
    }

    /// Brings every page of the range in now (like `MAP_POPULATE`). Guard
    /// pages are skipped. On failure, the pages brought in so far stay.
    pub fn commit(&mut self, addr: u64, len: u64) -> Result<u64, VmError> {
        let range = self.reserved_range(addr, len)?;
        let mut brought_in = 0;
        for va in pages(&range) {
            if va.table_index(1) == 0 {
                self.platform.yield_point();
            }
            match self.effective_state(va)? {
                PteState::DemandZero { prot } => {
                    self.map_zeroed(va, prot)?;
                    brought_in += 1;
                }
                PteState::Swapped { .. } | PteState::File { .. } => {
                    return Err(VmError::NotYetBacked { addr: va.0 })
                }
                PteState::Present(_) | PteState::Guard | PteState::Absent => {}
            }
        }
        Ok(brought_in)
    }

    /// Gives the frames of the range back; its pages read as zero on next
    /// touch. Returns how many frames were freed.
    pub fn decommit(&mut self, addr: u64, len: u64) -> Result<u64, VmError> {
        let range = self.reserved_range(addr, len)?;
        self.check_entries(&range)?;
        let mut freed = 0;
        self.walk_leaves(&range, &mut |s, slot, va| {
            match s.read(slot, va)? {
                PteState::Present(m) => {
                    s.unmap(slot, va, m, PteState::DemandZero { prot: m.prot });
                    freed += 1;
                }
                PteState::Swapped { prot, .. } | PteState::File { prot, .. } => {
                    s.write(slot, PteState::DemandZero { prot });
                }
                PteState::DemandZero { .. } | PteState::Guard | PteState::Absent => {}
            }
            Ok(())
        })?;
        Ok(freed)
    }

    /// Sets the protection of every page in the range (regions are split at
    /// its ends).
    pub fn protect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), VmError> {
        let range = self.reserved_range(addr, len)?;
        self.check_entries(&range)?;
        self.make_region_room(self.regions.splits_needed(&range))?;
        for region in self.regions.isolate(&range) {
            region.prot = prot;
        }
        self.walk_leaves(&range, &mut |s, slot, va| {
            let new = match s.read(slot, va)? {
                PteState::Present(m) => PteState::Present(Mapping { prot, ..m }),
                PteState::DemandZero { .. } => PteState::DemandZero { prot },
                PteState::Swapped { slot, .. } => PteState::Swapped { slot, prot },
                PteState::File { file, page, .. } => PteState::File { file, page, prot },
                other @ (PteState::Guard | PteState::Absent) => other,
            };
            s.write(slot, new);
            if matches!(new, PteState::Present(_)) {
                s.platform.flush(va);
            }
            Ok(())
        })
    }

    /// Drops every page of the range, the regions over it, and the page
    /// tables left empty. Returns how many frames were freed.
    pub fn release(&mut self, addr: u64, len: u64) -> Result<u64, VmError> {
        let range = self.reserved_range(addr, len)?;
        self.check_entries(&range)?;
        self.make_region_room(self.regions.splits_needed(&range))?;
        let mut freed = 0;
        self.walk_leaves(&range, &mut |s, slot, va| {
            match s.read(slot, va)? {
                PteState::Present(m) => {
                    s.unmap(slot, va, m, PteState::Absent);
                    freed += 1;
                }
                PteState::Absent => {}
                _ => s.write(slot, PteState::Absent),
            }
            Ok(())
        })?;
        self.regions.isolate(&range);
        self.regions.remove_inside(&range);
        self.regions.shrink();
        self.stats.reserved_bytes -= len;
        let mut unlinked = UnlinkedTables { tables: [Pfn(0); 32], len: 0 };
        self.prune(self.root, 4, &range, &mut unlinked);
        self.free_unlinked(&mut unlinked);
        Ok(freed)
    }

    /// Refuses an operation up front if any entry in the range is corrupt, so
    /// that it either changes everything or nothing. Like every walk here it
    /// visits only the tables that exist, so its cost follows what is
    /// populated, not the length of the range.
    fn check_entries(&mut self, range: &Range<VirtAddr>) -> Result<(), VmError> {
        self.walk_leaves(range, &mut |s, slot, va| s.read(slot, va).map(|_| ()))
    }

    /// Calls `visit` for every leaf slot of `range` whose page table exists,
    /// skipping absent subtrees whole; lets interrupts in between page tables
    /// ([`Platform::yield_point`]).
    fn walk_leaves(
        &mut self,
        range: &Range<VirtAddr>,
        visit: &mut LeafVisitor<'_, P>,
    ) -> Result<(), VmError> {
        self.walk_table(self.root, 4, range, visit)
    }

    fn walk_table(
        &mut self,
        table: Pfn,
        level: u32,
        range: &Range<VirtAddr>,
        visit: &mut LeafVisitor<'_, P>,
    ) -> Result<(), VmError> {
        let first = range.start.table_index(level);
        let last = VirtAddr(range.end.0 - 1).table_index(level);
        for index in first..=last {
            let part = entry_range(range, level, index);
            if level == 1 {
                visit(self, Slot { table, index }, part.start)?;
                continue;
            }
            match pte::table::decode(self.platform.read_entry(table, index)) {
                Ok(Some(child)) => self.walk_table(child, level - 1, &part, visit)?,
                Ok(None) => {}
                Err(CorruptPte(raw)) => return Err(VmError::Corrupt { addr: part.start.0, raw }),
            }
            if level == 2 {
                self.platform.yield_point();
            }
        }
        Ok(())
    }

    /// Whether user code may write every byte of `addr..addr+len`: each
    /// page reserved, user-writable and no guard page. Judged from regions
    /// and entries alone: nothing is brought in, so a system call can check
    /// a whole destination before it writes any of it.
    pub fn user_may_write(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        if len == 0 || end > USER_END || addr < USER_START {
            return false;
        }
        let first = VirtAddr(addr).page_down();
        let last = VirtAddr(end - 1).page_down();
        (first.0..=last.0).step_by(PAGE_SIZE as usize).all(|va| {
            let prot = match self.effective_state(VirtAddr(va)) {
                Ok(PteState::Present(m)) => m.prot,
                Ok(
                    PteState::DemandZero { prot }
                    | PteState::Swapped { prot, .. }
                    | PteState::File { prot, .. },
                ) => prot,
                Ok(PteState::Guard | PteState::Absent) | Err(_) => return false,
            };
            check_access(Access { write: true, exec: false, user: true }, prot).is_none()
        })
    }

    /// What a fault at `addr` with `access` means; brings the page in when
    /// the access is legal. Returns the outcome and the region involved.
    pub fn resolve_fault(&mut self, addr: u64, access: Access) -> (FaultOutcome, Option<Region>) {
        let va = VirtAddr(addr).page_down();
        let region = self.regions.find(va).copied();
        let outcome = self.classify_and_resolve(va, access, region.as_ref());
        self.stats.faults.count(outcome);
        (outcome, region)
    }

    fn classify_and_resolve(
        &mut self,
        va: VirtAddr,
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
            PteState::Present(m) => m.prot,
            PteState::DemandZero { prot } | PteState::Swapped { prot, .. } | PteState::File { prot, .. } => {
                prot
            }
            PteState::Absent => region.prot,
        };
        if let Some(violation) = check_access(access, prot) {
            return FaultOutcome::Violation(violation);
        }
        match state {
            PteState::Present(_) => {
                self.platform.flush(va);
                FaultOutcome::Spurious
            }
            PteState::DemandZero { prot } => match self.map_zeroed(va, prot) {
                Ok(()) => FaultOutcome::DemandZero,
                Err(e) => FaultOutcome::from_table_error(e),
            },
            PteState::Swapped { slot, .. } => FaultOutcome::NotYetBacked(Backing::Swap { slot }),
            PteState::File { file, page, .. } => FaultOutcome::NotYetBacked(Backing::File { file, page }),
            PteState::Guard | PteState::Absent => {
                unreachable!("handled above / replaced by the region default")
            }
        }
    }

    /// Frees every frame the space owns: data pages, page tables, the root.
    /// The space must not be active on any CPU. Returns the statistics as
    /// they were just before: what the space held at its end.
    pub fn destroy(mut self) -> SpaceStats {
        let at_end = self.stats();
        self.teardown();
        at_end
    }

    fn teardown(&mut self) {
        if self.destroyed {
            return;
        }
        for index in 0..USER_ROOT_ENTRIES {
            let raw = self.platform.read_entry(self.root, index);
            if let Ok(Some(child)) = pte::table::decode(raw) {
                self.free_subtree(child, 3);
                self.platform.write_entry(self.root, index, 0);
            }
        }
        self.platform.free_table(self.root);
        self.stats.table_frames -= 1;
        self.destroyed = true;
    }

    fn free_subtree(&mut self, table: Pfn, level: u32) {
        if level == 1 {
            self.platform.yield_point();
        }
        for index in 0..TABLE_ENTRIES {
            let raw = self.platform.read_entry(table, index);
            if level > 1 {
                if let Ok(Some(child)) = pte::table::decode(raw) {
                    self.free_subtree(child, level - 1);
                }
            } else if let Ok(PteState::Present(m)) = PteState::decode(raw) {
                // The space is not active, so no TLB can hold its entries.
                if m.kind == PageKind::Anonymous {
                    self.platform.free_page(m.frame);
                }
                self.stats.resident_pages -= 1;
            }
        }
        self.platform.free_table(table);
        self.stats.table_frames -= 1;
    }

    // --- page tables -------------------------------------------------------

    /// The leaf slot for `va`, if its page tables exist.
    fn leaf(&self, va: VirtAddr) -> Result<Option<Slot>, VmError> {
        let mut table = self.root;
        for level in (2..=4).rev() {
            let raw = self.platform.read_entry(table, va.table_index(level));
            match pte::table::decode(raw) {
                Ok(Some(next)) => table = next,
                Ok(None) => return Ok(None),
                Err(CorruptPte(raw)) => return Err(VmError::Corrupt { addr: va.0, raw }),
            }
        }
        Ok(Some(Slot { table, index: va.table_index(1) }))
    }

    /// The leaf slot for `va`, creating the page tables on the way.
    fn leaf_or_create(&mut self, va: VirtAddr) -> Result<Slot, VmError> {
        let mut table = self.root;
        for level in (2..=4).rev() {
            let index = va.table_index(level);
            let raw = self.platform.read_entry(table, index);
            table = match pte::table::decode(raw) {
                Ok(Some(next)) => next,
                Ok(None) => {
                    self.check_kernel_memory(self.regions.bytes(), self.stats.table_frames + 1)?;
                    let next = self.platform.alloc_table().ok_or(VmError::OutOfMemory)?;
                    self.stats.table_frames += 1;
                    self.platform.write_entry(table, index, pte::table::encode(next));
                    next
                }
                Err(CorruptPte(raw)) => return Err(VmError::Corrupt { addr: va.0, raw }),
            };
        }
        Ok(Slot { table, index: va.table_index(1) })
    }

    fn read(&self, slot: Slot, va: VirtAddr) -> Result<PteState, VmError> {
        let raw = self.platform.read_entry(slot.table, slot.index);
        PteState::decode(raw).map_err(|CorruptPte(raw)| VmError::Corrupt { addr: va.0, raw })
    }

    fn write(&mut self, slot: Slot, state: PteState) {
        self.platform.write_entry(slot.table, slot.index, state.encode());
    }

    fn map_zeroed(&mut self, va: VirtAddr, prot: Prot) -> Result<(), VmError> {
        let slot = self.leaf_or_create(va)?;
        let frame = self.platform.alloc_page().ok_or(VmError::OutOfMemory)?;
        let mapping =
            Mapping { frame, prot, kind: PageKind::Anonymous, pinned: false, accessed: false, dirty: false };
        self.write(slot, PteState::Present(mapping));
        self.stats.resident_pages += 1;
        Ok(())
    }

    /// Replaces a present entry with `then`, flushes, and only then frees the
    /// frame.
    fn unmap(&mut self, slot: Slot, va: VirtAddr, mapping: Mapping, then: PteState) {
        self.write(slot, then);
        self.platform.flush(va);
        if mapping.kind == PageKind::Anonymous {
            self.platform.free_page(mapping.frame);
        }
        self.stats.resident_pages -= 1;
    }

    /// Unlinks the tables below `table` (at `level`) that `range` left empty
    /// and queues them in `unlinked`. Returns true when `table` itself is
    /// now empty.
    fn prune(
        &mut self,
        table: Pfn,
        level: u32,
        range: &Range<VirtAddr>,
        unlinked: &mut UnlinkedTables,
    ) -> bool {
        if level > 1 {
            let first = range.start.table_index(level);
            let last = VirtAddr(range.end.0 - 1).table_index(level);
            for index in first..=last {
                let Ok(Some(child)) = pte::table::decode(self.platform.read_entry(table, index)) else {
                    continue;
                };
                if self.prune(child, level - 1, &entry_range(range, level, index), unlinked) {
                    self.platform.write_entry(table, index, 0);
                    if unlinked.len == unlinked.tables.len() {
                        self.free_unlinked(unlinked);
                    }
                    unlinked.tables[unlinked.len] = child;
                    unlinked.len += 1;
                }
            }
        }
        level < 4 && (0..TABLE_ENTRIES).all(|i| self.platform.read_entry(table, i) == 0)
    }

    /// Frees unlinked tables after a full flush: the CPU caches upper-level
    /// entries (paging-structure caches) as well as translations, so a table
    /// frame is reusable only once no cached entry can lead into it.
    fn free_unlinked(&mut self, unlinked: &mut UnlinkedTables) {
        if unlinked.len == 0 {
            return;
        }
        self.platform.flush_all();
        for &table in &unlinked.tables[..unlinked.len] {
            self.platform.free_table(table);
            self.stats.table_frames -= 1;
        }
        unlinked.len = 0;
    }
}

impl<P: Platform> Drop for AddressSpace<P> {
    fn drop(&mut self) {
        self.teardown();
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
    /// What an error met while resolving a fault means for the fault. Only
    /// page-table errors can arise there; the argument errors cannot.
    fn from_table_error(e: VmError) -> FaultOutcome {
        match e {
            VmError::Corrupt { raw, .. } => FaultOutcome::Violation(Violation::CorruptEntry(raw)),
            VmError::OutOfMemory => FaultOutcome::OutOfMemory,
            VmError::KernelMemoryLimit { .. } => FaultOutcome::KernelMemoryLimit,
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
            | VmError::NotYetBacked { .. } => unreachable!("fault resolution does not check arguments: {e}"),
        }
    }
}

impl fmt::Display for FaultOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultOutcome::DemandZero => write!(f, "demand-zero page mapped"),
            FaultOutcome::Spurious => write!(f, "spurious (stale translation flushed)"),
            FaultOutcome::Violation(v) => write!(f, "access violation: {v}"),
            FaultOutcome::NotYetBacked(Backing::Swap { slot }) => {
                write!(f, "not yet backed: page is in swap slot {slot}, and swap-in is not implemented")
            }
            FaultOutcome::NotYetBacked(Backing::File { file, page }) => {
                write!(f, "not yet backed: page {page} of file {file}, and file mapping is not implemented")
            }
            FaultOutcome::OutOfMemory => write!(f, "out of memory"),
            FaultOutcome::KernelMemoryLimit => {
                write!(f, "the page table it needs would pass the process's kernel-memory limit")
            }
        }
    }
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VmError::ZeroLength => write!(f, "zero-length range"),
            VmError::Unaligned { addr, len } => write!(f, "range {addr:#x}+{len:#x} is not page-aligned"),
            VmError::NullPage => write!(f, "range includes page 0"),
            VmError::NonCanonical { addr, len } => write!(f, "range {addr:#x}+{len:#x} leaves user space"),
            VmError::KernelHalf { addr } => write!(f, "{addr:#x} is in the kernel half"),
            VmError::Overlap { region_start, region_end } => {
                write!(f, "overlaps region {region_start:#x}..{region_end:#x}")
            }
            VmError::NotReserved { addr } => write!(f, "{addr:#x} is not reserved"),
            VmError::LimitExceeded { limit, reserved, requested } => {
                write!(f, "address-space limit {limit:#x}: {reserved:#x} reserved, {requested:#x} more asked")
            }
            VmError::NoSpace { len } => write!(f, "no free range of {len:#x} bytes"),
            VmError::OutOfMemory => write!(f, "out of memory"),
            VmError::RegionLimit { limit } => write!(f, "region limit of {limit} reached"),
            VmError::KernelMemoryLimit { limit, charged, requested } => {
                write!(f, "kernel-memory limit {limit} bytes: {charged} charged, {requested} more needed")
            }
            VmError::NotYetBacked { addr } => {
                write!(f, "page {addr:#x} is swapped or file-backed (not implemented)")
            }
            VmError::Corrupt { addr, raw } => write!(f, "corrupt page-table entry {raw:#x} for {addr:#x}"),
        }
    }
}
