//! Shadow entries: what the page cache remembers of a page reclaim
//! dropped, so that when the page is read again the replacement policy
//! knows how soon it came back (its *refault distance*, as an anonymous
//! page's swap slot tells it; `crate::reclaim::hot_cold`). Linux keeps the
//! same number in the page cache's tree where the page was (a "shadow
//! entry", `mm/workingset.c`).
//!
//! Here the shadows live in a table of their own, sized once and
//! direct-mapped: a dropped page's key hashes to one entry, which it takes
//! over whatever was there. Lookups and updates are one entry, and the
//! memory is fixed; the price is that a shadow can be lost to a later one
//! with the same hash. A lost shadow costs only knowledge: the page comes
//! back cold, as every dropped page did before shadows.
//!
//! ```text
//!  entry: key = FilePage::pack() (0: empty)   stamp = the eviction clock when it was dropped
//!  16 bytes an entry; entries = the next power of two >= half the cache's page limit
//! ```

use super::FilePage;
use alloc::collections::TryReserveError;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Shadow {
    key: u64,
    stamp: u32,
}

/// What the table has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShadowStats {
    /// Pages remembered when they were dropped.
    pub remembered: u64,
    /// Shadows taken over by another page before their own came back.
    pub lost: u64,
    /// Pages read again that found their shadow.
    pub refaults: u64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ShadowTable {
    entries: Vec<Shadow>,
    stats: ShadowStats,
}

impl ShadowTable {
    /// A table for a page cache of at most `cache_limit` pages; fails,
    /// changing nothing, when the heap cannot hold it.
    pub fn new(cache_limit: usize) -> Result<ShadowTable, TryReserveError> {
        let len = (cache_limit / 2).max(1).next_power_of_two();
        Ok(ShadowTable { entries: crate::try_table(len, Shadow::default())?, stats: ShadowStats::default() })
    }

    /// Bytes of kernel heap the table takes.
    pub fn table_bytes(&self) -> usize {
        self.entries.len() * core::mem::size_of::<Shadow>()
    }

    pub fn stats(&self) -> ShadowStats {
        self.stats
    }

    /// The entry `key` hashes to; `None` in a table with none (one that
    /// could not be made: nothing is remembered).
    fn entry(&mut self, key: u64) -> Option<&mut Shadow> {
        if self.entries.is_empty() {
            return None;
        }
        let index = super::table_index(key, self.entries.len());
        self.entries.get_mut(index)
    }

    /// `page` was dropped at `stamp` of the eviction clock.
    pub fn remember(&mut self, page: FilePage, stamp: u32) {
        let key = page.pack();
        let Some(entry) = self.entry(key) else { return };
        let lost = entry.key != 0 && entry.key != key;
        *entry = Shadow { key, stamp };
        self.stats.remembered += 1;
        self.stats.lost += u64::from(lost);
    }

    /// When `page`, which is being read again, was dropped, if its shadow
    /// is still here; the shadow is gone after this.
    pub fn take(&mut self, page: FilePage) -> Option<u32> {
        let key = page.pack();
        let entry = self.entry(key).filter(|e| e.key == key)?;
        let stamp = core::mem::take(entry).stamp;
        self.stats.refaults += 1;
        Some(stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FileId;

    fn page(file: u16, page: u64) -> FilePage {
        FilePage { file: FileId(file), page }
    }

    #[test]
    fn a_dropped_page_is_remembered_until_it_comes_back_once() {
        let mut shadows = ShadowTable::new(64).unwrap();
        shadows.remember(page(1, 7), 100);
        shadows.remember(page(2, 7), 200);
        assert_eq!(shadows.take(page(3, 7)), None, "never dropped");
        assert_eq!(shadows.take(page(1, 7)), Some(100));
        assert_eq!(shadows.take(page(1, 7)), None, "taken once");
        assert_eq!(shadows.take(page(2, 7)), Some(200));
        assert_eq!(shadows.stats(), ShadowStats { remembered: 2, lost: 0, refaults: 2 });
    }

    #[test]
    fn a_full_table_loses_old_shadows_to_new_ones_and_says_so() {
        // 2 entries: the third page dropped takes over someone's.
        let mut shadows = ShadowTable::new(4).unwrap();
        assert_eq!(shadows.table_bytes(), 2 * 16);
        for p in 0..100 {
            shadows.remember(page(0, p), p as u32);
        }
        let found: Vec<u64> = (0..100).filter(|&p| shadows.take(page(0, p)).is_some()).collect();
        assert!(!found.is_empty() && found.len() <= 2, "{found:?}");
        // Each entry's first page took it empty; every later one took it over.
        let stats = shadows.stats();
        assert_eq!((stats.remembered, stats.lost), (100, 100 - found.len() as u64));
        // Whatever is found carries its own stamp.
        for p in found {
            shadows.remember(page(0, p), 5_000 + p as u32);
            assert_eq!(shadows.take(page(0, p)), Some(5_000 + p as u32));
        }
    }

    #[test]
    fn a_table_without_entries_remembers_nothing() {
        let mut shadows = ShadowTable::default();
        shadows.remember(page(1, 1), 3);
        assert_eq!((shadows.take(page(1, 1)), shadows.stats().remembered), (None, 0));
    }

    #[test]
    fn the_same_page_dropped_again_keeps_its_latest_stamp() {
        let mut shadows = ShadowTable::new(1).unwrap();
        shadows.remember(page(4, 1), 1);
        shadows.remember(page(4, 1), 9);
        assert_eq!((shadows.take(page(4, 1)), shadows.stats().lost), (Some(9), 0));
    }
}
