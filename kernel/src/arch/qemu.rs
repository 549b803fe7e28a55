//! Leaving QEMU with a status the host can read (`isa-debug-exit` device,
//! configured by `boot/` at port 0xf4: QEMU exits with `(value << 1) | 1`).

use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Values agreed with `boot/src/lib.rs` (`EXIT_SUCCESS`, `EXIT_FAILURE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    Success = 0x10,
    Failure = 0x11,
}

/// Ends the QEMU run. On real hardware (no debug-exit device) it halts.
pub fn exit(code: ExitCode) -> ! {
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is the debug-exit device under QEMU; on a machine
    // without it the write is ignored and we halt below.
    unsafe { port.write(code as u32) };
    super::halt_forever()
}
