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
//! - [`age_or_evict`](AddressSpace::age_or_evict): reclaim's step on one
//!   page: second chance if it was accessed, otherwise out to swap.
//! - [`age_file_page`](AddressSpace::age_file_page) /
//!   [`drop_file_page`](AddressSpace::drop_file_page): the same for a page
//!   of the page cache, which any number of spaces may map.
//!
//! Files: this one holds the operations and their argument checks;
//! `fault.rs` the fault classification (the whole fault path in one read);
//! `walk.rs` the page-table walker (the only code that follows table
//! entries); `swap.rs` pages leaving for swap and coming back; `file.rs`
//! file pages and copy on write; `region.rs` the region map; `platform.rs`
//! what the machine provides.
//!
//! Frames are freed only after their entry is gone *and* the translation is
//! flushed ([`Platform::flush`]), so no stale TLB entry can reach a frame
//! that was handed to someone else; page tables only after a full flush
//! ([`Platform::flush_all`]).

mod fault;
mod fault_around;
mod file;
mod inspect;
mod platform;
mod region;
mod swap;
#[cfg(test)]
mod tests;
mod thrash;
mod walk;

pub use fault::{Access, FaultCounters, FaultOutcome, Violation};
pub use fault_around::MAX_FAULT_AROUND;
pub use inspect::{EntryWalk, PageCounts, WalkStep};
pub use platform::{pages_mask, Platform};
pub use region::{NoRoomForRegions, Region, RegionKind, RegionMap};
pub use swap::{Choice, Chosen, MAX_FINISHED, MAX_SWAP_READ_AHEAD};

use crate::addr::{Pfn, UserAddr, PAGE_SIZE};
use crate::files::FileError;
use crate::policy::commit::CommitRefused;
use crate::pte::{Mapping, PageKind, Prot, PteState};
use crate::swap::SwapError;
use core::fmt;
use core::ops::Range;

pub use crate::paging::{KERNEL_START, USER_END, USER_START};

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
    /// RAM quota (shared/seeds/003, Genode): bytes of memory the space may
    /// hold at once, its own frames (data pages and page tables) plus its
    /// region records ([`SpaceStats::charged_bytes`]). Past it, an
    /// allocation is refused with [`VmError::QuotaExceeded`]. Page-cache
    /// frames it maps are not its own: they are shared and dropped by
    /// reclaim.
    pub ram_quota: u64,
    /// Redline (shared/seeds/001, Ejscript's MPR): a soft limit below the
    /// quota. Crossing it refuses nothing; [`AddressSpace::poll_redline`]
    /// reports each crossing once, so the process can be told.
    pub redline: u64,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        address_space: u64::MAX,
        regions: usize::MAX,
        kernel_memory: u64::MAX,
        ram_quota: u64::MAX,
        redline: u64::MAX,
    };
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
    /// The space's RAM quota ([`Limits::ram_quota`]) would be passed.
    QuotaExceeded {
        quota: u64,
        charged: u64,
        requested: u64,
    },
    /// The overcommit policy refused to promise the memory a writable
    /// private mapping may need (commit accounting).
    CommitRefused(CommitRefused),
    /// A file page of the range could not be had (past the end of its
    /// file, or the disk failed).
    File {
        addr: u64,
        error: FileError,
    },
    /// The range includes a page the kernel shares with the process (the
    /// pressure page): the process cannot change or give it up.
    KernelShared {
        addr: u64,
    },
    /// A shared file mapping cannot be writable (the file disk is
    /// read-only; a private mapping can be).
    SharedFileWritable {
        addr: u64,
    },
    /// A swapped page could not be read back (it stays swapped).
    SwapIn {
        addr: u64,
        error: SwapError,
    },
    /// A page-table entry that Pagekeeper did not write.
    Corrupt {
        addr: u64,
        raw: u64,
    },
}

/// Whether a new region's pages are promised memory (commit accounting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accounting {
    /// Charged when writable and private.
    Normal,
    /// Linux's `MAP_NORESERVE`, for sparse reservations: not charged in
    /// overcommit modes 0 and 1 (the process accepts that touching more
    /// than memory holds gets it killed); mode 2 charges it anyway.
    NoReserve,
}

/// Per-space counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceStats {
    /// Data pages mapped now.
    pub resident_pages: u64,
    /// Of the resident pages, those that are page-cache frames (file pages
    /// mapped from the cache, shared with every other mapping of them).
    pub file_pages: u64,
    /// Pages whose contents are in a swap slot.
    pub swapped_pages: u64,
    /// Pages written to swap over the space's life.
    pub swap_outs: u64,
    /// Pages reclaim took without a write because their frame read all
    /// zero: they became demand-zero again (`AddressSpace::drop_if_zero`).
    pub zero_pages_dropped: u64,
    /// Pages reclaim took without a write because they came back from swap
    /// and were not written since: their slot still held them (the swap
    /// cache; `AddressSpace::evict_clean`).
    pub clean_evictions: u64,
    /// Page-table frames, the root included.
    pub table_frames: u64,
    pub reserved_bytes: u64,
    pub regions: u64,
    /// Kernel heap taken by the region records (their capacity).
    pub region_bytes: u64,
    /// Pages of its writable private regions, promised by commit
    /// accounting (its share of `Committed_AS`).
    pub committed_pages: u64,
    /// Times it crossed its redline upwards.
    pub redline_crossings: u64,
    pub faults: FaultCounters,
}

impl SpaceStats {
    /// Kernel memory this space causes: what [`Limits::kernel_memory`] bounds.
    pub fn kernel_bytes(&self) -> u64 {
        kernel_bytes(self.region_bytes, self.table_frames)
    }

    /// What the RAM quota bounds: the space's own frames (anonymous data
    /// pages and page tables; not the page cache's) and its region records.
    pub fn charged_bytes(&self) -> u64 {
        (self.resident_pages - self.file_pages) * PAGE_SIZE + self.kernel_bytes()
    }
}

/// Kernel memory of `region_bytes` of region records and `table_frames`
/// page tables.
fn kernel_bytes(region_bytes: u64, table_frames: u64) -> u64 {
    region_bytes + table_frames * PAGE_SIZE
}

/// See the module documentation.
pub struct AddressSpace<P: Platform> {
    platform: P,
    root: Pfn,
    regions: RegionMap,
    limits: Limits,
    stats: SpaceStats,
    /// Set while the space is at or below its redline: the next crossing
    /// is reported.
    redline_armed: bool,
    destroyed: bool,
    /// Fault-around's detector of sequential demand-zero faults.
    sequential: fault_around::SequentialFaults,
    /// Swap-in read-ahead's detector of sequential swap-in faults.
    sequential_swap_ins: fault_around::SequentialFaults,
    /// The last pages faults brought in, and how many faults in a row
    /// brought one of them back (`vm/thrash.rs`).
    refaults: thrash::RefaultRun,
}

/// Whether a page in `state` holds memory of the space's own: a frame of
/// its own (not the page cache's, not the shared zero frame) or a swap
/// slot.
fn holds_own_memory(state: PteState) -> bool {
    match state {
        PteState::Present(m) => m.kind == PageKind::Anonymous,
        PteState::Swapped { .. } => true,
        PteState::DemandZero { .. } | PteState::File { .. } | PteState::Guard | PteState::Absent => false,
    }
}

/// Checks that `addr..addr+len` is a page-aligned, non-empty range of the
/// user half.
pub fn check_user_range(addr: u64, len: u64) -> Result<Range<UserAddr>, VmError> {
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
    Ok(UserAddr::new(addr)..UserAddr::new(end))
}

fn pages(range: &Range<UserAddr>) -> impl Iterator<Item = UserAddr> {
    (range.start.as_u64()..range.end.as_u64()).step_by(PAGE_SIZE as usize).map(UserAddr::new)
}

impl<P: Platform> AddressSpace<P> {
    /// An empty space that may take what `limits` allow.
    pub fn new(mut platform: P, limits: Limits) -> Result<Self, VmError> {
        let root = walk::into_entry(platform.alloc_root().ok_or(VmError::OutOfMemory)?);
        let stats = SpaceStats { table_frames: 1, ..SpaceStats::default() };
        let regions = RegionMap::default();
        let sequential = fault_around::SequentialFaults::new(MAX_FAULT_AROUND);
        let sequential_swap_ins = fault_around::SequentialFaults::new(MAX_SWAP_READ_AHEAD);
        Ok(AddressSpace {
            platform,
            root,
            regions,
            limits,
            stats,
            redline_armed: true,
            destroyed: false,
            sequential,
            sequential_swap_ins,
            refaults: thrash::RefaultRun::default(),
        })
    }

    /// Sets how many pages a demand-zero fault that continues a sequential
    /// run may map after itself (`vm/fault_around.rs`), at most
    /// [`MAX_FAULT_AROUND`]; 0 turns fault-around off. New spaces start at
    /// the limit; the pages ahead are only ever frames zeroed in idle time.
    pub fn set_fault_around(&mut self, pages: u32) {
        self.sequential = fault_around::SequentialFaults::new(pages);
    }

    /// The fault-around limit in pages (0: off).
    pub fn fault_around(&self) -> u32 {
        self.sequential.max()
    }

    /// Sets how many pages a swap-in that continues a sequential run may
    /// read after the faulting one in the same request (`vm/swap.rs`), at
    /// most [`MAX_SWAP_READ_AHEAD`]; 0 turns swap-in read-ahead off. New
    /// spaces start at the limit.
    pub fn set_swap_read_ahead(&mut self, pages: u32) {
        self.sequential_swap_ins = fault_around::SequentialFaults::new(pages.min(MAX_SWAP_READ_AHEAD));
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

    #[cfg(test)]
    pub(crate) fn platform(&self) -> &P {
        &self.platform
    }

    #[cfg(test)]
    pub(crate) fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter()
    }

    pub fn region_at(&self, va: UserAddr) -> Option<Region> {
        self.regions.find(va).copied()
    }

    /// Reserves `len` bytes at the lowest free address.
    pub fn reserve(&mut self, len: u64, prot: Prot, kind: RegionKind) -> Result<UserAddr, VmError> {
        self.reserve_with(len, prot, kind, Accounting::Normal)
    }

    /// Reserves exactly `addr..addr+len`.
    pub fn reserve_at(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        kind: RegionKind,
    ) -> Result<UserAddr, VmError> {
        self.reserve_at_with(addr, len, prot, kind, Accounting::Normal)
    }

    /// [`reserve`](Self::reserve) with a choice of commit accounting.
    pub fn reserve_with(
        &mut self,
        len: u64,
        prot: Prot,
        kind: RegionKind,
        accounting: Accounting,
    ) -> Result<UserAddr, VmError> {
        check_user_range(USER_START, len)?;
        self.check_limit(len)?;
        let start = self
            .regions
            .find_gap(len, UserAddr::new(USER_START)..UserAddr::new(USER_END))
            .ok_or(VmError::NoSpace { len })?;
        self.reserve_at_with(start.as_u64(), len, prot, kind, accounting)
    }

    /// [`reserve_at`](Self::reserve_at) with a choice of commit accounting.
    pub fn reserve_at_with(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        kind: RegionKind,
        accounting: Accounting,
    ) -> Result<UserAddr, VmError> {
        let range = check_user_range(addr, len)?;
        if prot.write && matches!(kind, RegionKind::File { private: false, .. }) {
            return Err(VmError::SharedFileWritable { addr });
        }
        if let Some(r) = self.regions.first_overlap(&range) {
            return Err(VmError::Overlap { region_start: r.start.as_u64(), region_end: r.end.as_u64() });
        }
        self.check_limit(len)?;
        self.make_region_room(1)?;
        let no_reserve = accounting == Accounting::NoReserve;
        let mut region =
            Region { start: range.start, end: range.end, prot, kind, accounted: false, no_reserve };
        if Region::needs_accounting(prot, kind) {
            region.accounted = self.charge_commit(region.chargeable_pages(), no_reserve)?;
        }
        self.regions.insert(region);
        self.stats.reserved_bytes += len;
        Ok(range.start)
    }

    /// Charges `pages` to the commit account; false when the policy let a
    /// no-reserve request go uncharged. Nothing is charged when it refuses.
    fn charge_commit(&mut self, pages: u64, no_reserve: bool) -> Result<bool, VmError> {
        if pages == 0 {
            return Ok(true);
        }
        let charged = self.platform.charge_commit(pages, no_reserve).map_err(VmError::CommitRefused)?;
        if charged {
            self.stats.committed_pages += pages;
        }
        Ok(charged)
    }

    fn uncharge_commit(&mut self, pages: u64) {
        if pages > 0 {
            self.platform.uncharge_commit(pages);
            self.stats.committed_pages -= pages;
        }
    }

    /// Refuses `extra` more bytes of the space's own memory past its RAM
    /// quota. Called before every frame and region record it allocates.
    fn check_quota(&self, extra: u64) -> Result<(), VmError> {
        let charged = self.stats().charged_bytes();
        if charged.saturating_add(extra) > self.limits.ram_quota {
            return Err(VmError::QuotaExceeded { quota: self.limits.ram_quota, charged, requested: extra });
        }
        Ok(())
    }

    /// Whether the space crossed its redline upwards since the last call
    /// that saw it at or below it: true once per crossing (the process is
    /// told once; it is re-armed when its memory falls back to the
    /// redline).
    pub fn poll_redline(&mut self) -> bool {
        if self.stats().charged_bytes() <= self.limits.redline {
            self.redline_armed = true;
            return false;
        }
        let crossed = self.redline_armed;
        if crossed {
            self.redline_armed = false;
            self.stats.redline_crossings += 1;
        }
        crossed
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
        let total = kernel_bytes(region_bytes, table_frames);
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
        let growth = self.regions.bytes_after_growth(extra);
        self.check_kernel_memory(growth, self.stats.table_frames)?;
        self.check_quota(growth.saturating_sub(self.regions.bytes()))?;
        self.regions.try_reserve(extra).map_err(|NoRoomForRegions| VmError::OutOfMemory)
    }

    /// A reserved range the process may change: checked, every page
    /// inside some region, and none of them the kernel's.
    fn reserved_range(&self, addr: u64, len: u64) -> Result<Range<UserAddr>, VmError> {
        let range = check_user_range(addr, len)?;
        if let Some(gap) = self.regions.first_gap(&range) {
            return Err(VmError::NotReserved { addr: gap.as_u64() });
        }
        let kernel_shared = |r: &&Region| r.kind == RegionKind::KernelShared;
        if let Some(r) = self.regions.overlapping(&range).iter().find(kernel_shared) {
            return Err(VmError::KernelShared { addr: r.start.as_u64() });
        }
        Ok(range)
    }

    /// Maps the kernel's page `frame` read-only at `addr` for the rest of
    /// the space's life (a [`RegionKind::KernelShared`] region): not
    /// counted as the space's memory, never reclaimed, never freed by it.
    pub fn map_kernel_shared(&mut self, addr: u64, frame: Pfn) -> Result<(), VmError> {
        self.reserve_at(addr, PAGE_SIZE, Prot::USER_READ, RegionKind::KernelShared)?;
        let va = UserAddr::new(addr);
        match self.leaf_or_create(va) {
            Ok(slot) => {
                let mapping = Mapping {
                    frame,
                    prot: Prot::USER_READ,
                    kind: PageKind::Other,
                    pinned: true,
                    accessed: false,
                    dirty: false,
                    swap_cached: false,
                };
                self.write(slot, PteState::Present(mapping));
                Ok(())
            }
            Err(e) => {
                self.regions.remove_inside(&(va..UserAddr::new(addr + PAGE_SIZE)));
                self.stats.reserved_bytes -= PAGE_SIZE;
                Err(e)
            }
        }
    }

    /// The state of the page at `va`: its entry, or its region's default.
    fn effective_state(&self, va: UserAddr) -> Result<PteState, VmError> {
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
    /// Returns the pages brought in (read-ahead's included).
    pub fn commit(&mut self, addr: u64, len: u64) -> Result<u64, VmError> {
        let mut brought_in = 0;
        self.commit_counting(addr, len, &mut brought_in).map(|()| brought_in)
    }

    /// [`Self::commit`], adding the pages it brings in to `brought_in` as
    /// it goes, so that a caller who retries after a failure (direct
    /// reclaim) or continues later keeps the count of every attempt.
    pub fn commit_counting(&mut self, addr: u64, len: u64, brought_in: &mut u64) -> Result<(), VmError> {
        let range = self.reserved_range(addr, len)?;
        for va in pages(&range) {
            if va.table_index(1) == 0 {
                self.platform.yield_point();
            }
            match self.effective_state(va)? {
                PteState::DemandZero { prot } => {
                    // Populated for reading: no frame, no promise (a fault
                    // would map the same).
                    if self.shares_zero_frame(prot) {
                        self.map_zero_frame(va, prot)?;
                    } else {
                        self.map_zeroed(va, prot)?;
                    }
                    *brought_in += 1;
                }
                PteState::Swapped { slot, prot } => {
                    // With the pages read ahead, which the walk then passes.
                    *brought_in += 1 + u64::from(self.map_swapped(va, slot, prot)?);
                }
                PteState::File { file, page, prot } => {
                    self.map_file(va, file, page, prot)?;
                    *brought_in += 1;
                }
                PteState::Present(_) | PteState::Guard | PteState::Absent => {}
            }
        }
        Ok(())
    }

    /// Gives the frames of the range back (like `MADV_DONTNEED`): pages of
    /// anonymous memory read as zero on next touch, pages of a file mapping
    /// as the file again (a private copy is dropped). Returns how many
    /// pages were unmapped.
    pub fn decommit(&mut self, addr: u64, len: u64) -> Result<u64, VmError> {
        let range = self.reserved_range(addr, len)?;
        self.check_entries(&range)?;
        let mut freed = 0;
        self.walk_leaves(&range, &mut |s, slot, va| {
            let in_file = s.regions.find(va).is_some_and(|r| matches!(r.kind, RegionKind::File { .. }));
            // The region's default: the file page, or demand-zero.
            let fresh = |prot| if in_file { PteState::Absent } else { PteState::DemandZero { prot } };
            match s.read(slot, va)? {
                PteState::Present(m) => {
                    s.unmap(slot, va, m, fresh(m.prot));
                    freed += 1;
                }
                PteState::Swapped { slot: swap_slot, prot } => {
                    s.write(slot, fresh(prot));
                    s.drop_swap_slot(swap_slot);
                }
                PteState::File { .. } => s.write(slot, PteState::Absent),
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
        let shared_file = |r: &&Region| matches!(r.kind, RegionKind::File { private: false, .. });
        if let Some(r) = self.regions.overlapping(&range).iter().find(shared_file).filter(|_| prot.write) {
            return Err(VmError::SharedFileWritable { addr: r.start.as_u64().max(addr) });
        }
        self.check_entries(&range)?;
        self.make_region_room(self.regions.splits_needed(&range))?;
        // Making a private region writable promises memory for its pages
        // (no-reserve regions are charged apart: the policy may waive them).
        let newly_accounted = |r: &Region| !r.accounted && Region::needs_accounting(prot, r.kind);
        let [normal, no_reserve] = [false, true].map(|flag| {
            let parts = self.regions.overlapping(&range).iter().filter(|r| r.no_reserve == flag);
            parts.filter(|r| newly_accounted(r)).map(|r| r.clipped(&range).chargeable_pages()).sum::<u64>()
        });
        let normal_charged = self.charge_commit(normal, false)?;
        let no_reserve_charged = match self.charge_commit(no_reserve, true) {
            Ok(charged) => charged,
            Err(e) => {
                self.uncharge_commit(normal);
                return Err(e);
            }
        };
        for region in self.regions.isolate(&range) {
            let charged = if region.no_reserve { no_reserve_charged } else { normal_charged };
            region.accounted |= newly_accounted(region) && charged;
            region.prot = prot;
        }
        // A page of the page cache stays read-only in its entry whatever
        // the region allows: a write must fault, to be copied.
        let cached = Prot { write: false, ..prot };
        let mut holds_own = false;
        let walked = self.walk_leaves(&range, &mut |s, slot, va| {
            let old = s.read(slot, va)?;
            holds_own |= holds_own_memory(old);
            let new = match old {
                PteState::Present(m) if m.kind == PageKind::File => {
                    PteState::Present(Mapping { prot: cached, ..m })
                }
                // The shared zero frame is never writable: a page that may
                // be written is demand-zero again, a write takes a frame.
                PteState::Present(m) if m.kind == PageKind::Zero && prot.write => {
                    PteState::DemandZero { prot }
                }
                PteState::Present(m) => PteState::Present(Mapping { prot, ..m }),
                PteState::DemandZero { .. } => PteState::DemandZero { prot },
                PteState::Swapped { slot, .. } => PteState::Swapped { slot, prot },
                PteState::File { file, page, .. } => PteState::File { file, page, prot },
                other @ (PteState::Guard | PteState::Absent) => other,
            };
            s.write(slot, new);
            if matches!(old, PteState::Present(_)) {
                s.platform.flush(va);
            }
            Ok(())
        });
        // Taking write away from pages none of which holds memory of the
        // space's own gives their promise back: there is nothing left to
        // keep it for (Linux keeps it: its VM_ACCOUNT lasts to munmap). A
        // heap hands back the charge of free runs this way, decommit then
        // read-only, where glibc maps them PROT_NONE over. (Decided from
        // the walk that set the entries, before the regions are joined:
        // the range is still regions of its own.)
        if walked.is_ok() && !prot.write && !holds_own {
            let mut given_back = 0;
            for region in self.regions.isolate(&range).iter_mut().filter(|r| r.accounted) {
                given_back += region.committed_pages();
                region.accounted = false;
            }
            self.uncharge_commit(given_back);
        }
        self.regions.join_around(&range);
        self.regions.shrink();
        walked
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
                PteState::Swapped { slot: swap_slot, .. } => {
                    s.write(slot, PteState::Absent);
                    s.drop_swap_slot(swap_slot);
                }
                // Nothing held elsewhere for these.
                PteState::DemandZero { .. } | PteState::File { .. } | PteState::Guard => {
                    s.write(slot, PteState::Absent)
                }
            }
            Ok(())
        })?;
        let committed: u64 = self.regions.isolate(&range).iter().map(Region::committed_pages).sum();
        self.uncharge_commit(committed);
        self.regions.remove_inside(&range);
        self.regions.shrink();
        self.stats.reserved_bytes -= len;
        self.free_empty_tables(&range);
        Ok(freed)
    }

    /// Frees every frame the space owns: data pages, page tables, the root.
    /// The space must not be active on any CPU. Returns the statistics as
    /// they were just before: what the space held at its end.
    pub fn destroy(mut self) -> SpaceStats {
        let at_end = self.stats();
        self.teardown();
        at_end
    }
}

impl<P: Platform> Drop for AddressSpace<P> {
    fn drop(&mut self) {
        self.teardown();
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
            VmError::QuotaExceeded { quota, charged, requested } => {
                write!(f, "RAM quota of {quota} bytes: {charged} charged, {requested} more asked")
            }
            VmError::CommitRefused(refused) => write!(f, "{refused}"),
            VmError::KernelShared { addr } => {
                write!(f, "{addr:#x} is a page the kernel shares read-only with every process")
            }
            VmError::File { addr, error } => write!(f, "file page at {addr:#x}: {error}"),
            VmError::SharedFileWritable { addr } => {
                write!(f, "{addr:#x}: a shared file mapping cannot be writable (map it private)")
            }
            VmError::SwapIn { addr, error } => {
                write!(f, "page {addr:#x} could not be read from swap: {error}")
            }
            VmError::Corrupt { addr, raw } => write!(f, "corrupt page-table entry {raw:#x} for {addr:#x}"),
        }
    }
}
