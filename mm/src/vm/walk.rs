//! The page-table walker: finding and creating leaf slots, walking only the
//! tables that exist, and freeing tables (after a full flush) when a range
//! leaves them empty. The only code in the VMM that follows table entries;
//! what an entry *means* is the PTE codec's (`crate::pte`).

use super::{AddressSpace, Platform, Region, VmError};
use crate::addr::{Pfn, UserAddr, PAGE_SIZE};
use crate::frame::{FrameBlock, Owner};
use crate::paging::{entry_span, ENTRIES, LEVELS, USER_ROOT_ENTRIES};
use crate::pte::{self, CorruptPte, Mapping, PageKind, Prot, PteState};
use core::ops::Range;

/// The part of `range` that entry `index` of a table at `level` maps. The
/// range must lie inside that one table's span.
fn entry_range(range: &Range<UserAddr>, level: u32, index: usize) -> Range<UserAddr> {
    let span = entry_span(level);
    let table_base = range.start.as_u64() & !(span * ENTRIES as u64 - 1);
    let base = table_base + index as u64 * span;
    UserAddr::new(range.start.as_u64().max(base))..UserAddr::new(range.end.as_u64().min(base + span))
}

/// Page-table frames unlinked from the tree but not freed yet: the CPU may
/// still hold them in its paging-structure caches until a full flush.
struct UnlinkedTables {
    tables: [Pfn; 32],
    len: usize,
}

/// A visitor of leaf slots: gets the space, the slot and the page's address.
pub(super) type LeafVisitor<'a, P> =
    dyn FnMut(&mut AddressSpace<P>, Slot, UserAddr) -> Result<(), VmError> + 'a;

/// Fills a new frame before it is mapped (swap-in reads the slot into it).
pub(super) type PageFill<'a, P> = dyn FnMut(&mut P, Pfn) -> Result<(), VmError> + 'a;

/// A frame handed to the page tables: from now on an entry owns it.
pub(super) fn into_entry(block: FrameBlock) -> Pfn {
    debug_assert_eq!(block.order(), 0, "page tables map single frames");
    block.into_raw().0
}

/// The block of a table frame an entry lets go of.
fn table_block(table: Pfn) -> FrameBlock {
    FrameBlock::from_raw(table, 0, Owner::PageTable)
}

/// The block of a data frame an entry lets go of. Only anonymous pages are
/// owned by the space (file pages belong to the page cache).
pub(super) fn page_block(frame: Pfn) -> FrameBlock {
    FrameBlock::from_raw(frame, 0, Owner::Process)
}

/// Frames a teardown frees with one [`Platform::free_pages`] call.
const FREED_AT_ONCE: usize = 32;

/// Where a page's leaf entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    table: Pfn,
    index: usize,
}

impl Slot {
    /// Up to `count` entries after this one (the entry of `va`) in the
    /// same table, in order, each with its page's address; fewer at the
    /// table's end. What maps ahead of a fault walks (fault-around,
    /// swap-in read-ahead).
    pub(super) fn following(self, va: UserAddr, count: usize) -> impl Iterator<Item = (Slot, UserAddr)> {
        let last = (self.index + count).min(ENTRIES - 1);
        (self.index + 1..=last).map(move |index| {
            let page = UserAddr::new(va.as_u64() + (index - self.index) as u64 * PAGE_SIZE);
            (Slot { table: self.table, index }, page)
        })
    }
}

impl<P: Platform> AddressSpace<P> {
    /// Frees the page tables that `range` left empty: unlinked first, then
    /// freed after one full flush.
    pub(super) fn free_empty_tables(&mut self, range: &Range<UserAddr>) {
        let mut unlinked = UnlinkedTables { tables: [Pfn::new(0); 32], len: 0 };
        self.prune(self.root, LEVELS, range, &mut unlinked);
        self.free_unlinked(&mut unlinked);
    }

    /// Refuses an operation up front if any entry in the range is corrupt, so
    /// that it either changes everything or nothing. Like every walk here it
    /// visits only the tables that exist, so its cost follows what is
    /// populated, not the length of the range.
    pub(super) fn check_entries(&mut self, range: &Range<UserAddr>) -> Result<(), VmError> {
        self.walk_leaves(range, &mut |s, slot, va| s.read(slot, va).map(|_| ()))
    }

    /// Calls `visit` for every leaf slot of `range` whose page table exists,
    /// skipping absent subtrees whole; lets interrupts in between page tables
    /// ([`Platform::yield_point`]).
    pub(super) fn walk_leaves(
        &mut self,
        range: &Range<UserAddr>,
        visit: &mut LeafVisitor<'_, P>,
    ) -> Result<(), VmError> {
        self.walk_table(self.root, LEVELS, range, visit)
    }

    fn walk_table(
        &mut self,
        table: Pfn,
        level: u32,
        range: &Range<UserAddr>,
        visit: &mut LeafVisitor<'_, P>,
    ) -> Result<(), VmError> {
        let first = range.start.table_index(level);
        let last = UserAddr::new(range.end.as_u64() - 1).table_index(level);
        for index in first..=last {
            let part = entry_range(range, level, index);
            if level == 1 {
                visit(self, Slot { table, index }, part.start)?;
                continue;
            }
            match pte::table::decode(self.platform.read_entry(table, index)) {
                Ok(Some(child)) => self.walk_table(child, level - 1, &part, visit)?,
                Ok(None) => {}
                Err(CorruptPte(raw)) => return Err(VmError::Corrupt { addr: part.start.as_u64(), raw }),
            }
            if level == 2 {
                self.platform.yield_point();
            }
        }
        Ok(())
    }

    pub(super) fn teardown(&mut self) {
        if self.destroyed {
            return;
        }
        for index in USER_ROOT_ENTRIES {
            let raw = self.platform.read_entry(self.root, index);
            if let Ok(Some(child)) = pte::table::decode(raw) {
                self.free_subtree(child, LEVELS - 1);
                self.platform.write_entry(self.root, index, 0);
            }
        }
        self.platform.free_table(table_block(self.root));
        self.stats.table_frames -= 1;
        self.uncharge_commit(self.stats.committed_pages);
        self.destroyed = true;
    }

    fn free_subtree(&mut self, table: Pfn, level: u32) {
        if level == 1 {
            self.platform.yield_point();
            self.free_leaf_pages(table);
        } else {
            for index in 0..ENTRIES {
                if let Ok(Some(child)) = pte::table::decode(self.platform.read_entry(table, index)) {
                    self.free_subtree(child, level - 1);
                }
            }
        }
        self.platform.free_table(table_block(table));
        self.stats.table_frames -= 1;
    }

    /// Lets go of every page a leaf table maps and every slot it names.
    /// The space is not active, so no TLB can hold its entries; the
    /// anonymous frames are freed [`FREED_AT_ONCE`] at a time
    /// ([`Platform::free_pages`]: a platform whose free takes locks takes
    /// them once for the lot, which matters when a big process exits).
    fn free_leaf_pages(&mut self, table: Pfn) {
        let mut frames = [const { None }; FREED_AT_ONCE];
        let mut len = 0;
        for index in 0..ENTRIES {
            match PteState::decode(self.platform.read_entry(table, index)) {
                Ok(PteState::Present(m)) => {
                    frames[len] = self.let_go(m);
                    len += usize::from(frames[len].is_some());
                }
                Ok(PteState::Swapped { slot, .. }) => self.drop_swap_slot(slot),
                Ok(
                    PteState::DemandZero { .. } | PteState::File { .. } | PteState::Guard | PteState::Absent,
                )
                | Err(_) => {}
            }
            if len == FREED_AT_ONCE {
                self.platform.free_pages(frames.iter_mut().filter_map(Option::take));
                len = 0;
            }
        }
        self.platform.free_pages(frames.iter_mut().take(len).filter_map(Option::take));
    }

    /// The leaf slot for `va`, if its page tables exist.
    pub(super) fn leaf(&self, va: UserAddr) -> Result<Option<Slot>, VmError> {
        let mut table = self.root;
        for level in (2..=LEVELS).rev() {
            let raw = self.platform.read_entry(table, va.table_index(level));
            match pte::table::decode(raw) {
                Ok(Some(next)) => table = next,
                Ok(None) => return Ok(None),
                Err(CorruptPte(raw)) => return Err(VmError::Corrupt { addr: va.as_u64(), raw }),
            }
        }
        Ok(Some(Slot { table, index: va.table_index(1) }))
    }

    /// The leaf slot for `va`, creating the page tables on the way.
    pub(super) fn leaf_or_create(&mut self, va: UserAddr) -> Result<Slot, VmError> {
        let mut table = self.root;
        for level in (2..=LEVELS).rev() {
            let index = va.table_index(level);
            let raw = self.platform.read_entry(table, index);
            table = match pte::table::decode(raw) {
                Ok(Some(next)) => next,
                Ok(None) => {
                    self.check_kernel_memory(self.regions.bytes(), self.stats.table_frames + 1)?;
                    self.check_quota(PAGE_SIZE)?;
                    let next = into_entry(self.platform.alloc_table().ok_or(VmError::OutOfMemory)?);
                    self.stats.table_frames += 1;
                    self.platform.write_entry(table, index, pte::table::encode(next));
                    next
                }
                Err(CorruptPte(raw)) => return Err(VmError::Corrupt { addr: va.as_u64(), raw }),
            };
        }
        Ok(Slot { table, index: va.table_index(1) })
    }

    /// The entry in `slot`, undecoded.
    pub(super) fn raw_entry(&self, slot: Slot) -> u64 {
        self.platform.read_entry(slot.table, slot.index)
    }

    pub(super) fn read(&self, slot: Slot, va: UserAddr) -> Result<PteState, VmError> {
        let raw = self.platform.read_entry(slot.table, slot.index);
        PteState::decode(raw).map_err(|CorruptPte(raw)| VmError::Corrupt { addr: va.as_u64(), raw })
    }

    pub(super) fn write(&mut self, slot: Slot, state: PteState) {
        self.platform.write_entry(slot.table, slot.index, state.encode());
    }

    /// Maps a zeroed frame at `va`; returns where its entry is.
    pub(super) fn map_zeroed(&mut self, va: UserAddr, prot: Prot) -> Result<Slot, VmError> {
        self.map_new_page(va, prot, None)
    }

    /// Whether a demand-zero page with `prot` is brought in as the shared
    /// zero frame: nothing may write it, and the platform has one.
    pub(super) fn shares_zero_frame(&self, prot: Prot) -> bool {
        !prot.write && self.platform.zero_frame().is_some()
    }

    /// Maps the platform's shared zero frame at `va`, read-only whatever
    /// `prot` says (the caller maps it only where `prot` is read-only).
    pub(super) fn map_zero_frame(&mut self, va: UserAddr, prot: Prot) -> Result<(), VmError> {
        let frame = self.platform.zero_frame().ok_or(VmError::OutOfMemory)?;
        let slot = self.leaf_or_create(va)?;
        self.write(slot, PteState::Present(Mapping::read_only(frame, prot, PageKind::Zero)));
        Ok(())
    }

    /// Maps a new anonymous frame at `va`: zeroed, or filled whole by
    /// `fill` before the entry is written (so no access sees it half filled,
    /// and it need not be zeroed first). When `fill` fails, the frame goes
    /// back unmapped and the entry is untouched. Returns where the entry is.
    pub(super) fn map_new_page(
        &mut self,
        va: UserAddr,
        prot: Prot,
        fill: Option<&mut PageFill<'_, P>>,
    ) -> Result<Slot, VmError> {
        let slot = self.leaf_or_create(va)?;
        self.check_quota(PAGE_SIZE)?;
        let block = self.platform.alloc_page(va, fill.is_none()).ok_or(VmError::OutOfMemory)?;
        if let Some(fill) = fill {
            if let Err(e) = fill(&mut self.platform, block.start()) {
                self.platform.free_page(block);
                return Err(e);
            }
        }
        self.write(slot, PteState::Present(fresh_anonymous(into_entry(block), prot)));
        self.stats.resident_pages += 1;
        Ok(slot)
    }

    /// Fault-around's mechanism (`vm/fault_around.rs`): maps up to `count`
    /// pages after `va`, whose demand-zero fault was just resolved into the
    /// entry at `first`, each a frame already zeroed
    /// ([`Platform::alloc_prezeroed_page`]). It goes along `first`'s leaf
    /// table (no walk), stopping at the first
    /// page that is not demand-zero, leaves `region` or the table, would
    /// pass the quota, or finds no zeroed frame: it never zeroes, creates a
    /// table, or fails the fault it follows. Returns how many it mapped.
    pub(super) fn map_ahead(&mut self, va: UserAddr, first: Slot, region: &Region, count: u32) -> u32 {
        if self.platform.prezeroed_hint() == 0 {
            return 0;
        }
        let mut mapped = 0;
        for (slot, page) in first.following(va, count as usize) {
            let state = match self.read(slot, page) {
                Ok(PteState::Absent) if region.contains(page) => region.default_state(page),
                Ok(state) if region.contains(page) => state,
                _ => break,
            };
            let PteState::DemandZero { prot } = state else { break };
            if self.check_quota(PAGE_SIZE).is_err() {
                break;
            }
            let Some(block) = self.platform.alloc_prezeroed_page(page) else { break };
            self.write(slot, PteState::Present(fresh_anonymous(into_entry(block), prot)));
            self.stats.resident_pages += 1;
            mapped += 1;
        }
        self.stats.faults.mapped_ahead += u64::from(mapped);
        mapped
    }

    /// Replaces a present entry with `then`, flushes, and only then frees the
    /// frame.
    pub(super) fn unmap(&mut self, slot: Slot, va: UserAddr, mapping: Mapping, then: PteState) {
        if let Some(frame) = self.unmap_keeping_frame(slot, va, mapping, then) {
            self.platform.free_page(frame);
        }
    }

    /// [`Self::unmap`] for a caller that frees an anonymous page's frame
    /// itself, together with others ([`Platform::free_pages`]): the frame
    /// is handed back instead of freed.
    pub(super) fn unmap_keeping_frame(
        &mut self,
        slot: Slot,
        va: UserAddr,
        mapping: Mapping,
        then: PteState,
    ) -> Option<FrameBlock> {
        self.write(slot, then);
        self.platform.flush(va);
        self.let_go(mapping)
    }

    /// A mapping whose entry is gone (and flushed) lets go of its frame:
    /// an anonymous one is handed back for the caller to free, a
    /// page-cache one goes back to the cache (one mapping fewer).
    fn let_go(&mut self, mapping: Mapping) -> Option<FrameBlock> {
        let frame = match mapping.kind {
            PageKind::Anonymous => Some(page_block(mapping.frame)),
            PageKind::File => {
                self.platform.unmap_file_page(mapping.frame);
                self.stats.file_pages -= 1;
                None
            }
            // The kernel's page (map_kernel_shared) and its zero frame:
            // never counted, never freed.
            PageKind::Other | PageKind::Zero => return None,
        };
        self.stats.resident_pages -= 1;
        frame
    }

    /// Unlinks the tables below `table` (at `level`) that `range` left empty
    /// and queues them in `unlinked`. Returns true when `table` itself is
    /// now empty.
    fn prune(
        &mut self,
        table: Pfn,
        level: u32,
        range: &Range<UserAddr>,
        unlinked: &mut UnlinkedTables,
    ) -> bool {
        if level > 1 {
            let first = range.start.table_index(level);
            let last = UserAddr::new(range.end.as_u64() - 1).table_index(level);
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
        level < LEVELS && (0..ENTRIES).all(|i| self.platform.read_entry(table, i) == 0)
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
            self.platform.free_table(table_block(table));
            self.stats.table_frames -= 1;
        }
        unlinked.len = 0;
    }
}

/// The entry of an anonymous page just brought in: not yet accessed, clean.
pub(super) fn fresh_anonymous(frame: Pfn, prot: Prot) -> Mapping {
    Mapping {
        frame,
        prot,
        kind: PageKind::Anonymous,
        pinned: false,
        accessed: false,
        dirty: false,
        swap_cached: false,
    }
}
