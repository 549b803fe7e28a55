//! The x86_64 paging geometry in one place: page size, levels, entries per
//! table, what one entry spans at each level, and the split of the address
//! space between processes and the kernel. Everything else uses these names
//! (and the compile-time checks below keep them consistent).
//!
//! ```text
//!  level 4 (root) ─ 512 entries × 512 GiB   entries 0..256: user half, 256..512: kernel half
//!  level 3        ─ 512 entries × 1 GiB
//!  level 2        ─ 512 entries × 2 MiB
//!  level 1        ─ 512 entries × 4 KiB pages
//!  address bits:  47..39 | 38..30 | 29..21 | 20..12 | 11..0 offset
//! ```

use core::ops::Range;

/// Bytes in a page and a frame (the ABI's page size).
pub const PAGE_SIZE: u64 = abi::PAGE_SIZE;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Levels of page tables: 4 (PML4, PDPT, PD, PT).
pub const LEVELS: u32 = 4;
/// Entries in a table at every level.
pub const ENTRIES: usize = 512;
/// Address bits one level resolves.
pub const INDEX_BITS: u32 = 9;

/// Bytes one entry of a table at `level` (1 = page table .. 4 = root) maps.
pub const fn entry_span(level: u32) -> u64 {
    1 << (PAGE_SHIFT + INDEX_BITS * (level - 1))
}

/// The index of `addr`'s entry in its table at `level`.
pub const fn table_index(addr: u64, level: u32) -> usize {
    ((addr >> (PAGE_SHIFT + INDEX_BITS * (level - 1))) as usize) & (ENTRIES - 1)
}

/// Root entries of the user half (each address space's own).
pub const USER_ROOT_ENTRIES: Range<usize> = 0..ENTRIES / 2;
/// Root entries of the kernel half (shared by every address space).
pub const KERNEL_ROOT_ENTRIES: Range<usize> = ENTRIES / 2..ENTRIES;

/// The lowest user address: page 0 stays unmapped so null pointers fault.
pub const USER_START: u64 = PAGE_SIZE;
/// One past the highest user address (the canonical lower half).
pub const USER_END: u64 = entry_span(LEVELS) * (ENTRIES as u64 / 2);
/// The start of the kernel half: `USER_END` sign-extended from bit 47.
pub const KERNEL_START: u64 = !(USER_END - 1);

const _: () = assert!(PAGE_SIZE == 1 << PAGE_SHIFT);
const _: () = assert!(ENTRIES == 1 << INDEX_BITS);
const _: () = assert!(entry_span(LEVELS) * ENTRIES as u64 == 1 << 48, "4 levels map 48 bits");
const _: () = assert!(USER_END == 0x0000_8000_0000_0000);
const _: () = assert!(KERNEL_START == 0xffff_8000_0000_0000);
const _: () = assert!(table_index(KERNEL_START, LEVELS) == KERNEL_ROOT_ENTRIES.start);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_spans_at_the_boundaries() {
        assert_eq!(entry_span(1), 4096);
        assert_eq!(entry_span(2), 2 << 20);
        assert_eq!(entry_span(3), 1 << 30);
        assert_eq!(table_index(0, 1), 0);
        assert_eq!(table_index(USER_END - 1, 4), 255);
        assert_eq!(table_index(USER_END - 1, 1), 511);
        assert_eq!(table_index(u64::MAX, 4), 511);
        assert_eq!(table_index(0x20_1000, 1), 1);
        assert_eq!(table_index(0x20_1000, 2), 1);
    }
}
