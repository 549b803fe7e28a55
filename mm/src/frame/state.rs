//! The 16-bit state the frame allocator keeps for every frame it spans.
//!
//! ```text
//!  15        8   7    6  5   4       0
//! ┌───────────┬─────┬──────┬──────────┐
//! │   owner   │ hist│ kind │  order   │
//! └───────────┴─────┴──────┴──────────┘
//! ```
//!
//! - kind: `Interior` (inside a block whose head is another frame),
//!   `FreeHead`, `AllocatedHead` or `Unavailable` (not managed memory:
//!   reserved, a hole, or outside the usable map).
//! - order: the block's size as log2 frames, meaningful on heads. Two
//!   values no real order reaches mark a free frame *parked* off the buddy
//!   bitmaps: all ones, held in the recently-freed cache (see `FrameCache`);
//!   all ones but the lowest bit, held in the zeroed pool (see `ZeroedPool`).
//! - hist: the frame has been the head of an allocation at least once, which
//!   tells a double free from a free of a frame that was never handed out.
//! - owner: who holds an allocated block, meaningful on allocated heads.
//!
//! Only block heads carry a meaningful order and owner, so splitting and
//! merging touch two entries per step, never a whole block.

use super::Owner;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Interior,
    FreeHead,
    AllocatedHead,
    Unavailable,
}

const ORDER_MASK: u16 = 0x1f;
const KIND_SHIFT: u16 = 5;
const KIND_MASK: u16 = 0b11 << KIND_SHIFT;
const HISTORY_BIT: u16 = 1 << 7;
const OWNER_SHIFT: u16 = 8;
/// The order field's value for a cached frame (no real order is this big).
const CACHED_ORDER: u8 = ORDER_MASK as u8;
/// The order field's value for a frame in the zeroed pool.
const ZEROED_ORDER: u8 = CACHED_ORDER - 1;

/// One frame's state word; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameState(pub u16);

const _: () = assert!(super::MAX_ORDER < ZEROED_ORDER);
const _: () = assert!((Owner::COUNT as u16) < (1 << (16 - OWNER_SHIFT)));

impl FrameState {
    pub const UNAVAILABLE: FrameState = FrameState(3 << KIND_SHIFT);

    pub fn kind(self) -> Kind {
        match (self.0 & KIND_MASK) >> KIND_SHIFT {
            0 => Kind::Interior,
            1 => Kind::FreeHead,
            2 => Kind::AllocatedHead,
            _ => Kind::Unavailable,
        }
    }

    /// The block's order (0 for a parked frame).
    pub fn order(self) -> u8 {
        match (self.0 & ORDER_MASK) as u8 {
            CACHED_ORDER | ZEROED_ORDER => 0,
            order => order,
        }
    }

    /// A free frame held off the buddy bitmaps, in the cache or the zeroed
    /// pool: it merges with nothing until it is given back to them.
    pub fn is_parked(self) -> bool {
        self.kind() == Kind::FreeHead && (self.0 & ORDER_MASK) as u8 >= ZEROED_ORDER
    }

    /// A free frame in the zeroed pool: its memory is known to be zero.
    pub fn is_zeroed(self) -> bool {
        self.kind() == Kind::FreeHead && (self.0 & ORDER_MASK) as u8 == ZEROED_ORDER
    }

    pub fn zeroed(self) -> FrameState {
        self.with(1, ZEROED_ORDER, 0, self.was_ever_allocated())
    }

    /// A free frame held in the allocator's cache of recently freed frames:
    /// free, but in no bitmap and merged with nothing until flushed.
    pub fn is_cached(self) -> bool {
        self.kind() == Kind::FreeHead && (self.0 & ORDER_MASK) as u8 == CACHED_ORDER
    }

    pub fn cached(self) -> FrameState {
        self.with(1, CACHED_ORDER, 0, self.was_ever_allocated())
    }

    pub fn owner(self) -> Option<Owner> {
        Owner::from_index((self.0 >> OWNER_SHIFT) as usize)
    }

    pub fn was_ever_allocated(self) -> bool {
        self.0 & HISTORY_BIT != 0
    }

    fn with(self, kind: u16, order: u8, owner: u16, history: bool) -> FrameState {
        let history = if history { HISTORY_BIT } else { 0 };
        FrameState((owner << OWNER_SHIFT) | history | (kind << KIND_SHIFT) | u16::from(order))
    }

    /// Keeps only the history bit.
    pub fn interior(self) -> FrameState {
        self.with(0, 0, 0, self.was_ever_allocated())
    }

    pub fn free_head(self, order: u8) -> FrameState {
        self.with(1, order, 0, self.was_ever_allocated())
    }

    /// Also sets the history bit.
    pub fn allocated_head(self, order: u8, owner: Owner) -> FrameState {
        self.with(2, order, owner as u16, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        for order in 0..=super::super::MAX_ORDER {
            for owner in Owner::ALL {
                let s = FrameState::UNAVAILABLE.interior().allocated_head(order, owner);
                assert_eq!(
                    (s.kind(), s.order(), s.owner(), s.was_ever_allocated()),
                    (Kind::AllocatedHead, order, Some(owner), true)
                );
                let f = s.free_head(order);
                assert_eq!((f.kind(), f.order(), f.was_ever_allocated()), (Kind::FreeHead, order, true));
                assert_eq!(f.interior().kind(), Kind::Interior);
                assert!(f.interior().was_ever_allocated());
            }
        }
        let free = FrameState::UNAVAILABLE.interior().allocated_head(0, Owner::Kernel).free_head(0);
        for parked in [free.cached(), free.zeroed()] {
            assert_eq!((parked.kind(), parked.order(), parked.is_parked()), (Kind::FreeHead, 0, true));
            assert!(parked.was_ever_allocated());
        }
        assert!(free.cached().is_cached() && !free.cached().is_zeroed());
        assert!(free.zeroed().is_zeroed() && !free.zeroed().is_cached());
        assert!((0..=super::super::MAX_ORDER).all(|k| !free.free_head(k).is_parked()));
        assert_eq!(FrameState::UNAVAILABLE.kind(), Kind::Unavailable);
        assert!(!FrameState::UNAVAILABLE.interior().was_ever_allocated());
    }
}
