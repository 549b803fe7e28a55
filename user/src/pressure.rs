//! The pressure page: how short memory is, read with plain loads (the
//! kernel keeps it current; see `abi::pressure`).

use abi::pressure::*;

/// The page's words, as the kernel last wrote them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// 0 normal, 1 low, 2 medium, 3 critical.
    pub level: u64,
    pub generation: u64,
    pub free_frames: u64,
    pub available_frames: u64,
    pub total_frames: u64,
    pub swap_free: u64,
    pub committed: u64,
    pub commit_limit: u64,
    pub updates: u64,
}

fn word(index: usize) -> u64 {
    debug_assert!(index < WORDS);
    // SAFETY: the kernel maps the pressure page read-only in every process
    // for its whole life; index is inside the page.
    unsafe { ((PRESSURE_PAGE as *const u64).add(index)).read_volatile() }
}

/// The level alone (one load: cheap enough for every free()).
pub fn level() -> u64 {
    word(LEVEL)
}

pub fn read() -> Pressure {
    Pressure {
        level: word(LEVEL),
        generation: word(GENERATION),
        free_frames: word(FREE_FRAMES),
        available_frames: word(AVAILABLE_FRAMES),
        total_frames: word(TOTAL_FRAMES),
        swap_free: word(SWAP_FREE),
        committed: word(COMMITTED),
        commit_limit: word(COMMIT_LIMIT),
        updates: word(UPDATES),
    }
}

pub fn level_name(level: u64) -> &'static str {
    LEVEL_NAMES.get(level as usize).copied().unwrap_or("?")
}
