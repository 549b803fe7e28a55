//! The physical frame allocator: a binary buddy allocator whose metadata is
//! kept entirely out of band.
//!
//! Memory is managed in naturally aligned blocks of 2^order frames, order
//! 0..=[`MAX_ORDER`] (4 KiB .. 1 GiB). Allocating order k takes the lowest
//! free block of the smallest order ≥ k and splits it down; freeing merges a
//! block with its buddy (`pfn ^ 2^order`) for as long as the buddy is free.
//!
//! Data structures (all in one caller-provided `&mut [u64]`, see
//! [`FrameAllocator::metadata_words`]):
//! - one 16-bit [`state::FrameState`] per frame in the span: kind, order,
//!   owner, "ever allocated";
//! - one [`HierBitmap`] per order, with a bit per possible block of that
//!   order, set when that block is free. Finding a free block is one
//!   `trailing_zeros` per bitmap level.
//!
//! Nothing is stored inside free frames, so a stray write into free memory
//! cannot corrupt the allocator, and every free is checked against the state
//! words: double frees, frees of frames never handed out, of reserved frames,
//! with the wrong order or the wrong owner are reported as [`FreeError`]s and
//! change nothing.
//!
//! Costs: allocate and free are O(MAX_ORDER × bitmap depth), independent of
//! how many frames are handed out and never walking the memory map.
//! Metadata is about 2.26 bytes per frame (0.055 %).
//!
//! Invariants (checked by [`FrameAllocator::verify`] in the tests):
//! 1. Every managed frame lies in exactly one block; a block's first frame is
//!    a `FreeHead` or `AllocatedHead` carrying its order, its other frames are
//!    `Interior`. Unmanaged frames are `Unavailable`.
//! 2. The order-k bitmap has bit b set iff a `FreeHead` of order k starts at
//!    frame `((base >> k) + b) << k`.
//! 3. No two free buddies of the same order coexist (they would have merged).
//! 4. `stats.total == stats.free + Σ stats.used_by`, and the counts match the
//!    blocks.
//! 5. A *parked* frame (a single free frame held off the bitmaps, in the
//!    recently-freed cache or the zeroed pool) is marked so in its state
//!    word and counted in `stats.free` and in `stats.cached` or
//!    `stats.zeroed`; the zeroed pool holds exactly the frames marked zeroed.

mod state;
mod stats;

pub use state::{FrameState, Kind};
pub use stats::{FrameStats, Owner};

use crate::addr::Pfn;
use crate::bitmap::HierBitmap;
use core::fmt;
use core::ops::Range;

/// Largest block: 2^18 frames = 1 GiB (a 1 GiB huge page).
pub const MAX_ORDER: u8 = 18;
const ORDERS: usize = MAX_ORDER as usize + 1;
const STATES_PER_WORD: usize = 4;

/// A block of 2^order frames handed out by [`FrameAllocator::allocate`].
///
/// Not `Clone`: giving it back to [`FrameAllocator::free`] consumes it, so a
/// double free needs a deliberate [`FrameBlock::from_raw`]. Code that keeps a
/// block elsewhere (a page-table entry holds only the frame number) uses
/// [`FrameBlock::into_raw`] / `from_raw`, and the allocator checks it.
#[must_use = "dropping a FrameBlock leaks its frames; give it back with FrameAllocator::free"]
#[derive(Debug, PartialEq, Eq)]
pub struct FrameBlock {
    start: Pfn,
    order: u8,
    owner: Owner,
}

impl FrameBlock {
    pub fn start(&self) -> Pfn {
        self.start
    }

    pub fn order(&self) -> u8 {
        self.order
    }

    pub fn owner(&self) -> Owner {
        self.owner
    }

    pub fn frames(&self) -> u64 {
        1 << self.order
    }

    /// Rebuilds a block from its parts; the allocator validates it on free.
    pub fn from_raw(start: Pfn, order: u8, owner: Owner) -> FrameBlock {
        FrameBlock { start, order, owner }
    }

    pub fn into_raw(self) -> (Pfn, u8, Owner) {
        (self.start, self.order, self.owner)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// No free block of this order or larger.
    OutOfFrames {
        order: u8,
    },
    OrderTooLarge {
        order: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// Outside the range of frames this allocator spans.
    NotManaged(Pfn),
    /// Inside the span but not usable memory (firmware, kernel image, holes).
    Reserved(Pfn),
    /// The frame was handed out before and has been freed since.
    DoubleFree(Pfn),
    /// The frame is free and has never been handed out.
    NeverAllocated(Pfn),
    /// The frame is inside an allocated block that starts elsewhere.
    InsideAllocation {
        pfn: Pfn,
        head: Pfn,
        order: u8,
    },
    WrongOrder {
        pfn: Pfn,
        allocated: u8,
        given: u8,
    },
    WrongOwner {
        pfn: Pfn,
        owner: Option<Owner>,
        given: Owner,
    },
}

/// A refused free: the error, and the block handed back unchanged.
#[derive(Debug, PartialEq, Eq)]
pub struct FreeFailure {
    pub error: FreeError,
    pub block: FrameBlock,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitError {
    StorageTooSmall {
        needed: usize,
        given: usize,
    },
    EmptySpan,
    OutsideSpan {
        range: Range<Pfn>,
    },
    /// A frame was already added (the ranges overlap).
    AlreadyAdded(Pfn),
}

/// A broken invariant found by [`FrameAllocator::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    pub what: &'static str,
    pub pfn: Pfn,
}

/// Most frames the recently-freed cache holds.
pub const CACHE_CAPACITY: usize = 64;

/// A LIFO of recently freed single frames in front of the buddy bitmaps
/// (Linux's per-CPU page lists; a per-CPU cache is what this becomes with
/// more than one CPU). A frame freed and soon allocated again skips the
/// buddy merge and split and the bitmap walk, and comes back while its
/// state word and contents are still in the CPU cache. Frames in it are
/// free (counted in `stats.free`, marked cached in their state word) but
/// in no bitmap; when it fills, its older half goes back to the buddy
/// bitmaps, and a larger allocation that finds nothing flushes it all.
struct FrameCache {
    frames: [u64; CACHE_CAPACITY],
    len: usize,
    /// 0 = disabled.
    capacity: usize,
}

/// A stack of free single frames whose memory is known to be zero
/// (Windows' zeroed page list): the kernel zeroes free frames while it is
/// idle ([`FrameAllocator::take_for_zeroing`], then
/// [`FrameAllocator::add_zeroed`]), and a fault or commit that needs a
/// zeroed page takes one ([`FrameAllocator::allocate_zeroed_frame`])
/// instead of zeroing on the critical path. Frames in it are free (counted
/// in `stats.free` and `stats.zeroed`, marked in their state word) but in
/// no bitmap; an ordinary allocation takes them only when the bitmaps
/// have nothing, and a larger one that finds nothing gives them all back
/// to the bitmaps. Its storage (one word per frame it may hold) is the
/// caller's, so the pool's size is a policy, not a constant.
struct ZeroedPool<'m> {
    frames: &'m mut [u64],
    len: usize,
    counters: ZeroedPoolCounters,
}

/// What the zeroed pool holds and how well it served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroedPoolCounters {
    /// Most frames it may hold (0: no pool).
    pub capacity: u64,
    /// Frames it holds now.
    pub held: u64,
    /// Zeroed-frame requests served from the pool.
    pub hits: u64,
    /// Zeroed-frame requests that found it empty (the caller zeroed).
    pub misses: u64,
    /// Frames zeroed into it so far.
    pub filled: u64,
}

impl fmt::Display for ZeroedPoolCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let asked = self.hits + self.misses;
        write!(
            f,
            "zeroed pool: {} of {} frames held, {} zeroed while idle; zeroed-page requests {} from the pool, {} zeroed on demand",
            self.held, self.capacity, self.filled, self.hits, self.misses
        )?;
        if asked > 0 {
            write!(f, " (hit rate {:.1} %)", self.hits as f64 * 100.0 / asked as f64)?;
        }
        Ok(())
    }
}

/// What an allocated frame contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    /// All zero (it came from the zeroed pool).
    Zeroed,
    /// Whatever its last owner left: the caller must zero it.
    Unknown,
}

/// See the module documentation.
pub struct FrameAllocator<'m> {
    /// First and one-past-last frame of the span.
    base: u64,
    end: u64,
    states: &'m mut [u64],
    free: [HierBitmap<'m>; ORDERS],
    cache: FrameCache,
    zeroed: ZeroedPool<'m>,
    stats: FrameStats,
}

/// Bits in the order-`order` bitmap for frames `base..end` (end > base).
fn bitmap_bits(base: u64, end: u64, order: u8) -> usize {
    (((end - 1) >> order) - (base >> order) + 1) as usize
}

/// Splits `range` into maximal naturally aligned blocks: (first frame, order).
fn aligned_blocks(range: Range<u64>) -> impl Iterator<Item = (u64, u8)> {
    let mut next = range.start;
    core::iter::from_fn(move || {
        if next >= range.end {
            return None;
        }
        let mut order = (next.trailing_zeros() as u8).min(MAX_ORDER);
        while next + (1 << order) > range.end {
            order -= 1;
        }
        let block = (next, order);
        next += 1 << order;
        Some(block)
    })
}

impl<'m> FrameAllocator<'m> {
    /// Storage words the metadata for `span` needs.
    pub fn metadata_words(span: Range<Pfn>) -> usize {
        let (base, end) = (span.start.number(), span.end.number());
        if end <= base {
            return 0;
        }
        let states = ((end - base) as usize).div_ceil(STATES_PER_WORD);
        let bitmaps: usize =
            (0..=MAX_ORDER).map(|k| HierBitmap::words_needed(bitmap_bits(base, end, k))).sum();
        states + bitmaps
    }

    /// An allocator spanning `span` with nothing in it yet: every frame is
    /// `Unavailable` until [`Self::add_free`] or [`Self::add_allocated`].
    pub fn new(span: Range<Pfn>, storage: &'m mut [u64]) -> Result<Self, InitError> {
        let (base, end) = (span.start.number(), span.end.number());
        if end <= base {
            return Err(InitError::EmptySpan);
        }
        let needed = Self::metadata_words(span);
        if storage.len() < needed {
            return Err(InitError::StorageTooSmall { needed, given: storage.len() });
        }
        let state_words = ((end - base) as usize).div_ceil(STATES_PER_WORD);
        let (states, mut rest) = storage.split_at_mut(state_words);
        let unavailable = u64::from(FrameState::UNAVAILABLE.0) * 0x0001_0001_0001_0001;
        states.fill(unavailable);
        let free = core::array::from_fn(|order| {
            let bits = bitmap_bits(base, end, order as u8);
            let (mine, tail) = core::mem::take(&mut rest).split_at_mut(HierBitmap::words_needed(bits));
            rest = tail;
            HierBitmap::new(bits, mine)
        });
        let cache = FrameCache { frames: [0; CACHE_CAPACITY], len: 0, capacity: 0 };
        let zeroed = ZeroedPool { frames: &mut [], len: 0, counters: ZeroedPoolCounters::default() };
        Ok(FrameAllocator { base, end, states, free, cache, zeroed, stats: FrameStats::default() })
    }

    pub fn span(&self) -> Range<Pfn> {
        Pfn::new(self.base)..Pfn::new(self.end)
    }

    pub fn stats(&self) -> &FrameStats {
        &self.stats
    }

    /// Adds usable frames as free memory.
    pub fn add_free(&mut self, range: Range<Pfn>) -> Result<(), InitError> {
        self.claim_for_init(&range)?;
        for (pfn, order) in aligned_blocks(range.start.number()..range.end.number()) {
            self.stats.total += 1 << order;
            self.stats.free += 1 << order;
            self.release(pfn, order);
        }
        Ok(())
    }

    /// Adds usable frames that are already in use by `owner` (for example the
    /// allocator's own metadata), so the statistics account for them.
    pub fn add_allocated(&mut self, range: Range<Pfn>, owner: Owner) -> Result<(), InitError> {
        self.claim_for_init(&range)?;
        for (pfn, order) in aligned_blocks(range.start.number()..range.end.number()) {
            self.stats.total += 1 << order;
            self.stats.used_by[owner as usize - 1] += 1 << order;
            self.set_state(pfn, self.state(pfn).allocated_head(order, owner));
        }
        Ok(())
    }

    /// Checks that `range` is inside the span and not added yet, and turns
    /// its frames from `Unavailable` into `Interior`.
    fn claim_for_init(&mut self, range: &Range<Pfn>) -> Result<(), InitError> {
        if range.start.number() < self.base || range.end.number() > self.end || range.start > range.end {
            return Err(InitError::OutsideSpan { range: range.clone() });
        }
        let frames = range.start.number()..range.end.number();
        if let Some(pfn) = frames.clone().find(|&p| self.state(p).kind() != Kind::Unavailable) {
            return Err(InitError::AlreadyAdded(Pfn::new(pfn)));
        }
        for pfn in frames {
            self.set_state(pfn, self.state(pfn).interior());
        }
        Ok(())
    }

    /// Puts a cache of up to `capacity` (≤ [`CACHE_CAPACITY`]) recently
    /// freed single frames in front of the buddy bitmaps; 0 turns it off
    /// (flushing it). Off by default, so tests of merging see every free
    /// merge at once.
    pub fn set_cache(&mut self, capacity: usize) {
        self.flush_cache(self.cache.len);
        self.cache.capacity = capacity.min(CACHE_CAPACITY);
    }

    /// Returns every cached frame to the buddy bitmaps (merging them).
    pub fn drain_cache(&mut self) {
        self.flush_cache(self.cache.len);
    }

    /// Releases the `count` oldest cached frames to the buddy bitmaps.
    ///
    /// Sorted first, so that a run of neighbours (what reclaim frees: its
    /// clock passes frames in address order) goes back as the aligned
    /// blocks it holds, each climbing the orders once, instead of frame by
    /// frame, each climb taking apart the block the one before it made.
    fn flush_cache(&mut self, count: usize) {
        self.cache.frames[..count].sort_unstable();
        let mut i = 0;
        while i < count {
            let first = self.cache.frames[i];
            let run = self.cache.frames[i..count]
                .iter()
                .zip(first..)
                .take_while(|&(&pfn, next)| pfn == next)
                .count();
            for (pfn, order) in aligned_blocks(first..first + run as u64) {
                for interior in pfn + 1..pfn + (1 << order) {
                    self.set_state(interior, self.state(interior).interior());
                }
                self.release(pfn, order);
            }
            i += run;
        }
        self.cache.frames.copy_within(count..self.cache.len, 0);
        self.cache.len -= count;
        self.stats.cached -= count as u64;
    }

    /// Gives the zeroed pool `storage`, one word per frame it may hold
    /// (an empty slice: no pool). A pool it had goes back to the bitmaps.
    pub fn set_zeroed_pool(&mut self, storage: &'m mut [u64]) {
        self.drain_zeroed();
        self.zeroed.counters.capacity = storage.len() as u64;
        self.zeroed.frames = storage;
    }

    /// The zeroed pool's size and hit counts.
    pub fn zeroed_pool(&self) -> ZeroedPoolCounters {
        ZeroedPoolCounters { held: self.zeroed.len as u64, ..self.zeroed.counters }
    }

    /// Returns every zeroed frame to the buddy bitmaps (merging them; their
    /// zeroes are forgotten).
    pub fn drain_zeroed(&mut self) {
        while let Some(pfn) = self.take_zeroed() {
            self.release(pfn, 0);
        }
    }

    /// Pops a frame off the zeroed pool, still counted free.
    fn take_zeroed(&mut self) -> Option<u64> {
        self.zeroed.len = self.zeroed.len.checked_sub(1)?;
        self.stats.zeroed -= 1;
        Some(self.zeroed.frames[self.zeroed.len])
    }

    /// A free frame for the caller to zero and give back with
    /// [`Self::add_zeroed`], owned by `Owner::Kernel` meanwhile; `None`
    /// when the pool is full or the only free frames are already in it.
    /// Taken from the bitmaps (the smallest free block, as any allocation),
    /// never from the recently-freed cache, whose frames are about to be
    /// reused as they are.
    pub fn take_for_zeroing(&mut self) -> Option<FrameBlock> {
        if self.zeroed_pool_full() {
            return None;
        }
        let (found_order, pfn) = self.find_free(0)?;
        self.split_off(pfn, found_order, 0);
        Some(self.hand_out(pfn, 0, Owner::Kernel))
    }

    fn zeroed_pool_full(&self) -> bool {
        self.zeroed.len == self.zeroed.frames.len()
    }

    /// Takes back a single frame whose memory the caller has zeroed, into
    /// the zeroed pool (or, when that is full, as an ordinary free). The
    /// caller's promise that the frame is zero is what makes
    /// [`Self::allocate_zeroed_frame`] correct; a block not handed out
    /// exactly so is refused as by [`Self::free`].
    pub fn add_zeroed(&mut self, block: FrameBlock) -> Result<(), FreeFailure> {
        if block.order != 0 || self.zeroed_pool_full() {
            return self.free(block);
        }
        if let Err(error) = self.check_free(&block) {
            return Err(FreeFailure { error, block });
        }
        self.stats.released(block.owner, 1);
        let pfn = block.start.number();
        self.set_state(pfn, self.state(pfn).zeroed());
        self.zeroed.frames[self.zeroed.len] = pfn;
        self.zeroed.len += 1;
        self.zeroed.counters.filled += 1;
        self.stats.zeroed += 1;
        Ok(())
    }

    /// A single frame for `owner`, from the zeroed pool when it has one
    /// ([`Contents::Zeroed`]), else as [`Self::allocate`] would
    /// ([`Contents::Unknown`]: the caller zeroes it).
    pub fn allocate_zeroed_frame(&mut self, owner: Owner) -> Result<(FrameBlock, Contents), AllocError> {
        if let Some(block) = self.allocate_from_zeroed_pool(owner) {
            return Ok((block, Contents::Zeroed));
        }
        self.zeroed.counters.misses += 1;
        Ok((self.allocate(0, owner)?, Contents::Unknown))
    }

    /// A single frame for `owner` from the zeroed pool only (a hit), or
    /// `None` when the pool is empty: for callers that want a zero frame
    /// only if it costs no zeroing now (fault-around).
    pub fn allocate_from_zeroed_pool(&mut self, owner: Owner) -> Option<FrameBlock> {
        let pfn = self.take_zeroed()?;
        self.zeroed.counters.hits += 1;
        Some(self.hand_out(pfn, 0, owner))
    }

    /// Hands out a naturally aligned block of 2^order frames to `owner`.
    pub fn allocate(&mut self, order: u8, owner: Owner) -> Result<FrameBlock, AllocError> {
        if order > MAX_ORDER {
            return Err(AllocError::OrderTooLarge { order });
        }
        let pfn = match self.take_cached(order) {
            Some(pfn) => pfn,
            None => self.take_from_bitmaps(order)?,
        };
        Ok(self.hand_out(pfn, order, owner))
    }

    /// Marks the block at `pfn`, already out of the free structures,
    /// allocated to `owner`, and counts it.
    fn hand_out(&mut self, pfn: u64, order: u8, owner: Owner) -> FrameBlock {
        self.set_state(pfn, self.state(pfn).allocated_head(order, owner));
        self.stats.allocated(owner, 1 << order);
        FrameBlock { start: Pfn::new(pfn), order, owner }
    }

    /// The most recently cached frame, for an order-0 request.
    fn take_cached(&mut self, order: u8) -> Option<u64> {
        if order != 0 || self.cache.len == 0 {
            return None;
        }
        self.cache.len -= 1;
        self.stats.cached -= 1;
        Some(self.cache.frames[self.cache.len])
    }

    /// The lowest free block of the smallest order ≥ `order`, split down to
    /// `order`; its head's state is the caller's to set. The zeroed pool is
    /// the last resort: a single frame comes from it as it is, a larger
    /// block only after the parked frames went back to the bitmaps.
    fn take_from_bitmaps(&mut self, order: u8) -> Result<u64, AllocError> {
        let found = self.find_free(order).or_else(|| {
            // Cached frames may merge into what is asked for.
            self.drain_cache();
            self.find_free(order)
        });
        let found = match found {
            None if order == 0 => return self.take_zeroed().ok_or(AllocError::OutOfFrames { order }),
            None => {
                self.drain_zeroed();
                self.find_free(order)
            }
            found => found,
        };
        let (found_order, pfn) = found.ok_or(AllocError::OutOfFrames { order })?;
        self.split_off(pfn, found_order, order);
        Ok(pfn)
    }

    /// Takes the free block at `pfn` of `found_order` out of the bitmaps,
    /// giving back its upper halves until an `order` block is left.
    fn split_off(&mut self, pfn: u64, mut found_order: u8, order: u8) {
        self.remove_free(pfn, found_order);
        while found_order > order {
            found_order -= 1;
            self.insert_free(pfn + (1 << found_order), found_order);
        }
    }

    /// The smallest free block of order ≥ `order`: (its order, first frame).
    fn find_free(&self, order: u8) -> Option<(u8, u64)> {
        (order..=MAX_ORDER)
            .find_map(|k| self.free[k as usize].first_set().map(|bit| (k, self.block_at(bit, k))))
    }

    /// Takes a block back. A block that was not handed out exactly so (see
    /// [`FreeError`]) is refused and handed back; nothing changes.
    pub fn free(&mut self, block: FrameBlock) -> Result<(), FreeFailure> {
        if let Err(error) = self.check_free(&block) {
            return Err(FreeFailure { error, block });
        }
        self.stats.released(block.owner, block.frames());
        let pfn = block.start.number();
        if block.order == 0 && self.cache.capacity > 0 {
            if self.cache.len == self.cache.capacity {
                self.flush_cache(self.cache.capacity.div_ceil(2));
            }
            self.set_state(pfn, self.state(pfn).cached());
            self.cache.frames[self.cache.len] = pfn;
            self.cache.len += 1;
            self.stats.cached += 1;
            return Ok(());
        }
        self.release(pfn, block.order);
        Ok(())
    }

    fn check_free(&self, block: &FrameBlock) -> Result<(), FreeError> {
        let pfn = block.start;
        if !(self.base..self.end).contains(&pfn.number()) {
            return Err(FreeError::NotManaged(pfn));
        }
        let state = self.state(pfn.number());
        let free_error = || {
            if state.was_ever_allocated() {
                FreeError::DoubleFree(pfn)
            } else {
                FreeError::NeverAllocated(pfn)
            }
        };
        match state.kind() {
            Kind::Unavailable => Err(FreeError::Reserved(pfn)),
            Kind::FreeHead => Err(free_error()),
            Kind::Interior => match self.block_containing(pfn) {
                Some((head, order, Kind::AllocatedHead)) => {
                    Err(FreeError::InsideAllocation { pfn, head, order })
                }
                _ => Err(free_error()),
            },
            Kind::AllocatedHead if state.order() != block.order => {
                Err(FreeError::WrongOrder { pfn, allocated: state.order(), given: block.order })
            }
            Kind::AllocatedHead if state.owner() != Some(block.owner) => {
                Err(FreeError::WrongOwner { pfn, owner: state.owner(), given: block.owner })
            }
            Kind::AllocatedHead => Ok(()),
        }
    }

    /// Returns the block at `pfn` of `order` to the free bitmaps, merging it
    /// with its buddy for as long as the buddy is free.
    fn release(&mut self, pfn: u64, order: u8) {
        let (mut pfn, mut order) = (pfn, order);
        self.set_state(pfn, self.state(pfn).interior());
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            let mergeable = buddy >= self.base && buddy + (1 << order) <= self.end && {
                let s = self.state(buddy);
                s.kind() == Kind::FreeHead && s.order() == order && !s.is_parked()
            };
            if !mergeable {
                break;
            }
            self.remove_free(buddy, order);
            self.set_state(buddy, self.state(buddy).interior());
            pfn = pfn.min(buddy);
            order += 1;
        }
        self.insert_free(pfn, order);
    }

    /// The block containing `pfn`: (head, order, kind), or `None` for a frame
    /// outside the span or not managed. Probes one candidate head per order.
    pub fn block_containing(&self, pfn: Pfn) -> Option<(Pfn, u8, Kind)> {
        if !(self.base..self.end).contains(&pfn.number())
            || self.state(pfn.number()).kind() == Kind::Unavailable
        {
            return None;
        }
        (0..=MAX_ORDER).find_map(|order| {
            let head = pfn.number() & !((1u64 << order) - 1);
            if head < self.base {
                return None;
            }
            let s = self.state(head);
            let is_head = matches!(s.kind(), Kind::FreeHead | Kind::AllocatedHead);
            (is_head && s.order() == order).then_some((Pfn::new(head), order, s.kind()))
        })
    }

    fn block_at(&self, bit: usize, order: u8) -> u64 {
        ((self.base >> order) + bit as u64) << order
    }

    fn bit_of(&self, pfn: u64, order: u8) -> usize {
        ((pfn >> order) - (self.base >> order)) as usize
    }

    fn insert_free(&mut self, pfn: u64, order: u8) {
        self.set_state(pfn, self.state(pfn).free_head(order));
        let bit = self.bit_of(pfn, order);
        self.free[order as usize].set(bit);
        self.stats.free_blocks[order as usize] += 1;
    }

    /// Clears the block's free bit; the caller sets its new state.
    fn remove_free(&mut self, pfn: u64, order: u8) {
        let bit = self.bit_of(pfn, order);
        self.free[order as usize].clear(bit);
        self.stats.free_blocks[order as usize] -= 1;
    }

    /// Calls `visit(first frame, order, owner)` for every allocated block,
    /// in frame order (the memory picture's owner of each frame). One pass
    /// over the state words: O(span), for people, not for hot paths.
    pub fn for_each_allocated(&self, visit: &mut dyn FnMut(Pfn, u8, Owner)) {
        let mut pfn = self.base;
        while pfn < self.end {
            let s = self.state(pfn);
            match (s.kind(), s.owner()) {
                (Kind::AllocatedHead, Some(owner)) => {
                    visit(Pfn::new(pfn), s.order(), owner);
                    pfn += 1 << s.order();
                }
                (Kind::FreeHead, _) => pfn += 1 << s.order(),
                _ => pfn += 1,
            }
        }
    }

    fn state(&self, pfn: u64) -> FrameState {
        let i = (pfn - self.base) as usize;
        FrameState((self.states[i / STATES_PER_WORD] >> (16 * (i % STATES_PER_WORD))) as u16)
    }

    fn set_state(&mut self, pfn: u64, state: FrameState) {
        let i = (pfn - self.base) as usize;
        let shift = 16 * (i % STATES_PER_WORD);
        let word = &mut self.states[i / STATES_PER_WORD];
        *word = (*word & !(0xffff << shift)) | (u64::from(state.0) << shift);
    }

    /// Checks every invariant in the module documentation; O(span). For tests.
    pub fn verify(&self) -> Result<(), InvariantViolation> {
        let fail = |what, pfn| Err(InvariantViolation { what, pfn: Pfn::new(pfn) });
        let mut counted = FrameStats::default();
        let mut pfn = self.base;
        while pfn < self.end {
            let s = self.state(pfn);
            let order = s.order();
            match s.kind() {
                Kind::Unavailable => {
                    pfn += 1;
                    continue;
                }
                Kind::Interior => return fail("interior frame outside any block", pfn),
                Kind::FreeHead | Kind::AllocatedHead if !Pfn::new(pfn).is_aligned(order) => {
                    return fail("misaligned block head", pfn)
                }
                _ => {}
            }
            let frames = 1u64 << order;
            if pfn + frames > self.end {
                return fail("block runs past the span", pfn);
            }
            if (pfn + 1..pfn + frames).any(|p| self.state(p).kind() != Kind::Interior) {
                return fail("block contains a non-interior frame", pfn);
            }
            let is_free = s.kind() == Kind::FreeHead;
            counted.total += frames;
            if s.is_parked() {
                if s.is_cached() && !self.cache.frames[..self.cache.len].contains(&pfn) {
                    return fail("frame marked cached is not in the cache", pfn);
                }
                counted.free += 1;
                counted.cached += u64::from(s.is_cached());
                counted.zeroed += u64::from(s.is_zeroed());
                pfn += 1;
                continue;
            }
            if self.free[order as usize].get(self.bit_of(pfn, order)) != is_free {
                return fail("free bitmap disagrees with the state word", pfn);
            }
            if is_free {
                counted.free += frames;
                counted.free_blocks[order as usize] += 1;
                let buddy = pfn ^ frames;
                let b = (buddy >= self.base && buddy < self.end).then(|| self.state(buddy));
                let merges =
                    |b: FrameState| b.kind() == Kind::FreeHead && b.order() == order && !b.is_parked();
                if order < MAX_ORDER && b.is_some_and(merges) {
                    return fail("two free buddies not merged", pfn);
                }
            } else {
                let Some(owner) = s.owner() else { return fail("allocated block without owner", pfn) };
                counted.used_by[owner as usize - 1] += frames;
            }
            pfn += frames;
        }
        // With the count above, every marked frame is in the pool.
        if let Some(&pfn) =
            self.zeroed.frames[..self.zeroed.len].iter().find(|&&p| !self.state(p).is_zeroed())
        {
            return fail("frame in the zeroed pool not marked zeroed", pfn);
        }
        let bits_set: u64 = (0..ORDERS).map(|k| self.count_set(k)).sum();
        if bits_set != counted.free_blocks.iter().sum::<u64>() {
            return fail("free bitmap has bits for no block", self.base);
        }
        if counted != self.stats {
            return fail("statistics disagree with the blocks", self.base);
        }
        Ok(())
    }

    fn count_set(&self, order: usize) -> u64 {
        (0..self.free[order].len()).filter(|&b| self.free[order].get(b)).count() as u64
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FreeError::NotManaged(p) => write!(f, "{p} is outside the memory this allocator manages"),
            FreeError::Reserved(p) => write!(f, "{p} is reserved memory, never handed out"),
            FreeError::DoubleFree(p) => write!(f, "double free of {p}"),
            FreeError::NeverAllocated(p) => write!(f, "{p} is free and was never handed out"),
            FreeError::InsideAllocation { pfn, head, order } => {
                write!(f, "{pfn} is inside the order-{order} block at {head}")
            }
            FreeError::WrongOrder { pfn, allocated, given } => {
                write!(f, "{pfn} was allocated as order {allocated}, freed as order {given}")
            }
            FreeError::WrongOwner { pfn, owner, given } => {
                write!(f, "{pfn} belongs to {:?}, freed by {given:?}", owner)
            }
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::OutOfFrames { order } => write!(f, "out of physical memory (order {order})"),
            AllocError::OrderTooLarge { order } => {
                write!(f, "order {order} is above the maximum {MAX_ORDER}")
            }
        }
    }
}

#[cfg(test)]
mod tests;
