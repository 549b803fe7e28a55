//! The swap header: the first page of a swap disk, written when the disk is
//! made (on the host, by `pagekeeper-boot`: our `mkswap`) and checked when
//! the kernel opens it. A disk without it is refused and never written, so a
//! stray disk attached by mistake cannot be overwritten by swap-out.
//!
//! ```text
//! offset  size  field
//!      0    16  magic "PAGEKEEPER SWAP\n"
//!     16     4  version (1), little-endian
//!     20     4  page size (4096)
//!     24     8  slots: pages of swap after the header page
//!     32     4  FNV-1a checksum of bytes 0..32
//!     36  4060  zero
//! ```
//! Slot `s` (1..=slots) is page `s` of the disk; page 0 is this header, so
//! slot 0 never names swapped data.

use crate::addr::PAGE_SIZE;
use core::fmt;

pub const MAGIC: [u8; 16] = *b"PAGEKEEPER SWAP\n";
pub const VERSION: u32 = 1;
const CHECKED_BYTES: usize = 32;

/// A decoded, checked header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapHeader {
    pub slots: u64,
}

/// Why a disk is not (or not this kernel's) swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No magic: not a swap disk. It is left alone.
    NotSwap,
    UnsupportedVersion(u32),
    PageSize(u32),
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    /// The header claims more slots than the disk holds (or than a
    /// page-table entry can name).
    TooBig {
        slots: u64,
        disk_pages: u64,
    },
    /// No slot at all.
    Empty,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::NotSwap => write!(f, "no swap signature (not a swap disk; left untouched)"),
            HeaderError::UnsupportedVersion(v) => write!(f, "swap header version {v}, expected {VERSION}"),
            HeaderError::PageSize(p) => write!(f, "swap header page size {p}, expected {PAGE_SIZE}"),
            HeaderError::BadChecksum { stored, computed } => {
                write!(f, "swap header checksum {stored:#x}, computed {computed:#x}")
            }
            HeaderError::TooBig { slots, disk_pages } => {
                write!(f, "swap header claims {slots} slots, the disk holds {disk_pages} pages")
            }
            HeaderError::Empty => write!(f, "swap area has no slots"),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

fn field<const N: usize>(page: &[u8], at: usize) -> [u8; N] {
    page[at..at + N].try_into().expect("in the header page")
}

impl SwapHeader {
    /// The header for a disk of `disk_bytes` (whole pages used; the first
    /// is the header's).
    pub fn for_disk(disk_bytes: u64) -> SwapHeader {
        SwapHeader { slots: (disk_bytes / PAGE_SIZE).saturating_sub(1) }
    }

    pub fn encode(&self) -> [u8; PAGE_SIZE as usize] {
        let mut page = [0u8; PAGE_SIZE as usize];
        page[0..16].copy_from_slice(&MAGIC);
        page[16..20].copy_from_slice(&VERSION.to_le_bytes());
        page[20..24].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
        page[24..32].copy_from_slice(&self.slots.to_le_bytes());
        let checksum = fnv1a(&page[..CHECKED_BYTES]);
        page[32..36].copy_from_slice(&checksum.to_le_bytes());
        page
    }

    /// Decodes the first page of a disk of `disk_pages` pages.
    pub fn decode(page: &[u8], disk_pages: u64) -> Result<SwapHeader, HeaderError> {
        if page.len() < PAGE_SIZE as usize || page[0..16] != MAGIC {
            return Err(HeaderError::NotSwap);
        }
        let version = u32::from_le_bytes(field(page, 16));
        if version != VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let page_size = u32::from_le_bytes(field(page, 20));
        if u64::from(page_size) != PAGE_SIZE {
            return Err(HeaderError::PageSize(page_size));
        }
        let (stored, computed) = (u32::from_le_bytes(field(page, 32)), fnv1a(&page[..CHECKED_BYTES]));
        if stored != computed {
            return Err(HeaderError::BadChecksum { stored, computed });
        }
        let slots = u64::from_le_bytes(field(page, 24));
        if slots == 0 {
            return Err(HeaderError::Empty);
        }
        if slots > crate::pte::MAX_SWAP_SLOT || slots.checked_add(1).is_none_or(|pages| pages > disk_pages) {
            return Err(HeaderError::TooBig { slots, disk_pages });
        }
        Ok(SwapHeader { slots })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips() {
        let header = SwapHeader::for_disk(256 << 20);
        assert_eq!(header.slots, 65_535);
        assert_eq!(SwapHeader::decode(&header.encode(), 65_536), Ok(header));
    }

    #[test]
    fn foreign_or_damaged_headers_are_refused() {
        let good = SwapHeader { slots: 10 }.encode();
        assert_eq!(SwapHeader::decode(&[0u8; 4096], 11), Err(HeaderError::NotSwap));
        assert_eq!(SwapHeader::decode(&good[..100], 11), Err(HeaderError::NotSwap));
        assert_eq!(SwapHeader::decode(&good, 10), Err(HeaderError::TooBig { slots: 10, disk_pages: 10 }));
        let mut bad = good;
        bad[24] ^= 1;
        assert!(matches!(SwapHeader::decode(&bad, 100), Err(HeaderError::BadChecksum { .. })));
        let mut v2 = good;
        v2[16] = 2;
        assert_eq!(SwapHeader::decode(&v2, 100), Err(HeaderError::UnsupportedVersion(2)));
        assert_eq!(SwapHeader::decode(&SwapHeader { slots: 0 }.encode(), 100), Err(HeaderError::Empty));
        let huge = SwapHeader { slots: u64::MAX }.encode();
        assert!(matches!(SwapHeader::decode(&huge, 100), Err(HeaderError::TooBig { .. })));
    }
}
