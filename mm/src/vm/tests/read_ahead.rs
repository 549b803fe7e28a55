//! Swap-in read-ahead (`AddressSpace::map_swapped`): what a sequential run
//! of swap-ins reads after the faulting page, and everything that stops it
//! short.

use super::*;

/// Evicts `pages` written pages of a new region of `s` (the fake hands
/// out slots in order, so each page's slot follows the one before);
/// returns the region's start.
fn swapped_region(s: &mut Space, pages: u64) -> u64 {
    let base = s.reserve(pages * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    for i in 0..pages {
        write_word(s, base + i * PAGE_SIZE, 0x1000 + i);
    }
    assert_eq!(reclaim(s, pages).evicted, pages);
    base
}

fn page(base: u64, i: u64) -> u64 {
    base + i * PAGE_SIZE
}

/// Page `i` of a [`swapped_region`] comes back, is written with `value`
/// and leaves again: its new slot is not the one after page `i - 1`'s.
fn move_to_a_slot_of_its_own(s: &mut Space, base: u64, i: u64, value: u64) {
    assert_eq!(read_word(s, page(base, i)), 0x1000 + i);
    write_word(s, page(base, i), value);
    assert_eq!(reclaim(s, 1).evicted, 1);
}

/// Eight pages evicted and the first read back: the next fault, at page
/// 1, continues a run (a window of 2). The space and the region's start.
fn run_begun() -> (Space, u64) {
    let mut s = space_with_swap(64);
    let base = swapped_region(&mut s, 8);
    assert_eq!(read_word(&mut s, base), 0x1000);
    (s, base)
}

#[test]
fn a_sequential_run_of_swap_ins_reads_the_pages_after_it_ahead() {
    let mut s = space_with_swap(64);
    s.platform_mut().keep_swap_copies = true;
    let base = swapped_region(&mut s, 24);
    for i in 0..24 {
        assert_eq!(read_word(&mut s, page(base, i)), 0x1000 + i, "page {i}");
    }
    // Faults at 0 (no run yet), 1 (2 ahead), 4 (4 ahead), 9 (7 ahead) and
    // 17 (6 ahead: the region ends).
    let st = s.stats();
    assert_eq!((st.faults.swapped_in, st.faults.read_ahead), (5, 19));
    assert_eq!((st.resident_pages, st.swapped_pages), (24, 0));
    for i in 0..24 {
        let m = walk(&s, UserAddr::new(page(base, i))).unwrap();
        assert!(m.swap_cached && !m.dirty, "page {i}: clean, its copy kept");
    }
    // Pages read ahead (used or not) leave again without a write.
    let writes = s.platform().swap_writes;
    assert_eq!(reclaim(&mut s, 24).evicted, 24);
    assert_eq!(s.platform().swap_writes, writes);
    done(s);
}

#[test]
fn pages_ahead_are_read_wherever_their_slots_are_and_other_faults_read_only_themselves() {
    let mut s = space_with_swap(64);
    let base = swapped_region(&mut s, 8);
    move_to_a_slot_of_its_own(&mut s, base, 3, 0x2003);
    let before = s.stats().faults;
    // Descending and scattered faults are no run: one page each.
    for i in [7, 5, 0] {
        assert_eq!(read_word(&mut s, page(base, i)), 0x1000 + i);
    }
    let after = s.stats().faults;
    assert_eq!((after.swapped_in - before.swapped_in, after.read_ahead), (3, 0));
    // 0 then 1 is a run: page 1 reads pages 2 and 3 ahead (a window of
    // 2), page 3 from its new slot: two reads, 1 and 2 in one.
    let reads = s.platform().swap_reads;
    assert_eq!(read_word(&mut s, page(base, 1)), 0x1001);
    assert_eq!((s.stats().faults.read_ahead, s.platform().swap_reads - reads), (2, 2));
    for i in [2, 3] {
        assert!(walk(&s, UserAddr::new(page(base, i))).is_some(), "page {i} read ahead");
    }
    assert_eq!(read_word(&mut s, page(base, 3)), 0x2003);
    assert_eq!(read_word(&mut s, page(base, 2)), 0x1002);
    done(s);
}

#[test]
fn a_page_ahead_whose_read_fails_stays_in_swap_and_the_fault_goes_on() {
    let mut s = space_with_swap(64);
    let base = swapped_region(&mut s, 8);
    move_to_a_slot_of_its_own(&mut s, base, 2, 0x2002);
    let Ok(PteState::Swapped { slot: bad, .. }) = s.effective_state(UserAddr::new(page(base, 2))) else {
        panic!("page 2 is in swap")
    };
    s.platform_mut().failing_slot = Some(bad);
    // 0 then 1: page 1 reads ahead 2 (its read fails) and 3 (read).
    assert_eq!(read_word(&mut s, page(base, 0)), 0x1000);
    assert_eq!(read_word(&mut s, page(base, 1)), 0x1001);
    assert_eq!(s.stats().faults.read_ahead, 1, "{:?}", s.stats().faults);
    assert!(walk(&s, UserAddr::new(page(base, 2))).is_none(), "page 2 stays in swap");
    assert!(walk(&s, UserAddr::new(page(base, 3))).is_some());
    let st = s.stats();
    assert_eq!(
        (st.resident_pages, st.swapped_pages),
        (3, 5),
        "0, 1, 3 in; 2 (its read failed) and 4-7 in swap"
    );
    s.platform_mut().failing_slot = None;
    assert_eq!(read_word(&mut s, page(base, 2)), 0x2002);
    for i in 0..8 {
        let expected = if i == 2 { 0x2002 } else { 0x1000 + i };
        assert_eq!(read_word(&mut s, page(base, i)), expected, "page {i}");
    }
    done(s);
}

#[test]
fn pages_ahead_stop_at_the_last_frame_and_never_fail_the_fault() {
    let (mut s, base) = run_begun();
    // Two frames left: the fault's own and one page ahead (of a window of 2).
    s.platform_mut().frames_left = Some(2);
    assert_eq!(read_word(&mut s, page(base, 1)), 0x1001);
    assert_eq!((s.stats().resident_pages, s.stats().faults.read_ahead), (3, 1));
    s.platform_mut().frames_left = None;
    done(s);
}

#[test]
fn pages_ahead_pass_the_quota_check() {
    let limits = Limits { ram_quota: 16 * PAGE_SIZE, ..Limits::UNLIMITED };
    let mut s = AddressSpace::new(FakeMachine { swap_slots: 64, ..FakeMachine::default() }, limits).unwrap();
    let base = swapped_region(&mut s, 6);
    // Other pages take the quota down to room for three: the two faults
    // below and one page ahead of the second.
    let other = s.reserve(16 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let room = |s: &Space| (16 * PAGE_SIZE - s.stats().charged_bytes()) / PAGE_SIZE;
    let mut i = 0;
    while room(&s) > 3 {
        write_word(&mut s, page(other, i), 1);
        i += 1;
    }
    assert_eq!(room(&s), 3, "{:?}", s.stats());
    assert_eq!(read_word(&mut s, base), 0x1000);
    assert_eq!(read_word(&mut s, page(base, 1)), 0x1001);
    let st = s.stats();
    assert_eq!((st.faults.read_ahead, st.faults.quota_exceeded, room(&s)), (1, 0, 0));
    done(s);
}

#[test]
fn a_failed_read_maps_nothing_and_frees_every_frame_of_the_run() {
    let (mut s, base) = run_begun();
    s.platform_mut().failing_swap_in = true;
    let resident = s.stats().resident_pages;
    assert!(matches!(touch(&mut s, page(base, 1), false), Err(FaultOutcome::SwapInFailed(_))));
    assert_eq!(s.stats().resident_pages, resident);
    assert_eq!(s.platform().pages.len() as u64, resident, "the run's frames went back");
    s.platform_mut().failing_swap_in = false;
    for i in 1..8 {
        assert_eq!(read_word(&mut s, page(base, i)), 0x1000 + i, "page {i}");
    }
    assert_eq!(s.stats().swapped_pages, 0);
    done(s);
}

#[test]
fn commit_reads_ahead_too_and_counts_every_page_it_brought_in() {
    let mut s = space_with_swap(64);
    let base = swapped_region(&mut s, 16);
    assert_eq!(s.commit(base, 16 * PAGE_SIZE), Ok(16));
    let st = s.stats();
    assert_eq!((st.swapped_pages, st.resident_pages), (0, 16));
    assert!(st.faults.read_ahead >= 8, "{:?}", st.faults);
    for i in 0..16 {
        assert_eq!(read_word(&mut s, page(base, i)), 0x1000 + i);
    }
    done(s);
}

#[test]
fn read_ahead_can_be_turned_off() {
    let mut s = space_with_swap(64);
    s.set_swap_read_ahead(0);
    let base = swapped_region(&mut s, 8);
    for i in 0..8 {
        assert_eq!(read_word(&mut s, page(base, i)), 0x1000 + i);
    }
    assert_eq!((s.stats().faults.swapped_in, s.stats().faults.read_ahead), (8, 0));
    done(s);
}
