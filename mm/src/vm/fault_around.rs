//! Fault-around for anonymous memory: when demand-zero faults walk up
//! through a region page after page, the next fault maps a few more pages
//! than the one that faulted, so a sequential first touch takes one trap
//! per window instead of one per page.
//!
//! It is readahead's idea (Linux's `ondemand_readahead`: detect a
//! sequential run, then double the window up to a limit) applied to
//! zero-fill memory, where Linux maps more per fault only through
//! multi-size THP. What keeps it from costing what it saves:
//!
//! - **Only sequential runs.** A fault counts as sequential when it lands on
//!   the page right after the last page the previous demand-zero fault
//!   mapped. Random and sparse access never gets a page it did not touch.
//! - **A window that grows.** 2 pages ahead on the second fault of a run,
//!   then 4, 8, up to [`MAX_FAULT_AROUND`] (16 pages, 64 KiB: Linux's
//!   `fault_around_bytes`), so a short run wastes at most a little.
//! - **Only frames zeroed in idle time.** The pages ahead come from the
//!   zeroed pool ([`Platform::alloc_prezeroed_page`](super::Platform)); when
//!   it is empty the fault maps its one page, zeroing nothing extra.
//! - **Charged like any fault.** Each page ahead passes the RAM quota
//!   check; the first that would not, ends the window (the fault itself
//!   already succeeded).
//!
//! The mechanism, one leaf table walked once, is `AddressSpace::map_ahead`
//! in `walk.rs`; this module only decides how far.

use crate::addr::{UserAddr, PAGE_SIZE};

/// Most pages mapped after one demand-zero fault.
pub const MAX_FAULT_AROUND: u32 = 16;

/// One space's sequential-fault detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SequentialFaults {
    /// Where the next fault of a sequential run lands: the page after the
    /// last one the previous demand-zero fault mapped.
    expected: Option<UserAddr>,
    /// Pages the run's last fault asked to map ahead (0: no run yet).
    window: u32,
    /// The window's limit (0: fault-around off).
    max: u32,
}

impl SequentialFaults {
    pub(super) fn new(max: u32) -> Self {
        SequentialFaults { expected: None, window: 0, max: max.min(MAX_FAULT_AROUND) }
    }

    pub(super) fn max(&self) -> u32 {
        self.max
    }

    /// How many pages to map after the demand-zero fault at `va`: none
    /// unless it continues a run; along a run 2, 4, 8, … up to the limit.
    pub(super) fn window_for(&mut self, va: UserAddr) -> u32 {
        self.window = if self.expected == Some(va) { (self.window * 2).clamp(2, self.max.max(2)) } else { 0 };
        self.window.min(self.max)
    }

    /// The fault at `va` mapped itself and `ahead` pages after it.
    pub(super) fn mapped(&mut self, va: UserAddr, ahead: u32) {
        self.expected = va.as_u64().checked_add((u64::from(ahead) + 1) * PAGE_SIZE).map(UserAddr::new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: u64) -> UserAddr {
        UserAddr::new(0x40_0000 + n * PAGE_SIZE)
    }

    /// Runs the detector over faults at `pages`, each mapping all it asked.
    fn windows(max: u32, pages: &[u64]) -> std::vec::Vec<u32> {
        let mut seq = SequentialFaults::new(max);
        pages
            .iter()
            .map(|&p| {
                let w = seq.window_for(page(p));
                seq.mapped(page(p), w);
                w
            })
            .collect()
    }

    extern crate std;

    #[test]
    fn a_sequential_run_doubles_its_window_up_to_the_limit() {
        // Faults land where the last one's window ended.
        assert_eq!(windows(16, &[0, 1, 4, 9, 18, 35, 52]), [0, 2, 4, 8, 16, 16, 16]);
    }

    #[test]
    fn a_fault_off_the_run_starts_over() {
        assert_eq!(windows(16, &[0, 1, 4, 100, 101, 7]), [0, 2, 4, 0, 2, 0]);
        // The page the last fault itself mapped is not the run's next.
        assert_eq!(windows(16, &[0, 0, 1]), [0, 0, 2]);
    }

    #[test]
    fn random_faults_never_map_ahead() {
        assert_eq!(windows(16, &[5, 3, 9, 2, 40, 7]), [0; 6]);
    }

    #[test]
    fn the_limit_bounds_the_window_and_zero_turns_it_off() {
        assert_eq!(windows(0, &[0, 1, 2, 3]), [0, 0, 0, 0]);
        assert_eq!(windows(1, &[0, 1, 3, 5]), [0, 1, 1, 1]);
        assert_eq!(windows(4, &[0, 1, 4, 9, 14]), [0, 2, 4, 4, 4]);
        assert_eq!(SequentialFaults::new(1000).max(), MAX_FAULT_AROUND);
    }

    #[test]
    fn a_window_that_mapped_less_sets_the_next_expected_page_by_what_it_mapped() {
        let mut seq = SequentialFaults::new(16);
        let first = seq.window_for(page(0));
        seq.mapped(page(0), first);
        assert_eq!(seq.window_for(page(1)), 2);
        // The pool ran dry: only the faulting page was mapped.
        seq.mapped(page(1), 0);
        assert_eq!(seq.window_for(page(2)), 4);
    }
}
