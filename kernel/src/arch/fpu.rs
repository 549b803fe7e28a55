//! x87/SSE state: enabled the same way whatever the firmware left, and kept
//! per process.
//!
//! The kernel itself never touches these registers (the target is
//! soft-float: no x87, MMX or SSE instructions in kernel code), so a
//! process's state can stay in the CPU while the kernel handles its traps.
//! It is saved with `fxsave64` only when another process is about to run,
//! and restored with `fxrstor64` before a process is entered. A new process
//! starts from [`FpuState::INITIAL`]: what `fninit` and the reset MXCSR
//! give, with every data register zero, so nothing of an earlier process
//! can be read from it.

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// The 512-byte `fxsave` image (Intel SDM vol. 1, 10.5.1).
#[derive(Clone)]
#[repr(C, align(16))]
pub struct FpuState([u8; 512]);

const _: () = assert!(core::mem::size_of::<FpuState>() == 512 && core::mem::align_of::<FpuState>() == 16);

/// x87 control word after `fninit`: all exceptions masked, 64-bit precision.
const INITIAL_FCW: u16 = 0x037f;
/// MXCSR after reset: all SIMD exceptions masked, round to nearest.
pub const INITIAL_MXCSR: u32 = 0x1f80;

impl FpuState {
    pub const INITIAL: FpuState = {
        let mut image = [0u8; 512];
        let fcw = INITIAL_FCW.to_le_bytes();
        image[0] = fcw[0];
        image[1] = fcw[1];
        let mxcsr = INITIAL_MXCSR.to_le_bytes();
        let mut i = 0;
        while i < 4 {
            image[24 + i] = mxcsr[i];
            i += 1;
        }
        FpuState(image)
    };

    /// Saves the CPU's x87/SSE registers here.
    pub fn save(&mut self) {
        // SAFETY: `self` is a 16-byte aligned, 512-byte buffer we own, as
        // fxsave64 requires; CR4.OSFXSR is set by `init`.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// Loads the CPU's x87/SSE registers from here.
    pub fn restore(&self) {
        // SAFETY: the image is aligned and was written by `save` or is
        // INITIAL, so its MXCSR has no reserved bit set (fxrstor64 would #GP).
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) };
    }

    /// MXCSR as saved (for tests and reports).
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([self.0[24], self.0[25], self.0[26], self.0[27]])
    }
}

/// Turns on x87 and SSE for user code the same way under BIOS and UEFI:
/// CR0.EM off (no emulation), MP and NE on (native x87 errors), TS off (no
/// lazy switching), CR4.OSFXSR (fxsave/fxrstor and SSE) and OSXMMEXCPT
/// (SIMD exceptions as #XM). Then a clean state.
pub fn init() {
    // SAFETY: these bits only enable the FPU/SSE units and their exception
    // reporting; no kernel code depends on them being off.
    unsafe {
        Cr0::update(|cr0| {
            cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|cr4| cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
    FpuState::INITIAL.restore();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn sse_is_enabled_and_the_state_round_trips() {
        assert!(Cr4::read().contains(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
        assert!(!Cr0::read().contains(Cr0Flags::EMULATE_COPROCESSOR));
        let mut saved = FpuState([0xff; 512]);
        FpuState::INITIAL.restore();
        saved.save();
        assert_eq!(saved.mxcsr(), INITIAL_MXCSR);
        // SAFETY: ldmxcsr with a valid value (flush-to-zero on), restored below.
        unsafe { core::arch::asm!("push 0x9f80", "ldmxcsr [rsp]", "add rsp, 8") };
        saved.save();
        assert_eq!(saved.mxcsr(), 0x9f80);
        FpuState::INITIAL.restore();
        saved.save();
        assert_eq!(saved.mxcsr(), INITIAL_MXCSR);
    }
}
