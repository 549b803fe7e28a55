//! The serial console (COM1). All kernel output goes here; under QEMU it is
//! the host's stdout (`-serial stdio`).

use core::fmt::{self, Write};
use spin::{Lazy, Mutex};
use uart_16550::SerialPort;
use x86_64::instructions::interrupts;

const COM1: u16 = 0x3f8;

static PORT: Lazy<Mutex<SerialPort>> = Lazy::new(|| {
    // SAFETY: COM1 is the standard first UART; nothing else in the kernel
    // drives these ports.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    Mutex::new(port)
});

/// Writes formatted text. Interrupts are off while the lock is held, so an
/// interrupt handler that prints cannot deadlock against the code it interrupted.
pub fn write_fmt(args: fmt::Arguments) {
    interrupts::without_interrupts(|| {
        // A full UART FIFO is the only error, and there is nowhere to report it.
        let _ = PORT.lock().write_fmt(args);
    });
}

/// Releases the console lock if a context that can never resume holds it
/// (the panic path abandons the stack it panicked on).
///
/// # Safety
/// The caller must know that no code that holds the lock will run again
/// (single CPU, and the holder's stack is being abandoned).
pub unsafe fn break_lock() {
    if PORT.is_locked() {
        // SAFETY: guaranteed by the caller: the holder never resumes.
        unsafe { PORT.force_unlock() };
    }
}
