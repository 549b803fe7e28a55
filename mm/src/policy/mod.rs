//! Memory policy: the decisions that sit above reclaim. Mechanism below
//! (frames, page tables, swap, the page cache) never decides who gets
//! memory or who dies; these do, from counts alone:
//!
//! - [`commit`]: commit accounting and the overcommit modes (Linux's
//!   `vm.overcommit_memory`): may a new writable private mapping be
//!   promised memory?
//! - [`oom`]: the out-of-memory killer's badness score and its choice of
//!   victim (Linux's `oom_badness`).
//! - [`pressure`]: how short memory is, as a level every process can read.
//!
//! A process's RAM quota and redline are limits of its address space
//! (`vm::Limits`), checked where its frames are allocated.

pub mod commit;
pub mod oom;
pub mod pressure;

#[cfg(test)]
mod tests;
