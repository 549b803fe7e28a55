//! The OOM killer (shared/seeds/004; Linux's `mm/oom_kill.c`). When a
//! page fault still finds no frame after reclaim (nothing left to evict:
//! no swap, swap full, no page cache to drop), some process has to go so
//! that the others can go on. `mm::policy::oom` chooses by badness =
//! resident + swap slots + page tables, shifted by `oom_score_adj`; this
//! module gathers the candidates, logs a report like Linux's, kills the
//! victim and lets the faulting access be retried:
//!
//! ```text
//!  fault: OutOfMemory ─► candidates (every process, the faulting one too)
//!      ─► choose ─► victim is the faulting process: it ends (KilledByOom)
//!               ─► another: it ends, its frames and slots come back, and
//!                  the faulting process resumes (its access retried)
//!               ─► none (all protected, -1000): the faulting process is
//!                  refused as before (its out-of-memory fault report)
//! ```

use super::{finish, with_table, ExitStatus, Pid};
use crate::vm::{self, FaultReport};
use crate::{memory::frames, println, warn};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::policy::oom::{choose, Candidate};

static KILLS: AtomicU64 = AtomicU64::new(0);

/// Why a process was killed by the OOM killer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomKill {
    /// The process whose access found no memory.
    pub trigger: Pid,
    /// That access was a system call's copy of the process's memory, not
    /// the process's own.
    pub in_system_call: bool,
    /// The victim's badness score (0..=2000) and the highest of the others.
    pub score: u64,
    pub next_score: u64,
    /// Frames and swap slots its end gave back.
    pub freed_pages: u64,
}

impl fmt::Display for OomKill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "killed by the OOM killer (score {}; process {} needed memory{}; {} pages freed)",
            self.score,
            self.trigger,
            if self.in_system_call { " in a system call" } else { "" },
            self.freed_pages
        )
    }
}

/// A candidate with the name the report prints.
struct Entry {
    candidate: Candidate,
    name: &'static str,
}

/// Every process, with what killing it would free. `None` when the list
/// cannot be allocated (then the faulting process is refused instead).
fn candidates() -> Option<Vec<Entry>> {
    let list = with_table(|t| {
        let mut list = Vec::new();
        list.try_reserve_exact(t.processes.len()).ok()?;
        list.extend(t.processes.iter().map(|(pid, p)| (*pid, p.space, p.oom_score_adj, p.name)));
        Some(list)
    })?;
    let mut entries = Vec::new();
    entries.try_reserve_exact(list.len()).ok()?;
    for (pid, space, oom_score_adj, name) in list {
        let Some(stats) = vm::with(space, |s| s.stats()) else { continue };
        let candidate = Candidate {
            pid: pid.0,
            resident: stats.resident_pages,
            swapped: stats.swapped_pages,
            tables: stats.table_frames,
            oom_score_adj,
        };
        entries.push(Entry { candidate, name });
    }
    Some(entries)
}

/// RAM + swap, in pages: what scores are shares of.
fn total_pages() -> u64 {
    frames::stats().total + crate::swap::info().map_or(0, |s| s.total_slots)
}

/// What the OOM killer decided for the process whose access found no
/// memory.
pub(super) enum Verdict {
    /// Another process was killed and its memory freed: retry the access.
    Retry,
    /// The process itself was chosen: it ends.
    KillSelf(OomKill),
    /// Every process is protected (`oom_score_adj` -1000): nothing was
    /// killed, and the access cannot be retried.
    Refused,
}

/// The running process's access found no memory (`report`, from a fault
/// of its own or from a system call's copy of its memory); decides what
/// happens next (see the module documentation).
pub(super) fn out_of_memory(running: Pid, report: &FaultReport) -> Verdict {
    let Some(entries) = candidates() else { return Verdict::Refused };
    let total = total_pages();
    let all = || entries.iter().map(|e| &e.candidate);
    let Some(victim) = choose(all(), total).copied() else {
        warn!("out of memory: process {running} needs a page and every process is protected (oom_score_adj -1000)");
        return Verdict::Refused;
    };
    log_report(running, report, &entries, total);
    let next_score = all().filter(|c| c.pid != victim.pid).map(|c| c.score(total)).max().unwrap_or(0);
    let mut kill = OomKill {
        trigger: running,
        in_system_call: report.by_kernel(),
        score: victim.score(total),
        next_score,
        freed_pages: 0,
    };
    KILLS.fetch_add(1, Ordering::Relaxed);
    if Pid(victim.pid) == running {
        kill.freed_pages = victim.footprint();
        println!("  oom: killed process {running} itself: {}", Footprint(&victim));
        return Verdict::KillSelf(kill);
    }
    let freed = finish(Pid(victim.pid), |freed| {
        kill.freed_pages = freed;
        ExitStatus::KilledByOom(kill)
    });
    println!("  oom: killed process {}: {}; freed {freed} pages", victim.pid, Footprint(&victim));
    Verdict::Retry
}

// The report formats in place: no heap allocation while memory is out.

/// "R resident, S swapped, T page tables".
struct Footprint<'a>(&'a Candidate);

impl fmt::Display for Footprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        write!(f, "{} resident, {} swapped, {} page tables", c.resident, c.swapped, c.tables)
    }
}

/// The score column: the score, or "never" for a protected process.
struct Score(Option<u64>);

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(score) => fmt::Display::fmt(&score, f),
            None => f.pad("never"),
        }
    }
}

/// Linux's report: who asked, then a table of every candidate.
fn log_report(running: Pid, report: &FaultReport, entries: &[Entry], total: u64) {
    let reason = report.out_of_memory_reason.unwrap_or("nothing left to evict");
    let by = if report.by_kernel() { "'s system call" } else { "" };
    println!(
        "oom: process {running}{by} faulted at {:#x} and no memory is left ({reason}); candidates:",
        report.address
    );
    println!(
        "  {:>5} {:<16} {:>9} {:>8} {:>7} {:>14} {:>6}",
        "pid", "name", "resident", "swapped", "tables", "oom_score_adj", "score"
    );
    for e in entries {
        let c = &e.candidate;
        println!(
            "  {:>5} {:<16} {:>9} {:>8} {:>7} {:>14} {:>6}",
            c.pid,
            e.name,
            c.resident,
            c.swapped,
            c.tables,
            c.oom_score_adj,
            Score(c.badness(total).map(|_| c.score(total)))
        );
    }
}

/// Processes the OOM killer has killed since boot.
pub fn kills() -> u64 {
    KILLS.load(Ordering::Relaxed)
}
