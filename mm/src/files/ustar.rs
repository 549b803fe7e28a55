//! One ustar header block (POSIX.1-1988 "ustar", and GNU tar's variant of
//! it), decoded and checked. The file disk is read one 512-byte header at a
//! time, never whole, so this decoder takes a single block; the archive's
//! layout (header, data rounded up to blocks, next header) is `super`'s.
//!
//! ```text
//!  offset  size  field            offset  size  field
//!       0   100  name                156     1  typeflag ('0'/NUL file, '5' dir)
//!     100     8  mode                157   100  linkname
//!     108     8  uid                 257     6  magic "ustar\0" (GNU: "ustar ")
//!     116     8  gid                 263     2  version
//!     124    12  size (octal)        265    64  uname, gname
//!     136    12  mtime               329    16  devmajor, devminor
//!     148     8  checksum (octal)    345   155  prefix (path = prefix/name)
//! ```
//!
//! The checksum is the sum of the block's bytes with the checksum field
//! itself counted as eight spaces.

/// The unit of a tar archive, and of its disk (one sector).
pub const BLOCK: usize = 512;

const NAME: (usize, usize) = (0, 100);
const SIZE: (usize, usize) = (124, 12);
const CHECKSUM: (usize, usize) = (148, 8);
const TYPEFLAG: usize = 156;
const MAGIC: (usize, usize) = (257, 5);
const PREFIX: (usize, usize) = (345, 155);

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    RegularFile,
    Directory,
    /// GNU's long-name and long-link entries: they rename the entry that
    /// follows, which this reader does not do, so an archive with one is
    /// refused rather than read with a wrong name.
    GnuLongName,
    /// Links, devices, pax attribute entries...: skipped (with their data).
    Other,
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Empty, or the directory part of a long path.
    pub prefix: &'a str,
    pub name: &'a str,
    pub size: u64,
    pub kind: EntryKind,
}

impl Header<'_> {
    /// Blocks of data after the header.
    pub fn data_blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK as u64)
    }
}

/// Why a block is not a header this reader accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The magic is not "ustar" (an old v7 archive, or not a tar at all).
    NotUstar,
    BadChecksum {
        stored: u64,
        computed: u64,
    },
    /// A numeric field is not octal (GNU's base-256 sizes included: files
    /// of 8 GiB and more are not supported).
    BadNumber {
        field: &'static str,
    },
    /// A name that is not UTF-8, or an empty one.
    BadName,
}

fn field(block: &[u8; BLOCK], (at, len): (usize, usize)) -> &[u8] {
    &block[at..at + len]
}

/// A NUL- or space-terminated octal number (leading spaces allowed).
fn octal(bytes: &[u8], name: &'static str) -> Result<u64, HeaderError> {
    let bad = HeaderError::BadNumber { field: name };
    let digits = bytes.iter().skip_while(|&&b| b == b' ').take_while(|&&b| b != 0 && b != b' ');
    let mut value: u64 = 0;
    let mut any = false;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return Err(bad);
        }
        value = value.checked_mul(8).and_then(|v| v.checked_add(u64::from(b - b'0'))).ok_or(bad)?;
        any = true;
    }
    if any {
        Ok(value)
    } else {
        Err(bad)
    }
}

/// The text up to the first NUL.
fn text(bytes: &[u8]) -> Result<&str, HeaderError> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..end]).map_err(|_| HeaderError::BadName)
}

/// Sum of the block's bytes, the checksum field counted as spaces.
pub fn checksum(block: &[u8; BLOCK]) -> u64 {
    let (at, len) = CHECKSUM;
    let byte =
        |(i, &b): (usize, &u8)| if (at..at + len).contains(&i) { u64::from(b' ') } else { u64::from(b) };
    block.iter().enumerate().map(byte).sum()
}

/// `None` for an all-zero block (the end of the archive); otherwise the
/// header, or why it is not one.
pub fn decode(block: &[u8; BLOCK]) -> Result<Option<Header<'_>>, HeaderError> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if field(block, MAGIC) != b"ustar" {
        return Err(HeaderError::NotUstar);
    }
    let stored = octal(field(block, CHECKSUM), "checksum")?;
    let computed = checksum(block);
    if stored != computed {
        return Err(HeaderError::BadChecksum { stored, computed });
    }
    let kind = match block[TYPEFLAG] {
        b'0' | 0 => EntryKind::RegularFile,
        b'5' => EntryKind::Directory,
        b'L' | b'K' => EntryKind::GnuLongName,
        _ => EntryKind::Other,
    };
    let (prefix, name) = (text(field(block, PREFIX))?, text(field(block, NAME))?);
    if name.is_empty() {
        return Err(HeaderError::BadName);
    }
    Ok(Some(Header { prefix, name, size: octal(field(block, SIZE), "size")?, kind }))
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderError::NotUstar => write!(f, "not a ustar header"),
            HeaderError::BadChecksum { stored, computed } => {
                write!(f, "header checksum {stored:o} does not match its bytes ({computed:o})")
            }
            HeaderError::BadNumber { field } => write!(f, "the {field} field is not an octal number"),
            HeaderError::BadName => write!(f, "empty or non-UTF-8 name"),
        }
    }
}
