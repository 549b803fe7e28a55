//! Page reclaim: when free frames run short, which pages leave memory.
//!
//! - [`Watermarks`] say when: below `low` reclaim starts (in the background
//!   between time slices, or directly in a fault that found memory short),
//!   and it goes on until `high`; below `min` only the kernel may allocate.
//! - [`ReverseMap`] says whose a frame is: frame → (space, page), one word
//!   per frame, kept out of band like the frame allocator's state words.
//!   Without fork or shared anonymous memory a frame has at most one
//!   mapping, so one word is enough.
//! - [`Clock`] says where to look: the hand sweeps the frames in order,
//!   and at each page the caller tests and clears the Accessed bit (in
//!   the page table) and asks the policy;
//! - [`hot_cold::HotCold`] says which page goes: a page used since the
//!   last pass stays; an unused cold page is evicted; an unused hot page
//!   stays unless hot pages are too many or memory is short (a loop larger
//!   than memory defeats a plain second chance, not this). What "evict"
//!   means is the caller's: the kernel writes the page to swap.
//! - [`direct::around`] says how often to try again: the bounded loop of
//!   direct reclaim around an attempt that ran out of memory.
//!
//! ```text
//!            hand ──►
//!   frames  [A][.][c][A][.][h][c]...      A: accessed → clear, keep
//!                                          c: cold, not accessed → evict
//!                                          h: hot, not accessed → keep (or demote)
//!                                          .: no process page → skip
//! ```

use crate::addr::{Pfn, UserAddr, PAGE_SIZE};
use crate::files::FilePage;
use crate::paging::USER_END;
use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::ops::Range;

/// Free-frame thresholds, in frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    /// Only the kernel allocates below this (the kernel's reserve).
    pub min: u64,
    /// Reclaim starts below this.
    pub low: u64,
    /// Reclaim stops at this.
    pub high: u64,
}

impl Watermarks {
    /// Scaled to memory size like Linux's (min grows with memory, low and
    /// high sit above it): min = total/64 within 128..1024 frames (512 KiB
    /// .. 4 MiB), low = min + total/128, high = min + total/64 (each at
    /// least 32 frames above the one below).
    pub fn for_total(total: u64) -> Watermarks {
        let min = (total / 64).clamp(128, 1024);
        let low = min + (total / 128).max(32);
        let high = low + (total / 128).max(32);
        Watermarks { min, low, high }
    }
}

/// Whose page a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageOwner {
    pub space: u32,
    pub page: UserAddr,
}

/// The largest space number a [`ReverseMap`] entry holds (28 bits: 35 hold
/// a user page number, and the top bit says "page cache").
pub const MAX_SPACE: u32 = (1 << SPACE_BITS) - 1;
const SPACE_BITS: u32 = 63 - PAGE_BITS;
/// Tag of an entry for a page-cache frame: the rest is the (file, page) it
/// caches, as [`FilePage::pack`] makes it (53 bits).
const CACHED: u64 = 1 << 63;
const PAGE_BITS: u32 = (USER_END / PAGE_SIZE).trailing_zeros();

/// frame → (space, page) for a process page, frame → (file, page) for a
/// page-cache page (which any number of spaces may map: reclaim finds
/// those through their file regions); see the module documentation. An
/// entry is `space << 35 | page number`, or [`CACHED`] and the file page,
/// 0 when the frame holds neither (no user page has number 0: page 0 is
/// never mapped).
pub struct ReverseMap {
    span: Range<Pfn>,
    entries: Vec<u64>,
}

impl ReverseMap {
    /// A map for every frame of `span`; fails, changing nothing, when the
    /// heap cannot hold it (8 bytes per frame: 0.2 % of memory).
    pub fn new(span: Range<Pfn>) -> Result<ReverseMap, TryReserveError> {
        let frames = (span.end.number() - span.start.number()) as usize;
        Ok(ReverseMap { entries: crate::try_table(frames, 0)?, span })
    }

    pub fn frames(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The frame at position `index` of the span (what a clock sweeps).
    pub fn frame_at(&self, index: u64) -> Pfn {
        Pfn::new(self.span.start.number() + index)
    }

    /// `frame`'s position in the span (the inverse of [`Self::frame_at`]).
    pub fn index_of(&self, frame: Pfn) -> u64 {
        self.index(frame) as u64
    }

    fn index(&self, frame: Pfn) -> usize {
        assert!(self.span.contains(&frame), "frame {frame:?} outside the reverse map");
        (frame.number() - self.span.start.number()) as usize
    }

    /// Records that `frame` now holds `owner`'s page.
    pub fn set(&mut self, frame: Pfn, owner: PageOwner) {
        assert!(owner.space <= MAX_SPACE, "space {} does not fit the reverse map", owner.space);
        let i = self.index(frame);
        self.entries[i] = (u64::from(owner.space) << PAGE_BITS) | (owner.page.as_u64() / PAGE_SIZE);
    }

    pub fn clear(&mut self, frame: Pfn) {
        let i = self.index(frame);
        self.entries[i] = 0;
    }

    /// Records that `frame` holds the cached file page `key`.
    pub fn set_cached(&mut self, frame: Pfn, key: FilePage) {
        let i = self.index(frame);
        self.entries[i] = CACHED | key.pack();
    }

    fn raw(&self, frame: Pfn) -> u64 {
        if self.span.contains(&frame) {
            self.entries[self.index(frame)]
        } else {
            0
        }
    }

    /// The file page `frame` caches, if it is a page-cache frame.
    pub fn get_cached(&self, frame: Pfn) -> Option<FilePage> {
        let raw = self.raw(frame);
        (raw & CACHED != 0).then(|| FilePage::unpack(raw & !CACHED))
    }

    /// The process page `frame` holds, if it holds one.
    pub fn get(&self, frame: Pfn) -> Option<PageOwner> {
        let raw = self.raw(frame);
        (raw != 0 && raw & CACHED == 0).then(|| PageOwner {
            space: (raw >> PAGE_BITS) as u32,
            page: UserAddr::new((raw & ((1 << PAGE_BITS) - 1)) * PAGE_SIZE),
        })
    }

    /// How many frames from position `index` on (at most `max`, not
    /// past the end) hold nothing: the clock passes over them in one step
    /// instead of visiting each (most frames of a machine with memory to
    /// spare hold no page).
    pub fn empty_run(&self, index: u64, max: u64) -> u64 {
        let start = index as usize;
        let end = start.saturating_add(max as usize).min(self.entries.len());
        self.entries.get(start..end).map_or(0, |run| run.iter().take_while(|&&e| e == 0).count() as u64)
    }

    /// Frames that hold a process page or a cached file page.
    pub fn mapped(&self) -> u64 {
        self.entries.iter().filter(|&&e| e != 0).count() as u64
    }
}

/// What the clock's visitor did with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accessed since the last pass: the bit was cleared, the page stays.
    Referenced,
    /// The page left memory; its frame is free.
    Evicted,
    /// Not a candidate (no process page, pinned, or not evictable now).
    Skipped,
    /// Eviction is impossible for now (swap full, device error): stop.
    Stop,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub scanned: u64,
    pub evicted: u64,
    pub referenced: u64,
    /// The visitor said [`Verdict::Stop`].
    pub stopped: bool,
}

/// The clock hand; see the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    hand: u64,
}

impl Clock {
    /// A clock with its hand at frame 0 (`const`, for statics).
    pub const fn new() -> Clock {
        Clock { hand: 0 }
    }

    pub fn hand(&self) -> u64 {
        self.hand
    }

    /// Moves the hand over frames `0..frames` (wrapping) until `want` pages
    /// were evicted, `max_scan` frames were visited, or the visitor says
    /// stop. Two full turns always suffice to find a victim when one
    /// exists: the first clears every Accessed bit it passes.
    pub fn sweep(
        &mut self,
        frames: u64,
        want: u64,
        max_scan: u64,
        visit: impl FnMut(u64) -> Verdict,
    ) -> Sweep {
        self.sweep_occupied(frames, want, max_scan, |_, _| 0, visit)
    }

    /// [`Self::sweep`] that asks `empty_run(index, n)` before each visit
    /// how many frames from `index` on (at most `n`, none past the last)
    /// hold nothing, and moves the hand past those without visiting them
    /// (they count as scanned). `empty_run` is asked exactly once each
    /// time the hand comes to a frame, frame 0 included: the place to see
    /// that a turn began.
    pub fn sweep_occupied(
        &mut self,
        frames: u64,
        want: u64,
        max_scan: u64,
        mut empty_run: impl FnMut(u64, u64) -> u64,
        mut visit: impl FnMut(u64) -> Verdict,
    ) -> Sweep {
        let mut sweep = Sweep::default();
        if frames == 0 {
            return sweep;
        }
        while sweep.evicted < want && sweep.scanned < max_scan {
            let index = self.hand % frames;
            let empty = empty_run(index, (frames - index).min(max_scan - sweep.scanned));
            if empty > 0 {
                self.hand = (index + empty) % frames;
                sweep.scanned += empty;
                continue;
            }
            self.hand = (index + 1) % frames;
            sweep.scanned += 1;
            match visit(index) {
                Verdict::Referenced => sweep.referenced += 1,
                Verdict::Evicted => sweep.evicted += 1,
                Verdict::Skipped => {}
                Verdict::Stop => {
                    sweep.stopped = true;
                    break;
                }
            }
        }
        sweep
    }
}

pub mod direct;
pub mod hot_cold;
pub mod sim;
#[cfg(test)]
mod tests;
