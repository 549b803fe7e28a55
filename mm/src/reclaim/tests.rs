extern crate std;

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
    }
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
