//! The views the shell and the memory picture use: page counts by state,
//! the walk of one address, every present page.

use super::*;

#[test]
fn page_counts_say_what_each_page_of_a_region_is() {
    let mut s = space_with_swap(8);
    let stack = RegionKind::Stack { guard_pages: 1 };
    let base = s.reserve(16 * PAGE_SIZE, Prot::USER_RW, stack).unwrap().as_u64();
    for page in 1..5 {
        touch(&mut s, base + page * PAGE_SIZE, true).unwrap();
    }
    s.decommit(base + PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(reclaim(&mut s, 1).evicted, 1);
    let range = UserAddr::new(base)..UserAddr::new(base + 16 * PAGE_SIZE);
    let counts = s.page_counts(range);
    let expected =
        PageCounts { anonymous: 2, swapped: 1, demand_zero: 1, untouched: 12, ..PageCounts::default() };
    assert_eq!(counts, expected);
    assert_eq!(counts.resident(), s.stats().resident_pages);
    assert_eq!(counts.swapped, s.stats().swapped_pages);
    done(s);
}

#[test]
fn page_counts_of_a_huge_untouched_range_cost_nothing_and_count_it_all() {
    let mut s = space();
    let base = s.reserve(GIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let range = UserAddr::new(base)..UserAddr::new(base + GIB);
    assert_eq!(s.page_counts(range), PageCounts { untouched: GIB / PAGE_SIZE, ..PageCounts::default() });
    done(s);
}

#[test]
fn the_walk_of_an_address_shows_every_level_and_the_leaf() {
    let mut s = space();
    let base = s.reserve(4 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let frame = touch(&mut s, base, true).unwrap();

    let walk = s.walk_entry(UserAddr::new(base));
    assert!(walk.steps.iter().all(Option::is_some), "a mapped page: four levels");
    assert_eq!(walk.steps[0].unwrap().table, s.root());
    assert_eq!(walk.steps[3].unwrap().level, 1);
    match walk.leaf {
        Some(Ok(PteState::Present(m))) => assert_eq!((m.frame, m.kind), (frame, PageKind::Anonymous)),
        other => panic!("leaf {other:?}"),
    }
    assert_eq!(walk.effective(), walk.leaf);

    // Same page table, untouched page: an empty leaf, the region's default.
    let walk = s.walk_entry(UserAddr::new(base + PAGE_SIZE));
    assert_eq!(walk.leaf, Some(Ok(PteState::Absent)));
    assert_eq!(walk.effective(), Some(Ok(PteState::DemandZero { prot: Prot::USER_RW })));

    // Far away: the walk stops at the first empty upper entry, no region.
    let walk = s.walk_entry(UserAddr::new(0x7000_0000_0000));
    assert_eq!(walk.steps.iter().filter(|s| s.is_some()).count(), 1);
    assert_eq!((walk.leaf, walk.region, walk.effective()), (None, None, None));
    done(s);
}

#[test]
fn every_present_page_is_visited_once_with_its_frame() {
    let mut s = space();
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let far =
        s.reserve_at(0x6000_0000_0000, PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let mut expected = BTreeMap::new();
    for addr in [base, base + 9 * PAGE_SIZE, base + 63 * PAGE_SIZE, far] {
        expected.insert(addr, touch(&mut s, addr, true).unwrap());
    }
    let mut seen = BTreeMap::new();
    s.for_each_present(&mut |va, m| assert!(seen.insert(va.as_u64(), m.frame).is_none()));
    assert_eq!(seen, expected);
    done(s);
}
