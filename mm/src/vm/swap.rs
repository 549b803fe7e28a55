//! Pages leaving for swap and coming back: the address-space half of
//! reclaim. The swap device is the platform's ([`Platform::swap_out`]);
//! which page goes is the clock's (`crate::reclaim`). Life cycle of an
//! anonymous page's entry:
//!
//! ```text
//!  DemandZero ──fault──► Present(A=1) ──clock pass──► Present(A=0) ──clock pass──► Swapped{slot}
//!                             ▲   └──────── touched: A=1 again ◄┘                      │
//!                             └──────────────────────── fault: read slot, free it ◄────┘
//! ```
//!
//! A swapped-in page gives its slot back at once (no swap cache): a page
//! that is evicted again is written again. Keeping the slot while the page
//! stays clean (D = 0) would save that write, at the cost of a slot held
//! per resident page and a swap cache to find it; docs/swap.md weighs it.

use super::walk::Slot;
use super::{AddressSpace, Platform, VmError};
use crate::addr::{Pfn, UserAddr};
use crate::pte::{Mapping, PageKind, Prot, PteState};
use crate::reclaim::Verdict;

impl<P: Platform> AddressSpace<P> {
    /// Reclaim's step on the page at `va`, which the reverse map says is in
    /// `frame`: if the page was accessed since the last pass, clear the bit
    /// (and flush, so the next access sets it again) and keep it; otherwise
    /// write it to swap, leave `Swapped { slot }` in its entry, flush, and
    /// free the frame. Pages that are not anonymous, are pinned, or no
    /// longer in `frame` are skipped. [`Verdict::Stop`] when swap is full
    /// or failing: nothing changed.
    pub fn age_or_evict(&mut self, va: UserAddr, frame: Pfn) -> Verdict {
        let Some((slot, mapping)) = self.evictable(va, frame) else { return Verdict::Skipped };
        if mapping.accessed {
            self.write(slot, PteState::Present(Mapping { accessed: false, ..mapping }));
            self.platform.flush(va);
            return Verdict::Referenced;
        }
        // Written out while the page is still mapped: on one CPU nothing
        // runs between the copy and the entry change below. (With several
        // CPUs the entry would change and be flushed first, as Linux's
        // try_to_unmap does before pageout.)
        match self.platform.swap_out(frame) {
            Ok(swap_slot) => {
                self.unmap(slot, va, mapping, PteState::Swapped { slot: swap_slot, prot: mapping.prot });
                self.stats.swapped_pages += 1;
                self.stats.swap_outs += 1;
                Verdict::Evicted
            }
            Err(_) => Verdict::Stop,
        }
    }

    fn evictable(&self, va: UserAddr, frame: Pfn) -> Option<(Slot, Mapping)> {
        let slot = self.leaf(va).ok()??;
        match self.read(slot, va).ok()? {
            PteState::Present(m) if m.frame == frame && m.kind == PageKind::Anonymous && !m.pinned => {
                Some((slot, m))
            }
            _ => None,
        }
    }

    /// Brings a swapped page back: a new frame, filled from `swap_slot`,
    /// mapped with the protection the entry kept; then the slot is free.
    pub(super) fn map_swapped(&mut self, va: UserAddr, swap_slot: u64, prot: Prot) -> Result<(), VmError> {
        self.map_new_page(
            va,
            prot,
            Some(&mut |platform, frame| {
                platform
                    .swap_in(swap_slot, frame)
                    .map_err(|error| VmError::SwapIn { addr: va.as_u64(), error })
            }),
        )?;
        self.drop_swap_slot(swap_slot);
        Ok(())
    }

    /// The entry that named `swap_slot` is gone: the slot may be reused.
    pub(super) fn drop_swap_slot(&mut self, swap_slot: u64) {
        self.platform.swap_release(swap_slot);
        self.stats.swapped_pages -= 1;
    }
}
