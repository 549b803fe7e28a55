//! The swap cache: for a page read back from swap and not written since,
//! the slot that still holds a copy of it, kept by the page's frame.
//!
//! Without it a page that comes back from swap gives its slot up at once,
//! and if it leaves again it is written again, although the disk still
//! holds exactly those bytes. With it, the slot stays taken after the
//! swap-in and is recorded here against the new frame; the page-table
//! entry's dirty bit (set by the CPU on the first write) then says whether
//! the copy is still good. Reclaim takes a clean page's copy
//! ([`SwapCache::take`]) and evicts the page with no write at all; a
//! written page is written to a new slot like any other, and its stale
//! copy's slot is released when the frame is freed.
//!
//! ```text
//!  frame ─► slot       (u32 per frame of the span, 0 = no copy)
//!   ├─ kept    swap-in of slot s into frame f, swap at most half full
//!   ├─ taken   reclaim evicts f's page clean: the PTE names s again
//!   └─ dropped f is freed (the copy is stale or its page gone), or swap
//!              ran full (every copy's slot is released for new writes)
//! ```
//!
//! The cost is slots: a kept copy holds a slot that a page without one
//! could use. So, like Linux (which stops keeping swap-cache pages once
//! swap is half full, `vm_swap_full`), [`super::SwapArea`] keeps copies
//! only while at most half the slots are in use, and gives them all up
//! when a write finds no slot. 4 bytes a frame of RAM (0.1 %).

use crate::addr::Pfn;
use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::ops::Range;

/// See the module documentation. The default has no table and keeps
/// nothing.
#[derive(Debug, Default)]
pub struct SwapCache {
    /// The first frame of the span the table covers.
    first: u64,
    /// `slots[f - first]`: the slot with a copy of frame `f`'s page; 0 none
    /// (slot 0 is the swap header, never a page).
    slots: Vec<u32>,
    kept: u64,
}

impl SwapCache {
    /// A cache for the frames of `frames`; fails, changing nothing, when
    /// the kernel heap cannot hold its table.
    pub fn for_frames(frames: Range<Pfn>) -> Result<SwapCache, TryReserveError> {
        let len = frames.end.number().saturating_sub(frames.start.number());
        let slots = crate::try_table(len as usize, 0)?;
        Ok(SwapCache { first: frames.start.number(), slots, kept: 0 })
    }

    fn entry(&mut self, frame: Pfn) -> Option<&mut u32> {
        let index = frame.number().checked_sub(self.first)?;
        self.slots.get_mut(usize::try_from(index).ok()?)
    }

    /// Records that `slot` holds a copy of the page now in `frame`. False,
    /// nothing recorded, for a frame outside the table, a slot number the
    /// table cannot hold, or a frame that has a copy already (the caller's
    /// books are wrong: a frame holds one page).
    pub fn keep(&mut self, frame: Pfn, slot: u64) -> bool {
        let Ok(slot) = u32::try_from(slot) else { return false };
        match self.entry(frame) {
            Some(entry) if *entry == 0 && slot != 0 => {
                *entry = slot;
                self.kept += 1;
                true
            }
            _ => false,
        }
    }

    /// The slot with a copy of `frame`'s page, if one is kept; the cache
    /// forgets it (the slot's user is the caller now).
    pub fn take(&mut self, frame: Pfn) -> Option<u64> {
        let entry = self.entry(frame)?;
        let slot = core::mem::take(entry);
        if slot == 0 {
            return None;
        }
        self.kept -= 1;
        Some(u64::from(slot))
    }

    /// Forgets every copy and hands back their slots.
    pub fn drain(&mut self) -> impl Iterator<Item = u64> + '_ {
        self.kept = 0;
        self.slots.iter_mut().filter(|s| **s != 0).map(|s| u64::from(core::mem::take(s)))
    }

    /// Copies kept.
    pub fn len(&self) -> u64 {
        self.kept
    }

    pub fn is_empty(&self) -> bool {
        self.kept == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfn(n: u64) -> Pfn {
        Pfn::new(n)
    }

    #[test]
    fn a_kept_copy_is_taken_once_and_frames_outside_the_table_keep_nothing() {
        let mut cache = SwapCache::for_frames(pfn(100)..pfn(110)).unwrap();
        assert!(cache.keep(pfn(100), 7));
        assert!(cache.keep(pfn(109), 8));
        assert!(!cache.keep(pfn(109), 9), "one copy per frame");
        assert!(!cache.keep(pfn(110), 9) && !cache.keep(pfn(99), 9), "outside the table");
        assert!(!cache.keep(pfn(101), 0) && !cache.keep(pfn(101), 1 << 32), "no such slot number");
        assert_eq!(cache.len(), 2);
        assert_eq!((cache.take(pfn(100)), cache.take(pfn(100))), (Some(7), None));
        assert_eq!((cache.take(pfn(105)), cache.take(pfn(4_000))), (None, None));
        assert_eq!(cache.len(), 1);
        let mut cache = SwapCache::default(); // no table: keeps nothing
        assert!(!cache.keep(pfn(0), 1) && cache.is_empty());
    }

    #[test]
    fn draining_hands_back_every_kept_slot_and_empties_the_cache() {
        let mut cache = SwapCache::for_frames(pfn(0)..pfn(64)).unwrap();
        for f in (0..64).step_by(3) {
            assert!(cache.keep(pfn(f), 1_000 + f));
        }
        let mut slots: Vec<u64> = cache.drain().collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..64).step_by(3).map(|f| 1_000 + f).collect::<Vec<_>>());
        assert!(cache.is_empty() && cache.take(pfn(3)).is_none());
        assert!(cache.keep(pfn(3), 5), "the table is reusable");
    }
}
