//! The picture of physical memory on the framebuffer: every frame a cell,
//! coloured by who holds it. This module is its geometry and its legend:
//! the [`Category`] of a frame, the colour of each, and the [`Layout`] that
//! puts frame `n` at a cell of a grid. The kernel (`kernel/src/picture.rs`)
//! finds each frame's category and paints.
//!
//! ```text
//!  ┌───────────── grid: frame n at (n % columns, n / columns) ─┐ ┌ legend ┐
//!  │ ▓▓▓▓▒▒▒▒░░░░  one cell = cell × cell pixels per frame    │ │ ■ free  │
//!  │ ...           (or several frames per pixel when huge)     │ │ ■ heap  │
//!  └───────────────────────────────────────────────────────────┘ └────────┘
//! ```
//!
//! Every category has its own colour and none is the background's or the
//! text's, so counting a screendump's pixels of one colour inside the grid
//! gives that category's frames (× cell²): the picture test does that.

use crate::frame::Owner;

/// Processes that get a colour of their own; the rest share
/// [`Category::OtherProcesses`].
pub const PROCESS_COLOURS: usize = 6;

/// Who holds a frame, as the picture shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Not RAM the allocator manages: firmware, ACPI, holes, the bootloader's.
    Unmanaged,
    KernelImage,
    Free,
    Owned(Owner),
    /// Anonymous memory of the process with this colour slot (by pid order).
    Process(u8),
    /// Anonymous memory of processes past the coloured ones, or not mapped
    /// by any page table at the moment of drawing.
    OtherProcesses,
}

/// Categories in legend order; index = the byte the kernel stores per frame.
pub const CATEGORIES: [Category; 15] = [
    Category::Free,
    Category::Unmanaged,
    Category::KernelImage,
    Category::Owned(Owner::AllocatorMetadata),
    Category::Owned(Owner::KernelHeap),
    Category::Owned(Owner::PageTable),
    Category::Owned(Owner::Kernel),
    Category::Owned(Owner::PageCache),
    Category::Owned(Owner::Dma),
    Category::Process(0),
    Category::Process(1),
    Category::Process(2),
    Category::Process(3),
    Category::Process(4),
    Category::Process(5),
];

/// Index of [`Category::OtherProcesses`] (after the table, same encoding).
pub const OTHER_PROCESSES: u8 = CATEGORIES.len() as u8;
/// Categories in all.
pub const COUNT: usize = CATEGORIES.len() + 1;

const _: () = assert!(PROCESS_COLOURS == 6);

impl Category {
    /// The byte stored per frame.
    pub fn index(self) -> u8 {
        match self {
            Category::OtherProcesses => OTHER_PROCESSES,
            // Anonymous frames not attributed to a process are drawn as
            // "other processes".
            Category::Owned(Owner::Process) => OTHER_PROCESSES,
            c => CATEGORIES.iter().position(|&k| k == c).map_or(OTHER_PROCESSES, |i| i as u8),
        }
    }

    pub fn from_index(index: u8) -> Category {
        CATEGORIES.get(usize::from(index)).copied().unwrap_or(Category::OtherProcesses)
    }

    pub fn name(self) -> &'static str {
        match self {
            Category::Unmanaged => "not managed (firmware, holes)",
            Category::KernelImage => "kernel image",
            Category::Free => "free",
            Category::Owned(owner) => owner.name(),
            Category::Process(_) => "process",
            Category::OtherProcesses => "other processes",
        }
    }

    /// Its colour, 0xRRGGBB.
    pub fn colour(self) -> u32 {
        match self {
            Category::Free => 0x1f3a1f,
            Category::Unmanaged => 0x303030,
            Category::KernelImage => 0xe0e0e0,
            Category::Owned(Owner::AllocatorMetadata) => 0xff00ff,
            Category::Owned(Owner::KernelHeap) => 0x3070ff,
            Category::Owned(Owner::PageTable) => 0xffd000,
            Category::Owned(Owner::Kernel) => 0x8080c0,
            Category::Owned(Owner::Process) | Category::OtherProcesses => 0xa06040,
            Category::Owned(Owner::PageCache) => 0x00c0c0,
            Category::Owned(Owner::Dma) => 0xff4040,
            Category::Process(slot) => [0x40e040, 0xff8000, 0xff60a0, 0xa0ff60, 0x60a0ff, 0xd0b080]
                [usize::from(slot) % PROCESS_COLOURS],
        }
    }
}

/// Background and text colours (no category uses them).
pub const BACKGROUND: u32 = 0x000000;
pub const TEXT: u32 = 0xffffff;

/// Where the grid goes and how big a frame's cell is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Top-left corner of the grid, in pixels.
    pub x: usize,
    pub y: usize,
    /// Side of one cell in pixels (1 when frames share pixels).
    pub cell: usize,
    /// Frames per cell: 1 unless memory has more frames than the area pixels.
    pub frames_per_cell: u64,
    pub columns: usize,
    pub rows: usize,
}

impl Layout {
    /// The largest square cells that fit `frames` cells in `width` × `height`
    /// pixels at (`x`, `y`); `None` for an empty area or no frames.
    pub fn fit(frames: u64, x: usize, y: usize, width: usize, height: usize) -> Option<Layout> {
        if frames == 0 || width == 0 || height == 0 {
            return None;
        }
        let fits = |cell: usize| {
            let columns = (width / cell) as u64;
            columns > 0 && frames.div_ceil(columns) * cell as u64 <= height as u64
        };
        let cell = (1..=64).rev().find(|&c| fits(c));
        let (cell, frames_per_cell) = match cell {
            Some(cell) => (cell, 1),
            None => (1, frames.div_ceil((width * height) as u64)),
        };
        let columns = width / cell;
        let cells = frames.div_ceil(frames_per_cell);
        let rows = cells.div_ceil(columns as u64) as usize;
        Some(Layout { x, y, cell, frames_per_cell, columns, rows })
    }

    /// The top-left pixel of frame `n`'s cell.
    pub fn cell_of(&self, n: u64) -> (usize, usize) {
        let cell = (n / self.frames_per_cell) as usize;
        (self.x + (cell % self.columns) * self.cell, self.y + (cell / self.columns) * self.cell)
    }

    /// Width and height of the grid in pixels.
    pub fn size(&self) -> (usize, usize) {
        (self.columns * self.cell, self.rows * self.cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_category_round_trips_and_has_its_own_colour() {
        let mut colours = alloc::vec::Vec::new();
        for (i, c) in CATEGORIES.iter().enumerate() {
            assert_eq!(c.index() as usize, i);
            assert_eq!(Category::from_index(i as u8), *c);
            colours.push(c.colour());
        }
        colours.push(Category::OtherProcesses.colour());
        assert_eq!(Category::from_index(OTHER_PROCESSES), Category::OtherProcesses);
        assert_eq!(Category::Owned(Owner::Process).index(), OTHER_PROCESSES);
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT, "one colour per category");
        assert!(!colours.contains(&BACKGROUND) && !colours.contains(&TEXT));
    }

    #[test]
    fn a_small_machine_gets_big_cells_and_a_big_one_shares_pixels() {
        let small = Layout::fit(32768, 0, 0, 800, 760).unwrap();
        assert_eq!((small.cell, small.frames_per_cell), (4, 1));
        let huge = Layout::fit(4 << 20, 0, 0, 800, 760).unwrap();
        assert_eq!(huge.cell, 1);
        assert!(huge.frames_per_cell * 800 * 760 >= 4 << 20);
        assert_eq!(Layout::fit(0, 0, 0, 10, 10), None);
    }

    proptest! {
        /// Cells fit the area, never overlap, and frames go in order.
        #[test]
        fn cells_fit_and_do_not_overlap(frames in 1u64..2_000_000, w in 1usize..1500, h in 1usize..1000) {
            let l = Layout::fit(frames, 7, 3, w, h).unwrap();
            let (gw, gh) = l.size();
            prop_assert!(gw <= w && gh <= h);
            let last = l.cell_of(frames - 1);
            prop_assert!(last.0 + l.cell <= 7 + w && last.1 + l.cell <= 3 + h);
            if l.frames_per_cell == 1 && frames > 1 {
                prop_assert_ne!(l.cell_of(frames - 1), l.cell_of(frames - 2));
            }
        }
    }
}
