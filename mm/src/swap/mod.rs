//! A swap area: a block device with a [header](header) at page 0 and one
//! page-sized slot per following page, and the [slot map](slots) that says
//! which slots hold data. Writing a page out takes a slot and writes the
//! page there; reading it in reads it back. What a slot holds is named by
//! the page-table entry of the page that was swapped (`PteState::Swapped`);
//! this module does not know about address spaces. The [swap cache](cache)
//! keeps, for a page read back and not written since, the slot that still
//! holds its copy.

pub mod cache;
pub mod header;
pub mod slots;

pub use cache::SwapCache;
pub use header::{HeaderError, SwapHeader};
pub use slots::{SlotError, SlotMap};

use crate::addr::{Pfn, PAGE_SIZE};
use crate::block::{BlockDevice, BlockError, SECTOR_SIZE};
use core::fmt;
use core::ops::Range;

const SECTORS_PER_PAGE: u64 = PAGE_SIZE / SECTOR_SIZE as u64;

/// The first sector of slot `slot` (page `slot` of the disk): the one place
/// that knows where a slot lies.
pub fn slot_sector(slot: u64) -> u64 {
    slot * SECTORS_PER_PAGE
}

/// The runs of consecutive slots in `slots`, in order, as index ranges
/// (`[5, 6, 9, 10, 11, 3]` → `0..2, 2..5, 5..6`): what one request each
/// reads.
pub fn slot_runs(slots: &[u64]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    core::iter::from_fn(move || {
        if start >= slots.len() {
            return None;
        }
        let len = 1 + slots[start..].windows(2).take_while(|w| w[0].checked_add(1) == Some(w[1])).count();
        let run = start..start + len;
        start += len;
        Some(run)
    })
}

/// Why a swap operation failed. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// Every slot is taken.
    Full,
    /// There is no swap device.
    NoDevice,
    Header(HeaderError),
    Slot(SlotError),
    Device(BlockError),
    /// The kernel heap could not hold the slot map.
    NoMemoryForSlotMap,
    /// The kernel heap could not hold the swap cache's table.
    NoMemoryForSwapCache,
    /// A page buffer that is not one page long.
    NotAPage {
        len: usize,
    },
    /// The area is being switched off ([`SwapArea::start_draining`]): it
    /// gives pages back and takes none.
    Draining,
}

impl fmt::Display for SwapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwapError::Full => write!(f, "swap full"),
            SwapError::NoDevice => write!(f, "no swap device"),
            SwapError::Header(e) => write!(f, "{e}"),
            SwapError::Slot(e) => write!(f, "{e}"),
            SwapError::Device(e) => write!(f, "swap device: {e}"),
            SwapError::NoMemoryForSlotMap => write!(f, "no kernel memory for the swap slot map"),
            SwapError::NoMemoryForSwapCache => write!(f, "no kernel memory for the swap cache"),
            SwapError::NotAPage { len } => write!(f, "swap transfer of {len} bytes, not one page"),
            SwapError::Draining => write!(f, "swap is being switched off"),
        }
    }
}

/// Swap traffic since the area was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapCounters {
    /// Pages written out / read in.
    pub outs: u64,
    pub ins: u64,
    pub errors: u64,
    /// Swap-ins whose slot was kept as the page's copy (the swap cache).
    pub copies_kept: u64,
    /// Evictions that found their page's copy still good: no write.
    pub writes_saved: u64,
    /// Copies given up because a write found no free slot.
    pub copies_dropped: u64,
}

/// Slots [`SwapArea::take_run`] took for a write, until
/// [`SwapArea::run_written`].
#[must_use = "a taken run is given back by run_written"]
#[derive(Debug, PartialEq, Eq)]
pub struct TakenRun {
    first: u64,
    pages: u64,
}

impl TakenRun {
    /// The slots the run's pages go to.
    pub fn slots(&self) -> core::ops::Range<u64> {
        self.first..self.first + self.pages
    }

    /// Where the write of the run starts on the device.
    pub fn first_sector(&self) -> u64 {
        slot_sector(self.first)
    }
}

/// See the module documentation.
pub struct SwapArea<D: BlockDevice> {
    device: D,
    slots: SlotMap,
    cache: SwapCache,
    counters: SwapCounters,
    /// Being switched off: no new page, no new copy (`swapoff`).
    draining: bool,
}

fn one_page(len: usize) -> Result<(), SwapError> {
    if len as u64 != PAGE_SIZE {
        return Err(SwapError::NotAPage { len });
    }
    Ok(())
}

impl<D: BlockDevice> SwapArea<D> {
    /// Opens `device` as swap if its first page is a valid header; a device
    /// without one is handed back untouched.
    pub fn open(mut device: D) -> Result<SwapArea<D>, (SwapError, D)> {
        let mut page = [0u8; PAGE_SIZE as usize];
        if let Err(e) = device.read(0, &mut page) {
            return Err((SwapError::Device(e), device));
        }
        let header = match SwapHeader::decode(&page, device.capacity() / SECTORS_PER_PAGE) {
            Ok(header) => header,
            Err(e) => return Err((SwapError::Header(e), device)),
        };
        match SlotMap::new(header.slots) {
            Ok(slots) => {
                let (cache, counters) = (SwapCache::default(), SwapCounters::default());
                Ok(SwapArea { device, slots, cache, counters, draining: false })
            }
            Err(_) => Err((SwapError::NoMemoryForSlotMap, device)),
        }
    }

    pub fn total_slots(&self) -> u64 {
        self.slots.len()
    }

    pub fn free_slots(&self) -> u64 {
        self.slots.free()
    }

    pub fn counters(&self) -> SwapCounters {
        self.counters
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Writes one page to a new slot and returns the slot (its user is the
    /// caller). On failure no slot is taken.
    pub fn write_out(&mut self, page: &[u8]) -> Result<u64, SwapError> {
        one_page(page.len())?;
        self.write_out_run(page)
    }

    /// Writes `pages` (a whole number of pages, at least one) to as many
    /// consecutive new slots, in one request, and returns the first slot
    /// (each has the caller as its user). [`SwapError::Full`] when no run
    /// of that many slots is free; on any failure no slot is taken.
    pub fn write_out_run(&mut self, pages: &[u8]) -> Result<u64, SwapError> {
        let run = self.take_run(pages.len())?;
        let written = self.device.write(run.first_sector(), pages);
        self.run_written(run, written)
    }

    /// The first step of [`Self::write_out_run`] for a caller that writes
    /// the run itself, perhaps while it goes on with other work (the
    /// kernel's write-behind, docs/swap.md): slots for `len` bytes of whole
    /// pages, taken until [`Self::run_written`] says how the write went.
    pub fn take_run(&mut self, len: usize) -> Result<TakenRun, SwapError> {
        let pages = len as u64 / PAGE_SIZE;
        if pages == 0 || !(len as u64).is_multiple_of(PAGE_SIZE) {
            return Err(SwapError::NotAPage { len });
        }
        if self.draining {
            return Err(SwapError::Draining);
        }
        let first = match self.slots.allocate_run(pages) {
            Some(first) => first,
            // Kept copies are a luxury: a write that finds no room frees
            // their slots (their pages are resident) and tries again.
            None if !self.cache.is_empty() => {
                self.drop_copies();
                self.slots.allocate_run(pages).ok_or(SwapError::Full)?
            }
            None => return Err(SwapError::Full),
        };
        Ok(TakenRun { first, pages })
    }

    /// The last step: the run's write ended with `written`. Its first slot
    /// when the pages are on the disk; on failure its slots are free again.
    pub fn run_written(&mut self, run: TakenRun, written: Result<(), BlockError>) -> Result<u64, SwapError> {
        let TakenRun { first, pages } = run;
        if let Err(e) = written {
            for slot in first..first + pages {
                self.slots.release(slot).expect("taken for this run");
            }
            self.counters.errors += 1;
            return Err(SwapError::Device(e));
        }
        self.counters.outs += pages;
        Ok(first)
    }

    /// Reads slot `slot` (in use) into `page`. The slot stays in use.
    pub fn read_in(&mut self, slot: u64, page: &mut [u8]) -> Result<(), SwapError> {
        one_page(page.len())?;
        self.read_run_with(slot, 1, |device, sector| device.read(sector, page))
    }

    /// Reads the `pages` consecutive slots from `first` (each in use)
    /// with `read`, given the device and the first slot's sector: for a
    /// caller that reads straight into its own buffers (the kernel's
    /// swap-in read-ahead reads into frames, scatter-gather). The slots
    /// stay in use.
    pub fn read_run_with(
        &mut self,
        first: u64,
        pages: u64,
        read: impl FnOnce(&mut D, u64) -> Result<(), BlockError>,
    ) -> Result<(), SwapError> {
        self.check_in_use(first, pages)?;
        let result = read(&mut self.device, slot_sector(first));
        self.count_read(pages, result)
    }

    /// The first step of a read its caller starts and waits for itself
    /// (several on their way at once): the `pages` slots from `first` must
    /// each hold a page.
    pub fn check_in_use(&self, first: u64, pages: u64) -> Result<(), SwapError> {
        for slot in first..first.saturating_add(pages) {
            if self.slots.users(slot).map_err(SwapError::Slot)? == 0 {
                return Err(SwapError::Slot(SlotError::NotInUse(slot)));
            }
        }
        Ok(())
    }

    /// The last step: a read of `pages` pages ended with `result`.
    pub fn count_read(&mut self, pages: u64, result: Result<(), BlockError>) -> Result<(), SwapError> {
        if let Err(e) = result {
            self.counters.errors += 1;
            return Err(SwapError::Device(e));
        }
        self.counters.ins += pages;
        Ok(())
    }

    /// The slot map, for the eviction stamps its slots keep.
    pub fn slots_mut(&mut self) -> &mut SlotMap {
        &mut self.slots
    }

    /// Drops one user of `slot`; the slot is free once it has none.
    pub fn release(&mut self, slot: u64) -> Result<(), SwapError> {
        self.slots.release(slot).map(|_| ()).map_err(SwapError::Slot)
    }

    /// Starts the [swap cache](cache) for pages in the frames of `frames`
    /// (until then no copy is kept).
    pub fn enable_cache(&mut self, frames: Range<Pfn>) -> Result<(), SwapError> {
        self.cache = SwapCache::for_frames(frames).map_err(|_| SwapError::NoMemoryForSwapCache)?;
        Ok(())
    }

    /// The page in `slot` was just read into `frame` and mapped, not yet
    /// written. While at most half the slots are in use the slot is kept
    /// as the page's copy (true); otherwise, or when the cache cannot
    /// record it, the slot is released (false).
    pub fn settle_swap_in(&mut self, frame: Pfn, slot: u64) -> Result<bool, SwapError> {
        let used = self.slots.len() - self.slots.free();
        let room = used * 2 <= self.slots.len() && !self.draining;
        if room && self.slots.users(slot) == Ok(1) && self.cache.keep(frame, slot) {
            self.counters.copies_kept += 1;
            return Ok(true);
        }
        self.release(slot).map(|()| false)
    }

    /// The slot holding a good copy of `frame`'s page (its caller has made
    /// sure the page was not written since it came in), which becomes the
    /// caller's: the page is evicted with no write. `None` without one.
    pub fn take_copy(&mut self, frame: Pfn) -> Option<u64> {
        let slot = self.cache.take(frame)?;
        self.counters.writes_saved += 1;
        Some(slot)
    }

    /// `frame` was freed: a copy kept for its page is of no use any more
    /// (the page is gone, or was written and went to a new slot), and its
    /// slot is released.
    pub fn frame_freed(&mut self, frame: Pfn) -> Result<(), SwapError> {
        match self.cache.take(frame) {
            Some(slot) => self.release(slot),
            None => Ok(()),
        }
    }

    /// Gives up every kept copy (their pages stay resident and will be
    /// written if they leave). Returns how many.
    pub fn drop_copies(&mut self) -> u64 {
        let dropped = self.cache.len();
        for slot in self.cache.drain() {
            // Only `settle_swap_in` puts a slot here, with it as its one user.
            let released = self.slots.release(slot);
            debug_assert!(released.is_ok(), "a kept copy's slot {slot} was not in use");
        }
        self.counters.copies_dropped += dropped;
        dropped
    }

    /// Pages whose copy the swap cache keeps.
    pub fn cached_pages(&self) -> u64 {
        self.cache.len()
    }

    /// The first step of switching the area off (Linux's `swapoff`): from
    /// now on it takes no page ([`SwapError::Draining`]) and keeps no copy,
    /// and every kept copy is given up, so that its slots empty as the
    /// caller brings the pages in them back. Reads go on as before.
    pub fn start_draining(&mut self) {
        self.draining = true;
        self.drop_copies();
    }

    /// Switching off failed (memory too short to bring every page back):
    /// the area takes pages again.
    pub fn stop_draining(&mut self) {
        self.draining = false;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RamDisk;
    use alloc::vec::Vec;

    fn area(pages: u64) -> SwapArea<RamDisk> {
        let mut disk = RamDisk::new(pages * SECTORS_PER_PAGE);
        let header = SwapHeader::for_disk(pages * PAGE_SIZE).encode();
        disk.bytes_mut()[..header.len()].copy_from_slice(&header);
        SwapArea::open(disk).map_err(|(e, _)| e).unwrap()
    }

    #[test]
    fn pages_round_trip_through_slots() {
        let mut swap = area(5);
        assert_eq!((swap.total_slots(), swap.free_slots()), (4, 4));
        let pages: Vec<[u8; 4096]> = (0..4u8).map(|i| [i.wrapping_mul(37) ^ 0x5a; 4096]).collect();
        let slots: Vec<u64> = pages.iter().map(|p| swap.write_out(p).unwrap()).collect();
        assert_eq!(swap.write_out(&pages[0]), Err(SwapError::Full));
        for (slot, page) in slots.iter().zip(&pages) {
            let mut back = [0u8; 4096];
            swap.read_in(*slot, &mut back).unwrap();
            assert_eq!(&back, page);
            swap.release(*slot).unwrap();
        }
        assert_eq!(swap.free_slots(), 4);
        assert_eq!(swap.counters(), SwapCounters { outs: 4, ins: 4, errors: 0, ..SwapCounters::default() });
        // The header page was never written over.
        assert!(SwapHeader::decode(&swap.device_mut().bytes()[..4096], 5).is_ok());
    }

    #[test]
    fn a_run_of_pages_goes_out_in_one_request_and_comes_back_page_by_page() {
        let mut swap = area(9);
        let pages: Vec<u8> = (0..3 * 4096).map(|i| (i / 4096 * 41 + i % 251) as u8).collect();
        let writes = swap.device_mut().writes;
        let first = swap.write_out_run(&pages).unwrap();
        assert_eq!((first, swap.device_mut().writes - writes, swap.free_slots()), (1, 1, 5));
        for (i, page) in pages.chunks(4096).enumerate() {
            let mut back = [0u8; 4096];
            swap.read_in(first + i as u64, &mut back).unwrap();
            assert_eq!(&back[..], page);
        }
        assert_eq!(swap.write_out_run(&pages[..100]), Err(SwapError::NotAPage { len: 100 }));
        swap.device_mut().failing = true;
        assert_eq!(swap.write_out_run(&pages), Err(SwapError::Device(BlockError::Io)));
        assert_eq!(swap.free_slots(), 5, "a failed run takes no slot");
        swap.device_mut().failing = false;
        let six = alloc::vec![0u8; 6 * 4096];
        assert_eq!(swap.write_out_run(&six), Err(SwapError::Full));
        assert_eq!(swap.counters().outs, 3);
    }

    #[test]
    fn a_taken_run_holds_its_slots_until_its_write_is_reported() {
        let mut swap = area(9);
        let a = swap.take_run(2 * 4096).unwrap();
        let b = swap.take_run(3 * 4096).unwrap();
        assert_eq!((a.slots(), b.slots(), swap.free_slots()), (1..3, 3..6, 3));
        assert_eq!(swap.take_run(4096 + 1), Err(SwapError::NotAPage { len: 4097 }));
        assert_eq!(swap.take_run(4 * 4096), Err(SwapError::Full));
        assert_eq!(swap.counters().outs, 0, "nothing is out before its write is reported");
        assert_eq!(swap.run_written(b, Err(BlockError::Io)), Err(SwapError::Device(BlockError::Io)));
        assert_eq!(swap.free_slots(), 6, "a failed run gives its slots back");
        let sector = a.first_sector();
        swap.device_mut().write(sector, &[1u8; 2 * 4096]).unwrap();
        assert_eq!(swap.run_written(a, Ok(())), Ok(1));
        let mut back = [0u8; 4096];
        swap.read_in(2, &mut back).unwrap();
        assert_eq!(back, [1u8; 4096]);
        assert_eq!(swap.counters(), SwapCounters { outs: 2, ins: 1, errors: 1, ..SwapCounters::default() });
    }

    #[test]
    fn a_copy_is_kept_while_swap_is_at_most_half_full_and_given_up_when_a_write_finds_no_room() {
        let mut swap = area(9); // 8 slots
        swap.enable_cache(Pfn::new(0)..Pfn::new(16)).unwrap();
        let slots: Vec<u64> = (0..5u8).map(|i| swap.write_out(&[i; 4096]).unwrap()).collect();
        // 5 of 8 in use: more than half, the slot goes.
        assert_eq!(swap.settle_swap_in(Pfn::new(1), slots[0]), Ok(false));
        assert_eq!(swap.free_slots(), 4);
        // 4 of 8: kept, and still in use.
        assert_eq!(swap.settle_swap_in(Pfn::new(2), slots[1]), Ok(true));
        assert_eq!((swap.free_slots(), swap.cached_pages()), (4, 1));
        assert_eq!(swap.take_copy(Pfn::new(2)), Some(slots[1]));
        assert_eq!((swap.take_copy(Pfn::new(2)), swap.free_slots()), (None, 4), "taken: the caller's now");
        assert_eq!(swap.settle_swap_in(Pfn::new(3), slots[2]), Ok(true));
        swap.frame_freed(Pfn::new(3)).unwrap();
        assert_eq!((swap.free_slots(), swap.cached_pages()), (5, 0), "a freed frame's copy is released");
        swap.frame_freed(Pfn::new(3)).unwrap();
        assert_eq!(swap.free_slots(), 5, "once");
        // Three copies kept, then a run of six needs their slots.
        for (frame, &slot) in [slots[1], slots[3], slots[4]].iter().enumerate() {
            assert_eq!(swap.settle_swap_in(Pfn::new(frame as u64 + 8), slot), Ok(true));
        }
        let six = alloc::vec![7u8; 6 * 4096];
        assert!(swap.write_out_run(&six).is_ok(), "the copies' slots were given up for it");
        assert_eq!((swap.cached_pages(), swap.free_slots()), (0, 2));
        assert_eq!(swap.take_copy(Pfn::new(8)), None);
        let c = swap.counters();
        assert_eq!((c.copies_kept, c.writes_saved, c.copies_dropped), (5, 1, 3));
    }

    #[test]
    fn slot_runs_split_where_the_next_slot_does_not_follow() {
        let runs = |slots: &[u64]| slot_runs(slots).collect::<Vec<_>>();
        assert_eq!(runs(&[5, 6, 9, 10, 11, 3]), [0..2, 2..5, 5..6]);
        assert_eq!(runs(&[7]), alloc::vec![0..1]);
        assert_eq!(runs(&[]), Vec::<Range<usize>>::new());
        assert_eq!(runs(&[4, 3, 2]), [0..1, 1..2, 2..3], "descending is not a run");
        assert_eq!(runs(&[u64::MAX - 1, u64::MAX, 0]), [0..2, 2..3], "no overflow");
    }

    #[test]
    fn a_draining_area_reads_but_takes_no_page_and_keeps_no_copy_until_it_stops() {
        let mut swap = area(9); // 8 slots
        swap.enable_cache(Pfn::new(0)..Pfn::new(16)).unwrap();
        let a = swap.write_out(&[1; 4096]).unwrap();
        let b = swap.write_out(&[2; 4096]).unwrap();
        assert_eq!(swap.settle_swap_in(Pfn::new(1), a), Ok(true), "a copy while swap is on");
        swap.start_draining();
        assert!(swap.is_draining());
        assert_eq!((swap.cached_pages(), swap.free_slots()), (0, 7), "the copy went, its slot with it");
        assert_eq!(swap.write_out(&[3; 4096]), Err(SwapError::Draining));
        assert_eq!(swap.take_run(2 * 4096), Err(SwapError::Draining));
        let mut back = [0u8; 4096];
        swap.read_in(b, &mut back).unwrap();
        assert_eq!(back, [2; 4096], "pages still come back");
        assert_eq!(swap.settle_swap_in(Pfn::new(2), b), Ok(false), "and give their slot back");
        assert_eq!(swap.free_slots(), 8);
        swap.stop_draining();
        assert!(swap.write_out(&[3; 4096]).is_ok(), "a failed switch-off leaves the area as it was");
    }

    #[test]
    fn without_a_cache_every_swap_in_gives_its_slot_back() {
        let mut swap = area(9);
        let slot = swap.write_out(&[3; 4096]).unwrap();
        assert_eq!(swap.settle_swap_in(Pfn::new(1), slot), Ok(false));
        assert_eq!((swap.free_slots(), swap.take_copy(Pfn::new(1))), (8, None));
        assert_eq!(swap.settle_swap_in(Pfn::new(1), slot), Err(SwapError::Slot(SlotError::NotInUse(slot))));
    }

    #[test]
    fn a_disk_without_a_header_is_handed_back_untouched() {
        let disk = RamDisk::new(64);
        let (error, disk) = SwapArea::open(disk).err().unwrap();
        assert_eq!(error, SwapError::Header(HeaderError::NotSwap));
        assert_eq!(disk.writes, 0);
    }

    #[test]
    fn a_failed_write_takes_no_slot_and_bad_slots_are_refused() {
        let mut swap = area(3);
        swap.device_mut().failing = true;
        assert_eq!(swap.write_out(&[1; 4096]), Err(SwapError::Device(BlockError::Io)));
        assert_eq!(swap.free_slots(), 2);
        swap.device_mut().failing = false;
        let mut page = [0; 4096];
        assert_eq!(swap.read_in(1, &mut page), Err(SwapError::Slot(SlotError::NotInUse(1))));
        assert_eq!(swap.read_in(9, &mut page), Err(SwapError::Slot(SlotError::OutOfRange(9))));
        assert_eq!(swap.write_out(&[0; 100]), Err(SwapError::NotAPage { len: 100 }));
        assert_eq!(swap.release(1), Err(SwapError::Slot(SlotError::NotInUse(1))));
    }
}
