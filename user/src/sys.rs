//! Raw system calls (`int 0x80`, see the `abi` crate).

use abi::{Error, MemStats, Syscall};
use core::arch::asm;

fn call(number: Syscall, a: u64, b: u64, c: u64) -> Result<u64, Error> {
    call4(number, a, b, c, 0)
}

fn call4(number: Syscall, a: u64, b: u64, c: u64, d: u64) -> Result<u64, Error> {
    Error::from_return(raw4(number as u64, a, b, c, d))
}

/// Raw call with an arbitrary number and arguments (for tests of the ABI).
pub fn raw(number: u64, a: u64, b: u64, c: u64) -> i64 {
    raw4(number, a, b, c, 0)
}

/// Raw call with four arguments (the fourth in r10): the one system-call
/// instruction every call here goes through.
pub fn raw4(number: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
    let ret: i64;
    // SAFETY: the kernel's syscall gate reads rax/rdi/rsi/rdx/r10, writes
    // rax and preserves every other register; it only touches memory the
    // arguments name, after validating it.
    unsafe {
        asm!("int 0x80", inlateout("rax") number => ret, in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d, options(nostack));
    }
    ret
}

/// Raw call that checks the ABI's promise (for tests): makes system call
/// `number` with `args` (rdi, rsi, rdx, r10) and a sentinel in every other
/// register an `asm!` may name (rbx and rbp it may not); returns rax and
/// whether every one of those registers came back as it went in.
pub fn raw_keeping_registers(number: u64, args: [u64; 4]) -> (i64, bool) {
    const SENTINELS: [u64; 8] = [
        0x1111_1111_1111_1111,
        0x2222_2222_2222_2222,
        0x3333_3333_3333_3333,
        0x4444_4444_4444_4444,
        0x5555_5555_5555_5555,
        0x6666_6666_6666_6666,
        0x7777_7777_7777_7777,
        0x8888_8888_8888_8888,
    ];
    let (mut a, mut s) = (args, SENTINELS);
    let ret: i64;
    // SAFETY: the kernel reads the arguments, writes rax and only the
    // memory the arguments name, after validating it (the caller's own);
    // every other register is an operand here, so nothing the compiler
    // keeps is in one the call might change.
    unsafe {
        asm!(
            "int 0x80",
            inlateout("rax") number => ret,
            inout("rdi") a[0], inout("rsi") a[1], inout("rdx") a[2], inout("r10") a[3],
            inout("rcx") s[0], inout("r8") s[1], inout("r9") s[2], inout("r11") s[3],
            inout("r12") s[4], inout("r13") s[5], inout("r14") s[6], inout("r15") s[7],
            options(nostack),
        );
    }
    (ret, a == args && s == SENTINELS)
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

/// The id of the file called `name` on the file disk.
pub fn open(name: &str) -> Result<u64, Error> {
    call(Syscall::Open, name.as_ptr() as u64, name.len() as u64, 0)
}

pub fn file_size(file: u64) -> Result<u64, Error> {
    call(Syscall::FileSize, file, 0, 0)
}

/// Maps `len` bytes of `file` from `offset`; `flags` is PROT_* | MAP_PRIVATE.
pub fn map(file: u64, offset: u64, len: u64, flags: u64) -> Result<u64, Error> {
    call4(Syscall::Map, file, offset, len, flags)
}

/// Runs `handler(kind, info)` on the next return to user mode after an
/// event of `kind` (see `abi::Syscall::OnEvent`; `pkrt::events` wraps it).
pub fn on_event(kind: u64, handler: u64) -> Result<u64, Error> {
    call(Syscall::OnEvent, kind, handler, 0)
}

/// Ends an event handler: back to what it interrupted.
pub fn event_return() -> ! {
    let _ = call(Syscall::EventReturn, 0, 0, 0);
    unreachable!("event_return outside a handler")
}

pub fn set_oom_score_adj(adj: i16) -> Result<u64, Error> {
    call(Syscall::SetOomScoreAdj, adj as i64 as u64, 0, 0)
}
