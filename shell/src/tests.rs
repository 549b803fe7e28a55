extern crate std;

use crate::command::{self, parse, Command, ParseError, COMMANDS};
use crate::line::{LineEditor, Submitted, HISTORY, MAX_LINE};
use proptest::prelude::*;
use std::string::String;
use std::vec::Vec;

/// A terminal model: applies the editor's echo (printable bytes overwrite at
/// the cursor, BS moves left) so tests can check what the user sees.
#[derive(Default)]
struct Screen {
    cells: Vec<u8>,
    col: usize,
}

impl Screen {
    fn apply(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                0x08 => self.col = self.col.saturating_sub(1),
                b'\r' | b'\n' => {
                    self.cells.clear();
                    self.col = 0;
                }
                0x20..=0x7e => {
                    if self.col == self.cells.len() {
                        self.cells.push(b);
                    } else {
                        self.cells[self.col] = b;
                    }
                    self.col += 1;
                }
                _ => {}
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.cells).trim_end().into()
    }
}

/// Feeds `input`; returns the submitted lines and the screen.
fn type_in(editor: &mut LineEditor, input: &[u8]) -> (Vec<String>, Screen) {
    let mut screen = Screen::default();
    let mut lines = Vec::new();
    for &b in input {
        let mut echo = Vec::new();
        let got = editor.feed(b, &mut |bytes: &[u8]| echo.extend_from_slice(bytes)).map(|s| {
            let Submitted { line, cancelled } = s;
            (String::from(line), cancelled)
        });
        screen.apply(&echo);
        if let Some((line, false)) = got {
            lines.push(line);
        }
    }
    (lines, screen)
}

#[test]
fn typed_lines_come_out_whole_and_cr_lf_is_one_enter() {
    let mut e = LineEditor::new();
    let (lines, _) = type_in(&mut e, b"ps\r\nmeminfo\rhelp\n\n");
    assert_eq!(lines, ["ps", "meminfo", "help", ""]);
}

#[test]
fn backspace_and_delete_erase_and_the_screen_agrees() {
    let mut e = LineEditor::new();
    let (_, screen) = type_in(&mut e, b"psx\x7fq\x08");
    assert_eq!(e.current(), "ps");
    assert_eq!(screen.text(), "ps");
    let (lines, _) = type_in(&mut e, b"\r");
    assert_eq!(lines, ["ps"]);
}

#[test]
fn cursor_keys_move_and_insert_in_the_middle() {
    let mut e = LineEditor::new();
    let (_, screen) = type_in(&mut e, b"kil 3\x1b[D\x1b[D\x1b[Dl");
    assert_eq!(e.current(), "kill 3");
    assert_eq!(screen.text(), "kill 3");
    assert_eq!(e.cursor(), 3);
    let mut e = LineEditor::new();
    let (_, screen) = type_in(&mut e, b"kil 3\x1b[D\x1b[D\x1b[Dl\x1b[C\x1b[C\x1b[C\x1b[C\x7f");
    assert_eq!(e.current(), "kill ");
    assert_eq!(screen.text(), "kill");
}

#[test]
fn history_walks_back_and_forward_and_keeps_the_draft() {
    let mut e = LineEditor::new();
    type_in(&mut e, b"ps\rmeminfo\rmeminfo\r  \r");
    assert_eq!(e.history().collect::<Vec<_>>(), ["ps", "meminfo"], "repeats and blank lines are not kept");
    let (_, screen) = type_in(&mut e, b"fr\x1b[A");
    assert_eq!((e.current(), screen.text().as_str()), ("meminfo", "meminfo"));
    type_in(&mut e, b"\x1b[A\x1b[A");
    assert_eq!(e.current(), "ps", "stops at the oldest");
    let (_, screen) = type_in(&mut e, b"\x1b[B\x1b[B");
    assert_eq!((e.current(), screen.text().as_str()), ("fr", "fr"), "back to the draft");
    let (lines, _) = type_in(&mut e, b"\x1b[A\r");
    assert_eq!(lines, ["meminfo"]);
}

#[test]
fn history_keeps_the_latest_lines() {
    let mut e = LineEditor::new();
    for i in 0..HISTORY + 5 {
        type_in(&mut e, std::format!("cmd{i}\r").as_bytes());
    }
    let kept: Vec<_> = e.history().collect();
    assert_eq!(kept.len(), HISTORY);
    assert_eq!(kept[0], "cmd5");
    assert_eq!(kept[HISTORY - 1], std::format!("cmd{}", HISTORY + 4));
}

#[test]
fn ctrl_c_abandons_and_ctrl_u_clears() {
    let mut e = LineEditor::new();
    let mut cancelled = false;
    for &b in b"kill 1\x03" {
        if let Some(s) = e.feed(b, &mut |_: &[u8]| {}) {
            cancelled = s.cancelled && s.line.is_empty();
        }
    }
    assert!(cancelled);
    assert_eq!(e.current(), "");
    let (_, screen) = type_in(&mut e, b"garbage\x15ps");
    assert_eq!((e.current(), screen.text().as_str()), ("ps", "ps"));
}

#[test]
fn a_long_line_stops_at_the_limit_with_a_bell() {
    let mut e = LineEditor::new();
    let mut bells = 0;
    for _ in 0..MAX_LINE + 50 {
        e.feed(b'a', &mut |bytes: &[u8]| bells += bytes.iter().filter(|&&b| b == 7).count());
    }
    assert_eq!(e.current().len(), MAX_LINE);
    assert_eq!(bells, 50);
}

#[test]
fn control_bytes_unknown_escapes_and_high_bytes_are_dropped() {
    let mut e = LineEditor::new();
    let (lines, _) = type_in(&mut e, b"p\x00\x01\x1b[3~\x1bOx\xff\xc3\xa9s\r");
    assert_eq!(lines, ["pxs"], "ESC O x: the O ends the escape, x is typed");
}

#[test]
fn every_command_parses_with_its_arguments() {
    assert_eq!(parse("ps"), Ok(Command::Ps));
    assert_eq!(parse("  vmmap   3 "), Ok(Command::Vmmap { pid: 3 }));
    assert_eq!(parse("pte 2 0x7fffffffe000"), Ok(Command::Pte { pid: 2, addr: 0x7fff_ffff_e000 }));
    assert_eq!(parse("run hello"), Ok(Command::Run { program: "hello", arg: 0 }));
    assert_eq!(
        parse("run swap_pattern 0x2a00000040"),
        Ok(Command::Run { program: "swap_pattern", arg: 0x2a_0000_0040 })
    );
    assert_eq!(parse("oom_adj 4 -1000"), Ok(Command::OomAdj { pid: 4, adj: -1000 }));
    assert_eq!(parse("overcommit 2:80"), Ok(Command::Overcommit { setting: Some("2:80") }));
    assert_eq!(parse("log"), Ok(Command::Log { level: None }));
    for usage in COMMANDS {
        let mut line = String::from(usage.name);
        for arg in usage.args.split_whitespace().filter(|a| !a.starts_with('[')) {
            line.push_str(if arg == "PROG" { " hello" } else { " 1" });
        }
        assert!(parse(&line).is_ok(), "{line}");
    }
}

#[test]
fn bad_lines_get_errors_that_say_what_is_wrong() {
    assert_eq!(parse(""), Err(ParseError::Empty));
    assert_eq!(parse("frobnicate 1"), Err(ParseError::UnknownCommand("frobnicate")));
    let text = |line| std::format!("{}", parse(line).unwrap_err());
    assert_eq!(text("kill"), "missing argument; usage: kill PID");
    assert_eq!(text("kill 1 2"), "too many arguments; usage: kill PID");
    assert!(text("kill x1").starts_with("'x1' is not a number"));
    assert!(text("kill -1").starts_with("'-1' is not a number in range"), "pids are unsigned");
    assert!(text("oom_adj 1 40000").starts_with("'40000' is not a number in range"));
    assert!(text("pte 1 0x").starts_with("'0x' is not a number"));
    assert!(text("pte 1 0x10000000000000000").contains("not a number"), "more than 64 bits");
    assert!(text(&"z".repeat(100)).contains("zzz...'"), "long names are clipped");
}

#[test]
fn numbers_are_decimal_or_hex() {
    assert_eq!(command::number("42"), Some(42));
    assert_eq!(command::number("0x2A"), Some(42));
    assert_eq!(command::number("-7"), Some(-7));
    assert_eq!(command::number("18446744073709551615"), Some(u64::MAX as i128));
    for bad in ["", "-", "0x", "4 2", "+4", "1e3", "99999999999999999999999"] {
        assert_eq!(command::number(bad), None, "{bad:?}");
    }
}

proptest! {
    /// Whatever arrives, the editor keeps its invariants, and what the
    /// screen shows is the line it holds.
    #[test]
    fn any_byte_stream_keeps_the_editor_sane(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut e = LineEditor::new();
        let (lines, screen) = type_in(&mut e, &input);
        prop_assert!(e.current().len() <= MAX_LINE);
        prop_assert!(e.cursor() <= e.current().len());
        prop_assert!(e.current().bytes().all(|b| (0x20..=0x7e).contains(&b)));
        prop_assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        prop_assert!(e.history().count() <= HISTORY);
        prop_assert_eq!(screen.text(), e.current().trim_end());
    }

    /// Any line parses or fails with an error; none panics.
    #[test]
    fn any_line_parses_or_is_refused(line in "\\PC{0,200}") {
        if let Err(e) = parse(&line) {
            let message = std::format!("{e}");
            prop_assert!(!message.is_empty() && message.len() < 200);
        }
    }
}
