//! Physical frame numbers. A newtype, so frame numbers, byte addresses and
//! counts cannot be mixed up.

use core::fmt;

use crate::paging;

/// Bytes in a base page / frame.
pub const FRAME_SIZE: u64 = paging::PAGE_SIZE;
const FRAME_SHIFT: u32 = paging::PAGE_SHIFT;

/// A physical frame number: physical address / 4096.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(u64);

impl Pfn {
    pub const fn new(number: u64) -> Pfn {
        Pfn(number)
    }

    /// The frame number (physical address / 4096).
    pub const fn number(self) -> u64 {
        self.0
    }

    /// The frame that contains physical address `addr`.
    pub const fn containing(addr: u64) -> Pfn {
        Pfn::new(addr >> FRAME_SHIFT)
    }

    /// The first frame that starts at or after `addr`.
    pub const fn first_at_or_after(addr: u64) -> Pfn {
        Pfn::new(addr.div_ceil(FRAME_SIZE))
    }

    /// The frame's physical start address.
    pub const fn addr(self) -> u64 {
        self.0 << FRAME_SHIFT
    }

    pub const fn add(self, frames: u64) -> Pfn {
        Pfn::new(self.0 + frames)
    }

    /// True when the frame starts a naturally aligned block of 2^order frames.
    pub const fn is_aligned(self, order: u8) -> bool {
        self.0 & ((1 << order) - 1) == 0
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn::new({:#x})", self.0)
    }
}

/// Printed as the frame's physical address: `frame 0x1234000`.
impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {:#x}", self.addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_the_right_way() {
        assert_eq!(Pfn::containing(0x1fff), Pfn::new(1));
        assert_eq!(Pfn::first_at_or_after(0x1001), Pfn::new(2));
        assert_eq!(Pfn::first_at_or_after(0x1000), Pfn::new(1));
        assert_eq!(Pfn::new(3).addr(), 0x3000);
        assert!(Pfn::new(512).is_aligned(9) && !Pfn::new(513).is_aligned(1) && Pfn::new(7).is_aligned(0));
    }
}

/// A virtual address in the user half (or a candidate for one: [`new`]
/// does not check; [`crate::vm`] validates ranges and says why one is
/// refused). Not `x86_64::VirtAddr`: that one is any canonical address, this
/// one is what an address space manages.
///
/// [`new`]: UserAddr::new
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserAddr(u64);

pub use crate::paging::PAGE_SIZE;

impl UserAddr {
    pub const fn new(addr: u64) -> UserAddr {
        UserAddr(addr)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }

    pub const fn page_down(self) -> UserAddr {
        UserAddr(self.0 & !(PAGE_SIZE - 1))
    }

    /// The page-table index of this address at `level` (1 = PT .. 4 = PML4).
    pub const fn table_index(self, level: u32) -> usize {
        paging::table_index(self.0, level)
    }
}

impl fmt::Debug for UserAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserAddr({:#x})", self.0)
    }
}

impl fmt::Display for UserAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}
