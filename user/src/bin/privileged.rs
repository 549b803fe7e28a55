//! Tries one thing ring 3 may not do, chosen by its argument (the index
//! into [`ATTEMPTS`]): the kernel must kill it with the exception the CPU
//! raised and keep running. Exit 0 means the attempt did nothing the
//! kernel noticed, which the test counts as a failure.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::arch::asm;
use pkrt::println;

/// (name, attempt). Each attempt traps in the CPU before it can change
/// anything; none returns when the kernel is right.
const ATTEMPTS: [(&str, fn()); 17] = [
    ("hlt", hlt),
    ("cli", cli),
    ("port read", port_read),
    ("int3", int3),
    ("int 0x20 (the timer's vector)", int_timer),
    ("int 0x0e (the page fault's vector)", int_page_fault),
    ("ud2", ud2),
    ("syscall instruction", syscall_instruction),
    ("sysenter", sysenter),
    ("mov to cr3", write_cr3),
    ("divide by zero", divide_by_zero),
    ("trap flag, then a system call", trap_flag_then_syscall),
    ("wrmsr", wrmsr),
    ("lidt", lidt),
    ("kernel data selector into ds", kernel_selector),
    ("iretq to ring 0", iretq_to_ring_0),
    ("a non-canonical stack across ticks and a system call", non_canonical_stack),
];

// SAFETY (every attempt below): each instruction is one ring 3 may not
// execute, or one that traps at once (#DE, #UD, #DB); the CPU raises the
// exception before the instruction has any effect, and the kernel ends
// this process. Nothing here touches memory the program owns.

fn hlt() {
    // SAFETY: see above.
    unsafe { asm!("hlt") };
}

fn cli() {
    // SAFETY: see above.
    unsafe { asm!("cli") };
}

fn port_read() {
    // SAFETY: see above (IOPL is 0 and there is no I/O bitmap).
    unsafe { asm!("in al, dx", in("dx") 0x3f8u16, out("al") _) };
}

fn int3() {
    // SAFETY: see above (the breakpoint gate is the kernel's only).
    unsafe { asm!("int3") };
}

fn int_timer() {
    // SAFETY: see above.
    unsafe { asm!("int 0x20") };
}

fn int_page_fault() {
    // SAFETY: see above: a software `int 14` pushes no error code, and a
    // handler that trusted the frame would read garbage; the gate's DPL
    // turns it into a #GP first.
    unsafe { asm!("int 0x0e") };
}

fn ud2() {
    // SAFETY: see above.
    unsafe { asm!("ud2") };
}

fn syscall_instruction() {
    // SAFETY: see above: the kernel enters only through `int 0x80`, and
    // with EFER.SCE clear `syscall` is an invalid opcode.
    unsafe { asm!("syscall", out("rcx") _, out("r11") _) };
}

fn sysenter() {
    // SAFETY: see above: with IA32_SYSENTER_CS at 0, `sysenter` is a #GP.
    unsafe { asm!("sysenter") };
}

fn write_cr3() {
    // SAFETY: see above.
    unsafe { asm!("mov cr3, {}", in(reg) 0u64) };
}

fn divide_by_zero() {
    // SAFETY: see above (a #DE, before any register is written).
    unsafe { asm!("div {0}", in(reg) 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _) };
}

fn trap_flag_then_syscall() {
    // Sets TF (single-step): the next instruction, the system call, runs
    // and a debug trap follows it. The kernel's gate clears TF on entry, so
    // the trap must come in ring 3 after the return, never in the kernel.
    // SAFETY: see above; the yield call is harmless in itself.
    unsafe {
        asm!(
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "int 0x80",
            "nop",
            inout("rax") abi::Syscall::Yield as u64 => _,
            out("rdi") _, out("rsi") _, out("rdx") _, out("r10") _,
        )
    };
}

fn wrmsr() {
    // SAFETY: see above (IA32_LSTAR).
    unsafe { asm!("wrmsr", in("ecx") 0xc000_0082u32, in("eax") 0u32, in("edx") 0u32) };
}

fn lidt() {
    let table = [0u8; 10];
    // SAFETY: see above.
    unsafe { asm!("lidt [{}]", in(reg) table.as_ptr()) };
}

fn kernel_selector() {
    // The kernel's data selector (GDT entry 2, RPL 0): a #GP in ring 3,
    // whatever the GDT's order, as no selector with RPL 0 may be loaded.
    // SAFETY: see above.
    unsafe { asm!("mov ds, {0:x}", in(reg) 0x10u16) };
}

fn iretq_to_ring_0() {
    // A frame that returns to the kernel's code selector at ring 0: the
    // CPU refuses an iretq to a more privileged level (#GP).
    // SAFETY: see above.
    unsafe {
        asm!(
            "mov rax, rsp",
            "push 0",          // SS
            "push rax",        // RSP
            "pushfq",          // RFLAGS
            "push 0x08",       // CS: a ring-0 selector
            "lea rax, [rip]",  // RIP: anywhere
            "push rax",
            "iretq",
            out("rax") _,
        )
    };
}

fn non_canonical_stack() {
    // The kernel never uses the process's stack (traps switch to the
    // kernel's), so a stack pointer nothing can use must cross timer
    // ticks, a time-slice switch and a system call untouched, and only
    // the process's own push may fail (#SS). A kernel that read the user
    // stack, or an iretq that refused the value, would fault in ring 0.
    // SAFETY: see above; rsp is restored by nobody: the push ends us.
    unsafe {
        asm!(
            "mov rsp, {bad}",
            "2:",
            "dec {n}",
            "jnz 2b",
            "int 0x80",
            "push rax",
            bad = in(reg) 0x8000_0000_0000_1000u64,
            n = inout(reg) 20_000_000u64 => _,
            inout("rax") abi::Syscall::Yield as u64 => _,
            out("rdi") _, out("rsi") _, out("rdx") _, out("r10") _,
        )
    };
}

fn main(arg: u64) -> i32 {
    let Some(&(name, attempt)) = ATTEMPTS.get(arg as usize) else { return 2 };
    println!("privileged: {name}");
    attempt();
    println!("privileged: {name} did not trap (wrong)");
    0
}

pkrt::entry!(with_arg main);
