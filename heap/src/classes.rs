//! The small size classes: which class a request falls in (no search, no
//! division), how many pages a span of each class takes, and the
//! reciprocals that turn an offset in a span into a block index with a
//! multiply instead of a hardware division.
//!
//! Classes are 16 bytes apart up to 128 bytes, then eight per doubling
//! (at most 12.5 % above the request, about 6 % on average): fine enough
//! that rounding costs little, few enough (72) that each class keeps at
//! most one partly used span around.

use crate::PAGE;

/// Largest small size; larger requests are page runs of their own.
pub const MAX_SMALL: usize = 32 * 1024;
/// Classes below this step by [`MIN_ALIGN`](crate::MIN_ALIGN).
const LINEAR_LIMIT: usize = 128;
/// Classes per doubling above [`LINEAR_LIMIT`].
const PER_DOUBLING: usize = 8;
const LINEAR_CLASSES: usize = LINEAR_LIMIT / 16;
/// 16..=128 by 16, then 8 per doubling from 128 to 32 KiB (8 doublings).
pub const CLASS_COUNT: usize = LINEAR_CLASSES + PER_DOUBLING * 8;
/// Most blocks in one span (the class-16 span of four pages).
pub const MAX_BLOCKS: usize = 1024;
/// Fewest and most pages in a span.
const MIN_SPAN_PAGES: usize = 4;
const MAX_SPAN_PAGES: usize = 32;

/// Block sizes of the small classes, ascending.
pub const CLASSES: [u32; CLASS_COUNT] = class_sizes();
/// Pages of a span of each class.
pub const SPAN_PAGES: [u8; CLASS_COUNT] = span_pages();
/// Blocks in a span of each class.
pub const BLOCKS: [u16; CLASS_COUNT] = blocks();
/// `ceil(2^RECIPROCAL_SHIFT / size)` for each class.
pub const RECIPROCALS: [u64; CLASS_COUNT] = reciprocals();
const RECIPROCAL_SHIFT: u32 = 40;

const fn class_sizes() -> [u32; CLASS_COUNT] {
    let mut sizes = [0u32; CLASS_COUNT];
    let mut i = 0;
    while i < LINEAR_CLASSES {
        sizes[i] = 16 * (i as u32 + 1);
        i += 1;
    }
    let mut base = LINEAR_LIMIT;
    while i < CLASS_COUNT {
        let step = base / PER_DOUBLING;
        let mut k = 1;
        while k <= PER_DOUBLING {
            sizes[i] = (base + k * step) as u32;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    sizes
}

/// For each class, the fewest pages (at least four, and room for four
/// blocks where 32 pages hold them) whose tail after the last whole block
/// is at most 1/64 of the span; the least wasteful count up to 32 pages
/// when none is. (A span of one or two large blocks was made and unmade
/// for nearly every malloc and free of its class: in a mix of blocks up
/// to 30,000 bytes that cost more than the allocations themselves.)
const fn span_pages() -> [u8; CLASS_COUNT] {
    let sizes = class_sizes();
    let mut pages = [0u8; CLASS_COUNT];
    let mut c = 0;
    while c < CLASS_COUNT {
        let size = sizes[c] as usize;
        let mut n = MIN_SPAN_PAGES;
        while n * PAGE < 4 * size && n < MAX_SPAN_PAGES {
            n += 1;
        }
        let (mut best, mut best_waste) = (n, usize::MAX);
        while n <= MAX_SPAN_PAGES && (n * PAGE) / size <= MAX_BLOCKS {
            let waste = (n * PAGE) % size;
            if waste * 64 <= n * PAGE {
                best = n;
                break;
            }
            // Waste per byte of span: compare waste/n without dividing.
            if best_waste == usize::MAX || waste * best < best_waste * n {
                best = n;
                best_waste = waste;
            }
            n += 1;
        }
        pages[c] = best as u8;
        c += 1;
    }
    pages
}

const fn blocks() -> [u16; CLASS_COUNT] {
    let (sizes, pages) = (class_sizes(), span_pages());
    let mut b = [0u16; CLASS_COUNT];
    let mut c = 0;
    while c < CLASS_COUNT {
        b[c] = (pages[c] as usize * PAGE / sizes[c] as usize) as u16;
        c += 1;
    }
    b
}

const fn reciprocals() -> [u64; CLASS_COUNT] {
    let sizes = class_sizes();
    let mut r = [0u64; CLASS_COUNT];
    let mut c = 0;
    while c < CLASS_COUNT {
        r[c] = (1u64 << RECIPROCAL_SHIFT).div_ceil(sizes[c] as u64);
        c += 1;
    }
    r
}

/// The smallest class whose size is at least `size` and a multiple of
/// `align` (a power of two); `None` above [`MAX_SMALL`].
///
/// No search, and no branch on the alignment: the class of `size` rounded
/// up to a multiple of `align` is that class. Between 2^t and 2^(t+1) the
/// classes are every multiple of the step 2^(t-3) (of 16 up to 128). When
/// `align` is at most the step, every class there is a multiple of it;
/// when it is more, the rounded size, a multiple of `align` and so of the
/// step, is a class itself. And no class that is a multiple of `align`
/// lies between `size` and the rounded size.
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    let rounded = size.checked_add(align - 1)? & !(align - 1);
    (rounded <= MAX_SMALL).then(|| class_of_size(rounded))
}

/// `SMALL_CLASS[size.div_ceil(16)]`: the class of `size`, for every small
/// size (2 KiB of table). Every class is a multiple of 16, so a size's
/// class is that of the size rounded up to 16. One load, where a table
/// for the common sizes and arithmetic above it was a branch on the size
/// that a mix of sizes around the limit mispredicted.
const SMALL_CLASS: [u8; MAX_SMALL / 16 + 1] = small_class_table();

const fn small_class_table() -> [u8; MAX_SMALL / 16 + 1] {
    let mut table = [0u8; MAX_SMALL / 16 + 1];
    let mut i = 1;
    while i < table.len() {
        table[i] = class_by_arithmetic(i * 16) as u8;
        i += 1;
    }
    table
}

/// The smallest class holding `size` (1..=MAX_SMALL); no search.
#[inline]
fn class_of_size(size: usize) -> usize {
    SMALL_CLASS[size.div_ceil(16)] as usize
}

const fn class_by_arithmetic(size: usize) -> usize {
    if size <= LINEAR_LIMIT {
        return size.div_ceil(16) - 1;
    }
    // size-1 lies in [2^top, 2^(top+1)), whose classes step by 2^(top-3).
    let top = usize::BITS - 1 - (size - 1).leading_zeros();
    let shift = top - PER_DOUBLING.trailing_zeros();
    let within = ((size - 1) >> shift) - PER_DOUBLING; // 0..8
    LINEAR_CLASSES + (top as usize - 7) * PER_DOUBLING + within
}

/// `offset / CLASSES[class]` for offsets within a span, by multiplying by
/// the reciprocal: exact because offset · error < 2^40 for offsets below
/// 2^17 and sizes below 2^16 (tested over every offset and class).
#[inline]
pub fn block_index(offset: usize, class: usize) -> usize {
    ((offset as u64 * RECIPROCALS[class]) >> RECIPROCAL_SHIFT) as usize
}

const _: () = assert!(CLASSES[CLASS_COUNT - 1] as usize == MAX_SMALL);
const _: () = assert!(MAX_SPAN_PAGES * PAGE <= 1 << 17, "block_index is exact below 2^17");
