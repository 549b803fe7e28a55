//! The live picture of physical memory on the bootloader's framebuffer:
//! every frame a cell coloured by its holder (free, kernel image, kernel
//! heap, page tables, allocator metadata, page cache, DMA,
//! each process), a legend with counts and the meminfo numbers beside it.
//! `mm::picture` is its geometry and colours (host-tested); this module
//! finds each frame's holder and paints.
//!
//! Who holds a frame: the memory map says what is not managed (and where
//! the kernel image is), the frame allocator's state words name the owner
//! of every allocated block, and each process's page tables say whose
//! anonymous frames are whose. Redrawn [`REDRAW_TICKS`] apart between time
//! slices ([`tick`]), and at once by the shell's `picture`; only cells that
//! changed are painted again, so a redraw costs a pass over the frames.
//!
//! Only kernels that call [`init`] draw (the demo and the shell test
//! kernel); the test suites leave the framebuffer alone.

use crate::arch::timer;
use crate::memory::{self, frames};
use crate::process;
use crate::vm;
use alloc::string::String;
use alloc::vec::Vec;
use bootloader_api::info::{FrameBuffer, FrameBufferInfo, MemoryRegionKind, PixelFormat};
use mm::frame::Owner;
use mm::paging::PAGE_SIZE;
use mm::picture::{Category, Layout, BACKGROUND, CATEGORIES, COUNT, OTHER_PROCESSES, PROCESS_COLOURS, TEXT};
use mm::pte::PageKind;
use noto_sans_mono_bitmap::{get_raster, get_raster_width, FontWeight, RasterHeight};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

/// Ticks between redraws: four a second.
pub const REDRAW_TICKS: u64 = timer::TICK_HZ / 4;
const FONT: RasterHeight = RasterHeight::Size16;
const LINE: usize = 18;
/// Width kept for the legend, right of the grid.
const LEGEND_WIDTH: usize = 440;
const MARGIN: usize = 8;

struct Screen {
    buffer: &'static mut [u8],
    info: FrameBufferInfo,
}

impl Screen {
    fn put(&mut self, x: usize, y: usize, rgb: u32) {
        if x >= self.info.width || y >= self.info.height {
            return;
        }
        let at = (y * self.info.stride + x) * self.info.bytes_per_pixel;
        let [_, r, g, b] = rgb.to_be_bytes();
        let pixel = match self.info.pixel_format {
            PixelFormat::Rgb => [r, g, b, 0],
            PixelFormat::U8 => [((u16::from(r) + u16::from(g) + u16::from(b)) / 3) as u8, 0, 0, 0],
            _ => [b, g, r, 0],
        };
        let n = self.info.bytes_per_pixel.min(4);
        if let Some(dest) = self.buffer.get_mut(at..at + n) {
            dest.copy_from_slice(&pixel[..n]);
        }
    }

    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: u32) {
        for row in y..y + h {
            for col in x..x + w {
                self.put(col, row, rgb);
            }
        }
    }

    /// Draws `text` (ASCII; anything else as '?') with its top-left at (x, y).
    fn text(&mut self, x: usize, y: usize, text: &str) {
        let width = get_raster_width(FontWeight::Regular, FONT);
        for (i, c) in text.chars().enumerate() {
            let glyph = get_raster(c, FontWeight::Regular, FONT)
                .or_else(|| get_raster('?', FontWeight::Regular, FONT));
            let Some(glyph) = glyph else { continue };
            for (row, line) in glyph.raster().iter().enumerate() {
                for (col, &v) in line.iter().enumerate() {
                    let grey = u32::from(v) * (TEXT & 0xff) / 255;
                    self.put(x + i * width + col, y + row, grey << 16 | grey << 8 | grey);
                }
            }
        }
    }
}

struct Picture {
    screen: Screen,
    /// Frames 0..span end (the last usable one) are drawn.
    layout: Layout,
    /// Each frame's category index now, and as last painted (`u8::MAX`:
    /// not painted yet).
    now: Vec<u8>,
    drawn: Vec<u8>,
    /// The legend as last painted: (colour box, text) per line.
    legend: Vec<(Option<u32>, String)>,
    last_tick: u64,
}

static PICTURE: Mutex<Option<Picture>> = Mutex::new(None);

/// Takes the framebuffer (from the boot information) and draws the first
/// picture. Without one (or without the memory for the frame maps) there
/// is no picture, and nothing else changes.
pub fn init(framebuffer: Option<FrameBuffer>) {
    let Some(framebuffer) = framebuffer else {
        crate::info!("picture: no framebuffer");
        return;
    };
    let info = framebuffer.info();
    let frames = frames::span().end.number();
    let grid_width = info.width.saturating_sub(LEGEND_WIDTH + 3 * MARGIN);
    let Some(layout) =
        Layout::fit(frames, MARGIN, MARGIN, grid_width, info.height.saturating_sub(2 * MARGIN))
    else {
        crate::info!("picture: the {}x{} framebuffer is too small", info.width, info.height);
        return;
    };
    let (mut now, mut drawn) = (Vec::new(), Vec::new());
    if now.try_reserve_exact(frames as usize).is_err() || drawn.try_reserve_exact(frames as usize).is_err() {
        crate::warn!("picture: no memory for {frames} frames' categories");
        return;
    }
    now.resize(frames as usize, 0);
    drawn.resize(frames as usize, u8::MAX);
    let mut screen = Screen { buffer: framebuffer.into_buffer(), info };
    screen.fill(0, 0, info.width, info.height, BACKGROUND);
    crate::info!(
        "picture: {}x{} framebuffer, {frames} frames as {} px cells ({} per cell), {} columns",
        info.width,
        info.height,
        layout.cell,
        layout.frames_per_cell,
        layout.columns
    );
    let picture = Picture { screen, layout, now, drawn, legend: Vec::new(), last_tick: 0 };
    without_interrupts(|| *PICTURE.lock() = Some(picture));
    redraw();
}

/// Redraws if [`REDRAW_TICKS`] have passed since the last time.
pub fn tick() {
    let due = without_interrupts(|| {
        PICTURE.lock().as_ref().is_some_and(|p| timer::ticks() >= p.last_tick + REDRAW_TICKS)
    });
    if due {
        redraw();
    }
}

/// What one redraw showed: the grid and the frames of each category.
pub struct Drawn {
    pub layout: Layout,
    pub counts: [u64; COUNT],
    /// The processes with a colour: (pid, name) by colour slot.
    pub processes: Vec<(process::Pid, &'static str)>,
}

/// Redraws now; `None` without a picture.
pub fn redraw() -> Option<Drawn> {
    // The process list and page-table walks take their own locks: gather
    // first, then paint under the picture's lock.
    let processes: Vec<process::ProcessInfo> = process::list().into_iter().take(PROCESS_COLOURS).collect();
    let mut picture = PICTURE.lock();
    let p = picture.as_mut()?;
    p.last_tick = timer::ticks();
    classify(&mut p.now, &processes);
    let mut counts = [0u64; COUNT];
    for (n, &category) in p.now.iter().enumerate() {
        counts[usize::from(category)] += 1;
        if p.drawn[n] != category {
            let (x, y) = p.layout.cell_of(n as u64);
            let cell = p.layout.cell;
            p.screen.fill(x, y, cell, cell, Category::from_index(category).colour());
        }
    }
    p.drawn.copy_from_slice(&p.now);
    let named: Vec<(process::Pid, &'static str)> = processes.iter().map(|i| (i.pid, i.name)).collect();
    draw_legend(p, &counts, &named);
    Some(Drawn { layout: p.layout, counts, processes: named })
}

/// Sets frames `first..last` (clipped to the picture) to `category`.
fn mark(now: &mut [u8], first: u64, last: u64, category: Category) {
    let last = (last as usize).min(now.len());
    if let Some(frames) = now.get_mut(first as usize..last) {
        frames.fill(category.index());
    }
}

/// Every frame's category into `now`.
fn classify(now: &mut [u8], processes: &[process::ProcessInfo]) {
    now.fill(Category::Unmanaged.index());
    let boot = memory::boot_memory();
    let bytes = |now: &mut [u8], range: &core::ops::Range<u64>, category| {
        mark(now, range.start / PAGE_SIZE, range.end.div_ceil(PAGE_SIZE), category)
    };
    for region in boot.regions.iter().filter(|r| r.kind == MemoryRegionKind::Usable) {
        bytes(now, &(region.start..region.end), Category::Free);
    }
    bytes(now, &boot.kernel_image, Category::KernelImage);
    frames::for_each_allocated(&mut |pfn, order, owner| {
        mark(now, pfn.number(), pfn.number() + (1 << order), Category::Owned(owner))
    });
    for (slot, info) in processes.iter().enumerate() {
        let colour = Category::Process(slot as u8).index();
        vm::with(info.space, |space| {
            space.for_each_present(&mut |_, m| {
                let frame = m.frame.number() as usize;
                if m.kind == PageKind::Anonymous && now.get(frame) == Some(&OTHER_PROCESSES) {
                    now[frame] = colour;
                }
            })
        });
    }
}

fn draw_legend(p: &mut Picture, counts: &[u64; COUNT], processes: &[(process::Pid, &'static str)]) {
    let mut lines: Vec<(Option<u32>, String)> = Vec::new();
    let per = if p.layout.frames_per_cell == 1 {
        alloc::format!("1 cell = 1 frame (4 KiB), {} px", p.layout.cell)
    } else {
        alloc::format!("1 pixel = {} frames", p.layout.frames_per_cell)
    };
    lines.push((None, String::from("Pagekeeper: physical memory")));
    lines.push((None, per));
    lines.push((None, String::new()));
    for (i, category) in CATEGORIES.iter().chain([&Category::OtherProcesses]).enumerate() {
        let name = match category {
            Category::Process(slot) => match processes.get(usize::from(*slot)) {
                Some((pid, name)) => alloc::format!("pid {pid} {name}"),
                None => continue,
            },
            Category::OtherProcesses if counts[i] == 0 => continue,
            c => String::from(c.name()),
        };
        lines.push((Some(category.colour()), alloc::format!("{name:<28}{:>8}", counts[i])));
    }
    let stats = frames::stats();
    let commit = crate::policy::commit::info();
    lines.push((None, String::new()));
    lines.push((None, alloc::format!("total {} frames, free {}", stats.total, stats.free)));
    lines.push((
        None,
        alloc::format!(
            "page cache {} kernel heap {}",
            stats.used_by(Owner::PageCache),
            stats.used_by(Owner::KernelHeap)
        ),
    ));
    lines.push((None, alloc::format!("Committed_AS {} KiB", commit.committed * 4)));
    lines.push((None, alloc::format!("CommitLimit  {} KiB", commit.limit * 4)));
    lines.push((None, alloc::format!("pressure: {}", crate::policy::pressure::current().name())));
    if let Some(swap) = crate::swap::info() {
        lines.push((
            None,
            alloc::format!(
                "swap used {} of {} KiB",
                (swap.total_slots - swap.free_slots) * 4,
                swap.total_slots * 4
            ),
        ));
    }
    if lines == p.legend {
        return;
    }
    let x = p.layout.x + p.layout.size().0 + 2 * MARGIN;
    let width = p.screen.info.width.saturating_sub(x);
    p.screen.fill(x, MARGIN, width, LINE * (p.legend.len().max(lines.len()) + 1), BACKGROUND);
    for (i, (colour, text)) in lines.iter().enumerate() {
        let y = MARGIN + i * LINE;
        if let Some(colour) = colour {
            p.screen.fill(x, y + 2, 12, 12, *colour);
        }
        p.screen.text(x + 18, y, text);
    }
    p.legend = lines;
}
