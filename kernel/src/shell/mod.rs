//! The serial shell `make run` ends in: a prompt on the serial console
//! from which the operator asks the kernel what it holds (`meminfo`, `ps`,
//! `vmmap`, `pte`, `frames`, `swapinfo`), starts and ends processes (`run`,
//! `kill`), and changes policy (`oom_adj`, `overcommit`, `log`).
//!
//! ```text
//!  IRQ 4 ─► serial input buffer ─► read_byte ─► LineEditor (shell crate) ─► echo
//!                                                  └─ Enter ─► command::parse ─► execute
//!  between keys: process::run_slice (processes run while the shell waits),
//!                exit reports, hlt when there is nothing to do
//! ```
//!
//! Line editing and parsing are host-tested in the `shell` crate; this
//! module only reads the port, runs the commands and prints. Nothing typed
//! can panic the kernel: every argument is checked (an unknown pid, an
//! address outside the user half, a bad number all get an error line).

mod commands;

use crate::arch::serial;
use crate::process;
use crate::{print, println};

use shell::line::LineEditor;
use x86_64::instructions::interrupts;

const PROMPT: &str = "pk> ";

/// Runs the shell for good.
pub fn run() -> ! {
    println!("\nPagekeeper shell: type help for the commands.");
    print!("{PROMPT}");
    let mut editor = LineEditor::new();
    loop {
        let mut typed = false;
        while let Some(byte) = serial::read_byte() {
            typed = true;
            if let Some(submitted) = editor.feed(byte, &mut serial::write_bytes) {
                if !submitted.cancelled {
                    commands::execute(submitted.line);
                }
                report_ended(None);
                print!("{PROMPT}");
            }
        }
        let ran = process::run_slice();
        report_ended(Some(&editor));
        if !ran && !typed {
            crate::picture::tick();
            // Idle time zeroes free frames for the faults to come; the CPU
            // halts only once the zeroed pool is full.
            if crate::memory::frames::zero_idle_frames(IDLE_ZEROING_BATCH) == 0 {
                idle();
            }
        }
    }
}

/// Frames zeroed per pass of the idle loop: a few milliseconds under
/// emulation at most, so a key is answered without a noticeable delay.
const IDLE_ZEROING_BATCH: usize = 32;

/// Halts until the next interrupt unless input is already waiting (checked
/// with interrupts off, so a key arriving in between wakes the `hlt`).
fn idle() {
    interrupts::disable();
    if serial::has_input() {
        interrupts::enable();
    } else {
        interrupts::enable_and_hlt();
    }
}

/// Collects the processes that ended meanwhile (their ends were logged
/// as they happened); with `editor`, those log lines cut into a line being
/// typed, so the prompt and the line are shown again.
fn report_ended(editor: Option<&LineEditor>) {
    if process::take_finished().is_empty() {
        return;
    }
    if let Some(editor) = editor {
        print!("{PROMPT}{}", editor.current());
        let back = editor.current().len() - editor.cursor();
        for _ in 0..back {
            serial::write_bytes(b"\x08");
        }
    }
}

pub use commands::meminfo;
