//! The file disk and the page cache on the real machine.
//!
//! At boot, the first read-only virtio disk that holds a ustar archive
//! (`pagekeeper-boot --files DIR` packs one) becomes the file disk: its
//! index is read into a `mm::files::FileTable` (names, sizes, where the data
//! is), and a `mm::files::cache::PageCache` is made for its pages. Every
//! file page a process maps, and every page the kernel reads (the ELF
//! loader), comes through the cache: one frame per file page, owned
//! `PageCache`, recorded in the reverse map as (file, page) so that reclaim
//! can find and drop it.
//!
//! Lock order: the address-space registry, then this, then the frame
//! allocator (and the reverse map, a leaf). Interrupts are off while the
//! lock is held (the fault path takes it).

use crate::drivers::virtio_blk::VirtioDisk;
use crate::memory::{frames, phys_to_virt};
use crate::vm::reclaim;
use crate::{info, warn};
use alloc::vec::Vec;
use core::fmt;
use mm::addr::{Pfn, PAGE_SIZE};
use mm::files::cache::{CacheStats, InsertError, PageCache};
use mm::files::shadow::{ShadowStats, ShadowTable};
use mm::files::{FileEntry, FileError, FileId, FilePage, FileTable};
use mm::frame::Owner;
use spin::{Mutex, Once};
use x86_64::instructions::interrupts::without_interrupts;

/// The index never changes after boot, so names can be lent out for good.
static TABLE: Once<FileTable> = Once::new();
static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

struct Cached {
    disk: VirtioDisk,
    cache: PageCache,
    /// When dropped pages were dropped, for their refault distance.
    shadows: ShadowTable,
}

/// The cache may hold up to half of memory: enough to run from the disk,
/// and the index (16 bytes a slot) stays small.
fn cache_limit() -> usize {
    (frames::stats().total / 2) as usize
}

/// Opens the first disk that holds an archive as the file disk.
pub fn init(disks: Vec<VirtioDisk>) {
    for (index, mut disk) in disks.into_iter().enumerate() {
        let table = match FileTable::read(&mut disk) {
            Ok(table) => table,
            Err(e) => {
                warn!("read-only disk {index}: not a file disk: {e}");
                continue;
            }
        };
        let cache = match PageCache::new(cache_limit()) {
            Ok(cache) => cache,
            Err(_) => {
                warn!("no kernel heap for the page cache's index: files not opened");
                return;
            }
        };
        let pages = table.iter().map(|(_, f)| f.size.div_ceil(PAGE_SIZE));
        let shadows = ShadowTable::new(table.len(), pages).unwrap_or_else(|_| {
            warn!("no kernel heap for the page cache's shadow entries: dropped pages come back cold");
            ShadowTable::default()
        });
        let bytes: u64 = table.iter().map(|(_, f)| f.size).sum();
        info!(
            "file disk: {} files, {} KiB; page cache of up to {} pages ({} KiB index, {} KiB of shadow entries)",
            table.len(),
            bytes / 1024,
            cache_limit(),
            cache.table_bytes() / 1024,
            shadows.table_bytes() / 1024
        );
        TABLE.call_once(|| table);
        without_interrupts(|| *CACHE.lock() = Some(Cached { disk, cache, shadows }));
        return;
    }
}

/// The file table (empty without a file disk).
pub fn table() -> &'static FileTable {
    static EMPTY: FileTable = FileTable::empty();
    TABLE.get().unwrap_or(&EMPTY)
}

/// The file called `name`.
pub fn open(name: &str) -> Option<(FileId, &'static FileEntry)> {
    let id = table().find(name)?;
    Some((id, table().get(id).expect("found above")))
}

fn with<R>(f: impl FnOnce(&mut Cached) -> Result<R, FileError>) -> Result<R, FileError> {
    without_interrupts(|| CACHE.lock().as_mut().map_or(Err(FileError::NoSuchFile), f))
}

fn page_bytes(frame: Pfn) -> *mut [u8; PAGE_SIZE as usize] {
    phys_to_virt(frame).as_mut_ptr()
}

impl Cached {
    /// Reads `key` from the disk into a new page-cache frame and adds it,
    /// with one mapping if `mapped`.
    fn fill(&mut self, key: FilePage, mapped: bool) -> Result<Pfn, FileError> {
        let entry = table().get(key.file).ok_or(FileError::NoSuchFile)?;
        if key.page >= entry.pages() {
            return Err(FileError::PastEnd { page: key.page, size: entry.size });
        }
        if self.cache.is_full() {
            return Err(FileError::NoMemory);
        }
        let block =
            frames::allocate_for_process(0, Owner::PageCache, false).map_err(|_| FileError::NoMemory)?;
        // Read again after reclaim dropped it: the policy learns how soon.
        let dropped_at = self.shadows.take(key);
        let frame = block.start();
        // SAFETY: the frame was just allocated and nothing maps it yet.
        let read = table().read_page(&mut self.disk, key.file, key.page, unsafe { &mut *page_bytes(frame) });
        let added = read.and_then(|()| {
            self.cache.insert(key, frame, mapped).map_err(|e| match e {
                InsertError::Full | InsertError::FrameTooHigh => FileError::NoMemory,
                InsertError::Present => unreachable!("filled only on a miss"),
            })
        });
        match added {
            Ok(()) => {
                reclaim::record_cached(frame, key);
                if let Some(stamp) = dropped_at {
                    reclaim::refaulted(frame, stamp);
                }
                let _ = block.into_raw(); // the cache owns it now
                Ok(frame)
            }
            Err(e) => {
                frames::free(block).expect("the frame is ours");
                Err(e)
            }
        }
    }
}

/// The frame of `key`, counted as one more mapping: from the cache, or
/// read from the disk (`mm::vm::Platform::map_file_page`).
pub fn map_page(key: FilePage) -> Result<Pfn, FileError> {
    with(|c| match c.cache.map(key) {
        Some(frame) => Ok(frame),
        None => c.fill(key, true),
    })
}

/// A mapping of the cached page in `frame` is gone.
pub fn unmap_page(frame: Pfn) {
    let unmapped =
        reclaim::cached_page(frame).is_some_and(|key| with(|c| Ok(c.cache.unmap(key))) == Ok(true));
    if !unmapped {
        warn!("page cache: unmapping frame {frame:?}, which it does not count as mapped (kernel bug)");
    }
}

/// Copies bytes `offset..offset + buf.len()` of `file` into `buf`, through
/// the page cache (for the kernel: the ELF loader).
pub fn read(file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), FileError> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset + done as u64;
        let (page, within) = (at / PAGE_SIZE, (at % PAGE_SIZE) as usize);
        let n = (PAGE_SIZE as usize - within).min(buf.len() - done);
        with(|c| {
            let key = FilePage { file, page };
            let frame = match c.cache.get(key) {
                Some(frame) => frame,
                None => c.fill(key, false)?,
            };
            // SAFETY: a page-cache frame, only ever read once filled; the
            // cache lock keeps reclaim from freeing it during the copy.
            let bytes = unsafe { &*page_bytes(frame) };
            buf[done..done + n].copy_from_slice(&bytes[within..within + n]);
            Ok(())
        })?;
        done += n;
    }
    Ok(())
}

/// Reclaim's look at a cached page no entry maps any more (or whose
/// entries were just cleared): whether it was used since the last look.
pub fn take_referenced(key: FilePage) -> bool {
    with(|c| Ok(c.cache.take_referenced(key))).unwrap_or(false)
}

/// Reclaim drops `key` from the cache and frees its frame, if no entry
/// maps it; a shadow entry remembers when (its refault distance, if it is
/// read again).
pub fn evict(key: FilePage, frame: Pfn) -> bool {
    remove(key, frame, Some(reclaim::eviction_clock()))
}

/// Drops `key` and frees its frame if no entry maps it, leaving a shadow
/// entry with `stamp` when there is one.
fn remove(key: FilePage, frame: Pfn, stamp: Option<u32>) -> bool {
    let removed = with(|c| {
        let removed = c.cache.remove(key).ok();
        if let (Some(_), Some(stamp)) = (removed, stamp) {
            c.shadows.remember(key, stamp);
        }
        Ok(removed)
    });
    let Ok(Some(removed)) = removed else { return false };
    debug_assert_eq!(removed, frame, "the reverse map and the cache agree");
    reclaim::forget(removed);
    frames::free(mm::frame::FrameBlock::from_raw(removed, 0, Owner::PageCache)).expect("a page-cache frame");
    true
}

/// Pages of `file` in the cache now.
pub fn cached_pages_of(file: FileId) -> u64 {
    with(|c| Ok(c.cache.iter().filter(|(key, _, _)| key.file == file).count() as u64)).unwrap_or(0)
}

/// Whether the cache holds any page (reclaim has something to drop).
pub fn has_pages() -> bool {
    info().is_some_and(|i| i.stats.pages > 0)
}

/// Drops every cached page no entry maps (for tests and `make bench`:
/// the next touch reads from the disk). Returns how many went.
pub fn drop_unmapped() -> u64 {
    let unmapped: Vec<(FilePage, Pfn)> = with(|c| {
        Ok(c.cache.iter().filter(|&(_, _, mappings)| mappings == 0).map(|(k, f, _)| (k, f)).collect())
    })
    .unwrap_or_default();
    // Not reclaim's choice: no shadow entries.
    unmapped.into_iter().filter(|&(key, frame)| remove(key, frame, None)).count() as u64
}

/// The page cache as meminfo shows it; `None` without a file disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    pub files: usize,
    pub stats: CacheStats,
    pub shadows: ShadowStats,
}

pub fn info() -> Option<CacheInfo> {
    without_interrupts(|| {
        CACHE.lock().as_ref().map(|c| CacheInfo {
            files: table().len(),
            stats: c.cache.stats(),
            shadows: c.shadows.stats(),
        })
    })
}

impl fmt::Display for CacheInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stats;
        write!(
            f,
            "page cache: {} pages ({} KiB) of {} files, {} mapped by {} entries; {} hits, {} misses (disk reads), {} dropped; shadow entries: {} remembered, {} refaults",
            s.pages,
            s.pages * PAGE_SIZE / 1024,
            self.files,
            s.mapped_pages,
            s.mappings,
            s.hits,
            s.misses,
            s.dropped,
            self.shadows.remembered,
            self.shadows.refaults
        )
    }
}
