//! The page cache's index: (file, page) → the frame that holds that page,
//! how many page-table entries map it, and whether it was used since
//! reclaim last looked.
//!
//! One frame per cached file page, shared by every mapping of it: a second
//! process that maps the same page finds it here and maps the same frame.
//! A page no mapping holds stays cached (the next program that maps it finds
//! it without a disk read) until reclaim drops it.
//!
//! An open-addressing hash table with linear probing, sized once: every
//! byte of it is allocated when the cache is made, so a fault never
//! allocates kernel heap to cache a page (an insert into a full table is an
//! error the fault path turns into "reclaim, then retry"). Removal shifts
//! the entries after it back (no tombstones), so a table that churns does
//! not fill up with dead slots.
//!
//! ```text
//!  slot:  key = FilePage::pack() = (file+1) << 36 | page, bit 63 "referenced"  (0: empty)
//!         frame (u32 frame number)  mappings (u32)
//!  16 bytes per slot; slots = next power of two ≥ 5/4 × the page limit
//! ```

use super::FilePage;
use crate::addr::Pfn;
use alloc::vec::Vec;

/// Above [`FilePage::pack`]'s 53 bits.
const REFERENCED: u64 = 1 << 63;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: u64,
    frame: u32,
    mappings: u32,
}

impl Slot {
    fn key(&self) -> u64 {
        self.key & !REFERENCED
    }
}

/// What the cache holds and has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub pages: u64,
    /// Pages at least one page-table entry maps.
    pub mapped_pages: u64,
    /// Page-table entries that map a cached page, over all spaces: more
    /// than `mapped_pages` when pages are shared.
    pub mappings: u64,
    pub limit: u64,
    pub hits: u64,
    pub misses: u64,
    /// Pages reclaim dropped (they are read again on the next fault).
    pub dropped: u64,
}

/// Why a page could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The cache holds its limit of pages.
    Full,
    /// The page is cached already.
    Present,
    /// A frame number of 2^32 or more (16 TiB) does not fit a slot.
    FrameTooHigh,
}

/// Why a page could not be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveError {
    NotCached,
    /// Page-table entries still map it: they must go first.
    Mapped(u32),
}

/// See the module documentation.
pub struct PageCache {
    slots: Vec<Slot>,
    limit: usize,
    stats: CacheStats,
}

impl PageCache {
    /// A cache of at most `limit` pages; fails, changing nothing, when the
    /// heap cannot hold its table.
    pub fn new(limit: usize) -> Result<PageCache, alloc::collections::TryReserveError> {
        let len = (limit + limit / 4 + 1).next_power_of_two();
        let slots = crate::try_table(len, Slot::default())?;
        Ok(PageCache { slots, limit, stats: CacheStats { limit: limit as u64, ..CacheStats::default() } })
    }

    /// Bytes of kernel heap the index takes.
    pub fn table_bytes(&self) -> usize {
        self.slots.len() * core::mem::size_of::<Slot>()
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    pub fn is_full(&self) -> bool {
        self.stats.pages as usize >= self.limit
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, raw: u64) -> usize {
        super::table_index(raw, self.slots.len())
    }

    /// The slot holding `raw`, or the empty slot where it would go.
    fn probe(&self, raw: u64) -> (usize, bool) {
        let mut i = self.home(raw);
        loop {
            match self.slots[i].key() {
                0 => return (i, false),
                k if k == raw => return (i, true),
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    fn find(&self, key: FilePage) -> Option<usize> {
        match self.probe(key.pack()) {
            (i, true) => Some(i),
            (_, false) => None,
        }
    }

    /// The frame of a cached page, without counting a mapping (a kernel
    /// read); marks it referenced.
    pub fn get(&mut self, key: FilePage) -> Option<Pfn> {
        let i = self.find(key)?;
        self.slots[i].key |= REFERENCED;
        Some(Pfn::new(u64::from(self.slots[i].frame)))
    }

    /// A page-table entry is about to map the cached page: its frame, with
    /// the mapping counted, or `None` (a miss: read it and [`insert`](Self::insert)).
    pub fn map(&mut self, key: FilePage) -> Option<Pfn> {
        let Some(i) = self.find(key) else {
            self.stats.misses += 1;
            return None;
        };
        self.stats.hits += 1;
        let slot = &mut self.slots[i];
        slot.key |= REFERENCED;
        slot.mappings = slot.mappings.checked_add(1).expect("2^32 mappings of one page");
        if slot.mappings == 1 {
            self.stats.mapped_pages += 1;
        }
        self.stats.mappings += 1;
        Some(Pfn::new(u64::from(slot.frame)))
    }

    /// Adds a page just read into `frame`, with one mapping if `mapped`.
    pub fn insert(&mut self, key: FilePage, frame: Pfn, mapped: bool) -> Result<(), InsertError> {
        let frame = u32::try_from(frame.number()).map_err(|_| InsertError::FrameTooHigh)?;
        let raw = key.pack();
        let (i, present) = self.probe(raw);
        if present {
            return Err(InsertError::Present);
        }
        if self.is_full() {
            return Err(InsertError::Full);
        }
        self.slots[i] = Slot { key: raw | REFERENCED, frame, mappings: u32::from(mapped) };
        self.stats.pages += 1;
        self.stats.mapped_pages += u64::from(mapped);
        self.stats.mappings += u64::from(mapped);
        Ok(())
    }

    /// A page-table entry that mapped the page is gone. Returns false when
    /// the page is not cached or not mapped (the books disagree: a bug the
    /// caller reports).
    pub fn unmap(&mut self, key: FilePage) -> bool {
        let Some(i) = self.find(key) else { return false };
        let slot = &mut self.slots[i];
        let Some(left) = slot.mappings.checked_sub(1) else { return false };
        slot.mappings = left;
        if left == 0 {
            self.stats.mapped_pages -= 1;
        }
        self.stats.mappings -= 1;
        true
    }

    /// Whether the page was used since the last call (and clears that).
    pub fn take_referenced(&mut self, key: FilePage) -> bool {
        let Some(i) = self.find(key) else { return false };
        let was = self.slots[i].key & REFERENCED != 0;
        self.slots[i].key &= !REFERENCED;
        was
    }

    /// Drops an unmapped page; returns its frame (for the caller to free).
    pub fn remove(&mut self, key: FilePage) -> Result<Pfn, RemoveError> {
        let i = self.find(key).ok_or(RemoveError::NotCached)?;
        let slot = self.slots[i];
        if slot.mappings > 0 {
            return Err(RemoveError::Mapped(slot.mappings));
        }
        self.remove_at(i);
        self.stats.pages -= 1;
        self.stats.dropped += 1;
        Ok(Pfn::new(u64::from(slot.frame)))
    }

    /// Empties slot `i` and shifts back the entries of its probe run that
    /// could sit earlier, so every entry stays reachable from its home.
    fn remove_at(&mut self, mut hole: usize) {
        self.slots[hole] = Slot::default();
        let mut i = hole;
        loop {
            i = (i + 1) & self.mask();
            let raw = self.slots[i].key();
            if raw == 0 {
                return;
            }
            let home = self.home(raw);
            // The entry may move to the hole unless its home lies cyclically
            // in (hole, i]: then the hole is before where its probe starts.
            let home_after_hole = if hole <= i { hole < home && home <= i } else { hole < home || home <= i };
            if !home_after_hole {
                self.slots[hole] = self.slots[i];
                self.slots[i] = Slot::default();
                hole = i;
            }
        }
    }

    /// Every cached page: (page, frame, mappings).
    pub fn iter(&self) -> impl Iterator<Item = (FilePage, Pfn, u32)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.key() != 0)
            .map(|s| (FilePage::unpack(s.key()), Pfn::new(u64::from(s.frame)), s.mappings))
    }
}
