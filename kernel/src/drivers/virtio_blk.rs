//! virtio-blk disks through `virtio-drivers` (pinned 0.13.0; docs/swap.md
//! says why the crate earns its place), as `mm::block::BlockDevice`s.
//!
//! What the crate gives us: PCI transport (feature negotiation, config
//! space, notification) and the split virtqueue. What the crate needs from
//! us is [`KernelHal`]: DMA memory (physically contiguous frames from the
//! frame allocator, owned `Dma`), the BAR mapped uncached
//! (`kernel_pages::map_mmio`), and `share`: the device's address of a
//! buffer.
//!
//! The block requests themselves (virtio 1.x section 5.2.6: a header, the
//! data buffers, a status byte) are built here rather than through the
//! crate's `VirtIOBlk`, for two reasons. A request may carry several data
//! buffers, so swap-out writes its pages straight from their frames in one
//! request (scatter-gather, no copy into a bounce buffer); the crate's
//! block API takes one buffer. And no request allocates: the crate's
//! `VirtIOBlk` negotiates indirect descriptors, and its queue then takes
//! each request's descriptor list from the kernel heap (`Box`, unwrapped:
//! a panic when the heap cannot grow, which is when reclaim runs), in
//! memory that may cross a page boundary into a frame that is not the
//! next one. Here every request uses direct descriptors of a queue sized
//! for [`REQUESTS`] requests of [`MAX_SEGMENTS`] buffers, its header and
//! status byte in a DMA page of the disk's own, its data in frames.
//!
//! I/O is polled: a request is queued, the device notified, and the driver
//! spins on the used ring until the request comes back. A write may also
//! be left running ([`VirtioDisk::start_write`],
//! [`VirtioDisk::start_write_frames`]) and waited for later
//! ([`VirtioDisk::finish_write`]), so swap-out prepares its next batch
//! while the device writes the last one; requests then come back in the
//! order the device finishes them, and waiting for one completes whichever
//! is at the head of the used ring. With interrupt-driven completion the
//! CPU would run another process while the disk works, and the fault path
//! would have to sleep: a process that blocks in the kernel, which this
//! kernel does not have yet.
//!
//! A polled wait must not spin for ever on a device that stopped answering
//! (the whole kernel waits with it: interrupts are off under the swap
//! lock). A request that has not come back after [`request_timeout_ms`]
//! (10 s; Linux gives a block request 30) fails with
//! `BlockError::TimedOut`, and so does every other request on its way: the
//! device is reset (device status 0, after which it may not touch a queue
//! or a buffer it was given, so the callers' frames are theirs again) and
//! started again with a fresh queue, as at probe. The disk's contents are
//! the device's business and stay. Every request the reset failed is sent
//! once more when its caller waits for it (a read, a single write, each
//! of swap-out's batches written behind), as Linux's block layer requeues
//! them; a second timeout stands. If the device cannot be started again, or
//! has timed out three times with nothing answered in between, it is out
//! of service (`BlockError::OutOfService` from then on).

use super::pci::{self, PortCam};
use crate::arch::timer::Stopwatch;
use crate::memory::{frames, kernel_pages, phys_to_virt};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU64, Ordering};
use mm::addr::{Pfn, PAGE_SIZE as FRAME_BYTES};
use mm::block::{check_transfer, BlockDevice, BlockError};
use mm::frame::{FrameBlock, Owner};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::bus::{Command, PciRoot};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};
use x86_64::VirtAddr;

/// The kernel's side of `virtio_drivers::Hal`.
pub struct KernelHal;

fn order_of(pages: usize) -> u8 {
    pages.next_power_of_two().trailing_zeros() as u8
}

// SAFETY: dma_alloc returns zeroed, physically contiguous frames that
// nothing else uses until dma_dealloc (a buddy block owned `Dma`);
// mmio_phys_to_virt maps the range itself (uncached) at addresses nothing
// else uses; share returns the device address of the very bytes given.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // Called when a queue is made: at boot, and when a disk is started
        // again after a timeout (`VirtioDisk::restart`), when memory may be
        // short. The crate takes physical address 0 for "no memory" and
        // fails the queue's creation cleanly (`Dma::new`: DmaError).
        let none = (0, NonNull::dangling());
        let Ok(mut block) = frames::allocate_zeroed(order_of(pages), Owner::Dma) else { return none };
        if block.start().addr() == 0 {
            // Frame 0 would read as that failure: it stays the DMA owner's,
            // unused, and another block is taken.
            let _frame_zero = block.into_raw();
            let Ok(next) = frames::allocate_zeroed(order_of(pages), Owner::Dma) else { return none };
            block = next;
        }
        let (pfn, _, _) = block.into_raw();
        let virt = NonNull::new(phys_to_virt(pfn).as_mut_ptr::<u8>()).expect("window is not null");
        (pfn.addr(), virt)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        let block = FrameBlock::from_raw(Pfn::containing(paddr), order_of(pages), Owner::Dma);
        match frames::free(block) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let va = kernel_pages::map_mmio(paddr, size as u64).expect("mapping a virtio BAR at boot");
        NonNull::new(va.as_mut_ptr::<u8>()).expect("MMIO slot is not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let start = VirtAddr::from_ptr(buffer.as_ptr() as *const u8);
        let len = buffer.len() as u64;
        // Frames and DMA pages are reached through the physical window,
        // which maps all of RAM in order: no walk needed.
        if let Some(phys) = window_to_phys(start, len) {
            return phys;
        }
        let first = kernel_pages::translate(start).expect("a shared buffer is mapped");
        let last = kernel_pages::translate(start + (len - 1)).expect("a shared buffer is mapped");
        // The device sees one physical range: the buffer must not cross into
        // a frame that is not the next one. Our buffers are frames of the
        // physical window and headers in a DMA page, so this holds.
        assert_eq!(last - first, len - 1, "DMA buffer is not physically contiguous (kernel bug)");
        first.as_u64()
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The physical address of `len` bytes at `start` if they lie in the
/// physical-memory window.
fn window_to_phys(start: VirtAddr, len: u64) -> Option<PhysAddr> {
    // The end of RAM the frame allocator manages, read once (share runs
    // for every buffer of every request; the span never changes).
    static RAM_END: spin::Once<u64> = spin::Once::new();
    let ram_end = *RAM_END.call_once(|| frames::span().end.addr());
    let window = crate::memory::boot_memory().physical_memory_offset;
    let end = start.as_u64().checked_add(len)?;
    (start >= window && end - window.as_u64() <= ram_end).then(|| start - window)
}

/// The request queue (the disk's only one).
const QUEUE: u16 = 0;
/// Requests one disk can have on the way at once: a write running behind
/// its caller (swap-out's write-behind) and the next one started, with
/// room to spare. Each has its own header and status byte.
pub const REQUESTS: usize = 4;
/// Data buffers one request may carry (swap-out's batch of pages).
pub const MAX_SEGMENTS: usize = 8;
/// Descriptors: every request in flight with all its buffers, header and
/// status included, so a request never waits for descriptors (a power of
/// two, as the split ring needs).
const QUEUE_SIZE: usize = (REQUESTS * (MAX_SEGMENTS + 2)).next_power_of_two();

bitflags::bitflags! {
    /// The virtio-blk feature bits this driver accepts (virtio 1.x 5.2.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        /// `seg_max` in the config space bounds the buffers per request.
        const SEG_MAX = 1 << 2;
        const RO = 1 << 5;
        /// The device may cache writes (VIRTIO_BLK_F_FLUSH, once "WCE").
        /// Without it QEMU writes through to the host file on every
        /// request (about 6x slower here). Swap needs no flush requests:
        /// its contents mean nothing after a crash, as on Linux. (The
        /// file disk is read-only.)
        const FLUSH = 1 << 9;
        /// The modern interface (must be accepted when offered).
        const VERSION_1 = 1 << 32;
    }
}

/// Config-space offsets (virtio 1.x 5.2.4).
const CONFIG_CAPACITY: usize = 0;
const CONFIG_SEG_MAX: usize = 12;

/// Request types and the success status (virtio 1.x 5.2.6).
const REQUEST_IN: u32 = 0;
const REQUEST_OUT: u32 = 1;
const STATUS_OK: u8 = 0;
/// Written before a request starts; the device overwrites it.
const STATUS_PENDING: u8 = 0xff;

/// A request's header and status byte, in the disk's DMA page.
#[repr(C)]
struct RequestSlot {
    kind: u32,
    reserved: u32,
    sector: u64,
    status: u8,
}

/// The device-readable header: the first 16 bytes of a slot.
const HEADER_BYTES: usize = 16;

/// A request the device may still be working on: everything its
/// completion needs (the crate's `complete_*` calls take the buffers
/// again), and its status once the used ring gave it back.
struct InFlight {
    token: u16,
    segments: Segments,
    write: bool,
    done: Option<Result<(), BlockError>>,
    /// Fault injection ([`ignore_completions`]): the device's answer to
    /// this request is taken off the ring and dropped, as if it never came.
    answer_ignored: bool,
}

/// How long a request may take before the device is reset ([`request_timeout_ms`]).
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(10_000);
/// Requests whose answer is still to be ignored ([`ignore_completions`]).
static IGNORED_COMPLETIONS: AtomicU64 = AtomicU64::new(0);

/// Milliseconds a request may take before its device is reset.
pub fn request_timeout_ms() -> u64 {
    TIMEOUT_MS.load(Ordering::Relaxed)
}

/// Sets [`request_timeout_ms`] (at least 1); returns what it was. For tests,
/// which do not want to wait 10 s for a timeout they caused.
pub fn set_request_timeout_ms(ms: u64) -> u64 {
    TIMEOUT_MS.swap(ms.max(1), Ordering::Relaxed)
}

/// Fault injection, for tests: the device's answers to the next `count`
/// requests started are dropped unseen, as from a device that stopped
/// answering, so those requests time out and the device is reset.
pub fn ignore_completions(count: u64) {
    IGNORED_COMPLETIONS.store(count, Ordering::Relaxed);
}

/// A request's data buffers, as the caller gave them.
#[derive(Clone, Copy)]
struct Segments {
    buffers: [*mut [u8]; MAX_SEGMENTS],
    len: usize,
}

impl Segments {
    fn new(buffers: impl IntoIterator<Item = *mut [u8]>) -> Result<Segments, BlockError> {
        let mut segments = Segments {
            buffers: [core::ptr::slice_from_raw_parts_mut(NonNull::dangling().as_ptr(), 0); MAX_SEGMENTS],
            len: 0,
        };
        for buffer in buffers {
            if segments.len == MAX_SEGMENTS {
                return Err(BlockError::TooManySegments { max: MAX_SEGMENTS });
            }
            segments.buffers[segments.len] = buffer;
            segments.len += 1;
        }
        Ok(segments)
    }

    /// Whole frames, through the physical window, a run of neighbouring
    /// frames as one buffer ([`mm::block::frame_runs`]).
    fn of_frames(frames: &[Pfn]) -> Result<Segments, BlockError> {
        let (runs, len) = mm::block::frame_runs::<MAX_SEGMENTS>(frames)?;
        Segments::new(runs[..len].iter().map(|&(first, count)| {
            let start = phys_to_virt(first).as_mut_ptr::<u8>();
            core::ptr::slice_from_raw_parts_mut(start, (count * FRAME_BYTES) as usize)
        }))
    }

    fn bytes(&self) -> usize {
        self.buffers[..self.len].iter().map(|b| b.len()).sum()
    }
}

/// A write started by [`VirtioDisk::start_write`].
#[must_use = "a started write must be finished"]
#[derive(Debug)]
pub struct PendingWrite(usize);

/// A read started by [`VirtioDisk::start_read_frames`].
#[must_use = "a started read must be finished"]
#[derive(Debug)]
pub struct PendingRead(usize);

/// One virtio-blk disk.
pub struct VirtioDisk {
    transport: PciTransport,
    queue: VirtQueue<KernelHal, QUEUE_SIZE>,
    /// The page holding the request headers and status bytes.
    request: Pfn,
    in_flight: [Option<InFlight>; REQUESTS],
    capacity: u64,
    read_only: bool,
    /// It stopped answering and could not be started again.
    out_of_service: bool,
    /// Resets after a timeout.
    resets: u64,
    /// Timeouts since the device last answered a request.
    timeouts_in_a_row: u32,
}

/// Why a disk was not started again after a timeout. (No heap: the
/// report is made when memory may be short.)
enum NotRestarted {
    ResetUnfinished,
    TimeoutsInARow(u32),
    /// A fresh queue could not be made (its DMA memory, most likely).
    Queue(virtio_drivers::Error),
}

impl core::fmt::Display for NotRestarted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NotRestarted::ResetUnfinished => write!(f, "it did not finish its reset"),
            NotRestarted::TimeoutsInARow(n) => write!(f, "{n} timeouts in a row"),
            NotRestarted::Queue(e) => write!(f, "no queue: {e:?}"),
        }
    }
}

/// A disk that times out this many times with no request answered in
/// between is put out of service: each timeout holds the whole kernel for
/// the timeout's length, and a disk that keeps not answering would
/// otherwise do so on every sweep of reclaim.
const TIMEOUTS_BEFORE_OUT_OF_SERVICE: u32 = 3;

// SAFETY: the disk is used under the lock of whoever owns it (the swap
// area); its raw pointers point at DMA memory and registers it owns, and
// at buffers its callers keep alive while their requests are in flight.
unsafe impl Send for VirtioDisk {}

impl VirtioDisk {
    /// Negotiates features, reads the capacity, sets up the request queue
    /// and a DMA page for request headers. A device that cannot take
    /// [`MAX_SEGMENTS`] buffers per request is refused (every virtio-blk
    /// device QEMU offers takes its queue size minus two).
    fn new(mut transport: PciTransport) -> Result<VirtioDisk, alloc::string::String> {
        let features = transport.begin_init(Features::all());
        let config = |offset| transport.read_config_space::<u32>(offset).map_err(|e| alloc::format!("{e:?}"));
        let capacity = u64::from(config(CONFIG_CAPACITY)?) | u64::from(config(CONFIG_CAPACITY + 4)?) << 32;
        if features.contains(Features::SEG_MAX) && (config(CONFIG_SEG_MAX)? as usize) < MAX_SEGMENTS + 2 {
            return Err(alloc::format!("takes fewer than {} buffers per request", MAX_SEGMENTS + 2));
        }
        // The page first: once the queue exists, the device points at its
        // memory, and only our Drop (queue_unset) may let it go.
        let page = frames::allocate_zeroed(0, Owner::Dma).map_err(|_| "no DMA page for request headers")?;
        // Direct descriptors only (no indirect lists on the heap), no event index.
        let queue = match VirtQueue::new(&mut transport, QUEUE, false, false) {
            Ok(queue) => queue,
            Err(e) => {
                frames::free(page).expect("the page was just allocated");
                return Err(alloc::format!("{e:?}"));
            }
        };
        transport.finish_init();
        let (request, _, _) = page.into_raw();
        let read_only = features.contains(Features::RO);
        let in_flight = Default::default();
        Ok(VirtioDisk {
            transport,
            queue,
            request,
            in_flight,
            capacity,
            read_only,
            out_of_service: false,
            resets: 0,
            timeouts_in_a_row: 0,
        })
    }

    /// Resets the device after request `late` got no answer in `ms`:
    /// every request on its way fails, and the device is started again
    /// with a fresh queue (or put out of service if it will not start).
    // Cold and kept out of `wait`, so that the polling loop stays small.
    #[cold]
    #[inline(never)]
    fn reset_after_timeout(&mut self, late: usize, ms: u64) {
        self.resets += 1;
        self.timeouts_in_a_row += 1;
        // Status 0 resets the device; once it reads back 0 the device
        // touches no queue and no buffer it was given (virtio 1.x 2.1.2),
        // so every request's buffers are its caller's again.
        self.transport.set_status(DeviceStatus::empty());
        let mut watch = Stopwatch::start();
        while !self.transport.get_status().is_empty() && watch.elapsed_ms() < ms {
            core::hint::spin_loop();
        }
        // A device that does not finish its reset could still use the
        // requests' frames, which nothing but an IOMMU could prevent; it
        // goes out of service, and its requests fail like the others.
        let reset = self.transport.get_status().is_empty();
        let mut failed = 0;
        for request in self.in_flight.iter_mut().flatten().filter(|r| r.done.is_none()) {
            request.done = Some(Err(BlockError::TimedOut { ms }));
            failed += 1;
        }
        let sector = self.slot_sector(late);
        let restarted = if !reset {
            Err(NotRestarted::ResetUnfinished)
        } else if self.timeouts_in_a_row >= TIMEOUTS_BEFORE_OUT_OF_SERVICE {
            Err(NotRestarted::TimeoutsInARow(self.timeouts_in_a_row))
        } else {
            self.restart().map_err(NotRestarted::Queue)
        };
        match restarted {
            Ok(()) => crate::warn!(
                "virtio-blk: no answer in {ms} ms (request at sector {sector}); device reset and started again, \
                 {failed} request(s) failed"
            ),
            Err(e) => {
                self.out_of_service = true;
                crate::warn!(
                    "virtio-blk: no answer in {ms} ms (request at sector {sector}); device reset, {failed} request(s) \
                     failed; not started again ({e}): out of service"
                );
            }
        }
    }

    /// The sector request slot `index` was sent to (for the report).
    fn slot_sector(&mut self, index: usize) -> u64 {
        // SAFETY: the slot is in the disk's request page; the device wrote
        // only its status byte, and is reset now.
        unsafe { core::ptr::addr_of!((*self.slot(index)).sector).read_volatile() }
    }

    /// Starts the device again after a reset, as at probe: the same
    /// feature negotiation and a fresh queue (the old one's memory goes
    /// back; the reset device no longer reads it).
    fn restart(&mut self) -> Result<(), virtio_drivers::Error> {
        self.transport.begin_init(Features::all());
        self.queue = VirtQueue::new(&mut self.transport, QUEUE, false, false)?;
        self.transport.finish_init();
        Ok(())
    }

    fn slot(&mut self, index: usize) -> *mut RequestSlot {
        // SAFETY: `request` is a DMA page this disk owns, mapped in the
        // physical window, big enough and aligned for REQUESTS slots.
        unsafe { phys_to_virt(self.request).as_mut_ptr::<RequestSlot>().add(index) }
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Times this disk was reset because a request got no answer.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// The disk stopped answering and could not be started again.
    pub fn out_of_service(&self) -> bool {
        self.out_of_service
    }

    /// Queues a read or write of `segments` (in order, as one transfer) at
    /// `sector` in a free request slot and notifies the device; returns
    /// the slot.
    ///
    /// # Safety
    ///
    /// Every buffer of `segments` stays valid, and untouched by the CPU,
    /// until [`Self::wait`] of the returned slot returns.
    unsafe fn start(&mut self, sector: u64, segments: Segments, write: bool) -> Result<usize, BlockError> {
        check_transfer(sector, segments.bytes(), self.capacity)?;
        if segments.buffers[..segments.len].iter().any(|b| b.is_empty()) {
            return Err(BlockError::BadLength { len: 0 });
        }
        if write && self.read_only {
            return Err(BlockError::ReadOnly);
        }
        if self.out_of_service {
            return Err(BlockError::OutOfService);
        }
        let index = self.in_flight.iter().position(Option::is_none).ok_or(BlockError::Busy)?;
        let slot = self.slot(index);
        // SAFETY: the slot is this request's alone until it is completed.
        unsafe {
            let kind = if write { REQUEST_OUT } else { REQUEST_IN };
            slot.write(RequestSlot { kind, reserved: 0, sector, status: STATUS_PENDING });
        }
        let queue = &mut self.queue;
        // SAFETY: the header and status byte are the slot's; the data
        // buffers are the caller's promise; all stay put until completed.
        let token =
            unsafe { with_buffers(slot, &segments, write, |inputs, outputs| queue.add(inputs, outputs)) }
                .map_err(io_error)?;
        // A full barrier between publishing the request (the avail ring's
        // index, a store) and reading whether the device wants to be told
        // (the used ring's flags, a load): x86 lets a load pass an earlier
        // store, so without it this can read the "don't notify" the device
        // set while still working through the ring, after it looked at the
        // index for the last time: the request is never seen, and a polled
        // wait spins forever (found by the fuzz boot: a swap write that never
        // came back, interrupts off). Linux's virtqueue_kick_prepare has
        // this virtio_mb(); virtio-drivers 0.13's `add` (a release store)
        // and `should_notify` (an acquire load) do not order the two.
        fence(Ordering::SeqCst);
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
        let take = |n: u64| n.checked_sub(1);
        let answer_ignored =
            IGNORED_COMPLETIONS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, take).is_ok();
        self.in_flight[index] = Some(InFlight { token, segments, write, done: None, answer_ignored });
        Ok(index)
    }

    /// Waits until the request in slot `index` has come back; its status.
    /// Requests come back in the order the device finishes them, so the
    /// wait completes whichever is at the head of the used ring.
    /// After [`request_timeout_ms`] without its answer the device is
    /// reset and the request fails (`TimedOut`), with every other on its way.
    fn wait(&mut self, index: usize) -> Result<(), BlockError> {
        let timeout = request_timeout_ms();
        // Started at the first look at the clock: most waits end before it,
        // and reading the PIT costs port accesses.
        let mut watch: Option<Stopwatch> = None;
        let mut polls = 0u32;
        loop {
            let request = self.in_flight[index].as_mut().expect("a started request");
            if let Some(done) = request.done.take() {
                self.in_flight[index] = None;
                return done;
            }
            match self.queue.peek_used() {
                Some(token) => self.complete(token),
                // The clock is read one poll in 4096: three port accesses
                // (slow under emulation), and a deadline of seconds needs
                // no finer grain.
                None if polls % 4096 == 4095
                    && watch.get_or_insert_with(Stopwatch::start).elapsed_ms() >= timeout =>
                {
                    self.reset_after_timeout(index, timeout)
                }
                None => core::hint::spin_loop(),
            }
            polls = polls.wrapping_add(1);
        }
    }

    /// Pops the used request `token` and keeps its status for its waiter.
    fn complete(&mut self, token: u16) {
        let index = self
            .in_flight
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.token == token && r.done.is_none()))
            .expect("the device gave back a request this driver queued");
        let slot = self.slot(index);
        let request = self.in_flight[index].as_mut().expect("found above");
        let queue = &mut self.queue;
        // SAFETY: the same header, buffers and status byte as the request
        // was queued with; the device is done with them.
        let popped = unsafe {
            with_buffers(slot, &request.segments, request.write, |inputs, outputs| {
                queue.pop_used(token, inputs, outputs)
            })
        };
        // SAFETY: the device wrote the status byte before it gave the
        // request back (it is in the slot, which stays ours until now).
        let status = unsafe { core::ptr::addr_of!((*slot).status).read_volatile() };
        if request.answer_ignored {
            return; // as if the device had not answered: the wait times out
        }
        self.timeouts_in_a_row = 0;
        request.done = Some(match popped {
            Ok(_) if status == STATUS_OK => Ok(()),
            _ => Err(BlockError::Io),
        });
    }

    /// Starts writing `buf` at `sector` and returns at once; the device
    /// reads `buf` by DMA while the caller works.
    ///
    /// # Safety
    ///
    /// `buf` stays valid and unchanged until [`Self::finish_write`] of the
    /// returned write returns.
    pub unsafe fn start_write(&mut self, sector: u64, buf: &[u8]) -> Result<PendingWrite, BlockError> {
        // The device only reads a write's buffers; the pointers are mutable
        // because a read's are written.
        let segments = Segments::new([buf as *const [u8] as *mut [u8]])?;
        // SAFETY: the caller's promise, passed on.
        unsafe { self.start(sector, segments, true) }.map(PendingWrite)
    }

    /// Starts writing the pages in `frames` (at most [`MAX_SEGMENTS`]),
    /// one after the other from `sector`, in one request whose buffers are
    /// the frames themselves (no copy), and returns at once.
    ///
    /// # Safety
    ///
    /// The frames are RAM, and stay allocated and unchanged until
    /// [`Self::finish_write`] of the returned write returns.
    pub unsafe fn start_write_frames(
        &mut self,
        sector: u64,
        frames: &[Pfn],
    ) -> Result<PendingWrite, BlockError> {
        // SAFETY: the caller's promise, passed on; the frames are in the
        // physical window.
        unsafe { self.start(sector, Segments::of_frames(frames)?, true) }.map(PendingWrite)
    }

    /// Starts reading pages from `sector` on into `frames` (at most
    /// [`MAX_SEGMENTS`]), in one request whose buffers are the frames
    /// themselves, and returns at once: several reads can be on their way
    /// (a swap-in's runs of slots).
    ///
    /// # Safety
    ///
    /// The frames are RAM that nothing else uses until
    /// [`Self::finish_read`] of the returned read returns.
    pub unsafe fn start_read_frames(
        &mut self,
        sector: u64,
        frames: &[Pfn],
    ) -> Result<PendingRead, BlockError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.start(sector, Segments::of_frames(frames)?, false) }.map(PendingRead)
    }

    /// Waits for a started read; its result (sent once more after a
    /// timeout, [`Self::finish`]).
    pub fn finish_read(&mut self, read: PendingRead) -> Result<(), BlockError> {
        // SAFETY: the caller of `start_read_frames` leaves the frames alone
        // until this returns.
        unsafe { self.finish(read.0) }
    }

    /// Starts a request and waits for it ([`Self::finish`]).
    ///
    /// # Safety
    ///
    /// As [`Self::start`]; the request is waited for before this returns.
    unsafe fn transfer(&mut self, sector: u64, segments: Segments, write: bool) -> Result<(), BlockError> {
        // SAFETY: the caller's promise; `finish` waits for the request.
        let index = unsafe { self.start(sector, segments, write) }?;
        // SAFETY: as above.
        unsafe { self.finish(index) }
    }

    /// Waits for the request in slot `index`. One that timed out (in this
    /// wait, or failed by the reset another request's wait made) is sent
    /// once more to the restarted device, as Linux's block layer requeues
    /// the requests a reset failed: a disk that stalled once may answer
    /// now, a swap-in that fails ends a process, and a swap-out batch that
    /// fails stays resident for nothing. A second timeout stands.
    ///
    /// # Safety
    ///
    /// The request's buffers stay valid, and untouched by the CPU, until
    /// this returns (the promise made to [`Self::start`], kept one wait
    /// longer).
    unsafe fn finish(&mut self, index: usize) -> Result<(), BlockError> {
        let request = self.in_flight[index].as_ref().expect("a started request");
        let (segments, write) = (request.segments, request.write);
        let sector = self.slot_sector(index);
        let first = self.wait(index);
        let Err(BlockError::TimedOut { .. }) = first else { return first };
        // SAFETY: the caller's promise; the reset gave the buffers back,
        // and they are the device's again until this second request is
        // waited for.
        unsafe { self.start(sector, segments, write) }.and_then(|index| self.wait(index))
    }

    /// Waits for a started write; its result (sent once more after a
    /// timeout, [`Self::finish`]).
    pub fn finish_write(&mut self, write: PendingWrite) -> Result<(), BlockError> {
        // SAFETY: the caller of `start_write` or `start_write_frames`
        // keeps the buffers valid and unchanged until this returns.
        unsafe { self.finish(write.0) }
    }
}

impl Drop for VirtioDisk {
    fn drop(&mut self) {
        // Requests still queued point at buffers their callers are about
        // to free: finish them first.
        for index in 0..REQUESTS {
            if self.in_flight[index].is_some() {
                let _ = self.wait(index);
            }
        }
        // The device must forget the queue before its memory goes (the
        // queue's own drop frees it). For the PCI transport `queue_unset`
        // does nothing (the spec has no way to unset one queue), so the
        // device is reset, which makes it forget them all.
        self.transport.queue_unset(QUEUE);
        self.transport.set_status(DeviceStatus::empty());
        let page = FrameBlock::from_raw(self.request, 0, Owner::Dma);
        if frames::free(page).is_err() {
            crate::warn!("virtio-blk: request page was not ours to free (kernel bug)");
        }
    }
}

/// Calls `f` with a request's descriptor buffers: for a write the header
/// and the data (device-readable) and the status byte (device-writable);
/// for a read the header, then the data and the status byte.
///
/// # Safety
///
/// `slot` is a live request slot and every buffer of `segments` valid.
unsafe fn with_buffers<R>(
    slot: *mut RequestSlot,
    segments: &Segments,
    write: bool,
    f: impl for<'a> FnOnce(&'a [&'a [u8]], &'a mut [&'a mut [u8]]) -> R,
) -> R {
    // SAFETY: the caller's promise; the header and the status byte do not
    // overlap each other or any data buffer.
    unsafe {
        let header = core::slice::from_raw_parts(slot.cast::<u8>(), HEADER_BYTES);
        let status = core::slice::from_raw_parts_mut(core::ptr::addr_of_mut!((*slot).status), 1);
        let mut inputs: [&[u8]; MAX_SEGMENTS + 1] = [&[]; MAX_SEGMENTS + 1];
        let mut outputs: [&mut [u8]; MAX_SEGMENTS + 1] = Default::default();
        inputs[0] = header;
        let data = segments.buffers[..segments.len].iter();
        if write {
            for (input, &buffer) in inputs[1..].iter_mut().zip(data) {
                *input = &*buffer;
            }
            outputs[0] = status;
            f(&inputs[..1 + segments.len], &mut outputs[..1])
        } else {
            for (output, &buffer) in outputs.iter_mut().zip(data) {
                *output = &mut *buffer;
            }
            outputs[segments.len] = status;
            f(&inputs[..1], &mut outputs[..segments.len + 1])
        }
    }
}

fn io_error(_: virtio_drivers::Error) -> BlockError {
    BlockError::Io
}

impl BlockDevice for VirtioDisk {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let segments = Segments::new([buf as *mut [u8]])?;
        // SAFETY: `buf` is borrowed until the request is waited for, inside.
        unsafe { self.transfer(sector, segments, false) }
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        // The device only reads a write's buffer; the pointer is mutable
        // because a read's is written.
        let segments = Segments::new([buf as *const [u8] as *mut [u8]])?;
        // SAFETY: as in read.
        unsafe { self.transfer(sector, segments, true) }
    }
}

/// Every virtio-blk disk on the PCI bus, in bus order (the order of the
/// `-device` options). Disks that fail to start are logged and skipped.
pub fn probe() -> Vec<VirtioDisk> {
    // SAFETY: probing runs once, at boot, before anything else uses PCI.
    let mut root = PciRoot::new(unsafe { PortCam::new() });
    let functions: Vec<_> = pci::devices(&root)
        .filter(|(_, info)| virtio_device_type(info) == Some(DeviceType::Block))
        .map(|(df, _)| df)
        .collect();
    let mut disks = Vec::new();
    for df in functions {
        root.set_command(df, Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER);
        let disk = PciTransport::new::<KernelHal, _>(&mut root, df)
            .map_err(|e| alloc::format!("{e:?}"))
            .and_then(VirtioDisk::new);
        match disk {
            Ok(disk) => {
                crate::info!(
                    "virtio-blk {df}: {} MiB{}",
                    disk.capacity / 2048,
                    if disk.read_only { ", read-only" } else { "" }
                );
                disks.push(disk);
            }
            Err(e) => crate::warn!("virtio-blk {df}: {e}; skipped"),
        }
    }
    disks
}

const _: () = assert!(REQUESTS * core::mem::size_of::<RequestSlot>() <= PAGE_SIZE);
const _: () = assert!(core::mem::offset_of!(RequestSlot, status) == HEADER_BYTES);
