//! Shell commands: one table ([`COMMANDS`]) says each command's name, its
//! arguments and what it does; [`parse`] turns a line into a [`Command`]
//! with typed arguments, or a [`ParseError`] that says what is wrong and how
//! the command is used.

use core::fmt;

/// A process id as the shell takes it.
pub type Pid = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Help,
    Meminfo,
    Ps,
    Vmmap {
        pid: Pid,
    },
    Pte {
        pid: Pid,
        addr: u64,
    },
    Run {
        program: &'a str,
        arg: u64,
    },
    Kill {
        pid: Pid,
    },
    Scavenge {
        pid: Pid,
    },
    Frames,
    Swapinfo,
    Swapoff,
    Swapon,
    OomAdj {
        pid: Pid,
        adj: i16,
    },
    /// `overcommit` shows the policy; with an argument (MODE or
    /// MODE:RATIO) sets it.
    Overcommit {
        setting: Option<&'a str>,
    },
    Log {
        level: Option<&'a str>,
    },
    /// Redraws the picture of memory now and prints its counts.
    Picture,
}

/// One command: its name, its arguments, what it does.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
}

pub const COMMANDS: &[Usage] = &[
    Usage { name: "help", args: "", help: "this list" },
    Usage {
        name: "meminfo",
        args: "",
        help: "frames by owner, processes, swap, page cache, reclaim, commit, pressure",
    },
    Usage { name: "ps", args: "", help: "processes: state, resident, swapped, page tables, commit, limits" },
    Usage {
        name: "vmmap",
        args: "PID",
        help: "a process's regions: range, protection, kind, pages by state",
    },
    Usage {
        name: "pte",
        args: "PID ADDR",
        help: "the page-table walk for ADDR: each level's entry, the leaf decoded",
    },
    Usage {
        name: "run",
        args: "PROG [ARG]",
        help: "start a program from the file disk (or built in); ARG goes to its main",
    },
    Usage { name: "kill", args: "PID", help: "end a process; every frame it held goes back" },
    Usage { name: "scavenge", args: "PID", help: "ask a process's heap to hand its free pages back" },
    Usage { name: "frames", args: "", help: "the frame allocator: frames per owner, free blocks per order" },
    Usage { name: "swapinfo", args: "", help: "the swap device: slots used and free, traffic" },
    Usage {
        name: "swapoff",
        args: "",
        help: "bring every page in swap back into RAM and stop using the swap disk",
    },
    Usage { name: "swapon", args: "", help: "use the swap disk again after swapoff" },
    Usage { name: "oom_adj", args: "PID N", help: "set a process's oom_score_adj (-1000..=1000)" },
    Usage {
        name: "overcommit",
        args: "[MODE[:RATIO]]",
        help: "show or set the overcommit policy (0, 1, 2 as Linux)",
    },
    Usage {
        name: "log",
        args: "[LEVEL]",
        help: "show or set the log level (off error warn info debug trace)",
    },
    Usage {
        name: "picture",
        args: "",
        help: "redraw the framebuffer's picture of memory now; print its counts",
    },
];

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    Empty,
    UnknownCommand(&'a str),
    MissingArgument { command: &'static Usage },
    TooManyArguments { command: &'static Usage },
    BadNumber { command: &'static Usage, text: &'a str },
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "empty line"),
            ParseError::UnknownCommand(name) => {
                write!(f, "unknown command '{}' (type help for the list)", Clipped(name))
            }
            ParseError::MissingArgument { command } => {
                write!(f, "missing argument; usage: {} {}", command.name, command.args)
            }
            ParseError::TooManyArguments { command } => {
                write!(f, "too many arguments; usage: {} {}", command.name, command.args)
            }
            ParseError::BadNumber { command, text } => write!(
                f,
                "'{}' is not a number in range (decimal, or hex with 0x); usage: {} {}",
                Clipped(text),
                command.name,
                command.args
            ),
        }
    }
}

/// At most 24 characters of what the user typed, in an error message.
struct Clipped<'a>(&'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(24) {
            Some((end, _)) => write!(f, "{}...", &self.0[..end]),
            None => f.write_str(self.0),
        }
    }
}

/// The arguments after the command's name, taken one at a time.
struct Args<'a, I: Iterator<Item = &'a str>> {
    words: I,
    command: &'static Usage,
}

impl<'a, I: Iterator<Item = &'a str>> Args<'a, I> {
    fn word(&mut self) -> Result<&'a str, ParseError<'a>> {
        self.words.next().ok_or(ParseError::MissingArgument { command: self.command })
    }

    fn number<T: TryFrom<i128>>(&mut self) -> Result<T, ParseError<'a>> {
        let text = self.word()?;
        number(text)
            .and_then(|n| T::try_from(n).ok())
            .ok_or(ParseError::BadNumber { command: self.command, text })
    }

    fn optional_number<T: TryFrom<i128>>(&mut self) -> Result<Option<T>, ParseError<'a>> {
        match self.words.next() {
            None => Ok(None),
            Some(text) => number(text)
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or(ParseError::BadNumber { command: self.command, text }),
        }
    }

    fn end(mut self) -> Result<(), ParseError<'a>> {
        match self.words.next() {
            Some(_) => Err(ParseError::TooManyArguments { command: self.command }),
            None => Ok(()),
        }
    }
}

/// A decimal or `0x` hexadecimal integer, optionally negative.
pub fn number(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.len() <= 16 => u64::from_str_radix(hex, 16).ok()?,
        Some(_) => return None,
        None if !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse::<u64>().ok()?
        }
        None => return None,
    };
    Some(if negative { -i128::from(value) } else { i128::from(value) })
}

/// Parses one line (see [`COMMANDS`]).
pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let name = words.next().ok_or(ParseError::Empty)?;
    let usage = COMMANDS.iter().find(|c| c.name == name).ok_or(ParseError::UnknownCommand(name))?;
    let mut args = Args { words, command: usage };
    let command = match usage.name {
        "help" => Command::Help,
        "meminfo" => Command::Meminfo,
        "ps" => Command::Ps,
        "vmmap" => Command::Vmmap { pid: args.number()? },
        "pte" => Command::Pte { pid: args.number()?, addr: args.number()? },
        "run" => Command::Run { program: args.word()?, arg: args.optional_number()?.unwrap_or(0) },
        "kill" => Command::Kill { pid: args.number()? },
        "scavenge" => Command::Scavenge { pid: args.number()? },
        "frames" => Command::Frames,
        "swapinfo" => Command::Swapinfo,
        "swapoff" => Command::Swapoff,
        "swapon" => Command::Swapon,
        "oom_adj" => Command::OomAdj { pid: args.number()?, adj: args.number()? },
        "overcommit" => Command::Overcommit { setting: args.words.next() },
        "log" => Command::Log { level: args.words.next() },
        "picture" => Command::Picture,
        _ => unreachable!("every name in COMMANDS has a case"),
    };
    args.end()?;
    Ok(command)
}
