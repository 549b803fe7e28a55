//! A hierarchical bitmap: a set of indices with O(log₆₄ n) insert, remove and
//! find-lowest, stored in a caller-provided `&mut [u64]`.
//!
//! Level 0 holds one bit per index. Each level above holds one bit per word of
//! the level below, set when that word is non-zero. The top level is a single
//! word, so finding the lowest set index is one `trailing_zeros` per level:
//!
//! ```text
//! level 2 (top)  [0000…0101]                      1 word
//! level 1        [..][..][..]…                     one bit per level-0 word
//! level 0        [word 0][word 1][word 2]…         one bit per index
//! ```
//!
//! For 2²⁰ indices that is 4 levels and 16,645 words (16,384 + 256 + 4 + 1,
//! ≈1.016 bits per index; the `sizes` test checks it).

/// Enough levels for 64⁶ = 2³⁶ indices.
const MAX_LEVELS: usize = 6;

#[derive(Clone, Copy, Debug, Default)]
struct Level {
    /// First word of this level in the storage slice.
    offset: usize,
}

/// See the module documentation.
#[derive(Debug)]
pub struct HierBitmap<'m> {
    storage: &'m mut [u64],
    levels: [Level; MAX_LEVELS],
    depth: usize,
    len: usize,
}

/// Words per level for `bits` indices, leaf first.
fn level_sizes(bits: usize) -> impl Iterator<Item = usize> {
    let mut remaining = Some(bits.max(1));
    core::iter::from_fn(move || {
        let bits = remaining?;
        let words = bits.div_ceil(64);
        remaining = (words > 1).then_some(words);
        Some(words)
    })
}

impl<'m> HierBitmap<'m> {
    /// Storage words needed for a bitmap of `bits` indices.
    pub fn words_needed(bits: usize) -> usize {
        level_sizes(bits).sum()
    }

    /// An empty bitmap of `bits` indices over `storage`, which must be at
    /// least [`Self::words_needed`] long (panics otherwise: a sizing bug).
    pub fn new(bits: usize, storage: &'m mut [u64]) -> Self {
        let needed = Self::words_needed(bits);
        assert!(storage.len() >= needed, "bitmap storage: {} words, need {needed}", storage.len());
        let storage = &mut storage[..needed];
        storage.fill(0);
        let mut levels = [Level::default(); MAX_LEVELS];
        let mut offset = 0;
        let mut depth = 0;
        for words in level_sizes(bits) {
            assert!(depth < MAX_LEVELS, "bitmap of {bits} bits is deeper than {MAX_LEVELS} levels");
            levels[depth] = Level { offset };
            offset += words;
            depth += 1;
        }
        HierBitmap { storage, levels, depth, len: bits }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.first_set().is_none()
    }

    fn word(&self, level: usize, index: usize) -> u64 {
        self.storage[self.levels[level].offset + index]
    }

    fn word_mut(&mut self, level: usize, index: usize) -> &mut u64 {
        &mut self.storage[self.levels[level].offset + index]
    }

    pub fn get(&self, index: usize) -> bool {
        assert!(index < self.len, "bit {index} of {}", self.len);
        self.word(0, index / 64) & (1 << (index % 64)) != 0
    }

    /// Adds `index`; walks up only while a word goes from empty to non-empty.
    pub fn set(&mut self, index: usize) {
        assert!(index < self.len, "bit {index} of {}", self.len);
        let mut index = index;
        for level in 0..self.depth {
            let word = self.word_mut(level, index / 64);
            let was_empty = *word == 0;
            *word |= 1 << (index % 64);
            if !was_empty {
                return;
            }
            index /= 64;
        }
    }

    /// Removes `index`; walks up only while a word becomes empty.
    pub fn clear(&mut self, index: usize) {
        assert!(index < self.len, "bit {index} of {}", self.len);
        let mut index = index;
        for level in 0..self.depth {
            let word = self.word_mut(level, index / 64);
            *word &= !(1 << (index % 64));
            if *word != 0 {
                return;
            }
            index /= 64;
        }
    }

    /// The lowest set index.
    pub fn first_set(&self) -> Option<usize> {
        let mut index = 0;
        for level in (0..self.depth).rev() {
            let word = self.word(level, index);
            if word == 0 {
                return None;
            }
            index = index * 64 + word.trailing_zeros() as usize;
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec;

    fn with_bitmap(bits: usize, f: impl FnOnce(&mut HierBitmap)) {
        let mut storage = vec![u64::MAX; HierBitmap::words_needed(bits)];
        f(&mut HierBitmap::new(bits, &mut storage));
    }

    #[test]
    fn sizes() {
        assert_eq!(HierBitmap::words_needed(0), 1);
        assert_eq!(HierBitmap::words_needed(1), 1);
        assert_eq!(HierBitmap::words_needed(64), 1);
        assert_eq!(HierBitmap::words_needed(65), 3);
        assert_eq!(HierBitmap::words_needed(4096), 65);
        assert_eq!(HierBitmap::words_needed(1 << 20), 16384 + 256 + 4 + 1);
    }

    #[test]
    fn boundaries() {
        with_bitmap(1, |b| {
            b.set(0);
            assert_eq!(b.first_set(), Some(0));
            b.clear(0);
            assert!(b.is_empty());
        });
        for bits in [2, 63, 64, 65, 4095, 4096, 4097, 262_145] {
            with_bitmap(bits, |b| {
                assert_eq!(b.first_set(), None);
                b.set(bits - 1);
                assert_eq!(b.first_set(), Some(bits - 1));
                b.set(0);
                assert_eq!(b.first_set(), Some(0));
                b.clear(0);
                assert_eq!(b.first_set(), Some(bits - 1));
                b.clear(bits - 1);
                assert!(b.is_empty());
            });
        }
    }

    #[test]
    #[should_panic(expected = "bit 10 of 10")]
    fn out_of_range_panics() {
        with_bitmap(10, |b| b.set(10));
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(bits in 1usize..20_000, ops in prop::collection::vec((any::<bool>(), any::<usize>()), 0..400)) {
            with_bitmap(bits, |b| {
                let mut model = BTreeSet::new();
                for (insert, raw) in ops {
                    let i = raw % bits;
                    if insert { b.set(i); model.insert(i); } else { b.clear(i); model.remove(&i); }
                    assert_eq!(b.first_set(), model.first().copied());
                    assert_eq!(b.get(i), model.contains(&i));
                }
            });
        }
    }
}
