//! A span: a run of pages cut into blocks of one size class, with its
//! record out of band: a bitmap of free blocks (bit set = free) and a
//! summary word saying which bitmap words have a free block, so taking a
//! block is two `trailing_zeros`; a mask of the span's pages known to
//! read zero; and a mask of those whose writability went back to the
//! kernel (pages that held only free blocks when it refused to grow the
//! heap), which must be grown again before a block on them is handed out.

use crate::classes::{block_index, BLOCKS, CLASSES, MAX_BLOCKS};
use crate::PAGE;

pub const NO_SPAN: u32 = u32::MAX;
const WORDS: usize = MAX_BLOCKS / 64;

const _: () = assert!(WORDS <= 32, "the summary word covers the bitmap");

/// The record of one span, in the span metadata region.
#[repr(C)]
pub struct SpanMeta {
    /// Arena page the span starts at.
    pub first_page: u32,
    /// Block size (`CLASSES[class]`, kept here so the hot paths read it
    /// from the record they already hold, not from a table).
    pub size: u32,
    pub class: u8,
    pub pages: u8,
    pub free_blocks: u16,
    /// Bit i set: page i of the span is known to read zero.
    pub clean: u32,
    /// Bit i set: page i was given back to the kernel (it holds only free
    /// blocks, reads zero, and is not writable until grown again). Always
    /// a subset of `clean`.
    pub given_back: u32,
    /// Bit w set when bitmap[w] has a free block.
    summary: u32,
    /// Neighbours in the class's list of spans with free blocks, or in the
    /// list of free records.
    pub next: u32,
    pub prev: u32,
    bitmap: [u64; WORDS],
}

/// Bit mask of pages `offset..offset+len` touches (len ≥ 1).
#[inline]
fn page_mask(offset: usize, len: usize) -> u32 {
    let first = offset / PAGE;
    let last = (offset + len - 1) / PAGE;
    let upto = if last >= 31 { u32::MAX } else { (1u32 << (last + 1)) - 1 };
    upto & !((1u32 << first) - 1)
}

/// The block of `class` starting at `offset` in its span; None if no
/// block starts there.
#[inline]
pub fn block_at(offset: usize, class: usize) -> Option<usize> {
    let block = block_index(offset, class);
    (block * CLASSES[class] as usize == offset && block < BLOCKS[class] as usize).then_some(block)
}

impl SpanMeta {
    pub fn init(&mut self, class: usize, first_page: usize, pages: usize, clean: u32) {
        let blocks = BLOCKS[class] as usize;
        self.first_page = first_page as u32;
        self.size = CLASSES[class];
        self.class = class as u8;
        self.pages = pages as u8;
        self.free_blocks = blocks as u16;
        self.clean = clean;
        self.given_back = 0;
        self.bitmap = [0; WORDS];
        self.summary = 0;
        for w in 0..blocks.div_ceil(64) {
            let bits = (blocks - w * 64).min(64);
            self.bitmap[w] = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
            self.summary |= 1 << w;
        }
    }

    /// Takes the lowest free block (there is one): its offset in the span,
    /// how many clean pages it made dirty, and whether it reads zero.
    #[inline]
    pub fn take_block(&mut self) -> (usize, usize, bool) {
        let (word, bit) = self.lowest_free();
        let bits = self.bitmap[word];
        let rest = bits & (bits - 1);
        self.bitmap[word] = rest;
        // Without a branch: whether the word is now empty depends on
        // which block a class's last free was, which no predictor knows.
        self.summary &= !(u32::from(rest == 0) << word);
        self.free_blocks -= 1;
        let size = self.size as usize;
        let offset = (word * 64 + bit) * size;
        // (No early return for a span with no clean page left: whether it
        // has one depends on the class, and the branch mispredicted in a
        // mix of sizes more often than the mask costs.)
        let pages = page_mask(offset, size);
        let was_clean = self.clean & pages;
        if was_clean == 0 {
            // No popcount (a library call without POPCNT) when the span's
            // clean pages are elsewhere (its untouched tail, usually).
            return (offset, 0, false);
        }
        self.clean &= !pages;
        (offset, was_clean.count_ones() as usize, was_clean == pages)
    }

    /// The record describes a span (it is not on the free-record list).
    pub fn in_use(&self) -> bool {
        self.pages != 0
    }

    /// Marks the record unused (its span went back to the page heap).
    pub fn retire(&mut self) {
        self.pages = 0;
    }

    pub fn live_blocks(&self) -> usize {
        (BLOCKS[self.class as usize] - self.free_blocks) as usize
    }

    /// Block `block` is handed out (its bit is clear).
    #[inline]
    pub fn is_live(&self, block: usize) -> bool {
        self.bitmap[block / 64 % WORDS] & (1 << (block % 64)) == 0
    }

    #[inline]
    pub fn put_block(&mut self, block: usize) {
        // (`% WORDS`: a block index is below MAX_BLOCKS; saying so spares
        // the bounds check on the free path.)
        self.bitmap[block / 64 % WORDS] |= 1 << (block % 64);
        self.summary |= 1 << (block / 64 % WORDS);
        self.free_blocks += 1;
    }

    /// The lowest free block, as (bitmap word, bit): what
    /// [`Self::take_block`] takes next (there is one).
    #[inline]
    fn lowest_free(&self) -> (usize, usize) {
        let word = self.summary.trailing_zeros() as usize % WORDS;
        (word, self.bitmap[word].trailing_zeros() as usize)
    }

    /// The pages the block [`Self::take_block`] would take next touches.
    pub fn next_block_pages(&self) -> u32 {
        let (word, bit) = self.lowest_free();
        let size = self.size as usize;
        page_mask((word * 64 + bit) * size, size)
    }

    /// Page `index` of the span holds only free blocks and is not known
    /// clean.
    pub fn page_is_free_and_dirty(&self, index: usize) -> bool {
        self.clean & (1 << index) == 0 && self.page_is_free(index)
    }

    /// The span's pages that hold only free blocks and are still
    /// writable: what it can give back.
    pub fn pages_to_give_back(&self) -> u32 {
        (0..self.pages as usize)
            .filter(|&i| self.given_back & (1 << i) == 0 && self.page_is_free(i))
            .fold(0, |mask, i| mask | 1 << i)
    }

    /// Page `index` of the span holds only free blocks (or none: the tail
    /// past the last block).
    pub fn page_is_free(&self, index: usize) -> bool {
        let class = self.class as usize;
        let blocks = BLOCKS[class] as usize;
        let first = block_index(index * PAGE, class);
        let end = (block_index((index + 1) * PAGE - 1, class) + 1).min(blocks);
        self.all_free(first, end)
    }

    /// Blocks `first..end` are all free: a word of the bitmap at a time
    /// (a page of class 16 is 256 blocks, and a refused grow asks this of
    /// every page of every span with room).
    fn all_free(&self, first: usize, end: usize) -> bool {
        let mut block = first;
        while block < end {
            let (word, bit) = (block / 64, block % 64);
            let n = (end - block).min(64 - bit);
            let mask = (u64::MAX >> (64 - n)) << bit;
            if self.bitmap[word % WORDS] & mask != mask {
                return false;
            }
            block += n;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::{CLASS_COUNT, SPAN_PAGES};

    #[test]
    fn page_is_free_agrees_with_a_block_by_block_look() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for class in 0..CLASS_COUNT {
            let pages = SPAN_PAGES[class] as usize;
            let mut meta = SpanMeta {
                first_page: 0,
                size: 0,
                class: 0,
                pages: 0,
                free_blocks: 0,
                clean: 0,
                given_back: 0,
                summary: 0,
                next: 0,
                prev: 0,
                bitmap: [0; WORDS],
            };
            meta.init(class, 0, pages, 0);
            for round in 0..64 {
                // Take a few blocks, mostly from the front, some everywhere.
                for _ in 0..round % 8 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let block = seed as usize % BLOCKS[class] as usize;
                    meta.bitmap[block / 64] &= !(1 << (block % 64));
                }
                for index in 0..pages {
                    let first = block_index(index * PAGE, class);
                    let end = (block_index((index + 1) * PAGE - 1, class) + 1).min(BLOCKS[class] as usize);
                    let naive = (first..end).all(|b| meta.bitmap[b / 64] & (1 << (b % 64)) != 0);
                    assert_eq!(meta.page_is_free(index), naive, "class {class} page {index}");
                }
                if round % 16 == 15 {
                    meta.init(class, 0, pages, 0);
                }
            }
        }
    }
}
