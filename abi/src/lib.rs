//! The system-call ABI, shared by the kernel and user programs so the two
//! cannot disagree.
//!
//! A call is `int 0x80` with the number in `rax` and arguments in `rdi`,
//! `rsi`, `rdx`, `r10` (Linux's order); the result comes back in `rax`: a value ≥ 0 on success, or
//! a negative [`Error`] code. Every other register is preserved.
#![no_std]
#![forbid(unsafe_code)]

/// The page size: every address and length a memory call takes is a
/// multiple of it. The kernel's paging geometry (`mm::paging`) builds on it.
pub const PAGE_SIZE: u64 = 4096;

/// The interrupt vector of the system-call gate.
pub const SYSCALL_VECTOR: u8 = 0x80;

/// System-call numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Syscall {
    /// exit(code): ends the process; never returns.
    Exit = 0,
    /// write(ptr, len): writes bytes to the console; returns len.
    Write = 1,
    /// reserve(len, prot | NO_RESERVE, addr): takes an address range, no
    /// memory yet (at `addr` if it is not 0, else anywhere); returns its
    /// address. A writable range is charged to the commit account (see
    /// [`NO_RESERVE`]); the overcommit policy may refuse it (NoMemory).
    Reserve = 2,
    /// commit(addr, len): brings the pages in now; returns how many it
    /// brought in (a page the call's own reclaim evicted and brought in
    /// again counts twice). A long call is restarted at the end of its
    /// time slice, transparently: the process sees one call.
    Commit = 3,
    /// decommit(addr, len): frees the frames, pages read zero again; returns how many.
    Decommit = 4,
    /// release(addr, len): gives the range up; returns frames freed.
    Release = 5,
    /// protect(addr, len, prot): changes access; returns 0.
    Protect = 6,
    /// yield(): lets the other processes run; returns 0.
    Yield = 7,
    /// memstats(ptr): fills a [`MemStats`] at ptr; returns 0.
    MemStats = 8,
    /// open(name_ptr, name_len): the id of the file of that name on the
    /// file disk.
    Open = 9,
    /// file_size(id): the file's size in bytes.
    FileSize = 10,
    /// map(id, offset, len, prot | MAP_PRIVATE): maps `len` bytes of the
    /// file from page-aligned `offset` at an address the kernel picks;
    /// returns it. Pages are read on first touch. Shared (the default):
    /// read-only, the page cache's frames. [`MAP_PRIVATE`]: may be
    /// writable; a written page becomes the process's own copy. The range
    /// may run past the end of the file; touching a page wholly past it
    /// kills the process (a bus error). `release` unmaps.
    Map = 11,
    /// on_event(kind, handler): runs `handler(kind, info)` on the next
    /// return to user mode after an event of `kind` ([`EVENT_REDLINE`]: the
    /// process crossed its redline, info = bytes charged; [`EVENT_PRESSURE`]:
    /// the pressure level changed, info = the new level; [`EVENT_SCAVENGE`]:
    /// scavenge your heap, asked by the operator). The handler runs
    /// on the interrupted stack (below its red zone) and must end with
    /// `event_return`; events that arrive meanwhile wait for it. Handler 0
    /// unregisters. Returns 0.
    OnEvent = 12,
    /// event_return(): back to where the handler interrupted, every
    /// register as it was. Invalid outside a handler.
    EventReturn = 13,
    /// set_oom_score_adj(adj): -1000..=1000; a process may raise its own
    /// but not lower it below what it was started with (NotPermitted).
    SetOomScoreAdj = 14,
}

impl Syscall {
    pub fn from_number(n: u64) -> Option<Syscall> {
        use Syscall::*;
        [
            Exit,
            Write,
            Reserve,
            Commit,
            Decommit,
            Release,
            Protect,
            Yield,
            MemStats,
            Open,
            FileSize,
            Map,
            OnEvent,
            EventReturn,
            SetOomScoreAdj,
        ]
        .into_iter()
        .find(|s| *s as u64 == n)
    }
}

/// Protection bits for reserve/protect (memory is always readable).
pub const PROT_WRITE: u64 = 1;
pub const PROT_EXEC: u64 = 2;
pub const PROT_MASK: u64 = PROT_WRITE | PROT_EXEC;
/// map(): a private (copy-on-write) mapping instead of a shared one.
pub const MAP_PRIVATE: u64 = 1 << 8;
/// reserve(): do not promise memory for the range (Linux's
/// `MAP_NORESERVE`), for sparse reservations much larger than what will be
/// touched. Under overcommit modes 0 and 1 the range is not charged to
/// `Committed_AS`, so touching more than memory holds can end in an
/// out-of-memory kill; mode 2 charges it anyway.
pub const NO_RESERVE: u64 = 1 << 9;

/// on_event() kinds.
pub const EVENT_REDLINE: u64 = 1;
pub const EVENT_PRESSURE: u64 = 2;
/// The operator asked the process to hand its free heap pages back (the
/// shell's `scavenge PID`); info = its resident pages at the request.
pub const EVENT_SCAVENGE: u64 = 3;

/// Error codes, returned negated in `rax`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Error {
    /// Unknown system-call number.
    NoSuchCall = 1,
    /// Zero length, unaligned address or length, unknown protection bits.
    Invalid = 2,
    /// A pointer argument is not readable/writable process memory.
    BadAddress = 3,
    /// The range is not in the process's half, or leaves canonical space.
    OutOfRange = 4,
    /// The range overlaps a reserved region.
    Overlap = 5,
    /// Part of the range is not reserved.
    NotReserved = 6,
    /// Out of physical memory, or of address space within the limit.
    NoMemory = 7,
    /// The page-table entries are not ones the kernel wrote.
    NotSupported = 8,
    /// A page could not be read back from swap or from the file disk (a
    /// device error).
    Io = 9,
    /// No file of that name, or no file of that id.
    NotFound = 10,
    /// A shared file mapping cannot be writable (map it private).
    ReadOnly = 11,
    /// The process's RAM quota would be passed.
    QuotaExceeded = 12,
    /// The range includes the page the kernel shares with every process
    /// (the pressure page), which no process may change or give up.
    Protected = 13,
    /// The process may not do that (lower its oom_score_adj below its start).
    NotPermitted = 14,
}

impl Error {
    pub const ALL: [Error; 14] = [
        Error::NoSuchCall,
        Error::Invalid,
        Error::BadAddress,
        Error::OutOfRange,
        Error::Overlap,
        Error::NotReserved,
        Error::NoMemory,
        Error::NotSupported,
        Error::Io,
        Error::NotFound,
        Error::ReadOnly,
        Error::QuotaExceeded,
        Error::Protected,
        Error::NotPermitted,
    ];

    /// The value a failed call returns.
    pub fn to_return(self) -> i64 {
        -(self as i64)
    }

    /// Decodes a call's return value.
    pub fn from_return(value: i64) -> Result<u64, Error> {
        if value >= 0 {
            return Ok(value as u64);
        }
        // An unknown negative value means the kernel speaks another ABI.
        Err(Error::ALL.into_iter().find(|e| e.to_return() == value).unwrap_or(Error::NoSuchCall))
    }
}

/// What memstats() reports about the calling process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MemStats {
    pub resident_pages: u64,
    pub page_table_frames: u64,
    pub reserved_bytes: u64,
    pub demand_zero_faults: u64,
    /// Free frames in the whole machine.
    pub free_frames: u64,
    /// Pages of this process in swap now.
    pub swapped_pages: u64,
    /// Faults that read a page of this process back from swap.
    pub swap_in_faults: u64,
    /// Of the resident pages, those that are page-cache frames (mapped
    /// files, program text), shared with other mappings of the same page.
    pub file_pages: u64,
    /// What the RAM quota counts: own frames and kernel records, in bytes.
    pub charged_bytes: u64,
    /// The RAM quota and the redline, in bytes (`u64::MAX`: none).
    pub ram_quota: u64,
    pub redline: u64,
    /// Pages of this process promised by commit accounting.
    pub committed_pages: u64,
    /// Pages of this process read back from swap: those the swap-in
    /// faults asked for and those read ahead with them.
    pub swap_in_pages: u64,
}

impl MemStats {
    pub const SIZE: usize = core::mem::size_of::<MemStats>();

    /// The struct as the user sees it in memory (`#[repr(C)]`, little endian).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let words = [
            self.resident_pages,
            self.page_table_frames,
            self.reserved_bytes,
            self.demand_zero_faults,
            self.free_frames,
            self.swapped_pages,
            self.swap_in_faults,
            self.file_pages,
            self.charged_bytes,
            self.ram_quota,
            self.redline,
            self.committed_pages,
            self.swap_in_pages,
        ];
        let mut bytes = [0; Self::SIZE];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }
}

const _: () = assert!(MemStats::SIZE == 13 * 8, "to_bytes lists every field");

/// Most bytes one write() call takes.
pub const MAX_WRITE: u64 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_errors_round_trip() {
        for n in 0..15 {
            assert_eq!(Syscall::from_number(n).map(|s| s as u64), Some(n));
        }
        assert_eq!(Syscall::from_number(15), None);
        for e in Error::ALL {
            assert_eq!(Error::from_return(e.to_return()), Err(e));
        }
        assert_eq!(Error::from_return(42), Ok(42));
    }

    #[test]
    fn memstats_bytes_follow_the_repr_c_layout() {
        let s = MemStats {
            resident_pages: 1,
            page_table_frames: 2,
            reserved_bytes: 3,
            demand_zero_faults: 4,
            free_frames: 5,
            swapped_pages: 6,
            swap_in_faults: 7,
            file_pages: 8,
            charged_bytes: 9,
            ram_quota: 10,
            redline: 11,
            committed_pages: 12,
            swap_in_pages: 13,
        };
        let bytes = s.to_bytes();
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            assert_eq!(u64::from_le_bytes(chunk.try_into().unwrap()), i as u64 + 1);
        }
    }
}

/// The one small deterministic generator of the project (xorshift64*),
/// for everything that must behave the same for the same seed: user
/// programs (`pkrt::Rng`), the test data pattern below, and the host's
/// reference-trace generator (`mm::reclaim::sim::TraceRng`). Here because
/// this is the crate all of them depend on. Not for anything secret.
pub mod rng {
    pub struct Xorshift64Star(u64);

    impl Xorshift64Star {
        /// A generator whose state is `seed` scrambled (any seed, 0 too).
        pub fn new(seed: u64) -> Self {
            Xorshift64Star(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }

        /// A generator whose state is `state` itself (0 becomes 1: the
        /// all-zero state never leaves zero).
        pub fn from_state(state: u64) -> Self {
            Xorshift64Star(state.max(1))
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number in `0..n` (n > 0).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }
    }
}

/// The self-checking page format of the file disk's test data
/// (`data/pages32`): written on the host by `pagekeeper-boot`, checked by
/// the programs that map it. Here so that the writer and the checkers
/// cannot disagree.
///
/// Page `index` holds, as little-endian words: `index`, then 510 words of
/// [`rng::Xorshift64Star`] seeded by `index`, then the FNV-1a hash of the
/// 4088 bytes before it.
pub mod pattern {
    use super::PAGE_SIZE;

    const WORDS: usize = PAGE_SIZE as usize / 8;

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }

    /// Fills `page` with page `index` of the pattern.
    pub fn fill(index: u64, page: &mut [u8; PAGE_SIZE as usize]) {
        let mut rng = super::rng::Xorshift64Star::new(index);
        for (i, chunk) in page.chunks_exact_mut(8).enumerate().take(WORDS - 1) {
            let word = if i == 0 { index } else { rng.next_u64() };
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let sum = fnv1a(&page[..PAGE_SIZE as usize - 8]);
        page[PAGE_SIZE as usize - 8..].copy_from_slice(&sum.to_le_bytes());
    }

    /// Whether `page` is intact page `index`: its first word names it and
    /// its last word is the hash of the rest.
    pub fn check(index: u64, page: &[u8]) -> bool {
        let word = |i: usize| u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        page.len() == PAGE_SIZE as usize
            && word(0) == index
            && word(WORDS - 1) == fnv1a(&page[..PAGE_SIZE as usize - 8])
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_filled_page_checks_and_any_flipped_bit_does_not() {
            let mut page = [0u8; PAGE_SIZE as usize];
            fill(77, &mut page);
            assert!(check(77, &page));
            assert!(!check(78, &page), "another page's index");
            for bit in [0, 100, 4087 * 8, 4095 * 8 + 7] {
                let mut bad = page;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!check(77, &bad), "bit {bit}");
            }
        }
    }
}

/// The pressure page (shared/seeds/002's low-memory notification): one
/// page the kernel maps read-only at [`PRESSURE_PAGE`](pressure::PRESSURE_PAGE)
/// in every process and keeps current, so a process reads how short
/// memory is with a load, no system call. Words (u64, little endian) at
/// the indices below; `on_event(EVENT_PRESSURE, ..)` also tells a
/// process when the level changes.
pub mod pressure {
    /// Its address: the last page of the user half.
    pub const PRESSURE_PAGE: u64 = 0x0000_7fff_ffff_f000;

    /// 0 normal, 1 low (reclaim running), 2 medium (page cache spent,
    /// swapping), 3 critical (nothing left to reclaim: OOM kills near).
    pub const LEVEL: usize = 0;
    /// Bumped on every level change.
    pub const GENERATION: usize = 1;
    pub const FREE_FRAMES: usize = 2;
    /// Free frames plus the clean page cache (Linux's MemAvailable).
    pub const AVAILABLE_FRAMES: usize = 3;
    pub const TOTAL_FRAMES: usize = 4;
    pub const SWAP_FREE: usize = 5;
    /// Committed_AS and CommitLimit, in pages.
    pub const COMMITTED: usize = 6;
    pub const COMMIT_LIMIT: usize = 7;
    /// Times the kernel rewrote the page.
    pub const UPDATES: usize = 8;
    pub const WORDS: usize = 9;

    pub const LEVEL_NAMES: [&str; 4] = ["normal", "low", "medium", "critical"];
}
