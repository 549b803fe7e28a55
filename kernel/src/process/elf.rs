//! Just enough ELF64 to load a static x86_64 executable: the header and the
//! PT_LOAD program headers, every offset and size checked against the file.

/// A loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub writable: bool,
    pub executable: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    NotElf64LittleEndian,
    NotX86_64,
    NotStaticExecutable,
    BadProgramHeaders,
    SegmentOutsideFile,
    /// A segment's `vaddr + mem_size` overflows or leaves the user half.
    SegmentOutsideUserSpace,
    /// A segment's address and file offset differ by other than a
    /// multiple of the page size, so its pages cannot be mapped from the
    /// file's pages.
    SegmentMisaligned,
}

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PHDR_SIZE: usize = 56;

fn u16_at(data: &[u8], at: usize) -> Result<u16, ElfError> {
    let bytes = data.get(at..at + 2).ok_or(ElfError::TooShort)?;
    Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, ElfError> {
    let bytes = data.get(at..at + 4).ok_or(ElfError::TooShort)?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

fn u64_at(data: &[u8], at: usize) -> Result<u64, ElfError> {
    let bytes = data.get(at..at + 8).ok_or(ElfError::TooShort)?;
    Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

/// The entry point and the loadable segments of an executable whose first
/// bytes are `data` (the headers must be in them) and whose size is
/// `file_len`.
pub fn parse(data: &[u8], file_len: u64) -> Result<(u64, impl Iterator<Item = Segment> + '_), ElfError> {
    if data.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return Err(ElfError::NotElf64LittleEndian);
    }
    if u16_at(data, 18)? != EM_X86_64 {
        return Err(ElfError::NotX86_64);
    }
    if u16_at(data, 16)? != ET_EXEC {
        return Err(ElfError::NotStaticExecutable);
    }
    let entry = u64_at(data, 24)?;
    let phoff = u64_at(data, 32)? as usize;
    let (phentsize, phnum) = (u16_at(data, 54)? as usize, u16_at(data, 56)? as usize);
    if phentsize != PHDR_SIZE || phoff.checked_add(phnum * PHDR_SIZE).is_none_or(|end| end > data.len()) {
        return Err(ElfError::BadProgramHeaders);
    }
    let mut segments = (0..phnum).map(move |i| phoff + i * PHDR_SIZE);
    // Validate every segment before handing out the iterator.
    for at in segments.clone() {
        if u32_at(data, at)? == PT_LOAD {
            let (offset, file_size, mem_size) =
                (u64_at(data, at + 8)?, u64_at(data, at + 32)?, u64_at(data, at + 40)?);
            if file_size > mem_size || offset.checked_add(file_size).is_none_or(|end| end > file_len) {
                return Err(ElfError::SegmentOutsideFile);
            }
            let vaddr = u64_at(data, at + 16)?;
            if vaddr.checked_add(mem_size).is_none_or(|end| end > mm::vm::USER_END) {
                return Err(ElfError::SegmentOutsideUserSpace);
            }
            if !vaddr.wrapping_sub(offset).is_multiple_of(mm::paging::PAGE_SIZE) {
                return Err(ElfError::SegmentMisaligned);
            }
        }
    }
    let loads = core::iter::from_fn(move || loop {
        let at = segments.next()?;
        if u32_at(data, at).ok()? != PT_LOAD {
            continue;
        }
        let flags = u32_at(data, at + 4).ok()?;
        return Some(Segment {
            vaddr: u64_at(data, at + 16).ok()?,
            file_offset: u64_at(data, at + 8).ok()?,
            file_size: u64_at(data, at + 32).ok()?,
            mem_size: u64_at(data, at + 40).ok()?,
            writable: flags & PF_W != 0,
            executable: flags & PF_X != 0,
        });
    });
    Ok((entry, loads))
}
