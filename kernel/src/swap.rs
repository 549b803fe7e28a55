//! The swap device on the real machine: the first virtio-blk disk whose
//! first page is a Pagekeeper swap header (`mm::swap::header`, written on
//! the host by `pagekeeper-boot --swap`). A disk without one is never
//! written. The slot map and the page I/O are `mm::swap::SwapArea`'s; this
//! module holds the one area behind a lock and moves frames through it.
//!
//! Lock order: the address-space registry, then this, then the frame
//! allocator. Interrupts are off while the lock is held (a fault path
//! takes it).

use crate::drivers::virtio_blk::VirtioDisk;
use crate::memory::frames;
use crate::memory::phys_to_virt;
use crate::{info, warn};
use alloc::vec::Vec;
use core::fmt;
use mm::addr::{Pfn, PAGE_SIZE};
use mm::block::{BlockDevice, BlockError};
use mm::frame::Owner;
use mm::swap::{slot_sector, SwapArea, SwapCounters, SwapError};
use spin::{Mutex, Once};
use x86_64::instructions::interrupts::without_interrupts;

static SWAP: Mutex<Option<SwapArea<VirtioDisk>>> = Mutex::new(None);

/// Pages reclaim writes out in one request (see [`write_out_batch`]).
pub const BATCH_PAGES: usize = 8;

/// Where a batch is gathered for its one request: BATCH_PAGES contiguous
/// frames, taken once when swap opens (reclaim runs when frames are short,
/// the worst time to look for eight in a row) and kept for good.
static BATCH_BUFFER: Once<Pfn> = Once::new();

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
                Ok(area) => {
                    let slots = area.total_slots();
                    info!("swap on disk {index}: {} MiB ({slots} slots)", (slots * PAGE_SIZE) >> 20);
                    opened = Some(area);
                }
                Err((e, _disk)) => warn!("disk {index}: not used as swap: {e}"),
            }
        }
    }
    if opened.is_some() {
        match frames::allocate(BATCH_PAGES.trailing_zeros() as u8, Owner::Kernel) {
            Ok(block) => _ = BATCH_BUFFER.call_once(|| block.into_raw().0),
            Err(e) => warn!("swap: no batch buffer ({e:?}), pages go out one per request"),
        }
    }
    without_interrupts(|| *SWAP.lock() = opened);
}

/// The swap area while it is switched off ([`swap_off`]).
static OFF: Mutex<Option<SwapArea<VirtioDisk>>> = Mutex::new(None);

/// Stops using the swap disk (like `swapoff`), if no page is in it (this
/// simple one does not read pages back in); until [`swap_on`], the kernel
/// runs as with no swap device. Returns the slots in use when refused.
pub fn swap_off() -> Result<(), u64> {
    without_interrupts(|| {
        let mut swap = SWAP.lock();
        if let Some(in_use) = swap.as_ref().map(|a| a.total_slots() - a.free_slots()).filter(|&n| n > 0) {
            return Err(in_use);
        }
        if let Some(area) = swap.take() {
            *OFF.lock() = Some(area);
        }
        Ok(())
    })
}

/// Uses the swap disk again after [`swap_off`]; false if it was not off.
pub fn swap_on() -> bool {
    without_interrupts(|| match OFF.lock().take() {
        Some(area) => {
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
    // SAFETY: `frame` is a process page the caller (the VMM, holding the
    // registry lock) owns; it is mapped in the physical window and nothing
    // writes it during the copy (one CPU, the process is not running).
    with(|area| area.write_out(unsafe { &*page(frame) }))
}

/// Writes the pages in `frames` (at most [`BATCH_PAGES`]) to swap, each
/// slot into `slots`: copied side by side into the batch buffer and
/// written in one request to consecutive slots when such a run is free
/// (per page, one request costs several times the copy: docs/swap.md),
/// else one request per page. Returns how many pages went, in order, and
/// the error that stopped the rest; slots of pages that went are the
/// caller's.
pub fn write_out_batch(frames: &[Pfn], slots: &mut [u64]) -> (usize, Option<SwapError>) {
    assert!(frames.len() <= BATCH_PAGES && slots.len() >= frames.len(), "a batch fits the buffer");
    if let (Some(&buffer), 2..) = (BATCH_BUFFER.get(), frames.len()) {
        let len = frames.len() * PAGE_SIZE as usize;
        // SAFETY: the batch buffer is BATCH_PAGES contiguous frames that
        // only this function uses, under the swap lock's caller (reclaim
        // holds the registry lock; one CPU); mapped in the physical window.
        let bytes = unsafe { core::slice::from_raw_parts_mut(page(buffer).cast::<u8>(), len) };
        for (chunk, &frame) in bytes.chunks_exact_mut(PAGE_SIZE as usize).zip(frames) {
            // SAFETY: as in write_out: a process page the caller owns.
            chunk.copy_from_slice(unsafe { &*page(frame) });
        }
        match with(|area| area.write_out_run(bytes)) {
            Ok(first) => {
                for (i, slot) in slots[..frames.len()].iter_mut().enumerate() {
                    *slot = first + i as u64;
                }
                return (frames.len(), None);
            }
            // No run free: the pages may still fit one by one.
            Err(SwapError::Full) => {}
            Err(e) => return (0, Some(e)),
        }
    }
    for (i, &frame) in frames.iter().enumerate() {
        match write_out(frame) {
            Ok(slot) => slots[i] = slot,
            Err(e) => return (i, Some(e)),
        }
    }
    (frames.len(), None)
}

/// Reads `slot` into `frame` (a new frame nothing else uses yet).
pub fn read_in(slot: u64, frame: Pfn) -> Result<(), SwapError> {
    // SAFETY: `frame` was just allocated for this page and is not mapped
    // anywhere but the physical window.
    with(|area| area.read_in(slot, unsafe { &mut *page(frame) }))
}

/// The page that held `slot` is gone. A slot the map does not know as in
/// use means the VMM's books and the slot map disagree: a kernel bug,
/// reported, never acted on.
pub fn release(slot: u64) {
    if let Err(e) = with(|area| area.release(slot)) {
        warn!("swap: releasing slot {slot}: {e} (kernel bug)");
    }
}

/// Why [`raw_pages`] did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawTransferError {
    NoSwap,
    /// No frame for the page buffer.
    NoBuffer,
    /// Some slot holds a swapped page (or the disk has fewer slots).
    SlotsInUse,
    /// Not 1, 2, 4 or 8 pages per request, or not a whole number of requests.
    BadRequestSize,
    Device(BlockError),
}

impl fmt::Display for RawTransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawTransferError::NoSwap => write!(f, "no swap device"),
            RawTransferError::NoBuffer => write!(f, "no frame for the page buffer"),
            RawTransferError::SlotsInUse => write!(f, "swap slots in use (or too few)"),
            RawTransferError::BadRequestSize => write!(f, "request size not 1, 2, 4 or 8 pages"),
            RawTransferError::Device(e) => write!(f, "swap device: {e}"),
        }
    }
}

/// For `make bench`: moves `pages` pages straight between kernel frames
/// and the disk, `per_request` pages (1, 2, 4 or 8) per request, to slots
/// 1..=pages. Refused unless every slot is free, so no swapped page can be
/// overwritten.
pub fn raw_pages(pages: u64, per_request: u64, write: bool) -> Result<(), RawTransferError> {
    if !matches!(per_request, 1 | 2 | 4 | 8) || !pages.is_multiple_of(per_request) {
        return Err(RawTransferError::BadRequestSize);
    }
    let order = per_request.trailing_zeros() as u8;
    let buffer = frames::allocate_zeroed(order, Owner::Kernel).map_err(|_| RawTransferError::NoBuffer)?;
    let result = without_interrupts(|| {
        let mut swap = SWAP.lock();
        let area = swap.as_mut().ok_or(RawTransferError::NoSwap)?;
        if area.free_slots() != area.total_slots() || pages > area.total_slots() {
            return Err(RawTransferError::SlotsInUse);
        }
        let len = (per_request * PAGE_SIZE) as usize;
        // SAFETY: `buffer` was just allocated for this transfer: 2^order
        // frames, contiguous in the physical window.
        let bytes = unsafe { core::slice::from_raw_parts_mut(page(buffer.start()).cast::<u8>(), len) };
        for slot in (1..=pages).step_by(per_request as usize) {
            let (disk, sector) = (area.device_mut(), slot_sector(slot));
            let done = if write { disk.write(sector, bytes) } else { disk.read(sector, bytes) };
            done.map_err(RawTransferError::Device)?;
        }
        Ok(())
    });
    frames::free(buffer).expect("the buffer frames are ours");
    result
}

/// Swap as meminfo shows it; `None` without a swap device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapInfo {
    pub total_slots: u64,
    pub free_slots: u64,
    pub counters: SwapCounters,
}

pub fn info() -> Option<SwapInfo> {
    without_interrupts(|| {
        SWAP.lock().as_ref().map(|area| SwapInfo {
            total_slots: area.total_slots(),
            free_slots: area.free_slots(),
            counters: area.counters(),
        })
    })
}

impl fmt::Display for SwapInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |slots: u64| slots * PAGE_SIZE / 1024;
        write!(
            f,
            "swap: {} KiB total, {} KiB free, {} KiB used; {} pages out, {} pages in, {} I/O errors",
            kib(self.total_slots),
            kib(self.free_slots),
            kib(self.total_slots - self.free_slots),
            self.counters.outs,
            self.counters.ins,
            self.counters.errors
        )
    }
}
