//! Console output: `print!`/`println!` for plain text and `info!`, `warn!`,
//! `error!`, `debug!` for log lines stamped with uptime and level:
//!
//! ```text
//! [    0.120 INFO ] frame allocator: 30211 frames free
//! ```

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
        }
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    crate::arch::serial::write_fmt(args);
}

#[doc(hidden)]
pub fn _log(level: Level, args: fmt::Arguments) {
    let ms = crate::arch::timer::uptime_ms();
    _print(format_args!("[{:5}.{:03} {}] {}\n", ms / 1000, ms % 1000, level.label(), args));
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::log::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::log::_print(format_args!("{}\n", format_args!($($arg)*))));
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => ($crate::log::_log($crate::log::Level::Error, format_args!($($arg)*)));
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => ($crate::log::_log($crate::log::Level::Warn, format_args!($($arg)*)));
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => ($crate::log::_log($crate::log::Level::Info, format_args!($($arg)*)));
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => ($crate::log::_log($crate::log::Level::Debug, format_args!($($arg)*)));
}
