//! What the virtual memory manager needs from the machine. The kernel
//! implements it with real page tables, frames and `invlpg`
//! (`kernel/src/vm/platform.rs`); the host tests with a fake that models a
//! TLB (`tests.rs`), so the VMM's logic runs and is checked on the host.

use crate::addr::{Pfn, UserAddr};
use crate::files::FileError;
use crate::frame::FrameBlock;
use crate::policy::commit::CommitRefused;
use crate::swap::SwapError;

/// # Safety
///
/// The VMM trusts an implementation with the machine, so implementing it is
/// a promise that:
/// 1. `alloc_root` and `alloc_table` return zeroed frames (a root with the
///    kernel half filled in) that nobody else uses until they come back
///    through `free_table`; `alloc_page` likewise (zeroed when asked),
///    until `free_page`;
/// 2. `read_entry` and `write_entry`, given such a table frame, touch that
///    one entry and nothing else;
/// 3. `flush` and `flush_all` really drop what they say from the TLB and
///    the paging-structure caches of the address space being changed;
/// 4. values of the implementing type can only be made by the code that
///    owns the address spaces (the kernel's `KernelPlatform` has a private
///    constructor), so that no other code can write page tables through it.
///
/// Frames travel as [`FrameBlock`]s, each owned by exactly one side: the
/// VMM turns a block into a page-table entry when it maps it and back into
/// a block when the entry lets go of it (`vm::walk`), and hands it back.
#[allow(unsafe_code)] // the contract's declaration: no unsafe code runs here
pub unsafe trait Platform {
    /// Entry `index` (0..512) of the page table in frame `table`.
    fn read_entry(&self, table: Pfn, index: usize) -> u64;
    fn write_entry(&mut self, table: Pfn, index: usize, value: u64);
    /// A new top-level table whose kernel half (entries 256..512) is the
    /// kernel's and whose user half is empty.
    fn alloc_root(&mut self) -> Option<FrameBlock>;
    /// A zeroed frame for a page table.
    fn alloc_table(&mut self) -> Option<FrameBlock>;
    /// Frees a page table (or the root) frame.
    fn free_table(&mut self, table: FrameBlock);
    /// A frame for process memory, to be mapped at `va` of this space (the
    /// kernel records it in the reverse map that reclaim uses). Zeroed when
    /// `zeroed`; otherwise its contents are stale and the VMM overwrites
    /// every byte (swap-in) before the frame is mapped, or frees it unmapped.
    fn alloc_page(&mut self, va: UserAddr, zeroed: bool) -> Option<FrameBlock>;
    /// A frame for process memory at `va` that is zero already (the kernel
    /// takes it from its zeroed pool, filled in idle time), or `None` when
    /// none is to be had without zeroing one now or without pressing on
    /// memory. Fault-around asks for it: a page mapped ahead of a fault may
    /// cost only work done earlier. The default has no such frames.
    fn alloc_prezeroed_page(&mut self, _va: UserAddr) -> Option<FrameBlock> {
        None
    }
    /// About how many frames [`Platform::alloc_prezeroed_page`] could give
    /// now: a hint, read before any walk, so that fault-around with an empty
    /// pool costs almost nothing. It may be stale either way (the page
    /// allocation decides).
    fn prezeroed_hint(&self) -> u64 {
        0
    }
    /// Frees a process memory frame. The VMM calls it only after the page's
    /// entry is gone and [`Platform::flush`] has run for its address. A
    /// swap copy kept for the frame's page ([`Platform::settle_swap_in`])
    /// is of no use any more: the platform releases its slot.
    fn free_page(&mut self, frame: FrameBlock);
    /// Frees several process memory frames (a batch of evictions), on the
    /// same terms as [`Platform::free_page`]: a platform whose free takes
    /// locks takes them once for the batch.
    fn free_pages(&mut self, frames: impl Iterator<Item = FrameBlock>) {
        for frame in frames {
            self.free_page(frame);
        }
    }
    /// Whether every byte of the page in `frame` is zero: reclaim then
    /// makes the page demand-zero again instead of writing it to swap. The
    /// default never says so (every page goes to swap).
    fn is_zero_page(&self, _frame: Pfn) -> bool {
        false
    }
    /// The kernel's shared zero frame, if it has one: a frame that reads
    /// zero for as long as the kernel runs and is never freed or written.
    /// A read of a demand-zero page of a read-only region maps it
    /// read-only instead of taking a frame of its own. The default has
    /// none (every such read takes a zeroed frame).
    fn zero_frame(&self) -> Option<Pfn> {
        None
    }
    /// Writes the page in `frame` to a new swap slot and returns the slot.
    /// `SwapError::Full` when there is no slot (or no swap at all).
    fn swap_out(&mut self, frame: Pfn) -> Result<u64, SwapError>;
    /// Reads the pages of one swap-in into their new frames: `slots[0]`
    /// the faulting page's, then those read ahead, in address order, their
    /// slots wherever reclaim put them. Each run of consecutive slots
    /// ([`slot_runs`](crate::swap::slot_runs)) is one read; the kernel has
    /// them all on their way at once. The slots stay in use. Returns which
    /// pages were read (bit k for page k, [`pages_mask`]): a page ahead
    /// whose read failed is left in swap for a later fault. `Err` when the
    /// faulting page's read failed. Every read is over when this returns,
    /// failed or not.
    fn swap_in_pages(&mut self, slots: &[u64], frames: &[Pfn]) -> Result<u32, SwapError>;
    /// The page that held `slot` is gone (swapped in, decommitted,
    /// released): the slot may be reused.
    fn swap_release(&mut self, slot: u64);
    /// The page just read from `slot` into `frame` is mapped and not yet
    /// written. The platform may keep the slot as the page's copy (its swap
    /// cache, `mm::swap::cache`): true, the slot stays in use, and the
    /// platform releases it itself when `frame` is freed. Or it releases
    /// the slot now: false. The default keeps nothing.
    fn settle_swap_in(&mut self, _frame: Pfn, slot: u64) -> bool {
        self.swap_release(slot);
        false
    }
    /// The slot kept as the copy of the page in `frame`, if the platform
    /// still keeps one: it becomes the caller's, who has checked that the
    /// page was not written since it came in (its entry's dirty bit) and
    /// evicts it to that slot with no write.
    fn take_swap_copy(&mut self, _frame: Pfn) -> Option<u64> {
        None
    }
    /// The frame of the page cache that holds page `page` of `file` (read
    /// from the file's disk on a miss), counted as one more mapping: the
    /// VMM maps it read-only, and gives it back with
    /// [`Platform::unmap_file_page`] when the entry lets go of it. The
    /// frame is the page cache's, never freed by the VMM.
    fn map_file_page(&mut self, file: u16, page: u64) -> Result<Pfn, FileError>;
    /// An entry that mapped the cached page in `frame` is gone (changed
    /// and flushed).
    fn unmap_file_page(&mut self, frame: Pfn);
    /// Copies the page in `from` into `to`, a new frame nobody maps yet
    /// (copy on write).
    fn copy_page(&mut self, from: Pfn, to: Pfn);
    /// Promises `pages` more pages of memory to this space's writable
    /// private mappings (commit accounting, `mm::policy::commit`); the
    /// system's overcommit policy may refuse. For a `no_reserve` region the
    /// policy may also waive the charge: then `Ok(false)`.
    fn charge_commit(&mut self, pages: u64, no_reserve: bool) -> Result<bool, CommitRefused>;
    /// Gives back `pages` promised earlier (their mapping is gone).
    fn uncharge_commit(&mut self, pages: u64);
    /// Drops any cached translation of the page at `va` (x86: `invlpg`).
    fn flush(&mut self, va: UserAddr);
    /// Drops every cached translation *and* every cached upper-level entry
    /// (x86: reload CR3). The VMM calls it after unlinking page tables and
    /// before freeing their frames: CPUs cache the entries of the upper
    /// levels too (Intel's "paging-structure caches"), and a cached entry
    /// could otherwise still lead into a frame that was handed out again.
    fn flush_all(&mut self);
    /// Called by long operations (walks, commits, teardown) between page
    /// tables: the kernel lets pending interrupts in here, so that no system
    /// call holds the CPU with interrupts off for longer than one table's
    /// work. Must not touch the address space.
    fn yield_point(&mut self) {}
}

/// Bit k set for each page index k in `run` (at most 32 pages).
pub fn pages_mask(run: &core::ops::Range<usize>) -> u32 {
    let below = |k: usize| if k >= 32 { u32::MAX } else { (1u32 << k) - 1 };
    below(run.end) & !below(run.start)
}
