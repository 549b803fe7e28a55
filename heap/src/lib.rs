//! Pagekeeper's per-process heap: `malloc`/`free`/`realloc`/`calloc` on top
//! of three calls to the kernel ([`Kernel`]: reserve, release, decommit).
//! The kernel knows nothing of how the heap is built.
//!
//! ```text
//!  arena (reserved once, demand-zero)        metadata region (reserved once)
//! ┌────────┬────────┬────────┬─────┐        ┌──────────────┬──────────────┬───┐
//! │ span 0 │ span 1 │ span 2 │ ... │        │ SpanMeta 0   │ SpanMeta 1   │...│  one per span
//! │ 64 KiB │ 64 KiB │        │     │        ├──────────────┴──────────────┴───┤
//! └────────┴────────┴────────┴─────┘        │ large-block table (addr, len)   │
//!   each span: blocks of one size class      └─────────────────────────────────┘
//!   large blocks (> 32 KiB): a region each, released on free
//! ```
//!
//! - **Small sizes** (≤ 32 KiB) round up to one of [`CLASSES`] (multiples of
//!   16, about 25 % apart). A span serves one class; its `SpanMeta` holds a
//!   bitmap of free blocks with a summary word, so allocate and free are O(1):
//!   one `trailing_zeros` on the summary, one on the word.
//! - **Metadata out of band**: nothing the heap needs is stored in the arena.
//!   A program writing over or past its blocks corrupts only its own data;
//!   the next `malloc` and `free` work as before.
//! - **Checked frees**: a pointer is found by arithmetic (span index, block
//!   index) and checked against the bitmap: a double free or a pointer the
//!   heap never returned (foreign, interior, stale) is a [`HeapError`], and
//!   nothing changes.
//! - **Scavenge**: [`Heap::scavenge`] finds page-aligned runs of pages that
//!   hold only free blocks (or free spans) and hands each run of at least
//!   `min_len` bytes to a callback, by default [`Kernel::decommit`]. A
//!   per-span "clean pages" mask remembers which pages are known to read
//!   zero (untouched, or scavenged and not handed out since), so scavenge
//!   does not hand the same pages back twice and `calloc` skips zeroing them.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(any(test, feature = "host"))]
pub mod host;
#[cfg(test)]
mod tests;

use core::fmt;
use core::ptr::NonNull;

pub const PAGE: usize = abi::PAGE_SIZE as usize;
/// Size and alignment of a span.
pub const SPAN: usize = 64 * 1024;
/// Spans the arena grows by at once (1 MiB): few system calls, a small
/// commit charge ahead of use.
const GROW_SPANS: usize = 16;
const PAGES_PER_SPAN: usize = SPAN / PAGE;
/// Alignment of every block.
pub const MIN_ALIGN: usize = 16;
/// Largest small size; larger requests get a region of their own.
pub const MAX_SMALL: usize = 32 * 1024;
const MAX_BLOCKS: usize = SPAN / MIN_ALIGN;
const BITMAP_WORDS: usize = MAX_BLOCKS / 64;

/// Block sizes of the small classes.
pub const CLASSES: [u32; 40] = [
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280,
    1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480,
    24576, 28672, 32768,
];

const NONE: u32 = u32::MAX;
const FREE_SPAN: u8 = u8::MAX;

const _: () = assert!(CLASSES.len() < FREE_SPAN as usize);
const _: () = assert!(CLASSES[CLASSES.len() - 1] as usize == MAX_SMALL);
const _: () = assert!(BITMAP_WORDS <= 64, "the summary word covers the bitmap");

/// What the heap needs from the kernel.
///
/// # Safety
/// `reserve` must return the start of `len` bytes of readable, writable
/// memory that reads as zero and that nothing else uses until `release`;
/// `reserve_growable` likewise, except that the bytes need only be
/// writable once `grow` returned true for them; after `decommit(addr,
/// len)` those bytes must read as zero.
pub unsafe trait Kernel {
    /// Reserves `len` bytes (a multiple of [`SPAN`]), page-aligned.
    fn reserve(&mut self, len: usize) -> Option<usize>;
    /// Reserves `len` bytes of address space for the arena, not writable
    /// yet, so that the kernel promises no memory for them (commit
    /// accounting: a 64 MiB arena would otherwise count in full, as
    /// glibc's arenas avoid by mapping `PROT_NONE` first). Default: an
    /// ordinary reserve.
    fn reserve_growable(&mut self, len: usize) -> Option<usize> {
        self.reserve(len)
    }
    /// Makes `addr..addr+len` of a growable reservation writable; false
    /// when the kernel refuses (its commit limit). Default: already is.
    fn grow(&mut self, _addr: usize, _len: usize) -> bool {
        true
    }
    fn release(&mut self, addr: usize, len: usize);
    /// Takes the pages back; they read as zero on next touch.
    fn decommit(&mut self, addr: usize, len: usize);
}

/// Why a `free`/`realloc` was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// The block is already free.
    DoubleFree(usize),
    /// The heap never returned this pointer (or not this one: interior).
    ForeignPointer(usize),
}

/// Why [`Heap::allocate`] returned no block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The alignment is not a power of two, or is above a page.
    BadAlignment { align: usize },
    /// No span, no large-block slot, or the kernel refused a region.
    OutOfMemory,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::BadAlignment { align } => {
                write!(f, "alignment {align} is not a power of two up to a page")
            }
            AllocError::OutOfMemory => write!(f, "out of memory"),
        }
    }
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::DoubleFree(p) => write!(f, "double free of {p:#x}"),
            HeapError::ForeignPointer(p) => write!(f, "free of {p:#x}, which this heap did not allocate"),
        }
    }
}

/// Per-span metadata, in the metadata region.
#[repr(C)]
struct SpanMeta {
    /// Index into CLASSES, or FREE_SPAN.
    class: u8,
    /// The class the span last served (tells a double free from a foreign
    /// pointer once the span is free).
    last_class: u8,
    /// Pages known to read zero (bit per page).
    clean: u16,
    free_blocks: u16,
    /// Neighbours in the class's list of spans with free blocks, or in the
    /// list of free spans.
    next: u32,
    prev: u32,
    /// Bit w set when bitmap[w] has a free block.
    summary: u64,
    /// Bit set = block free.
    bitmap: [u64; BITMAP_WORDS],
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct LargeEntry {
    addr: usize,
    len: usize,
}

const TOMBSTONE: usize = 1;

/// Sizes of the heap's reservations.
#[derive(Clone, Copy, Debug)]
pub struct HeapConfig {
    /// Virtual size of the arena for small blocks (reserved, not committed).
    pub arena: usize,
    /// How many large blocks can be live at once.
    pub large_slots: usize,
}

impl Default for HeapConfig {
    fn default() -> Self {
        HeapConfig { arena: 256 << 20, large_slots: 4096 }
    }
}

/// Counters. `resident_estimate` counts arena pages that are not known to be
/// clean, plus large blocks: an upper bound on what the kernel has mapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live blocks, small and large (block sizes, not requested sizes).
    pub live_bytes: usize,
    pub live_blocks: usize,
    pub large_bytes: usize,
    pub spans_in_use: usize,
    pub resident_estimate: usize,
    pub scavenged_bytes: usize,
}

/// See the crate documentation.
pub struct Heap<K: Kernel> {
    kernel: K,
    arena: usize,
    spans: &'static mut [SpanMeta],
    large: &'static mut [LargeEntry],
    /// Spans ever used: spans[..bump] are initialised.
    bump: usize,
    /// Spans of the arena made writable so far ([`Kernel::grow`]).
    writable: usize,
    large_live: usize,
    free_spans: u32,
    partial: [u32; CLASSES.len()],
    stats: HeapStats,
}

/// The smallest class that fits `size` with `align`.
fn class_for(size: usize, align: usize) -> Option<usize> {
    CLASSES.iter().position(|&c| c as usize >= size && (c as usize).is_multiple_of(align))
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl<K: Kernel> Heap<K> {
    /// Reserves the arena and the metadata region. `None` if the kernel
    /// refuses them.
    pub fn new(mut kernel: K, config: HeapConfig) -> Option<Self> {
        let span_count = config.arena / SPAN;
        let meta_bytes = span_count * core::mem::size_of::<SpanMeta>();
        let large_bytes = config.large_slots * core::mem::size_of::<LargeEntry>();
        let meta_len = round_up(meta_bytes + large_bytes, SPAN);
        let arena = kernel.reserve_growable(span_count * SPAN)?;
        let meta = kernel.reserve(meta_len)?;
        // SAFETY: the kernel gave us `meta_len` zeroed bytes that only this
        // heap uses until it releases them (Kernel's contract); all-zero is a
        // valid SpanMeta and LargeEntry; SpanMeta needs 8-byte alignment and
        // the region is span-aligned; the two slices do not overlap.
        let (spans, large) = unsafe {
            let spans = core::slice::from_raw_parts_mut(meta as *mut SpanMeta, span_count);
            let large_at = round_up(meta + meta_bytes, core::mem::align_of::<LargeEntry>());
            let large = core::slice::from_raw_parts_mut(large_at as *mut LargeEntry, config.large_slots);
            (spans, large)
        };
        Some(Heap {
            kernel,
            arena,
            spans,
            large,
            bump: 0,
            writable: 0,
            large_live: 0,
            free_spans: NONE,
            partial: [NONE; CLASSES.len()],
            stats: HeapStats::default(),
        })
    }

    pub fn stats(&self) -> HeapStats {
        self.stats
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// The part of the arena spans have been taken from so far.
    pub fn arena_in_use(&self) -> core::ops::Range<usize> {
        self.arena..self.arena + self.bump * SPAN
    }

    /// The arena's address range.
    pub fn arena(&self) -> core::ops::Range<usize> {
        self.arena..self.arena + self.spans.len() * SPAN
    }

    /// `malloc`: a block of at least `size` bytes aligned to `align` (a power
    /// of two up to [`PAGE`]).
    pub fn allocate(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        self.allocate_inner(size.max(1), align.max(MIN_ALIGN)).map(|(p, _)| p)
    }

    /// `calloc`: like `allocate`, zeroed. Pages known to read zero are not
    /// written.
    pub fn allocate_zeroed(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        let (ptr, clean) = self.allocate_inner(size.max(1), align.max(MIN_ALIGN))?;
        if !clean {
            // SAFETY: the block was just allocated for at least `size` bytes
            // and belongs to the caller alone.
            unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, size) };
        }
        Ok(ptr)
    }

    /// Returns the block and whether its memory is known to read zero.
    fn allocate_inner(&mut self, size: usize, align: usize) -> Result<(NonNull<u8>, bool), AllocError> {
        if !align.is_power_of_two() || align > PAGE {
            return Err(AllocError::BadAlignment { align });
        }
        let block = match class_for(size, align).filter(|_| size <= MAX_SMALL) {
            Some(class) => self.allocate_small(class),
            None => self.allocate_large(size).map(|p| (p, true)),
        };
        block.ok_or(AllocError::OutOfMemory)
    }

    fn allocate_small(&mut self, class: usize) -> Option<(NonNull<u8>, bool)> {
        if self.partial[class] == NONE {
            let span = self.take_span()?;
            self.init_span(span, class);
            self.push(class, span);
        }
        let span = self.partial[class] as usize;
        let size = CLASSES[class] as usize;
        let meta = &mut self.spans[span];
        let word = meta.summary.trailing_zeros() as usize;
        let bit = meta.bitmap[word].trailing_zeros() as usize;
        meta.bitmap[word] &= !(1 << bit);
        if meta.bitmap[word] == 0 {
            meta.summary &= !(1 << word);
        }
        meta.free_blocks -= 1;
        let full = meta.free_blocks == 0;
        let block = word * 64 + bit;
        let pages = page_mask(block * size, size);
        let clean = meta.clean & pages == pages;
        self.stats.resident_estimate += (meta.clean & pages).count_ones() as usize * PAGE;
        meta.clean &= !pages;
        if full {
            self.unlink(class, span);
        }
        self.stats.live_bytes += size;
        self.stats.live_blocks += 1;
        let addr = self.arena + span * SPAN + block * size;
        Some((NonNull::new(addr as *mut u8).expect("arena is not at 0"), clean))
    }

    /// A free span: from the pool, or the next never-used one.
    fn take_span(&mut self) -> Option<usize> {
        if self.free_spans != NONE {
            let span = self.free_spans as usize;
            self.free_spans = self.spans[span].next;
            return Some(span);
        }
        if self.bump == self.spans.len() {
            return None;
        }
        if self.bump == self.writable {
            let grow = GROW_SPANS.min(self.spans.len() - self.writable);
            if !self.kernel.grow(self.arena + self.writable * SPAN, grow * SPAN) {
                return None;
            }
            self.writable += grow;
        }
        self.bump += 1;
        self.spans[self.bump - 1].clean = u16::MAX;
        Some(self.bump - 1)
    }

    fn init_span(&mut self, span: usize, class: usize) {
        let blocks = SPAN / CLASSES[class] as usize;
        let meta = &mut self.spans[span];
        meta.class = class as u8;
        meta.last_class = class as u8;
        meta.free_blocks = blocks as u16;
        meta.bitmap = [0; BITMAP_WORDS];
        meta.summary = 0;
        for w in 0..blocks.div_ceil(64) {
            let bits = (blocks - w * 64).min(64);
            meta.bitmap[w] = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
            meta.summary |= 1 << w;
        }
        self.stats.spans_in_use += 1;
    }

    fn push(&mut self, class: usize, span: usize) {
        let head = self.partial[class];
        self.spans[span].next = head;
        self.spans[span].prev = NONE;
        if head != NONE {
            self.spans[head as usize].prev = span as u32;
        }
        self.partial[class] = span as u32;
    }

    fn unlink(&mut self, class: usize, span: usize) {
        let (prev, next) = (self.spans[span].prev, self.spans[span].next);
        if prev == NONE {
            self.partial[class] = next;
        } else {
            self.spans[prev as usize].next = next;
        }
        if next != NONE {
            self.spans[next as usize].prev = prev;
        }
    }

    fn allocate_large(&mut self, size: usize) -> Option<NonNull<u8>> {
        let len = round_up(size, SPAN);
        if self.large_live == self.large.len() {
            return None;
        }
        let addr = self.kernel.reserve(len)?;
        let mut slot = self.large_hash(addr);
        while self.large[slot].addr > TOMBSTONE {
            slot = (slot + 1) % self.large.len();
        }
        self.large[slot] = LargeEntry { addr, len };
        self.large_live += 1;
        self.stats.large_bytes += len;
        self.stats.live_bytes += len;
        self.stats.resident_estimate += len;
        self.stats.live_blocks += 1;
        NonNull::new(addr as *mut u8)
    }

    fn large_hash(&self, addr: usize) -> usize {
        (addr / SPAN).wrapping_mul(0x9e37_79b9) % self.large.len()
    }

    /// Open addressing with linear probing; freed slots become tombstones so
    /// probes continue past them.
    fn find_large(&self, addr: usize) -> Option<usize> {
        let n = self.large.len();
        let start = self.large_hash(addr);
        for i in (0..n).map(|i| (start + i) % n) {
            match self.large[i].addr {
                0 => return None,
                a if a == addr => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// `free`. A pointer the heap did not return, or one already freed, is
    /// refused with an error and changes nothing.
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), HeapError> {
        let addr = ptr.as_ptr() as usize;
        if !self.arena().contains(&addr) {
            return self.free_large(addr);
        }
        let span = (addr - self.arena) / SPAN;
        let (class, block) = self.live_block(addr)?;
        let size = CLASSES[class] as usize;
        let (word, bit) = (block / 64, block % 64);
        let meta = &mut self.spans[span];
        meta.bitmap[word] |= 1 << bit;
        meta.summary |= 1 << word;
        meta.free_blocks += 1;
        let free_blocks = meta.free_blocks as usize;
        self.stats.live_bytes -= size;
        self.stats.live_blocks -= 1;
        if free_blocks == 1 {
            self.push(class, span);
        }
        if free_blocks == SPAN / size {
            self.unlink(class, span);
            self.spans[span].class = FREE_SPAN;
            self.spans[span].next = self.free_spans;
            self.free_spans = span as u32;
            self.stats.spans_in_use -= 1;
        }
        Ok(())
    }

    /// (class, block index) of the live block starting at `addr` in the
    /// arena. A block that is free now (its bit is set, or its whole span
    /// went back to the pool) is a DoubleFree; anything that is not a block
    /// start is a ForeignPointer.
    fn live_block(&self, addr: usize) -> Result<(usize, usize), HeapError> {
        let span = (addr - self.arena) / SPAN;
        let meta =
            self.spans.get(span).filter(|_| span < self.bump).ok_or(HeapError::ForeignPointer(addr))?;
        let class = if meta.class == FREE_SPAN { meta.last_class } else { meta.class } as usize;
        let size = CLASSES[class] as usize;
        let offset = addr - self.arena - span * SPAN;
        if !offset.is_multiple_of(size) || offset / size >= SPAN / size {
            return Err(HeapError::ForeignPointer(addr));
        }
        let block = offset / size;
        if meta.class == FREE_SPAN || meta.bitmap[block / 64] & (1 << (block % 64)) != 0 {
            return Err(HeapError::DoubleFree(addr));
        }
        Ok((class, block))
    }

    fn free_large(&mut self, addr: usize) -> Result<(), HeapError> {
        let slot = self.find_large(addr).ok_or(HeapError::ForeignPointer(addr))?;
        let LargeEntry { len, .. } = self.large[slot];
        self.large[slot] = LargeEntry { addr: TOMBSTONE, len: 0 };
        self.large_live -= 1;
        self.kernel.release(addr, len);
        self.stats.large_bytes -= len;
        self.stats.live_bytes -= len;
        self.stats.resident_estimate -= len;
        self.stats.live_blocks -= 1;
        Ok(())
    }

    /// Bytes usable in the block at `ptr` (its class size, or the large
    /// region's length).
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, HeapError> {
        let addr = ptr.as_ptr() as usize;
        if self.arena().contains(&addr) {
            let (class, _) = self.live_block(addr)?;
            return Ok(CLASSES[class] as usize);
        }
        let slot = self.find_large(addr).ok_or(HeapError::ForeignPointer(addr))?;
        Ok(self.large[slot].len)
    }

    /// `realloc`: keeps the block when the new size still fits its class,
    /// else moves the contents to a new block. `Ok(None)`: out of memory, the
    /// old block is untouched. (The alignment is the block's own, which
    /// `allocate` already accepted; a bad one is also `Ok(None)`.)
    pub fn reallocate(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
        align: usize,
    ) -> Result<Option<NonNull<u8>>, HeapError> {
        let old_size = self.usable_size(ptr)?;
        let align = align.max(MIN_ALIGN);
        let same_class = old_size <= MAX_SMALL
            && class_for(new_size.max(1), align).map(|c| CLASSES[c] as usize) == Some(old_size);
        if same_class
            || (old_size > MAX_SMALL && new_size > MAX_SMALL && round_up(new_size, SPAN) == old_size)
        {
            return Ok(Some(ptr));
        }
        let Ok(new) = self.allocate(new_size, align) else { return Ok(None) };
        // SAFETY: both blocks are live, distinct, and at least
        // min(old, new) bytes long.
        unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size)) };
        self.free(ptr)?;
        Ok(Some(new))
    }

    /// Calls `hand_back(addr, len)` for every run of at least `min_len`
    /// bytes of whole pages that hold only free blocks and are not known to
    /// be clean already. When `hand_back` returns true the pages read as zero
    /// afterwards and are marked clean. Returns the bytes handed back.
    pub fn scavenge(&mut self, min_len: usize, mut hand_back: impl FnMut(usize, usize) -> bool) -> usize {
        self.scavenge_with(min_len, usize::MAX, |_, addr, len| hand_back(addr, len))
    }

    /// [`Self::scavenge`] with the default callback: [`Kernel::decommit`].
    pub fn scavenge_to_kernel(&mut self, min_len: usize) -> usize {
        self.scavenge_some(min_len, usize::MAX)
    }

    /// Like [`Self::scavenge_to_kernel`], but hands back at most
    /// `max_bytes` (rounded down to pages; the rest of a longer run waits
    /// for the next call): one bounded step of a paced background
    /// scavenger.
    pub fn scavenge_some(&mut self, min_len: usize, max_bytes: usize) -> usize {
        self.scavenge_with(min_len, max_bytes, |kernel, addr, len| {
            kernel.decommit(addr, len);
            true
        })
    }

    /// One pass over the spans in use, until `max_bytes` are handed back;
    /// `hand_back` also gets the kernel.
    fn scavenge_with(
        &mut self,
        min_len: usize,
        max_bytes: usize,
        mut hand_back: impl FnMut(&mut K, usize, usize) -> bool,
    ) -> usize {
        let min_len = round_up(min_len.max(PAGE), PAGE);
        let max_pages = max_bytes / PAGE;
        let mut total = 0;
        let mut run: Option<(usize, usize)> = None; // (first page, pages), pages counted from the arena start
        let pages = self.bump * PAGES_PER_SPAN;
        for page in 0..=pages {
            let free = page < pages && self.page_is_free_and_dirty(page);
            match (&mut run, free) {
                (Some((_, n)), true) => *n += 1,
                (None, true) => run = Some((page, 1)),
                (Some((first, n)), false) => {
                    let (first, whole) = (*first, *n);
                    run = None;
                    let n = whole.min(max_pages - total / PAGE);
                    if whole * PAGE >= min_len
                        && n > 0
                        && hand_back(&mut self.kernel, self.arena + first * PAGE, n * PAGE)
                    {
                        self.mark_clean(first, n);
                        total += n * PAGE;
                    }
                    if total / PAGE == max_pages {
                        break;
                    }
                }
                (None, false) => {}
            }
        }
        self.stats.scavenged_bytes += total;
        total
    }

    fn page_is_free_and_dirty(&self, page: usize) -> bool {
        let (span, index) = (page / PAGES_PER_SPAN, page % PAGES_PER_SPAN);
        let meta = &self.spans[span];
        if meta.clean & (1 << index) != 0 {
            return false;
        }
        if meta.class == FREE_SPAN {
            return true;
        }
        let size = CLASSES[meta.class as usize] as usize;
        let blocks = SPAN / size;
        let first = index * PAGE / size;
        let last = (((index + 1) * PAGE).div_ceil(size)).min(blocks);
        (first..last).all(|b| meta.bitmap[b / 64] & (1 << (b % 64)) != 0)
    }

    fn mark_clean(&mut self, first: usize, n: usize) {
        for page in first..first + n {
            let meta = &mut self.spans[page / PAGES_PER_SPAN];
            meta.clean |= 1 << (page % PAGES_PER_SPAN);
        }
        self.stats.resident_estimate -= n * PAGE;
    }
}

/// Bit mask of the span's pages that bytes `offset..offset+len` touch.
fn page_mask(offset: usize, len: usize) -> u16 {
    let first = offset / PAGE;
    let last = (offset + len - 1) / PAGE;
    (first..=last).fold(0u16, |m, p| m | (1 << p))
}
