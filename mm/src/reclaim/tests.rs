extern crate std;

use super::hot_cold::{HotCold, Step};
use super::sim::{self, TraceRng};
use super::*;
use alloc::collections::VecDeque;
use proptest::prelude::*;

#[test]
fn watermarks_are_ordered_and_scale_with_memory() {
    for total in [1_000, 16_000, 262_144, 4_000_000] {
        let w = Watermarks::for_total(total);
        assert!(w.min < w.low && w.low < w.high && w.high < total, "{w:?} for {total}");
    }
    // 64 MiB: 16,384 frames.
    assert_eq!(Watermarks::for_total(16_384), Watermarks { min: 256, low: 384, high: 512 });
    assert_eq!(Watermarks::for_total(1 << 30).min, 1024);
}

#[test]
fn the_reverse_map_remembers_each_frames_page() {
    let span = Pfn::new(100)..Pfn::new(200);
    let mut map = ReverseMap::new(span).unwrap();
    let owner = PageOwner { space: MAX_SPACE, page: UserAddr::new(USER_END - PAGE_SIZE) };
    map.set(Pfn::new(100), owner);
    map.set(Pfn::new(199), PageOwner { space: 1, page: UserAddr::new(PAGE_SIZE) });
    assert_eq!(map.get(Pfn::new(100)), Some(owner));
    assert_eq!(map.get(Pfn::new(199)).unwrap().page, UserAddr::new(PAGE_SIZE));
    assert_eq!((map.get(Pfn::new(150)), map.get(Pfn::new(99)), map.get(Pfn::new(200))), (None, None, None));
    assert_eq!(map.mapped(), 2);
    map.clear(Pfn::new(100));
    assert_eq!((map.get(Pfn::new(100)), map.mapped()), (None, 1));
    let key = crate::files::FilePage { file: crate::files::FileId(u16::MAX), page: (1 << 36) - 1 };
    map.set_cached(Pfn::new(150), key);
    assert_eq!((map.get_cached(Pfn::new(150)), map.get(Pfn::new(150))), (Some(key), None));
    assert_eq!(map.get_cached(Pfn::new(199)), None, "a process page is not a cached one");
    assert_eq!(map.frame_at(5), Pfn::new(105));
}

/// The textbook second-chance algorithm on a circular queue: the model the
/// clock (which sweeps frame positions instead) must agree with.
fn second_chance_model(trace: &[u64], frames: usize) -> u64 {
    let mut queue: VecDeque<(u64, bool)> = VecDeque::new();
    let mut faults = 0;
    for &page in trace {
        if let Some(entry) = queue.iter_mut().find(|(p, _)| *p == page) {
            entry.1 = true;
            continue;
        }
        faults += 1;
        if queue.len() == frames {
            loop {
                let (p, referenced) = queue.pop_front().unwrap();
                if !referenced {
                    break;
                }
                queue.push_back((p, false));
            }
        }
        queue.push_back((page, true));
    }
    faults
}

proptest! {
    #[test]
    fn the_clock_agrees_with_second_chance(
        trace in proptest::collection::vec(0u64..24, 1..600),
        frames in 1usize..16,
    ) {
        prop_assert_eq!(sim::clock_faults(&trace, frames), second_chance_model(&trace, frames));
    }

    #[test]
    fn no_policy_beats_the_optimum(trace in proptest::collection::vec(0u64..20, 1..400), frames in 1usize..12) {
        let opt = sim::optimal_faults(&trace, frames);
        prop_assert!(opt <= sim::clock_faults(&trace, frames));
        prop_assert!(opt <= sim::fifo_faults(&trace, frames));
        prop_assert!(opt <= sim::best_fixed_set_faults(&trace, frames));
        // The hot/cold clock's own `expect`s check that two turns always
        // find a victim, on every trace.
        prop_assert!(opt <= sim::hot_cold_faults(&trace, frames));
    }

    /// Any sequence of the calls the kernel makes keeps the policy's counts
    /// equal to what its frames say, and hot pages resident.
    #[test]
    fn the_hot_cold_counts_match_their_frames(ops in proptest::collection::vec((0u8..6, 0u64..24, any::<bool>()), 1..400)) {
        let mut policy = HotCold::new(24, 1).unwrap();
        let mut resident = alloc::collections::BTreeSet::new();
        for (op, index, flag) in ops {
            match op {
                0 => { policy.admit(index); resident.insert(index); }
                1 => { policy.remove(index); resident.remove(&index); }
                2 => policy.refaulted(index, if flag { policy.now() } else { 0 }),
                3 => policy.turn_began(),
                _ => {
                    if policy.visit(index, flag, op == 5) == Step::Evict {
                        prop_assert!(resident.contains(&index) && !flag, "only unused resident pages go");
                    }
                }
            }
            let stats = policy.stats();
            prop_assert_eq!(stats.resident, resident.len() as u64);
            prop_assert_eq!(stats.hot, (0..24).filter(|&i| policy.is_hot(i)).count() as u64);
            prop_assert!((0..24).filter(|&i| policy.is_hot(i)).all(|i| resident.contains(&i)));
        }
    }
}

#[test]
fn the_hot_cold_clock_resists_a_loop_larger_than_memory() {
    // 80 pages in a loop, 64 frames: the plain clock faults on every
    // reference; the hot/cold clock keeps most of memory for pages that
    // stay hot and lets the rest of the loop go through the cold ones.
    let trace = sim::looping(80, 20_000);
    let (hot_cold, clock, opt) =
        (sim::hot_cold_faults(&trace, 64), sim::clock_faults(&trace, 64), sim::optimal_faults(&trace, 64));
    assert_eq!(clock, 20_000);
    assert!(hot_cold * 10 <= opt * 13, "hot/cold {hot_cold}, optimal {opt}");
}

#[test]
fn the_hot_cold_clock_beats_fifo_and_the_plain_clock_where_popularity_is_skewed() {
    let mut rng = TraceRng::from_state(3);
    let zipf = sim::zipf(1024, 50_000, &mut rng);
    let (hot_cold, clock, fifo) =
        (sim::hot_cold_faults(&zipf, 256), sim::clock_faults(&zipf, 256), sim::fifo_faults(&zipf, 256));
    assert!(hot_cold < clock && clock < fifo, "hot/cold {hot_cold}, clock {clock}, fifo {fifo}");
    let phase = sim::phase_change(2048, 128, 4, 50_000, &mut rng);
    let (hot_cold, fifo) = (sim::hot_cold_faults(&phase, 256), sim::fifo_faults(&phase, 256));
    assert!(hot_cold < fifo, "a moving hot set: hot/cold {hot_cold}, fifo {fifo}");
}

/// A policy over `frames` frames, every one of them holding a new page.
fn full_policy(frames: u64) -> HotCold {
    let mut policy = HotCold::new(frames, 1).unwrap();
    policy.set_capacity(frames);
    for i in 0..frames {
        policy.admit(i);
    }
    policy
}

/// The first two cold frames of a full 64-frame policy.
fn two_cold(policy: &HotCold) -> (u64, u64) {
    let cold: Vec<u64> = (0..64).filter(|&i| !policy.is_hot(i)).collect();
    (cold[0], cold[1])
}

#[test]
fn pages_start_hot_until_the_limit_then_cold_and_are_promoted_when_used_again() {
    let mut policy = full_policy(64);
    // 64 resident, at least 1/32 cold: 62 hot.
    assert_eq!(policy.stats().hot, 62);
    let (a, b) = two_cold(&policy);
    // First visit: the Accessed bit is the fault's own, no promotion.
    assert_eq!(policy.visit(a, true, false), Step::Keep);
    assert!(!policy.is_hot(a));
    // Used again before the next visit: promoted. Unused: evicted.
    assert_eq!(policy.visit(a, true, false), Step::Keep);
    assert!(policy.is_hot(a));
    assert_eq!((policy.visit(b, true, false), policy.visit(b, false, false)), (Step::Keep, Step::Evict));
    assert_eq!(policy.now(), 1, "the eviction clock ticks per eviction");
    assert_eq!(policy.stats().promoted, 1);
}

#[test]
fn an_unused_hot_page_is_demoted_only_when_hot_pages_are_too_many_and_evicted_only_when_memory_is_short() {
    let mut policy = full_policy(8);
    assert_eq!(policy.stats().hot, 7);
    let cold = (0..8).find(|&i| !policy.is_hot(i)).unwrap();
    let hot: Vec<u64> = (0..8).filter(|&i| i != cold).collect();
    for i in 0..8 {
        policy.visit(i, true, false); // the faults' own accesses
    }
    // The cold page used again: promoted, 8 hot > 7: the next unused hot
    // page the hand meets is demoted, then kept for its turn as cold.
    assert_eq!(policy.visit(cold, true, false), Step::Keep);
    assert_eq!(policy.stats().hot, 8);
    policy.turn_began();
    assert_eq!(policy.visit(hot[0], false, false), Step::Keep);
    assert!(!policy.is_hot(hot[0]));
    assert_eq!(policy.visit(hot[1], false, false), Step::Keep);
    assert!(policy.is_hot(hot[1]), "7 hot is the limit: no more demotions");
    // A sweep that went a whole turn without finding enough evicts unused
    // hot pages too: two turns always find every unused page.
    assert_eq!(policy.visit(hot[1], false, true), Step::Evict);
    assert_eq!(policy.stats().hot_evicted, 1);
}

#[test]
fn a_page_that_comes_back_soon_after_eviction_comes_back_hot() {
    let mut policy = full_policy(64);
    let (a, b) = two_cold(&policy);
    // Age the hot pages: they are used once, then 32 evictions pass (the
    // two cold frames evicted and refilled) and a turn sees them unused.
    for i in 0..64 {
        policy.visit(i, true, false);
    }
    for _ in 0..16 {
        for i in [a, b] {
            while policy.visit(i, false, false) == Step::Keep {}
            policy.remove(i);
            policy.admit(i);
            policy.visit(i, true, false);
        }
    }
    policy.turn_began();
    for i in (0..64).filter(|&i| i != a && i != b) {
        policy.visit(i, false, false);
    }
    policy.turn_began();
    assert!(policy.now() >= 32);
    // Evicted just now, back now: hot. Evicted at the start: cold.
    while policy.visit(b, false, false) == Step::Keep {}
    policy.remove(b);
    policy.admit(b);
    policy.refaulted(b, policy.now());
    assert!(policy.is_hot(b));
    policy.remove(a);
    policy.admit(a);
    policy.refaulted(a, 0);
    assert!(!policy.is_hot(a));
    assert_eq!((policy.stats().refaulted_hot, policy.stats().refaulted_cold), (1, 1));
}

#[test]
fn the_best_fixed_set_keeps_the_most_referenced_pages() {
    // Page 7 three times, page 5 twice, pages 1 and 2 once; 3 frames: 7
    // and 5 stay (one fault each), the spare frame takes 1, then 2, then 1.
    let trace = [7, 1, 5, 7, 2, 5, 7, 1];
    assert_eq!(sim::best_fixed_set_faults(&trace, 3), 2 + 3);
    // One frame: everything goes through the spare.
    assert_eq!(sim::best_fixed_set_faults(&[1, 1, 2, 1], 1), 3);
}

#[test]
fn a_sweep_stops_when_told_and_after_max_scan() {
    let mut clock = Clock::default();
    let sweep = clock.sweep(10, 5, 100, |i| if i == 3 { Verdict::Stop } else { Verdict::Skipped });
    assert_eq!(sweep, Sweep { scanned: 4, evicted: 0, referenced: 0, stopped: true });
    assert_eq!(clock.hand(), 4);
    let sweep = clock.sweep(10, 5, 7, |_| Verdict::Referenced);
    assert_eq!((sweep.scanned, sweep.referenced), (7, 7));
    assert_eq!(clock.hand(), 1, "the hand wraps");
    assert_eq!(clock.sweep(0, 1, 10, |_| Verdict::Evicted), Sweep::default());
}

#[test]
fn the_clock_keeps_a_hot_set_that_fifo_loses() {
    // 8 hot pages touched between every cold reference, 16 frames: the clock
    // keeps the hot set, FIFO keeps pushing it out.
    let mut rng = TraceRng::from_state(7);
    let trace: Vec<u64> =
        (0..4000).map(|i| if i % 2 == 0 { rng.below(8) } else { 100 + rng.below(200) }).collect();
    let (clock, fifo, opt) =
        (sim::clock_faults(&trace, 16), sim::fifo_faults(&trace, 16), sim::optimal_faults(&trace, 16));
    assert!(clock < fifo, "clock {clock}, fifo {fifo}");
    assert!(opt <= clock);
}

#[test]
fn traces_have_the_shapes_they_claim() {
    let mut rng = TraceRng::from_state(1);
    assert_eq!(sim::looping(3, 7), [0, 1, 2, 0, 1, 2, 0]);
    let z = sim::zipf(100, 10_000, &mut rng);
    let zeros = z.iter().filter(|&&p| p == 0).count();
    let fifties = z.iter().filter(|&&p| p == 50).count();
    assert!(zeros > 10 * fifties.max(1), "page 0 is {zeros}, page 50 is {fifties}");
    let p = sim::phase_change(1000, 50, 4, 4000, &mut rng);
    assert!(p.iter().all(|&x| x < 1000));
}

proptest! {
    /// Passing over empty frames in runs changes nothing but the work: the
    /// same frames are visited in the same order, the sweep counts the
    /// same, the hand ends in the same place, and the turn is seen to
    /// begin each time the hand comes to frame 0.
    #[test]
    fn a_sweep_over_runs_of_empty_frames_visits_what_a_frame_by_frame_sweep_does(
        occupied in proptest::collection::vec(any::<bool>(), 1..120),
        verdicts in proptest::collection::vec(0u8..3, 120),
        hand in 0u64..120,
        want in 1u64..20,
        max_scan in 0u64..300,
    ) {
        let span = Pfn::new(1000)..Pfn::new(1000 + occupied.len() as u64);
        let mut map = ReverseMap::new(span).unwrap();
        for (i, &used) in occupied.iter().enumerate() {
            if used {
                map.set(map.frame_at(i as u64), PageOwner { space: 1, page: UserAddr::new(0x1000 * (i as u64 + 1)) });
            }
        }
        let frames = map.frames();
        let verdict = |i: u64| match verdicts[i as usize] {
            0 => Verdict::Referenced,
            1 => Verdict::Evicted,
            _ => Verdict::Skipped,
        };
        let (mut one_by_one, mut in_runs) = (Clock::new(), Clock::new());
        for clock in [&mut one_by_one, &mut in_runs] {
            // Both hands start at the same frame.
            clock.sweep(frames, u64::MAX, hand % frames, |_| Verdict::Skipped);
            prop_assert_eq!(clock.hand(), hand % frames);
        }
        let mut seen = Vec::new();
        let expected = one_by_one.sweep(frames, want, max_scan, |i| {
            if !occupied[i as usize] {
                return Verdict::Skipped;
            }
            seen.push(i);
            verdict(i)
        });
        let (mut visited, mut turns_seen, mut turns) = (Vec::new(), 0, 0);
        let swept = in_runs.sweep_occupied(
            frames,
            want,
            max_scan,
            |i, n| {
                turns_seen += (i == 0) as u32;
                map.empty_run(i, n)
            },
            |i| {
                turns += (i == 0) as u32;
                visited.push(i);
                verdict(i)
            },
        );
        prop_assert_eq!(swept, expected);
        prop_assert_eq!(visited, seen);
        prop_assert_eq!(in_runs.hand(), one_by_one.hand());
        prop_assert!(turns_seen >= turns, "frame 0 visited without empty_run asked");
    }
}
