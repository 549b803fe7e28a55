//! The swap test kernel: booted by the host tests at 64 MiB with a 256 MiB
//! swap disk (every scenario below), and without swap (the same program
//! gets the out-of-memory kill). Each test checks what the process
//! reported and that every frame and every swap slot came back.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{entry_point, BootInfo};
use mm::frame::Owner;
use pagekeeper::drivers::virtio_blk;
use pagekeeper::memory::frames;
use pagekeeper::process::{self, programs, run_until_idle, ExitStatus, Finished};
use pagekeeper::testing::{assert_exited_ok, run_tests_with, RunnerConfig, Testable};
use pagekeeper::{println, swap, BOOTLOADER_CONFIG};

entry_point!(main, config = &BOOTLOADER_CONFIG);

const PATTERN: u64 = 0;
const HOT_AND_COLD: u64 = 1;
const GIVE_BACK: u64 = 2;
const EXIT_IN_SWAP: u64 = 3;
const LOOP: u64 = 4;
const ONE_COMMIT: u64 = 5;

fn arg(mib: u64, mode: u64, seed: u64) -> u64 {
    mib | mode << 16 | seed << 32
}

/// Frames held by processes, and free swap slots: both must come back.
fn balance() -> (u64, u64, u64) {
    let s = frames::stats();
    let free_slots = swap::info().map_or(0, |i| i.free_slots);
    (s.used_by(Owner::Process), s.used_by(Owner::PageTable), free_slots)
}

fn run(programs_and_args: &[(&'static str, u64)]) -> Vec<Finished> {
    let before = balance();
    for &(name, arg) in programs_and_args {
        programs::spawn_with_arg(name, arg).expect("spawn");
    }
    let done = run_until_idle();
    assert_eq!(balance(), before, "process frames, page tables and swap slots all came back");
    if let Some(info) = swap::info() {
        assert_eq!(info.free_slots, info.total_slots, "every slot is free again");
    }
    println!("{}", swap::info().map_or("no swap".into(), |i| alloc::format!("{i}")));
    done
}

fn a_process_writes_160_mib_at_64_mib_and_reads_it_back_bit_exact() {
    assert_exited_ok(&run(&[("swap_pattern", arg(160, PATTERN, 1))]));
}

fn two_processes_bigger_than_ram_swap_at_once() {
    assert_exited_ok(&run(&[("swap_pattern", arg(100, PATTERN, 2)), ("swap_pattern", arg(100, PATTERN, 3))]));
}

fn a_hot_set_stays_resident_while_a_cold_set_is_swapped() {
    assert_exited_ok(&run(&[("swap_pattern", arg(96, HOT_AND_COLD, 4))]));
}

/// A loop over 80 MiB at 64 MiB, read three times: the replacement policy
/// keeps most of memory for hot pages that stay, so each later pass swaps
/// in fewer than half of the pages (about a third, 2026-11-22; the plain
/// clock swapped in every one of them).
fn a_loop_larger_than_memory_keeps_most_of_its_pages_resident() {
    println!("{}", pagekeeper::vm::reclaim::info());
    let done = run(&[("swap_pattern", arg(80, LOOP, 8))]);
    println!("{}", pagekeeper::vm::reclaim::info());
    assert_exited_ok(&done);
}

fn decommit_release_and_exit_give_every_slot_back() {
    assert_exited_ok(&run(&[("swap_pattern", arg(96, GIVE_BACK, 5))]));
    assert_exited_ok(&run(&[("swap_pattern", arg(96, EXIT_IN_SWAP, 6))]));
}

/// A commit of 96 MiB in one call at 64 MiB runs over many time slices
/// (it evicts as it goes) and is restarted at the end of each, so a
/// process started after it runs meanwhile and ends first; the caller's
/// own pressure handler runs between the parts, and the call still
/// returns every page (the program's exit code says both).
fn a_long_commit_is_restarted_and_lets_the_others_run() {
    let restarted = process::restarted_commits();
    let done = run(&[("swap_pattern", arg(96, ONE_COMMIT, 0)), ("hello", 0)]);
    assert_exited_ok(&done);
    let restarts = process::restarted_commits() - restarted;
    let order: Vec<&str> = done.iter().map(|f| f.name).collect();
    assert_eq!(order, ["hello", "swap_pattern"], "hello ran to its end while the commit was on");
    println!("one commit of 96 MiB: restarted {restarts} times");
}

/// The hog, the biggest process by far, was the OOM killer's choice when
/// its own fault found no memory.
fn out_of_memory_kill(done: &[Finished]) {
    let hog = done.iter().find(|f| f.name == "swap_pattern").expect("the hog ran");
    match hog.status {
        ExitStatus::KilledByOom(kill) => {
            assert_eq!(kill.trigger, hog.pid, "it asked for the page itself");
            assert!(kill.score > kill.next_score, "{kill}");
        }
        other => panic!("the hog was not killed out of memory: {other}"),
    }
}

fn when_swap_is_full_the_hog_is_killed_and_the_others_go_on() {
    let done = run(&[("swap_pattern", arg(400, PATTERN, 7)), ("hello", 0), ("alloc_demo", 0)]);
    out_of_memory_kill(&done);
    for f in done.iter().filter(|f| f.name != "swap_pattern") {
        assert_eq!(f.status, ExitStatus::Exited(0), "{}: {}", f.name, f.status);
    }
}

/// A space of its own with `PAGES` pages, one word of each written
/// (`value`, a mix of the page number and a salt), for the tests that
/// evict pages by hand and read them back.
struct WrittenPages {
    id: pagekeeper::vm::SpaceId,
    base: u64,
    salt: u64,
}

impl WrittenPages {
    const PAGES: u64 = 64;

    fn new(salt: u64) -> WrittenPages {
        use pagekeeper::vm::{self, RegionKind, PROCESS_LIMITS};
        let id = vm::create(PROCESS_LIMITS).expect("a space");
        let base =
            vm::with(id, |s| s.reserve(Self::PAGES * 4096, mm::pte::Prot::USER_RW, RegionKind::Anonymous))
                .and_then(|r| r.ok())
                .expect("reserve")
                .as_u64();
        let pages = WrittenPages { id, base, salt };
        vm::activate(id).expect("activate");
        for page in 0..Self::PAGES {
            // SAFETY: the page is in the active space's reserved region;
            // the write faults it in (demand zero).
            unsafe { pages.word(page).write_volatile(pages.value(page)) };
        }
        vm::activate_kernel();
        pages
    }

    fn word(&self, page: u64) -> *mut u64 {
        (self.base + page * 4096 + 8 * (page % 512)) as *mut u64
    }

    fn value(&self, page: u64) -> u64 {
        page * self.salt + 1
    }

    fn in_swap(&self) -> u64 {
        pagekeeper::vm::with(self.id, |s| s.stats().swapped_pages).expect("space")
    }

    /// Reads every page (swapping in what is out), requires each as it
    /// was written, and destroys the space.
    fn check_and_destroy(self) {
        use pagekeeper::vm;
        vm::activate(self.id).expect("activate");
        for page in 0..Self::PAGES {
            // SAFETY: as in `new`; the read swaps the page back in if needed.
            let read = unsafe { self.word(page).read_volatile() };
            assert_eq!(read, self.value(page), "page {page} came back intact");
        }
        vm::activate_kernel();
        vm::destroy(self.id);
    }
}

/// Batch writes that fail in the middle of write-behind: their pages stay
/// resident and intact, their slots come back, the errors are counted;
/// with one failure, the batch started behind it still completes and the
/// next sweep takes the failed batch's pages.
fn a_failed_batch_write_keeps_its_pages_and_gives_its_slots_back() {
    use pagekeeper::vm;
    const PAGES: u64 = WrittenPages::PAGES;
    let before = balance();
    let errors = || swap::info().expect("swap").counters.errors;
    let pages = WrittenPages::new(0x9e37_79b9);

    let (errors_before, slots_before) = (errors(), balance().2);
    swap::fail_batch_writes(u64::MAX);
    assert_eq!(vm::reclaim::evict(PAGES), 0, "no page leaves when every write fails");
    swap::fail_batch_writes(0);
    assert_eq!(pages.in_swap(), 0);
    assert_eq!(balance().2, slots_before, "the failed writes' slots are free again");
    assert!(errors() > errors_before, "the failures are counted");

    let errors_before = errors();
    swap::fail_batch_writes(1);
    assert_eq!(vm::reclaim::evict(PAGES), PAGES, "the later batches and a later sweep take every page");
    assert_eq!(errors(), errors_before + 1, "one failure");
    assert_eq!(pages.in_swap(), PAGES);

    pages.check_and_destroy();
    assert_eq!(balance(), before, "frames, page tables and slots all came back");
}

/// The driver's request timeout set for a test, and with the fault
/// injection put back to normal when the guard goes, however the test
/// ends.
struct RequestTimeout(u64);

impl RequestTimeout {
    fn set(ms: u64) -> RequestTimeout {
        RequestTimeout(virtio_blk::set_request_timeout_ms(ms))
    }
}

impl Drop for RequestTimeout {
    fn drop(&mut self) {
        virtio_blk::set_request_timeout_ms(self.0);
        virtio_blk::ignore_completions(0);
    }
}

/// A process bigger than RAM beside `hello`, with the request timeout at
/// 1 s, on a swap disk that does not answer: the disk must end out of
/// service, the big one with the out-of-memory kill, and `hello` must
/// finish.
fn a_hog_meets_a_silent_disk() {
    let timeout = RequestTimeout::set(1000);
    let done = run(&[("swap_pattern", arg(160, PATTERN, 1)), ("hello", 0)]);
    drop(timeout);
    out_of_memory_kill(&done);
    let hello = done.iter().find(|f| f.name == "hello").expect("hello ran");
    assert_eq!(hello.status, ExitStatus::Exited(0), "{}", hello.status);
    assert!(swap::info().expect("swap").out_of_service, "out of service");
}

/// A swap disk that stops answering (its answers dropped unseen: fault
/// injection in the driver): the wait gives up after the driver's timeout
/// (1 s here: long enough that no real request of a busy host reaches
/// it), the device is reset and started again, and every request on its
/// way fails and is sent once more when it is waited for. A swap-out
/// batch whose write and its resend both got no answer fails, its pages
/// stay resident and its slots free; one that got no answer once goes
/// through. A commit whose read got no answer twice fails with the page
/// still in swap; once, it succeeds. The restarted device takes every
/// page and gives each back as it was written, and everything comes back
/// at the end.
fn a_disk_that_stops_answering_is_reset_and_started_again() {
    use pagekeeper::vm;
    const PAGES: u64 = WrittenPages::PAGES;
    let before = balance();
    let info = || swap::info().expect("swap");
    let pages = WrittenPages::new(0x2545_f491);
    let (id, base) = (pages.id, pages.base);
    let in_swap = || pages.in_swap();
    let timeout = RequestTimeout::set(1000);

    // One write gets no answer: sent again after the reset, it goes.
    let (resets, errors, slots) = (info().device_resets, info().counters.errors, balance().2);
    virtio_blk::ignore_completions(1);
    assert_eq!(vm::reclaim::evict(PAGES / 2), PAGES / 2, "every page of the sweep went");
    assert_eq!((info().device_resets, info().counters.errors), (resets + 1, errors), "one reset, no failure");
    assert!(!info().out_of_service, "the device was started again");
    // The first batch's write, the second's (started behind it) and the
    // first's resend get no answer: two resets; the first batch fails
    // (its pages stay, its slots go back) and the second is sent again
    // and goes; a sweep after it takes the first batch's pages too.
    virtio_blk::ignore_completions(3);
    assert_eq!(vm::reclaim::evict(PAGES / 2), PAGES / 2, "the restarted device takes the rest");
    assert_eq!(info().device_resets, resets + 3, "a reset for the write, one for its resend");
    assert_eq!(info().counters.errors, errors + 1, "the write that got no answer twice failed");
    assert!(!info().out_of_service, "an answer in between: still in service");
    assert_eq!(in_swap(), PAGES);
    assert_eq!(balance().2, slots - PAGES, "the failed write's slots were free again");

    // A read that gets no answer is sent once more after the reset.
    virtio_blk::ignore_completions(2);
    let commit = vm::with(id, |s| s.commit(base, PAGES * 4096)).expect("space");
    assert!(commit.is_err(), "a commit whose read got no answer twice fails: {commit:?}");
    assert_eq!(info().device_resets, resets + 5, "two more resets");
    assert!(in_swap() > 0, "the page whose read failed is still in swap");
    assert!(!info().out_of_service, "two timeouts in a row: still in service");
    // An answered read (the first page and those read ahead with it)
    // clears the count of timeouts in a row; without it, the next would
    // be the third and put the disk out of service.
    let first = vm::with(id, |s| s.commit(base, 4096)).expect("space");
    assert!(first.is_ok(), "{first:?}");
    virtio_blk::ignore_completions(1);
    let commit = vm::with(id, |s| s.commit(base, PAGES * 4096)).expect("space");
    assert!(commit.is_ok(), "a read that got no answer once is sent again and answered: {commit:?}");
    assert_eq!(info().device_resets, resets + 6, "one more reset");
    assert_eq!(in_swap(), 0, "every page is back");
    drop(timeout);

    pages.check_and_destroy();
    assert_eq!(balance(), before, "frames, page tables and slots all came back");
}

/// A swap disk that never answers again: after three timeouts in a row
/// (1 s each here) it is put out of service, and the kernel goes on as
/// without swap: nothing more is written to it, a process bigger than RAM
/// gets the out-of-memory kill ("swap disk out of service"), the others
/// finish. The last test of the suite: the disk stays out of service.
fn a_disk_that_keeps_not_answering_goes_out_of_service() {
    let info = || swap::info().expect("swap");
    let (resets, outs) = (info().device_resets, info().counters.outs);
    virtio_blk::ignore_completions(u64::MAX);
    a_hog_meets_a_silent_disk();
    assert_eq!(info().device_resets, resets + 3, "three timeouts, then no more tries");
    assert_eq!(info().counters.outs, outs, "no page was written");
    assert!(!info().takes_pages());
    assert_eq!(pagekeeper::vm::reclaim::evict(64), 0, "reclaim does not try the disk again");
}

/// The host throttled the swap disk to 2 KiB/s (`--swap-bps 2048`): a
/// write of a batch takes seconds. With the request timeout at 1 s, the
/// first writes that wait behind the throttle time out: the device is
/// really reset with a request on its way, started again, and after three
/// timeouts with nothing answered put out of service; the process bigger
/// than RAM then gets the out-of-memory kill and its neighbour finishes.
fn a_stalled_disk_is_reset_then_put_out_of_service() {
    let info = || swap::info().expect("swap");
    a_hog_meets_a_silent_disk();
    assert!(info().device_resets >= 3, "{} resets", info().device_resets);
    println!(
        "stalled disk: {} resets, {} pages written before it stalled",
        info().device_resets,
        info().counters.outs
    );
}

/// The driver matches completions to requests by token: four writes on
/// their way at once (every request slot; a fifth is refused as busy),
/// waited for newest first, so each wait meets completions that belong to
/// other requests and keeps them for their waiters; every page then reads
/// back as it was written.
fn writes_waited_for_newest_first_each_get_their_own_completion() {
    use mm::block::{BlockDevice, BlockError};
    use mm::frame::FrameBlock;
    use pagekeeper::drivers::virtio_blk::{PendingWrite, REQUESTS};
    use pagekeeper::memory::phys_to_virt;
    let pages: Vec<FrameBlock> =
        (0..REQUESTS).map(|_| frames::allocate(0, Owner::Kernel).expect("a frame")).collect();
    let fill = |i: usize| (i as u64 + 1) * 0x0101_0101_0101_0101;
    for (i, page) in pages.iter().enumerate() {
        // SAFETY: the frame was just allocated to this test; it is RAM in
        // the physical window.
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(page.start()).as_mut_ptr::<u64>(), 512) }
            .fill(fill(i));
    }
    let sector = |i: usize| mm::swap::slot_sector(1 + i as u64);
    swap::with_unused_disk(REQUESTS as u64 + 1, |disk| {
        // SAFETY (both starts): the frames stay allocated and unwritten
        // until the waits below.
        let started: Vec<PendingWrite> = (0..REQUESTS)
            .map(|i| {
                unsafe { disk.start_write_frames(sector(i), &[pages[i].start()]) }.expect("a request slot")
            })
            .collect();
        let fifth = unsafe { disk.start_write_frames(sector(REQUESTS), &[pages[0].start()]) };
        assert!(matches!(fifth, Err(BlockError::Busy)), "a fifth request while four are on their way");
        for write in started.into_iter().rev() {
            disk.finish_write(write).expect("each write completes");
        }
        let mut back = [0u8; 4096];
        for i in 0..REQUESTS {
            disk.read(sector(i), &mut back).expect("read back");
            let words = back.chunks_exact(8).map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")));
            assert!(words.into_iter().all(|w| w == fill(i)), "page {i} reads back as written");
        }
    })
    .expect("no slot in use");
    for page in pages {
        frames::free(page).expect("the test's own frame");
    }
}

/// A space of its own with one anonymous read-write region, for the tests
/// that drive reclaim directly; destroying it checks that every frame,
/// page table and slot came back.
struct TestSpace {
    id: pagekeeper::vm::SpaceId,
    base: u64,
    before: (u64, u64, u64),
}

/// A word of a [`TestSpace`] page, handed out by [`TestSpace::each`] while
/// the space is active.
struct Word(*mut u64);

impl Word {
    fn read(&self) -> u64 {
        // SAFETY: `each` made the word's space active, and the word is in
        // its reserved, writable region (a touch faults the page in).
        unsafe { self.0.read_volatile() }
    }

    fn write(&self, value: u64) {
        // SAFETY: as in `read`.
        unsafe { self.0.write_volatile(value) }
    }
}

impl TestSpace {
    fn new(pages: u64) -> TestSpace {
        use pagekeeper::vm::{self, RegionKind, PROCESS_LIMITS};
        let before = balance();
        let id = vm::create(PROCESS_LIMITS).expect("a space");
        let base = vm::with(id, |s| s.reserve(pages * 4096, mm::pte::Prot::USER_RW, RegionKind::Anonymous))
            .and_then(|r| r.ok())
            .expect("reserve")
            .as_u64();
        TestSpace { id, base, before }
    }

    /// Runs `f` on each page of `pages` with the space active, with the
    /// word `offset(page)` bytes into that page.
    fn each(
        &self,
        pages: impl Iterator<Item = u64>,
        offset: impl Fn(u64) -> u64,
        mut f: impl FnMut(u64, Word),
    ) {
        pagekeeper::vm::activate(self.id).expect("activate");
        for page in pages {
            f(page, Word((self.base + page * 4096 + offset(page)) as *mut u64));
        }
        pagekeeper::vm::activate_kernel();
    }

    fn stats(&self) -> pagekeeper::vm::SpaceStats {
        pagekeeper::vm::with(self.id, |s| s.stats()).expect("space")
    }

    fn destroy(self) {
        pagekeeper::vm::destroy(self.id);
        assert_eq!(balance(), self.before, "frames, page tables and slots all came back");
    }
}

/// Pages that read all zero leave without a write: they become
/// demand-zero again, take no slot, and read zero when touched; pages with
/// data beside them go to swap and come back intact.
fn pages_that_read_zero_are_dropped_without_a_write() {
    use pagekeeper::vm::{self, reclaim};
    const PAGES: u64 = 64;
    let space = TestSpace::new(PAGES);
    vm::with(space.id, |s| s.commit(space.base, PAGES * 4096)).and_then(|r| r.ok()).expect("commit");
    // Every other page gets data, in its last word (the look for a
    // nonzero word must reach it).
    let last_word = |_| 4088;
    space.each((0..PAGES).step_by(2), last_word, |page, word| word.write(page + 1));
    let (dropped_before, writes_before) =
        (reclaim::info().zero_dropped, swap::info().expect("swap").counters);
    assert_eq!(reclaim::evict(PAGES), PAGES, "every page leaves");
    let stats = space.stats();
    assert_eq!(
        (stats.swapped_pages, stats.zero_pages_dropped, stats.resident_pages),
        (PAGES / 2, PAGES / 2, 0)
    );
    assert_eq!(reclaim::info().zero_dropped - dropped_before, PAGES / 2);
    let writes = swap::info().expect("swap").counters;
    assert_eq!(writes.outs - writes_before.outs, PAGES / 2, "only the pages with data were written");
    // The reads swap pages in or map zero pages.
    space.each(0..PAGES, last_word, |page, word| {
        assert_eq!(word.read(), if page % 2 == 0 { page + 1 } else { 0 }, "page {page}");
    });
    let faults = space.stats().faults;
    assert_eq!(
        (faults.swapped_in, faults.demand_zero),
        (PAGES / 2, PAGES / 2),
        "zero pages came back as demand-zero"
    );
    space.destroy();
}

/// The swap cache: pages read back from swap keep their slot as a copy
/// (swap is nearly empty here), and when they leave again only those
/// written meanwhile are written; the others go to their copy. Every page
/// reads back right, and every slot comes back when the space goes.
fn a_page_read_back_and_not_written_leaves_again_without_a_write() {
    use pagekeeper::vm::reclaim;
    const PAGES: u64 = 64;
    let space = TestSpace::new(PAGES);
    let spread = |page| 8 * page;
    space.each(0..PAGES, spread, |page, word| word.write(page + 1));
    let counters = || swap::info().expect("swap").counters;
    let first = counters();
    assert_eq!(reclaim::evict(PAGES), PAGES, "every page leaves");
    assert_eq!(counters().outs - first.outs, PAGES);
    space.each(0..PAGES, spread, |page, word| assert_eq!(word.read(), page + 1, "page {page}"));
    let info = swap::info().expect("swap");
    assert_eq!(info.cached_pages, PAGES, "each page read back keeps its slot as its copy");
    assert_eq!(info.counters.copies_kept - first.copies_kept, PAGES);
    // Every fourth page is written: its copy is stale.
    space.each((0..PAGES).step_by(4), spread, |page, word| word.write(page + 1000));
    let second = counters();
    assert_eq!(reclaim::evict(PAGES), PAGES, "every page leaves again");
    let after = swap::info().expect("swap");
    assert_eq!(after.counters.outs - second.outs, PAGES / 4, "only the written pages were written");
    assert_eq!(after.counters.writes_saved - second.writes_saved, PAGES * 3 / 4);
    assert_eq!(after.total_slots - after.free_slots, PAGES, "stale copies gave their slots back");
    assert_eq!(space.stats().clean_evictions, PAGES * 3 / 4);
    space.each(0..PAGES, spread, |page, word| {
        let expected = if page % 4 == 0 { page + 1000 } else { page + 1 };
        assert_eq!(word.read(), expected, "page {page}");
    });
    space.destroy();
    assert_eq!(swap::info().expect("swap").cached_pages, 0, "the copies went with their pages");
}

/// Copies given up while their pages are resident (here by `swap_off`,
/// as a write that finds swap full does): the entries still say
/// swap-cached, but the cache is the truth, so the pages are written
/// again when they leave, and read back right.
fn pages_whose_copies_were_given_up_are_written_again() {
    use pagekeeper::vm::reclaim;
    const PAGES: u64 = 16;
    let space = TestSpace::new(PAGES);
    let first_word = |_| 0;
    space.each(0..PAGES, first_word, |page, word| word.write(page + 3));
    assert_eq!(reclaim::evict(PAGES), PAGES);
    space.each(0..PAGES, first_word, |page, word| assert_eq!(word.read(), page + 3));
    assert_eq!(swap::info().expect("swap").cached_pages, PAGES, "copies kept");
    assert_eq!(swap::swap_off(), Ok(0), "no page is in swap, only copies, which go");
    assert!(swap::swap_on());
    assert_eq!(swap::info().expect("swap").cached_pages, 0);
    let outs = swap::info().expect("swap").counters.outs;
    assert_eq!(reclaim::evict(PAGES), PAGES);
    assert_eq!(swap::info().expect("swap").counters.outs - outs, PAGES, "written again: no copy to go to");
    space.each(0..PAGES, first_word, |page, word| assert_eq!(word.read(), page + 3, "page {page}"));
    space.destroy();
}

/// `swapoff`: every page in swap comes back bit-exact (read ahead as a
/// sequential read-back is), nothing leaves while swap is off, and after
/// `swap_on` the disk is empty and takes pages again.
fn swap_off_brings_every_page_back_and_swap_on_takes_pages_again() {
    use pagekeeper::vm::reclaim;
    const PAGES: u64 = 512;
    let space = TestSpace::new(PAGES);
    let spread = |page| page * 8 % 4096;
    let check = |space: &TestSpace| {
        space.each(0..PAGES, spread, |page, word| assert_eq!(word.read(), page ^ 0x5eed, "page {page}"))
    };
    space.each(0..PAGES, spread, |page, word| word.write(page ^ 0x5eed));
    assert_eq!(reclaim::evict(PAGES), PAGES);
    assert_eq!(space.stats().swapped_pages, PAGES);
    let ins = swap::info().expect("swap").counters.ins;
    let faults = space.stats().faults;
    assert_eq!(swap::swap_off(), Ok(PAGES), "every page came back");
    assert!(swap::info().is_none(), "off: the kernel runs as without swap");
    let (st, off) = (space.stats(), swap::swap_off());
    assert_eq!((st.swapped_pages, st.resident_pages), (0, PAGES));
    assert!(st.faults.read_ahead - faults.read_ahead >= PAGES / 2, "read ahead: {:?}", st.faults);
    assert_eq!(off, Err(swap::SwapOffError::NoDevice), "off already");
    reclaim::evict(PAGES);
    assert_eq!(space.stats().resident_pages, PAGES, "nothing can leave with swap off");
    check(&space);
    assert_eq!(space.stats().faults.swapped_in, faults.swapped_in, "reading them faulted nothing in");
    assert!(swap::swap_on());
    assert!(!swap::swap_on(), "on already");
    let on = swap::info().expect("swap on again");
    assert_eq!((on.free_slots, on.counters.ins - ins), (on.total_slots, PAGES), "empty, each page read once");
    assert!(on.takes_pages() && !on.draining);
    assert_eq!(reclaim::evict(PAGES), PAGES, "pages leave again");
    check(&space);
    space.destroy();
}

/// `swapoff` with more in swap than RAM can hold: it reads pages back
/// until memory runs out and direct reclaim has nothing to give (swap
/// takes no page meanwhile), then stops; swap is on again, and every page
/// reads back right, those brought back and those still in swap.
fn swap_off_without_room_for_every_page_stops_and_loses_nothing() {
    let pages = frames::stats().total + 1024;
    let space = TestSpace::new(pages);
    let first_word = |_| 0;
    space.each(0..pages, first_word, |page, word| word.write(page * 3 + 1));
    let in_swap = space.stats().swapped_pages;
    assert!(in_swap > 1024, "{in_swap} pages in swap");
    let stopped = match swap::swap_off() {
        Err(swap::SwapOffError::SwapIn(stopped)) => stopped,
        other => panic!("swap_off with {in_swap} pages in swap and no room for them: {other:?}"),
    };
    assert_eq!((stopped.space, stopped.error), (space.id, pagekeeper::vm::VmError::OutOfMemory));
    let st = space.stats();
    assert!(stopped.brought_in > 0 && st.swapped_pages > 0, "{stopped:?} {st:?}");
    assert_eq!(st.swapped_pages, in_swap - stopped.brought_in, "the pages brought back stay");
    let info = swap::info().expect("swap stays on");
    assert!(info.takes_pages() && !info.draining);
    space.each(0..pages, first_word, |page, word| assert_eq!(word.read(), page * 3 + 1, "page {page}"));
    space.destroy();
}

/// Overcommit mode 2 holds promises to the commit limit, which counts
/// swap: `swapoff` is refused, before anything is read or changed, when
/// what is promised would not fit the limit without it (as Linux's is).
fn swap_off_in_overcommit_mode_2_is_refused_when_the_promises_need_swap() {
    use mm::policy::commit::{OvercommitMode, OvercommitPolicy};
    use pagekeeper::policy::commit;
    let was = commit::info().policy;
    commit::set_policy(OvercommitPolicy { mode: OvercommitMode::Never, ratio: 50 });
    let ram = frames::stats().total;
    // Promised, not touched: more than half of RAM, fine with swap.
    let space = TestSpace::new(ram * 3 / 4);
    let refused = swap::swap_off();
    commit::set_policy(was);
    match refused {
        Err(swap::SwapOffError::CommitLimit(r)) => {
            assert_eq!(r.limit, ram / 2, "CommitLimit without swap");
            assert!(r.committed >= ram * 3 / 4, "{r:?}");
        }
        other => panic!("swap_off with {} pages promised: {other:?}", ram * 3 / 4),
    }
    let info = swap::info().expect("swap stays on");
    assert!(info.takes_pages() && !info.draining);
    space.destroy();
}

/// Swap-in read-ahead: reading pages back in order reads the pages after
/// each fault too, wherever their slots are, one request per run of
/// consecutive slots (reclaim sorts each batch by address, so a batch's
/// pages make one run). 54 of 64 read ahead in 10 faults on 2026-12-07;
/// 43 and 46 (21 and 18 faults) when only pages whose slots followed the
/// faulting page's were read. At least half is required here.
fn a_sequential_read_back_reads_ahead_in_requests_of_up_to_8_pages() {
    use pagekeeper::vm::reclaim;
    const PAGES: u64 = 64;
    let space = TestSpace::new(PAGES);
    let first_word = |_| 0;
    // Written from the top down, so that the frames (handed out in
    // order) run the other way from the pages, and the clock, which goes
    // by frame, gathers each batch top page first.
    space.each((0..PAGES).rev(), first_word, |page, word| word.write(page + 7));
    assert_eq!(reclaim::evict(PAGES), PAGES, "every page leaves");
    let ins = swap::info().expect("swap").counters.ins;
    space.each(0..PAGES, first_word, |page, word| assert_eq!(word.read(), page + 7, "page {page}"));
    let faults = space.stats().faults;
    println!("read-ahead: {} swap-in faults, {} pages read ahead", faults.swapped_in, faults.read_ahead);
    assert_eq!(faults.swapped_in + faults.read_ahead, PAGES);
    assert!(faults.read_ahead >= PAGES / 2, "{faults:?}");
    assert_eq!(swap::info().expect("swap").counters.ins - ins, PAGES, "each page read once");
    space.destroy();
}

fn without_swap_a_process_bigger_than_ram_is_killed_out_of_memory() {
    let done = run(&[("swap_pattern", arg(160, PATTERN, 1)), ("hello", 0)]);
    out_of_memory_kill(&done);
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    let with_swap: &[&dyn Testable] = &[
        &a_process_writes_160_mib_at_64_mib_and_reads_it_back_bit_exact,
        &two_processes_bigger_than_ram_swap_at_once,
        &a_hot_set_stays_resident_while_a_cold_set_is_swapped,
        &a_loop_larger_than_memory_keeps_most_of_its_pages_resident,
        &decommit_release_and_exit_give_every_slot_back,
        &when_swap_is_full_the_hog_is_killed_and_the_others_go_on,
        &a_failed_batch_write_keeps_its_pages_and_gives_its_slots_back,
        &a_disk_that_stops_answering_is_reset_and_started_again,
        &writes_waited_for_newest_first_each_get_their_own_completion,
        &pages_that_read_zero_are_dropped_without_a_write,
        &a_page_read_back_and_not_written_leaves_again_without_a_write,
        &a_sequential_read_back_reads_ahead_in_requests_of_up_to_8_pages,
        &pages_whose_copies_were_given_up_are_written_again,
        &swap_off_brings_every_page_back_and_swap_on_takes_pages_again,
        &swap_off_without_room_for_every_page_stops_and_loses_nothing,
        &swap_off_in_overcommit_mode_2_is_refused_when_the_promises_need_swap,
        &a_long_commit_is_restarted_and_lets_the_others_run,
        // Last: it leaves the disk out of service.
        &a_disk_that_keeps_not_answering_goes_out_of_service,
    ];
    let without_swap: &[&dyn Testable] = &[&without_swap_a_process_bigger_than_ram_is_killed_out_of_memory];
    let stalled: &[&dyn Testable] = &[&a_stalled_disk_is_reset_then_put_out_of_service];
    // The host says when it throttled the swap disk to a stall.
    let tests = match pagekeeper::arch::fw_cfg::setting("opt/pagekeeper/swap-disk").as_deref() {
        Some("stalled") => stalled,
        _ if swap::info().is_some() => with_swap,
        _ => without_swap,
    };
    // Uptime is emulated and swap traffic is slow under TCG.
    run_tests_with(tests, RunnerConfig { timeout_ms: 600_000 })
}
