//! Regions: reserved ranges of an address space, like Linux's VMAs. A region
//! says what an untouched page in it is (its default [`PteState`]); the page
//! table only records pages whose state differs from that default.

use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::pte::{Prot, PteState};
use alloc::collections::BTreeMap;
use core::fmt;
use core::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Demand-zero memory.
    Anonymous,
    /// Demand-zero memory whose lowest `guard_pages` pages are guard pages
    /// (a downward-growing stack runs into them on overflow).
    Stack { guard_pages: u64 },
    /// Page i of the region is page `first_page + i` of `file`.
    File { file: u16, first_page: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: VirtAddr,
    pub end: VirtAddr,
    pub prot: Prot,
    pub kind: RegionKind,
}

impl Region {
    pub fn pages(&self) -> u64 {
        (self.end.0 - self.start.0) / PAGE_SIZE
    }

    pub fn contains(&self, va: VirtAddr) -> bool {
        (self.start..self.end).contains(&va)
    }

    /// What a page of this region is when its entry records nothing.
    pub fn default_state(&self, va: VirtAddr) -> PteState {
        let page = (va.0 - self.start.0) / PAGE_SIZE;
        match self.kind {
            RegionKind::Stack { guard_pages } if page < guard_pages => PteState::Guard,
            RegionKind::Anonymous | RegionKind::Stack { .. } => PteState::DemandZero { prot: self.prot },
            RegionKind::File { file, first_page } => {
                PteState::File { file, page: first_page + page, prot: self.prot }
            }
        }
    }

    /// Splits at page-aligned `at` (strictly inside) into (below, above),
    /// keeping each page's meaning.
    fn split(self, at: VirtAddr) -> (Region, Region) {
        let below_pages = (at.0 - self.start.0) / PAGE_SIZE;
        let (low_kind, high_kind) = match self.kind {
            RegionKind::Anonymous => (RegionKind::Anonymous, RegionKind::Anonymous),
            RegionKind::Stack { guard_pages } => (
                RegionKind::Stack { guard_pages: guard_pages.min(below_pages) },
                RegionKind::Stack { guard_pages: guard_pages.saturating_sub(below_pages) },
            ),
            RegionKind::File { file, first_page } => (
                RegionKind::File { file, first_page },
                RegionKind::File { file, first_page: first_page + below_pages },
            ),
        };
        (Region { end: at, kind: low_kind, ..self }, Region { start: at, kind: high_kind, ..self })
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RegionKind::Anonymous => "anonymous",
            RegionKind::Stack { .. } => "stack",
            RegionKind::File { .. } => "file",
        };
        write!(f, "{}..{} {} {kind}", self.start, self.end, self.prot)
    }
}

/// The regions of one address space, by start address; they never overlap.
#[derive(Debug, Default)]
pub struct RegionMap {
    regions: BTreeMap<u64, Region>,
}

impl RegionMap {
    pub fn find(&self, va: VirtAddr) -> Option<&Region> {
        self.regions.range(..=va.0).next_back().map(|(_, r)| r).filter(|r| r.contains(va))
    }

    /// The first region overlapping `range`, if any.
    pub fn first_overlap(&self, range: &Range<VirtAddr>) -> Option<&Region> {
        let before = self.find(range.start);
        before.or_else(|| self.regions.range(range.start.0..range.end.0).next().map(|(_, r)| r))
    }

    /// The first page of `range` that no region covers (`None`: all covered).
    pub fn first_gap(&self, range: &Range<VirtAddr>) -> Option<VirtAddr> {
        let mut at = range.start;
        while at < range.end {
            match self.find(at) {
                Some(r) => at = r.end,
                None => return Some(at),
            }
        }
        None
    }

    pub fn insert(&mut self, region: Region) {
        debug_assert!(self.first_overlap(&(region.start..region.end)).is_none());
        self.regions.insert(region.start.0, region);
    }

    /// Makes `at` a region boundary if it falls inside a region.
    pub fn split_at(&mut self, at: VirtAddr) {
        if let Some(&r) = self.find(at) {
            if r.start != at {
                let (low, high) = r.split(at);
                self.regions.insert(low.start.0, low);
                self.regions.insert(high.start.0, high);
            }
        }
    }

    /// Splits regions at the ends of `range` and returns the start addresses
    /// of the regions now exactly inside it.
    pub fn isolate(&mut self, range: &Range<VirtAddr>) -> alloc::vec::Vec<u64> {
        self.split_at(range.start);
        self.split_at(range.end);
        self.regions.range(range.start.0..range.end.0).map(|(&s, _)| s).collect()
    }

    pub fn get_mut(&mut self, start: u64) -> Option<&mut Region> {
        self.regions.get_mut(&start)
    }

    pub fn remove(&mut self, start: u64) -> Option<Region> {
        self.regions.remove(&start)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// The lowest page-aligned gap of `len` bytes inside `within`.
    pub fn find_gap(&self, len: u64, within: Range<VirtAddr>) -> Option<VirtAddr> {
        let mut candidate = within.start.0;
        for r in self.regions.values() {
            if r.end.0 <= candidate {
                continue;
            }
            if r.start.0 >= candidate.checked_add(len)? {
                break;
            }
            candidate = r.end.0;
        }
        (candidate.checked_add(len)? <= within.end.0).then_some(VirtAddr(candidate))
    }
}
