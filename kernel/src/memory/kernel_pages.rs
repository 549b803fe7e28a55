//! Mapping pages into the kernel half, for kernel-owned regions such as the
//! heap. Page-table frames come from the frame allocator as
//! `Owner::PageTable`.

use super::{frames, phys_to_virt};
use mm::addr::Pfn;
use mm::frame::{FrameBlock, Owner};
use mm::paging::{entry_span, KERNEL_ROOT_ENTRIES, KERNEL_START, LEVELS};
use spin::Mutex;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// Serialises changes to the kernel's page tables.
static LOCK: Mutex<()> = Mutex::new(());

/// Hands page-table frames from the frame allocator to the `x86_64` mapper.
struct PageTableFrames;

// SAFETY: every frame returned was just allocated (so unused) and zeroed by
// the mapper before use, as FrameAllocator requires.
unsafe impl FrameAllocator<Size4KiB> for PageTableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let block = frames::allocate(0, Owner::PageTable).ok()?;
        let (pfn, _, _) = block.into_raw(); // now owned by the page table
        Some(PhysFrame::containing_address(PhysAddr::new(pfn.addr())))
    }
}

/// The active level-4 table as a mapper.
///
/// # Safety
/// The caller must hold `LOCK`, and only one such mapper may exist at a time.
unsafe fn active_mapper() -> OffsetPageTable<'static> {
    let (level_4, _) = Cr3::read();
    let table = phys_to_virt(Pfn::containing(level_4.start_address().as_u64()));
    // SAFETY: CR3 points at a valid level-4 table, mapped at the physical
    // offset; exclusivity is the caller's contract.
    unsafe {
        OffsetPageTable::new(
            &mut *table.as_mut_ptr::<PageTable>(),
            super::boot_memory().physical_memory_offset,
        )
    }
}

#[derive(Debug)]
pub enum MapError {
    /// No frame for a page table on the way.
    OutOfFrames,
    AlreadyMapped(VirtAddr),
    /// A huge page maps the range already, so no 4 KiB page can go there.
    HugePageInTheWay(VirtAddr),
    NotMapped(VirtAddr),
}

/// Maps one frame (an order-0 block) read-write, no-execute, at `page`. On
/// failure the frame is handed back unmapped.
pub fn map_kernel_page(page: VirtAddr, frame: FrameBlock) -> Result<(), (MapError, FrameBlock)> {
    debug_assert_eq!(frame.order(), 0);
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let page = Page::<Size4KiB>::containing_address(page);
    let phys = PhysFrame::containing_address(PhysAddr::new(frame.start().addr()));
    let _guard = LOCK.lock();
    // SAFETY: LOCK is held.
    let mut mapper = unsafe { active_mapper() };
    // SAFETY: the frame is ours (from `frame`) and the page lies in a
    // kernel-owned range that nothing else maps.
    match unsafe { mapper.map_to(page, phys, flags, &mut PageTableFrames) } {
        Ok(flush) => {
            flush.flush();
            let _ = frame.into_raw(); // owned by the mapping now
            Ok(())
        }
        Err(MapToError::PageAlreadyMapped(_)) => Err((MapError::AlreadyMapped(page.start_address()), frame)),
        Err(MapToError::ParentEntryHugePage) => {
            Err((MapError::HugePageInTheWay(page.start_address()), frame))
        }
        Err(MapToError::FrameAllocationFailed) => Err((MapError::OutOfFrames, frame)),
    }
}

/// Unmaps the kernel page at `page` (flushing its translation) and hands
/// back its frame, as an order-0 block owned by the kernel heap. The page
/// tables above it stay.
pub fn unmap_kernel_page(page: VirtAddr) -> Result<FrameBlock, MapError> {
    let page = Page::<Size4KiB>::containing_address(page);
    let _guard = LOCK.lock();
    // SAFETY: LOCK is held.
    let mut mapper = unsafe { active_mapper() };
    let (frame, flush) = mapper.unmap(page).map_err(|_| MapError::NotMapped(page.start_address()))?;
    flush.flush();
    Ok(FrameBlock::from_raw(Pfn::containing(frame.start_address().as_u64()), 0, Owner::KernelHeap))
}

/// The first unused level-4 slot in the kernel half, searching down from the
/// top (slot 511), as the start address of its 512 GiB.
pub fn free_kernel_slot() -> VirtAddr {
    let _guard = LOCK.lock();
    // SAFETY: LOCK is held.
    let mapper = unsafe { active_mapper() };
    let table = mapper.level_4_table();
    let slot = KERNEL_ROOT_ENTRIES.rev().find(|&i| table[i].is_unused()).expect("a free kernel level-4 slot");
    // Sign-extend bit 47: the kernel-half slots are the canonical upper half.
    VirtAddr::new_truncate((slot as u64 * entry_span(LEVELS)) | KERNEL_START)
}

/// Where the next MMIO mapping goes: a kernel level-4 slot of its own,
/// chosen at the first mapping. Drivers map their registers at boot, before
/// any address space copies the kernel half, so every space sees them.
static MMIO_NEXT: Mutex<Option<VirtAddr>> = Mutex::new(None);

/// Maps the device registers at physical `phys..phys+size` uncached
/// (PCD | PWT) and returns the virtual address of `phys`. BARs can lie
/// outside the physical-memory window (OVMF puts 64-bit BARs at 896 GiB),
/// and the window maps memory write-back, which is wrong for registers.
pub fn map_mmio(phys: u64, size: u64) -> Result<VirtAddr, MapError> {
    let first = phys & !(mm::paging::PAGE_SIZE - 1);
    let pages = (phys + size.max(1)).div_ceil(mm::paging::PAGE_SIZE) - first / mm::paging::PAGE_SIZE;
    let mut next = MMIO_NEXT.lock();
    let base = *next.get_or_insert_with(free_kernel_slot);
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_EXECUTE
        | PageTableFlags::NO_CACHE
        | PageTableFlags::WRITE_THROUGH;
    let _guard = LOCK.lock();
    // SAFETY: LOCK is held.
    let mut mapper = unsafe { active_mapper() };
    for i in 0..pages {
        let page = Page::<Size4KiB>::containing_address(base + i * mm::paging::PAGE_SIZE);
        let frame = PhysFrame::containing_address(PhysAddr::new(first + i * mm::paging::PAGE_SIZE));
        // SAFETY: `frame` is device memory, not RAM the frame allocator
        // hands out, and `page` is in the MMIO slot, which nothing else maps.
        match unsafe { mapper.map_to(page, frame, flags, &mut PageTableFrames) } {
            Ok(flush) => flush.flush(),
            Err(MapToError::FrameAllocationFailed) => return Err(MapError::OutOfFrames),
            Err(_) => return Err(MapError::AlreadyMapped(page.start_address())),
        }
    }
    *next = Some(base + pages * mm::paging::PAGE_SIZE);
    Ok(base + (phys - first))
}

/// The physical address `va` is mapped to in the kernel half (through the
/// page tables, so it works for stacks and the heap as well as the window).
pub fn translate(va: VirtAddr) -> Option<PhysAddr> {
    use x86_64::structures::paging::Translate;
    let _guard = LOCK.lock();
    // SAFETY: LOCK is held.
    let mapper = unsafe { active_mapper() };
    mapper.translate_addr(va)
}
