//! How short memory is (shared/seeds/002's low-memory notification), as
//! one of four levels computed from counts the kernel has anyway:
//!
//! | level | when | what it means for a process |
//! |---|---|---|
//! | `Normal` | free ≥ low watermark | nothing to do |
//! | `Low` | free < low | reclaim is running: drop what is cheap to drop |
//! | `Medium` | free + page cache < high | the cache is spent, anonymous pages go to swap: scavenge, shrink caches |
//! | `Critical` | free + page cache + free swap < high | nothing left to reclaim: the next allocations may wake the OOM killer |
//!
//! The levels nest (Critical implies Medium implies Low), so a process
//! only compares against the one it cares about.

use crate::reclaim::Watermarks;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PressureLevel {
    Normal = 0,
    Low = 1,
    Medium = 2,
    Critical = 3,
}

impl PressureLevel {
    pub fn from_number(n: u64) -> Option<PressureLevel> {
        use PressureLevel::*;
        [Normal, Low, Medium, Critical].into_iter().find(|l| *l as u64 == n)
    }

    /// Its name, as the pressure page's readers print it.
    pub fn name(self) -> &'static str {
        abi::pressure::LEVEL_NAMES[self as usize]
    }
}

/// Frame and slot counts the level is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryCounts {
    pub free: u64,
    /// Page-cache frames: clean, dropped by reclaim without any I/O.
    pub cached: u64,
    pub swap_free: u64,
}

impl MemoryCounts {
    /// Linux's `MemAvailable`, simply: what could be had without swapping
    /// (free frames plus the clean page cache).
    pub fn available(&self) -> u64 {
        self.free + self.cached
    }
}

pub fn level(counts: MemoryCounts, marks: Watermarks) -> PressureLevel {
    if counts.available() + counts.swap_free < marks.high {
        PressureLevel::Critical
    } else if counts.available() < marks.high {
        PressureLevel::Medium
    } else if counts.free < marks.low {
        PressureLevel::Low
    } else {
        PressureLevel::Normal
    }
}
