//! What processes write to the console, made unmistakable.
//!
//! Each process's bytes collect in a line buffer of its own; a line goes out
//! whole (at a newline, when the buffer is full, or when the process ends),
//! tagged with the writer and escaped:
//!
//! ```text
//! [pid 3 spoof] KERNEL PANIC: not really
//! [pid 3 spoof] \r\x1b[2Ktest result: ok. 1 passed; 0 failed
//! ```
//!
//! So no process can start a console line (every one it causes begins with
//! `[pid `), move the cursor or clear the screen (control bytes are shown as
//! escapes), or split another writer's line. The kernel's own lines never
//! begin with `[pid `: log lines start with `[` and the uptime, and the test
//! harness reads `test result:` and `KERNEL PANIC` only at the start of a line.

use core::fmt;

/// Longest line a process gets before it is cut (and continued on the next).
pub const LINE_MAX: usize = 200;

pub struct LineBuffer {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl LineBuffer {
    pub const fn new() -> Self {
        LineBuffer { bytes: [0; LINE_MAX], len: 0 }
    }

    /// Adds `input`; calls `emit` with every line it completes (without the
    /// newline), and with the buffer whenever it fills up.
    pub fn push(&mut self, input: &[u8], emit: &mut impl FnMut(&[u8])) {
        for &byte in input {
            if byte == b'\n' {
                emit(&self.bytes[..self.len]);
                self.len = 0;
                continue;
            }
            if self.len == LINE_MAX {
                emit(&self.bytes[..self.len]);
                self.len = 0;
            }
            self.bytes[self.len] = byte;
            self.len += 1;
        }
    }

    /// Emits what is left (a last line without a newline).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        if self.len > 0 {
            emit(&self.bytes[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows bytes as text: valid UTF-8 that is not a control character as it
/// is, a backslash doubled, anything else as `\xNN` (bytes) or `\u{NNNN}`
/// (control characters such as U+0085 or U+2028).
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\t' => f.write_str("\\t")?,
                    c if (c as u32) < 0x80 && !c.is_ascii_control() => write!(f, "{c}")?,
                    c if (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32)?,
                    c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}') => {
                        write!(f, "\\u{{{:04x}}}", c as u32)?
                    }
                    c => write!(f, "{c}")?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut buffer = LineBuffer::new();
        let mut out = Vec::new();
        let mut emit = |line: &[u8]| out.push(Escaped(line).to_string());
        for chunk in chunks {
            buffer.push(chunk, &mut emit);
        }
        buffer.flush(&mut emit);
        out
    }

    #[test_case]
    fn lines_are_split_at_newlines_and_joined_across_writes() {
        assert_eq!(lines(&[b"a", b"b\nc", b"\n\nd"]), ["ab", "c", "", "d"]);
        let long = [b'x'; LINE_MAX + 5];
        assert_eq!(lines(&[&long]).iter().map(String::len).collect::<Vec<_>>(), [LINE_MAX, 5]);
    }

    #[test_case]
    fn control_bytes_and_bad_utf8_are_escaped() {
        assert_eq!(lines(&[b"\r\x1b[2Kok\\\t\x7f"]), ["\\x0d\\x1b[2Kok\\\\\\t\\x7f"]);
        assert_eq!(lines(&["gr\u{fc}n \u{2028}\u{85}".as_bytes()]), ["gr\u{fc}n \\u{2028}\\u{0085}"]);
        assert_eq!(lines(&[b"\xff\xc3"]), ["\\xff\\xc3"]);
    }
}
