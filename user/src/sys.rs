//! Raw system calls (`int 0x80`, see the `abi` crate).

use abi::{Error, MemStats, Syscall};
use core::arch::asm;

fn call(number: Syscall, a: u64, b: u64, c: u64) -> Result<u64, Error> {
    let ret: i64;
    // SAFETY: the kernel's syscall gate reads rax/rdi/rsi/rdx, writes rax
    // and preserves every other register; it only touches memory the
    // arguments name, after validating it.
    unsafe {
        asm!("int 0x80", inlateout("rax") number as u64 => ret, in("rdi") a, in("rsi") b, in("rdx") c, options(nostack));
    }
    Error::from_return(ret)
}

/// Raw call with an arbitrary number and arguments (for tests of the ABI).
pub fn raw(number: u64, a: u64, b: u64, c: u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `call`.
    unsafe {
        asm!("int 0x80", inlateout("rax") number => ret, in("rdi") a, in("rsi") b, in("rdx") c, options(nostack));
    }
    ret
}

pub fn exit(code: i32) -> ! {
    let _ = call(Syscall::Exit, code as u64, 0, 0);
    unreachable!("exit returned")
}

pub fn write(bytes: &[u8]) -> Result<u64, Error> {
    call(Syscall::Write, bytes.as_ptr() as u64, bytes.len() as u64, 0)
}

pub fn reserve(len: u64, prot: u64) -> Result<u64, Error> {
    call(Syscall::Reserve, len, prot, 0)
}

pub fn commit(addr: u64, len: u64) -> Result<u64, Error> {
    call(Syscall::Commit, addr, len, 0)
}

pub fn decommit(addr: u64, len: u64) -> Result<u64, Error> {
    call(Syscall::Decommit, addr, len, 0)
}

pub fn release(addr: u64, len: u64) -> Result<u64, Error> {
    call(Syscall::Release, addr, len, 0)
}

pub fn protect(addr: u64, len: u64, prot: u64) -> Result<u64, Error> {
    call(Syscall::Protect, addr, len, prot)
}

pub fn yield_now() {
    let _ = call(Syscall::Yield, 0, 0, 0);
}

pub fn memstats() -> MemStats {
    let mut stats = MemStats::default();
    call(Syscall::MemStats, &mut stats as *mut MemStats as u64, 0, 0).expect("memstats on our own stack");
    stats
}
