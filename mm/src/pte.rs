//! The page-table-entry codec: the one place that knows which bit of an x86_64
//! page-table entry means what. Everything else works with [`PteState`].
//!
//! A **present** entry (P = 1) is the hardware's: frame, W, U, NX, A, D. Of the
//! bits the hardware leaves to the OS (9–11, 52–58), Pagekeeper claims 9–11
//! and 52:
//!
//! ```text
//!  63  62..59 58..53 52 51            12 11 10  9  8  7  6  5  4  3  2  1  0
//! ┌──┬──────┬──────┬──┬────────────────┬──┬─────┬──┬──┬──┬──┬──┬──┬──┬──┬──┐
//! │NX│ pkey │  0   │SC│  frame number  │PN│kind │G │PS│D │A │CD│WT│U │W │1 │
//! └──┴──────┴──────┴──┴────────────────┴──┴─────┴──┴──┴──┴──┴──┴──┴──┴──┴──┘
//!   kind (9–10): 01 anonymous (may be swapped) · 10 file-backed · 00 kernel/other
//!   PN (11): pinned, never reclaimed
//!   SC (52): swap-cached: an anonymous page read back from swap whose slot
//!            was kept as its copy (mm::swap::cache); while D = 0 the copy
//!            is good and reclaim evicts the page without a write
//! ```
//!
//! A **non-present** entry (P = 0) is all ours, except bits 5–6 (some CPUs
//! set A/D even on non-present entries, so they carry nothing and are ignored
//! when decoding) and bit 7 (PS, kept 0 so no walker mistakes it for a huge
//! page). An all-zero entry means "nothing here".
//!
//! ```text
//!  63                                      12 11 10  9  8  7  6  5  4  3  2  1  0
//! ┌──────────────────────────────────────────┬──┬──┬──┬──┬──┬──┬──┬──┬────────┬──┐
//! │ payload (52 bits)                        │0 │U │X │W │0 │ign│ 0 │  tag   │0 │
//! └──────────────────────────────────────────┴──┴──┴──┴──┴──┴──┴──┴──┴────────┴──┘
//!   tag 1 demand-zero    payload 0
//!   tag 2 swapped        payload = swap slot (52 bits)
//!   tag 3 file           payload = file id (bits 48–63, 16 bits) : page index (bits 12–47, 36 bits)
//!   tag 4 guard          payload 0
//!   W/X/U (8–10): the protection the page gets when it is brought in
//! ```

use crate::addr::Pfn;
use core::fmt;

/// Access a page allows. Every mapped page is readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Prot {
    pub write: bool,
    pub exec: bool,
    /// Reachable from ring 3.
    pub user: bool,
}

impl Prot {
    pub const USER_READ: Prot = Prot { write: false, exec: false, user: true };
    pub const USER_RW: Prot = Prot { write: true, exec: false, user: true };
    pub const USER_RX: Prot = Prot { write: false, exec: true, user: true };
}

impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = if self.write { 'w' } else { '-' };
        let x = if self.exec { 'x' } else { '-' };
        let u = if self.user { 'u' } else { 'k' };
        write!(f, "r{w}{x}{u}")
    }
}

/// What a present page holds, in the OS-available bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageKind {
    /// Kernel or other memory the memory manager does not reclaim.
    Other,
    /// Anonymous memory: may be swapped out.
    Anonymous,
    /// A page of a file: may be dropped (clean) or written back (dirty, D bit).
    File,
    /// The kernel's one shared zero frame, mapped read-only where a read
    /// found a demand-zero page of a read-only region (Linux's
    /// `ZERO_PAGE`): reads cost no frame and no promise. Never the space's
    /// memory: never freed, counted or reclaimed through it; a `protect`
    /// that makes the page writable turns it back into demand-zero.
    Zero,
}

/// A present mapping, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mapping {
    pub frame: Pfn,
    pub prot: Prot,
    pub kind: PageKind,
    pub pinned: bool,
    /// Set by the CPU on access / write; carried through decode for reclaim.
    pub accessed: bool,
    pub dirty: bool,
    /// An anonymous page swapped in whose slot the swap cache may still
    /// hold as its copy: a hint, checked against the cache (which is the
    /// truth) and good only while `dirty` is clear.
    pub swap_cached: bool,
}

impl Mapping {
    /// A fresh read-only mapping of a frame the space does not own alone
    /// (a page-cache frame, the shared zero frame): never writable in the
    /// entry, whatever `prot` (what the region allows) says.
    pub fn read_only(frame: Pfn, prot: Prot, kind: PageKind) -> Mapping {
        Mapping {
            frame,
            prot: Prot { write: false, ..prot },
            kind,
            pinned: false,
            accessed: false,
            dirty: false,
            swap_cached: false,
        }
    }
}

/// The state of one page, as its page-table entry records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PteState {
    /// All zero: nothing recorded here (the region, if any, decides).
    Absent,
    Present(Mapping),
    /// Allocate a zeroed frame on first touch.
    DemandZero {
        prot: Prot,
    },
    /// The page's contents are in swap slot `slot`.
    Swapped {
        slot: u64,
        prot: Prot,
    },
    /// The page is page `page` of file `file`.
    File {
        file: u16,
        page: u64,
        prot: Prot,
    },
    /// Touching it is an error (stack and heap guard pages).
    Guard,
}

/// A non-present entry this codec never writes (unknown tag, stray bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorruptPte(pub u64);

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const FRAME_MASK: u64 = 0x000f_ffff_ffff_f000;
const KIND_SHIFT: u32 = 9;
const KIND_MASK: u64 = 0b11 << KIND_SHIFT;
const PINNED: u64 = 1 << 11;
const SWAP_CACHED: u64 = 1 << 52;

const TAG_SHIFT: u32 = 1;
const TAG_MASK: u64 = 0b111 << TAG_SHIFT;
const TAG_DEMAND_ZERO: u64 = 1;
const TAG_SWAPPED: u64 = 2;
const TAG_FILE: u64 = 3;
const TAG_GUARD: u64 = 4;
const PROT_W: u64 = 1 << 8;
const PROT_X: u64 = 1 << 9;
const PROT_U: u64 = 1 << 10;
/// Bits the hardware may set in a non-present entry.
const HW_IGNORED: u64 = ACCESSED | DIRTY;
const PAYLOAD_SHIFT: u32 = 12;

/// Largest swap slot a non-present entry can hold (52 bits).
pub const MAX_SWAP_SLOT: u64 = (1 << 52) - 1;
/// Largest file page index (36 bits: files up to 256 TiB).
pub const MAX_FILE_PAGE: u64 = (1 << 36) - 1;
const FILE_ID_SHIFT: u32 = 36;

const _: () = assert!(FRAME_MASK & (KIND_MASK | PINNED | SWAP_CACHED | NO_EXECUTE) == 0);
const _: () = assert!(TAG_MASK & (HW_IGNORED | HUGE | PRESENT) == 0);
const _: () = assert!((PROT_W | PROT_X | PROT_U) & (TAG_MASK | HW_IGNORED | HUGE) == 0);

fn prot_bits(prot: Prot) -> u64 {
    (if prot.write { PROT_W } else { 0 })
        | (if prot.exec { PROT_X } else { 0 })
        | (if prot.user { PROT_U } else { 0 })
}

fn prot_of(raw: u64) -> Prot {
    Prot { write: raw & PROT_W != 0, exec: raw & PROT_X != 0, user: raw & PROT_U != 0 }
}

impl PteState {
    /// The raw entry. Panics on a payload too large for its field (a swap
    /// slot above [`MAX_SWAP_SLOT`], a file page above [`MAX_FILE_PAGE`]):
    /// callers allocate those numbers and must keep them in range.
    pub fn encode(self) -> u64 {
        match self {
            PteState::Absent => 0,
            PteState::Present(m) => encode_present(m),
            PteState::DemandZero { prot } => non_present(TAG_DEMAND_ZERO, prot, 0),
            PteState::Swapped { slot, prot } => {
                assert!(slot <= MAX_SWAP_SLOT, "swap slot {slot} does not fit a PTE");
                non_present(TAG_SWAPPED, prot, slot)
            }
            PteState::File { file, page, prot } => {
                assert!(page <= MAX_FILE_PAGE, "file page {page} does not fit a PTE");
                non_present(TAG_FILE, prot, (u64::from(file) << FILE_ID_SHIFT) | page)
            }
            PteState::Guard => non_present(TAG_GUARD, Prot::default(), 0),
        }
    }

    pub fn decode(raw: u64) -> Result<PteState, CorruptPte> {
        if raw & PRESENT != 0 {
            return decode_present(raw);
        }
        let raw = raw & !HW_IGNORED;
        if raw == 0 {
            return Ok(PteState::Absent);
        }
        let known = TAG_MASK | PROT_W | PROT_X | PROT_U | (u64::MAX << PAYLOAD_SHIFT);
        if raw & !known != 0 {
            return Err(CorruptPte(raw));
        }
        let (tag, prot, payload) = ((raw & TAG_MASK) >> TAG_SHIFT, prot_of(raw), raw >> PAYLOAD_SHIFT);
        match tag {
            TAG_DEMAND_ZERO if payload == 0 => Ok(PteState::DemandZero { prot }),
            TAG_SWAPPED => Ok(PteState::Swapped { slot: payload, prot }),
            TAG_FILE => Ok(PteState::File {
                file: (payload >> FILE_ID_SHIFT) as u16,
                page: payload & MAX_FILE_PAGE,
                prot,
            }),
            TAG_GUARD if payload == 0 && prot == Prot::default() => Ok(PteState::Guard),
            _ => Err(CorruptPte(raw)),
        }
    }
}

fn non_present(tag: u64, prot: Prot, payload: u64) -> u64 {
    (payload << PAYLOAD_SHIFT) | prot_bits(prot) | (tag << TAG_SHIFT)
}

fn encode_present(m: Mapping) -> u64 {
    let kind = match m.kind {
        PageKind::Other => 0,
        PageKind::Anonymous => 1,
        PageKind::File => 2,
        PageKind::Zero => 3,
    };
    let mut raw = PRESENT | (m.frame.addr() & FRAME_MASK) | (kind << KIND_SHIFT);
    let flag = |on: bool, bit: u64| if on { bit } else { 0 };
    raw |= flag(m.prot.write, WRITABLE) | flag(m.prot.user, USER) | flag(!m.prot.exec, NO_EXECUTE);
    raw |= flag(m.swap_cached, SWAP_CACHED);
    raw | flag(m.pinned, PINNED) | flag(m.accessed, ACCESSED) | flag(m.dirty, DIRTY)
}

fn decode_present(raw: u64) -> Result<PteState, CorruptPte> {
    let known = PRESENT
        | WRITABLE
        | USER
        | ACCESSED
        | DIRTY
        | FRAME_MASK
        | KIND_MASK
        | PINNED
        | SWAP_CACHED
        | NO_EXECUTE;
    if raw & !known != 0 {
        return Err(CorruptPte(raw));
    }
    let kind = match (raw & KIND_MASK) >> KIND_SHIFT {
        0 => PageKind::Other,
        1 => PageKind::Anonymous,
        2 => PageKind::File,
        3 => PageKind::Zero,
        _ => return Err(CorruptPte(raw)),
    };
    Ok(PteState::Present(Mapping {
        frame: Pfn::containing(raw & FRAME_MASK),
        prot: Prot { write: raw & WRITABLE != 0, exec: raw & NO_EXECUTE == 0, user: raw & USER != 0 },
        kind,
        pinned: raw & PINNED != 0,
        accessed: raw & ACCESSED != 0,
        dirty: raw & DIRTY != 0,
        swap_cached: raw & SWAP_CACHED != 0,
    }))
}

/// Entries of the upper levels (PML4, PDPT, PD) that point at the next table.
pub mod table {
    use super::*;

    /// An entry pointing at the table in `frame`. Permissive (W, U): access
    /// is decided by the leaf entry.
    pub fn encode(frame: Pfn) -> u64 {
        PRESENT | WRITABLE | USER | (frame.addr() & FRAME_MASK)
    }

    /// The next table's frame, `None` if the entry is empty. A huge-page or
    /// otherwise foreign entry is an error: Pagekeeper never creates them in
    /// the half it manages.
    pub fn decode(raw: u64) -> Result<Option<Pfn>, CorruptPte> {
        if raw & PRESENT == 0 {
            return if raw & !HW_IGNORED == 0 { Ok(None) } else { Err(CorruptPte(raw)) };
        }
        if raw & HUGE != 0 {
            return Err(CorruptPte(raw));
        }
        Ok(Some(Pfn::containing(raw & FRAME_MASK)))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    fn prot() -> impl Strategy<Value = Prot> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(write, exec, user)| Prot {
            write,
            exec,
            user,
        })
    }

    fn state() -> impl Strategy<Value = PteState> {
        let kind = prop_oneof![
            Just(PageKind::Other),
            Just(PageKind::Anonymous),
            Just(PageKind::File),
            Just(PageKind::Zero)
        ];
        let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
        let mapping = (0u64..(1 << 40), prot(), kind, flags).prop_map(
            |(frame, prot, kind, (pinned, accessed, dirty, swap_cached))| Mapping {
                frame: Pfn::new(frame),
                prot,
                kind,
                pinned,
                accessed,
                dirty,
                swap_cached,
            },
        );
        prop_oneof![
            Just(PteState::Absent),
            mapping.prop_map(PteState::Present),
            prot().prop_map(|prot| PteState::DemandZero { prot }),
            (0..=MAX_SWAP_SLOT, prot()).prop_map(|(slot, prot)| PteState::Swapped { slot, prot }),
            (any::<u16>(), 0..=MAX_FILE_PAGE, prot()).prop_map(|(file, page, prot)| PteState::File {
                file,
                page,
                prot
            }),
            Just(PteState::Guard),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_state_round_trips(s in state()) {
            prop_assert_eq!(PteState::decode(s.encode()), Ok(s));
        }

        #[test]
        fn only_present_states_set_the_present_bit(s in state()) {
            let present = matches!(s, PteState::Present(_));
            prop_assert_eq!(s.encode() & PRESENT != 0, present);
        }

        #[test]
        fn non_present_states_keep_clear_of_hardware_bits(s in state()) {
            if !matches!(s, PteState::Present(_)) {
                prop_assert_eq!(s.encode() & (HW_IGNORED | HUGE), 0);
            }
        }

        /// A CPU setting A or D on a non-present entry changes nothing.
        #[test]
        fn accessed_dirty_on_non_present_entries_are_ignored(s in state(), a in any::<bool>(), d in any::<bool>()) {
            if !matches!(s, PteState::Present(_)) {
                let touched = s.encode() | if a { ACCESSED } else { 0 } | if d { DIRTY } else { 0 };
                prop_assert_eq!(PteState::decode(touched), Ok(s));
            }
        }

        /// Two different states never share an encoding.
        #[test]
        fn distinct_states_encode_differently(a in state(), b in state()) {
            if a != b {
                prop_assert_ne!(a.encode(), b.encode());
            }
        }

        /// Any raw value either decodes to a state that encodes back to the
        /// same value (modulo A/D on non-present entries), or is rejected.
        #[test]
        fn decode_is_exact_or_refuses(raw in any::<u64>()) {
            if let Ok(s) = PteState::decode(raw) {
                let canonical = if raw & PRESENT == 0 { raw & !HW_IGNORED } else { raw };
                prop_assert_eq!(s.encode(), canonical);
            }
        }
    }

    #[test]
    fn boundary_values() {
        let top = PteState::Swapped { slot: MAX_SWAP_SLOT, prot: Prot::USER_RW };
        assert_eq!(PteState::decode(top.encode()), Ok(top));
        let file = PteState::File { file: u16::MAX, page: MAX_FILE_PAGE, prot: Prot::USER_RX };
        assert_eq!(PteState::decode(file.encode()), Ok(file));
        assert_eq!(PteState::decode(0), Ok(PteState::Absent));
        assert_eq!(PteState::decode(ACCESSED | DIRTY), Ok(PteState::Absent));
        assert_eq!(PteState::decode(0b1110), Err(CorruptPte(0b1110)), "unknown tag 7");
        assert_eq!(PteState::decode(1 << 4), Err(CorruptPte(1 << 4)), "stray bit 4");
        let zero = PteState::decode(PRESENT | (3 << KIND_SHIFT));
        assert!(
            matches!(zero, Ok(PteState::Present(m)) if m.kind == PageKind::Zero),
            "kind 3: the zero frame"
        );
        assert!(PteState::decode(PRESENT | (1 << 58)).is_err(), "a stray high bit");
    }

    #[test]
    #[should_panic(expected = "does not fit a PTE")]
    fn oversized_swap_slot_is_refused() {
        let _ = PteState::Swapped { slot: MAX_SWAP_SLOT + 1, prot: Prot::default() }.encode();
    }

    #[test]
    fn table_entries() {
        let e = table::encode(Pfn::new(0x1234));
        assert_eq!(table::decode(e), Ok(Some(Pfn::new(0x1234))));
        assert_eq!(table::decode(0), Ok(None));
        assert!(table::decode(e | HUGE).is_err());
        assert!(table::decode(PteState::Guard.encode()).is_err());
    }
}
