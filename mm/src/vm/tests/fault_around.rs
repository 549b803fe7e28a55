//! Fault-around (`vm/fault_around.rs`, `AddressSpace::map_ahead`): what a
//! sequential run of demand-zero faults maps ahead, and everything that
//! stops it short.

use super::*;

/// A space whose machine holds `prezeroed` frames zeroed in advance.
fn space_with_pool(prezeroed: u64) -> Space {
    AddressSpace::new(FakeMachine { prezeroed, ..FakeMachine::default() }, Limits::UNLIMITED).unwrap()
}

/// Pages of `base..base + pages` that are mapped now.
fn mapped(s: &Space, base: u64, pages: u64) -> Vec<u64> {
    (0..pages).filter(|&i| walk(s, UserAddr::new(base + i * PAGE_SIZE)).is_some()).collect()
}

/// Writes the first word of each of `pages` pages in order; returns the
/// demand-zero faults it took.
fn write_in_order(s: &mut Space, base: u64, pages: impl Iterator<Item = u64>) -> u64 {
    let before = s.stats().faults.demand_zero;
    for i in pages {
        assert_eq!(read_word(s, base + i * PAGE_SIZE), 0, "page {i} reads zero before it is written");
        write_word(s, base + i * PAGE_SIZE, 0x5eed + i);
    }
    s.stats().faults.demand_zero - before
}

#[test]
fn a_sequential_first_touch_takes_one_fault_per_window() {
    let mut s = space_with_pool(1000);
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    // Windows 0, 2, 4, 8, 16, 16, 16: faults at pages 0, 1, 4, 9, 18, 35, 52.
    assert_eq!(write_in_order(&mut s, base, 0..64), 7);
    let st = s.stats();
    assert_eq!(st.faults.mapped_ahead, 57);
    assert_eq!(st.resident_pages, 64);
    assert_eq!(s.platform().prezeroed_taken, 57, "every page ahead came from the pool");
    for i in 0..64 {
        assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), 0x5eed + i, "page {i}");
    }
    done(s);
}

#[test]
fn random_and_descending_faults_map_only_the_page_touched() {
    let mut s = space_with_pool(1000);
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let order = [7u64, 3, 40, 12, 63, 0, 25, 19];
    assert_eq!(write_in_order(&mut s, base, order.iter().copied()), 8);
    assert_eq!(write_in_order(&mut s, base, (50..58).rev()), 8);
    assert_eq!(s.stats().faults.mapped_ahead, 0);
    assert_eq!(s.stats().resident_pages, 16);
    assert_eq!(s.platform().prezeroed_taken, 0);
    done(s);
}

#[test]
fn without_zeroed_frames_a_fault_maps_its_page_alone() {
    let mut s = space_with_pool(3);
    let base = s.reserve(32 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    write_in_order(&mut s, base, 0..5);
    // Page 1's window took 2 (pages 2, 3), page 4's found one frame left (5).
    assert_eq!(mapped(&s, base, 32), [0, 1, 2, 3, 4, 5]);
    assert_eq!(s.platform().prezeroed, 0);
    // From here every fault is one page; none zeroes more than its own.
    assert_eq!(write_in_order(&mut s, base, 6..20), 14);
    assert_eq!(s.stats().faults.mapped_ahead, 3);
    done(s);
}

#[test]
fn the_window_stops_at_the_region_end_and_at_its_page_table() {
    let mut s = space_with_pool(1000);
    // Two regions side by side: the window must not spill into the second.
    let a = s.reserve_at(0x40_0000, 6 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let b = s.reserve_at(a + 6 * PAGE_SIZE, 16 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap();
    write_in_order(&mut s, a, 0..6);
    assert_eq!(mapped(&s, b.as_u64(), 16), Vec::<u64>::new(), "nothing of the next region");
    // A region across a 2 MiB boundary: the window ends with the last-level table.
    let table_end = 0x80_0000;
    let c = s
        .reserve_at(table_end - 3 * PAGE_SIZE, 64 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous)
        .unwrap();
    write_word(&mut s, c.as_u64(), 1);
    let tables = s.stats().table_frames;
    write_word(&mut s, c.as_u64() + PAGE_SIZE, 1);
    assert_eq!(mapped(&s, c.as_u64(), 64), [0, 1, 2], "window 2 from page 1, cut at the table's end");
    assert_eq!(s.stats().table_frames, tables, "fault-around makes no table");
    done(s);
}

#[test]
fn the_window_leaves_every_page_that_is_not_demand_zero_alone() {
    let mut s = space_with_swap(64);
    s.platform_mut().prezeroed = 1000;
    let base = s.reserve(32 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    // Page 3 goes to swap with its data; page 1 then starts a run towards it.
    write_word(&mut s, base + 3 * PAGE_SIZE, 0xabc);
    assert_eq!(reclaim(&mut s, 1).evicted, 1);
    s.protect(base + 6 * PAGE_SIZE, PAGE_SIZE, Prot::USER_READ).unwrap();
    write_in_order(&mut s, base, 0..2);
    assert_eq!(mapped(&s, base, 32), [0, 1, 2], "stopped at the swapped page");
    assert_eq!(s.stats().swapped_pages, 1);
    assert_eq!(read_word(&mut s, base + 3 * PAGE_SIZE), 0xabc, "its data came back from swap");
    // Page 4 does not continue the run (page 3 came from swap); page 5's
    // window stops at page 6, a region of its own since it was made
    // read-only.
    write_in_order(&mut s, base, 4..6);
    assert_eq!(mapped(&s, base, 32), [0, 1, 2, 3, 4, 5]);
    done(s);
}

#[test]
fn pages_ahead_pass_the_quota_check_and_never_fail_the_fault() {
    // Root, three tables, the region records' page: 5 of the 12 pages.
    let limits = Limits { ram_quota: 12 * PAGE_SIZE, ..Limits::UNLIMITED };
    let mut s = AddressSpace::new(FakeMachine { prezeroed: 1000, ..FakeMachine::default() }, limits).unwrap();
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    write_in_order(&mut s, base, 0..5);
    assert!(s.stats().charged_bytes() <= 12 * PAGE_SIZE, "{:?}", s.stats());
    assert_eq!(s.stats().faults.quota_exceeded, 0, "the window ends where the quota does");
    let resident = s.stats().resident_pages;
    let outcome = touch(&mut s, base + resident * PAGE_SIZE, true);
    assert_eq!(outcome, Err(FaultOutcome::QuotaExceeded { quota: 12 * PAGE_SIZE }));
    done(s);
}

#[test]
fn fault_around_can_be_turned_off() {
    let mut s = space_with_pool(1000);
    assert_eq!(s.fault_around(), MAX_FAULT_AROUND);
    s.set_fault_around(0);
    let base = s.reserve(32 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    assert_eq!(write_in_order(&mut s, base, 0..32), 32);
    assert_eq!(s.platform().prezeroed_taken, 0);
    s.set_fault_around(4);
    let more = s.reserve(32 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    // Windows 0, 2, 4, 4, 4, 4, 4, 4: faults at 0, 1, 4, 9, 14, 19, 24, 29.
    assert_eq!(write_in_order(&mut s, more, 0..32), 8);
    done(s);
}

proptest! {
    /// Whatever the order of first touches and the pool's size, every page
    /// reads zero before its first write and keeps what was written; the
    /// pages mapped are the pages touched plus at most what the pool gave,
    /// and all come back at teardown (`done`).
    #[test]
    fn any_touch_order_keeps_every_page_exact(
        order in proptest::collection::vec(0u64..48, 1..120),
        pool in 0u64..40,
    ) {
        let mut s = space_with_pool(pool);
        let base = s.reserve(48 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
        let mut written = BTreeMap::new();
        for &i in &order {
            let expected = written.get(&i).copied().unwrap_or(0);
            prop_assert_eq!(read_word(&mut s, base + i * PAGE_SIZE), expected);
            write_word(&mut s, base + i * PAGE_SIZE, 0x5eed + i);
            written.insert(i, 0x5eed + i);
        }
        let st = s.stats();
        let resident = mapped(&s, base, 48);
        prop_assert_eq!(st.resident_pages, resident.len() as u64);
        prop_assert!(written.keys().all(|i| resident.contains(i)), "every page touched is mapped");
        let ahead_only = resident.iter().filter(|i| !written.contains_key(i)).count() as u64;
        prop_assert!(ahead_only <= st.faults.mapped_ahead, "the rest came ahead of a fault");
        prop_assert_eq!(s.platform().prezeroed_taken, st.faults.mapped_ahead);
        prop_assert!(st.faults.mapped_ahead <= pool);
        done(s);
    }
}
