//! Looks for another process's x87/SSE state in its own registers: it never
//! uses them itself, so after every switch they must still be the clean
//! initial state (zero registers, empty x87 stack, MXCSR 0x1f80, FCW
//! 0x037f). Exits with the number of rounds in which they were not.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use pkrt::{println, sys};

const ROUNDS: i32 = 40;

fn clean() -> Result<(), (u16, u16, u8, u32, Option<usize>)> {
    let a = &pkrt::fxsave(0xaa);
    let fcw = u16::from_le_bytes([a[0], a[1]]);
    let fsw = u16::from_le_bytes([a[2], a[3]]);
    let mxcsr = u32::from_le_bytes([a[24], a[25], a[26], a[27]]);
    // ST0-7 are 10 bytes in 16-byte slots (fxsave leaves the other 6 as
    // they were); XMM0-15 are 16 bytes each.
    let data_bytes = |i: usize| (i >= 160 || (i - 32) % 16 < 10).then_some(i);
    let first_dirty = (32..416).filter_map(data_bytes).find(|&i| a[i] != 0);
    let registers_zero = first_dirty.is_none();
    if fcw == 0x037f && fsw == 0 && a[4] == 0 && mxcsr == 0x1f80 && registers_zero {
        Ok(())
    } else {
        Err((fcw, fsw, a[4], mxcsr, first_dirty))
    }
}

fn main() -> i32 {
    let mut dirty = 0;
    for round in 0..ROUNDS {
        sys::yield_now();
        if let Err((fcw, fsw, ftw, mxcsr, register_byte)) = clean() {
            println!(
                "fpu_spy: saw state that is not mine in round {round}: FCW {fcw:#x} FSW {fsw:#x} FTW {ftw:#x} MXCSR {mxcsr:#x}, first non-zero register byte at {register_byte:?}"
            );
            dirty += 1;
        }
    }
    dirty
}

pkrt::entry!(main);
