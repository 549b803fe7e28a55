//! virtio-blk disks through `virtio-drivers` (pinned 0.13.0; docs/swap.md
//! says why the crate earns its place), as `mm::block::BlockDevice`s.
//!
//! What the crate needs from us is [`KernelHal`]: DMA memory (physically
//! contiguous frames from the frame allocator, owned `Dma`), the BAR mapped
//! uncached (`kernel_pages::map_mmio`), and `share`: the device's address
//! of a buffer, found through the page tables.
//!
//! I/O is polled: a request is queued, the device notified, and the driver
//! spins on the used ring until the request comes back. A write may also
//! be left running ([`VirtioDisk::start_write`]) and waited for later
//! ([`VirtioDisk::finish_write`]), so swap-out prepares its next batch
//! while the device writes the last one; requests then come back in the
//! order the device finishes them, and waiting for one completes whichever
//! is at the head of the used ring. Each request's header and status byte
//! live in a DMA page of the disk's own (the crate's `*_nb` calls take them
//! from the caller), never on the stack, so every buffer the device sees is
//! in the physical-memory window. With
//! interrupt-driven completion the CPU would run another process while the
//! disk works, and the fault path would have to sleep: a process that
//! blocks in the kernel, which this kernel does not have yet.

use super::pci::{self, PortCam};
use crate::memory::{frames, kernel_pages, phys_to_virt};
use alloc::vec::Vec;
use core::ptr::NonNull;
use mm::addr::Pfn;
use mm::block::{check_transfer, BlockDevice, BlockError};
use mm::frame::{FrameBlock, Owner};
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::pci::bus::{Command, PciRoot};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::DeviceType;
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
        // Only called while a driver is set up at boot (queues), never on a
        // process's behalf; the trait has no way to report failure.
        let block = frames::allocate_zeroed(order_of(pages), Owner::Dma)
            .expect("DMA memory for a virtio queue at boot");
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

/// A request header and status byte, in DMA memory.
#[repr(C)]
struct RequestSlot {
    req: BlkReq,
    resp: BlkResp,
}

/// Requests one disk can have on the way at once: a write running behind
/// its caller (swap-out's write-behind) and the next one started, with
/// room to spare. Each has its own header and status byte.
const REQUESTS: usize = 4;

/// A request the device may still be working on: everything its
/// completion needs (the crate's `complete_*` calls take the buffers
/// again), and its status once the used ring gave it back.
struct InFlight {
    token: u16,
    buffer: *mut [u8],
    write: bool,
    done: Option<Result<(), BlockError>>,
}

/// A write started by [`VirtioDisk::start_write`].
#[must_use = "a started write must be finished"]
#[derive(Debug)]
pub struct PendingWrite(usize);

/// One virtio-blk disk.
pub struct VirtioDisk {
    blk: VirtIOBlk<KernelHal, PciTransport>,
    /// The page holding the request headers and status bytes.
    request: Pfn,
    in_flight: [Option<InFlight>; REQUESTS],
    capacity: u64,
    read_only: bool,
}

// SAFETY: the disk is used under the lock of whoever owns it (the swap
// area); its raw pointers point at DMA memory and registers it owns, and
// at buffers its callers keep alive while their requests are in flight.
unsafe impl Send for VirtioDisk {}

impl VirtioDisk {
    fn slot(&mut self, index: usize) -> *mut RequestSlot {
        // SAFETY: `request` is a DMA page this disk owns, mapped in the
        // physical window, big enough and aligned for REQUESTS slots.
        unsafe { phys_to_virt(self.request).as_mut_ptr::<RequestSlot>().add(index) }
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Queues a read or write of `buffer` at `sector` in a free request
    /// slot and notifies the device; returns the slot.
    ///
    /// # Safety
    ///
    /// `buffer` stays valid, and untouched by the CPU, until [`Self::wait`]
    /// of the returned slot returns.
    unsafe fn start(&mut self, sector: u64, buffer: *mut [u8], write: bool) -> Result<usize, BlockError> {
        check_transfer(sector, buffer.len(), self.capacity)?;
        if write && self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let index = self.in_flight.iter().position(Option::is_none).ok_or(BlockError::Busy)?;
        let slot = self.slot(index);
        // SAFETY: the slot's header and status byte are this request's
        // alone until it is completed; the buffer is the caller's promise.
        let token = unsafe {
            let (req, resp) = (&mut (*slot).req, &mut (*slot).resp);
            if write {
                self.blk.write_blocks_nb(sector as usize, req, &*buffer, resp)
            } else {
                self.blk.read_blocks_nb(sector as usize, req, &mut *buffer, resp)
            }
        }
        .map_err(io_error)?;
        self.in_flight[index] = Some(InFlight { token, buffer, write, done: None });
        Ok(index)
    }

    /// Waits until the request in slot `index` has come back; its status.
    /// Requests come back in the order the device finishes them, so the
    /// wait completes whichever is at the head of the used ring.
    fn wait(&mut self, index: usize) -> Result<(), BlockError> {
        loop {
            let request = self.in_flight[index].as_mut().expect("a started request");
            if let Some(done) = request.done.take() {
                self.in_flight[index] = None;
                return done;
            }
            match self.blk.peek_used() {
                Some(token) => self.complete(token),
                None => core::hint::spin_loop(),
            }
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
        // SAFETY: the same header, buffer and status byte as the request
        // was queued with; the device is done with them.
        let status = unsafe {
            let (req, resp) = (&(*slot).req, &mut (*slot).resp);
            if request.write {
                self.blk.complete_write_blocks(token, req, &*request.buffer, resp)
            } else {
                self.blk.complete_read_blocks(token, req, &mut *request.buffer, resp)
            }
        };
        request.done = Some(status.map_err(io_error));
    }

    /// Starts writing `buf` at `sector` and returns at once; the device
    /// reads `buf` by DMA while the caller works.
    ///
    /// # Safety
    ///
    /// `buf` stays valid and unchanged until [`Self::finish_write`] of the
    /// returned write returns.
    pub unsafe fn start_write(&mut self, sector: u64, buf: &[u8]) -> Result<PendingWrite, BlockError> {
        // The device only reads a write's buffer; the pointer is mutable
        // because the crate's completion call takes one for reads too.
        // SAFETY: the caller's promise, passed on.
        unsafe { self.start(sector, buf as *const [u8] as *mut [u8], true) }.map(PendingWrite)
    }

    /// Waits for a started write; its result.
    pub fn finish_write(&mut self, write: PendingWrite) -> Result<(), BlockError> {
        self.wait(write.0)
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
        // SAFETY: `buf` is borrowed until the request is waited for, here.
        let index = unsafe { self.start(sector, buf, false) }?;
        self.wait(index)
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        // SAFETY: as in read.
        let write = unsafe { self.start_write(sector, buf) }?;
        self.finish_write(write)
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
        let disk =
            PciTransport::new::<KernelHal, _>(&mut root, df).map_err(|e| alloc::format!("{e:?}")).and_then(
                |transport| VirtIOBlk::<KernelHal, _>::new(transport).map_err(|e| alloc::format!("{e:?}")),
            );
        match disk {
            Ok(blk) => match frames::allocate_zeroed(0, Owner::Dma) {
                Ok(page) => {
                    let (request, _, _) = page.into_raw();
                    let (capacity, read_only) = (blk.capacity(), blk.readonly());
                    crate::info!(
                        "virtio-blk {df}: {} MiB{}",
                        capacity / 2048,
                        if read_only { ", read-only" } else { "" }
                    );
                    disks.push(VirtioDisk {
                        blk,
                        request,
                        in_flight: Default::default(),
                        capacity,
                        read_only,
                    });
                }
                Err(_) => crate::warn!("virtio-blk {df}: no DMA page for requests; skipped"),
            },
            Err(e) => crate::warn!("virtio-blk {df}: {e}; skipped"),
        }
    }
    disks
}

const _: () = assert!(REQUESTS * core::mem::size_of::<RequestSlot>() <= PAGE_SIZE);
