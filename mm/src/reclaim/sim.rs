//! Replacement policies on reference traces, for the tests and the bench
//! (`cargo bench --bench reclaim`): the kernel's [`Clock`] with the hot/cold
//! policy driven the way the kernel drives it, a plain second-chance clock,
//! FIFO, A0 (a fixed set of the most probable pages), and Belady's optimal (evict the page used
//! furthest in the future), which no online policy can beat. A trace is a
//! sequence of page numbers; the result is the number of faults.

use super::hot_cold::{HotCold, Step};
use super::{Clock, Verdict};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

/// What a frame-indexed replacement policy does, for [`frame_faults`].
trait Replacement {
    /// The frame to evict from a full memory; `accessed` holds the
    /// Accessed bits (the policy clears what it tests).
    fn victim(&mut self, accessed: &mut [bool]) -> usize;
    /// `page` left `frame`.
    fn evicted(&mut self, _frame: usize, _page: u64) {}
    /// `page` arrived in `frame`.
    fn arrived(&mut self, _frame: usize, _page: u64) {}
}

/// Faults of `policy` with `frames` frames. As on the machine, a page
/// brought in is then accessed (its Accessed bit is set by the retried
/// access).
fn frame_faults(trace: &[u64], frames: usize, policy: &mut impl Replacement) -> u64 {
    let mut slots: Vec<Option<u64>> = vec![None; frames];
    let mut accessed = vec![false; frames];
    let mut resident: BTreeMap<u64, usize> = BTreeMap::new();
    let mut faults = 0;
    for &page in trace {
        if let Some(&at) = resident.get(&page) {
            accessed[at] = true;
            continue;
        }
        faults += 1;
        let at = match slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                let i = policy.victim(&mut accessed);
                let old = slots[i].take().expect("a full memory");
                resident.remove(&old);
                policy.evicted(i, old);
                i
            }
        };
        slots[at] = Some(page);
        accessed[at] = true;
        resident.insert(page, at);
        policy.arrived(at, page);
    }
    faults
}

/// The plain second-chance clock: an accessed page loses its bit and
/// stays, the first unaccessed one goes.
impl Replacement for Clock {
    fn victim(&mut self, accessed: &mut [bool]) -> usize {
        let mut victim = None;
        let frames = accessed.len() as u64;
        self.sweep(frames, 1, 2 * frames, |i| {
            if core::mem::take(&mut accessed[i as usize]) {
                return Verdict::Referenced;
            }
            victim = Some(i as usize);
            Verdict::Evicted
        });
        victim.expect("two turns find a victim")
    }
}

/// Faults of a plain second-chance clock (what the kernel used before the
/// hot/cold policy) with `frames` frames.
pub fn clock_faults(trace: &[u64], frames: usize) -> u64 {
    frame_faults(trace, frames, &mut Clock::default())
}

/// The kernel's replacement: the clock's hand choosing with [`HotCold`],
/// an eviction stamp kept per evicted page as its swap slot keeps it.
struct HotColdClock {
    clock: Clock,
    policy: HotCold,
    evicted_at: BTreeMap<u64, u32>,
}

impl Replacement for HotColdClock {
    fn victim(&mut self, accessed: &mut [bool]) -> usize {
        let (mut victim, mut visited) = (None, 0);
        let frames = accessed.len() as u64;
        let policy = &mut self.policy;
        self.clock.sweep(frames, 1, 2 * frames, |i| {
            if i == 0 {
                policy.turn_began();
            }
            visited += 1;
            let referenced = core::mem::take(&mut accessed[i as usize]);
            match policy.visit(i, referenced, visited > frames) {
                Step::Keep => Verdict::Referenced,
                Step::Evict => {
                    victim = Some(i as usize);
                    Verdict::Evicted
                }
            }
        });
        victim.expect("two turns find a victim")
    }

    fn evicted(&mut self, frame: usize, page: u64) {
        self.policy.remove(frame as u64);
        self.evicted_at.insert(page, self.policy.now());
    }

    fn arrived(&mut self, frame: usize, page: u64) {
        self.policy.admit(frame as u64);
        if let Some(stamp) = self.evicted_at.remove(&page) {
            self.policy.refaulted(frame as u64, stamp);
        }
    }
}

/// Faults of the kernel's replacement (the clock with the hot/cold policy,
/// driven as the kernel drives it) with `frames` frames.
pub fn hot_cold_faults(trace: &[u64], frames: usize) -> u64 {
    let mut policy = HotCold::new(frames as u64, 1).expect("a small table");
    policy.set_capacity(frames as u64);
    frame_faults(
        trace,
        frames,
        &mut HotColdClock { clock: Clock::default(), policy, evicted_at: BTreeMap::new() },
    )
}

/// Faults of first-in first-out replacement.
pub fn fifo_faults(trace: &[u64], frames: usize) -> u64 {
    let mut queue = VecDeque::new();
    let mut resident = BTreeSet::new();
    let mut faults = 0;
    for &page in trace {
        if resident.contains(&page) {
            continue;
        }
        faults += 1;
        if queue.len() == frames {
            resident.remove(&queue.pop_front().expect("full"));
        }
        queue.push_back(page);
        resident.insert(page);
    }
    faults
}

/// Faults of Belady's optimal replacement (MIN).
pub fn optimal_faults(trace: &[u64], frames: usize) -> u64 {
    // next_use[i]: the position of the next reference to trace[i]'s page.
    let mut next_use = vec![usize::MAX; trace.len()];
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, &page) in trace.iter().enumerate().rev() {
        next_use[i] = seen.insert(page, i).unwrap_or(usize::MAX);
    }
    // Resident pages keyed by their next use, furthest last.
    let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut resident: BTreeMap<u64, usize> = BTreeMap::new();
    let mut faults = 0;
    for (i, &page) in trace.iter().enumerate() {
        if let Some(old) = resident.insert(page, next_use[i]) {
            by_next.remove(&(old, page));
        } else {
            faults += 1;
            if resident.len() > frames {
                let &(key, victim) = by_next.iter().next_back().expect("full");
                by_next.remove(&(key, victim));
                resident.remove(&victim);
            }
        }
        by_next.insert((next_use[i], page));
    }
    faults
}

/// Faults of the best fixed resident set chosen with hindsight: the
/// `frames - 1` pages the trace references most (see [`a0_faults`]).
pub fn best_fixed_set_faults(trace: &[u64], frames: usize) -> u64 {
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for &page in trace {
        *counts.entry(page).or_default() += 1;
    }
    let mut by_count: Vec<(u64, u64)> = counts.into_iter().map(|(page, n)| (n, page)).collect();
    // Most referenced first; ties by page number, so the choice is repeatable.
    by_count.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let kept = by_count.iter().take(frames.saturating_sub(1)).map(|&(_, page)| page).collect();
    a0_faults([(trace, kept)])
}

/// Faults of A0, the policy that keeps a fixed set of pages resident (the
/// `frames - 1` most probable ones) and gives the last frame to every
/// other page in turn; here the set may change between parts of the
/// trace (the phases of a phase-change trace): pages it drops leave,
/// pages it adds load on their first use. On references drawn
/// independently from known probabilities, A0 with the most probable
/// pages has the fewest expected faults of all policies that do not see
/// the future (Aho, Denning and Ullman, "Principles of optimal page
/// replacement", JACM 1971): no online policy can be expected to beat it
/// there, however clever.
pub fn a0_faults<'a>(parts: impl IntoIterator<Item = (&'a [u64], BTreeSet<u64>)>) -> u64 {
    let mut loaded = BTreeSet::new();
    let mut spare = None;
    let mut faults = 0;
    for (part, kept) in parts {
        loaded.retain(|page| kept.contains(page));
        for &page in part {
            if kept.contains(&page) {
                faults += u64::from(loaded.insert(page));
            } else if spare != Some(page) {
                faults += 1;
                spare = Some(page);
            }
        }
    }
    faults
}

/// A small seeded generator, so traces are repeatable
/// (`TraceRng::from_state(seed)`).
pub use abi::rng::Xorshift64Star as TraceRng;

/// `len` references looping over `pages` pages in order.
pub fn looping(pages: u64, len: usize) -> Vec<u64> {
    (0..len as u64).map(|i| i % pages).collect()
}

/// `len` references to `pages` pages with Zipf-like popularity (page k
/// about 1/(k+1) as often as page 0), drawn by inverting the harmonic CDF.
pub fn zipf(pages: u64, len: usize, rng: &mut TraceRng) -> Vec<u64> {
    let weights: Vec<f64> = (0..pages).map(|k| 1.0 / (k + 1) as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    (0..len)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&c| c < u).min(pages as usize - 1) as u64
        })
        .collect()
}

/// A hot set that moves: `phases` phases of `len / phases` references, each
/// drawing 90 % from its own `hot` pages and 10 % from all `pages`.
pub fn phase_change(pages: u64, hot: u64, phases: u64, len: usize, rng: &mut TraceRng) -> Vec<u64> {
    let per_phase = (len as u64 / phases).max(1);
    (0..len as u64)
        .map(|i| {
            let base = phase_base(i / per_phase, pages, hot);
            if rng.below(10) < 9 {
                (base + rng.below(hot)) % pages
            } else {
                rng.below(pages)
            }
        })
        .collect()
}

fn phase_base(phase: u64, pages: u64, hot: u64) -> u64 {
    phase * hot % pages
}

/// A0 on a [`phase_change`] trace made with the same arguments: in each
/// phase it keeps that phase's hot pages and, as every other page is
/// equally likely, the lowest-numbered others up to `frames - 1`.
pub fn phase_change_a0_faults(trace: &[u64], pages: u64, hot: u64, phases: u64, frames: usize) -> u64 {
    let per_phase = (trace.len() as u64 / phases).max(1) as usize;
    let parts = trace.chunks(per_phase).enumerate().map(|(phase, part)| {
        let base = phase_base(phase as u64, pages, hot);
        let mut kept: BTreeSet<u64> = (0..hot.min(frames as u64 - 1)).map(|k| (base + k) % pages).collect();
        let others =
            (0..pages).filter(|p| !kept.contains(p)).take(frames - 1 - kept.len()).collect::<Vec<_>>();
        kept.extend(others);
        (part, kept)
    });
    a0_faults(parts)
}
