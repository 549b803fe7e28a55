//! Pagekeeper's per-process heap: `malloc`/`free`/`realloc`/`calloc` on top
//! of four calls to the kernel ([`Kernel`]: reserve, grow, decommit, give
//! back). The kernel knows nothing of how the heap is built.
//!
//! ```text
//!  arena (one reservation, made writable as it is used)
//! ┌──────────────┬──────────┬─────────────────────┬──────┬──────────────┐
//! │ span class 9 │ free run │ large block (pages) │ span │ never used … │
//! └──────────────┴──────────┴─────────────────────┴──────┴──────────────┘
//!  metadata (separate reservations, never in the arena)
//! ┌──────────────────────────────┐ ┌───────────────────────────────────┐
//! │ PageTag per arena page       │ │ SpanMeta per span: class, bitmap  │
//! │ (run bounds, span, clean)    │ │ of free blocks, clean-page mask   │
//! └──────────────────────────────┘ └───────────────────────────────────┘
//! ```
//!
//! - **Page heap** ([`pages`]): the arena is runs of whole pages, each
//!   free, a large block or a span, with boundary tags kept out of band
//!   and free runs in TLSF-style bins. Blocks above [`MAX_SMALL`] are page
//!   runs: they cost whole pages (not 64 KiB steps), and `realloc` grows
//!   them in place into a free neighbour or past the frontier, and shrinks
//!   them in place.
//! - **Small sizes** (≤ 32 KiB) round up to one of [`CLASSES`] (16 bytes
//!   apart to 128, then eight per doubling). A span of a few pages serves
//!   one class; its `SpanMeta` holds a bitmap of free blocks with a
//!   summary word, so allocate and free are O(1): one `trailing_zeros` on
//!   the summary, one on the word. The class comes from a table (up to 1
//!   KiB) or the size's top bit, and the block index from a multiply by a
//!   reciprocal: no division on the hot path.
//! - **Metadata out of band**: nothing the heap needs is stored in the
//!   arena. A program writing over or past its blocks corrupts only its own
//!   data; the next `malloc` and `free` work as before.
//! - **Checked frees**: a pointer is found by arithmetic (page, span, block
//!   index) and checked against the tags and the bitmap: a double free or a
//!   pointer the heap never returned (foreign, interior, stale) is a
//!   [`HeapError`], and nothing changes.
//! - **Scavenge**: [`Heap::scavenge`] finds runs of pages that hold only
//!   free blocks (free runs, and free pages of spans) and hands each run of
//!   at least `min_len` bytes to a callback, by default
//!   [`Kernel::decommit`]. Every page remembers whether it is known to read
//!   zero (untouched, or scavenged and not handed out since), so scavenge
//!   does not hand the same pages back twice and `calloc` skips zeroing them.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod classes;
#[cfg(any(test, feature = "host"))]
pub mod host;
mod pages;
mod span;
#[cfg(test)]
mod tests;

pub use classes::{CLASSES, CLASS_COUNT, MAX_SMALL};

use classes::{class_for, SPAN_PAGES};
use core::fmt;
use core::ptr::NonNull;
use pages::{Grow, PageHeap, PageTag, RunKind};
use span::{SpanMeta, NO_SPAN};

pub const PAGE: usize = abi::PAGE_SIZE as usize;
/// Alignment of every block.
pub const MIN_ALIGN: usize = 16;
/// Metadata is made writable in steps of this many bytes.
const META_STEP: usize = 64 * 1024;

/// What the heap needs from the kernel. It never gives a reservation
/// back: the arena and its metadata live as long as the process (free
/// runs give back their writability and commit charge, not the address
/// space).
///
/// # Safety
/// `reserve` must return the start of `len` bytes of address space that
/// read as zero and that nothing else uses; once `grow` returned true for
/// some of them they must be readable and writable; after `decommit(addr,
/// len)`, or a `give_back(addr, len)` that returned true, those bytes must
/// read as zero (and after a `give_back`, be writable again once `grow`
/// returned true for them).
pub unsafe trait Kernel {
    /// Reserves `len` bytes (a multiple of [`PAGE`]) of address space,
    /// page-aligned and not writable yet, so that the kernel promises no
    /// memory for them (commit accounting: a 256 MiB arena would otherwise
    /// count in full, as glibc's arenas avoid by mapping `PROT_NONE` first).
    fn reserve(&mut self, len: usize) -> Option<usize>;
    /// Makes `addr..addr+len` of a reservation writable; false when the
    /// kernel refuses (its commit limit).
    fn grow(&mut self, addr: usize, len: usize) -> bool;
    /// Takes the pages back; they read as zero on next touch.
    fn decommit(&mut self, addr: usize, len: usize);
    /// Takes the pages back and their writability with them, so that the
    /// kernel's promise of memory for them (the commit charge `grow` took)
    /// goes back too: decommit, then read-only (glibc maps `PROT_NONE`
    /// over a heap it trims under strict overcommit for the same reason).
    /// The heap calls `grow` on them before it uses them again. False if
    /// the kernel did not do it (the pages are then as they were).
    fn give_back(&mut self, addr: usize, len: usize) -> bool;
}

/// Why a `free`/`realloc` was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// The block is already free.
    DoubleFree(usize),
    /// The heap never returned this pointer (or not this one: interior),
    /// or the memory it was in has since gone back to the page heap.
    ForeignPointer(usize),
}

/// Why [`Heap::allocate`] returned no block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The alignment is not a power of two, or is above a page.
    BadAlignment { align: usize },
    /// The arena is full, or the kernel refused to make more of it writable.
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

/// Size of the heap's reservation.
#[derive(Clone, Copy, Debug)]
pub struct HeapConfig {
    /// Virtual size of the arena (reserved, made writable as used): the
    /// most the heap can hold, small and large blocks together.
    pub arena: usize,
}

impl Default for HeapConfig {
    fn default() -> Self {
        HeapConfig { arena: 256 << 20 }
    }
}

/// Counters. `resident_estimate` counts arena pages not known to be clean:
/// an upper bound on what the kernel has mapped for the arena. (Inside the
/// heap, `live_blocks` counts large blocks only and `live_bytes` is not
/// kept: [`Heap::stats`] derives it from `large_bytes` and adds the small
/// blocks from the span records.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live blocks, small and large (block sizes, not requested sizes).
    pub live_bytes: usize,
    pub live_blocks: usize,
    /// Bytes in live large blocks (whole pages).
    pub large_bytes: usize,
    pub spans_in_use: usize,
    pub resident_estimate: usize,
    pub scavenged_bytes: usize,
    /// Bytes of metadata made writable (tags and span records).
    pub metadata_bytes: usize,
    /// Bytes of free runs whose writability, and commit charge, went back
    /// to the kernel when it refused to grow the heap
    /// ([`Kernel::give_back`]); grown again when used.
    pub given_back_bytes: usize,
    /// Times the kernel refused to make more of the arena or the metadata
    /// writable.
    pub grows_refused: usize,
}

/// A growable metadata reservation: `len` bytes reserved, `writable` usable.
struct MetaRegion {
    addr: usize,
    len: usize,
    writable: usize,
}

impl MetaRegion {
    fn reserve(kernel: &mut impl Kernel, len: usize) -> Option<MetaRegion> {
        let len = len.div_ceil(META_STEP) * META_STEP;
        Some(MetaRegion { addr: kernel.reserve(len)?, len, writable: 0 })
    }

    /// Makes the first `bytes` writable (in META_STEP steps).
    fn ensure(&mut self, kernel: &mut impl Kernel, bytes: usize, stats: &mut HeapStats) -> bool {
        if bytes <= self.writable {
            return true;
        }
        let target = bytes.div_ceil(META_STEP).saturating_mul(META_STEP).min(self.len);
        if target < bytes {
            return false;
        }
        if !kernel.grow(self.addr + self.writable, target - self.writable) {
            stats.grows_refused += 1;
            return false;
        }
        stats.metadata_bytes += target - self.writable;
        self.writable = target;
        true
    }
}

/// The page heap's way to the kernel: grows the arena and the tags with it.
struct ArenaGrowth<'a, K: Kernel> {
    kernel: &'a mut K,
    arena: usize,
    tags: &'a mut MetaRegion,
    stats: &'a mut HeapStats,
}

impl<K: Kernel> Grow for ArenaGrowth<'_, K> {
    fn grow_pages(&mut self, first: usize, count: usize) -> bool {
        let tag_bytes = (first + count) * core::mem::size_of::<PageTag>();
        if !self.tags.ensure(self.kernel, tag_bytes, self.stats) {
            return false;
        }
        let granted = self.kernel.grow(self.arena + first * PAGE, count * PAGE);
        self.stats.grows_refused += usize::from(!granted);
        granted
    }
}

/// See the crate documentation.
pub struct Heap<K: Kernel> {
    kernel: K,
    arena: usize,
    pages: PageHeap,
    tag_region: MetaRegion,
    spans: &'static mut [SpanMeta],
    span_region: MetaRegion,
    /// Span records ever used: spans[..span_bump] are initialised.
    span_bump: usize,
    /// Span records free for reuse (linked through `next`).
    free_span_records: u32,
    /// Per class, the spans with free blocks.
    partial: [u32; CLASS_COUNT],
    stats: HeapStats,
    /// `stats.grows_refused` when free runs were last given back: a
    /// failed allocation gives them back only after a new refusal (an
    /// arena that is merely full has nothing to gain from it).
    refusals_answered: usize,
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Where a live block is.
enum Located {
    Small { span: usize, block: usize },
    Large { page: usize, pages: usize },
}

impl<K: Kernel> Heap<K> {
    /// Reserves the arena and the metadata regions (nothing writable yet).
    /// `None` if the kernel refuses them.
    pub fn new(mut kernel: K, config: HeapConfig) -> Option<Self> {
        let page_count = config.arena / PAGE;
        // Every span has at least four pages.
        let span_count = page_count / 4;
        let arena = kernel.reserve(page_count * PAGE)?;
        let tag_region = MetaRegion::reserve(&mut kernel, page_count * core::mem::size_of::<PageTag>())?;
        let span_region = MetaRegion::reserve(&mut kernel, span_count * core::mem::size_of::<SpanMeta>())?;
        // SAFETY: the kernel reserved both regions for this heap alone
        // (Kernel's contract); they read as zero, which is a valid PageTag
        // and SpanMeta; both types need at most 8-byte alignment and the
        // regions are page-aligned. Only the writable prefix is ever touched:
        // tags below the arena's writable end (ArenaGrowth grows them
        // together), span records below span_region.writable.
        let (tags, spans) = unsafe {
            (
                core::slice::from_raw_parts_mut(tag_region.addr as *mut PageTag, page_count),
                core::slice::from_raw_parts_mut(span_region.addr as *mut SpanMeta, span_count),
            )
        };
        Some(Heap {
            kernel,
            arena,
            pages: PageHeap::new(tags),
            tag_region,
            spans,
            span_region,
            span_bump: 0,
            free_span_records: NO_SPAN,
            partial: [NO_SPAN; CLASS_COUNT],
            stats: HeapStats::default(),
            refusals_answered: 0,
        })
    }

    /// The counters. Small blocks are counted here, from the span records
    /// (one pass over them), rather than on every malloc and free: the
    /// hot paths stay a few instructions shorter, and the counts cannot
    /// drift from the bitmaps.
    pub fn stats(&self) -> HeapStats {
        let mut stats = self.stats;
        stats.live_bytes = stats.large_bytes;
        stats.given_back_bytes = self.pages.given_back * PAGE;
        for meta in self.spans[..self.span_bump].iter().filter(|m| m.in_use()) {
            let live = meta.live_blocks();
            stats.live_blocks += live;
            stats.live_bytes += live * meta.size as usize;
        }
        stats
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// The part of the arena handed out so far (up to the frontier).
    pub fn arena_in_use(&self) -> core::ops::Range<usize> {
        self.arena..self.arena + self.pages.frontier() * PAGE
    }

    /// The arena's address range.
    pub fn arena(&self) -> core::ops::Range<usize> {
        self.arena..self.arena + self.pages.capacity() * PAGE
    }

    /// Bytes in free page runs (writable, not in any span or block).
    pub fn free_run_bytes(&self) -> usize {
        self.pages.free_pages * PAGE
    }

    /// Bytes of the arena writable now: grown, less what was given back.
    pub fn arena_writable(&self) -> usize {
        (self.pages.writable() - self.pages.given_back) * PAGE
    }

    /// `malloc`: a block of at least `size` bytes aligned to `align` (a power
    /// of two up to [`PAGE`]).
    #[inline]
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
    #[inline]
    fn allocate_inner(&mut self, size: usize, align: usize) -> Result<(NonNull<u8>, bool), AllocError> {
        if !align.is_power_of_two() || align > PAGE {
            return Err(AllocError::BadAlignment { align });
        }
        let class = class_for(size, align);
        let block = self.allocate_block(size, class);
        block
            .or_else(|| self.retry_after_giving_back(|heap| heap.allocate_block(size, class)))
            .ok_or(AllocError::OutOfMemory)
    }

    /// A block of `size` bytes: from its class's spans, or a page run.
    #[inline]
    fn allocate_block(&mut self, size: usize, class: Option<usize>) -> Option<(NonNull<u8>, bool)> {
        match class {
            Some(class) => self.allocate_small(class),
            None => self.allocate_large(size.div_ceil(PAGE)),
        }
    }

    /// No room for what `retry` asks: when the kernel refused to grow the
    /// heap, the free runs and the spans' free pages give their commit
    /// charge back, and `retry` is tried once more, now that the frontier
    /// may move on by as much.
    #[cold]
    #[inline(never)]
    fn retry_after_giving_back<T>(&mut self, retry: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.give_back_free_pages() == 0 {
            return None;
        }
        retry(self)
    }

    /// [`PageHeap::give_back`] to the kernel, and the spans' pages that
    /// hold only free blocks, if it refused a grow since the last time;
    /// the pages given back leave the resident estimate. Returns how many
    /// were given back.
    fn give_back_free_pages(&mut self) -> usize {
        if self.stats.grows_refused == self.refusals_answered {
            return 0;
        }
        self.refusals_answered = self.stats.grows_refused;
        let (kernel, arena) = (&mut self.kernel, self.arena);
        let (mut given, mut were_dirty) =
            self.pages.give_back(|first, count| kernel.give_back(arena + first * PAGE, count * PAGE));
        // Only spans with a free block can have a free page: those in
        // the classes' lists.
        for class in 0..CLASS_COUNT {
            let mut span = self.partial[class];
            while span != NO_SPAN {
                let (pages, dirty) = self.give_back_span_pages(span as usize);
                (given, were_dirty) = (given + pages, were_dirty + dirty);
                span = self.spans[span as usize].next;
            }
        }
        self.stats.resident_estimate -= were_dirty * PAGE;
        given
    }

    /// Gives back the writability of `span`'s pages that hold only free
    /// blocks, a call per stretch of them; returns the pages given back
    /// and how many of them were not clean.
    fn give_back_span_pages(&mut self, span: usize) -> (usize, usize) {
        let meta = &mut self.spans[span];
        let (mut mask, first_page) = (meta.pages_to_give_back(), meta.first_page as usize);
        let (mut given, mut dirty) = (0, 0);
        while mask != 0 {
            let (first, len) = (mask.trailing_zeros(), (mask >> mask.trailing_zeros()).trailing_ones());
            let bits = (((1u64 << len) - 1) as u32) << first;
            mask &= !bits;
            let addr = self.arena + (first_page + first as usize) * PAGE;
            if self.kernel.give_back(addr, len as usize * PAGE) {
                dirty += (bits & !meta.clean).count_ones() as usize;
                meta.clean |= bits;
                meta.given_back |= bits;
                self.pages.mark_given_back(first_page + first as usize, len as usize);
                given += len as usize;
            }
        }
        (given, dirty)
    }

    /// Grows again the pages given back that the block `span` hands out
    /// next touches. False, with the span unchanged but for the pages
    /// grown, when the kernel refuses.
    #[cold]
    #[inline(never)]
    fn grow_back_next_block(&mut self, span: usize) -> bool {
        let meta = &self.spans[span];
        let mask = meta.given_back & meta.next_block_pages();
        if mask == 0 {
            return true;
        }
        let first_page = meta.first_page as usize;
        let (first, last) = (mask.trailing_zeros() as usize, 31 - mask.leading_zeros() as usize);
        let (heap, mut growth) = self.grower();
        let grown = heap.grow_given_back(first_page + first, last + 1 - first, &mut growth).is_some();
        // The block's pages form one stretch; those grown are the ones
        // whose tags no longer say given back.
        let meta = &mut self.spans[span];
        for i in first..=last {
            if !self.pages.tag(first_page + i).is_some_and(|tag| tag.given_back) {
                meta.given_back &= !(1 << i);
            }
        }
        grown
    }

    #[inline]
    fn allocate_small(&mut self, class: usize) -> Option<(NonNull<u8>, bool)> {
        if self.partial[class] == NO_SPAN {
            let span = self.new_span(class)?;
            self.push(class, span);
        }
        let span = self.partial[class] as usize;
        if self.spans[span].given_back != 0 && !self.grow_back_next_block(span) {
            return None;
        }
        let meta = &mut self.spans[span];
        let (offset, newly_dirty, clean) = meta.take_block();
        let full = meta.free_blocks == 0;
        let addr = self.arena + meta.first_page as usize * PAGE + offset;
        self.stats.resident_estimate += newly_dirty * PAGE;
        if full {
            self.unlink(class, span);
        }
        Some((NonNull::new(addr as *mut u8).expect("arena is not at 0"), clean))
    }

    fn grower(&mut self) -> (&mut PageHeap, ArenaGrowth<'_, K>) {
        let growth = ArenaGrowth {
            kernel: &mut self.kernel,
            arena: self.arena,
            tags: &mut self.tag_region,
            stats: &mut self.stats,
        };
        (&mut self.pages, growth)
    }

    /// A span of `class` from the page heap, with a record of its own.
    fn new_span(&mut self, class: usize) -> Option<usize> {
        let record = self.take_span_record()?;
        let pages = SPAN_PAGES[class] as usize;
        let (heap, mut growth) = self.grower();
        let Some(first) = heap.allocate(pages, RunKind::Span, &mut growth) else {
            self.spans[record].next = self.free_span_records;
            self.free_span_records = record as u32;
            return None;
        };
        let mut clean = 0u32;
        for i in 0..pages {
            let tag = self.pages.tag_mut(first + i);
            tag.span = record as u32 + 1;
            tag.class = class as u8;
            tag.index_in_span = i as u8;
            clean |= (tag.clean as u32) << i;
        }
        self.spans[record].init(class, first, pages, clean);
        self.stats.spans_in_use += 1;
        Some(record)
    }

    fn take_span_record(&mut self) -> Option<usize> {
        if self.free_span_records != NO_SPAN {
            let record = self.free_span_records as usize;
            self.free_span_records = self.spans[record].next;
            return Some(record);
        }
        let bytes = (self.span_bump + 1) * core::mem::size_of::<SpanMeta>();
        if self.span_bump == self.spans.len()
            || !self.span_region.ensure(&mut self.kernel, bytes, &mut self.stats)
        {
            return None;
        }
        self.span_bump += 1;
        Some(self.span_bump - 1)
    }

    /// Gives an empty span's pages back to the page heap.
    fn release_span(&mut self, span: usize) {
        let meta = &self.spans[span];
        let (first, pages, clean) = (meta.first_page as usize, meta.pages as usize, meta.clean);
        for i in 0..pages {
            let tag = self.pages.tag_mut(first + i);
            tag.span = 0;
            tag.clean = clean & (1 << i) != 0;
        }
        self.pages.free(first, pages);
        self.spans[span].retire();
        self.spans[span].next = self.free_span_records;
        self.free_span_records = span as u32;
        self.stats.spans_in_use -= 1;
    }

    fn push(&mut self, class: usize, span: usize) {
        let head = self.partial[class];
        self.spans[span].next = head;
        self.spans[span].prev = NO_SPAN;
        if head != NO_SPAN {
            self.spans[head as usize].prev = span as u32;
        }
        self.partial[class] = span as u32;
    }

    fn unlink(&mut self, class: usize, span: usize) {
        let (prev, next) = (self.spans[span].prev, self.spans[span].next);
        if prev == NO_SPAN {
            self.partial[class] = next;
        } else {
            self.spans[prev as usize].next = next;
        }
        if next != NO_SPAN {
            self.spans[next as usize].prev = prev;
        }
    }

    /// A run of `pages` pages; known clean when every page was.
    fn allocate_large(&mut self, pages: usize) -> Option<(NonNull<u8>, bool)> {
        let (heap, mut growth) = self.grower();
        let first = heap.allocate(pages, RunKind::Large, &mut growth)?;
        let dirtied = self.pages.set_clean(first, pages, false);
        self.stats.resident_estimate += dirtied * PAGE;
        self.stats.large_bytes += pages * PAGE;
        self.stats.live_blocks += 1;
        let addr = self.arena + first * PAGE;
        Some((NonNull::new(addr as *mut u8).expect("arena is not at 0"), dirtied == pages))
    }

    /// Finds the live block starting at `addr`. A block that is free now is
    /// a DoubleFree when the heap can tell (its span is still a span);
    /// anything else that is not a live block start is a ForeignPointer.
    #[inline]
    fn locate(&self, addr: usize) -> Result<Located, HeapError> {
        let foreign = HeapError::ForeignPointer(addr);
        let offset = addr.checked_sub(self.arena).ok_or(foreign)?;
        let page = offset / PAGE;
        let tag = self.pages.tag(page).ok_or(foreign)?;
        if tag.span != 0 {
            let span = tag.span as usize - 1;
            let in_span = tag.index_in_span as usize * PAGE + offset % PAGE;
            let block = span::block_at(in_span, tag.class as usize).map(|b| (b, self.spans[span].is_live(b)));
            return match block {
                Some((block, true)) => Ok(Located::Small { span, block }),
                Some((_, false)) => Err(HeapError::DoubleFree(addr)),
                None => Err(foreign),
            };
        }
        match self.pages.run_at(page) {
            Some((RunKind::Large, pages)) if offset % PAGE == 0 => Ok(Located::Large { page, pages }),
            _ => Err(foreign),
        }
    }

    /// `free`. A pointer the heap did not return, or one already freed, is
    /// refused with an error and changes nothing.
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), HeapError> {
        match self.locate(ptr.as_ptr() as usize)? {
            Located::Small { span, block } => self.free_small(span, block),
            Located::Large { page, pages } => self.free_large(page, pages),
        }
        Ok(())
    }

    #[inline]
    fn free_small(&mut self, span: usize, block: usize) {
        let meta = &mut self.spans[span];
        let class = meta.class as usize;
        meta.put_block(block);
        let free_blocks = meta.free_blocks;
        if free_blocks == 1 {
            self.push(class, span);
        }
        if free_blocks == classes::BLOCKS[class] {
            // Keep one empty span per class, so a block allocated and
            // freed in a loop does not make and unmake a span each time.
            let only = self.partial[class] == span as u32 && self.spans[span].next == NO_SPAN;
            if !only {
                self.unlink(class, span);
                self.release_span(span);
            }
        }
    }

    fn free_large(&mut self, page: usize, pages: usize) {
        self.pages.free(page, pages);
        self.stats.large_bytes -= pages * PAGE;
        self.stats.live_blocks -= 1;
    }

    /// Bytes usable in the block at `ptr` (its class size, or its pages).
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, HeapError> {
        Ok(match self.locate(ptr.as_ptr() as usize)? {
            Located::Small { span, .. } => CLASSES[self.spans[span].class as usize] as usize,
            Located::Large { pages, .. } => pages * PAGE,
        })
    }

    /// `realloc`: keeps a small block when the new size is in its class or
    /// at least a quarter of it; a large block grows in place into free
    /// pages after it (or past the frontier) and shrinks in place (its
    /// tail pages freed) while the new size is at least a quarter of the
    /// pages it keeps; otherwise the contents move to a new block.
    /// `Ok(None)`: out of memory, the old block is untouched. (The
    /// alignment is the block's own, which `allocate` already accepted; a
    /// bad one is also `Ok(None)`.)
    pub fn reallocate(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
        align: usize,
    ) -> Result<Option<NonNull<u8>>, HeapError> {
        self.reallocate_in_use(ptr, usize::MAX, new_size, align)
    }

    /// [`Self::reallocate`] for a caller that knows how many bytes of the
    /// block hold data (`in_use`: the size it last asked for, as
    /// `GlobalAlloc::realloc`'s layout says): a move copies only those, not
    /// the block's whole class or last page. A wrong `in_use` can only
    /// lose the caller's own bytes past it.
    pub fn reallocate_in_use(
        &mut self,
        ptr: NonNull<u8>,
        in_use: usize,
        new_size: usize,
        align: usize,
    ) -> Result<Option<NonNull<u8>>, HeapError> {
        let new_size = new_size.max(1);
        let align = align.max(MIN_ALIGN);
        let located = self.locate(ptr.as_ptr() as usize)?;
        let (old_size, in_place) = match located {
            Located::Small { span, .. } => {
                let usable = CLASSES[self.spans[span].class as usize] as usize;
                (usable, new_size <= usable && Self::worth_keeping(usable, new_size))
            }
            Located::Large { page, pages } => {
                let want = new_size.div_ceil(PAGE);
                if new_size > MAX_SMALL {
                    let block = (ptr, page, pages);
                    let resized = self.resize_or_move_large(block, want, in_use);
                    let retry = |heap: &mut Self| heap.resize_or_move_large(block, want, in_use);
                    return Ok(resized.or_else(|| self.retry_after_giving_back(retry)));
                }
                if Self::worth_keeping(want * PAGE, new_size) && self.resize_large(page, pages, want) {
                    return Ok(Some(ptr));
                }
                (pages * PAGE, false)
            }
        };
        if in_place {
            return Ok(Some(ptr));
        }
        let Ok(new) = self.allocate(new_size, align) else { return Ok(None) };
        // SAFETY: both blocks are live, distinct, and at least
        // min(old, new) bytes long.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size).min(in_use))
        };
        match located {
            Located::Small { span, block } => self.free_small(span, block),
            Located::Large { page, pages } => self.free_large(page, pages),
        }
        Ok(Some(new))
    }

    /// A block shrunk to `new_size` stays put in `kept` bytes when they
    /// are at most four times the data: at most three quarters idle, and no
    /// copy. (Moving every shrink out of a class, or out of its pages,
    /// copied 23 MB more per pass than talc in the 30,000-byte mix; with
    /// this bound the heap copies less than talc, and its efficiency in
    /// the budget stays above 95 %, docs/heap.md.)
    fn worth_keeping(kept: usize, new_size: usize) -> bool {
        new_size.saturating_mul(4) >= kept
    }

    /// Large block `(ptr, page, pages)` resized to `want` pages in place,
    /// or else moved.
    fn resize_or_move_large(
        &mut self,
        block: (NonNull<u8>, usize, usize),
        want: usize,
        in_use: usize,
    ) -> Option<NonNull<u8>> {
        let (ptr, page, pages) = block;
        if self.resize_large(page, pages, want) {
            return Some(ptr);
        }
        self.move_large(page, pages, want, in_use)
    }

    /// Moves large block `page` (of `pages`) to a run of `want` pages,
    /// its contents with it. The block is freed first, so that its own
    /// pages and the free runs on either side count toward the new run: a
    /// block between two holes that together fit slides into them, where
    /// allocating before freeing would find no room (the heap's metadata
    /// is out of band, so freeing leaves the contents in place until they
    /// are copied). None, with the block as it was, when no run fits.
    fn move_large(&mut self, page: usize, pages: usize, want: usize, in_use: usize) -> Option<NonNull<u8>> {
        let run = self.pages.free(page, pages);
        let (heap, mut growth) = self.grower();
        let Some(first) = heap.allocate(want, RunKind::Large, &mut growth) else {
            self.pages.take_back(run, page, pages, RunKind::Large);
            return None;
        };
        let dirtied = self.pages.set_clean(first, want, false);
        self.stats.resident_estimate += dirtied * PAGE;
        self.stats.large_bytes = self.stats.large_bytes + want * PAGE - pages * PAGE;
        let (from, to) = (self.arena + page * PAGE, self.arena + first * PAGE);
        // SAFETY: both ranges are in the writable arena (the old block's
        // pages were live until just now; the new run was just allocated);
        // nothing has written to the old pages since they were freed (only
        // out-of-band tags changed). `copy` allows the overlap when the new
        // run covers part of the old one.
        unsafe { core::ptr::copy(from as *const u8, to as *mut u8, (pages.min(want) * PAGE).min(in_use)) };
        NonNull::new(to as *mut u8)
    }

    /// Resizes large block `page` (of `pages`) to `want` pages in place.
    fn resize_large(&mut self, page: usize, pages: usize, want: usize) -> bool {
        if want < pages {
            self.pages.shrink(page, pages, want);
        } else if want > pages {
            let (heap, mut growth) = self.grower();
            if !heap.grow_in_place(page, pages, want, &mut growth) {
                return false;
            }
            let dirtied = self.pages.set_clean(page + pages, want - pages, false);
            self.stats.resident_estimate += dirtied * PAGE;
        }
        let delta = want as isize - pages as isize;
        self.stats.large_bytes = self.stats.large_bytes.wrapping_add_signed(delta * PAGE as isize);
        true
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

    /// One pass over the runs up to the frontier, until `max_bytes` are
    /// handed back; `hand_back` also gets the kernel.
    fn scavenge_with(
        &mut self,
        min_len: usize,
        max_bytes: usize,
        mut hand_back: impl FnMut(&mut K, usize, usize) -> bool,
    ) -> usize {
        let min_pages = round_up(min_len.max(PAGE), PAGE) / PAGE;
        let max_pages = max_bytes / PAGE;
        let mut total = 0; // pages
        let mut run: Option<(usize, usize)> = None; // (first page, pages)
        let mut flush = |heap: &mut Self, run: &mut Option<(usize, usize)>, total: &mut usize| {
            let Some((first, whole)) = run.take() else { return };
            let n = whole.min(max_pages - *total);
            if whole >= min_pages && n > 0 && hand_back(&mut heap.kernel, heap.arena + first * PAGE, n * PAGE)
            {
                heap.mark_clean(first, n);
                *total += n;
            }
        };
        let mut page = 0;
        while page < self.pages.frontier() && total < max_pages {
            let (kind, len) = self.pages.run_at(page).expect("runs tile the arena up to the frontier");
            for p in page..page + len {
                if self.page_is_free_and_dirty(p, kind) {
                    match &mut run {
                        Some((_, n)) => *n += 1,
                        None => run = Some((p, 1)),
                    }
                } else {
                    flush(self, &mut run, &mut total);
                }
            }
            page += len;
        }
        flush(self, &mut run, &mut total);
        self.stats.scavenged_bytes += total * PAGE;
        total * PAGE
    }

    /// The page (in a run of `kind`) holds no live block and may hold data.
    fn page_is_free_and_dirty(&self, page: usize, kind: RunKind) -> bool {
        let tag = self.pages.tag(page).expect("below the frontier");
        match kind {
            RunKind::Span => {
                let meta = &self.spans[tag.span as usize - 1];
                meta.page_is_free_and_dirty(page - meta.first_page as usize)
            }
            RunKind::Free => !tag.clean,
            RunKind::Large | RunKind::Inside => false,
        }
    }

    /// Checks the page heap and every span against its tags (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut live = 0;
        for (first, len, kind) in self.pages.check() {
            if kind != RunKind::Span {
                assert!((first..first + len).all(|p| self.pages.tag(p).unwrap().span == 0));
                live += (kind == RunKind::Large) as usize;
                continue;
            }
            let record = self.pages.tag(first).unwrap().span as usize - 1;
            let meta = &self.spans[record];
            assert_eq!((meta.first_page as usize, meta.pages as usize), (first, len), "span record");
            for (i, p) in (first..first + len).enumerate() {
                let tag = self.pages.tag(p).unwrap();
                assert_eq!(
                    (tag.span as usize, tag.class, tag.index_in_span as usize),
                    (record + 1, meta.class, i)
                );
                assert_eq!(tag.given_back, meta.given_back & (1 << i) != 0, "span page {p}: given back?");
                assert!(!tag.given_back || meta.page_is_free(i), "span page {p}: given back and in use");
            }
            assert_eq!(meta.given_back & !meta.clean, 0, "span pages given back and dirty");
            live += classes::BLOCKS[meta.class as usize] as usize - meta.free_blocks as usize;
        }
        assert_eq!(live, self.stats().live_blocks, "live blocks");
    }

    fn mark_clean(&mut self, first: usize, n: usize) {
        for page in first..first + n {
            let span = self.pages.tag_mut(page).span;
            if span != 0 {
                let meta = &mut self.spans[span as usize - 1];
                meta.clean |= 1 << (page - meta.first_page as usize);
            } else {
                self.pages.tag_mut(page).clean = true;
            }
        }
        self.stats.resident_estimate -= n * PAGE;
    }
}
