//! pkrt: the runtime of Pagekeeper user programs. System calls
//! ([`sys`]), console output ([`print!`], [`println!`]), the entry point
//! ([`entry!`]), the panic handler, and a global allocator on the
//! per-process heap ([`heap`]).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod events;
pub mod heap;
pub mod pressure;
pub mod sys;

pub use abi;

use core::fmt::{self, Write};

/// Declares `main` (returning the exit code) as the program's entry point.
/// With `with_arg`, `main` takes the `u64` the kernel started the process
/// with (in `rdi`, so it arrives as `_start`'s first argument).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        pub extern "C" fn _start() -> ! {
            $crate::sys::exit($main())
        }
    };
    (with_arg $main:path) => {
        #[no_mangle]
        pub extern "C" fn _start(arg: u64) -> ! {
            $crate::sys::exit($main(arg))
        }
    };
}

/// This process's x87/SSE registers as the 512-byte `fxsave64` image,
/// written over a buffer filled with `fill` (bytes `fxsave64` does not
/// write, such as the reserved tail of each x87 slot, keep it).
pub fn fxsave(fill: u8) -> [u8; 512] {
    #[repr(C, align(16))]
    struct Area([u8; 512]);
    let mut area = Area([fill; 512]);
    // SAFETY: a 512-byte, 16-byte aligned buffer of ours, as fxsave64 needs;
    // it only reads registers.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack)) };
    area.0
}

/// A small deterministic random number generator, for programs that must
/// behave the same for the same seed (`Rng::new(seed)`).
pub use abi::rng::Xorshift64Star as Rng;

/// Buffers formatted output and writes it with one system call per line.
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    pub const fn new() -> Self {
        Console { buf: [0; 256], len: 0 }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            let _ = sys::write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut console = Console::new();
    let _ = console.write_fmt(args);
    console.flush();
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::_print(format_args!("{}\n", format_args!($($arg)*))));
}

/// Exit code of a program that panicked.
pub const PANIC_EXIT: i32 = 101;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {info}");
    sys::exit(PANIC_EXIT)
}
