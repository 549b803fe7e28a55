//! The policy limits an address space enforces itself: commit charges of
//! its regions, its RAM quota, its redline.

use super::*;

const MIB: u64 = 1 << 20;

fn committed(s: &Space) -> u64 {
    assert_eq!(s.platform().committed, s.stats().committed_pages, "the space's count is what it charged");
    s.stats().committed_pages
}

#[test]
fn writable_private_regions_are_charged_at_reserve_and_given_back_at_release() {
    let files = files(&[(1, 64)]);
    let mut s = space_with_files(&files);
    let rw = s.reserve(MIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    assert_eq!(committed(&s), 256, "charged at reserve, before any page is touched");
    s.reserve(MIB, Prot::USER_READ, RegionKind::Anonymous).unwrap();
    s.reserve(16 * PAGE_SIZE, Prot::USER_READ, file_region(1, 0, false)).unwrap();
    assert_eq!(committed(&s), 256, "read-only and shared file regions need no memory of their own");
    s.reserve(16 * PAGE_SIZE, Prot::USER_RW, file_region(1, 0, true)).unwrap();
    assert_eq!(committed(&s), 272, "a writable private file mapping may copy every page");
    s.reserve(5 * PAGE_SIZE, Prot::USER_RW, RegionKind::Stack { guard_pages: 1 }).unwrap();
    assert_eq!(committed(&s), 276, "guard pages are not charged");
    // A partial release gives back exactly its part.
    s.release(rw + 16 * PAGE_SIZE, 32 * PAGE_SIZE).unwrap();
    assert_eq!(committed(&s), 244);
    s.release(rw, 16 * PAGE_SIZE).unwrap();
    assert_eq!(committed(&s), 228);
    s.platform_mut().flush_all();
    s.teardown();
    assert_eq!(s.platform().committed, 0, "destroy gives back every charge");
}

#[test]
fn protect_charges_a_region_made_writable_and_keeps_the_charge_while_its_pages_hold_memory() {
    let mut s = space();
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_READ, RegionKind::Anonymous).unwrap().as_u64();
    assert_eq!(committed(&s), 0);
    s.protect(base + 8 * PAGE_SIZE, 8 * PAGE_SIZE, Prot::USER_RW).unwrap();
    assert_eq!(committed(&s), 8);
    write_word(&mut s, base + 9 * PAGE_SIZE, 9);
    // A written page still holds memory when read-only: the charge stays
    // (Linux's VM_ACCOUNT), and making it writable again charges nothing.
    s.protect(base, 64 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(committed(&s), 8);
    s.protect(base, 64 * PAGE_SIZE, Prot::USER_RW).unwrap();
    assert_eq!(committed(&s), 64);
    assert_eq!(read_word(&mut s, base + 9 * PAGE_SIZE), 9);
    s.release(base, 64 * PAGE_SIZE).unwrap();
    assert_eq!(committed(&s), 0);
    done(s);
}

#[test]
fn taking_write_from_pages_that_hold_nothing_gives_their_charge_back() {
    let mut s = space_with_swap(16);
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    write_word(&mut s, base + 3 * PAGE_SIZE, 3);
    write_word(&mut s, base + 20 * PAGE_SIZE, 20);
    // Page 20 holds memory: the whole protect keeps its charge.
    s.protect(base + 16 * PAGE_SIZE, 8 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(committed(&s), 64);
    // Decommitted, nothing of its own is left: the charge goes back,
    // what a heap does with a free run when the policy refuses a grow.
    s.protect(base + 16 * PAGE_SIZE, 8 * PAGE_SIZE, Prot::USER_RW).unwrap();
    s.decommit(base + 16 * PAGE_SIZE, 8 * PAGE_SIZE).unwrap();
    s.protect(base + 16 * PAGE_SIZE, 8 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(committed(&s), 56);
    // A swapped page is memory of the space's own too.
    write_word(&mut s, base + 32 * PAGE_SIZE, 32);
    assert_eq!(reclaim(&mut s, 2).evicted, 2);
    assert_eq!(s.stats().swapped_pages, 2);
    s.protect(base + 32 * PAGE_SIZE, 8 * PAGE_SIZE, Prot::USER_READ).unwrap();
    assert_eq!(committed(&s), 56);
    // Writable again: charged again, and page 3 was never touched by any of it.
    s.protect(base, 64 * PAGE_SIZE, Prot::USER_RW).unwrap();
    assert_eq!(committed(&s), 64);
    assert_eq!(read_word(&mut s, base + 3 * PAGE_SIZE), 3);
    assert_eq!(read_word(&mut s, base + 32 * PAGE_SIZE), 32);
    assert_eq!(s.regions().count(), 1, "the protects' splits were joined again");
    s.release(base, 64 * PAGE_SIZE).unwrap();
    assert_eq!(committed(&s), 0);
    done(s);
}

#[test]
fn a_refused_charge_changes_nothing() {
    let machine = FakeMachine { commit_limit: Some(100), ..FakeMachine::default() };
    let mut s = AddressSpace::new(machine, Limits::UNLIMITED).unwrap();
    let base = s.reserve(100 * PAGE_SIZE, Prot::USER_READ, RegionKind::Anonymous).unwrap().as_u64();
    s.reserve(90 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap();
    let before = s.regions().copied().collect::<Vec<_>>();
    let refused = s.reserve(11 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).unwrap_err();
    assert!(
        matches!(refused, VmError::CommitRefused(r) if r.requested == 11 && r.limit == 100),
        "{refused:?}"
    );
    assert!(matches!(s.protect(base, 11 * PAGE_SIZE, Prot::USER_RW), Err(VmError::CommitRefused(_))));
    assert_eq!(s.regions().copied().collect::<Vec<_>>(), before, "no region made, none split or changed");
    assert_eq!(committed(&s), 90);
    s.reserve(10 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous).expect("exactly up to the limit");
    assert_eq!(committed(&s), 100);
    done(s);
}

fn quota_space(quota_pages: u64, redline_pages: u64) -> Space {
    let limits = Limits {
        ram_quota: quota_pages * PAGE_SIZE,
        redline: redline_pages * PAGE_SIZE,
        ..Limits::UNLIMITED
    };
    AddressSpace::new(FakeMachine::default(), limits).unwrap()
}

#[test]
fn the_ram_quota_bounds_pages_tables_and_records_and_is_an_outcome() {
    let mut s = quota_space(40, u64::MAX / PAGE_SIZE);
    let base = s.reserve(MIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    let mut touched = 0;
    let outcome = loop {
        match touch(&mut s, base + touched * PAGE_SIZE, true) {
            Ok(_) => touched += 1,
            Err(outcome) => break outcome,
        }
    };
    assert_eq!(outcome, FaultOutcome::QuotaExceeded { quota: 40 * PAGE_SIZE });
    let stats = s.stats();
    assert!(stats.charged_bytes() <= 40 * PAGE_SIZE, "{stats:?}");
    assert!(stats.charged_bytes() + PAGE_SIZE > 40 * PAGE_SIZE, "refused only at the quota: {stats:?}");
    assert_eq!(stats.table_frames + touched + 1, 40, "root, 3 tables, the pages, and the records' page");
    assert!(matches!(s.commit(base + touched * PAGE_SIZE, PAGE_SIZE), Err(VmError::QuotaExceeded { .. })));
    assert_eq!(stats.faults.quota_exceeded, 1);
    // Giving pages back makes room again.
    s.decommit(base, 4 * PAGE_SIZE).unwrap();
    assert_eq!(s.commit(base + touched * PAGE_SIZE, 4 * PAGE_SIZE), Ok(4));
    done(s);
}

#[test]
fn page_cache_pages_do_not_count_against_the_quota() {
    let files = files(&[(1, 64)]);
    let machine = FakeMachine { files: files.clone(), ..FakeMachine::default() };
    let limits = Limits { ram_quota: 8 * PAGE_SIZE, ..Limits::UNLIMITED };
    let mut s = AddressSpace::new(machine, limits).unwrap();
    let base = s.reserve(64 * PAGE_SIZE, Prot::USER_READ, file_region(1, 0, false)).unwrap().as_u64();
    assert_eq!(s.commit(base, 64 * PAGE_SIZE), Ok(64), "shared cache frames are not the space's own");
    assert_eq!(s.stats().file_pages, 64);
    done(s);
}

#[test]
fn the_redline_is_reported_once_per_crossing() {
    let mut s = quota_space(1000, 20);
    let base = s.reserve(MIB, Prot::USER_RW, RegionKind::Anonymous).unwrap().as_u64();
    assert!(!s.poll_redline());
    s.commit(base, 10 * PAGE_SIZE).unwrap();
    assert!(!s.poll_redline(), "below the redline");
    s.commit(base, 30 * PAGE_SIZE).unwrap();
    assert!(s.poll_redline(), "crossed");
    s.commit(base, 60 * PAGE_SIZE).unwrap();
    assert!(!s.poll_redline(), "still above: no second report");
    s.decommit(base, 60 * PAGE_SIZE).unwrap();
    assert!(!s.poll_redline(), "back below: re-armed, nothing to report");
    s.commit(base, 40 * PAGE_SIZE).unwrap();
    assert!(s.poll_redline(), "the second crossing is reported");
    assert_eq!(s.stats().redline_crossings, 2);
    done(s);
}

#[test]
fn a_kernel_shared_page_is_read_only_unchangeable_and_not_the_spaces() {
    let mut s = space();
    let kernel_frame = Pfn::new(0x77);
    let at = USER_END - PAGE_SIZE;
    s.map_kernel_shared(at, kernel_frame).unwrap();
    assert_eq!(touch(&mut s, at, false), Ok(kernel_frame));
    assert_eq!(touch(&mut s, at, true), Err(FaultOutcome::Violation(Violation::WriteToReadOnly)));
    assert_eq!(s.stats().resident_pages, 0, "not the space's memory");
    assert_eq!(committed(&s), 0);
    let refused = VmError::KernelShared { addr: at };
    assert_eq!(s.protect(at, PAGE_SIZE, Prot::USER_RW), Err(refused));
    assert_eq!(s.decommit(at, PAGE_SIZE), Err(refused));
    assert_eq!(s.release(at - PAGE_SIZE, 2 * PAGE_SIZE), Err(VmError::NotReserved { addr: at - PAGE_SIZE }));
    assert_eq!(s.release(at, PAGE_SIZE), Err(refused));
    assert!(!s.user_may_write(at, 8));
    assert!(matches!(s.map_kernel_shared(at, kernel_frame), Err(VmError::Overlap { .. })));
    // Teardown lets go of the entry without freeing the kernel's frame
    // (the fake machine panics on a free of a frame it never gave out).
    done(s);
}

#[test]
fn no_reserve_regions_are_waived_by_a_lax_policy_and_stay_so_through_protect() {
    let mut s = space(); // the fake policy waives no-reserve charges
    let base = s.reserve_with(4 * GIB, Prot::USER_RW, RegionKind::Anonymous, Accounting::NoReserve).unwrap();
    assert_eq!(committed(&s), 0);
    s.protect(base.as_u64(), GIB, Prot::USER_READ).unwrap();
    s.protect(base.as_u64(), GIB, Prot::USER_RW).unwrap();
    assert_eq!(committed(&s), 0, "still no-reserve after protect");
    assert!(s.region_at(base).unwrap().no_reserve);
    // A strict policy charges it anyway.
    let machine = FakeMachine { commit_limit: Some(1000), ..FakeMachine::default() };
    let mut strict = AddressSpace::new(machine, Limits::UNLIMITED).unwrap();
    let refused = strict.reserve_with(GIB, Prot::USER_RW, RegionKind::Anonymous, Accounting::NoReserve);
    assert!(matches!(refused, Err(VmError::CommitRefused(_))));
    strict
        .reserve_with(400 * PAGE_SIZE, Prot::USER_RW, RegionKind::Anonymous, Accounting::NoReserve)
        .unwrap();
    assert_eq!(committed(&strict), 400);
    done(strict);
    done(s);
}
