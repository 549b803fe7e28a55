//! The user programs embedded in the kernel image: every file of
//! `user/src/bin`, built and listed by `build.rs`.

use super::{Pid, SpawnError};

/// (name, ELF image) of every embedded program, sorted by name.
pub static PROGRAMS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// The image of the embedded program `name`.
pub fn image(name: &str) -> Option<&'static [u8]> {
    PROGRAMS.iter().find(|(n, _)| *n == name).map(|(_, image)| *image)
}

/// Spawns the embedded program `name`.
pub fn spawn(name: &'static str) -> Result<Pid, SpawnError> {
    spawn_with_arg(name, 0)
}

/// Spawns the embedded program `name` with `arg` as its `main`'s argument.
pub fn spawn_with_arg(name: &'static str, arg: u64) -> Result<Pid, SpawnError> {
    let image = image(name).ok_or(SpawnError::NoSuchProgram)?;
    super::spawn_with_arg(name, image, arg)
}
