//! Block devices: the one interface the swap area (and, later, the file
//! disk) reads and writes through. The kernel implements it with virtio-blk
//! (`kernel/src/drivers/virtio_blk.rs`); host tests with [`RamDisk`].
//!
//! Devices are addressed in 512-byte sectors, the unit of virtio-blk and of
//! every disk since the PC/AT; a transfer is a whole number of sectors.

use alloc::vec::Vec;
use core::fmt;

use crate::addr::Pfn;

/// The unit of addressing and transfer.
pub const SECTOR_SIZE: usize = 512;

/// Why a transfer failed. Nothing was transferred (reads may have filled
/// part of the buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The buffer is empty or not a whole number of sectors.
    BadLength { len: usize },
    /// The transfer runs past the end of the device.
    OutOfRange { sector: u64, sectors: u64, capacity: u64 },
    /// The device refuses writes.
    ReadOnly,
    /// The device reported an error (or a driver-level failure).
    Io,
    /// Every request slot of the device is taken by requests still on
    /// their way (a driver that lets writes run behind the caller).
    Busy,
    /// More buffers in one request than the driver takes.
    TooManySegments { max: usize },
    /// The device did not answer within the driver's timeout: it was reset
    /// and the request (with every other one on its way) failed.
    TimedOut { ms: u64 },
    /// The device is out of service: it stopped answering and could not
    /// be started again.
    OutOfService,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BlockError::BadLength { len } => write!(f, "transfer of {len} bytes is not whole sectors"),
            BlockError::OutOfRange { sector, sectors, capacity } => {
                write!(f, "sectors {sector}+{sectors} run past the end ({capacity} sectors)")
            }
            BlockError::ReadOnly => write!(f, "device is read-only"),
            BlockError::Io => write!(f, "I/O error"),
            BlockError::Busy => write!(f, "too many requests in flight"),
            BlockError::TooManySegments { max } => write!(f, "more than {max} buffers in one request"),
            BlockError::TimedOut { ms } => write!(f, "no answer from the device in {ms} ms (device reset)"),
            BlockError::OutOfService => write!(f, "device out of service (it stopped answering)"),
        }
    }
}

/// A disk: `capacity` sectors, read and written in whole sectors.
pub trait BlockDevice {
    /// Size in sectors.
    fn capacity(&self) -> u64;
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError>;
}

/// Checks a transfer of `len` bytes at `sector` against a device of
/// `capacity` sectors: the checks every implementation owes its callers.
pub fn check_transfer(sector: u64, len: usize, capacity: u64) -> Result<(), BlockError> {
    if len == 0 || !len.is_multiple_of(SECTOR_SIZE) {
        return Err(BlockError::BadLength { len });
    }
    let sectors = (len / SECTOR_SIZE) as u64;
    if sector.checked_add(sectors).is_none_or(|end| end > capacity) {
        return Err(BlockError::OutOfRange { sector, sectors, capacity });
    }
    Ok(())
}

/// Runs of neighbouring frames in `frames`, in order: `(first, count)`
/// each, the first `len` entries of the array. A request's buffers go to
/// the device a run at a time, as Linux's block layer merges physically
/// contiguous pages into one segment: the device maps and hands on each
/// buffer on its own, and under QEMU that per-buffer work was a large part
/// of a swap-out's request. `TooManySegments` when the runs are more than
/// `N`.
pub fn frame_runs<const N: usize>(frames: &[Pfn]) -> Result<([(Pfn, u64); N], usize), BlockError> {
    let mut runs = [(Pfn::new(0), 0u64); N];
    let mut len = 0;
    for &frame in frames {
        match runs[..len].last_mut() {
            Some((first, count)) if first.number() + *count == frame.number() => *count += 1,
            _ if len == N => return Err(BlockError::TooManySegments { max: N }),
            _ => {
                runs[len] = (frame, 1);
                len += 1;
            }
        }
    }
    Ok((runs, len))
}

/// A disk in memory, for tests. Counts its transfers, and can be told to
/// fail them.
#[derive(Clone, Debug, Default)]
pub struct RamDisk {
    bytes: Vec<u8>,
    pub reads: u64,
    pub writes: u64,
    /// When set, every transfer fails with [`BlockError::Io`].
    pub failing: bool,
}

impl RamDisk {
    pub fn new(sectors: u64) -> Self {
        RamDisk { bytes: alloc::vec![0; sectors as usize * SECTOR_SIZE], ..RamDisk::default() }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl BlockDevice for RamDisk {
    fn capacity(&self) -> u64 {
        (self.bytes.len() / SECTOR_SIZE) as u64
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_transfer(sector, buf.len(), self.capacity())?;
        if self.failing {
            return Err(BlockError::Io);
        }
        let start = sector as usize * SECTOR_SIZE;
        buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
        self.reads += 1;
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        check_transfer(sector, buf.len(), self.capacity())?;
        if self.failing {
            return Err(BlockError::Io);
        }
        let start = sector as usize * SECTOR_SIZE;
        self.bytes[start..start + buf.len()].copy_from_slice(buf);
        self.writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_checked_before_they_touch_the_disk() {
        let mut disk = RamDisk::new(8);
        let mut page = [0u8; 4096];
        assert_eq!(disk.read(0, &mut page), Ok(()));
        assert_eq!(
            disk.read(1, &mut page),
            Err(BlockError::OutOfRange { sector: 1, sectors: 8, capacity: 8 })
        );
        assert_eq!(disk.write(0, &page[..100]), Err(BlockError::BadLength { len: 100 }));
        assert_eq!(disk.write(0, &[]), Err(BlockError::BadLength { len: 0 }));
        assert_eq!(
            disk.read(u64::MAX, &mut page[..512]).unwrap_err(),
            BlockError::OutOfRange { sector: u64::MAX, sectors: 1, capacity: 8 }
        );
        assert_eq!((disk.reads, disk.writes), (1, 0));
    }

    #[test]
    fn neighbouring_frames_make_one_run_and_the_runs_keep_their_order() {
        let frames = |numbers: &[u64]| numbers.iter().map(|&n| Pfn::new(n)).collect::<Vec<_>>();
        let (runs, len) = frame_runs::<8>(&frames(&[5, 6, 7, 9, 10, 3, 4, 4])).unwrap();
        let runs: Vec<_> = runs[..len].iter().map(|&(first, count)| (first.number(), count)).collect();
        // 3, 4 follow 10 on the disk, so they stay a run of their own; a
        // frame given twice is not a neighbour of itself.
        assert_eq!(runs, [(5, 3), (9, 2), (3, 2), (4, 1)]);
        assert_eq!(frame_runs::<8>(&frames(&(100..108).collect::<Vec<_>>())).map(|r| r.1), Ok(1));
        assert_eq!(frame_runs::<8>(&[]).map(|r| r.1), Ok(0));
        let scattered = frames(&[1, 3, 5, 7, 9]);
        assert_eq!(frame_runs::<4>(&scattered).map(|r| r.1), Err(BlockError::TooManySegments { max: 4 }));
        assert_eq!(frame_runs::<5>(&scattered).map(|r| r.1), Ok(5));
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut disk = RamDisk::new(16);
        let data: [u8; 1024] = core::array::from_fn(|i| (i * 7) as u8);
        disk.write(3, &data).unwrap();
        let mut back = [0u8; 1024];
        disk.read(3, &mut back).unwrap();
        assert_eq!(back, data);
        disk.failing = true;
        assert_eq!(disk.read(3, &mut back), Err(BlockError::Io));
    }
}
