//! Calls every system call with bad arguments and checks each error code.
//! Prints one line per check; exits with the number of failed checks.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use abi::{Error, Syscall, PROT_WRITE};
use pkrt::{println, sys};

const PAGE: u64 = abi::PAGE_SIZE;
const KERNEL: u64 = 0xffff_8000_0000_0000;

fn check(name: &str, got: i64, want: Error, failures: &mut i32) {
    let ok = got == want.to_return();
    println!("syscall_check: {} {name}: got {got}, want {:?}", if ok { "ok  " } else { "FAIL" }, want);
    if !ok {
        *failures += 1;
    }
}

fn main() -> i32 {
    let mut f = 0;
    let n = |s: Syscall| s as u64;
    check("unknown number", sys::raw(999, 0, 0, 0), Error::NoSuchCall, &mut f);
    check("reserve 0 bytes", sys::raw(n(Syscall::Reserve), 0, PROT_WRITE, 0), Error::Invalid, &mut f);
    check(
        "reserve unaligned length",
        sys::raw(n(Syscall::Reserve), 100, PROT_WRITE, 0),
        Error::Invalid,
        &mut f,
    );
    check("reserve bad prot bits", sys::raw(n(Syscall::Reserve), PAGE, 0x80, 0), Error::Invalid, &mut f);
    check(
        "reserve past the limit",
        sys::raw(n(Syscall::Reserve), 1 << 46, PROT_WRITE, 0),
        Error::NoMemory,
        &mut f,
    );
    let base = sys::reserve(4 * PAGE, PROT_WRITE).expect("a good reserve works");
    check("commit unaligned", sys::raw(n(Syscall::Commit), base + 1, PAGE, 0), Error::Invalid, &mut f);
    check("commit kernel address", sys::raw(n(Syscall::Commit), KERNEL, PAGE, 0), Error::OutOfRange, &mut f);
    check(
        "commit non-canonical",
        sys::raw(n(Syscall::Commit), 0x0000_8000_0000_0000, PAGE, 0),
        Error::OutOfRange,
        &mut f,
    );
    check(
        "commit beyond the region",
        sys::raw(n(Syscall::Commit), base, 5 * PAGE, 0),
        Error::NotReserved,
        &mut f,
    );
    check(
        "decommit unreserved",
        sys::raw(n(Syscall::Decommit), 0x1000_0000_0000, PAGE, 0),
        Error::NotReserved,
        &mut f,
    );
    check("decommit page 0", sys::raw(n(Syscall::Decommit), 0, PAGE, 0), Error::OutOfRange, &mut f);
    check("protect bad prot", sys::raw(n(Syscall::Protect), base, PAGE, 0xff), Error::Invalid, &mut f);
    check("protect zero length", sys::raw(n(Syscall::Protect), base, 0, PROT_WRITE), Error::Invalid, &mut f);
    check(
        "release overflowing range",
        sys::raw(n(Syscall::Release), base, u64::MAX - PAGE + 1, 0),
        Error::OutOfRange,
        &mut f,
    );
    check(
        "write from a kernel address",
        sys::raw(n(Syscall::Write), KERNEL, 10, 0),
        Error::BadAddress,
        &mut f,
    );
    check(
        "write from unreserved memory",
        sys::raw(n(Syscall::Write), 0x2000_0000_0000, 10, 0),
        Error::BadAddress,
        &mut f,
    );
    check("write too long", sys::raw(n(Syscall::Write), base, 1 << 20, 0), Error::Invalid, &mut f);
    check(
        "memstats to a kernel address",
        sys::raw(n(Syscall::MemStats), KERNEL, 0, 0),
        Error::BadAddress,
        &mut f,
    );
    // A destination whose first bytes are writable and the rest not: the
    // call fails and writes nothing at all.
    let tail = base + 4 * PAGE - 16;
    // SAFETY: the last 16 bytes of the reserved, writable range.
    unsafe { core::ptr::write_bytes(tail as *mut u8, 0x5a, 16) };
    check(
        "memstats straddling the end of a region",
        sys::raw(n(Syscall::MemStats), tail, 0, 0),
        Error::BadAddress,
        &mut f,
    );
    // SAFETY: as above.
    let untouched = (0..16).all(|i| unsafe { ((tail + i) as *const u8).read_volatile() } == 0x5a);
    println!("syscall_check: {} failed memstats wrote nothing", if untouched { "ok  " } else { "FAIL" });
    if !untouched {
        f += 1;
    }
    sys::decommit(base + 3 * PAGE, PAGE).expect("the good calls below start from nothing resident");
    sys::protect(base, PAGE, 0).expect("make the first page read-only");
    check(
        "memstats into read-only memory",
        sys::raw(n(Syscall::MemStats), base, 0, 0),
        Error::BadAddress,
        &mut f,
    );
    check(
        "overlapping reserve (fixed address)",
        sys::raw(n(Syscall::Reserve), PAGE, PROT_WRITE, base),
        Error::Overlap,
        &mut f,
    );
    // Every call keeps every register but rax, good or bad.
    let line = b"syscall_check: a line written with sentinels in every register\n";
    let mut stats = abi::MemStats::default();
    let stats_at = &mut stats as *mut abi::MemStats as u64;
    let calls: [(&str, u64, [u64; 4]); 6] = [
        ("unknown number", 999, [0; 4]),
        ("yield", n(Syscall::Yield), [0; 4]),
        ("write", n(Syscall::Write), [line.as_ptr() as u64, line.len() as u64, 0, 0]),
        ("memstats", n(Syscall::MemStats), [stats_at, 0, 0, 0]),
        ("reserve", n(Syscall::Reserve), [2 * PAGE, PROT_WRITE, 0, 0]),
        ("protect (refused)", n(Syscall::Protect), [KERNEL, PAGE, 0, 0]),
    ];
    for (name, number, args) in calls {
        let (ret, kept) = sys::raw_keeping_registers(number, args);
        println!("syscall_check: {} {name} keeps every register but rax", if kept { "ok  " } else { "FAIL" });
        if !kept {
            f += 1;
        }
        if number == n(Syscall::Reserve) && ret > 0 {
            let _ = sys::release(ret as u64, 2 * PAGE);
        }
    }
    // After all that, good calls still work.
    let ok = sys::commit(base, 4 * PAGE) == Ok(4) && sys::release(base, 4 * PAGE) == Ok(4);
    println!("syscall_check: good calls after bad ones: {ok}");
    if !ok {
        f += 1;
    }
    f
}

pkrt::entry!(main);
