//! `mm::vm::Platform` on the real machine: page tables reached through the
//! physical-memory window, frames from the frame allocator, `invlpg`.

use crate::memory::{frames, phys_to_virt};
use mm::addr::{Pfn, VirtAddr};
use mm::frame::{FrameBlock, Owner};
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

/// Zero-sized: all state is in the frame allocator and the tables.
pub struct KernelPlatform;

fn entry(table: Pfn, index: usize) -> *mut u64 {
    assert!(index < 512, "page-table index {index}");
    // Every table frame is RAM mapped in the physical window.
    phys_to_virt(table).as_mut_ptr::<u64>().wrapping_add(index)
}

fn free(pfn: Pfn, owner: Owner) {
    if let Err(failure) = frames::free(FrameBlock::from_raw(pfn, 0, owner)) {
        panic!("the VMM freed a frame it does not own: {}", failure.error);
    }
}

impl mm::vm::Platform for KernelPlatform {
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

    fn alloc_root(&mut self) -> Option<Pfn> {
        // The root is charged like every table (and kept out of the reserve).
        let root = self.alloc_table()?;
        for index in 256..512 {
            let kernel_entry = self.read_entry(kernel_root(), index);
            self.write_entry(root, index, kernel_entry);
        }
        Some(root)
    }

    fn alloc_table(&mut self) -> Option<Pfn> {
        let block = frames::allocate_for_process(0, Owner::PageTable).ok()?;
        Some(block.into_raw().0)
    }

    fn free_table(&mut self, table: Pfn) {
        free(table, Owner::PageTable);
    }

    fn alloc_page(&mut self) -> Option<Pfn> {
        let block = frames::allocate_for_process(0, Owner::Process).ok()?;
        Some(block.into_raw().0)
    }

    fn free_page(&mut self, frame: Pfn) {
        free(frame, Owner::Process);
    }

    fn flush(&mut self, va: VirtAddr) {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va.0));
    }

    fn flush_all(&mut self) {
        // Reloading CR3 drops every non-global translation and every
        // paging-structure cache entry. The space being changed is the
        // active one, or was switched away from (which flushed it already).
        x86_64::instructions::tlb::flush_all();
    }

    fn yield_point(&mut self) {
        crate::arch::let_interrupts_in();
    }
}
