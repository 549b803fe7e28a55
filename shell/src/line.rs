//! A line editor for a serial terminal: printable characters are inserted
//! at the cursor and echoed, Backspace/Delete erase, the arrow keys move the
//! cursor (left/right) and walk the history (up/down), Ctrl-U clears the
//! line, Ctrl-C abandons it, Enter submits it. Everything else (other
//! control bytes, unknown escape sequences, bytes ≥ 0x80) is dropped.
//!
//! ```text
//!  bytes ─► feed() ─► state machine ─┬─► echo (what the terminal must show)
//!           Normal ─ESC─► Escape ─[─► Csi ─A/B/C/D─► history / cursor
//!                                    └─ anything else: dropped, back to Normal
//!                                    └─► Some(line) on Enter
//! ```
//!
//! The line holds at most [`MAX_LINE`] bytes; a key that would pass it rings
//! the bell instead. The history keeps the last [`HISTORY`] distinct lines.
//! No allocation: a hostile stream of bytes costs nothing but time.

/// Longest line, in bytes.
pub const MAX_LINE: usize = 160;
/// Lines the history remembers.
pub const HISTORY: usize = 16;

const BELL: u8 = 0x07;
const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;

/// A line of at most [`MAX_LINE`] printable ASCII bytes.
#[derive(Clone, Copy)]
struct Buffer {
    bytes: [u8; MAX_LINE],
    len: usize,
}

impl Buffer {
    const EMPTY: Buffer = Buffer { bytes: [0; MAX_LINE], len: 0 };

    fn as_str(&self) -> &str {
        // Only printable ASCII (0x20..=0x7e) is ever stored.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// After ESC.
    Escape,
    /// After ESC [ : parameter bytes until a final byte (0x40..=0x7e).
    Csi,
}

/// What the terminal should be sent after a byte: the editor writes its echo
/// into `out` (at most a redrawn line).
pub trait Echo {
    fn write(&mut self, bytes: &[u8]);
}

impl<F: FnMut(&[u8])> Echo for F {
    fn write(&mut self, bytes: &[u8]) {
        self(bytes)
    }
}

/// See the module documentation.
pub struct LineEditor {
    line: Buffer,
    cursor: usize,
    mode: Mode,
    /// The byte before this one was CR (a CR LF pair is one Enter).
    after_cr: bool,
    history: [Buffer; HISTORY],
    /// Lines in `history` (oldest first).
    stored: usize,
    /// Position while walking the history with up/down (`stored`: the
    /// line being typed, kept in `draft`).
    browsing: usize,
    draft: Buffer,
    /// The line the last Enter handed over (borrowed by [`Submitted`]).
    submitted: Buffer,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> LineEditor {
        LineEditor {
            line: Buffer::EMPTY,
            cursor: 0,
            mode: Mode::Normal,
            after_cr: false,
            history: [Buffer::EMPTY; HISTORY],
            stored: 0,
            browsing: 0,
            draft: Buffer::EMPTY,
            submitted: Buffer::EMPTY,
        }
    }

    /// The line as typed so far.
    pub fn current(&self) -> &str {
        self.line.as_str()
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The remembered lines, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history[..self.stored].iter().map(Buffer::as_str)
    }

    /// Takes one byte from the terminal; echoes into `out`. Returns the
    /// submitted line (trimmed of nothing; may be empty) on Enter.
    pub fn feed(&mut self, byte: u8, out: &mut impl Echo) -> Option<Submitted<'_>> {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match self.mode {
            Mode::Escape => {
                self.mode = if byte == b'[' { Mode::Csi } else { Mode::Normal };
                return None;
            }
            Mode::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.mode = Mode::Normal;
                    self.arrow(byte, out);
                }
                return None;
            }
            Mode::Normal => {}
        }
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => Some(self.submit(out)),
            BACKSPACE | DELETE => {
                self.erase(out);
                None
            }
            CTRL_U => {
                self.replace(Buffer::EMPTY, out);
                None
            }
            CTRL_C => {
                out.write(b"^C\r\n");
                self.line = Buffer::EMPTY;
                self.cursor = 0;
                self.browsing = self.stored;
                self.draft = Buffer::EMPTY;
                Some(Submitted { line: "", cancelled: true })
            }
            ESC => {
                self.mode = Mode::Escape;
                None
            }
            0x20..=0x7e => {
                self.insert(byte, out);
                None
            }
            _ => None,
        }
    }

    fn insert(&mut self, byte: u8, out: &mut impl Echo) {
        if self.line.len == MAX_LINE {
            out.write(&[BELL]);
            return;
        }
        let (bytes, len, at) = (&mut self.line.bytes, self.line.len, self.cursor);
        bytes.copy_within(at..len, at + 1);
        bytes[at] = byte;
        self.line.len += 1;
        self.cursor += 1;
        // The new byte, the rest of the line, then the cursor back to its place.
        out.write(&self.line.bytes[at..self.line.len]);
        self.cursor_back(self.line.len - self.cursor, out);
    }

    fn erase(&mut self, out: &mut impl Echo) {
        if self.cursor == 0 {
            out.write(&[BELL]);
            return;
        }
        let (len, at) = (self.line.len, self.cursor);
        self.line.bytes.copy_within(at..len, at - 1);
        self.line.len -= 1;
        self.cursor -= 1;
        out.write(&[BACKSPACE]);
        out.write(&self.line.bytes[self.cursor..self.line.len]);
        out.write(b" ");
        self.cursor_back(self.line.len - self.cursor + 1, out);
    }

    fn cursor_back(&self, columns: usize, out: &mut impl Echo) {
        for _ in 0..columns {
            out.write(&[BACKSPACE]);
        }
    }

    /// Shows `with` in place of the current line, cursor at its end.
    fn replace(&mut self, with: Buffer, out: &mut impl Echo) {
        self.cursor_back(self.cursor, out);
        let old = self.line.len;
        self.line = with;
        self.cursor = with.len;
        out.write(&self.line.bytes[..self.line.len]);
        // Blank what is left of a longer old line, then come back.
        let extra = old.saturating_sub(with.len);
        for _ in 0..extra {
            out.write(b" ");
        }
        self.cursor_back(extra, out);
    }

    fn arrow(&mut self, key: u8, out: &mut impl Echo) {
        match key {
            b'A' if self.browsing > 0 => {
                if self.browsing == self.stored {
                    self.draft = self.line;
                }
                self.browsing -= 1;
                self.replace(self.history[self.browsing], out);
            }
            b'B' if self.browsing < self.stored => {
                self.browsing += 1;
                let next =
                    if self.browsing == self.stored { self.draft } else { self.history[self.browsing] };
                self.replace(next, out);
            }
            b'C' if self.cursor < self.line.len => {
                out.write(&self.line.bytes[self.cursor..self.cursor + 1]);
                self.cursor += 1;
            }
            b'D' if self.cursor > 0 => {
                self.cursor -= 1;
                out.write(&[BACKSPACE]);
            }
            _ => out.write(&[BELL]),
        }
    }

    fn submit(&mut self, out: &mut impl Echo) -> Submitted<'_> {
        out.write(b"\r\n");
        let line = self.line;
        let last = self.stored.checked_sub(1).map(|i| self.history[i].as_str());
        if !line.as_str().trim().is_empty() && last != Some(line.as_str()) {
            if self.stored == HISTORY {
                self.history.copy_within(1.., 0);
                self.stored -= 1;
            }
            self.history[self.stored] = line;
            self.stored += 1;
        }
        self.browsing = self.stored;
        self.line = Buffer::EMPTY;
        self.cursor = 0;
        self.draft = Buffer::EMPTY;
        self.submitted = line;
        Submitted { line: self.submitted.as_str(), cancelled: false }
    }
}

/// A line handed over by Enter (or abandoned by Ctrl-C: empty, `cancelled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submitted<'a> {
    pub line: &'a str,
    pub cancelled: bool,
}
