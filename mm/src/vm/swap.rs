//! Pages leaving for swap and coming back: the address-space half of
//! reclaim. The swap device is the platform's ([`Platform::swap_out`]);
//! which page goes is the clock's (`crate::reclaim`). Life cycle of an
//! anonymous page's entry:
//!
//! ```text
//!  DemandZero ──fault──► Present(A=1) ──clock pass──► Present(A=0) ──clock pass──► Swapped{slot}
//!      ▲                      ▲   └──────── touched: A=1 again ◄┘  │  │                ▲  │
//!      └─────────── clock pass, the frame reads all zero: no write ◄┘  └─ write ───────┘  │
//!                             │                                       D=0, copy kept:   │
//!                             │                                       no write ─────────┘
//!                             └──── fault: read slot; keep it as the copy (SC) or free it ◄┘
//! ```
//!
//! A page the clock chooses whose frame reads all zero (never written, or
//! mapped ahead by fault-around and never touched, or zeroed by its
//! program) needs no slot: it goes back to `DemandZero`, which reads the
//! same, and its frame is freed without a write (Linux's swap "zeromap"
//! does this since 6.12). [`Platform::is_zero_page`] looks; a frame with
//! data stops the look at its first nonzero word.
//!
//! A swapped-in page may keep its slot ([`Platform::settle_swap_in`]: the
//! kernel's swap cache keeps it while swap is at most half full), and its
//! entry is marked swap-cached (SC). If the clock chooses it again while
//! its dirty bit is still clear, the slot still holds exactly its bytes:
//! [`AddressSpace::evict_clean`] points the entry back at that slot and
//! frees the frame with no write. A page that was written goes to a new
//! slot like any other, and the platform releases the stale copy's slot
//! when the frame is freed. docs/swap.md weighs the slots this holds.

use super::walk::{fresh_anonymous, into_entry, page_block, Slot};
use super::{AddressSpace, Platform, VmError, USER_END, USER_START};
use crate::addr::{Pfn, UserAddr, PAGE_SIZE};
use crate::pte::{Mapping, PageKind, Prot, PteState};
use crate::reclaim::Verdict;

/// What [`AddressSpace::age_or_choose`] made of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Accessed since the last pass: its bit is cleared, it stays.
    Referenced,
    /// Not a page reclaim may take (or no longer in that frame).
    Skipped,
    /// To be written out; unchanged until [`AddressSpace::finish_evictions`].
    Chosen(Chosen),
}

/// A page [`AddressSpace::age_or_choose`] chose, with where its entry is,
/// so that finishing the eviction reads the entry again without walking
/// the tables a second time. Valid while the space's tables stay as they
/// are: nothing may run in the space between the choice and the finish
/// (the contract of `age_or_choose`), and reclaim itself only rewrites
/// leaf entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chosen {
    va: UserAddr,
    frame: Pfn,
    slot: Slot,
    /// The entry as it was chosen: what [`AddressSpace::evict_clean`]
    /// asks of it right after, with nothing run in between, needs no
    /// second read.
    mapping: Mapping,
}

impl Chosen {
    pub fn page(&self) -> UserAddr {
        self.va
    }

    pub fn frame(&self) -> Pfn {
        self.frame
    }
}

/// Most pages [`AddressSpace::finish_evictions`] takes at once.
pub const MAX_FINISHED: usize = 32;

/// Most pages a swap-in reads after the faulting one (swap-in read-ahead,
/// Linux's VMA-based swap read-ahead: the pages after it in the address
/// space, wherever their slots are): 7, so that when their slots follow
/// one another one read fills a request of 8 pages. Only a fault that
/// continues a sequential run of swap-ins reads ahead, 2, then 4, then 7
/// pages (the detector fault-around uses, `vm/fault_around.rs`). Each run
/// of consecutive slots among them is one request, and the platform has
/// them all on their way at once. Pages read ahead come in clean, and the
/// swap cache keeps their slots while swap is at most half full: one
/// nobody touches costs a read and a frame, never a write.
pub const MAX_SWAP_READ_AHEAD: u32 = 7;

/// Most pages one swap-in reads: the faulting one and those ahead.
const RUN: usize = 1 + MAX_SWAP_READ_AHEAD as usize;

/// The pages of one swap-in, in address order from the faulting one:
/// each page's entry and the protection it kept, its slot and its new
/// frame.
struct SwapRun {
    entries: [(Slot, Prot); RUN],
    slots: [u64; RUN],
    frames: [Pfn; RUN],
    len: usize,
}

impl<P: Platform> AddressSpace<P> {
    /// Reclaim's step on the page at `va`, which the reverse map says is in
    /// `frame`: if the page was accessed since the last pass, clear the bit
    /// (and flush, so the next access sets it again) and keep it; otherwise
    /// write it to swap, leave `Swapped { slot }` in its entry, flush, and
    /// free the frame. Pages that are not anonymous, are pinned, or no
    /// longer in `frame` are skipped. [`Verdict::Stop`] when swap is full
    /// or failing: nothing changed.
    pub fn age_or_evict(&mut self, va: UserAddr, frame: Pfn) -> Verdict {
        let chosen = match self.age_or_choose(va, frame) {
            Choice::Chosen(chosen) => chosen,
            Choice::Referenced => return Verdict::Referenced,
            Choice::Skipped => return Verdict::Skipped,
        };
        if self.evict_clean(chosen).is_some() || self.drop_if_zero(chosen) {
            return Verdict::Evicted;
        }
        // Written out while the page is still mapped: on one CPU nothing
        // runs between the copy and the entry change below. (With several
        // CPUs the entry would change and be flushed first, as Linux's
        // try_to_unmap does before pageout.)
        match self.platform.swap_out(frame) {
            Ok(swap_slot) if self.finish_evictions(&[(chosen, swap_slot)]) == 1 => Verdict::Evicted,
            Ok(swap_slot) => {
                self.platform.swap_release(swap_slot);
                Verdict::Skipped
            }
            Err(_) => Verdict::Stop,
        }
    }

    /// The first half of [`Self::age_or_evict`], for a caller that writes
    /// several chosen pages out in one request: an accessed page loses its
    /// Accessed bit and stays ([`Choice::Referenced`]); an evictable page
    /// that was not accessed is [`Choice::Chosen`] and left exactly as it
    /// is. The caller writes its frame to swap and then calls
    /// [`Self::finish_evictions`], with nothing run in this space between.
    pub fn age_or_choose(&mut self, va: UserAddr, frame: Pfn) -> Choice {
        let Some(slot) = self.leaf(va).ok().flatten() else { return Choice::Skipped };
        let Some(mapping) = self.evictable(slot, va, frame) else { return Choice::Skipped };
        if mapping.accessed {
            self.write(slot, PteState::Present(Mapping { accessed: false, ..mapping }));
            self.platform.flush(va);
            return Choice::Referenced;
        }
        Choice::Chosen(Chosen { va, frame, slot, mapping })
    }

    /// The second half, for up to [`MAX_FINISHED`] chosen pages of this
    /// space at once: each page's contents are in its swap slot now; its
    /// entry becomes `Swapped { slot }` and is flushed, and the frames are
    /// freed together ([`Platform::free_pages`]). A page that is no longer
    /// an unaccessed, evictable page in its frame is left as it is (its
    /// slot is still the caller's). Returns a bit per page, set when it
    /// was evicted.
    pub fn finish_evictions(&mut self, pages: &[(Chosen, u64)]) -> u32 {
        assert!(pages.len() <= MAX_FINISHED, "at most {MAX_FINISHED} evictions at once");
        let mut freed = [const { None }; MAX_FINISHED];
        let (mut count, mut done) = (0, 0u32);
        for (i, &(chosen, swap_slot)) in pages.iter().enumerate() {
            let Some(mapping) = self.still_chosen(chosen) else { continue };
            let swapped = PteState::Swapped { slot: swap_slot, prot: mapping.prot };
            freed[count] = self.unmap_keeping_frame(chosen.slot, chosen.va, mapping, swapped);
            count += 1;
            done |= 1 << i;
        }
        self.platform.free_pages(freed.into_iter().flatten());
        self.stats.swapped_pages += count as u64;
        self.stats.swap_outs += count as u64;
        done
    }

    /// Finishes a chosen page's eviction without swap when its frame reads
    /// all zero: the entry goes back to `DemandZero` (with the page's
    /// protection), is flushed, and the frame is freed. False, and the page
    /// left for swap, when the frame holds data or the page is no longer an
    /// unaccessed, evictable page in that frame. Like
    /// [`Self::finish_evictions`], nothing may have run in the space since
    /// the page was chosen.
    pub fn drop_if_zero(&mut self, chosen: Chosen) -> bool {
        if !self.platform.is_zero_page(chosen.frame) {
            return false;
        }
        let Some(mapping) = self.still_chosen(chosen) else { return false };
        self.unmap(chosen.slot, chosen.va, mapping, PteState::DemandZero { prot: mapping.prot });
        self.stats.zero_pages_dropped += 1;
        true
    }

    /// Finishes a chosen page's eviction with no write when it came back
    /// from swap and was not written since (swap-cached, dirty bit clear)
    /// and the platform still keeps its copy: the entry becomes
    /// `Swapped { slot }` for that slot, is flushed, and the frame is
    /// freed. Returns the slot (for the caller's eviction stamp); `None`,
    /// the page left as it is, otherwise. Like [`Self::finish_evictions`],
    /// nothing may have run in the space since the page was chosen.
    pub fn evict_clean(&mut self, chosen: Chosen) -> Option<u64> {
        // Most pages chosen were never swapped in: no copy to go to, and
        // no need to read the entry again to learn it.
        if !chosen.mapping.swap_cached || chosen.mapping.dirty {
            return None;
        }
        let mapping = self.still_chosen(chosen).filter(|m| m.swap_cached && !m.dirty)?;
        let swap_slot = self.platform.take_swap_copy(chosen.frame)?;
        self.unmap(
            chosen.slot,
            chosen.va,
            mapping,
            PteState::Swapped { slot: swap_slot, prot: mapping.prot },
        );
        self.stats.swapped_pages += 1;
        self.stats.clean_evictions += 1;
        Some(swap_slot)
    }

    /// The chosen page's mapping if it is still what was chosen: an
    /// unaccessed, evictable page in its frame.
    fn still_chosen(&self, chosen: Chosen) -> Option<Mapping> {
        debug_assert!(
            self.leaf(chosen.va).ok().flatten() == Some(chosen.slot),
            "a chosen page's table moved"
        );
        self.evictable(chosen.slot, chosen.va, chosen.frame).filter(|m| !m.accessed)
    }

    /// The mapping at `slot` (the entry of `va`), if it is an anonymous,
    /// unpinned page in `frame`.
    fn evictable(&self, slot: Slot, va: UserAddr, frame: Pfn) -> Option<Mapping> {
        match self.read(slot, va).ok()? {
            PteState::Present(m) if m.frame == frame && m.kind == PageKind::Anonymous && !m.pinned => Some(m),
            _ => None,
        }
    }

    /// Brings a swapped page back, and when the fault continues a
    /// sequential run of swap-ins, reads ahead the pages after it whose
    /// entries name the slots after its slot (see [`MAX_SWAP_READ_AHEAD`]).
    /// Returns the pages read ahead.
    pub(super) fn map_swapped(&mut self, va: UserAddr, swap_slot: u64, prot: Prot) -> Result<u32, VmError> {
        let window = self.sequential_swap_ins.window_for(va);
        let ahead = self.map_swapped_run(va, swap_slot, prot, window)?;
        self.sequential_swap_ins.mapped(va, ahead);
        Ok(ahead)
    }

    /// The page at `va` from `swap_slot`, and up to `window` pages after
    /// it, in the same leaf table, whose entries say `Swapped` (their
    /// slots wherever reclaim put them: Linux's VMA-based read-ahead):
    /// new frames, filled by the platform, one read per run of
    /// consecutive slots, all on their way at once; each page read is
    /// mapped clean with the protection its entry kept, and the platform
    /// keeps its slot as its copy (marked swap-cached) or frees it. Only
    /// the faulting page can fail the call; a page ahead whose read failed
    /// stays in swap. Returns the pages read ahead.
    fn map_swapped_run(
        &mut self,
        va: UserAddr,
        swap_slot: u64,
        prot: Prot,
        window: u32,
    ) -> Result<u32, VmError> {
        let entry = self.leaf_or_create(va)?;
        self.check_quota(PAGE_SIZE)?;
        let block = self.platform.alloc_page(va, false).ok_or(VmError::OutOfMemory)?;
        let frame = into_entry(block);
        let mut run =
            SwapRun { entries: [(entry, prot); RUN], slots: [swap_slot; RUN], frames: [frame; RUN], len: 1 };
        self.extend_swap_run(&mut run, va, window);
        let (slots, frames) = (&run.slots[..run.len], &run.frames[..run.len]);
        let read = match self.platform.swap_in_pages(slots, frames) {
            Ok(read) => read,
            Err(error) => {
                self.platform.free_pages(frames.iter().map(|&frame| page_block(frame)));
                return Err(VmError::SwapIn { addr: va.as_u64(), error });
            }
        };
        let unread = (0..run.len).filter(|k| read & (1 << k) == 0);
        self.platform.free_pages(unread.map(|k| page_block(run.frames[k])));
        for k in (0..run.len).filter(|k| read & (1 << k) != 0) {
            let ((entry, prot), slot, frame) = (run.entries[k], run.slots[k], run.frames[k]);
            // Not present a moment ago, so no TLB entry needs a flush.
            let swap_cached = self.platform.settle_swap_in(frame, slot);
            self.write(entry, PteState::Present(Mapping { swap_cached, ..fresh_anonymous(frame, prot) }));
        }
        let mapped = read.count_ones();
        let ahead = mapped - 1;
        self.stats.resident_pages += u64::from(mapped);
        self.stats.swapped_pages -= u64::from(mapped);
        self.stats.faults.read_ahead += u64::from(ahead);
        Ok(ahead)
    }

    /// Adds to `run` (the page at `va`) up to `window` pages after it, in
    /// the same leaf table, while their entries say `Swapped`, each with a
    /// frame of its own. A page that is not in swap, would pass the RAM
    /// quota, or finds no frame, ends the run.
    fn extend_swap_run(&mut self, run: &mut SwapRun, va: UserAddr, window: u32) {
        for (entry, page) in run.entries[0].0.following(va, window as usize) {
            let k = run.len;
            let Ok(PteState::Swapped { slot, prot }) = self.read(entry, page) else { return };
            if self.check_quota((k as u64 + 1) * PAGE_SIZE).is_err() {
                return;
            }
            let Some(block) = self.platform.alloc_page(page, false) else { return };
            (run.entries[k], run.slots[k], run.frames[k], run.len) =
                ((entry, prot), slot, into_entry(block), k + 1);
        }
    }

    /// Brings every page of the space that is in swap back into RAM, as
    /// faults would (read-ahead included, each page mapped clean with the
    /// protection its entry kept): the address-space half of `swapoff`.
    /// Adds the pages brought in to `brought_in` as it goes. On failure
    /// (no frame, the RAM quota, the disk) the pages brought in so far
    /// stay, and a second call goes on where this one stopped.
    pub fn swap_in_all(&mut self, brought_in: &mut u64) -> Result<(), VmError> {
        if self.stats.swapped_pages == 0 {
            return Ok(());
        }
        let all = UserAddr::new(USER_START)..UserAddr::new(USER_END);
        self.walk_leaves(&all, &mut |s, entry, va| {
            if let PteState::Swapped { slot, prot } = s.read(entry, va)? {
                *brought_in += 1 + u64::from(s.map_swapped(va, slot, prot)?);
            }
            Ok(())
        })
    }

    /// The entry that named `swap_slot` is gone: the slot may be reused.
    pub(super) fn drop_swap_slot(&mut self, swap_slot: u64) {
        self.platform.swap_release(swap_slot);
        self.stats.swapped_pages -= 1;
    }
}
