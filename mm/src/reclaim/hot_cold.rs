//! Which pages the clock keeps: hot and cold pages, after CLOCK-Pro (Jiang,
//! Chen and Zhang, USENIX 2005) and LIRS.
//!
//! A plain clock keeps what was used recently, so a loop over more pages
//! than memory holds evicts every page just before its next use: every
//! reference faults (4.88x Belady's optimal in `make bench`). A policy that
//! resists it must keep some pages *because of how often* they come back,
//! not how recently. This one sorts resident pages into two classes:
//!
//! - **hot** pages, which came back soon after their last use, are kept
//!   while they go on being used; an unused hot page is *demoted* to cold
//!   only when there are too many hot pages, and only if it is among the
//!   longest unused (its age at least 3/4 of the oldest hot page's seen in
//!   the hand's last turn: the clock's stand-in for "the bottom of LIRS's
//!   stack");
//! - **cold** pages, new or demoted, have one turn of the hand to be used
//!   again (then they are *promoted*) or are evicted. At least 1/32 of
//!   resident pages are kept cold ([`COLD_SHARE`]), and at least the
//!   caller's `min_cold` (the kernel asks for enough to feed its reclaim
//!   batches: a cold page needs two visits of the hand before it can go),
//!   so new pages have room to prove themselves and eviction always has
//!   candidates.
//!
//! A page that faults back in from swap is a *refault*: its eviction
//! stamp (the eviction clock when it left, kept with its swap slot, as
//! Linux keeps a shadow entry) gives its refault distance, the evictions
//! since. If that distance plus one turn (how long it was cold before it
//! left) is under half the oldest hot page's age, it would have been hot
//! had it stayed: it comes back hot.
//!
//! ```text
//!              admit (hot while hot < limit)        refault, distance < oldest hot age / 2
//!   fault ──► cold ──used again, next turn──► hot ◄─────────────────────────────── swap
//!              │  ▲                           │                                     ▲
//!              │  └──demoted: hot > limit, unused, among the oldest──┘             │
//!              └──unused for a turn──► evicted (stamp with the slot) ───────────────┘
//! ```
//!
//! When memory is short and the cold pages run out (a sweep has gone a
//! whole turn without finding enough), unused hot pages are evicted as
//! cold ones are, so two turns always find every unused page; scan
//! resistance is a preference, never a reason to fail.
//!
//! The policy sees only what the kernel can see: the Accessed bit at each
//! visit of the hand, faults, and evictions. Time is the eviction clock
//! (`now`), so a quiet system does not age its pages. State is out of
//! band, indexed like the reverse map: one flag byte and one 32-bit stamp
//! per frame (5 bytes per 4 KiB frame, 0.12 % of memory).

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// At least one resident page in this many is kept cold.
pub const COLD_SHARE: u64 = 32;

const RESIDENT: u8 = 1;
const HOT: u8 = 2;
/// Admitted and not yet visited: the Accessed bit the hand finds was set by
/// the fault's own retried access, not by a second use.
const FRESH: u8 = 4;

/// What the hand does with the page under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Keep,
    Evict,
}

/// What the policy has done; for meminfo and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HotColdStats {
    pub resident: u64,
    pub hot: u64,
    /// Cold pages used again while resident.
    pub promoted: u64,
    /// Pages that came back from swap hot (short refault distance).
    pub refaulted_hot: u64,
    /// Pages that came back from swap cold.
    pub refaulted_cold: u64,
    pub demoted: u64,
    /// Hot pages evicted because no cold page was left to evict.
    pub hot_evicted: u64,
}

/// The policy's state; see the module documentation. Frames are indexes
/// into the reclaimable span, as [`super::ReverseMap`] numbers them.
pub struct HotCold {
    flags: Vec<u8>,
    /// The eviction clock when the hand last saw the page used (or when
    /// it was admitted).
    last_used: Vec<u32>,
    /// Evictions so far (wrapping; only differences are read).
    now: u32,
    turn_began_at: u32,
    /// Evictions during the hand's last whole turn: how long a cold page
    /// waits for its second chance, in evictions.
    turn_length: u32,
    oldest_hot_this_turn: u32,
    /// The largest age of a hot page the hand saw in its last whole turn.
    oldest_hot: u32,
    /// Cold pages kept at least (when that many are resident).
    min_cold: u64,
    /// Frames pages may occupy (resident pages and free frames), as the
    /// caller last said; see [`Self::set_capacity`].
    capacity: u64,
    stats: HotColdStats,
}

impl HotCold {
    /// State for `frames` frames, keeping at least `min_cold` pages cold
    /// (see the module documentation); fails, changing nothing, when the
    /// heap cannot hold it.
    pub fn new(frames: u64, min_cold: u64) -> Result<HotCold, TryReserveError> {
        Ok(HotCold {
            flags: crate::try_table(frames as usize, 0)?,
            last_used: crate::try_table(frames as usize, 0)?,
            now: 0,
            turn_began_at: 0,
            turn_length: 0,
            oldest_hot_this_turn: 0,
            oldest_hot: 0,
            min_cold: min_cold.max(1),
            capacity: 0,
            stats: HotColdStats::default(),
        })
    }

    pub fn stats(&self) -> HotColdStats {
        self.stats
    }

    /// The eviction clock: what an evicted page's stamp is.
    pub fn now(&self) -> u32 {
        self.now
    }

    pub fn is_hot(&self, index: u64) -> bool {
        self.flags[index as usize] & HOT != 0
    }

    /// Frames pages may occupy now: resident pages and free frames. The
    /// hot limit is a share of this, not of the resident pages alone, so
    /// that reclaim freeing a batch (and faults filling it again) does not
    /// move the limit: if it did, every batch would demote old hot pages
    /// and the next faults would come in hot in their place, which is
    /// LRU again.
    pub fn set_capacity(&mut self, frames: u64) {
        self.capacity = frames;
    }

    /// How many hot pages there may be before the hand demotes.
    fn hot_limit(&self) -> u64 {
        let room = self.capacity.max(self.stats.resident);
        room - (room / COLD_SHARE).max(self.min_cold).min(room)
    }

    fn set_hot(&mut self, i: usize, hot: bool) {
        if hot {
            self.flags[i] |= HOT;
            self.stats.hot += 1;
        } else {
            self.flags[i] &= !HOT;
            self.stats.hot -= 1;
        }
    }

    /// A page arrived in frame `index`. While hot pages are fewer than the
    /// limit (memory filling up, or after pages left) it starts hot.
    pub fn admit(&mut self, index: u64) {
        self.remove(index);
        let i = index as usize;
        self.flags[i] = RESIDENT | FRESH;
        self.last_used[i] = self.now;
        self.stats.resident += 1;
        if self.stats.hot < self.hot_limit() {
            self.set_hot(i, true);
        }
    }

    /// The page admitted in frame `index` came back from swap, where it
    /// went at eviction clock `evicted_at`: hot if it came back soon
    /// enough (see the module documentation).
    pub fn refaulted(&mut self, index: u64, evicted_at: u32) {
        let i = index as usize;
        if self.flags[i] & (RESIDENT | HOT) != RESIDENT {
            return;
        }
        let reuse = self.now.wrapping_sub(evicted_at).saturating_add(self.turn_length);
        if reuse < self.oldest_hot / 2 {
            self.set_hot(i, true);
            self.stats.refaulted_hot += 1;
        } else {
            self.stats.refaulted_cold += 1;
        }
    }

    /// Frame `index` holds no page any more (evicted, unmapped or freed).
    pub fn remove(&mut self, index: u64) {
        let i = index as usize;
        if self.flags[i] & RESIDENT != 0 {
            self.stats.resident -= 1;
            if self.flags[i] & HOT != 0 {
                self.stats.hot -= 1;
            }
        }
        self.flags[i] = 0;
    }

    /// The hand is at frame 0 again: one turn is over.
    pub fn turn_began(&mut self) {
        self.turn_length = self.now.wrapping_sub(self.turn_began_at);
        self.turn_began_at = self.now;
        self.oldest_hot = self.oldest_hot_this_turn;
        self.oldest_hot_this_turn = 0;
    }

    /// The hand is over frame `index`, whose page was `referenced` since
    /// the last visit (the caller has cleared the bit). `short`: this
    /// sweep has gone a whole turn without finding the pages it wants, so
    /// an unused hot page goes too. Frames without a page are kept.
    pub fn visit(&mut self, index: u64, referenced: bool, short: bool) -> Step {
        let i = index as usize;
        let flags = self.flags[i];
        if flags & RESIDENT == 0 {
            return Step::Keep;
        }
        self.flags[i] &= !FRESH;
        if referenced {
            self.last_used[i] = self.now;
            if flags & (HOT | FRESH) == 0 {
                self.set_hot(i, true);
                self.stats.promoted += 1;
            }
            return Step::Keep;
        }
        if flags & HOT != 0 && !self.demote_or_evict_hot(i, short) {
            return Step::Keep;
        }
        self.now = self.now.wrapping_add(1);
        Step::Evict
    }

    /// An unused hot page under the hand: demoted if there are too many
    /// and it is among the oldest; evicted (true) when memory is `short`.
    fn demote_or_evict_hot(&mut self, i: usize, short: bool) -> bool {
        let age = self.now.wrapping_sub(self.last_used[i]);
        self.oldest_hot_this_turn = self.oldest_hot_this_turn.max(age);
        let oldest = u64::from(age) * 4 >= u64::from(self.oldest_hot) * 3;
        if short || (self.stats.hot > self.hot_limit() && oldest) {
            self.set_hot(i, false);
            self.stats.demoted += 1;
        }
        if short {
            self.stats.hot_evicted += 1;
        }
        short
    }
}
