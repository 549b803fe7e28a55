//! Console output: `print!`/`println!` for plain text, and the kernel's
//! logger behind the [`log`](https://docs.rs/log) facade, stamped with uptime
//! and level:
//!
//! ```text
//! [    0.120 INFO ] frame allocator: 30211 frames free
//! [    1.504 DEBUG] virtio_drivers::transport::pci: BAR 4 at 0xc000000000
//! ```
//!
//! The kernel's own `info!`, `warn!`, `error!`, `debug!` are the `log`
//! crate's macros, so a dependency that logs (virtio-drivers does) lands in
//! the same place, filtered by the same level. Lines from other crates carry
//! their module path. The level is set at build time (the bootloader passes
//! no command line): `make run LOG=debug` builds with
//! `PAGEKEEPER_LOG=debug`; the default is `info`.

use core::fmt;

/// The level the kernel was built to log at (`PAGEKEEPER_LOG`).
const BUILD_LEVEL: Option<&str> = option_env!("PAGEKEEPER_LOG");

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl ::log::Log for SerialLogger {
    fn enabled(&self, metadata: &::log::Metadata) -> bool {
        metadata.level() <= ::log::max_level()
    }

    fn log(&self, record: &::log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ms = crate::arch::timer::uptime_ms();
        let level = label(record.level());
        let (secs, ms) = (ms / 1000, ms % 1000);
        match record.module_path().filter(|path| !path.starts_with("pagekeeper")) {
            Some(path) => _print(format_args!("[{secs:5}.{ms:03} {level}] {path}: {}\n", record.args())),
            None => _print(format_args!("[{secs:5}.{ms:03} {level}] {}\n", record.args())),
        }
    }

    fn flush(&self) {}
}

fn label(level: ::log::Level) -> &'static str {
    match level {
        ::log::Level::Error => "ERROR",
        ::log::Level::Warn => "WARN ",
        ::log::Level::Info => "INFO ",
        ::log::Level::Debug => "DEBUG",
        ::log::Level::Trace => "TRACE",
    }
}

/// The level filter named by `text` (`off`, `error` .. `trace`).
fn parse_level(text: &str) -> Option<::log::LevelFilter> {
    text.parse().ok()
}

/// Installs the logger at the build-time level. Call first thing: log
/// lines before it are dropped.
pub fn init() {
    let level = BUILD_LEVEL.filter(|t| !t.is_empty());
    let filter = level.map_or(Some(::log::LevelFilter::Info), parse_level);
    // Only the first call installs a logger; a test kernel's second init is harmless.
    let _ = ::log::set_logger(&LOGGER);
    ::log::set_max_level(filter.unwrap_or(::log::LevelFilter::Info));
    if filter.is_none() {
        ::log::warn!("PAGEKEEPER_LOG={:?} is not off/error/warn/info/debug/trace; logging at info", level);
    }
}

/// A level name that is not one of off, error, warn, info, debug, trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownLevel;

/// Changes the level at run time (the shell's `log` command).
pub fn set_level(text: &str) -> Result<(), UnknownLevel> {
    let filter = parse_level(text).ok_or(UnknownLevel)?;
    ::log::set_max_level(filter);
    Ok(())
}

pub fn level() -> ::log::LevelFilter {
    ::log::max_level()
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    crate::arch::serial::write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn level_names_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_level("debug"), Some(::log::LevelFilter::Debug));
        assert_eq!(parse_level("OFF"), Some(::log::LevelFilter::Off));
        assert_eq!(parse_level("loud"), None);
        let before = level();
        assert!(set_level("warn").is_ok());
        assert_eq!(level(), ::log::LevelFilter::Warn);
        assert!(set_level("x").is_err());
        assert_eq!(level(), ::log::LevelFilter::Warn, "a refused level changes nothing");
        ::log::set_max_level(before);
    }
}
