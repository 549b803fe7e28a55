//! Spins forever in ring 3 without a system call: only the timer takes the
//! CPU back (preemption), and only a kill or a test watchdog ends it.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

fn main() -> i32 {
    loop {
        core::hint::spin_loop();
    }
}

pkrt::entry!(main);
