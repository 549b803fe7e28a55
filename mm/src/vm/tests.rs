extern crate std;

use super::*;
use crate::files::FileError;
use crate::frame::{FrameBlock, Owner};
use crate::pte;
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::vec::Vec;

const GIB: u64 = 1 << 30;
const KERNEL_ROOT_ENTRY: u64 = 0xdead_b007;

/// A machine in miniature: page tables in a map, frames from a counter, and a
/// TLB that caches translations when pages are touched and forgets them only
/// on flush, as hardware does. Freeing a frame a TLB entry still points at
/// panics: that is the bug the flush discipline exists to prevent.
#[derive(Default)]
struct FakeMachine {
    tables: HashMap<Pfn, [u64; 512]>,
    pages: BTreeSet<Pfn>,
    /// Contents of data pages: one word per page is enough to see zeroing.
    contents: HashMap<Pfn, u64>,
    next_frame: u64,
    /// Frames left before allocation fails.
    frames_left: Option<u64>,
    /// Cached translations: page → (frame, writable).
    tlb: HashMap<u64, (Pfn, bool)>,
    /// Paging-structure caches: the tables below the root that walks went
    /// through since the last full flush. Freeing one of them panics.
    walk_cache: BTreeSet<Pfn>,
    flushes: u64,
    full_flushes: u64,
    yield_points: u64,
    /// Entries read, to check that walks follow what is populated.
    entries_read: std::cell::Cell<u64>,
    /// Swap: slot → the page's content word; `swap_slots` slots in all.
    swap: BTreeMap<u64, u64>,
    swap_slots: u64,
    next_slot: u64,
    /// Pages written to swap.
    swap_writes: u64,
    /// Whether reads from swap fail (a failing disk), or the reads of one
    /// slot (a bad sector).
    failing_swap_in: bool,
    failing_slot: Option<u64>,
    /// Swap reads: one per run of consecutive slots (one device request).
    swap_reads: u64,
    /// The swap cache: whether swap-ins keep their slot as the page's
    /// copy, and the copies kept (frame → slot).
    keep_swap_copies: bool,
    swap_copies: HashMap<Pfn, u64>,
    /// Reverse map as the kernel keeps it: frame → page.
    rmap: HashMap<Pfn, UserAddr>,
    /// Files and their page cache, shared by the spaces of one test.
    files: Rc<RefCell<FakeFiles>>,
    /// Commit accounting: pages charged, and the most that may be (strict
    /// overcommit) when set.
    committed: u64,
    commit_limit: Option<u64>,
    /// Frames zeroed in advance (the kernel's zeroed pool) that
    /// fault-around may take; how many it took.
    prezeroed: u64,
    prezeroed_taken: u64,
    /// Whether `is_zero_page` looks at contents (off: every page is data,
    /// as before reclaim learnt to drop zero pages).
    zero_detection: bool,
    /// The shared zero frame, when the test gives the machine one.
    zero_frame: Option<Pfn>,
}

/// Files of `pages[file]` pages each, whose page p holds the word
/// `file_word(file, p)`, and a page cache of their frames.
#[derive(Default)]
struct FakeFiles {
    pages: HashMap<u16, u64>,
    /// (file, page) → (frame, mappings).
    cache: HashMap<(u16, u64), (Pfn, u32)>,
    by_frame: HashMap<Pfn, (u16, u64)>,
    next_frame: u64,
    disk_reads: u64,
}

fn file_word(file: u16, page: u64) -> u64 {
    0xf11e_0000_0000_0000 | (u64::from(file) << 32) | page
}

impl FakeFiles {
    fn mappings(&self, file: u16, page: u64) -> Option<u32> {
        self.cache.get(&(file, page)).map(|e| e.1)
    }
}

impl FakeMachine {
    fn take_frame(&mut self) -> Option<Pfn> {
        if let Some(left) = &mut self.frames_left {
            *left = left.checked_sub(1)?;
        }
        self.next_frame += 1;
        Some(Pfn::new(0x1000 + self.next_frame))
    }

    fn frames_in_use(&self) -> usize {
        self.tables.len() + self.pages.len()
    }

    /// One read of the consecutive slots `first..` (one request, counted).
    fn read_run(&mut self, first: u64, frames: &[Pfn]) -> Result<(), crate::swap::SwapError> {
        self.swap_reads += 1;
        let failing = (first..first + frames.len() as u64).any(|slot| Some(slot) == self.failing_slot);
        if self.failing_swap_in || failing {
            return Err(crate::swap::SwapError::Device(crate::block::BlockError::Io));
        }
        for (slot, &frame) in (first..).zip(frames) {
            let word = *self.swap.get(&slot).expect("swap-in of a slot in use");
            self.contents.insert(frame, word);
        }
        Ok(())
    }
}

// SAFETY: a model: its tables are map entries, its frames numbers it never
// hands out twice, and its TLB model checks the flush discipline.
#[allow(unsafe_code)]
unsafe impl Platform for FakeMachine {
    fn read_entry(&self, table: Pfn, index: usize) -> u64 {
        self.entries_read.set(self.entries_read.get() + 1);
        self.tables[&table][index]
    }

    fn write_entry(&mut self, table: Pfn, index: usize, value: u64) {
        self.tables.get_mut(&table).expect("write to a live table")[index] = value;
    }

    fn alloc_root(&mut self) -> Option<FrameBlock> {
        let root = self.alloc_table()?;
        self.tables.get_mut(&root.start()).unwrap()[300] = KERNEL_ROOT_ENTRY;
        Some(root)
    }

    fn alloc_table(&mut self) -> Option<FrameBlock> {
        let pfn = self.take_frame()?;
        self.tables.insert(pfn, [0; 512]);
        Some(FrameBlock::from_raw(pfn, 0, Owner::PageTable))
    }

    fn free_table(&mut self, table: FrameBlock) {
        assert_eq!(table.owner(), Owner::PageTable);
        let table = table.start();
        assert!(
            std::thread::panicking() || !self.walk_cache.contains(&table),
            "{table:?} freed while a paging-structure cache may still lead into it (missing full flush)"
        );
        assert!(self.tables.remove(&table).is_some(), "free of unknown table {table:?}");
    }

    fn alloc_page(&mut self, va: UserAddr, zeroed: bool) -> Option<FrameBlock> {
        let pfn = self.take_frame()?;
        self.pages.insert(pfn);
        // Not zeroed: stale contents, which swap-in must overwrite.
        self.contents.insert(pfn, if zeroed { 0 } else { 0xdead_beef });
        self.rmap.insert(pfn, va);
        Some(FrameBlock::from_raw(pfn, 0, Owner::Process))
    }

    fn alloc_prezeroed_page(&mut self, va: UserAddr) -> Option<FrameBlock> {
        if self.prezeroed == 0 {
            return None;
        }
        let block = self.alloc_page(va, true)?;
        self.prezeroed -= 1;
        self.prezeroed_taken += 1;
        Some(block)
    }

    fn is_zero_page(&self, frame: Pfn) -> bool {
        self.zero_detection && self.contents[&frame] == 0
    }

    fn zero_frame(&self) -> Option<Pfn> {
        self.zero_frame
    }

    fn prezeroed_hint(&self) -> u64 {
        self.prezeroed
    }

    fn swap_out(&mut self, frame: Pfn) -> Result<u64, crate::swap::SwapError> {
        if self.swap.len() as u64 >= self.swap_slots {
            return Err(crate::swap::SwapError::Full);
        }
        // Next-fit over 1..=swap_slots, like the real slot map.
        let slot = (0..self.swap_slots)
            .map(|i| (self.next_slot + i) % self.swap_slots + 1)
            .find(|s| !self.swap.contains_key(s))
            .unwrap();
        self.next_slot = slot % self.swap_slots;
        self.swap.insert(slot, self.contents[&frame]);
        self.swap_writes += 1;
        Ok(slot)
    }

    fn swap_in_pages(&mut self, slots: &[u64], frames: &[Pfn]) -> Result<u32, crate::swap::SwapError> {
        let mut read = 0;
        for run in crate::swap::slot_runs(slots) {
            match self.read_run(slots[run.start], &frames[run.clone()]) {
                Ok(()) => read |= super::platform::pages_mask(&run),
                Err(e) if run.start == 0 => return Err(e),
                Err(_) => {}
            }
        }
        Ok(read)
    }

    fn swap_release(&mut self, slot: u64) {
        assert!(self.swap.remove(&slot).is_some(), "release of free swap slot {slot}");
    }

    fn settle_swap_in(&mut self, frame: Pfn, slot: u64) -> bool {
        if !self.keep_swap_copies {
            self.swap_release(slot);
            return false;
        }
        assert!(self.swap_copies.insert(frame, slot).is_none(), "{frame:?} already has a copy");
        true
    }

    fn take_swap_copy(&mut self, frame: Pfn) -> Option<u64> {
        let slot = self.swap_copies.remove(&frame)?;
        assert_eq!(self.swap.get(&slot), self.contents.get(&frame), "a clean page's copy differs from it");
        Some(slot)
    }

    fn free_page(&mut self, frame: FrameBlock) {
        assert_eq!(frame.owner(), Owner::Process);
        let frame = frame.start();
        assert!(
            std::thread::panicking() || !self.tlb.values().any(|&(f, _)| f == frame),
            "{frame:?} freed while a TLB entry still maps it (missing flush)"
        );
        assert!(self.pages.remove(&frame), "double free of {frame:?}");
        self.contents.remove(&frame);
        self.rmap.remove(&frame);
        if let Some(slot) = self.swap_copies.remove(&frame) {
            self.swap_release(slot);
        }
    }

    fn map_file_page(&mut self, file: u16, page: u64) -> Result<Pfn, FileError> {
        let mut files = self.files.borrow_mut();
        let pages = *files.pages.get(&file).ok_or(FileError::NoSuchFile)?;
        if page >= pages {
            return Err(FileError::PastEnd { page, size: pages * PAGE_SIZE });
        }
        if let Some(entry) = files.cache.get_mut(&(file, page)) {
            entry.1 += 1;
            return Ok(entry.0);
        }
        files.next_frame += 1;
        files.disk_reads += 1;
        let frame = Pfn::new(0x100_0000 + files.next_frame);
        files.cache.insert((file, page), (frame, 1));
        files.by_frame.insert(frame, (file, page));
        drop(files);
        self.contents.insert(frame, file_word(file, page));
        Ok(frame)
    }

    fn unmap_file_page(&mut self, frame: Pfn) {
        let mut files = self.files.borrow_mut();
        let key = files.by_frame[&frame];
        let entry = files.cache.get_mut(&key).expect("a cached page");
        entry.1 = entry.1.checked_sub(1).expect("unmap of a page with no mapping");
    }

    fn charge_commit(
        &mut self,
        pages: u64,
        no_reserve: bool,
    ) -> Result<bool, crate::policy::commit::CommitRefused> {
        if no_reserve && self.commit_limit.is_none() {
            return Ok(false);
        }
        if let Some(limit) = self.commit_limit.filter(|&l| self.committed + pages > l) {
            let mode = crate::policy::commit::OvercommitMode::Never;
            return Err(crate::policy::commit::CommitRefused {
                mode,
                requested: pages,
                committed: self.committed,
                limit,
            });
        }
        self.committed += pages;
        Ok(true)
    }

    fn uncharge_commit(&mut self, pages: u64) {
        self.committed = self.committed.checked_sub(pages).expect("uncharged more than was charged");
    }

    fn copy_page(&mut self, from: Pfn, to: Pfn) {
        let word = self.contents[&from];
        self.contents.insert(to, word);
    }

    fn flush(&mut self, va: UserAddr) {
        self.tlb.remove(&va.as_u64());
        self.flushes += 1;
    }

    fn flush_all(&mut self) {
        self.tlb.clear();
        self.walk_cache.clear();
        self.full_flushes += 1;
    }

    fn yield_point(&mut self) {
        self.yield_points += 1;
    }
}

type Space = AddressSpace<FakeMachine>;

/// Switches the space away (its TLB entries go) and destroys it; every frame
/// it held must be back.
fn done(mut s: Space) {
    s.platform_mut().flush_all();
    s.teardown();
    assert_eq!(s.platform().frames_in_use(), 0, "frames left after destroy");
}

fn space() -> Space {
    AddressSpace::new(FakeMachine::default(), Limits::UNLIMITED).unwrap()
}

/// The tables below the root that the MMU walks through for `page` (those
/// that exist): what its paging-structure caches may keep.
fn walked_tables(space: &Space, page: u64) -> Vec<Pfn> {
    let mut tables = Vec::new();
    let mut table = space.root();
    for level in (2..=4).rev() {
        match pte::table::decode(space.platform().read_entry(table, UserAddr::new(page).table_index(level))) {
            Ok(Some(next)) => {
                tables.push(next);
                table = next;
            }
            _ => break,
        }
    }
    tables
}

/// What the MMU does on an access: use the TLB or walk the tables; on a miss
/// ask the VMM (the page-fault handler), then retry once.
fn touch(space: &mut Space, addr: u64, write: bool) -> Result<Pfn, FaultOutcome> {
    let page = addr & !(PAGE_SIZE - 1);
    for _ in 0..2 {
        let walked = walked_tables(space, page);
        space.platform_mut().walk_cache.extend(walked);
        if let Some(&(frame, writable)) = space.platform().tlb.get(&page) {
            if !write || writable {
                if write {
                    set_dirty(space, page);
                }
                return Ok(frame);
            }
        }
        if let Some(m) = walk(space, UserAddr::new(page)) {
            if !write || m.prot.write {
                // A TLB fill sets Accessed (and Dirty on a write) in the entry.
                let slot = space.leaf(UserAddr::new(page)).unwrap().unwrap();
                space
                    .write(slot, PteState::Present(Mapping { accessed: true, dirty: m.dirty || write, ..m }));
                space.platform_mut().tlb.insert(page, (m.frame, m.prot.write));
                return Ok(m.frame);
            }
        }
        match space.resolve_fault(addr, Access { write, exec: false, user: true }).0 {
            outcome if outcome.is_resolved() => continue,
            other => return Err(other),
        }
    }
    panic!("fault at {addr:#x} resolved but the access still fails");
}

/// What the CPU does on a write through a TLB entry whose page-table
/// entry is not yet dirty: sets D in the entry.
fn set_dirty(space: &mut Space, page: u64) {
    if let Some(m) = walk(space, UserAddr::new(page)).filter(|m| !m.dirty) {
        let slot = space.leaf(UserAddr::new(page)).unwrap().unwrap();
        space.write(slot, PteState::Present(Mapping { dirty: true, ..m }));
    }
}

fn walk(space: &Space, va: UserAddr) -> Option<Mapping> {
    let slot = space.leaf(va).ok()??;
    match space.read(slot, va).ok()? {
        PteState::Present(m) => Some(m),
        _ => None,
    }
}

fn write_word(space: &mut Space, addr: u64, value: u64) {
    let frame = touch(space, addr, true).expect("writable");
    space.platform_mut().contents.insert(frame, value);
}

fn read_word(space: &mut Space, addr: u64) -> u64 {
    let frame = touch(space, addr, false).expect("readable");
    space.platform().contents[&frame]
}

/// Gives the space's machine a shared zero frame (it reads zero: its
/// content word is 0, and no test may change it) and returns it.
fn give_zero_frame(s: &mut Space) -> Pfn {
    let zero = Pfn::new(0xdead0);
    s.platform_mut().zero_frame = Some(zero);
    s.platform_mut().contents.insert(zero, 0);
    zero
}

#[test]
fn reads_of_a_read_only_region_share_the_zero_frame_and_a_write_gets_a_frame_of_its_own() {
    let mut s = space();
    let zero = give_zero_frame(&mut s);
    let base = s.reserve(16 * PAGE_SIZE, Prot::USER_READ, RegionKind::Anonymous).unwrap().as_u64();
    for page in 0..8 {
        assert_eq!(read_word(&mut s, base + page * PAGE_SIZE), 0);
        assert_eq!(
            walk(&s, UserAddr::new(base + page * PAGE_SIZE)).map(|m| (m.frame, m.kind)),
            Some((zero, PageKind::Zero))
        );
    }
    assert_eq!((s.stats().resident_pages, s.platform().pages.len()), (0, 0), "no frame taken");
    assert_eq!(s.page_counts(UserAddr::new(base)..UserAddr::new(base + 16 * PAGE_SIZE)).zero_frame, 8);
    assert_eq!(s.platform().committed, 0, "and no promise");
    // Writable: the zero mappings become demand-zero (and leave the TLB);
    // a write takes a frame of its own, the other pages still read zero.
    s.protect(base, 16 * PAGE_SIZE, Prot::USER_RW).unwrap();
    assert!(walk(&s, UserAddr::new(base)).is_none());
    write_word(&mut s, base + 2 * PAGE_SIZE, 0x22);
    assert_eq!(read_word(&mut s, base + 2 * PAGE_SIZE), 0x22);
    assert_eq!(read_word(&mut s, base + 3 * PAGE_SIZE), 0);
    assert_eq!(s.platform().contents[&zero], 0, "the zero frame was never written");
    // Read-only again: a written page keeps its frame; a read maps the zero frame again.
    s.protect(base, 16 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(read_word(&mut s, base + 2 * PAGE_SIZE), 0x22);
    assert_eq!(read_word(&mut s, base + 9 * PAGE_SIZE), 0);
    assert_eq!(walk(&s, UserAddr::new(base + 9 * PAGE_SIZE)).unwrap().kind, PageKind::Zero);
    assert_eq!(
        touch(&mut s, base + 9 * PAGE_SIZE, true),
        Err(FaultOutcome::Violation(Violation::WriteToReadOnly))
    );
    assert!(
        !s.user_may_write(base + 9 * PAGE_SIZE, 8),
        "the kernel may not write there for the process either"
    );
    // Committed (populated) read-only pages are the zero frame too.
    let committed = s.reserve(8 * PAGE_SIZE, Prot::USER_READ, RegionKind::Anonymous).unwrap().as_u64();
    s.commit(committed, 8 * PAGE_SIZE).unwrap();
    assert_eq!(walk(&s, UserAddr::new(committed + 7 * PAGE_SIZE)).map(|m| m.frame), Some(zero));
    assert_eq!(s.stats().resident_pages, 2, "only the two pages touched while writable");
    // Writable regions take frames on a read as before (their pages are promised).
    let rw = s.reserve(4 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    assert_ne!(touch(&mut s, rw, false).unwrap(), zero);
    // Decommit, release and teardown never free the zero frame (done checks every frame).
    s.decommit(base, 4 * PAGE_SIZE).unwrap();
    s.release(base + 8 * PAGE_SIZE, 4 * PAGE_SIZE).unwrap();
    done(s);
}

#[test]
fn reserving_a_gib_allocates_nothing_and_touching_allocates_exactly() {
    let mut s = space();
    let before = s.platform().frames_in_use();
    let base = s.reserve(GIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    assert_eq!(s.platform().frames_in_use(), before, "reserve allocated frames");
    let touched = (GIB / PAGE_SIZE / 16) as usize;
    for i in 0..touched as u64 {
        assert_eq!(read_word(&mut s, base + i * 16 * PAGE_SIZE), 0, "reads zero");
    }
    assert_eq!(s.platform().pages.len(), touched);
    assert_eq!(s.stats().resident_pages, touched as u64);
    // 1 GiB = 512 page tables + 1 page directory + 1 PDPT (+ the root).
    assert_eq!(s.stats().table_frames, 1 + 1 + 1 + 512);
    assert_eq!(s.platform().tables.len() as u64, s.stats().table_frames);
    assert_eq!(s.stats().faults.demand_zero, touched as u64);
    done(s);
}

#[test]
fn decommit_returns_exactly_the_frames_and_pages_read_zero_again() {
    let mut s = space();
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..64 {
        write_word(&mut s, base + i * PAGE_SIZE, 0xabc0 + i);
    }
    let pages_before = s.platform().pages.len();
    let freed = s.decommit(base + 8 * PAGE_SIZE, 16 * PAGE_SIZE).unwrap();
    assert_eq!(freed, 16);
    assert_eq!(s.platform().pages.len(), pages_before - 16);
    for i in 8..24 {
        assert_eq!(
            s.effective_state(UserAddr::new(base + i * PAGE_SIZE)),
            Ok(PteState::DemandZero { prot: Prot::USER_RW })
        );
        assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), 0);
    }
    assert_eq!(read_word(&mut s, base + 7 * PAGE_SIZE), 0xabc7, "neighbours untouched");
    assert_eq!(read_word(&mut s, base + 24 * PAGE_SIZE), 0xabc0 + 24);
    done(s);
}

#[test]
fn violations_are_classified() {
    let mut s = space();
    let ro = s.reserve(4 * PAGE_SIZE, Prot::USER_READ, RegionKind::Anonymous).unwrap().as_u64();
    let stack =
        s.reserve(8 * PAGE_SIZE, Prot::USER_RW, RegionKind::Stack { guard_pages: 1 }).unwrap().as_u64();
    assert_eq!(touch(&mut s, ro, true), Err(FaultOutcome::Violation(Violation::WriteToReadOnly)));
    assert_eq!(read_word(&mut s, ro), 0, "reading read-only memory is fine");
    assert_eq!(
        touch(&mut s, ro, true),
        Err(FaultOutcome::Violation(Violation::WriteToReadOnly)),
        "also when present"
    );
    assert_eq!(touch(&mut s, stack, false), Err(FaultOutcome::Violation(Violation::GuardPage)));
    write_word(&mut s, stack + PAGE_SIZE, 1);
    assert_eq!(touch(&mut s, 0x7000_0000_0000, false), Err(FaultOutcome::Violation(Violation::Unreserved)));
    let (outcome, region) = s.resolve_fault(stack, Access::default());
    assert_eq!(outcome, FaultOutcome::Violation(Violation::GuardPage));
    assert_eq!(region.map(|r| r.start.as_u64()), Some(stack));
    let exec = s.resolve_fault(ro, Access { exec: true, ..Access::default() }).0;
    assert_eq!(exec, FaultOutcome::Violation(Violation::ExecuteNotAllowed));
    let kernel_only =
        s.reserve(PAGE_SIZE, Prot { write: true, exec: false, user: false }, RegionKind::Anonymous).unwrap();
    let user = s.resolve_fault(kernel_only.as_u64(), Access { user: true, ..Access::default() }).0;
    assert_eq!(user, FaultOutcome::Violation(Violation::KernelOnly));
    assert_eq!(s.stats().faults.violations, 7);
    done(s);
}

#[test]
fn released_ranges_fault_as_unreserved_and_free_their_tables() {
    let mut s = space();
    let tables_before = s.platform().tables.len();
    let base = s.reserve(4 * 1024 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in (0..4096).step_by(100) {
        write_word(&mut s, base + i * PAGE_SIZE, i);
    }
    let freed = s.release(base, 4 * 1024 * PAGE_SIZE).unwrap();
    assert_eq!(freed, 41);
    assert!(s.platform().pages.is_empty());
    assert_eq!(s.platform().tables.len(), tables_before, "empty tables freed");
    assert_eq!(s.stats().table_frames, 1);
    assert_eq!(touch(&mut s, base, false), Err(FaultOutcome::Violation(Violation::Unreserved)));
    assert_eq!(s.stats().reserved_bytes, 0);
    done(s);
}

#[test]
fn partial_release_and_protect_split_regions() {
    let mut s = space();
    let base = s.reserve(10 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    write_word(&mut s, base + 5 * PAGE_SIZE, 55);
    s.protect(base + 4 * PAGE_SIZE, 2 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(s.regions().count(), 3);
    assert_eq!(
        touch(&mut s, base + 5 * PAGE_SIZE, true),
        Err(FaultOutcome::Violation(Violation::WriteToReadOnly))
    );
    assert_eq!(read_word(&mut s, base + 5 * PAGE_SIZE), 55);
    assert_eq!(
        touch(&mut s, base + 4 * PAGE_SIZE, true),
        Err(FaultOutcome::Violation(Violation::WriteToReadOnly))
    );
    write_word(&mut s, base + 6 * PAGE_SIZE, 1);
    s.release(base + 2 * PAGE_SIZE, 3 * PAGE_SIZE).unwrap();
    assert_eq!(s.regions().count(), 3, "split into [0,2) [5,6) [6,10)");
    assert_eq!(
        touch(&mut s, base + 3 * PAGE_SIZE, false),
        Err(FaultOutcome::Violation(Violation::Unreserved))
    );
    assert_eq!(read_word(&mut s, base + 5 * PAGE_SIZE), 55);
    assert_eq!(s.stats().reserved_bytes, 7 * PAGE_SIZE);
    done(s);
}

#[test]
fn protect_joins_the_regions_its_splits_made_when_they_agree_again() {
    let mut s = space();
    // A heap's arena: reserved read-only, made writable a chunk at a time.
    let arena = s.reserve(64 * PAGE_SIZE, Prot::USER_READ, RegionKind::Anonymous).unwrap().as_u64();
    for chunk in 0..4 {
        s.protect(arena + chunk * 8 * PAGE_SIZE, 8 * PAGE_SIZE, Prot::USER_RW).unwrap();
        assert_eq!(s.regions().count(), 2, "writable front and read-only rest, after chunk {chunk}");
    }
    s.protect(arena + 40 * PAGE_SIZE, 4 * PAGE_SIZE, Prot::USER_RW).unwrap();
    assert_eq!(s.regions().count(), 4, "a writable island in the read-only rest");
    s.protect(arena + 32 * PAGE_SIZE, 8 * PAGE_SIZE, Prot::USER_RW).unwrap();
    assert_eq!(s.regions().count(), 2, "the gap filled: one writable run again");
    // Stacks join only with their guard pages kept lowest; neighbours of
    // another kind never join.
    let stack =
        s.reserve(8 * PAGE_SIZE, Prot::USER_RW, RegionKind::Stack { guard_pages: 2 }).unwrap().as_u64();
    s.protect(stack + 4 * PAGE_SIZE, 2 * PAGE_SIZE, Prot::USER_READ).unwrap();
    s.protect(stack + 4 * PAGE_SIZE, 2 * PAGE_SIZE, Prot::USER_RW).unwrap();
    let stacks: Vec<Region> =
        s.regions().copied().filter(|r| matches!(r.kind, RegionKind::Stack { .. })).collect();
    assert_eq!(stacks.len(), 1);
    assert_eq!(stacks[0].kind, RegionKind::Stack { guard_pages: 2 });
    assert_eq!(touch(&mut s, stack + PAGE_SIZE, false), Err(FaultOutcome::Violation(Violation::GuardPage)));
    done(s);
}

#[test]
fn file_regions_join_only_where_the_file_pages_follow_on() {
    let files = files(&[(1, 64), (2, 64)]);
    let mut s = space_with_files(&files);
    let base = s.reserve(16 * PAGE_SIZE, Prot::USER_READ, file_region(1, 4, true)).unwrap().as_u64();
    s.protect(base + 4 * PAGE_SIZE, 4 * PAGE_SIZE, Prot::USER_RW).unwrap();
    s.protect(base + 4 * PAGE_SIZE, 4 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(s.regions().count(), 1);
    assert_eq!(s.regions().next().unwrap().kind, file_region(1, 4, true));
    let a = Region {
        start: UserAddr::new(0x1000_0000),
        end: UserAddr::new(0x1000_4000),
        prot: Prot::USER_READ,
        kind: file_region(1, 0, true),
        accounted: false,
        no_reserve: false,
    };
    let follows =
        Region { start: a.end, end: UserAddr::new(0x1000_8000), kind: file_region(1, 4, true), ..a };
    assert_eq!(a.joined(&follows).map(|r| (r.end, r.kind)), Some((follows.end, a.kind)));
    for other in
        [file_region(1, 5, true), file_region(2, 4, true), file_region(1, 4, false), RegionKind::Anonymous]
    {
        assert_eq!(a.joined(&Region { kind: other, ..follows }), None, "{other:?}");
    }
    assert_eq!(a.joined(&Region { accounted: true, ..follows }), None, "charges differ");
    done(s);
}

#[test]
fn protect_flushes_present_pages() {
    let mut s = space();
    let base = s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    write_word(&mut s, base, 1);
    assert!(s.platform().tlb.contains_key(&base));
    s.protect(base, PAGE_SIZE, Prot::USER_READ).unwrap();
    assert!(!s.platform().tlb.contains_key(&base), "a changed present entry must be flushed");
    done(s);
}

#[test]
fn commit_populates_and_skips_guard_pages() {
    let mut s = space();
    let stack =
        s.reserve(8 * PAGE_SIZE, Prot::USER_RW, RegionKind::Stack { guard_pages: 2 }).unwrap().as_u64();
    assert_eq!(s.commit(stack, 8 * PAGE_SIZE), Ok(6));
    assert_eq!(s.stats().resident_pages, 6);
    assert_eq!(s.commit(stack, 8 * PAGE_SIZE), Ok(0), "idempotent");
    done(s);
}

/// A space whose machine has files of the given pages, sharing `files`.
fn space_with_files(files: &Rc<RefCell<FakeFiles>>) -> Space {
    let machine = FakeMachine { files: files.clone(), ..FakeMachine::default() };
    AddressSpace::new(machine, Limits::UNLIMITED).unwrap()
}

fn files(list: &[(u16, u64)]) -> Rc<RefCell<FakeFiles>> {
    let files = Rc::new(RefCell::new(FakeFiles::default()));
    files.borrow_mut().pages.extend(list.iter().copied());
    files
}

fn file_region(file: u16, first_page: u64, private: bool) -> RegionKind {
    RegionKind::File { file, first_page, private }
}

/// The content word a space sees at `addr` (through the page cache's frame
/// for a file page; the cache's contents live in the machine that read it).
fn read_file_word(space: &mut Space, addr: u64, files_of: &Space) -> u64 {
    let frame = touch(space, addr, false).expect("readable");
    space
        .platform()
        .contents
        .get(&frame)
        .or_else(|| files_of.platform().contents.get(&frame))
        .copied()
        .unwrap()
}

#[test]
fn a_file_page_is_mapped_read_only_from_the_cache_and_shared_by_spaces() {
    let f = files(&[(7, 16)]);
    let (mut a, mut b) = (space_with_files(&f), space_with_files(&f));
    let at_a = a.reserve(4 * PAGE_SIZE, Prot::USER_READ, file_region(7, 10, false)).unwrap().as_u64();
    let at_b = b.reserve(8 * PAGE_SIZE, Prot::USER_READ, file_region(7, 8, false)).unwrap().as_u64();
    assert_eq!(read_word(&mut a, at_a + PAGE_SIZE), file_word(7, 11));
    let frame = walk(&a, UserAddr::new(at_a + PAGE_SIZE)).unwrap();
    assert_eq!((frame.kind, frame.prot.write), (PageKind::File, false));
    // Page 11 of the file, at index 3 of b's region: the same frame.
    let in_b = touch(&mut b, at_b + 3 * PAGE_SIZE, false).unwrap();
    assert_eq!(in_b, frame.frame, "one frame per cached page");
    assert_eq!(f.borrow().mappings(7, 11), Some(2));
    assert_eq!(f.borrow().disk_reads, 1, "the second mapping found it cached");
    assert_eq!((a.stats().resident_pages, a.stats().file_pages), (1, 1));
    assert_eq!(a.stats().faults.file_mapped, 1);
    assert_eq!(
        touch(&mut a, at_a + PAGE_SIZE, true),
        Err(FaultOutcome::Violation(Violation::WriteToReadOnly)),
        "a shared mapping is never written"
    );
    assert_eq!(a.release(at_a, 4 * PAGE_SIZE), Ok(1));
    assert_eq!(f.borrow().mappings(7, 11), Some(1), "release let go of a's mapping only");
    done(b);
    assert_eq!(f.borrow().mappings(7, 11), Some(0), "and destroy of b's");
    assert_eq!(a.stats().file_pages, 0);
    done(a);
}

#[test]
fn a_private_write_is_seen_by_the_writer_only() {
    let f = files(&[(3, 4)]);
    let (mut writer, mut reader) = (space_with_files(&f), space_with_files(&f));
    let w = writer.reserve(4 * PAGE_SIZE, Prot::USER_RW, file_region(3, 0, true)).unwrap().as_u64();
    let r = reader.reserve(4 * PAGE_SIZE, Prot::USER_READ, file_region(3, 0, false)).unwrap().as_u64();
    // Page 0: read first (mapped from the cache), then written (copied).
    assert_eq!(read_word(&mut writer, w), file_word(3, 0));
    let cached = walk(&writer, UserAddr::new(w)).unwrap().frame;
    write_word(&mut writer, w, 0x5ec2e7);
    let own = walk(&writer, UserAddr::new(w)).unwrap();
    assert_ne!(own.frame, cached);
    assert_eq!((own.kind, own.prot.write), (PageKind::Anonymous, true));
    // Page 1: written without a read first: copied straight from the cache.
    write_word(&mut writer, w + PAGE_SIZE, 0xabc);
    assert_eq!(writer.stats().faults.copied_on_write, 2);
    assert_eq!(read_word(&mut writer, w), 0x5ec2e7);
    assert_eq!(read_file_word(&mut reader, r, &writer), file_word(3, 0), "the file is unchanged");
    assert_eq!(read_file_word(&mut reader, r + PAGE_SIZE, &writer), file_word(3, 1));
    assert_eq!(f.borrow().mappings(3, 0), Some(1), "only the reader maps the cached page now");
    assert_eq!(f.borrow().mappings(3, 1), Some(1));
    assert_eq!((writer.stats().resident_pages, writer.stats().file_pages), (2, 0));
    // Decommit drops the private copies: the pages read as the file again.
    assert_eq!(writer.decommit(w, 4 * PAGE_SIZE), Ok(2));
    assert_eq!(read_file_word(&mut writer, w, &reader), file_word(3, 0));
    done(reader);
    done(writer);
}

#[test]
fn shared_file_mappings_cannot_be_made_writable() {
    let f = files(&[(1, 4)]);
    let mut s = space_with_files(&f);
    let at = s.reserve(4 * PAGE_SIZE, Prot::USER_READ, file_region(1, 0, false)).unwrap().as_u64();
    assert!(matches!(
        s.reserve(PAGE_SIZE, Prot::USER_RW, file_region(1, 0, false)),
        Err(VmError::SharedFileWritable { .. })
    ));
    assert_eq!(s.protect(at, 4 * PAGE_SIZE, Prot::USER_RW), Err(VmError::SharedFileWritable { addr: at }));
    // A private one can; its cached pages stay read-only in the entry.
    let private = s.reserve(2 * PAGE_SIZE, Prot::USER_READ, file_region(1, 0, true)).unwrap().as_u64();
    assert_eq!(read_word(&mut s, private), file_word(1, 0));
    s.protect(private, 2 * PAGE_SIZE, Prot::USER_RW).unwrap();
    assert!(!walk(&s, UserAddr::new(private)).unwrap().prot.write);
    write_word(&mut s, private, 9);
    assert_eq!(f.borrow().mappings(1, 0), Some(0));
    done(s);
}

#[test]
fn a_page_past_the_end_of_its_file_is_a_file_error() {
    let f = files(&[(2, 3)]);
    let mut s = space_with_files(&f);
    let at = s.reserve(8 * PAGE_SIZE, Prot::USER_READ, file_region(2, 0, true)).unwrap().as_u64();
    assert_eq!(read_word(&mut s, at + 2 * PAGE_SIZE), file_word(2, 2));
    let past = FileError::PastEnd { page: 3, size: 3 * PAGE_SIZE };
    assert_eq!(touch(&mut s, at + 3 * PAGE_SIZE, false), Err(FaultOutcome::File(past)));
    assert_eq!(s.commit(at, 8 * PAGE_SIZE), Err(VmError::File { addr: at + 3 * PAGE_SIZE, error: past }));
    assert_eq!(s.stats().faults.file_errors, 1);
    assert_eq!(s.stats().file_pages, 3, "commit brought in the pages before the end");
    done(s);
}

#[test]
fn reclaim_ages_a_shared_page_in_every_space_and_drops_it_from_all() {
    let f = files(&[(5, 2)]);
    let (mut a, mut b) = (space_with_files(&f), space_with_files(&f));
    let at_a = a.reserve(2 * PAGE_SIZE, Prot::USER_READ, file_region(5, 0, false)).unwrap().as_u64();
    let at_b = b.reserve(2 * PAGE_SIZE, Prot::USER_RX, file_region(5, 0, true)).unwrap().as_u64();
    let frame = touch(&mut a, at_a, false).unwrap();
    touch(&mut b, at_b, false).unwrap();
    assert!(a.age_file_page(5, 0, frame) && b.age_file_page(5, 0, frame), "both were accessed");
    assert!(!a.age_file_page(5, 0, frame) && !b.age_file_page(5, 0, frame), "bits cleared");
    assert_eq!(a.drop_file_page(5, 0, frame) + b.drop_file_page(5, 0, frame), 2);
    assert_eq!(f.borrow().mappings(5, 0), Some(0), "no entry maps the frame: it may be freed");
    assert!(!a.platform().tlb.values().any(|&(fr, _)| fr == frame), "flushed");
    assert_eq!(a.stats().file_pages, 0);
    let entry = a.leaf(UserAddr::new(at_a)).unwrap().unwrap();
    assert!(matches!(a.read(entry, UserAddr::new(at_a)), Ok(PteState::File { file: 5, page: 0, .. })));
    // The cache drops the page; the next touch reads it again.
    f.borrow_mut().cache.clear();
    assert_eq!(read_word(&mut a, at_a), file_word(5, 0));
    assert_eq!(f.borrow().disk_reads, 2);
    assert_eq!(b.commit(at_b, 2 * PAGE_SIZE), Ok(2), "commit maps file pages too");
    done(a);
    done(b);
}
#[test]
fn bad_arguments_get_their_errors() {
    let mut s = AddressSpace::new(
        FakeMachine::default(),
        Limits { address_space: 64 * PAGE_SIZE, ..Limits::UNLIMITED },
    )
    .unwrap();
    let rw = Prot::USER_RW;
    let anon = RegionKind::Anonymous;
    let base = s.reserve_at(0x40_0000, 16 * PAGE_SIZE, rw, anon).unwrap().as_u64();
    let cases: Vec<(Result<UserAddr, VmError>, VmError)> = std::vec![
        (s.reserve_at(0x50_0000, 0, rw, anon), VmError::ZeroLength),
        (
            s.reserve_at(0x50_0001, PAGE_SIZE, rw, anon),
            VmError::Unaligned { addr: 0x50_0001, len: PAGE_SIZE }
        ),
        (s.reserve_at(0x50_0000, 100, rw, anon), VmError::Unaligned { addr: 0x50_0000, len: 100 }),
        (s.reserve_at(0, PAGE_SIZE, rw, anon), VmError::NullPage),
        (
            s.reserve_at(USER_END - PAGE_SIZE, 2 * PAGE_SIZE, rw, anon),
            VmError::NonCanonical { addr: USER_END - PAGE_SIZE, len: 2 * PAGE_SIZE }
        ),
        (
            s.reserve_at(0x0000_9000_0000_0000, PAGE_SIZE, rw, anon),
            VmError::NonCanonical { addr: 0x0000_9000_0000_0000, len: PAGE_SIZE }
        ),
        (s.reserve_at(KERNEL_START, PAGE_SIZE, rw, anon), VmError::KernelHalf { addr: KERNEL_START }),
        (
            s.reserve_at(u64::MAX - PAGE_SIZE + 1, PAGE_SIZE, rw, anon),
            VmError::KernelHalf { addr: u64::MAX - PAGE_SIZE + 1 }
        ),
        (
            s.reserve_at(base + PAGE_SIZE, PAGE_SIZE, rw, anon),
            VmError::Overlap { region_start: base, region_end: base + 16 * PAGE_SIZE }
        ),
        (
            s.reserve_at(base - PAGE_SIZE, 2 * PAGE_SIZE, rw, anon),
            VmError::Overlap { region_start: base, region_end: base + 16 * PAGE_SIZE }
        ),
        (
            s.reserve(49 * PAGE_SIZE, rw, anon),
            VmError::LimitExceeded {
                limit: 64 * PAGE_SIZE,
                reserved: 16 * PAGE_SIZE,
                requested: 49 * PAGE_SIZE
            }
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, Err(want));
    }
    let gap = base + 16 * PAGE_SIZE;
    assert_eq!(s.commit(base, 17 * PAGE_SIZE), Err(VmError::NotReserved { addr: gap }));
    assert_eq!(s.decommit(gap, PAGE_SIZE), Err(VmError::NotReserved { addr: gap }));
    assert_eq!(s.protect(base, 0, rw), Err(VmError::ZeroLength));
    assert_eq!(s.protect(KERNEL_START, PAGE_SIZE, rw), Err(VmError::KernelHalf { addr: KERNEL_START }));
    assert_eq!(s.release(base + 1, PAGE_SIZE), Err(VmError::Unaligned { addr: base + 1, len: PAGE_SIZE }));
    assert_eq!(s.release(base, 17 * PAGE_SIZE), Err(VmError::NotReserved { addr: gap }));
    assert_eq!(s.regions().count(), 1, "refused operations changed nothing");
    assert_eq!(s.stats().reserved_bytes, 16 * PAGE_SIZE);
    let mut full = AddressSpace::new(FakeMachine::default(), Limits::UNLIMITED).unwrap();
    full.reserve_at(USER_START, USER_END - USER_START, rw, anon).unwrap();
    assert_eq!(full.reserve(PAGE_SIZE, rw, anon), Err(VmError::NoSpace { len: PAGE_SIZE }));
    done(full);
    done(s);
}

#[test]
fn out_of_memory_is_an_outcome_not_a_crash() {
    // Frames for the root, PDPT and PD only: no page table, no page.
    let machine = FakeMachine { frames_left: Some(3), ..FakeMachine::default() };
    let mut s = AddressSpace::new(machine, Limits::UNLIMITED).unwrap();
    let base = s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    assert_eq!(touch(&mut s, base, true), Err(FaultOutcome::OutOfMemory));
    assert_eq!(s.commit(base, PAGE_SIZE), Err(VmError::OutOfMemory));
    s.platform_mut().frames_left = Some(2);
    assert_eq!(read_word(&mut s, base), 0);
    done(s);
}

#[test]
fn destroy_frees_every_frame_and_leaves_the_kernel_half_alone() {
    let mut s = space();
    let a = s.reserve(3 * GIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..300 {
        write_word(&mut s, a + i * 10 * 1024 * 1024, i);
    }
    let root = s.root();
    assert_eq!(s.platform().tables[&root][300], KERNEL_ROOT_ENTRY);
    let mut machine = FakeMachine::default();
    std::mem::swap(&mut machine, s.platform_mut());
    machine.flush_all(); // the space is switched away before it is destroyed
    std::mem::swap(&mut machine, s.platform_mut());
    let stats = s.stats();
    assert!(stats.table_frames > 300);
    let final_stats = {
        let mut s = s;
        s.teardown();
        assert!(s.platform().tables.is_empty(), "tables left: {}", s.platform().tables.len());
        assert!(s.platform().pages.is_empty());
        s.stats()
    };
    assert_eq!((final_stats.resident_pages, final_stats.table_frames), (0, 0));
}

#[test]
fn a_region_flood_stops_at_the_region_limit_with_an_error() {
    let limits = Limits { regions: 100, ..Limits::UNLIMITED };
    let mut s = AddressSpace::new(FakeMachine::default(), limits).unwrap();
    let first = s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for _ in 1..100 {
        s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap();
    }
    assert_eq!(s.regions().count(), 100);
    assert_eq!(
        s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous),
        Err(VmError::RegionLimit { limit: 100 })
    );
    // A split that would pass the limit is refused and changes nothing.
    let big = s.regions().last().unwrap().start.as_u64();
    s.release(big, PAGE_SIZE).unwrap();
    let big = s.reserve(4 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    assert_eq!(
        s.protect(big + PAGE_SIZE, PAGE_SIZE, Prot::USER_READ),
        Err(VmError::RegionLimit { limit: 100 })
    );
    assert_eq!(s.release(big + PAGE_SIZE, PAGE_SIZE), Err(VmError::RegionLimit { limit: 100 }));
    assert_eq!(s.regions().count(), 100, "refused splits changed nothing");
    // Whole regions can always be given back, and then reserved again.
    s.release(first, PAGE_SIZE).unwrap();
    s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap();
    done(s);
}

#[test]
fn kernel_memory_limit_bounds_region_records_and_page_tables() {
    // Room for the root, a PDPT, a PD and one page table, and a few records.
    let record = std::mem::size_of::<Region>() as u64;
    let limit = 4 * PAGE_SIZE + 8 * record;
    let limits = Limits { kernel_memory: limit, ..Limits::UNLIMITED };
    let mut s = AddressSpace::new(FakeMachine::default(), limits).unwrap();
    let base = s.reserve(4 * GIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    write_word(&mut s, base, 1);
    assert_eq!(s.stats().table_frames, 4);
    // The next 2 MiB needs a fifth table: past the limit, an outcome.
    assert_eq!(touch(&mut s, base + 2 * 1024 * 1024, true), Err(FaultOutcome::KernelMemoryLimit));
    assert!(matches!(s.commit(base + GIB, PAGE_SIZE), Err(VmError::KernelMemoryLimit { .. })));
    assert!(s.stats().kernel_bytes() <= limit, "{:?}", s.stats());
    // Records: the map grows 4 → 8 records, then a ninth would pass the limit.
    let mut reserved = 1;
    let error = loop {
        match s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous) {
            Ok(_) => reserved += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(reserved, 8);
    assert!(matches!(error, VmError::KernelMemoryLimit { .. }), "{error:?}");
    assert_eq!(s.stats().region_bytes, 8 * record);
    assert_eq!(s.stats().kernel_bytes(), limit);
    // Memory still in the space is fine to use.
    assert_eq!(read_word(&mut s, base), 1);
    done(s);
}

#[test]
fn walks_follow_what_is_populated_not_the_range_length() {
    let mut s = space();
    let len = 63 * GIB;
    let base = s.reserve(len, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..3 {
        write_word(&mut s, base + i * 20 * GIB, i + 1);
    }
    let read_before = s.platform().entries_read.get();
    s.protect(base, len, Prot::USER_READ).unwrap();
    s.decommit(base, len).unwrap();
    s.protect(base, len, Prot::USER_RW).unwrap();
    assert_eq!(s.release(base, len), Ok(0));
    let reads = s.platform().entries_read.get() - read_before;
    // Per call: 1 root entry, 63 PDPT entries, and the 512 entries of each
    // of the 3 page tables that exist, a few times over (check, change,
    // prune): ~8,000. A page-by-page walk would read 4 x 16.5 million.
    assert!(reads < 40_000, "{reads} entries read");
    assert!(s.platform().yield_points >= 3, "long walks let interrupts in");
    assert_eq!(s.stats().table_frames, 1);
    done(s);
}

#[test]
fn page_tables_are_freed_only_after_a_full_flush() {
    let mut s = space();
    let base = s.reserve(8 * GIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..8 {
        write_word(&mut s, base + i * GIB, i);
    }
    // Touch unbacked pages of other tables too: the walk is cached although
    // no translation is.
    s.decommit(base, PAGE_SIZE).unwrap();
    let _ = touch(&mut s, base + 3 * GIB + PAGE_SIZE, false);
    let flushes = s.platform().full_flushes;
    s.release(base, 8 * GIB).unwrap(); // the fake panics on an early free
    assert_eq!(s.platform().full_flushes, flushes + 1, "one full flush for the whole release");
    assert!(s.platform().walk_cache.is_empty());
    done(s);
}

#[test]
fn destroy_reports_what_was_resident_at_the_end() {
    let mut s = space();
    let base = s.reserve(16 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    s.commit(base, 16 * PAGE_SIZE).unwrap();
    s.platform_mut().flush_all();
    let at_end = s.destroy();
    assert_eq!(at_end.resident_pages, 16);
    assert_eq!(at_end.regions, 1);
}

#[test]
fn region_records_shrink_when_most_are_released() {
    let mut s = space();
    let starts: Vec<u64> = (0..64)
        .map(|_| s.reserve(PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64())
        .collect();
    let grown = s.stats().region_bytes;
    for &start in &starts[..60] {
        s.release(start, PAGE_SIZE).unwrap();
    }
    assert!(s.stats().region_bytes * 4 <= grown, "{} of {grown}", s.stats().region_bytes);
    assert_eq!(s.regions().count(), 4);
    done(s);
}

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        pages: u64,
    },
    Touch {
        region: usize,
        page: u64,
        write: bool,
    },
    Decommit {
        region: usize,
        first: u64,
        pages: u64,
    },
    Release {
        region: usize,
    },
    Protect {
        region: usize,
        write: bool,
    },
    /// Runs the clock for this many evictions (to swap, with the swap
    /// cache keeping copies).
    Reclaim {
        pages: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1u64..40).prop_map(|pages| Op::Reserve { pages }),
        6 => (any::<usize>(), 0u64..40, any::<bool>()).prop_map(|(region, page, write)| Op::Touch { region, page, write }),
        2 => (any::<usize>(), 0u64..40, 1u64..10).prop_map(|(region, first, pages)| Op::Decommit { region, first, pages }),
        1 => any::<usize>().prop_map(|region| Op::Release { region }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(region, write)| Op::Protect { region, write }),
        1 => (1u64..30).prop_map(|pages| Op::Reclaim { pages }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random operations against a model of memory contents: data survives
    /// until decommit/release (through swap and back, clean pages leaving
    /// again to the copy the swap cache kept), reappears as zero
    /// afterwards (read-only pages through the shared zero frame, never
    /// written), every frame freed was flushed first (the fake TLB panics
    /// otherwise), and destroying the space frees every frame and slot.
    #[test]
    fn contents_and_frames_follow_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut s = space_with_swap(4096);
        s.platform_mut().keep_swap_copies = true;
        // Reads of read-only pages map the shared zero frame.
        let zero = give_zero_frame(&mut s);
        let mut regions: Vec<(u64, u64, bool)> = Vec::new(); // start, pages, writable
        let mut model: BTreeMap<u64, u64> = BTreeMap::new(); // page address → value written
        let mut counter = 1;
        for op in ops {
            match op {
                Op::Reserve { pages } => {
                    let start = s.reserve(pages * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
                    regions.push((start, pages, true));
                }
                _ if regions.is_empty() => {}
                Op::Touch { region, page, write } => {
                    let (start, pages, writable) = regions[region % regions.len()];
                    let addr = start + (page % pages) * PAGE_SIZE;
                    if write && writable {
                        counter += 1;
                        write_word(&mut s, addr, counter);
                        model.insert(addr, counter);
                    } else if write {
                        prop_assert_eq!(touch(&mut s, addr, true), Err(FaultOutcome::Violation(Violation::WriteToReadOnly)));
                    } else {
                        prop_assert_eq!(read_word(&mut s, addr), model.get(&addr).copied().unwrap_or(0));
                    }
                }
                Op::Decommit { region, first, pages: n } => {
                    let (start, pages, _) = regions[region % regions.len()];
                    let first = first % pages;
                    let n = n.min(pages - first);
                    s.decommit(start + first * PAGE_SIZE, n * PAGE_SIZE).unwrap();
                    for i in first..first + n {
                        model.remove(&(start + i * PAGE_SIZE));
                    }
                }
                Op::Release { region } => {
                    let (start, pages, _) = regions.swap_remove(region % regions.len());
                    s.release(start, pages * PAGE_SIZE).unwrap();
                    model.retain(|&a, _| !(start..start + pages * PAGE_SIZE).contains(&a));
                }
                Op::Protect { region, write } => {
                    let i = region % regions.len();
                    let (start, pages, _) = regions[i];
                    let prot = if write { Prot::USER_RW } else { Prot::USER_READ };
                    s.protect(start, pages * PAGE_SIZE, prot).unwrap();
                    regions[i].2 = write;
                }
                Op::Reclaim { pages } => {
                    reclaim(&mut s, pages);
                }
            }
            prop_assert_eq!(s.stats().resident_pages as usize, s.platform().pages.len());
            prop_assert_eq!(s.stats().table_frames as usize, s.platform().tables.len());
        }
        for (&addr, &value) in &model {
            prop_assert_eq!(read_word(&mut s, addr), value);
        }
        prop_assert_eq!(s.platform().contents[&zero], 0, "the zero frame was written");
        s.platform_mut().flush_all();
        s.teardown();
        prop_assert_eq!(s.platform().frames_in_use(), 0);
        prop_assert!(s.platform().swap.is_empty() && s.platform().swap_copies.is_empty());
    }
}

/// A space whose machine has `slots` swap slots.
fn space_with_swap(slots: u64) -> Space {
    AddressSpace::new(FakeMachine { swap_slots: slots, ..FakeMachine::default() }, Limits::UNLIMITED).unwrap()
}

/// Runs the clock over the space's frames (in frame order, through the
/// fake's reverse map) until `want` pages are evicted or two turns are done.
fn reclaim(s: &mut Space, want: u64) -> crate::reclaim::Sweep {
    sweep(s, want, 2)
}

fn sweep(s: &mut Space, want: u64, turns: u64) -> crate::reclaim::Sweep {
    let mut frames: Vec<(Pfn, UserAddr)> = s.platform().rmap.iter().map(|(&f, &va)| (f, va)).collect();
    frames.sort();
    let n = frames.len() as u64;
    crate::reclaim::Clock::default().sweep(n, want, turns * n, |i| {
        let (frame, va) = frames[i as usize];
        s.age_or_evict(va, frame)
    })
}

#[test]
fn pages_go_to_swap_and_come_back_bit_exact() {
    let mut s = space_with_swap(64);
    let base = s.reserve(16 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..16 {
        write_word(&mut s, base + i * PAGE_SIZE, 0x1000 + i);
    }
    let sweep = reclaim(&mut s, 16);
    assert_eq!((sweep.referenced, sweep.evicted), (16, 16), "first turn clears, second evicts");
    let st = s.stats();
    assert_eq!((st.resident_pages, st.swapped_pages, st.swap_outs), (0, 16, 16));
    assert_eq!(s.platform().pages.len(), 0, "every frame is free");
    assert!(s.platform().tlb.is_empty(), "evicted pages were flushed");
    // One page per fault here (tests/read_ahead.rs has the rest).
    s.set_swap_read_ahead(0);
    for i in 0..16 {
        assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), 0x1000 + i, "page {i}");
    }
    let st = s.stats();
    assert_eq!((st.resident_pages, st.swapped_pages, st.faults.swapped_in), (16, 0, 16));
    assert!(s.platform().swap.is_empty(), "without the swap cache, a swapped-in page frees its slot");
    done(s);
}

#[test]
fn a_page_swapped_in_and_not_written_leaves_again_without_a_write() {
    let mut s = space_with_swap(64);
    s.platform_mut().keep_swap_copies = true;
    let base = s.reserve(8 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let page = |i: u64| base + i * PAGE_SIZE;
    for i in 0..8 {
        write_word(&mut s, page(i), 0x1000 + i);
    }
    assert_eq!(reclaim(&mut s, 8).evicted, 8);
    for i in 0..8 {
        assert_eq!(read_word(&mut s, page(i)), 0x1000 + i);
        let m = walk(&s, UserAddr::new(page(i))).unwrap();
        assert!(m.swap_cached && !m.dirty, "page {i} came back clean with its copy kept");
    }
    assert_eq!((s.stats().swapped_pages, s.platform().swap.len()), (0, 8), "the slots stay, as copies");
    // Pages 0 and 1 are written: their copies are stale.
    write_word(&mut s, page(0), 0xa0);
    write_word(&mut s, page(1), 0xa1);
    assert!(walk(&s, UserAddr::new(page(1))).unwrap().dirty);
    assert_eq!(reclaim(&mut s, 8).evicted, 8);
    let st = s.stats();
    assert_eq!((st.swap_outs, st.clean_evictions, st.swapped_pages), (10, 6, 8));
    assert_eq!(s.platform().swap_writes, 10, "only the two written pages were written again");
    assert_eq!(s.platform().swap.len(), 8, "the stale copies' slots were released");
    assert!(s.platform().swap_copies.is_empty() && s.platform().pages.is_empty());
    for (i, expected) in [0xa0, 0xa1, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006, 0x1007].into_iter().enumerate()
    {
        assert_eq!(read_word(&mut s, page(i as u64)), expected, "page {i}");
    }
    // Copies kept by resident pages go with them.
    assert_eq!(s.platform().swap_copies.len(), 8);
    assert_eq!(s.decommit(page(0), 4 * PAGE_SIZE), Ok(4));
    assert_eq!((s.platform().swap.len(), s.platform().swap_copies.len()), (4, 4));
    s.platform_mut().flush_all();
    s.teardown();
    assert!(s.platform().swap.is_empty() && s.platform().swap_copies.is_empty(), "every slot back");
}

#[test]
fn a_page_that_reads_zero_is_dropped_to_demand_zero_without_a_write() {
    let mut s = space_with_swap(64);
    s.platform_mut().zero_detection = true;
    let base = s.reserve(8 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    // Pages 0..4 hold data; 4..8 are brought in and never written, and
    // page 3 is written back to zero by its program.
    for i in 0..4 {
        write_word(&mut s, base + i * PAGE_SIZE, 0x1000 + i);
    }
    write_word(&mut s, base + 3 * PAGE_SIZE, 0);
    assert_eq!(s.commit(base, 8 * PAGE_SIZE), Ok(4));
    let sweep = reclaim(&mut s, 8);
    assert_eq!(sweep.evicted, 8);
    let st = s.stats();
    assert_eq!((st.resident_pages, st.swapped_pages, st.swap_outs, st.zero_pages_dropped), (0, 3, 3, 5));
    assert_eq!(s.platform().swap.len(), 3, "only the pages with data took slots");
    assert_eq!(s.platform().pages.len(), 0, "every frame is free");
    for i in 4..8 {
        let entry = s.leaf(UserAddr::new(base + i * PAGE_SIZE)).unwrap().unwrap();
        assert_eq!(s.read(entry, UserAddr::new(base)), Ok(PteState::DemandZero { prot: Prot::USER_RW }));
    }
    for i in 0..8 {
        let expected = if i < 3 { 0x1000 + i } else { 0 };
        assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), expected, "page {i}");
    }
    let st = s.stats();
    assert_eq!(
        (st.faults.swapped_in + st.faults.read_ahead, st.faults.demand_zero),
        (3, 4 + 5),
        "zero pages fault in as demand-zero"
    );
    done(s);
}

#[test]
fn an_accessed_page_gets_a_second_chance() {
    let mut s = space_with_swap(64);
    let base = s.reserve(4 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..4 {
        write_word(&mut s, base + i * PAGE_SIZE, i);
    }
    // One turn: every Accessed bit cleared, nothing evicted.
    assert_eq!(sweep(&mut s, 0, 1).scanned, 0, "want 0 scans nothing");
    let turn = sweep(&mut s, u64::MAX, 1);
    assert_eq!((turn.referenced, turn.evicted), (4, 0));
    // Touch page 2 again, then evict as many as will go.
    read_word(&mut s, base + 2 * PAGE_SIZE);
    let sweep = reclaim(&mut s, 3);
    assert_eq!((sweep.evicted, sweep.referenced), (3, 1));
    assert!(walk(&s, UserAddr::new(base + 2 * PAGE_SIZE)).is_some(), "the hot page stayed");
    done(s);
}

#[test]
fn decommit_release_and_destroy_give_every_slot_back() {
    let mut s = space_with_swap(64);
    let base = s.reserve(12 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..12 {
        write_word(&mut s, base + i * PAGE_SIZE, i);
    }
    reclaim(&mut s, 12);
    assert_eq!(s.platform().swap.len(), 12);
    s.protect(base, 12 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(s.platform().swap.len(), 12, "protect keeps the slots");
    assert_eq!(s.decommit(base, 4 * PAGE_SIZE), Ok(0));
    assert_eq!(s.platform().swap.len(), 8);
    assert_eq!(read_word(&mut s, base), 0, "decommitted: demand-zero again");
    s.release(base + 4 * PAGE_SIZE, 4 * PAGE_SIZE).unwrap();
    assert_eq!((s.platform().swap.len(), s.stats().swapped_pages), (4, 4));
    assert_eq!(
        touch(&mut s, base + 8 * PAGE_SIZE, true),
        Err(FaultOutcome::Violation(Violation::WriteToReadOnly)),
        "a swapped page keeps its protection"
    );
    s.platform_mut().flush_all();
    s.teardown();
    assert_eq!(s.platform().swap.len(), 0, "destroy frees the rest");
    assert_eq!(s.platform().frames_in_use(), 0);
}

#[test]
fn commit_brings_swapped_pages_back() {
    let mut s = space_with_swap(8);
    let base = s.reserve(4 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..4 {
        write_word(&mut s, base + i * PAGE_SIZE, 40 + i);
    }
    reclaim(&mut s, 4);
    assert_eq!(s.commit(base, 4 * PAGE_SIZE), Ok(4));
    assert_eq!((s.stats().swapped_pages, s.platform().swap.len()), (0, 0));
    for i in 0..4 {
        assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), 40 + i);
    }
    done(s);
}

#[test]
fn a_full_swap_stops_reclaim_and_changes_nothing() {
    let mut s = space_with_swap(2);
    let base = s.reserve(4 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..4 {
        write_word(&mut s, base + i * PAGE_SIZE, i + 1);
    }
    let sweep = reclaim(&mut s, 4);
    assert_eq!((sweep.evicted, sweep.stopped), (2, true));
    assert_eq!((s.stats().resident_pages, s.stats().swapped_pages), (2, 2));
    for i in 0..4 {
        assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), i + 1);
    }
    done(s);
}

#[test]
fn stale_pinned_and_foreign_frames_are_skipped() {
    let mut s = space_with_swap(8);
    let base = s.reserve(2 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let frame = touch(&mut s, base, true).unwrap();
    let va = UserAddr::new(base);
    assert_eq!(s.age_or_evict(va, Pfn::new(frame.number() + 999)), crate::reclaim::Verdict::Skipped);
    assert_eq!(s.age_or_evict(UserAddr::new(base + PAGE_SIZE), frame), crate::reclaim::Verdict::Skipped);
    let slot = s.leaf(va).unwrap().unwrap();
    let m = walk(&s, va).unwrap();
    s.write(slot, PteState::Present(Mapping { pinned: true, accessed: false, ..m }));
    assert_eq!(s.age_or_evict(va, frame), crate::reclaim::Verdict::Skipped, "pinned pages stay");
    done(s);
}

#[test]
fn chosen_pages_stay_as_they_are_until_their_eviction_is_finished() {
    use crate::vm::Choice;
    let mut s = space_with_swap(8);
    let base = s.reserve(3 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let frames: Vec<(UserAddr, Pfn)> = (0..3)
        .map(|i| {
            let va = UserAddr::new(base + i * PAGE_SIZE);
            write_word(&mut s, va.as_u64(), 70 + i);
            (va, walk(&s, va).unwrap().frame)
        })
        .collect();
    for &(va, frame) in &frames {
        assert_eq!(s.age_or_choose(va, frame), Choice::Referenced, "first pass clears A");
    }
    let chosen: Vec<_> = frames
        .iter()
        .map(|&(va, frame)| match s.age_or_choose(va, frame) {
            Choice::Chosen(chosen) => {
                assert_eq!((chosen.page(), chosen.frame()), (va, frame));
                chosen
            }
            other => panic!("second pass: {other:?}"),
        })
        .collect();
    assert!(frames.iter().all(|&(va, _)| walk(&s, va).is_some()), "chosen pages are still mapped");
    // All three are written out; page 2 is touched before the evictions
    // are finished (in one call), so it stays and keeps its frame.
    let written: Vec<_> =
        chosen.iter().map(|&c| (c, s.platform_mut().swap_out(c.frame()).unwrap())).collect();
    read_word(&mut s, frames[2].0.as_u64());
    assert_eq!(s.finish_evictions(&written), 0b011, "accessed since chosen: stays");
    let slot = written[2].1;
    s.platform_mut().swap_release(slot);
    assert_eq!((s.stats().swapped_pages, s.stats().resident_pages, s.platform().swap.len()), (2, 1, 2));
    for i in 0..3 {
        assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), 70 + i);
    }
    done(s);
}

mod fault_around;
mod inspect;
mod policy;
mod read_ahead;
mod swap_off;
