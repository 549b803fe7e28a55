//! Views of a space for people: the page-table walk of one address (the
//! shell's `pte`), page counts by state in a range (`vmmap`), and every
//! present page with its frame (the memory picture's owner of each frame).
//! They change nothing; they take `&mut self` only because the walker lets
//! interrupts in between page tables ([`Platform::yield_point`]).

use super::{AddressSpace, Platform, Region, VmError};
use crate::addr::{Pfn, UserAddr, PAGE_SIZE};
use crate::paging::LEVELS;
use crate::pte::{self, CorruptPte, Mapping, PageKind, PteState};
use core::ops::Range;

/// One step of a walk: entry `index` of the table at `level` in frame `table`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkStep {
    pub level: u32,
    pub table: Pfn,
    pub index: usize,
    pub raw: u64,
}

/// The walk for one address, root first. It stops early at an empty or
/// corrupt upper entry; `leaf` is the level-1 entry decoded when the walk
/// got there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryWalk {
    pub va: UserAddr,
    pub steps: [Option<WalkStep>; LEVELS as usize],
    pub leaf: Option<Result<PteState, CorruptPte>>,
    /// The region holding the address, whose default state an empty entry
    /// means.
    pub region: Option<Region>,
}

impl EntryWalk {
    /// What the page is: the leaf's state, or the region's default where
    /// nothing is recorded; `None` outside every region.
    pub fn effective(&self) -> Option<Result<PteState, CorruptPte>> {
        let region = self.region?;
        match self.leaf {
            Some(Ok(PteState::Absent)) | None => Some(Ok(region.default_state(self.va))),
            leaf => leaf,
        }
    }
}

/// Pages of a range by what their entries say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Present, the space's own frame.
    pub anonymous: u64,
    /// Present, a page-cache frame.
    pub file_mapped: u64,
    /// Present, the kernel's (the pressure page).
    pub kernel: u64,
    /// Present, the kernel's shared zero frame (a read of a read-only
    /// page): no memory of the space's own.
    pub zero_frame: u64,
    pub swapped: u64,
    /// Entries that say demand-zero (a decommitted or scavenged page).
    pub demand_zero: u64,
    /// Entries that say "page N of file F", not read yet.
    pub file_unread: u64,
    pub guard: u64,
    /// No entry: the region's default (demand-zero, the file's page, guard).
    pub untouched: u64,
    pub corrupt: u64,
}

impl PageCounts {
    pub fn resident(&self) -> u64 {
        self.anonymous + self.file_mapped + self.kernel
    }

    fn count(&mut self, state: Result<PteState, CorruptPte>) {
        match state {
            Ok(PteState::Absent) => self.untouched += 1,
            Ok(PteState::Present(m)) => match m.kind {
                PageKind::Anonymous => self.anonymous += 1,
                PageKind::File => self.file_mapped += 1,
                PageKind::Other => self.kernel += 1,
                PageKind::Zero => self.zero_frame += 1,
            },
            Ok(PteState::Swapped { .. }) => self.swapped += 1,
            Ok(PteState::DemandZero { .. }) => self.demand_zero += 1,
            Ok(PteState::File { .. }) => self.file_unread += 1,
            Ok(PteState::Guard) => self.guard += 1,
            Err(_) => self.corrupt += 1,
        }
    }
}

impl<P: Platform> AddressSpace<P> {
    /// The walk of the page tables for `va` (any user address).
    pub fn walk_entry(&self, va: UserAddr) -> EntryWalk {
        let mut walk =
            EntryWalk { va, steps: [None; LEVELS as usize], leaf: None, region: self.region_at(va) };
        let mut table = self.root;
        for (i, level) in (1..=LEVELS).rev().enumerate() {
            let index = va.table_index(level);
            let raw = self.platform.read_entry(table, index);
            walk.steps[i] = Some(WalkStep { level, table, index, raw });
            if level == 1 {
                walk.leaf = Some(PteState::decode(raw));
                break;
            }
            match pte::table::decode(raw) {
                Ok(Some(next)) => table = next,
                Ok(None) | Err(_) => break,
            }
        }
        walk
    }

    /// Counts the pages of `range` (page-aligned, in the user half) by
    /// state. Its cost follows the page tables that exist, not the length.
    pub fn page_counts(&mut self, range: Range<UserAddr>) -> PageCounts {
        let mut counts = PageCounts::default();
        let mut seen = 0;
        let _ = self.walk_leaves(&range, &mut |s, slot, _| {
            let raw = s.raw_entry(slot);
            seen += 1;
            counts.count(PteState::decode(raw));
            Ok::<(), VmError>(())
        });
        let pages = (range.end.as_u64() - range.start.as_u64()) / PAGE_SIZE;
        counts.untouched += pages - seen;
        counts
    }

    /// Calls `visit` with every present page of the user half and its
    /// mapping.
    pub fn for_each_present(&mut self, visit: &mut dyn FnMut(UserAddr, Mapping)) {
        let all = UserAddr::new(super::USER_START)..UserAddr::new(super::USER_END);
        let _ = self.walk_leaves(&all, &mut |s, slot, va| {
            if let Ok(PteState::Present(m)) = PteState::decode(s.raw_entry(slot)) {
                visit(va, m);
            }
            Ok(())
        });
    }
}
