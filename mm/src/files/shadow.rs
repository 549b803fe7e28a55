//! Shadow entries: what the page cache remembers of a page reclaim
//! dropped, so that when the page is read again the replacement policy
//! knows how soon it came back (its *refault distance*, as an anonymous
//! page's swap slot tells it; `crate::reclaim::hot_cold`). Linux keeps the
//! same number in the page cache's tree where the page was (a "shadow
//! entry", `mm/workingset.c`).
//!
//! The file disk is read-only and its files never change size, so every
//! page that can ever be cached is known when the disk is opened. The
//! shadows are one stamp per page of every file, in file order: a page's
//! shadow has a place of its own and is never lost to another page's, and
//! the memory is 4 bytes a file page, fixed (34 KiB for the 35 MiB of the
//! standard file disk; the direct-mapped table of 16-byte entries it
//! replaced took 128 KiB and lost about one shadow in seven under the
//! demo's pressure).
//!
//! ```text
//!  first:  [0, pages(file 0), + pages(file 1), …, total]    where each file's stamps start
//!  stamps: [file 0: page 0, page 1, …][file 1: page 0, …]…  EMPTY, or the eviction clock when dropped
//! ```

use super::FilePage;
use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// No shadow. An eviction clock of exactly this value is kept as one
/// less: a refault distance off by one eviction, once in 2^32.
const EMPTY: u32 = u32::MAX;

/// What the table has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShadowStats {
    /// Pages remembered when they were dropped.
    pub remembered: u64,
    /// Pages read again that found their shadow.
    pub refaults: u64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ShadowTable {
    /// Index in `stamps` of each file's page 0, and the total at the end.
    first: Vec<u64>,
    stamps: Vec<u32>,
    stats: ShadowStats,
}

impl ShadowTable {
    /// A table for `files` files, file id `i` of the `i`-th count of
    /// `pages` pages; fails, changing nothing, when the heap cannot hold it.
    pub fn new(files: usize, pages: impl Iterator<Item = u64>) -> Result<ShadowTable, TryReserveError> {
        let mut first = Vec::new();
        first.try_reserve_exact(files + 1)?;
        first.push(0);
        for n in pages.take(files) {
            first.push(first.last().copied().unwrap_or(0) + n);
        }
        let total = first.last().copied().unwrap_or(0) as usize;
        Ok(ShadowTable { first, stamps: crate::try_table(total, EMPTY)?, stats: ShadowStats::default() })
    }

    /// Bytes of kernel heap the table takes.
    pub fn table_bytes(&self) -> usize {
        self.stamps.capacity() * core::mem::size_of::<u32>()
            + self.first.capacity() * core::mem::size_of::<u64>()
    }

    pub fn stats(&self) -> ShadowStats {
        self.stats
    }

    /// Where `page`'s stamp lives; `None` for a page no file has (or in a
    /// table that could not be made: nothing is remembered).
    fn slot(&self, page: FilePage) -> Option<usize> {
        let file = usize::from(page.file.0);
        let (start, end) = (*self.first.get(file)?, *self.first.get(file + 1)?);
        (page.page < end - start).then(|| (start + page.page) as usize)
    }

    /// `page` was dropped at `stamp` of the eviction clock.
    pub fn remember(&mut self, page: FilePage, stamp: u32) {
        let Some(slot) = self.slot(page) else { return };
        self.stamps[slot] = stamp.min(EMPTY - 1);
        self.stats.remembered += 1;
    }

    /// When `page`, which is being read again, was dropped, if it was;
    /// the shadow is gone after this.
    pub fn take(&mut self, page: FilePage) -> Option<u32> {
        let slot = self.slot(page)?;
        let stamp = core::mem::replace(&mut self.stamps[slot], EMPTY);
        (stamp != EMPTY).then(|| {
            self.stats.refaults += 1;
            stamp
        })
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
        let mut shadows = ShadowTable::new(4, [8u64, 16, 16, 16].into_iter()).unwrap();
        shadows.remember(page(1, 7), 100);
        shadows.remember(page(2, 7), 200);
        assert_eq!(shadows.take(page(3, 7)), None, "never dropped");
        assert_eq!(shadows.take(page(1, 7)), Some(100));
        assert_eq!(shadows.take(page(1, 7)), None, "taken once");
        assert_eq!(shadows.take(page(2, 7)), Some(200));
        assert_eq!(shadows.stats(), ShadowStats { remembered: 2, refaults: 2 });
    }

    #[test]
    fn every_page_of_every_file_keeps_its_own_shadow() {
        // What a direct-mapped table of any size below the page count
        // cannot do: every page dropped, every one found with its stamp.
        let sizes = [3u64, 0, 100, 1, 57];
        let mut shadows = ShadowTable::new(sizes.len(), sizes.iter().copied()).unwrap();
        assert_eq!(shadows.table_bytes(), 161 * 4 + 6 * 8);
        let all = || sizes.iter().enumerate().flat_map(|(f, &n)| (0..n).map(move |p| page(f as u16, p)));
        for (i, p) in all().enumerate() {
            shadows.remember(p, 1_000 + i as u32);
        }
        for (i, p) in all().enumerate() {
            assert_eq!(shadows.take(p), Some(1_000 + i as u32), "{p:?}");
        }
        assert_eq!(shadows.stats(), ShadowStats { remembered: 161, refaults: 161 });
    }

    #[test]
    fn pages_no_file_has_are_not_remembered() {
        let mut shadows = ShadowTable::new(2, [4u64, 2].into_iter()).unwrap();
        for p in [page(0, 4), page(1, 2), page(2, 0), page(u16::MAX, 0)] {
            shadows.remember(p, 5);
            assert_eq!(shadows.take(p), None, "{p:?}");
        }
        assert_eq!(shadows.stats().remembered, 0);
        // The neighbours of those pages were not touched.
        shadows.remember(page(0, 3), 7);
        shadows.remember(page(1, 0), 8);
        assert_eq!((shadows.take(page(0, 3)), shadows.take(page(1, 0))), (Some(7), Some(8)));
    }

    #[test]
    fn a_table_without_entries_remembers_nothing() {
        let mut shadows = ShadowTable::default();
        shadows.remember(page(1, 1), 3);
        assert_eq!((shadows.take(page(1, 1)), shadows.stats().remembered), (None, 0));
    }

    #[test]
    fn the_same_page_dropped_again_keeps_its_latest_stamp_and_the_clock_may_wrap() {
        let mut shadows = ShadowTable::new(1, [2u64].into_iter()).unwrap();
        shadows.remember(page(0, 1), 1);
        shadows.remember(page(0, 1), 9);
        assert_eq!(shadows.take(page(0, 1)), Some(9));
        shadows.remember(page(0, 0), u32::MAX);
        assert_eq!(
            shadows.take(page(0, 0)),
            Some(u32::MAX - 1),
            "the one stamp that means empty, kept one less"
        );
        shadows.remember(page(0, 0), 0);
        assert_eq!(shadows.take(page(0, 0)), Some(0));
    }
}
