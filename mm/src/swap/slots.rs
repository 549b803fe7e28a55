//! The swap-slot map: which slots of a swap area hold data, with a reference
//! count per slot (Linux's `swap_map`). Today every slot has one user: the
//! PTE that names it, or the swap cache for a resident page's copy
//! (`super::cache`); the count is there so that sharing (fork) needs no new
//! structure.
//!
//! Allocation is next-fit from a cursor: consecutive evictions, which the
//! clock makes in address order within a space, land in consecutive slots,
//! so a later sequential fault-in reads neighbouring sectors (Linux's swap
//! clusters serve the same end). The cost is a scan from the cursor to the
//! next free slot: one step while the area fills, longer once it fragments.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::fmt;

/// A slot that is not one a caller may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// Slot 0 (the header) or past the end.
    OutOfRange(u64),
    /// The slot holds nothing.
    NotInUse(u64),
    /// The slot's count is at its maximum.
    TooManyUsers(u64),
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SlotError::OutOfRange(s) => write!(f, "swap slot {s} does not exist"),
            SlotError::NotInUse(s) => write!(f, "swap slot {s} is not in use"),
            SlotError::TooManyUsers(s) => write!(f, "swap slot {s} has too many users"),
        }
    }
}

/// See the module documentation. Slots are numbered `1..=len`.
#[derive(Clone, Debug)]
pub struct SlotMap {
    /// `counts[s - 1]`: users of slot `s`; 0 is free.
    counts: Vec<u8>,
    /// `stamps[s - 1]`: when slot `s`'s page was evicted (see the module
    /// documentation); meaningless on a free slot.
    stamps: Vec<u32>,
    free: u64,
    /// Index where the next search starts.
    cursor: usize,
}

impl SlotMap {
    /// A map of `slots` free slots; fails (changing nothing) when the
    /// kernel heap cannot hold its counts.
    pub fn new(slots: u64) -> Result<SlotMap, TryReserveError> {
        let counts = crate::try_table(slots as usize, 0)?;
        let stamps = crate::try_table(slots as usize, 0)?;
        Ok(SlotMap { counts, stamps, free: slots, cursor: 0 })
    }

    pub fn len(&self) -> u64 {
        self.counts.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn free(&self) -> u64 {
        self.free
    }

    /// A free slot, now with one user; `None` when every slot is taken.
    pub fn allocate(&mut self) -> Option<u64> {
        self.allocate_run(1)
    }

    /// `n` consecutive free slots (n ≥ 1), each now with one user: the
    /// first of them, or `None` when no such run is free (nothing taken).
    /// Next-fit from the cursor (the module documentation says why); a
    /// single slot is a run of one ([`Self::allocate`]), so a batch of
    /// evictions lands where single ones would have.
    pub fn allocate_run(&mut self, n: u64) -> Option<u64> {
        let len = self.counts.len();
        if n == 0 || n > self.free {
            return None;
        }
        let n = n as usize;
        // Runs that wrap past the end are not runs on the disk.
        let fits = |start: usize| start + n <= len && self.counts[start..start + n].iter().all(|&c| c == 0);
        let start = (self.cursor..len).chain(0..self.cursor).find(|&i| fits(i))?;
        self.counts[start..start + n].fill(1);
        self.free -= n as u64;
        self.cursor = (start + n) % len;
        Some(start as u64 + 1)
    }

    fn index(&self, slot: u64) -> Result<usize, SlotError> {
        match slot {
            0 => Err(SlotError::OutOfRange(slot)),
            s if s > self.len() => Err(SlotError::OutOfRange(slot)),
            s => Ok(s as usize - 1),
        }
    }

    /// Users of `slot` (0: free).
    pub fn users(&self, slot: u64) -> Result<u8, SlotError> {
        Ok(self.counts[self.index(slot)?])
    }

    /// Records that the page in `slot` (in use) was evicted at `stamp`.
    pub fn set_evicted_at(&mut self, slot: u64, stamp: u32) -> Result<(), SlotError> {
        let i = self.in_use(slot)?;
        self.stamps[i] = stamp;
        Ok(())
    }

    /// When the page in `slot` (in use) was evicted.
    pub fn evicted_at(&self, slot: u64) -> Result<u32, SlotError> {
        Ok(self.stamps[self.in_use(slot)?])
    }

    fn in_use(&self, slot: u64) -> Result<usize, SlotError> {
        let i = self.index(slot)?;
        match self.counts[i] {
            0 => Err(SlotError::NotInUse(slot)),
            _ => Ok(i),
        }
    }

    /// One more user of an in-use slot.
    pub fn duplicate(&mut self, slot: u64) -> Result<(), SlotError> {
        let i = self.index(slot)?;
        self.counts[i] = match self.counts[i] {
            0 => return Err(SlotError::NotInUse(slot)),
            u8::MAX => return Err(SlotError::TooManyUsers(slot)),
            n => n + 1,
        };
        Ok(())
    }

    /// One user fewer; returns true when the slot became free.
    pub fn release(&mut self, slot: u64) -> Result<bool, SlotError> {
        let i = self.index(slot)?;
        match self.counts[i] {
            0 => Err(SlotError::NotInUse(slot)),
            n => {
                self.counts[i] = n - 1;
                if n == 1 {
                    self.free += 1;
                }
                Ok(n == 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    extern crate std;

    #[test]
    fn consecutive_allocations_are_neighbours() {
        let mut map = SlotMap::new(100).unwrap();
        let slots: Vec<u64> = (0..10).map(|_| map.allocate().unwrap()).collect();
        assert_eq!(slots, (1..=10).collect::<Vec<_>>());
        map.release(3).unwrap();
        // Next-fit: the run goes on after 10; slot 3 is found after the wrap.
        assert_eq!(map.allocate(), Some(11));
    }

    #[test]
    fn runs_are_consecutive_free_slots_or_none() {
        let mut map = SlotMap::new(10).unwrap();
        assert_eq!(map.allocate_run(4), Some(1));
        assert_eq!(map.allocate(), Some(5));
        assert_eq!(map.allocate_run(5), Some(6));
        assert_eq!((map.allocate_run(1), map.free()), (None, 0));
        // Free 2, 3 and 7, 8, 9: a run of 3 is found after the wrap, not
        // across the taken slots.
        for s in [2, 3, 7, 8, 9] {
            map.release(s).unwrap();
        }
        assert_eq!(map.allocate_run(3), Some(7));
        assert_eq!(map.allocate_run(3), None);
        assert_eq!(map.allocate_run(2), Some(2));
        assert_eq!(map.allocate_run(0), None);
        assert_eq!(map.free(), 0);
    }

    #[test]
    fn a_full_map_says_so_and_reuses_freed_slots() {
        let mut map = SlotMap::new(4).unwrap();
        for _ in 0..4 {
            map.allocate().unwrap();
        }
        assert_eq!((map.allocate(), map.free()), (None, 0));
        assert_eq!(map.release(2), Ok(true));
        assert_eq!(map.allocate(), Some(2));
    }

    #[test]
    fn a_slot_keeps_its_pages_eviction_stamp_while_in_use() {
        let mut map = SlotMap::new(4).unwrap();
        let s = map.allocate().unwrap();
        map.set_evicted_at(s, 77).unwrap();
        assert_eq!(map.evicted_at(s), Ok(77));
        map.release(s).unwrap();
        assert_eq!(map.evicted_at(s), Err(SlotError::NotInUse(s)));
        assert_eq!(map.set_evicted_at(s, 1), Err(SlotError::NotInUse(s)));
        assert_eq!(map.evicted_at(9), Err(SlotError::OutOfRange(9)));
    }

    #[test]
    fn bad_slots_are_refused() {
        let mut map = SlotMap::new(4).unwrap();
        assert_eq!(map.release(0), Err(SlotError::OutOfRange(0)));
        assert_eq!(map.release(5), Err(SlotError::OutOfRange(5)));
        assert_eq!(map.release(1), Err(SlotError::NotInUse(1)));
        assert_eq!(map.duplicate(1), Err(SlotError::NotInUse(1)));
        let s = map.allocate().unwrap();
        map.duplicate(s).unwrap();
        assert_eq!((map.release(s), map.release(s)), (Ok(false), Ok(true)));
        assert_eq!(map.free(), 4);
    }

    proptest! {
        /// Against a model (slot → users): any sequence of allocate,
        /// duplicate and release keeps the counts and the free total exact,
        /// and allocate never hands out a slot in use.
        #[test]
        fn slot_map_matches_a_model(ops in proptest::collection::vec((0u8..4, 0u64..40), 1..400)) {
            let mut map = SlotMap::new(32).unwrap();
            let mut model: BTreeMap<u64, u8> = BTreeMap::new();
            for (op, pick) in ops {
                let in_use: Vec<u64> = model.keys().copied().collect();
                let target = if in_use.is_empty() { pick } else { in_use[pick as usize % in_use.len()] };
                match op {
                    0 => match map.allocate() {
                        Some(s) => {
                            prop_assert!(!model.contains_key(&s), "slot {} handed out twice", s);
                            model.insert(s, 1);
                        }
                        None => prop_assert_eq!(model.len(), 32),
                    },
                    3 => {
                        let n = pick % 6;
                        let free_run = |first: u64| (first..first + n).all(|s| s <= 32 && !model.contains_key(&s));
                        match map.allocate_run(n) {
                            Some(first) => {
                                prop_assert!(n > 0 && free_run(first), "run {}+{} not free", first, n);
                                (first..first + n).for_each(|s| { model.insert(s, 1); });
                            }
                            None => prop_assert!(n == 0 || !(1..=32).any(free_run), "a free run of {} was missed", n),
                        }
                    }
                    1 => {
                        let r = map.duplicate(target);
                        match model.get_mut(&target) {
                            Some(n) if *n < u8::MAX => { *n += 1; prop_assert_eq!(r, Ok(())) }
                            _ => prop_assert!(r.is_err()),
                        }
                    }
                    _ => {
                        let r = map.release(target);
                        match model.get(&target).copied() {
                            Some(1) => { model.remove(&target); prop_assert_eq!(r, Ok(true)) }
                            Some(n) => { model.insert(target, n - 1); prop_assert_eq!(r, Ok(false)) }
                            None => prop_assert!(r.is_err()),
                        }
                    }
                }
                prop_assert_eq!(map.free(), 32 - model.len() as u64);
            }
        }
    }
}
