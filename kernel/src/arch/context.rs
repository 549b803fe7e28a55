//! Saving and resuming kernel contexts (setjmp/longjmp in asm), and the
//! first entry into user mode.
//!
//! [`guarded_call`] saves the caller's callee-saved registers and stack
//! pointer in a [`JumpBuf`] and calls a function; [`jump_back`] (from a panic
//! handler, or an interrupt handler that rewrote its return frame to land
//! there) resumes the saved context as if `guarded_call` had returned 1.
//! [`enter_user`] saves the same way, then "returns" from a trap frame into
//! ring 3; the scheduler comes back through `jump_back`.

use super::trap::TrapFrame;
use core::arch::global_asm;

/// Callee-saved registers and stack pointer (field order = asm offsets).
#[derive(Default)]
#[repr(C)]
pub struct JumpBuf {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rsp: u64,
}

impl JumpBuf {
    pub const fn new() -> Self {
        JumpBuf { rbx: 0, rbp: 0, r12: 0, r13: 0, r14: 0, r15: 0, rsp: 0 }
    }

    /// The saved stack pointer (valid after a save).
    pub fn rsp(&self) -> u64 {
        self.rsp
    }
}

global_asm!(
    r#"
    .section .text.context, "ax"
    .macro PK_SAVE_CONTEXT
        mov [rdi + 0], rbx
        mov [rdi + 8], rbp
        mov [rdi + 16], r12
        mov [rdi + 24], r13
        mov [rdi + 32], r14
        mov [rdi + 40], r15
        mov [rdi + 48], rsp
    .endm

    // u64 pk_guarded_call(JumpBuf *buf, void (*f)(void *), void *arg)
    .global pk_guarded_call
    pk_guarded_call:
        PK_SAVE_CONTEXT
        sub rsp, 8
        mov rdi, rdx
        call rsi
        add rsp, 8
        xor eax, eax
        ret

    // u64 pk_enter_user(JumpBuf *buf, const TrapFrame *frame): restores
    // `frame` (built at the top of the user-trap stack) and iretqs.
    .global pk_enter_user
    pk_enter_user:
        PK_SAVE_CONTEXT
        mov rsp, rsi
        jmp pk_trap_return

    // noreturn pk_jump_back(const JumpBuf *buf)
    .global pk_jump_back
    pk_jump_back:
        mov rbx, [rdi + 0]
        mov rbp, [rdi + 8]
        mov r12, [rdi + 16]
        mov r13, [rdi + 24]
        mov r14, [rdi + 32]
        mov r15, [rdi + 40]
        mov rsp, [rdi + 48]
        mov eax, 1
        ret
    "#
);

extern "C" {
    fn pk_guarded_call(buf: *mut JumpBuf, f: extern "C" fn(*mut u8), arg: *mut u8) -> u64;
    fn pk_enter_user(buf: *mut JumpBuf, frame: *const TrapFrame) -> u64;
    fn pk_jump_back(buf: *const JumpBuf) -> !;
}

/// Calls `f(arg)`; true if it returned, false if [`jump_back`] resumed here.
///
/// # Safety
/// `buf` must stay valid and unused by anyone else until the call returns.
/// Frames abandoned by a jump back are not unwound (their destructors do not
/// run).
pub unsafe fn guarded_call(buf: *mut JumpBuf, f: extern "C" fn(*mut u8), arg: *mut u8) -> bool {
    // SAFETY: forwarded to the caller.
    unsafe { pk_guarded_call(buf, f, arg) == 0 }
}

/// Enters the user context `frame` (copied to the top of the user-trap
/// stack first); returns when a trap handler calls [`jump_back`] with `buf`.
///
/// # Safety
/// `frame` must describe a ring-3 context (user CS/SS selectors, IF set) in
/// the active address space, and `buf` must stay valid until the return.
pub unsafe fn enter_user(buf: *mut JumpBuf, frame: &TrapFrame) {
    let slot = super::gdt::user_trap_stack_top() - core::mem::size_of::<TrapFrame>() as u64;
    let slot = slot as *mut TrapFrame;
    // SAFETY: the top of the user-trap stack is free: no user trap is being
    // handled while the scheduler (kernel code on its own stack) runs.
    unsafe {
        slot.write(frame.clone());
        pk_enter_user(buf, slot);
    }
}

/// The address to put in a trap frame's RIP to resume `buf` (with RDI = buf).
pub fn jump_back_address() -> u64 {
    pk_jump_back as *const () as u64
}

/// Resumes the context saved in `buf`.
///
/// # Safety
/// `buf` must hold a context saved by [`guarded_call`] or [`enter_user`] that
/// has not returned yet.
pub unsafe fn jump_back(buf: *const JumpBuf) -> ! {
    // SAFETY: forwarded to the caller.
    unsafe { pk_jump_back(buf) }
}
