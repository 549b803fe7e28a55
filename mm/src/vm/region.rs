//! Regions: reserved ranges of an address space, like Linux's VMAs. A region
//! says what an untouched page in it is (its default [`PteState`]); the page
//! table only records pages whose state differs from that default.

use crate::addr::{UserAddr, PAGE_SIZE};
use crate::pte::{Prot, PteState};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Demand-zero memory.
    Anonymous,
    /// Demand-zero memory whose lowest `guard_pages` pages are guard pages
    /// (a downward-growing stack runs into them on overflow).
    Stack { guard_pages: u64 },
    /// Page i of the region is page `first_page + i` of `file`. Shared
    /// (`private: false`): every mapping sees the page cache's frame, and
    /// the region is never writable (the file disk is read-only). Private:
    /// the first write to a page gives the space its own anonymous copy
    /// (copy on write).
    File { file: u16, first_page: u64, private: bool },
    /// One page of the kernel's, mapped read-only into the space when it
    /// was made (the pressure page): not the space's memory, never
    /// reclaimed, and no operation of the process may change it.
    KernelShared,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: UserAddr,
    pub end: UserAddr,
    pub prot: Prot,
    pub kind: RegionKind,
    /// Its pages are counted in the commit charge (`Committed_AS`): set
    /// when it is made writable and private, and kept until it is released
    /// even if it is made read-only while its pages hold memory, as Linux's
    /// `VM_ACCOUNT`; made read-only with nothing in it (never touched, or
    /// decommitted), it gives the charge back.
    pub accounted: bool,
    /// Reserved with [`Accounting::NoReserve`](super::Accounting): the
    /// policy may leave it uncharged (Linux's `VM_NORESERVE`).
    pub no_reserve: bool,
}

impl Region {
    /// Whether a region of `kind` with `prot` is charged to the commit
    /// account: writable and private (a shared file mapping is never
    /// writable; a private one's written pages become anonymous copies).
    pub fn needs_accounting(prot: Prot, kind: RegionKind) -> bool {
        prot.write && !matches!(kind, RegionKind::File { private: false, .. })
    }

    /// Pages of it that may ever need memory of their own (guard pages
    /// never do).
    pub fn chargeable_pages(&self) -> u64 {
        match self.kind {
            RegionKind::Stack { guard_pages } => self.pages().saturating_sub(guard_pages),
            RegionKind::Anonymous | RegionKind::File { .. } | RegionKind::KernelShared => self.pages(),
        }
    }

    /// Pages it has in the commit charge.
    pub fn committed_pages(&self) -> u64 {
        if self.accounted {
            self.chargeable_pages()
        } else {
            0
        }
    }

    pub fn pages(&self) -> u64 {
        (self.end.as_u64() - self.start.as_u64()) / PAGE_SIZE
    }

    /// The address of page `page` of `file` in this region, if the region
    /// maps that page of that file.
    pub fn address_of(&self, file: u16, page: u64) -> Option<UserAddr> {
        match self.kind {
            RegionKind::File { file: f, first_page, .. } if f == file && page >= first_page => {
                let index = page - first_page;
                (index < self.pages()).then(|| UserAddr::new(self.start.as_u64() + index * PAGE_SIZE))
            }
            _ => None,
        }
    }

    pub fn contains(&self, va: UserAddr) -> bool {
        (self.start..self.end).contains(&va)
    }

    /// What a page of this region is when its entry records nothing.
    pub fn default_state(&self, va: UserAddr) -> PteState {
        let page = (va.as_u64() - self.start.as_u64()) / PAGE_SIZE;
        match self.kind {
            RegionKind::Stack { guard_pages } if page < guard_pages => PteState::Guard,
            RegionKind::Anonymous | RegionKind::Stack { .. } => PteState::DemandZero { prot: self.prot },
            RegionKind::File { file, first_page, .. } => {
                PteState::File { file, page: first_page + page, prot: self.prot }
            }
            // Mapped for the space's whole life; never absent in practice,
            // and nothing to bring in if it were.
            RegionKind::KernelShared => PteState::Guard,
        }
    }

    /// The part of it inside `range` (which must overlap it), with each
    /// page's meaning kept.
    pub fn clipped(&self, range: &Range<UserAddr>) -> Region {
        let mut part = *self;
        if part.start < range.start {
            part = part.split(range.start).1;
        }
        if part.end > range.end {
            part = part.split(range.end).0;
        }
        part
    }

    /// The one region `self` and `above` (which starts where `self` ends)
    /// make when every page keeps its meaning and its charge: what
    /// [`split`](Self::split) would undo. None when they differ.
    pub fn joined(&self, above: &Region) -> Option<Region> {
        let same = self.end == above.start
            && self.prot == above.prot
            && self.accounted == above.accounted
            && self.no_reserve == above.no_reserve;
        let kind = match (self.kind, above.kind) {
            (RegionKind::Anonymous, RegionKind::Anonymous) => RegionKind::Anonymous,
            // Guard pages must stay the lowest pages of the joined stack.
            (RegionKind::Stack { guard_pages: low }, RegionKind::Stack { guard_pages: high })
                if high == 0 || low == self.pages() =>
            {
                RegionKind::Stack { guard_pages: low + high }
            }
            (
                RegionKind::File { file, first_page, private },
                RegionKind::File { file: f, first_page: next, private: p },
            ) if f == file && p == private && next == first_page + self.pages() => self.kind,
            _ => return None,
        };
        same.then_some(Region { end: above.end, kind, ..*self })
    }

    /// Splits at page-aligned `at` (strictly inside) into (below, above),
    /// keeping each page's meaning.
    fn split(self, at: UserAddr) -> (Region, Region) {
        let below_pages = (at.as_u64() - self.start.as_u64()) / PAGE_SIZE;
        let (low_kind, high_kind) = match self.kind {
            RegionKind::Anonymous => (RegionKind::Anonymous, RegionKind::Anonymous),
            RegionKind::Stack { guard_pages } => (
                RegionKind::Stack { guard_pages: guard_pages.min(below_pages) },
                RegionKind::Stack { guard_pages: guard_pages.saturating_sub(below_pages) },
            ),
            RegionKind::File { file, first_page, private } => (
                RegionKind::File { file, first_page, private },
                RegionKind::File { file, first_page: first_page + below_pages, private },
            ),
            RegionKind::KernelShared => (RegionKind::KernelShared, RegionKind::KernelShared),
        };
        (Region { end: at, kind: low_kind, ..self }, Region { start: at, kind: high_kind, ..self })
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RegionKind::Anonymous => "anonymous",
            RegionKind::Stack { .. } => "stack",
            RegionKind::File { private: false, .. } => "file (shared)",
            RegionKind::File { private: true, .. } => "file (private)",
            RegionKind::KernelShared => "kernel-shared",
        };
        write!(f, "{}..{} {} {kind}", self.start, self.end, self.prot)
    }
}

/// The regions of one address space, sorted by start address; they never
/// overlap.
///
/// A sorted `Vec` rather than a `BTreeMap`, because every byte of it is
/// kernel memory a process caused: the `Vec` can grow *fallibly*
/// ([`RegionMap::try_reserve`]), so a process that floods the kernel with
/// regions gets an error instead of an allocation failure that would take
/// the kernel down, and its capacity is an exact number to charge to the
/// process ([`RegionMap::bytes`]). Lookups are binary searches; an insert
/// moves the records above it, which the region limit keeps small.
#[derive(Debug, Default)]
pub struct RegionMap {
    regions: Vec<Region>,
}

/// The kernel heap could not supply room for more region records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoomForRegions;

impl RegionMap {
    /// Index of the last region starting at or below `va`.
    fn last_at_or_below(&self, va: UserAddr) -> Option<usize> {
        self.regions.partition_point(|r| r.start <= va).checked_sub(1)
    }

    /// Index of the first region starting at or above `va`.
    fn first_at_or_above(&self, va: UserAddr) -> usize {
        self.regions.partition_point(|r| r.start < va)
    }

    pub fn find(&self, va: UserAddr) -> Option<&Region> {
        self.last_at_or_below(va).map(|i| &self.regions[i]).filter(|r| r.contains(va))
    }

    /// The first region overlapping `range`, if any.
    pub fn first_overlap(&self, range: &Range<UserAddr>) -> Option<&Region> {
        let before = self.find(range.start);
        before
            .or_else(|| self.regions.get(self.first_at_or_above(range.start)).filter(|r| r.start < range.end))
    }

    /// The first page of `range` that no region covers (`None`: all covered).
    pub fn first_gap(&self, range: &Range<UserAddr>) -> Option<UserAddr> {
        let mut at = range.start;
        while at < range.end {
            match self.find(at) {
                Some(r) => at = r.end,
                None => return Some(at),
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// The `i`-th region in address order.
    pub fn get(&self, i: usize) -> Option<&Region> {
        self.regions.get(i)
    }

    /// The regions overlapping `range`, in address order.
    pub fn overlapping(&self, range: &Range<UserAddr>) -> &[Region] {
        let first = match self.last_at_or_below(range.start) {
            Some(i) if self.regions[i].contains(range.start) => i,
            _ => self.first_at_or_above(range.start),
        };
        &self.regions[first..self.first_at_or_above(range.end).max(first)]
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Kernel memory the records take (their capacity, not only their count).
    pub fn bytes(&self) -> u64 {
        (self.regions.capacity() * core::mem::size_of::<Region>()) as u64
    }

    /// The capacity room for `extra` more records takes: unchanged if it
    /// fits, else doubled (as `Vec`'s growth, so that a flood of inserts
    /// costs amortised O(1) allocations), at least 4.
    fn capacity_for(&self, extra: usize) -> usize {
        let needed = self.regions.len() + extra;
        let capacity = self.regions.capacity();
        if needed <= capacity {
            capacity
        } else {
            needed.max(capacity * 2).max(4)
        }
    }

    /// What [`bytes`](Self::bytes) would become if room for `extra` more
    /// records were made.
    pub fn bytes_after_growth(&self, extra: usize) -> u64 {
        (self.capacity_for(extra) * core::mem::size_of::<Region>()) as u64
    }

    /// Makes room for `extra` more records, or fails without changing
    /// anything. After it, that many inserts and splits cannot allocate.
    pub fn try_reserve(&mut self, extra: usize) -> Result<(), NoRoomForRegions> {
        let more = self.capacity_for(extra) - self.regions.len();
        self.regions.try_reserve_exact(more).map_err(|_| NoRoomForRegions)
    }

    /// Gives back capacity when at most a quarter of it is used. Fallible
    /// like growth: if the smaller copy cannot be allocated, nothing changes.
    pub fn shrink(&mut self) {
        let (len, capacity) = (self.regions.len(), self.regions.capacity());
        if capacity <= 8 || len * 4 > capacity {
            return;
        }
        let mut smaller = Vec::new();
        if smaller.try_reserve_exact(len.max(4)).is_ok() {
            smaller.extend_from_slice(&self.regions);
            self.regions = smaller;
        }
    }

    /// Inserts a region that overlaps none. Room must have been made with
    /// [`try_reserve`](Self::try_reserve) (it panics otherwise, rather than
    /// allocate behind the caller's back).
    pub fn insert(&mut self, region: Region) {
        debug_assert!(self.first_overlap(&(region.start..region.end)).is_none());
        assert!(self.regions.len() < self.regions.capacity(), "RegionMap::insert without try_reserve");
        let at = self.first_at_or_above(region.start);
        self.regions.insert(at, region);
    }

    /// How many regions [`isolate`](Self::isolate) would have to split for
    /// `range` (0, 1 or 2).
    pub fn splits_needed(&self, range: &Range<UserAddr>) -> usize {
        [range.start, range.end]
            .into_iter()
            .filter(|&at| self.find(at).is_some_and(|r| r.start != at))
            .count()
    }

    /// Makes `at` a region boundary if it falls inside a region.
    fn split_at(&mut self, at: UserAddr) {
        if let Some(i) = self.last_at_or_below(at) {
            let r = self.regions[i];
            if r.contains(at) && r.start != at {
                assert!(
                    self.regions.len() < self.regions.capacity(),
                    "RegionMap::split_at without try_reserve"
                );
                let (low, high) = r.split(at);
                self.regions[i] = low;
                self.regions.insert(i + 1, high);
            }
        }
    }

    /// Splits regions at the ends of `range` (room for
    /// [`splits_needed`](Self::splits_needed) records must have been made)
    /// and returns the regions now exactly inside it.
    pub fn isolate(&mut self, range: &Range<UserAddr>) -> &mut [Region] {
        self.split_at(range.start);
        self.split_at(range.end);
        let (first, end) = (self.first_at_or_above(range.start), self.first_at_or_above(range.end));
        &mut self.regions[first..end]
    }

    /// Joins neighbours that [`Region::joined`] allows, from the region
    /// ending at `range.start` to the one starting at `range.end`: what a
    /// protect split, a later protect may make whole again (Linux's
    /// `vma_merge`), so a heap that grows its arena a chunk at a time, or
    /// gives pages back and takes them again, keeps one record for it.
    /// Never allocates.
    pub fn join_around(&mut self, range: &Range<UserAddr>) {
        let first = self.first_at_or_above(range.start).saturating_sub(1);
        let end = (self.first_at_or_above(range.end) + 1).min(self.regions.len());
        let mut kept = first;
        for i in first + 1..end {
            match self.regions[kept].joined(&self.regions[i]) {
                Some(whole) => self.regions[kept] = whole,
                None => {
                    kept += 1;
                    self.regions[kept] = self.regions[i];
                }
            }
        }
        if end > first {
            self.regions.drain(kept + 1..end);
        }
    }

    /// Removes the regions inside `range` (its ends must be boundaries:
    /// [`isolate`](Self::isolate) first).
    pub fn remove_inside(&mut self, range: &Range<UserAddr>) {
        let (first, end) = (self.first_at_or_above(range.start), self.first_at_or_above(range.end));
        self.regions.drain(first..end);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter()
    }

    /// The lowest page-aligned gap of `len` bytes inside `within`.
    pub fn find_gap(&self, len: u64, within: Range<UserAddr>) -> Option<UserAddr> {
        let mut candidate = within.start.as_u64();
        for r in &self.regions {
            if r.end.as_u64() <= candidate {
                continue;
            }
            if r.start.as_u64() >= candidate.checked_add(len)? {
                break;
            }
            candidate = r.end.as_u64();
        }
        (candidate.checked_add(len)? <= within.end.as_u64()).then_some(UserAddr::new(candidate))
    }
}
