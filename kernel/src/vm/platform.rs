//! `mm::vm::Platform` on the real machine: page tables reached through the
//! physical-memory window, frames from the frame allocator, `invlpg`.

use super::{reclaim, SpaceId};
use crate::memory::{frames, phys_to_virt};
use mm::addr::{Pfn, UserAddr};
use mm::files::{FileError, FileId, FilePage};
use mm::frame::{FrameBlock, Owner};
use mm::paging::{ENTRIES, KERNEL_ROOT_ENTRIES};
use mm::policy::commit::CommitRefused;
use mm::swap::SwapError;
use mm::vm::MAX_FINISHED;
use spin::Once;

/// The kernel's own top-level table (CR3 at boot): the source of every
/// space's kernel half, and what runs when no space is active.
static KERNEL_ROOT: Once<Pfn> = Once::new();

pub fn init() {
    KERNEL_ROOT.call_once(|| {
        let (frame, _) = x86_64::registers::control::Cr3::read();
        Pfn::containing(frame.start_address().as_u64())
    });
}

pub fn kernel_root() -> Pfn {
    *KERNEL_ROOT.get().expect("vm::init has run")
}

/// All state is in the frame allocator and the tables. Only
/// `vm` can make one ([`KernelPlatform::new`] is private to it), so no other
/// code can write page tables through it (the `Platform` contract, point 4).
pub struct KernelPlatform {
    /// The space these tables belong to (what the reverse map records).
    space: SpaceId,
}

impl KernelPlatform {
    pub(super) const fn new(space: SpaceId) -> Self {
        KernelPlatform { space }
    }

    /// Whether the TLB can hold translations of this space: only when it
    /// is the active one. On one CPU without PCIDs, loading CR3 dropped
    /// every translation of the space switched away from (user entries
    /// are never global) and every paging-structure cache entry, so a
    /// change to a space that is not in CR3 needs no flush; an `invlpg`
    /// there would only drop the active space's entry for the same
    /// address. (With several CPUs, or PCIDs, this becomes "on which CPUs
    /// was it active since its last flush": Linux's mm_cpumask.)
    fn in_tlb(&self) -> bool {
        super::active() == Some(self.space)
    }
}

fn entry(table: Pfn, index: usize) -> *mut u64 {
    assert!(index < ENTRIES, "page-table index {index}");
    // Every table frame is RAM mapped in the physical window.
    phys_to_virt(table).as_mut_ptr::<u64>().wrapping_add(index)
}

fn free(blocks: impl Iterator<Item = FrameBlock>) {
    if let Err(failure) = frames::free_all(blocks) {
        panic!("the VMM freed a frame it does not own: {}", failure.error);
    }
}

// SAFETY: (1) tables and pages come from the frame allocator, zeroed and
// owned by nobody else, and go back to it; the root's kernel half is copied
// from the kernel's root. (2) entries are reached through the physical
// window at the table's own frame, index checked. (3) `invlpg` and a CR3
// reload. (4) the constructor is private to `vm`.
unsafe impl mm::vm::Platform for KernelPlatform {
    fn read_entry(&self, table: Pfn, index: usize) -> u64 {
        // SAFETY: `table` is a live page-table frame (the VMM only passes
        // frames it allocated or the root), mapped at the physical offset.
        unsafe { entry(table, index).read_volatile() }
    }

    fn write_entry(&mut self, table: Pfn, index: usize, value: u64) {
        // SAFETY: as in read_entry; the VMM serialises writers (the space
        // registry lock).
        unsafe { entry(table, index).write_volatile(value) }
    }

    fn alloc_root(&mut self) -> Option<FrameBlock> {
        // The root is charged like every table (and kept out of the reserve).
        let root = self.alloc_table()?;
        for index in KERNEL_ROOT_ENTRIES {
            let kernel_entry = self.read_entry(kernel_root(), index);
            self.write_entry(root.start(), index, kernel_entry);
        }
        Some(root)
    }

    fn alloc_table(&mut self) -> Option<FrameBlock> {
        frames::allocate_for_process(0, Owner::PageTable, true).ok()
    }

    fn free_table(&mut self, table: FrameBlock) {
        free(core::iter::once(table));
    }

    fn alloc_page(&mut self, va: UserAddr, zeroed: bool) -> Option<FrameBlock> {
        let block = frames::allocate_for_process(0, Owner::Process, zeroed).ok()?;
        reclaim::record(block.start(), self.space, va);
        Some(block)
    }

    fn alloc_prezeroed_page(&mut self, va: UserAddr) -> Option<FrameBlock> {
        let block = frames::allocate_prezeroed(Owner::Process)?;
        reclaim::record(block.start(), self.space, va);
        Some(block)
    }

    fn is_zero_page(&self, frame: Pfn) -> bool {
        crate::memory::frame_is_zero(frame)
    }

    fn prezeroed_hint(&self) -> u64 {
        frames::zeroed_pool_hint()
    }

    fn zero_frame(&self) -> Option<Pfn> {
        frames::zero_frame()
    }

    fn free_page(&mut self, frame: FrameBlock) {
        reclaim::forget(frame.start());
        crate::swap::frames_freed(core::iter::once(frame.start()));
        free(core::iter::once(frame));
    }

    fn free_pages(&mut self, mut frames: impl Iterator<Item = FrameBlock>) {
        // Gathered first, up to MAX_FINISHED at a time: the reverse map
        // forgets them under one lock, the frame allocator takes them
        // under one more.
        loop {
            let mut batch = [const { None }; MAX_FINISHED];
            let mut gathered = 0;
            // (`zip` asks the batch first, so no frame is taken and lost
            // once the batch is full.)
            for (slot, frame) in batch.iter_mut().zip(&mut frames) {
                (*slot, gathered) = (Some(frame), gathered + 1);
            }
            if gathered == 0 {
                return;
            }
            reclaim::forget_all(batch.iter().flatten().map(FrameBlock::start));
            crate::swap::frames_freed(batch.iter().flatten().map(FrameBlock::start));
            free(batch.into_iter().flatten());
        }
    }

    fn swap_out(&mut self, frame: Pfn) -> Result<u64, SwapError> {
        crate::swap::write_out(frame)
    }

    fn swap_in_pages(&mut self, slots: &[u64], frames: &[Pfn]) -> Result<u32, SwapError> {
        let (read, evicted_at) = crate::swap::read_pages(slots, frames)?;
        // Only the faulting page (the first) was asked for: the policy
        // learns its refault distance; the pages read ahead are admitted
        // as new pages are (alloc_page recorded them), with no distance.
        reclaim::refaulted(frames[0], evicted_at);
        Ok(read)
    }

    fn swap_release(&mut self, slot: u64) {
        crate::swap::release(slot);
    }

    fn settle_swap_in(&mut self, frame: Pfn, slot: u64) -> bool {
        crate::swap::settle_swap_in(frame, slot)
    }

    fn take_swap_copy(&mut self, frame: Pfn) -> Option<u64> {
        crate::swap::take_copy(frame)
    }

    fn map_file_page(&mut self, file: u16, page: u64) -> Result<Pfn, FileError> {
        crate::files::map_page(FilePage { file: FileId(file), page })
    }

    fn unmap_file_page(&mut self, frame: Pfn) {
        crate::files::unmap_page(frame);
    }

    fn charge_commit(&mut self, pages: u64, no_reserve: bool) -> Result<bool, CommitRefused> {
        crate::policy::commit::charge(pages, no_reserve)
    }

    fn uncharge_commit(&mut self, pages: u64) {
        crate::policy::commit::uncharge(pages);
    }

    fn copy_page(&mut self, from: Pfn, to: Pfn) {
        let (from, to) = (phys_to_virt(from).as_ptr::<u8>(), phys_to_virt(to).as_mut_ptr::<u8>());
        // SAFETY: both are RAM frames in the physical window; `to` is a new
        // frame nothing maps yet, so the two do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(from, to, mm::addr::PAGE_SIZE as usize) };
    }

    fn flush(&mut self, va: UserAddr) {
        if self.in_tlb() {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va.as_u64()));
        }
    }

    fn flush_all(&mut self) {
        // Reloading CR3 drops every non-global translation and every
        // paging-structure cache entry.
        if self.in_tlb() {
            x86_64::instructions::tlb::flush_all();
        }
    }

    fn yield_point(&mut self) {
        crate::arch::let_interrupts_in();
    }
}
