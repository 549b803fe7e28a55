//! The kernel's view of memory: what the bootloader handed over and the
//! kernel heap.

pub mod frames;
pub mod heap;
pub mod kernel_pages;

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use bootloader_api::BootInfo;
use mm::memory_map::{MemoryMapSummary, PhysKind, PhysRegion};
use spin::Once;
use x86_64::VirtAddr;

/// What the memory manager needs from the boot information.
pub struct BootMemory {
    /// All of physical memory is mapped at this virtual offset.
    pub physical_memory_offset: VirtAddr,
    pub regions: &'static [MemoryRegion],
    /// The kernel ELF image's physical range.
    pub kernel_image: core::ops::Range<u64>,
    /// Where the (position-independent) kernel was loaded.
    pub kernel_image_offset: u64,
}

static BOOT_MEMORY: Once<BootMemory> = Once::new();

/// Takes what the memory manager needs from `boot_info`, builds the frame
/// allocator and maps the kernel heap (once, at boot).
pub fn init(boot_info: &'static BootInfo) -> &'static BootMemory {
    let boot = read_boot_info(boot_info);
    frames::init(boot);
    heap::init();
    boot
}

fn read_boot_info(boot_info: &'static BootInfo) -> &'static BootMemory {
    BOOT_MEMORY.call_once(|| BootMemory {
        physical_memory_offset: VirtAddr::new(
            boot_info
                .physical_memory_offset
                .into_option()
                .expect("bootloader config asks for a physical-memory mapping"),
        ),
        regions: &boot_info.memory_regions,
        kernel_image: boot_info.kernel_addr..boot_info.kernel_addr + boot_info.kernel_len,
        kernel_image_offset: boot_info.kernel_image_offset,
    })
}

/// Everything the kernel holds, measured after the kernel heap gave back
/// its whole free pages: free frames, each owner's frames, the heap's live
/// and mapped bytes, and the swap slots in use (0 without swap). Work that
/// ends (a process, a fuzz round) must leave it exactly as it found it.
/// (The page cache keeps file pages after their last mapping went; a
/// caller that compares across file mappings drops them first,
/// `files::drop_unmapped`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub free_frames: u64,
    pub frames_by_owner: [u64; mm::frame::Owner::COUNT],
    pub heap_used: usize,
    pub heap_mapped: usize,
    pub swap_slots_used: u64,
}

pub fn footprint() -> Footprint {
    heap::trim();
    let frames = frames::stats();
    let heap = heap::usage();
    Footprint {
        free_frames: frames.free,
        frames_by_owner: frames.used_by,
        heap_used: heap.used,
        heap_mapped: heap.mapped,
        swap_slots_used: crate::swap::info().map_or(0, |swap| swap.total_slots - swap.free_slots),
    }
}

/// Where physical frame `pfn` is visible in the physical-memory window.
pub fn phys_to_virt(pfn: mm::addr::Pfn) -> VirtAddr {
    boot_memory().physical_memory_offset + pfn.addr()
}

/// Whether every byte of the frame is zero (reclaim drops such pages to
/// demand-zero instead of writing them to swap). Stops at the first nonzero
/// word, so a page with data costs a read or two.
pub fn frame_is_zero(pfn: mm::addr::Pfn) -> bool {
    let words = (mm::addr::FRAME_SIZE / 8) as usize;
    // SAFETY: every frame of RAM is mapped read-write in the physical
    // window; the caller (reclaim) holds the page it asks about as chosen,
    // and on one CPU nothing writes it while this reads.
    let frame = unsafe { core::slice::from_raw_parts(phys_to_virt(pfn).as_ptr::<u64>(), words) };
    frame.iter().all(|&word| word == 0)
}

pub fn boot_memory() -> &'static BootMemory {
    BOOT_MEMORY.get().expect("memory::init has run")
}

/// The bootloader's region kinds in the memory manager's terms. UEFI type
/// 9/10 and E820 type 3/4 are ACPI reclaimable / NVS.
pub fn region_kind(kind: MemoryRegionKind) -> PhysKind {
    match kind {
        MemoryRegionKind::Usable => PhysKind::Usable,
        MemoryRegionKind::Bootloader => PhysKind::Bootloader,
        MemoryRegionKind::UnknownUefi(9 | 10) | MemoryRegionKind::UnknownBios(3 | 4) => PhysKind::Acpi,
        _ => PhysKind::Reserved,
    }
}

pub fn memory_map_summary(boot: &BootMemory) -> MemoryMapSummary {
    let regions =
        boot.regions.iter().map(|r| PhysRegion { start: r.start, end: r.end, kind: region_kind(r.kind) });
    MemoryMapSummary::new(regions, boot.kernel_image.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{boxed::Box, vec::Vec};

    #[test_case]
    fn memory_map_has_usable_memory_and_the_kernel() {
        let summary = memory_map_summary(boot_memory());
        assert!(summary.usable > 16 * 1024 * 1024, "usable: {}", summary.usable);
        assert!(summary.kernel > 0);
        assert!(summary.regions > 0);
    }

    #[test_case]
    fn physical_memory_offset_maps_usable_memory() {
        let boot = boot_memory();
        let region = boot.regions.iter().find(|r| r.kind == bootloader_api::info::MemoryRegionKind::Usable);
        let region = region.expect("a usable region");
        let virt = boot.physical_memory_offset + region.start;
        // SAFETY: the bootloader maps all physical memory at the offset, and a
        // usable region belongs to nobody yet; we only read it.
        let _ = unsafe { core::ptr::read_volatile(virt.as_ptr::<u64>()) };
    }

    #[test_case]
    fn heap_allocates_and_frees() {
        let used_before = heap::usage().used;
        let boxed = Box::new([7u8; 1000]);
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(boxed[999], 7);
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
        drop((boxed, v));
        assert_eq!(heap::usage().used, used_before);
    }
}
