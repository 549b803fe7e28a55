//! The pressure page (shared/seeds/002's low-memory notification): one
//! kernel frame, mapped read-only at `abi::pressure::PRESSURE_PAGE` into
//! every process when it starts, holding the pressure level
//! (`mm::policy::pressure`) and the counts it comes from. [`update`] runs
//! wherever free memory can have changed as a process sees it (after each
//! page fault and system call, between time slices, after reclaim and
//! after a process ends), so every watermark crossing is published before
//! any process runs again; a change of level bumps the generation, which
//! is what `process::events` compares to notify processes. While the level
//! stays above normal the generation is bumped again every
//! [`REPEAT_TICKS`] (Linux's vmpressure likewise reports once per reclaim
//! window, not once): a process that could not free enough the first time
//! hears again, and a runtime's background scavenger gets its next step.
//!
//! ```text
//!  word  0 level   1 generation   2 free   3 available   4 total
//!        5 swap free   6 Committed_AS   7 CommitLimit   8 updates
//! ```

use crate::memory::{frames, phys_to_virt};
use abi::pressure::*;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::Pfn;
use mm::frame::Owner;
use mm::policy::commit::Backing;
use mm::policy::pressure::{level, MemoryCounts, PressureLevel};
use spin::Once;

static FRAME: Once<Pfn> = Once::new();
/// Timer tick of the last generation bump.
static LAST_BUMP: AtomicU64 = AtomicU64::new(0);
/// Repeat notifications while pressure lasts: every tick (10 ms).
pub const REPEAT_TICKS: u64 = 1;

/// Allocates the page (kept for the kernel's whole life) and fills it.
pub fn init() {
    let block = frames::allocate_zeroed(0, Owner::Kernel).expect("a frame for the pressure page at boot");
    // The frame is never freed: every process maps it until it ends.
    let (frame, _, _) = block.into_raw();
    FRAME.call_once(|| frame);
    update();
}

/// The page's frame, to map into a new process.
pub fn frame() -> Pfn {
    *FRAME.get().expect("pressure::init has run")
}

fn words() -> &'static [AtomicU64; WORDS] {
    // SAFETY: the frame is the kernel's for good (init), mapped in the
    // physical window, page-aligned; AtomicU64 has u64's layout, and the
    // only writers are these atomics (processes map it read-only).
    unsafe { &*phys_to_virt(frame()).as_ptr::<[AtomicU64; WORDS]>() }
}

fn word(index: usize) -> u64 {
    words()[index].load(Ordering::Relaxed)
}

/// Recomputes the counts and the level and publishes them.
pub fn update() {
    if FRAME.get().is_none() {
        return;
    }
    // Each count read once: this runs after every fault and system call.
    let (free, total) = frames::free_and_total();
    let cached = crate::files::info().map_or(0, |i| i.stats.pages);
    let (swap_free, swap_total) = crate::swap::info().map_or((0, 0), |s| (s.free_usable(), s.usable_total()));
    let counts = MemoryCounts { free, cached, swap_free };
    let new = level(counts, crate::vm::reclaim::watermarks());
    let commit = super::commit::info_for(Backing { ram_pages: total, swap_pages: swap_total });
    let w = words();
    for (index, value) in [
        (FREE_FRAMES, counts.free),
        (AVAILABLE_FRAMES, counts.available()),
        (TOTAL_FRAMES, total),
        (SWAP_FREE, swap_free),
        (COMMITTED, commit.committed),
        (COMMIT_LIMIT, commit.limit),
    ] {
        w[index].store(value, Ordering::Relaxed);
    }
    let now = crate::arch::timer::ticks();
    let changed = w[LEVEL].swap(new as u64, Ordering::Relaxed) != new as u64;
    let repeat = new != PressureLevel::Normal && now >= LAST_BUMP.load(Ordering::Relaxed) + REPEAT_TICKS;
    if changed || repeat {
        LAST_BUMP.store(now, Ordering::Relaxed);
        w[GENERATION].fetch_add(1, Ordering::Release);
    }
    w[UPDATES].fetch_add(1, Ordering::Relaxed);
}

pub fn current() -> PressureLevel {
    PressureLevel::from_number(word(LEVEL)).expect("the kernel writes valid levels")
}

/// Notifications so far: bumped on each level change, and every
/// [`REPEAT_TICKS`] while the level stays above normal.
pub fn generation() -> u64 {
    word(GENERATION)
}

/// meminfo's pressure line.
pub struct PressureInfo {
    pub level: PressureLevel,
    pub notifications: u64,
    pub available: u64,
    pub updates: u64,
}

pub fn info() -> PressureInfo {
    PressureInfo {
        level: current(),
        notifications: generation(),
        available: word(AVAILABLE_FRAMES),
        updates: word(UPDATES),
    }
}

impl core::fmt::Display for PressureInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "pressure: {}; {} notifications (level changes, and every 10 ms while above normal); MemAvailable {} KiB (free + page cache); the page was rewritten {} times",
            self.level.name(),
            self.notifications,
            self.available * 4,
            self.updates
        )
    }
}
