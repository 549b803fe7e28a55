//! Files on a read-only disk: the file table read from a ustar archive, and
//! the page cache their mapped pages live in.
//!
//! - [`FileTable::read`] walks the archive header by header (one sector per
//!   read: the disk is never copied whole into memory) and records, for each
//!   regular file, its name, its size and the sector its data starts at. A
//!   file's id is its position in the table: stable for as long as the disk
//!   is attached, and what a PTE's `File { file, page }` state names.
//! - [`FileTable::read_page`] reads page `page` of a file (bytes
//!   `page*4096..`) from the disk into a frame-sized buffer. Archive data
//!   sits at 512-byte offsets, not page-aligned, so each page is read
//!   sector by sector into its own frame; the tail past the file's end is
//!   zero.
//! - [`cache::PageCache`] finds a cached page by (file, page).
//!
//! ```text
//!  sector 0        1 .. 1+n          1+n       ...        end
//!  ┌────────┬─────────────────┬────────┬──────────┬──────┬──────┐
//!  │ header │ data of file 0  │ header │ file 1   │ zero │ zero │
//!  │ (name, │ (size bytes,    │        │          │ block│ block│
//!  │  size) │  padded to 512) │        │          │      │      │
//!  └────────┴─────────────────┴────────┴──────────┴──────┴──────┘
//! ```

pub mod cache;
pub mod shadow;
#[cfg(test)]
mod tests;
pub mod ustar;

use crate::addr::PAGE_SIZE;
use crate::block::{BlockDevice, BlockError, SECTOR_SIZE};
use crate::pte::MAX_FILE_PAGE;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use ustar::{EntryKind, HeaderError, BLOCK};

/// Names a file of the table (its position in the archive's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u16);

/// Where the packed file page `key` ([`FilePage::pack`]) goes in a
/// hashed table of `len` entries (a power of two, at least one):
/// Fibonacci hashing, the middle bits of the product. The page cache's
/// index and its shadow entries both use it.
pub(crate) fn table_index(key: u64, len: usize) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (len - 1)
}

/// Page `page` of file `file`: what the page cache is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FilePage {
    pub file: FileId,
    pub page: u64,
}

impl FilePage {
    /// The page as one non-zero word of 53 bits, `(file + 1) << 36 | page`:
    /// how the page cache's index and the reverse map store it (0 stays
    /// free to mean "nothing"). Panics on a page above [`MAX_FILE_PAGE`],
    /// which no PTE can name either.
    pub fn pack(self) -> u64 {
        assert!(self.page <= MAX_FILE_PAGE, "file page {} out of range", self.page);
        ((u64::from(self.file.0) + 1) << PAGE_BITS) | self.page
    }

    /// The page [`pack`](Self::pack) made `raw` from.
    pub fn unpack(raw: u64) -> FilePage {
        FilePage { file: FileId(((raw >> PAGE_BITS) - 1) as u16), page: raw & MAX_FILE_PAGE }
    }
}

const PAGE_BITS: u32 = 36;
const _: () = assert!(MAX_FILE_PAGE == (1 << PAGE_BITS) - 1);

/// Files a table holds at most: ids must fit a PTE's 16-bit file field,
/// and a hostile archive must not fill the kernel heap at boot.
pub const MAX_FILES: usize = 4096;
/// Longest path (ustar: a 155-byte prefix, '/', a 100-byte name).
pub const MAX_NAME: usize = 256;

/// One regular file of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// The sector its data starts at.
    pub first_sector: u64,
}

impl FileEntry {
    /// Pages that hold at least one byte of the file.
    pub fn pages(&self) -> u64 {
        self.size.div_ceil(PAGE_SIZE)
    }
}

/// Why an archive was refused. Nothing of it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    Device(BlockError),
    /// A block that should be a header is not one.
    BadHeader {
        sector: u64,
        error: HeaderError,
    },
    /// The disk ends before the end-of-archive block.
    Truncated {
        sector: u64,
    },
    /// An entry's data would run past the end of the disk.
    RunsPastDisk {
        sector: u64,
        size: u64,
    },
    /// A GNU long-name entry (see [`EntryKind::GnuLongName`]).
    LongName {
        sector: u64,
    },
    /// Two entries with the same name.
    Duplicate {
        sector: u64,
    },
    TooManyFiles,
    /// No kernel heap for the table.
    NoMemory,
}

/// Why a page of a file could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    /// No file with that id (or no file disk).
    NoSuchFile,
    /// The page lies wholly past the end of the file (Linux: SIGBUS).
    PastEnd { page: u64, size: u64 },
    /// The disk failed the read.
    Device(BlockError),
    /// No frame, or no room in the page cache's index.
    NoMemory,
}

/// The regular files of an archive, in archive order.
#[derive(Debug, Default)]
pub struct FileTable {
    files: Vec<FileEntry>,
}

impl FileTable {
    /// A table with no files (`const`, for statics).
    pub const fn empty() -> FileTable {
        FileTable { files: Vec::new() }
    }

    /// Reads the archive's index from `disk`, one header sector at a time.
    /// Directories are skipped; other entries (links, pax attributes) are
    /// skipped with their data.
    pub fn read<D: BlockDevice>(disk: &mut D) -> Result<FileTable, ArchiveError> {
        let mut table = FileTable::default();
        let mut block = [0u8; BLOCK];
        let mut sector = 0;
        loop {
            if sector >= disk.capacity() {
                return Err(ArchiveError::Truncated { sector });
            }
            disk.read(sector, &mut block).map_err(ArchiveError::Device)?;
            let header = match ustar::decode(&block) {
                Ok(Some(header)) => header,
                Ok(None) => return Ok(table),
                Err(error) => return Err(ArchiveError::BadHeader { sector, error }),
            };
            let first_sector = sector + 1;
            let end = first_sector + header.data_blocks();
            if end > disk.capacity() {
                return Err(ArchiveError::RunsPastDisk { sector, size: header.size });
            }
            match header.kind {
                EntryKind::RegularFile => table.add(sector, &header, first_sector)?,
                EntryKind::GnuLongName => return Err(ArchiveError::LongName { sector }),
                EntryKind::Directory | EntryKind::Other => {}
            }
            sector = end;
        }
    }

    fn add(
        &mut self,
        sector: u64,
        header: &ustar::Header<'_>,
        first_sector: u64,
    ) -> Result<(), ArchiveError> {
        if self.files.len() >= MAX_FILES {
            return Err(ArchiveError::TooManyFiles);
        }
        let mut name = String::new();
        let len = header.prefix.len() + usize::from(!header.prefix.is_empty()) + header.name.len();
        name.try_reserve_exact(len.min(MAX_NAME)).map_err(|_| ArchiveError::NoMemory)?;
        if !header.prefix.is_empty() {
            name.push_str(header.prefix);
            name.push('/');
        }
        name.push_str(header.name);
        if self.find(&name).is_some() {
            return Err(ArchiveError::Duplicate { sector });
        }
        self.files.try_reserve(1).map_err(|_| ArchiveError::NoMemory)?;
        self.files.push(FileEntry { name, size: header.size, first_sector });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The id of the file called `name`.
    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|f| f.name == name).map(|i| FileId(i as u16))
    }

    pub fn get(&self, id: FileId) -> Option<&FileEntry> {
        self.files.get(usize::from(id.0))
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &FileEntry)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u16), f))
    }

    /// Reads page `page` of file `id` into `buf`: the file's bytes, then
    /// zeros past its end. Reads only the sectors that hold file bytes.
    pub fn read_page<D: BlockDevice>(
        &self,
        disk: &mut D,
        id: FileId,
        page: u64,
        buf: &mut [u8; PAGE_SIZE as usize],
    ) -> Result<(), FileError> {
        let file = self.get(id).ok_or(FileError::NoSuchFile)?;
        if page >= file.pages() {
            return Err(FileError::PastEnd { page, size: file.size });
        }
        let bytes = (file.size - page * PAGE_SIZE).min(PAGE_SIZE) as usize;
        let sectors_len = bytes.next_multiple_of(SECTOR_SIZE);
        let sector = file.first_sector + page * (PAGE_SIZE / SECTOR_SIZE as u64);
        disk.read(sector, &mut buf[..sectors_len]).map_err(FileError::Device)?;
        buf[bytes..].fill(0);
        Ok(())
    }
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Device(e) => write!(f, "disk: {e}"),
            ArchiveError::BadHeader { sector, error } => write!(f, "sector {sector}: {error}"),
            ArchiveError::Truncated { sector } => {
                write!(f, "the disk ends at sector {sector}, inside the archive")
            }
            ArchiveError::RunsPastDisk { sector, size } => {
                write!(f, "sector {sector}: an entry of {size} bytes runs past the end of the disk")
            }
            ArchiveError::LongName { sector } => {
                write!(f, "sector {sector}: GNU long names are not supported")
            }
            ArchiveError::Duplicate { sector } => {
                write!(f, "sector {sector}: a second entry of the same name")
            }
            ArchiveError::TooManyFiles => write!(f, "more than {MAX_FILES} files"),
            ArchiveError::NoMemory => write!(f, "no kernel heap for the file table"),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NoSuchFile => write!(f, "no such file"),
            FileError::PastEnd { page, size } => {
                write!(f, "page {page} lies wholly past the end of the file ({size} bytes)")
            }
            FileError::Device(e) => write!(f, "file disk: {e}"),
            FileError::NoMemory => write!(f, "no memory for the page cache"),
        }
    }
}
