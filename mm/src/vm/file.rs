//! File pages: mapping the page cache's frames, copy on write, and the
//! address-space half of dropping a cached page under pressure. Life cycle
//! of a file page's entry:
//!
//! ```text
//!                 read/exec fault                      write fault (private region)
//!  File{file,page} ─────────────► Present(kind File, W=0) ────────────────► Present(kind Anonymous, W)
//!  (or Absent: the    ▲  map the cache's frame,  │  a copy of the page in a      (the space's own page:
//!   region default)   │  one more mapping        │  new frame; one mapping fewer  swapped like any other)
//!                     └──── reclaim drops it ◄───┘
//!                       (unmapped in every space, then the frame is freed)
//!  File{file,page} ─── write fault (private region) ──► Present(kind Anonymous, W)  (copied at once)
//! ```
//!
//! The entry of a cached page is read-only whatever the region allows: in a
//! private writable region, the write fault is what makes the copy; in a
//! shared region, writing is refused (the disk is read-only). The region's
//! protection is the page's ([`AddressSpace::logical_prot`]).

use super::walk::Slot;
use super::{AddressSpace, Platform, VmError};
use crate::addr::{Pfn, UserAddr};
use crate::files::FileError;
use crate::pte::{Mapping, PageKind, Prot, PteState};

impl<P: Platform> AddressSpace<P> {
    /// Maps page `page` of `file` at `va`: the page cache's frame,
    /// read-only in the entry (`prot` is what the region allows).
    pub(super) fn map_file(&mut self, va: UserAddr, file: u16, page: u64, prot: Prot) -> Result<(), VmError> {
        let slot = self.leaf_or_create(va)?;
        let frame = self.platform.map_file_page(file, page).map_err(|e| file_error(va, e))?;
        self.write(slot, PteState::Present(Mapping::read_only(frame, prot, PageKind::File)));
        self.stats.resident_pages += 1;
        self.stats.file_pages += 1;
        Ok(())
    }

    /// A write to a private file page that was never mapped here: the
    /// space's own copy of it, straight from the page cache.
    pub(super) fn copy_file_page(
        &mut self,
        va: UserAddr,
        file: u16,
        page: u64,
        prot: Prot,
    ) -> Result<(), VmError> {
        let source = self.platform.map_file_page(file, page).map_err(|e| file_error(va, e))?;
        let copied = self.map_copy(va, source, prot);
        self.platform.unmap_file_page(source);
        copied
    }

    /// A write to a mapped page of a private file mapping: the entry moves
    /// from the cache's frame to a copy of it, then the cache's frame is
    /// let go of (after the flush, so no stale translation still reaches
    /// the shared page).
    pub(super) fn copy_mapped_file_page(
        &mut self,
        va: UserAddr,
        old: Mapping,
        prot: Prot,
    ) -> Result<(), VmError> {
        self.map_copy(va, old.frame, prot)?;
        self.platform.flush(va);
        self.platform.unmap_file_page(old.frame);
        self.stats.resident_pages -= 1;
        self.stats.file_pages -= 1;
        Ok(())
    }

    /// Maps at `va` a new anonymous frame filled with a copy of `source`.
    fn map_copy(&mut self, va: UserAddr, source: Pfn, prot: Prot) -> Result<(), VmError> {
        self.map_new_page(
            va,
            prot,
            Some(&mut |platform, frame| {
                platform.copy_page(source, frame);
                Ok(())
            }),
        )?;
        Ok(())
    }

    /// Reclaim's look at the cached page in `frame` (page `page` of
    /// `file`): clears the Accessed bit of every entry of this space that
    /// maps it (flushing each); true if any was set.
    pub fn age_file_page(&mut self, file: u16, page: u64, frame: Pfn) -> bool {
        let mut referenced = false;
        self.for_each_mapping(file, page, frame, &mut |s, slot, va, m, _| {
            if m.accessed {
                s.write(slot, PteState::Present(Mapping { accessed: false, ..m }));
                s.platform.flush(va);
                referenced = true;
            }
        });
        referenced
    }

    /// Unmaps every entry of this space that maps the cached page in
    /// `frame`; they go back to `File { file, page }`, so the next touch
    /// faults it in again. Returns how many there were.
    pub fn drop_file_page(&mut self, file: u16, page: u64, frame: Pfn) -> u64 {
        let mut dropped = 0;
        self.for_each_mapping(file, page, frame, &mut |s, slot, va, m, prot| {
            s.unmap(slot, va, m, PteState::File { file, page, prot });
            dropped += 1;
        });
        dropped
    }

    /// Calls `f` for each entry that maps the cached `frame`, with its
    /// region's protection: found through the file regions that cover page
    /// `page` of `file` (the reverse map of a shared page is the regions,
    /// as Linux's `i_mmap`).
    fn for_each_mapping(
        &mut self,
        file: u16,
        page: u64,
        frame: Pfn,
        f: &mut dyn FnMut(&mut Self, Slot, UserAddr, Mapping, Prot),
    ) {
        for i in 0..self.regions.len() {
            let Some((va, prot)) =
                self.regions.get(i).and_then(|r| Some((r.address_of(file, page)?, r.prot)))
            else {
                continue;
            };
            let Ok(Some(slot)) = self.leaf(va) else { continue };
            if let Ok(PteState::Present(m)) = self.read(slot, va) {
                if m.frame == frame && m.kind == PageKind::File {
                    f(self, slot, va, m, prot);
                }
            }
        }
    }
}

/// A file error as the VMM reports it: no memory for the page cache is
/// out of memory like any other (so direct reclaim runs and retries).
fn file_error(va: UserAddr, error: FileError) -> VmError {
    match error {
        FileError::NoMemory => VmError::OutOfMemory,
        error => VmError::File { addr: va.as_u64(), error },
    }
}
