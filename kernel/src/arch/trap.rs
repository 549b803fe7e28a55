//! Trap entry: one asm stub per vector saves every general-purpose register
//! into a [`TrapFrame`] on the stack and calls [`dispatch`], which decodes the
//! trap once into a [`Trap`] (reading CR2 for a page fault, acknowledging an
//! interrupt) and hands it on: a trap from ring 3 to the process layer, a
//! page fault in ring 0 to the memory manager. On return the stub restores
//! the (possibly modified) frame and `iretq`s, so a handler can redirect
//! execution by editing the frame.
//!
//! ```text
//!  high  ss, rsp, rflags, cs, rip   pushed by the CPU
//!        error code                 by the CPU, or 0 by the stub
//!        vector                     by the stub
//!        rax .. r15                 by trap_common
//!  low   <- rsp passed to dispatch as &mut TrapFrame
//! ```

use super::{pic, timer};
use core::arch::global_asm;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::vm::Access;
use x86_64::registers::control::{Cr2, Cr3};
use x86_64::structures::idt::PageFaultErrorCode;

/// The saved state of the interrupted context, in stack order (lowest address
/// first). Field order must match `trap_common` below.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);

impl TrapFrame {
    /// Ring of the interrupted code (0 kernel, 3 user).
    pub fn privilege_level(&self) -> u64 {
        self.cs & 3
    }
}

/// Vector numbers with a meaning to the kernel.
pub struct Vector;

impl Vector {
    pub const BREAKPOINT: u8 = 3;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const PAGE_FAULT: u8 = 14;
    pub const TIMER: u8 = pic::IRQ_BASE + pic::TIMER_IRQ;
    pub const SYSCALL: u8 = abi::SYSCALL_VECTOR;
}

/// Number of vectors with a stub: the 32 CPU exceptions and the 16 PIC IRQs.
pub const STUB_COUNT: usize = 48;

// The stubs. Vectors 8, 10-14, 17, 21, 29 and 30 get an error code from the
// CPU; for the others the stub pushes 0 so every frame has the same layout.
// On entry the CPU has aligned RSP to 16 before pushing its 5 words; with
// error code, vector and 15 registers the frame is 22 words, so RSP is still
// 16-aligned at the `call`, as the System V ABI requires.
global_asm!(
    r#"
    .section .text.trap, "ax"
    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    pk_trap_stub_\v:
        push 0
        push \v
        jmp pk_trap_common
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
    pk_trap_stub_\v:
        push \v
        jmp pk_trap_common
    .endr

    // The system-call gate (int 0x80, reachable from ring 3).
    .global pk_syscall_stub
    pk_syscall_stub:
        push 0
        push 0x80
        jmp pk_trap_common

    pk_trap_common:
        push rax
        push rbx
        push rcx
        push rdx
        push rsi
        push rdi
        push rbp
        push r8
        push r9
        push r10
        push r11
        push r12
        push r13
        push r14
        push r15
        mov rdi, rsp
        cld
        call {dispatch}
    // pk_enter_user jumps here with RSP at a TrapFrame to resume.
    .global pk_trap_return
    pk_trap_return:
        pop r15
        pop r14
        pop r13
        pop r12
        pop r11
        pop r10
        pop r9
        pop r8
        pop rbp
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rbx
        pop rax
        add rsp, 16
        iretq

    .section .data.rel.ro.trap, "aw"
    .balign 8
    .global pk_trap_stubs
    pk_trap_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
        .quad pk_trap_stub_\v
    .endr
    "#,
    dispatch = sym dispatch,
);

extern "C" {
    static pk_trap_stubs: [u64; STUB_COUNT];
    fn pk_syscall_stub();
}

/// Entry address of the system-call gate's stub.
pub fn syscall_stub() -> u64 {
    pk_syscall_stub as *const () as u64
}

/// Entry addresses of the stubs, indexed by vector.
pub fn stubs() -> &'static [u64; STUB_COUNT] {
    // SAFETY: pk_trap_stubs is the read-only table defined in the asm above,
    // STUB_COUNT entries long.
    unsafe { &*core::ptr::addr_of!(pk_trap_stubs) }
}

/// A page fault, decoded once: the only place CR2 is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// The faulting address (CR2).
    pub address: u64,
    pub error: PageFaultErrorCode,
    /// The faulting instruction.
    pub rip: u64,
}

impl PageFault {
    fn decode(frame: &TrapFrame) -> PageFault {
        PageFault {
            address: Cr2::read_raw(),
            error: PageFaultErrorCode::from_bits_truncate(frame.error_code),
            rip: frame.rip,
        }
    }

    /// The access in the memory manager's terms.
    pub fn access(&self) -> Access {
        Access {
            write: self.error.contains(PageFaultErrorCode::CAUSED_BY_WRITE),
            exec: self.error.contains(PageFaultErrorCode::INSTRUCTION_FETCH),
            user: self.error.contains(PageFaultErrorCode::USER_MODE),
        }
    }

    /// The entry was present: the access broke its rights.
    pub fn protection_violation(&self) -> bool {
        self.error.contains(PageFaultErrorCode::PROTECTION_VIOLATION)
    }
}

/// What a trap is, decoded once by [`dispatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// `int 0x80`.
    Syscall,
    /// A timer tick (already acknowledged and counted).
    Timer,
    /// Another interrupt (already acknowledged), or a spurious one.
    Interrupt,
    PageFault(PageFault),
    /// Any other CPU exception, by vector.
    Exception(u8),
}

/// Breakpoints taken so far (`int3` resumes after the report).
pub static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

/// Handles every trap taken in ring 3 (the process layer): system calls,
/// faults (kill the process, or resolve the page), and interrupts that
/// arrive while a process runs (preemption).
pub type UserTrapHandler = fn(&mut TrapFrame, Trap);

/// Handles a page fault taken in ring 0 (the memory manager): returns when
/// execution may resume (page brought in, or the frame edited to go
/// elsewhere) and panics with a report otherwise.
pub type KernelPageFaultHandler = fn(&mut TrapFrame, &PageFault);

static USER_TRAP_HANDLER: spin::Once<UserTrapHandler> = spin::Once::new();
static KERNEL_PAGE_FAULT_HANDLER: spin::Once<KernelPageFaultHandler> = spin::Once::new();

pub fn set_user_trap_handler(handler: UserTrapHandler) {
    USER_TRAP_HANDLER.call_once(|| handler);
}

/// Installs the memory manager's ring-0 page-fault handler (once).
pub fn set_kernel_page_fault_handler(handler: KernelPageFaultHandler) {
    KERNEL_PAGE_FAULT_HANDLER.call_once(|| handler);
}

fn is_irq(vector: u64) -> bool {
    (u64::from(pic::IRQ_BASE)..u64::from(pic::IRQ_BASE + pic::IRQ_COUNT)).contains(&vector)
}

/// Decodes the trap in `frame`; acknowledges an interrupt (the timer's tick
/// hook may edit the frame).
fn decode(frame: &mut TrapFrame) -> Trap {
    let vector = frame.vector as u8;
    match vector {
        Vector::SYSCALL => Trap::Syscall,
        Vector::PAGE_FAULT => Trap::PageFault(PageFault::decode(frame)),
        v if is_irq(u64::from(v)) => {
            let irq = v - pic::IRQ_BASE;
            let real = pic::end_of_interrupt(irq);
            if real && irq == pic::TIMER_IRQ {
                timer::on_tick(frame);
                return Trap::Timer;
            }
            if real && irq == super::serial::IRQ {
                super::serial::on_interrupt();
            }
            Trap::Interrupt
        }
        v => Trap::Exception(v),
    }
}

extern "C" fn dispatch(frame: &mut TrapFrame) {
    let ring = frame.privilege_level();
    let trap = decode(frame);
    if frame.privilege_level() != ring {
        return; // the tick hook (the test watchdog) sent this trap elsewhere
    }
    if ring == 3 {
        let handler = USER_TRAP_HANDLER.get().expect("ring 3 runs only after the process layer is up");
        return handler(frame, trap);
    }
    match trap {
        Trap::Timer | Trap::Interrupt => {}
        Trap::PageFault(fault) => match KERNEL_PAGE_FAULT_HANDLER.get() {
            Some(handler) => handler(frame, &fault),
            None => {
                panic!("page fault before the memory manager is up\n{}", Report::page_fault(frame, &fault))
            }
        },
        Trap::Exception(Vector::BREAKPOINT) => {
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
            crate::info!("breakpoint, continuing\n{}", Report::new(frame, "int3"));
        }
        Trap::Exception(v) => panic!("unhandled exception\n{}", Report::new(frame, exception_name(v))),
        Trap::Syscall => panic!("int 0x80 from ring 0\n{}", Report::new(frame, "system call")),
    }
}

pub fn exception_name(vector: u8) -> &'static str {
    const NAMES: [&str; 32] = [
        "divide error",
        "debug",
        "non-maskable interrupt",
        "breakpoint",
        "overflow",
        "bound range exceeded",
        "invalid opcode",
        "device not available",
        "double fault",
        "coprocessor segment overrun",
        "invalid TSS",
        "segment not present",
        "stack-segment fault",
        "general protection fault",
        "page fault",
        "reserved",
        "x87 floating-point error",
        "alignment check",
        "machine check",
        "SIMD floating-point error",
        "virtualization exception",
        "control protection exception",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "hypervisor injection",
        "VMM communication",
        "security exception",
        "reserved",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

/// A register report for a trap, printed by handlers and in panics.
pub struct Report<'a> {
    frame: &'a TrapFrame,
    what: &'a str,
    fault: Option<&'a PageFault>,
}

impl<'a> Report<'a> {
    pub fn new(frame: &'a TrapFrame, what: &'a str) -> Self {
        Report { frame, what, fault: None }
    }

    /// The report of a page fault, with its decoded address and error.
    pub fn page_fault(frame: &'a TrapFrame, fault: &'a PageFault) -> Self {
        Report { frame, what: "page fault", fault: Some(fault) }
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.frame;
        writeln!(f, "--- {} (vector {}) in ring {} ---", self.what, r.vector, r.privilege_level())?;
        if let Some(fault) = self.fault {
            writeln!(
                f,
                "address {:#018x}  error {:#x} [{}]",
                fault.address,
                r.error_code,
                PageFaultCause(fault.error)
            )?;
        } else {
            writeln!(f, "error code {:#x}", r.error_code)?;
        }
        writeln!(f, "RIP {:#018x}  CS  {:#06x}  RFLAGS {:#010x}", r.rip, r.cs, r.rflags)?;
        writeln!(
            f,
            "RSP {:#018x}  SS  {:#06x}  CR3    {:#x}",
            r.rsp,
            r.ss,
            Cr3::read_raw().0.start_address()
        )?;
        writeln!(f, "RAX {:#018x}  RBX {:#018x}  RCX {:#018x}", r.rax, r.rbx, r.rcx)?;
        writeln!(f, "RDX {:#018x}  RSI {:#018x}  RDI {:#018x}", r.rdx, r.rsi, r.rdi)?;
        writeln!(f, "RBP {:#018x}  R8  {:#018x}  R9  {:#018x}", r.rbp, r.r8, r.r9)?;
        writeln!(f, "R10 {:#018x}  R11 {:#018x}  R12 {:#018x}", r.r10, r.r11, r.r12)?;
        write!(f, "R13 {:#018x}  R14 {:#018x}  R15 {:#018x}", r.r13, r.r14, r.r15)
    }
}

/// The page-fault error code in words: "write, user, protection violation".
pub struct PageFaultCause(pub PageFaultErrorCode);

impl fmt::Display for PageFaultCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        let access = if c.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
            "instruction fetch"
        } else if c.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
            "write"
        } else {
            "read"
        };
        let mode = if c.contains(PageFaultErrorCode::USER_MODE) { "user" } else { "kernel" };
        let kind = if c.contains(PageFaultErrorCode::PROTECTION_VIOLATION) {
            "protection violation"
        } else {
            "page not present"
        };
        write!(f, "{access}, {mode} mode, {kind}")?;
        if c.contains(PageFaultErrorCode::MALFORMED_TABLE) {
            write!(f, ", reserved bit set in a page table")?;
        }
        Ok(())
    }
}
