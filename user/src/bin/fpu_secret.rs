//! Keeps a secret in every SSE register, on the x87 stack and in MXCSR, and
//! yields again and again so that other processes run in between. Exits 0
//! when its own registers held through every switch, 2 when they did not.
//! (`fpu_spy` checks that the secret never reaches it.)
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::arch::asm;
use pkrt::{println, sys};

const SECRET: u64 = 0x5ec2_e75e_c2e7_5ec2;
const ROUNDS: u32 = 40;
/// Flush-to-zero and denormals-are-zero on, exceptions masked.
const SECRET_MXCSR: u32 = 0x9fc0;

fn plant() {
    let mxcsr = SECRET_MXCSR;
    // SAFETY: writes only FPU/SSE registers (declared clobbered by the asm
    // having no outputs that the compiler relies on: the program itself uses
    // no floating point) and reads `mxcsr` from the stack.
    unsafe {
        asm!(
            "movq xmm0, {s}", "movq xmm1, {s}", "movq xmm2, {s}", "movq xmm3, {s}",
            "movq xmm4, {s}", "movq xmm5, {s}", "movq xmm6, {s}", "movq xmm7, {s}",
            "movq xmm8, {s}", "movq xmm9, {s}", "movq xmm10, {s}", "movq xmm11, {s}",
            "movq xmm12, {s}", "movq xmm13, {s}", "movq xmm14, {s}", "movq xmm15, {s}",
            "fninit",
            "push {s}", "fild qword ptr [rsp]", "fild qword ptr [rsp]", "add rsp, 8",
            "ldmxcsr [{m}]",
            s = in(reg) SECRET,
            m = in(reg) &mxcsr,
        );
    }
}

fn held(area: &[u8; 512]) -> bool {
    let word = |at: usize| u64::from_le_bytes(area[at..at + 8].try_into().unwrap());
    let mxcsr = u32::from_le_bytes(area[24..28].try_into().unwrap());
    let xmm_ok = (0..16).all(|i| word(160 + 16 * i) == SECRET);
    // Two values on the x87 stack: TOP = 6, and ST0's mantissa is the secret
    // (fild of an integer < 2^63 normalises it: the value, not the bits).
    let top = (u16::from_le_bytes([area[2], area[3]]) >> 11) & 7;
    xmm_ok && mxcsr == SECRET_MXCSR && top == 6 && word(32) != 0
}

fn main() -> i32 {
    plant();
    for round in 0..ROUNDS {
        sys::yield_now();
        if !held(&pkrt::fxsave(0)) {
            println!("fpu_secret: my registers changed across a switch in round {round}");
            return 2;
        }
    }
    0
}

pkrt::entry!(main);
