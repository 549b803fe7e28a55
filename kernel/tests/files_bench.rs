//! `make bench`'s file boot, with the standard file disk: the cost of file
//! faults against their nearest neighbours, measured in this one boot (TSC
//! cycles; only the ratios mean anything under TCG).
//!
//! - first touch of a mapped file page (a fault that reads the page from
//!   the disk into the page cache and maps it) against a `read`-style copy
//!   of the same page (the page read from the disk into the cache, then
//!   copied into a buffer), both with the cache emptied first;
//! - a page-cache hit (a fault that finds the page cached and maps it)
//!   against a demand-zero fault (a zeroed frame mapped, in a writable
//!   region) and a read of a read-only region (the shared zero frame
//!   mapped: no frame, no zeroing).
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{entry_point, BootInfo};
use mm::pte::Prot;
use pagekeeper::arch::qemu;
use pagekeeper::testing::bench::{self, timed};
use pagekeeper::vm::{self, probe, RegionKind, SpaceId, PROCESS_LIMITS};
use pagekeeper::{files, println, BOOTLOADER_CONFIG};

entry_point!(main, config = &BOOTLOADER_CONFIG);

const PAGES: u64 = 2048;
const PAGE: u64 = 4096;

fn fail(what: &str) -> ! {
    bench::fail("files bench", what)
}

/// A new active space with `PAGES` pages of `kind` reserved with `prot`;
/// their address.
fn space_with(kind: RegionKind, prot: Prot) -> (SpaceId, u64) {
    let id = vm::create(PROCESS_LIMITS).unwrap_or_else(|_| fail("create"));
    let base = vm::with(id, |s| s.reserve(PAGES * PAGE, prot, kind))
        .and_then(|r| r.ok())
        .unwrap_or_else(|| fail("reserve"));
    vm::activate(id).unwrap_or_else(|_| fail("activate"));
    (id, base.as_u64())
}

/// Cycles to touch every page of `base` (one fault each).
fn touch_all(base: u64) -> u64 {
    timed(|| {
        for i in 0..PAGES {
            probe::read(base + i * PAGE).unwrap_or_else(|_| fail("a touch faulted"));
        }
    })
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    let (file, _) = files::open("data/pages32").unwrap_or_else(|| fail("no data/pages32 on a file disk"));
    let mapping = RegionKind::File { file: file.0, first_page: 0, private: false };

    files::drop_unmapped();
    let (first_space, first) = space_with(mapping, Prot::USER_READ);
    let first_touch = touch_all(first);

    let (hit_space, hit) = space_with(mapping, Prot::USER_READ);
    let cache_hit = touch_all(hit);

    // Read touches of a writable region: a zeroed frame each (the pool is
    // empty in this boot: nothing idles to fill it).
    let (zero_space, zero) = space_with(RegionKind::Anonymous, Prot::USER_RW);
    let demand_zero = touch_all(zero);
    let (shared_space, shared) = space_with(RegionKind::Anonymous, Prot::USER_READ);
    let zero_frame = touch_all(shared);
    vm::activate_kernel();
    for id in [first_space, hit_space, zero_space, shared_space] {
        vm::destroy(id);
    }

    files::drop_unmapped();
    let mut buf = [0u8; PAGE as usize];
    let read_copy = timed(|| {
        for i in 0..PAGES {
            files::read(file, i * PAGE, &mut buf).unwrap_or_else(|e| fail(&alloc::format!("read: {e}")));
        }
    });

    println!("files bench: {PAGES} pages, cycles per page:");
    println!(
        "  first touch of a mapped file page {:>8}   read-style copy {:>8}   first touch = {:.2}x the copy",
        first_touch / PAGES,
        read_copy / PAGES,
        first_touch as f64 / read_copy as f64
    );
    println!(
        "  page-cache hit fault              {:>8}   demand-zero     {:>8}   hit = {:.2}x demand-zero",
        cache_hit / PAGES,
        demand_zero / PAGES,
        cache_hit as f64 / demand_zero as f64
    );
    println!(
        "  read of a read-only page (the shared zero frame) {:>8}   = {:.2}x demand-zero",
        zero_frame / PAGES,
        zero_frame as f64 / demand_zero as f64
    );
    println!("test result: ok. 1 passed; 0 failed");
    qemu::exit(qemu::ExitCode::Success)
}
