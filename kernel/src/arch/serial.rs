//! The serial console (COM1). All kernel output goes here; under QEMU it is
//! the host's stdout (`-serial stdio`). Input arrives by interrupt (IRQ 4):
//! the handler drains the UART's receive FIFO into a ring buffer that the
//! shell reads with [`read_byte`].

use core::fmt::{self, Write};
use spin::{Lazy, Mutex};
use uart_16550::SerialPort;
use x86_64::instructions::interrupts;

const COM1: u16 = 0x3f8;
/// The ISA interrupt line of COM1.
pub const IRQ: u8 = 4;

static PORT: Lazy<Mutex<SerialPort>> = Lazy::new(|| {
    // SAFETY: COM1 is the standard first UART; nothing else in the kernel
    // drives these ports.
    let mut port = unsafe { SerialPort::new(COM1) };
    // Also enables the UART's "data received" interrupt.
    port.init();
    Mutex::new(port)
});

/// Bytes received and not read yet. A byte that finds it full is dropped:
/// a flood of input costs nothing but itself.
struct Input {
    bytes: [u8; INPUT_CAPACITY],
    head: usize,
    len: usize,
}

const INPUT_CAPACITY: usize = 1024;

static INPUT: Mutex<Input> = Mutex::new(Input { bytes: [0; INPUT_CAPACITY], head: 0, len: 0 });

/// Writes formatted text. Interrupts are off while the lock is held, so an
/// interrupt handler that prints cannot deadlock against the code it interrupted.
pub fn write_fmt(args: fmt::Arguments) {
    interrupts::without_interrupts(|| {
        // A full UART FIFO is the only error, and there is nowhere to report it.
        let _ = PORT.lock().write_fmt(args);
    });
}

/// Writes bytes as they are (the shell's echo: control bytes included).
pub fn write_bytes(bytes: &[u8]) {
    interrupts::without_interrupts(|| {
        let mut port = PORT.lock();
        for &b in bytes {
            port.send_raw(b);
        }
    });
}

/// The IRQ 4 handler (interrupts off): moves every received byte into the
/// input buffer.
pub(super) fn on_interrupt() {
    let mut port = PORT.lock();
    let mut input = INPUT.lock();
    while let Ok(byte) = port.try_receive() {
        if input.len == INPUT_CAPACITY {
            continue;
        }
        let tail = (input.head + input.len) % INPUT_CAPACITY;
        input.bytes[tail] = byte;
        input.len += 1;
    }
}

/// The next byte typed, if any.
pub fn read_byte() -> Option<u8> {
    interrupts::without_interrupts(|| {
        let mut input = INPUT.lock();
        if input.len == 0 {
            return None;
        }
        let byte = input.bytes[input.head];
        input.head = (input.head + 1) % INPUT_CAPACITY;
        input.len -= 1;
        Some(byte)
    })
}

/// Whether a byte is waiting in the input buffer.
pub fn has_input() -> bool {
    interrupts::without_interrupts(|| INPUT.lock().len > 0)
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
