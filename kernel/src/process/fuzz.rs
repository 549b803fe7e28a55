//! Rounds of the system-call fuzzer (`user/src/bin/fuzz.rs`): several fuzz
//! processes at once, each from its own seed. A round passes when every
//! process ended with exit code 0 or a kill report; the caller compares the
//! kernel's [`Footprint`](crate::memory::Footprint) before and after.
//! `make test` runs a short fixed-seed round in every suite boot;
//! `make fuzz SEED=.. SECONDS=..` runs rounds for a while
//! (`kernel/tests/fuzz.rs`).

use super::{programs, run_until_idle, ExitStatus, Finished};
use crate::info;

/// How a round ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundStats {
    pub exited: usize,
    pub killed: usize,
}

/// Runs one fuzz process per seed, all at once, until they end. Returns
/// the first process that ended otherwise than with code 0 or a kill (42:
/// the kernel returned a value that is no error code).
pub fn round(seeds: &[u64]) -> Result<RoundStats, alloc::boxed::Box<Finished>> {
    for &seed in seeds {
        programs::spawn_with_arg("fuzz", seed).expect("the fuzz program is embedded");
    }
    let mut stats = RoundStats::default();
    for finished in run_until_idle() {
        info!("fuzz process {}: {}", finished.pid, finished.status);
        match finished.status {
            ExitStatus::Exited(0) => stats.exited += 1,
            ExitStatus::KilledByFault(_)
            | ExitStatus::KilledByException { .. }
            | ExitStatus::KilledByOom(_)
            | ExitStatus::Killed { .. } => stats.killed += 1,
            ExitStatus::Exited(_) => return Err(alloc::boxed::Box::new(finished)),
        }
    }
    Ok(stats)
}
