use super::commit::*;
use super::oom::*;
use super::pressure::*;
use crate::reclaim::Watermarks;
use proptest::prelude::*;

const BACKING: Backing = Backing { ram_pages: 16_384, swap_pages: 65_536 };

fn account(mode: OvercommitMode, ratio: u64) -> CommitAccount {
    CommitAccount::new(OvercommitPolicy { mode, ratio })
}

#[test]
fn mode_2_refuses_exactly_past_commit_limit() {
    let mut a = account(OvercommitMode::Never, 50);
    let limit = 65_536 + 16_384 / 2;
    assert_eq!(a.limit(BACKING), limit);
    a.charge(limit - 10, BACKING).unwrap();
    a.charge(10, BACKING).expect("up to the limit itself is allowed");
    let refused = a.charge(1, BACKING).unwrap_err();
    assert_eq!(refused, CommitRefused { mode: OvercommitMode::Never, requested: 1, committed: limit, limit });
    assert_eq!(a.committed(), limit, "a refusal charges nothing");
    a.uncharge(5);
    a.charge(5, BACKING).unwrap();
}

#[test]
fn what_is_promised_is_checked_against_less_backing_without_charging() {
    let without_swap = Backing { swap_pages: 0, ..BACKING };
    let mut a = account(OvercommitMode::Never, 50);
    a.charge(8_192, BACKING).unwrap();
    assert_eq!(a.check(0, without_swap), Ok(()), "exactly RAM × ratio still holds");
    a.charge(1, BACKING).unwrap();
    let refused = a.check(0, without_swap).unwrap_err();
    assert_eq!(
        refused,
        CommitRefused { mode: OvercommitMode::Never, requested: 0, committed: 8_193, limit: 8_192 }
    );
    assert_eq!(a.committed(), 8_193, "a check charges nothing");
    for mode in [OvercommitMode::Heuristic, OvercommitMode::Always] {
        let mut a = account(mode, 50);
        for _ in 0..4 {
            a.charge(BACKING.swap_pages, BACKING).unwrap();
        }
        assert_eq!(a.check(0, without_swap), Ok(()), "only mode 2 holds promises to the limit");
    }
}

#[test]
fn mode_0_refuses_only_one_request_larger_than_ram_and_swap() {
    let mut a = account(OvercommitMode::Heuristic, 50);
    let all = BACKING.ram_pages + BACKING.swap_pages;
    assert!(a.charge(all + 1, BACKING).is_err());
    for _ in 0..3 {
        a.charge(all, BACKING).expect("many requests may add up past everything");
    }
    assert_eq!(a.committed(), 3 * all);
}

#[test]
fn no_reserve_is_waived_except_in_mode_2() {
    for mode in [OvercommitMode::Heuristic, OvercommitMode::Always] {
        let mut a = account(mode, 50);
        assert_eq!(a.charge_region(1 << 40, true, BACKING), Ok(false));
        assert_eq!(a.committed(), 0);
    }
    let mut a = account(OvercommitMode::Never, 50);
    assert_eq!(a.charge_region(100, true, BACKING), Ok(true));
    assert_eq!(a.committed(), 100);
    assert!(a.charge_region(1 << 40, true, BACKING).is_err());
}

#[test]
fn mode_1_always_allows_and_still_counts() {
    let mut a = account(OvercommitMode::Always, 50);
    a.charge(u64::MAX / 2, BACKING).unwrap();
    assert_eq!(a.committed(), u64::MAX / 2);
}

#[test]
fn policies_parse_from_the_build_setting() {
    assert_eq!(
        OvercommitPolicy::parse("2:80"),
        Some(OvercommitPolicy { mode: OvercommitMode::Never, ratio: 80 })
    );
    assert_eq!(
        OvercommitPolicy::parse("1"),
        Some(OvercommitPolicy { mode: OvercommitMode::Always, ratio: 50 })
    );
    for bad in ["", "3", "2:", "x:50", "2:1001", "0:-1"] {
        assert_eq!(OvercommitPolicy::parse(bad), None, "{bad:?}");
    }
}

fn candidate(pid: u32, resident: u64, adj: i16) -> Candidate {
    Candidate { pid, resident, swapped: 0, tables: 0, oom_score_adj: adj }
}

#[test]
fn badness_counts_resident_swap_and_tables() {
    let c = Candidate { pid: 1, resident: 100, swapped: 50, tables: 3, oom_score_adj: 0 };
    assert_eq!(c.badness(10_000), Some(153));
    assert_eq!(c.score(10_000), 15);
}

#[test]
fn adj_shifts_by_thousandths_of_all_memory_and_minus_1000_protects() {
    let total = 100_000;
    assert_eq!(candidate(1, 1000, 500).badness(total), Some(1000 + 500 * 100));
    assert_eq!(candidate(1, 1000, -500).badness(total), Some(1), "never below 1");
    assert_eq!(candidate(1, 1000, -1000).badness(total), None);
    assert_eq!(candidate(1, 90_000, 1000).score(total), 1900);
}

#[test]
fn the_biggest_unprotected_process_is_chosen_first_of_equals() {
    let all = [candidate(1, 10, 0), candidate(2, 500, -1000), candidate(3, 300, 0), candidate(4, 300, 0)];
    assert_eq!(choose(&all, 10_000).map(|c| c.pid), Some(3));
    let protected = [candidate(1, 10, -1000)];
    assert_eq!(choose(&protected, 10_000), None);
    assert_eq!(choose(&[], 10_000), None);
    // A small process with a high adj beats a big one.
    let adj = [candidate(1, 5000, 0), candidate(2, 10, 600)];
    assert_eq!(choose(&adj, 10_000).map(|c| c.pid), Some(2));
}

#[test]
fn pressure_levels_follow_the_watermarks() {
    let marks = Watermarks { min: 256, low: 384, high: 512 };
    let at = |free, cached, swap_free| level(MemoryCounts { free, cached, swap_free }, marks);
    assert_eq!(at(10_000, 0, 0), PressureLevel::Normal);
    assert_eq!(at(383, 5000, 0), PressureLevel::Low);
    assert_eq!(at(300, 100, 5000), PressureLevel::Medium);
    assert_eq!(at(300, 100, 111), PressureLevel::Critical);
    assert_eq!(at(300, 100, 112), PressureLevel::Medium);
}

proptest! {
    /// Mode 2 against a model: the committed sum never passes the limit,
    /// and a charge is refused exactly when it would.
    #[test]
    fn mode_2_never_passes_the_limit(ops in proptest::collection::vec((any::<bool>(), 0u64..20_000), 1..200)) {
        let mut a = account(OvercommitMode::Never, 30);
        let limit = a.limit(BACKING);
        let mut model = 0u64;
        for (charge, pages) in ops {
            if charge {
                let fits = model + pages <= limit;
                prop_assert_eq!(a.charge(pages, BACKING).is_ok(), fits);
                if fits { model += pages; }
            } else {
                let back = pages.min(model);
                a.uncharge(back);
                model -= back;
            }
            prop_assert_eq!(a.committed(), model);
            prop_assert!(model <= limit);
        }
    }

    /// The chosen victim has the highest badness of all candidates, and is
    /// never protected.
    #[test]
    fn the_victim_has_the_highest_badness(
        list in proptest::collection::vec((0u64..10_000, 0u64..1000, -1000i16..=1000), 0..20)
    ) {
        let all: alloc::vec::Vec<Candidate> = list.iter().enumerate()
            .map(|(i, &(resident, swapped, adj))| Candidate { pid: i as u32, resident, swapped, tables: 1, oom_score_adj: adj })
            .collect();
        let total = 50_000;
        match choose(&all, total) {
            None => prop_assert!(all.iter().all(|c| c.oom_score_adj == -1000)),
            Some(victim) => {
                let best = victim.badness(total).unwrap();
                prop_assert!(all.iter().all(|c| c.badness(total).is_none_or(|b| b <= best)));
            }
        }
    }
}
