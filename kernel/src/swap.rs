//! The swap device on the real machine: the first virtio-blk disk whose
//! first page is a Pagekeeper swap header (`mm::swap::header`, written on
//! the host by `pagekeeper-boot --swap`). A disk without one is never
//! written. The slot map and the page I/O are `mm::swap::SwapArea`'s; this
//! module holds the one area behind a lock and moves frames through it.
//!
//! It also keeps the swap cache (`mm::swap::cache`): a page read back in
//! keeps its slot while swap is at most half full, and leaves again with
//! no write if it was not written meanwhile.
//!
//! Lock order: the address-space registry, then this, then the frame
//! allocator. Interrupts are off while the lock is held (a fault path
//! takes it).

use crate::drivers::virtio_blk::{PendingRead, PendingWrite, VirtioDisk, REQUESTS};
use crate::memory::frames;
use crate::memory::phys_to_virt;
use crate::vm::SwapInStopped;
use crate::{info, warn};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::{Pfn, PAGE_SIZE};
use mm::block::{BlockDevice, BlockError};
use mm::frame::Owner;
use mm::policy::commit::CommitRefused;
use mm::swap::{slot_runs, slot_sector, SwapArea, SwapCounters, SwapError, TakenRun};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

static SWAP: Mutex<Option<SwapArea<VirtioDisk>>> = Mutex::new(None);

/// Pages reclaim writes out in one request (see [`start_batch`]): as many
/// as the driver takes buffers per request.
pub const BATCH_PAGES: usize = crate::drivers::virtio_blk::MAX_SEGMENTS;

/// Batches reclaim keeps on their way to the disk at once (its
/// write-behind depth, at most the driver's request slots). Two: the
/// batch being written while the next is gathered. Measured deeper (4,
/// every slot the driver has), the raw disk moves pages faster but
/// swap-out does not: the kernel's work per page is the slower side
/// (docs/swap.md, "Measured").
pub const BATCHES_IN_FLIGHT: usize = 2;
const _: () = assert!(BATCHES_IN_FLIGHT <= REQUESTS, "each batch in flight takes a request slot");
const _: () = assert!(
    (mm::vm::MAX_SWAP_READ_AHEAD as usize) < crate::drivers::virtio_blk::MAX_SEGMENTS,
    "a swap-in and the pages read ahead of it fit one request"
);

/// Opens the first disk that carries a swap header as swap; leaves the
/// others alone.
pub fn init(disks: Vec<VirtioDisk>) {
    let mut opened = None;
    for (index, disk) in disks.into_iter().enumerate() {
        if disk.read_only() {
            info!("disk {index}: read-only, not swap");
        } else if opened.is_some() {
            info!("disk {index}: not opened, swap is already on a disk");
        } else {
            match SwapArea::open(disk) {
                Ok(mut area) => {
                    let slots = area.total_slots();
                    info!("swap on disk {index}: {} MiB ({slots} slots)", (slots * PAGE_SIZE) >> 20);
                    if let Err(e) = area.enable_cache(frames::span()) {
                        warn!("swap: {e}: pages swapped in give their slot back at once");
                    }
                    opened = Some(area);
                }
                Err((e, _disk)) => warn!("disk {index}: not used as swap: {e}"),
            }
        }
    }
    without_interrupts(|| *SWAP.lock() = opened);
}

/// The swap area while it is switched off ([`swap_off`]).
static OFF: Mutex<Option<SwapArea<VirtioDisk>>> = Mutex::new(None);

/// Why [`swap_off`] left swap on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapOffError {
    /// No swap disk is in use.
    NoDevice,
    /// Overcommit mode 2: what is promised would pass the commit limit
    /// without the swap disk's pages. Nothing was read.
    CommitLimit(CommitRefused),
    /// A space's pages could not all come back (memory ran short even
    /// after reclaim, its RAM quota, or the disk failed). Pages brought
    /// back stay resident; the rest stay in swap, which takes pages again.
    SwapIn(SwapInStopped),
    /// Every page came back and slots are still in use: the slot map and
    /// the page tables disagree (a kernel bug; swap stays on).
    SlotsStillInUse(u64),
}

impl fmt::Display for SwapOffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapOffError::NoDevice => write!(f, "no swap device is on"),
            SwapOffError::CommitLimit(r) => write!(
                f,
                "{} pages are promised and CommitLimit without swap would be {} (overcommit mode 2)",
                r.committed, r.limit
            ),
            SwapOffError::SwapIn(s) => write!(f, "space {} {s}", s.space.0),
            SwapOffError::SlotsStillInUse(n) => {
                write!(f, "{n} slots still in use after every page came back")
            }
        }
    }
}

/// Stops using the swap disk, like Linux's `swapoff`: refused at once in
/// overcommit mode 2 when what is promised would not fit without it;
/// otherwise the disk takes no more pages and keeps no more copies, and
/// every page in it is read back into RAM (space by space, read-ahead
/// included, with direct reclaim dropping what it can when memory runs
/// short). Then, until [`swap_on`], the kernel runs as with no swap
/// device. Returns the pages brought back. On failure the pages already
/// back stay, the rest stay in swap, and swap takes pages again: nothing
/// is lost.
pub fn swap_off() -> Result<u64, SwapOffError> {
    if info().is_none() {
        return Err(SwapOffError::NoDevice);
    }
    crate::policy::commit::holds_without_swap().map_err(SwapOffError::CommitLimit)?;
    draining(true);
    let brought_in =
        crate::vm::swap_in_all().inspect_err(|_| draining(false)).map_err(SwapOffError::SwapIn)?;
    without_interrupts(|| {
        let mut swap = SWAP.lock();
        // Only swap_off takes the area away, and it runs once at a time.
        let Some(area) = swap.as_mut() else { return Err(SwapOffError::NoDevice) };
        let in_use = area.total_slots() - area.free_slots();
        if in_use > 0 {
            area.stop_draining();
            return Err(SwapOffError::SlotsStillInUse(in_use));
        }
        *OFF.lock() = swap.take();
        info!("swap off: {brought_in} pages brought back");
        Ok(brought_in)
    })
}

/// Starts or stops draining the area ([`SwapArea::start_draining`]).
fn draining(on: bool) {
    let _ = with(|area| {
        if on {
            area.start_draining();
        } else {
            area.stop_draining();
        }
        note_copies(area);
        Ok(())
    });
}

/// Uses the swap disk again after [`swap_off`]; false if it was not off.
pub fn swap_on() -> bool {
    without_interrupts(|| match OFF.lock().take() {
        Some(mut area) => {
            area.stop_draining();
            *SWAP.lock() = Some(area);
            true
        }
        None => false,
    })
}

fn with<R>(f: impl FnOnce(&mut SwapArea<VirtioDisk>) -> Result<R, SwapError>) -> Result<R, SwapError> {
    without_interrupts(|| SWAP.lock().as_mut().map_or(Err(SwapError::NoDevice), f))
}

fn page(frame: Pfn) -> *mut [u8; PAGE_SIZE as usize] {
    phys_to_virt(frame).as_mut_ptr()
}

/// Writes the page in `frame` to a new slot.
pub fn write_out(frame: Pfn) -> Result<u64, SwapError> {
    with(|area| {
        // SAFETY: `frame` is a process page the caller (the VMM, holding
        // the registry lock) owns; it is mapped in the physical window and
        // nothing writes it during the copy (one CPU, the process is not
        // running).
        let written = area.write_out(unsafe { &*page(frame) });
        note_copies(area);
        written
    })
}

/// A batch on its way to swap: its slots taken, the device writing its
/// pages straight from their frames. Finished by [`finish_batch`].
#[must_use = "a started batch must be finished"]
pub struct StartedBatch {
    run: TakenRun,
    write: PendingWrite,
}

/// Starts writing the pages in `frames` (1 to [`BATCH_PAGES`]) to a run of
/// consecutive slots in one request, and returns while the device writes:
/// the caller prepares its next batch meanwhile (write-behind). The
/// request's buffers are the frames themselves (scatter-gather, no copy),
/// so they must stay allocated and unchanged until [`finish_batch`]: the
/// caller (reclaim, holding the address-space registry) leaves them mapped
/// and runs nothing that could write them. `None` when no batch can start
/// (no run of free slots that long, the device refused): the caller
/// writes the pages one by one ([`write_out`]), which finds out what is
/// wrong.
pub fn start_batch(frames: &[Pfn]) -> Option<StartedBatch> {
    assert!((1..=BATCH_PAGES).contains(&frames.len()), "a batch fits one request");
    let len = frames.len() * PAGE_SIZE as usize;
    with(|area| {
        let run = area.take_run(len);
        note_copies(area);
        let run = run?;
        // SAFETY: the caller's promise above: the frames are process pages
        // it keeps allocated and unwritten until finish_batch.
        match unsafe { area.device_mut().start_write_frames(run.first_sector(), frames) } {
            Ok(write) => Ok(StartedBatch { run, write }),
            Err(e) => Err(area.run_written(run, Err(e)).expect_err("a failed write is an error")),
        }
    })
    .ok()
}

/// Waits for a started batch. The slots its pages are in, in order, or
/// the error that kept them off the disk (their slots are free again).
pub fn finish_batch(batch: StartedBatch) -> Result<core::ops::Range<u64>, SwapError> {
    let StartedBatch { run, write } = batch;
    let slots = run.slots();
    with(|area| {
        let done = area.device_mut().finish_write(write).and_then(|()| injected_failure());
        area.run_written(run, done)
    })
    .map(|_| slots)
}

/// Batch writes still to be reported failed ([`fail_batch_writes`]).
static FAILING_BATCHES: AtomicU64 = AtomicU64::new(0);

/// Fault injection, for tests (Linux's `fail_make_request` in spirit):
/// the next `count` batch writes report an I/O error when they are
/// waited for, after the device has run them, as a disk that failed the
/// write would. Their pages must stay where they were.
pub fn fail_batch_writes(count: u64) {
    FAILING_BATCHES.store(count, Ordering::Relaxed);
}

fn injected_failure() -> Result<(), BlockError> {
    let take = |n: u64| n.checked_sub(1);
    match FAILING_BATCHES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, take) {
        Ok(_) => Err(BlockError::Io),
        Err(_) => Ok(()),
    }
}

/// Reads the pages of one swap-in: `slots[k]` into `frames[k]` (new
/// frames nothing else uses yet), the faulting page first. Each run of
/// consecutive slots is one request, and every request is started before
/// the first is waited for (as many as the driver has request slots; the
/// oldest is waited for when they are all taken), so the disk works on
/// them together. Returns which pages were read (bit k: page k) and the
/// faulting page's eviction stamp; `Err` when the faulting page's read
/// failed. Every request is over when this returns.
pub fn read_pages(slots: &[u64], frames: &[Pfn]) -> Result<(u32, u32), SwapError> {
    with(|area| {
        let mut started: [Option<(Range<usize>, PendingRead)>; REQUESTS] = Default::default();
        let (mut read, mut oldest, mut first_error) = (0u32, 0usize, None);
        let mut record = |run: &Range<usize>, result: Result<(), SwapError>| match result {
            Ok(()) => read |= mm::vm::pages_mask(run),
            Err(e) if run.start == 0 => first_error = Some(e),
            Err(_) => {}
        };
        for (i, run) in slot_runs(slots).enumerate() {
            // The slot this run's request takes: the oldest is waited for first.
            if let Some((done, pending)) = started[i % REQUESTS].take() {
                let result = area.device_mut().finish_read(pending);
                record(&done, area.count_read(done.len() as u64, result));
                oldest = i + 1 - REQUESTS;
            }
            let (first, pages) = (slots[run.start], run.len() as u64);
            let begun = area.check_in_use(first, pages).and_then(|()| {
                // SAFETY: the frames are new, used by nothing else until
                // their read is finished below.
                unsafe { area.device_mut().start_read_frames(slot_sector(first), &frames[run.clone()]) }
                    .map_err(|e| area.count_read(pages, Err(e)).err().unwrap_or(SwapError::Device(e)))
            });
            match begun {
                Ok(pending) => started[i % REQUESTS] = Some((run, pending)),
                Err(e) => record(&run, Err(e)),
            }
        }
        // The rest, oldest first.
        for k in 0..REQUESTS {
            if let Some((done, pending)) = started[(oldest + k) % REQUESTS].take() {
                let result = area.device_mut().finish_read(pending);
                record(&done, area.count_read(done.len() as u64, result));
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok((read, area.slots_mut().evicted_at(slots[0]).map_err(SwapError::Slot)?))
    })
}

/// The pages now in `slots` were evicted at `stamp` of reclaim's eviction
/// clock (for their refault distance when they come back); one lock for
/// a batch.
pub fn set_evicted_at(slots: impl Iterator<Item = u64>, stamp: u32) {
    let _ = with(|area| {
        for slot in slots {
            if let Err(e) = area.slots_mut().set_evicted_at(slot, stamp) {
                warn!("swap: stamping slot {slot}: {e} (kernel bug)");
            }
        }
        Ok(())
    });
}

/// The page that held `slot` is gone. A slot the map does not know as in
/// use means the VMM's books and the slot map disagree: a kernel bug,
/// reported, never acted on.
pub fn release(slot: u64) {
    if let Err(e) = with(|area| area.release(slot)) {
        warn!("swap: releasing slot {slot}: {e} (kernel bug)");
    }
}

/// About how many copies the swap cache keeps: read without the lock, so
/// that freeing frames costs no swap lock while it keeps none (most of
/// the time, and always without swap). Updated under the lock.
static COPIES_KEPT: AtomicU64 = AtomicU64::new(0);

fn note_copies(area: &SwapArea<VirtioDisk>) {
    COPIES_KEPT.store(area.cached_pages(), Ordering::Relaxed);
}

/// The page read from `slot` into `frame` is mapped, clean: the swap cache
/// keeps the slot as its copy (true) or releases it (false).
pub fn settle_swap_in(frame: Pfn, slot: u64) -> bool {
    let settled = with(|area| {
        let kept = area.settle_swap_in(frame, slot);
        note_copies(area);
        kept
    });
    settled.unwrap_or_else(|e| {
        warn!("swap: settling slot {slot} after a swap-in: {e} (kernel bug)");
        false
    })
}

/// The slot that still holds the page in `frame`, if the swap cache kept
/// one: the caller (reclaim, which checked the page is clean) evicts the
/// page to it with no write.
pub fn take_copy(frame: Pfn) -> Option<u64> {
    if COPIES_KEPT.load(Ordering::Relaxed) == 0 {
        return None;
    }
    with(|area| {
        let slot = area.take_copy(frame);
        note_copies(area);
        Ok(slot)
    })
    .ok()
    .flatten()
}

/// Process frames were freed: copies kept for their pages are stale or
/// orphaned, and their slots go back (one lock for the lot).
pub fn frames_freed(frames: impl Iterator<Item = Pfn>) {
    if COPIES_KEPT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let _ = with(|area| {
        for frame in frames {
            if let Err(e) = area.frame_freed(frame) {
                warn!("swap: dropping the copy of {frame:?}: {e} (kernel bug)");
            }
        }
        note_copies(area);
        Ok(())
    });
}

/// Why [`raw_pages`] did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawTransferError {
    NoSwap,
    /// No frame for the page buffer.
    NoBuffer,
    /// Some slot holds a swapped page (or the disk has fewer slots).
    SlotsInUse,
    /// Not 1, 2, 4 or 8 pages per request, not a whole number of requests,
    /// more than one read in flight, or writes in flight not a power of two
    /// up to the driver's request slots.
    BadRequestShape,
    Device(BlockError),
}

impl fmt::Display for RawTransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawTransferError::NoSwap => write!(f, "no swap device"),
            RawTransferError::NoBuffer => write!(f, "no frame for the page buffer"),
            RawTransferError::SlotsInUse => write!(f, "swap slots in use (or too few)"),
            RawTransferError::BadRequestShape => {
                write!(f, "request size not 1, 2, 4 or 8 pages, or a depth the driver does not take")
            }
            RawTransferError::Device(e) => write!(f, "swap device: {e}"),
        }
    }
}

/// Runs `f` on the swap disk while no slot is in use, so nothing `f`
/// writes can overwrite a swapped page: for the bench's raw transfers and
/// the driver's tests, which write the slots' sectors ([`slot_sector`])
/// directly. Refused when a slot holds a page or the disk has fewer than
/// `slots` slots.
pub fn with_unused_disk<R>(slots: u64, f: impl FnOnce(&mut VirtioDisk) -> R) -> Result<R, RawTransferError> {
    without_interrupts(|| {
        let mut swap = SWAP.lock();
        let area = swap.as_mut().ok_or(RawTransferError::NoSwap)?;
        // Copies kept by the swap cache are given up: `f` may write over
        // any slot.
        area.drop_copies();
        note_copies(area);
        if area.free_slots() != area.total_slots() || slots > area.total_slots() {
            return Err(RawTransferError::SlotsInUse);
        }
        Ok(f(area.device_mut()))
    })
}

/// For `make bench`: moves `pages` pages straight between kernel frames
/// and the disk, `per_request` pages (1, 2, 4 or 8) per request, to slots
/// 1..=pages; writes with `in_flight` > 1 (up to the driver's
/// [`REQUESTS`]) keep that many requests on the way (the next started
/// before the oldest is waited for, as swap-out's write-behind does).
/// Refused unless every slot is free, so no swapped page can be
/// overwritten.
pub fn raw_pages(pages: u64, per_request: u64, in_flight: u64, write: bool) -> Result<(), RawTransferError> {
    let depth_ok =
        in_flight == 1 || (write && (in_flight as usize) <= REQUESTS && in_flight.is_power_of_two());
    if !matches!(per_request, 1 | 2 | 4 | 8) || !depth_ok || !pages.is_multiple_of(per_request) {
        return Err(RawTransferError::BadRequestShape);
    }
    // One buffer per request in flight, contiguous.
    let order = (per_request * in_flight).trailing_zeros() as u8;
    let buffer = frames::allocate_zeroed(order, Owner::Kernel).map_err(|_| RawTransferError::NoBuffer)?;
    let result = with_unused_disk(pages, |disk| {
        let len = (per_request * PAGE_SIZE) as usize;
        // SAFETY: `buffer` was just allocated for this transfer: 2^order
        // frames, contiguous in the physical window.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(page(buffer.start()).cast::<u8>(), len * in_flight as usize)
        };
        // With several in flight: the writes started and not yet waited
        // for, by chunk (chunk i is reused only after its write is done).
        let mut pending: [Option<PendingWrite>; REQUESTS] = Default::default();
        let mut outcome = Ok(());
        for (i, slot) in (1..=pages).step_by(per_request as usize).enumerate() {
            let (sector, chunk) = (slot_sector(slot), i % in_flight as usize);
            let this = &mut bytes[chunk * len..(chunk + 1) * len];
            outcome = match (write, in_flight) {
                (false, _) => disk.read(sector, this),
                (true, 1) => disk.write(sector, this),
                _ => pending[chunk].take().map_or(Ok(()), |previous| disk.finish_write(previous)).and_then(
                    |()| {
                        // SAFETY: this chunk's last write was waited for just
                        // above; it is not touched again before this one is.
                        let started = unsafe { disk.start_write(sector, this) }?;
                        pending[chunk] = Some(started);
                        Ok(())
                    },
                ),
            };
            if outcome.is_err() {
                break;
            }
        }
        // Waited for even after an error, so the buffer is freed only once
        // the device is done with it.
        let drained =
            pending.into_iter().flatten().map(|started| disk.finish_write(started)).fold(Ok(()), Result::and);
        outcome.and(drained).map_err(RawTransferError::Device)
    })
    .and_then(|transfer| transfer);
    frames::free(buffer).expect("the buffer frames are ours");
    result
}

/// Swap as meminfo shows it; `None` without a swap device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapInfo {
    pub total_slots: u64,
    pub free_slots: u64,
    /// Of the slots in use, those the swap cache keeps as copies of
    /// resident pages.
    pub cached_pages: u64,
    pub counters: SwapCounters,
    /// Times the disk was reset because a request got no answer.
    pub device_resets: u64,
    /// The disk stopped answering and would not start again: nothing more
    /// goes to swap, and what is there cannot come back.
    pub out_of_service: bool,
    /// Being switched off ([`swap_off`]): pages come back, none go.
    pub draining: bool,
}

pub fn info() -> Option<SwapInfo> {
    without_interrupts(|| {
        SWAP.lock().as_mut().map(|area| SwapInfo {
            total_slots: area.total_slots(),
            free_slots: area.free_slots(),
            cached_pages: area.cached_pages(),
            counters: area.counters(),
            device_resets: area.device_mut().resets(),
            out_of_service: area.device_mut().out_of_service(),
            draining: area.is_draining(),
        })
    })
}

impl SwapInfo {
    /// Swap can take a page now.
    pub fn takes_pages(&self) -> bool {
        self.free_usable() > 0
    }

    /// Free slots that can take a page: none on a disk out of service or
    /// being switched off.
    pub fn free_usable(&self) -> u64 {
        if self.usable() {
            self.free_slots
        } else {
            0
        }
    }

    /// Slots that count as backing (the commit limit, the pressure page):
    /// none on a disk out of service or being switched off (as Linux
    /// takes a disk's pages off the total when its swapoff begins).
    pub fn usable_total(&self) -> u64 {
        if self.usable() {
            self.total_slots
        } else {
            0
        }
    }

    /// The disk backs memory: in service and not being switched off.
    fn usable(&self) -> bool {
        !self.out_of_service && !self.draining
    }
}

impl fmt::Display for SwapInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |slots: u64| slots * PAGE_SIZE / 1024;
        let c = self.counters;
        write!(
            f,
            "swap: {} KiB total, {} KiB free, {} KiB used ({} KiB cached); {} pages out, {} pages in, {} I/O errors, \
             {} device resets (request timeout {} ms){}\n\
             swap cache: {} copies kept, {} writes saved, {} copies dropped (swap full)",
            kib(self.total_slots),
            kib(self.free_slots),
            kib(self.total_slots - self.free_slots),
            kib(self.cached_pages),
            c.outs,
            c.ins,
            c.errors,
            self.device_resets,
            crate::drivers::virtio_blk::request_timeout_ms(),
            match (self.out_of_service, self.draining) {
                (true, _) => "; the disk is out of service",
                (false, true) => "; being switched off",
                (false, false) => "",
            },
            c.copies_kept,
            c.writes_saved,
            c.copies_dropped
        )
    }
}
