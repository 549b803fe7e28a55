//! Memory policy on the real machine (docs/memory-policy.md): the
//! decisions of `mm::policy` fed with this machine's counts. It sits above
//! reclaim and decides; the mechanism below never chooses who gets memory
//! or who dies.
//!
//! - [`commit`]: `Committed_AS` against `CommitLimit`, the overcommit mode;
//! - [`pressure`]: the pressure page every process can read;
//! - the OOM killer and per-process quotas, redlines and notifications
//!   live with the processes (`process::oom`, `process::events`), since
//!   they act on them.

pub mod commit;
pub mod pressure;
