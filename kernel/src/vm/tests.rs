//! QEMU tests of address spaces on real page tables: frame accounting,
//! demand-zero, decommit, violations through the probe path, destroy.

use super::*;
use crate::memory::frames;
use mm::frame::{Owner, ZeroedPoolCounters};
use mm::pte::Prot;

const PAGE: u64 = mm::paging::PAGE_SIZE;
const GIB: u64 = 1 << 30;

/// Creates a space, makes it active, runs `f`, switches back and destroys
/// it; checks that the free frame count is exactly what it was before.
fn in_fresh_space(f: impl FnOnce(SpaceId)) {
    let free_before = frames::stats().free;
    let id = create(PROCESS_LIMITS).expect("space");
    activate(id).expect("activate");
    f(id);
    activate_kernel();
    destroy(id).expect("destroy");
    assert_eq!(frames::stats().free, free_before, "destroy returned every frame");
}

/// Reserves without a commit charge (these tests reserve GiBs sparsely,
/// more than the default overcommit mode would promise at once).
fn reserve(id: SpaceId, len: u64, prot: Prot, kind: RegionKind) -> u64 {
    let no_reserve = mm::vm::Accounting::NoReserve;
    with(id, |s| s.reserve_with(len, prot, kind, no_reserve)).unwrap().expect("reserve").as_u64()
}

fn read(addr: u64) -> u8 {
    // SAFETY: the test reserved `addr` in the active space; a fault in it is
    // demand-zero (or a bug the report will show).
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

fn write(addr: u64, value: u8) {
    // SAFETY: as in read: the test owns the reserved, writable page.
    unsafe { core::ptr::write_volatile(addr as *mut u8, value) }
}

/// Reads (it must be zero) and then writes a byte of each of `pages` pages
/// from `base` up; the zeroed pool's counters before and after.
fn first_touch_upwards(base: u64, pages: u64) -> (ZeroedPoolCounters, ZeroedPoolCounters) {
    let before = frames::zeroed_pool();
    for i in 0..pages {
        assert_eq!(read(base + i * PAGE + 8), 0, "page {i}");
        write(base + i * PAGE + 8, 0x5a);
    }
    (before, frames::zeroed_pool())
}

#[test_case]
fn a_demand_zero_fault_takes_its_frame_from_the_zeroed_pool() {
    frames::drain_zeroed_pool();
    frames::zero_idle_frames(64);
    in_fresh_space(|id| {
        let base = reserve(id, 16 * PAGE, Prot::USER_RW, RegionKind::Anonymous);
        let (before, after) = first_touch_upwards(base, 16);
        // 16 pages and their page tables, all from the pool, none zeroed on demand.
        assert!(after.hits - before.hits >= 16 && after.misses == before.misses, "{after}");
    });
    frames::drain_zeroed_pool();
}

#[test_case]
fn a_sequential_touch_maps_ahead_from_the_zeroed_pool_and_only_from_it() {
    let faults = |id| with(id, |s| s.stats().faults).expect("the space exists");
    frames::drain_zeroed_pool();
    frames::zero_idle_frames(256);
    in_fresh_space(|id| {
        let base = reserve(id, 64 * PAGE, Prot::USER_RW, RegionKind::Anonymous);
        let (before, after) = first_touch_upwards(base, 64);
        // Windows 0, 2, 4, 8, 16, 16, 16 (mm's host tests walk the same run).
        let f = faults(id);
        assert_eq!((f.demand_zero, f.mapped_ahead), (7, 57), "{f:?}");
        assert!(after.hits - before.hits >= 64 && after.misses == before.misses, "{after}");
        // With the pool empty, the same run maps one page per fault.
        frames::drain_zeroed_pool();
        let more = reserve(id, 64 * PAGE, Prot::USER_RW, RegionKind::Anonymous);
        for i in 0..64 {
            write(more + i * PAGE, 1);
        }
        let f = faults(id);
        assert_eq!((f.demand_zero, f.mapped_ahead), (7 + 64, 57), "{f:?}");
    });
    frames::drain_zeroed_pool();
}

#[test_case]
fn reserving_a_gib_allocates_nothing_and_every_16th_page_costs_one_frame() {
    in_fresh_space(|id| {
        let before = frames::settled_stats();
        let base = reserve(id, GIB, Prot::USER_RW, RegionKind::Anonymous);
        assert_eq!(frames::settled_stats(), before, "reserve allocated frames");
        // Every 16th page of the GiB (16384 pages), or as many as half of
        // free memory allows on a small machine.
        let touched = (GIB / PAGE / 16).min(before.free / 2);
        let stride = 16 * PAGE;
        for i in 0..touched {
            assert_eq!(read(base + i * stride), 0, "demand-zero page reads zero");
        }
        let after = frames::stats();
        // One page table per 2 MiB reached, one directory, one PDPT (all
        // inside the first GiB); 514 for the whole GiB.
        let last = base + (touched - 1) * stride;
        let tables = (last >> 21) - (base >> 21) + 1 + 1 + 1;
        assert_eq!(after.used_by(Owner::Process) - before.used_by(Owner::Process), touched);
        assert_eq!(after.used_by(Owner::PageTable) - before.used_by(Owner::PageTable), tables);
        assert_eq!(before.free - after.free, touched + tables);
        let stats = with(id, |s| s.stats()).unwrap();
        assert_eq!(stats.resident_pages, touched);
        assert_eq!(stats.table_frames, tables + 1, "plus the root");
        assert_eq!(stats.faults.demand_zero, touched);
    });
}

#[test_case]
fn decommit_returns_exactly_those_frames_and_pages_come_back_zeroed() {
    in_fresh_space(|id| {
        let base = reserve(id, 64 * PAGE, Prot::USER_RW, RegionKind::Anonymous);
        for i in 0..64 {
            write(base + i * PAGE, 0x5a);
        }
        let free_before = frames::stats().free;
        let freed = with(id, |s| s.decommit(base + 16 * PAGE, 32 * PAGE)).unwrap().unwrap();
        assert_eq!(freed, 32);
        assert_eq!(frames::stats().free, free_before + 32, "exactly those frames came back");
        for i in 0..64 {
            let expected = if (16..48).contains(&i) { 0 } else { 0x5a };
            assert_eq!(read(base + i * PAGE), expected, "page {i}");
        }
        assert_eq!(frames::stats().free, free_before, "touched again: 32 new frames");
    });
}

#[test_case]
fn guard_page_unreserved_and_read_only_violations_are_reported() {
    in_fresh_space(|id| {
        let stack = reserve(id, 8 * PAGE, Prot::USER_RW, RegionKind::Stack { guard_pages: 1 });
        let ro = reserve(id, PAGE, Prot::USER_READ, RegionKind::Anonymous);

        let guard = probe::read(stack + 100).unwrap_err();
        assert_eq!(guard.outcome, FaultOutcome::Violation(Violation::GuardPage));
        assert_eq!(guard.address, stack + 100);
        assert_eq!(guard.region.map(|r| r.start.as_u64()), Some(stack));

        let unreserved = probe::read(0x0000_4444_0000_0000).unwrap_err();
        assert_eq!(unreserved.outcome, FaultOutcome::Violation(Violation::Unreserved));
        assert!(unreserved.region.is_none());

        assert_eq!(probe::read(ro), Ok(0), "reading read-only memory works");
        // SAFETY: `ro` is this test's page; the write must fault and change nothing.
        let read_only = unsafe { probe::write(ro, 1) }.unwrap_err();
        assert_eq!(read_only.outcome, FaultOutcome::Violation(Violation::WriteToReadOnly));
        assert!(read_only.error.contains(PageFaultErrorCode::CAUSED_BY_WRITE));
        assert!(read_only.error.contains(PageFaultErrorCode::PROTECTION_VIOLATION));
        assert_eq!(read(ro), 0);

        // The report names address, RIP, decoded error, region and reason.
        let text = alloc::format!("{read_only}");
        for part in [
            "page fault at",
            "RIP 0x",
            "write, kernel mode, protection violation",
            "r--u anonymous",
            "write to a read-only page",
        ] {
            assert!(text.contains(part), "{part:?} missing in {text}");
        }
        // SAFETY: stack page above the guard belongs to this test.
        assert_eq!(unsafe { probe::write(stack + PAGE, 7) }, Ok(()), "above the guard is fine");
        assert_eq!(with(id, |s| s.stats().faults.violations).unwrap(), 3);
    });
}

#[test_case]
fn released_range_and_protect_change_what_faults() {
    in_fresh_space(|id| {
        let base = reserve(id, 4 * PAGE, Prot::USER_RW, RegionKind::Anonymous);
        write(base, 1);
        with(id, |s| s.protect(base, 4 * PAGE, Prot::USER_READ)).unwrap().unwrap();
        // SAFETY: this test's page; the write must fault.
        assert!(unsafe { probe::write(base, 2) }.is_err(), "stale writable TLB entry was flushed");
        let freed = with(id, |s| s.release(base, 4 * PAGE)).unwrap().unwrap();
        assert_eq!(freed, 1);
        let gone = probe::read(base).unwrap_err();
        assert_eq!(gone.outcome, FaultOutcome::Violation(Violation::Unreserved));
    });
}

#[test_case]
fn a_file_page_of_no_file_is_a_clean_fault() {
    in_fresh_space(|id| {
        let kind = RegionKind::File { file: 4000, first_page: 10, private: false };
        let file = reserve(id, 2 * PAGE, Prot::USER_READ, kind);
        let report = probe::read(file + PAGE).unwrap_err();
        assert_eq!(report.outcome, FaultOutcome::File(mm::files::FileError::NoSuchFile));
        assert!(alloc::format!("{report}").contains("no such file"), "{report}");
    });
}

#[test_case]
fn destroy_returns_every_frame_including_page_tables() {
    let before = frames::settled_stats();
    let id = create(PROCESS_LIMITS).unwrap();
    activate(id).unwrap();
    let a = reserve(id, 3 * GIB, Prot::USER_RW, RegionKind::Anonymous);
    for i in 0..200 {
        write(a + i * 15 * 1024 * 1024, 1);
    }
    assert!(frames::stats().used_by(Owner::PageTable) > before.used_by(Owner::PageTable) + 200);
    let at_end = destroy(id).expect("destroy the active space");
    assert_eq!(at_end.resident_pages, 200, "destroy reports what the space held at its end");
    assert!(at_end.table_frames > 200);
    assert_eq!(active(), None, "destroying the active space switched to the kernel root");
    assert_eq!(frames::settled_stats(), before, "every frame is back, owners included");
}

#[test_case]
fn every_bad_argument_gets_its_error() {
    in_fresh_space(|id| {
        let rw = Prot::USER_RW;
        let anon = RegionKind::Anonymous;
        let base = with(id, |s| s.reserve_at(0x40_0000, 16 * PAGE, rw, anon)).unwrap().unwrap().as_u64();
        with(id, |s| {
            assert_eq!(s.reserve_at(0x80_0000, 0, rw, anon), Err(VmError::ZeroLength));
            assert_eq!(
                s.reserve_at(0x80_0010, PAGE, rw, anon),
                Err(VmError::Unaligned { addr: 0x80_0010, len: PAGE })
            );
            assert_eq!(s.reserve_at(0, PAGE, rw, anon), Err(VmError::NullPage));
            let hole = 0x0000_8000_0000_0000;
            assert_eq!(
                s.reserve_at(hole, PAGE, rw, anon),
                Err(VmError::NonCanonical { addr: hole, len: PAGE })
            );
            assert_eq!(
                s.reserve_at(KERNEL_START, PAGE, rw, anon),
                Err(VmError::KernelHalf { addr: KERNEL_START })
            );
            let overlap = VmError::Overlap { region_start: base, region_end: base + 16 * PAGE };
            assert_eq!(s.reserve_at(base + PAGE, PAGE, rw, anon), Err(overlap));
            assert_eq!(
                s.reserve(PROCESS_LIMITS.address_space, rw, anon).unwrap_err(),
                VmError::LimitExceeded {
                    limit: PROCESS_LIMITS.address_space,
                    reserved: 16 * PAGE,
                    requested: PROCESS_LIMITS.address_space
                }
            );
            let gap = base + 16 * PAGE;
            assert_eq!(s.commit(base, 17 * PAGE), Err(VmError::NotReserved { addr: gap }));
            assert_eq!(s.decommit(gap, PAGE), Err(VmError::NotReserved { addr: gap }));
            assert_eq!(s.protect(base, 3, rw), Err(VmError::Unaligned { addr: base, len: 3 }));
            assert_eq!(s.protect(KERNEL_START, PAGE, rw), Err(VmError::KernelHalf { addr: KERNEL_START }));
            assert_eq!(s.release(gap, PAGE), Err(VmError::NotReserved { addr: gap }));
            assert_eq!(s.stats().reserved_bytes, 16 * PAGE, "nothing changed");
        })
        .unwrap();
    });
}
