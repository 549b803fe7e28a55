//! The out-of-memory killer's choice (shared/seeds/004, Linux
//! `mm/oom_kill.c`).
//!
//! When reclaim and swap can free nothing more and a page is still
//! needed, some process must go. Linux's badness says which: the memory
//! killing it would free,
//!
//! ```text
//! points = resident pages + swap slots + page-table frames
//! points += oom_score_adj × (RAM + swap) / 1000     (adj in -1000..=1000)
//! ```
//!
//! highest points first; `oom_score_adj = -1000` is never chosen. The
//! score reported (`/proc/PID/oom_score`) is `points × 1000 / (RAM + swap)`:
//! the share of all memory, in thousandths.

/// `oom_score_adj` bounds; [`OOM_SCORE_ADJ_MIN`] means "never kill".
pub const OOM_SCORE_ADJ_MIN: i16 = -1000;
pub const OOM_SCORE_ADJ_MAX: i16 = 1000;

/// What the killer knows about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub pid: u32,
    pub resident: u64,
    pub swapped: u64,
    pub tables: u64,
    pub oom_score_adj: i16,
}

impl Candidate {
    /// The pages killing it would free.
    pub fn footprint(&self) -> u64 {
        self.resident + self.swapped + self.tables
    }

    /// Its badness over `total_pages` (RAM + swap); `None` when it may
    /// never be killed. At least 1 otherwise, as in Linux, so a process
    /// that may be killed is always a candidate.
    pub fn badness(&self, total_pages: u64) -> Option<i64> {
        if self.oom_score_adj <= OOM_SCORE_ADJ_MIN {
            return None;
        }
        let adj = i64::from(self.oom_score_adj.min(OOM_SCORE_ADJ_MAX)) * (total_pages / 1000) as i64;
        Some((self.footprint() as i64 + adj).max(1))
    }

    /// The score as `/proc/PID/oom_score` shows it (0..=2000: the
    /// adjustment can double it).
    pub fn score(&self, total_pages: u64) -> u64 {
        let points = self.badness(total_pages).unwrap_or(0) as u64;
        (points * 1000 / total_pages.max(1)).min(2000)
    }
}

/// The candidate to kill: the highest badness, the first of equals; `None`
/// when every process is protected (or there is none).
pub fn choose<'a>(
    candidates: impl IntoIterator<Item = &'a Candidate>,
    total_pages: u64,
) -> Option<&'a Candidate> {
    let mut best: Option<(&Candidate, i64)> = None;
    for candidate in candidates {
        if let Some(points) = candidate.badness(total_pages) {
            if best.is_none_or(|(_, b)| points > b) {
                best = Some((candidate, points));
            }
        }
    }
    best.map(|(c, _)| c)
}
