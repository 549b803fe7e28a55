//! The user programs: on the file disk as `bin/NAME` (started from there,
//! demand-paged, when the disk is attached), and embedded in the kernel
//! image (every file of `user/src/bin`, built and listed by `build.rs`)
//! for kernels booted without a file disk.

use super::{Pid, SpawnError, SpawnOptions};

/// (name, ELF image) of every embedded program, sorted by name.
pub static PROGRAMS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// The embedded program `name`: its name as the kernel keeps it, and its image.
fn embedded(name: &str) -> Option<(&'static str, &'static [u8])> {
    PROGRAMS.iter().find(|(n, _)| *n == name).copied()
}

/// The image of the embedded program `name`.
pub fn image(name: &str) -> Option<&'static [u8]> {
    embedded(name).map(|(_, image)| image)
}

/// Spawns the embedded program `name`.
pub fn spawn(name: &str) -> Result<Pid, SpawnError> {
    spawn_with_arg(name, 0)
}

/// Spawns program `name` with `arg` as its `main`'s argument: from the
/// file disk (`bin/NAME`, demand-paged) when there is one, else the
/// embedded copy.
pub fn spawn_with_arg(name: &str, arg: u64) -> Result<Pid, SpawnError> {
    spawn_with(name, arg, SpawnOptions::DEFAULT)
}

/// Like [`spawn_with_arg`], started with `options` (quota, redline,
/// oom_score_adj).
pub fn spawn_with(name: &str, arg: u64, options: SpawnOptions) -> Result<Pid, SpawnError> {
    let path = alloc::format!("bin/{name}");
    if crate::files::open(&path).is_some() {
        return super::spawn_file(&path, arg, options);
    }
    let (name, image) = embedded(name).ok_or(SpawnError::NoSuchProgram)?;
    super::spawn_with(name, image, arg, options)
}
