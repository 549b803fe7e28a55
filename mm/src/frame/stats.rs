//! Who holds frames, and the counters that say where every frame is.

use super::MAX_ORDER;
use crate::addr::FRAME_SIZE;
use crate::memory_map::Mib;
use core::fmt;

/// The holder of an allocated block. Frees must name the same owner, and the
/// statistics count frames per owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Owner {
    /// The frame allocator's own state words and bitmaps.
    AllocatorMetadata = 1,
    KernelHeap,
    PageTable,
    /// Other kernel use: stacks, buffers, tests.
    Kernel,
    /// Memory mapped into a process.
    Process,
    PageCache,
    /// Memory a device reads or writes (virtio queues, request headers).
    Dma,
}

impl Owner {
    pub const COUNT: usize = 7;
    pub const ALL: [Owner; Owner::COUNT] = [
        Owner::AllocatorMetadata,
        Owner::KernelHeap,
        Owner::PageTable,
        Owner::Kernel,
        Owner::Process,
        Owner::PageCache,
        Owner::Dma,
    ];

    /// The owner stored as `index` in a frame's state word (0 is none).
    pub fn from_index(index: usize) -> Option<Owner> {
        index.checked_sub(1).and_then(|i| Owner::ALL.get(i)).copied()
    }

    fn slot(self) -> usize {
        self as usize - 1
    }

    pub fn name(self) -> &'static str {
        match self {
            Owner::AllocatorMetadata => "allocator metadata",
            Owner::KernelHeap => "kernel heap",
            Owner::PageTable => "page tables",
            Owner::Kernel => "kernel (other)",
            Owner::Process => "process memory",
            Owner::PageCache => "page cache",
            Owner::Dma => "device DMA",
        }
    }
}

/// Frame counts. Invariant: `total == free + Σ used_by`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Usable frames the allocator manages.
    pub total: u64,
    pub free: u64,
    pub used_by: [u64; Owner::COUNT],
    /// Free blocks per order (like Linux's /proc/buddyinfo), not counting
    /// the cache or the zeroed pool.
    pub free_blocks: [u64; MAX_ORDER as usize + 1],
    /// Free frames in the recently-freed cache (included in `free`).
    pub cached: u64,
    /// Free frames in the zeroed pool (included in `free`).
    pub zeroed: u64,
}

impl FrameStats {
    pub fn used(&self) -> u64 {
        self.total - self.free
    }

    pub fn used_by(&self, owner: Owner) -> u64 {
        self.used_by[owner.slot()]
    }

    pub(super) fn allocated(&mut self, owner: Owner, frames: u64) {
        self.free -= frames;
        self.used_by[owner.slot()] += frames;
    }

    pub(super) fn released(&mut self, owner: Owner, frames: u64) {
        self.free += frames;
        self.used_by[owner.slot()] -= frames;
    }
}

/// The `meminfo` dump printed at boot and on demand.
impl fmt::Display for FrameStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |f: &mut fmt::Formatter<'_>, name: &str, frames: u64| {
            writeln!(f, "  {name:<20} {:>10} {frames:>9} frames", Mib(frames * FRAME_SIZE))
        };
        writeln!(f, "meminfo:")?;
        line(f, "total", self.total)?;
        line(f, "free", self.free)?;
        line(f, "used", self.used())?;
        for owner in Owner::ALL {
            line(f, owner.name(), self.used_by(owner))?;
        }
        write!(f, "  free blocks by order:")?;
        for (order, count) in self.free_blocks.iter().enumerate() {
            write!(f, " {order}:{count}")?;
        }
        write!(f, "; recently freed, cached: {}; zeroed pool: {}", self.cached, self.zeroed)
    }
}
