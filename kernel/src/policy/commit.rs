//! Commit accounting on the real machine: one `Committed_AS` for all
//! spaces, charged by the VMM (`KernelPlatform::charge_commit`) when a
//! writable private region is made and given back when it goes.
//!
//! The mode and ratio start from the build-time setting
//! `PAGEKEEPER_OVERCOMMIT` (`MODE` or `MODE:RATIO`, e.g. `make run
//! OVERCOMMIT=2:80`; Linux's `0:50` when unset: the bootloader passes no
//! kernel command line) and change at run time with [`set_policy`].

use crate::memory::frames;
use core::fmt;
use mm::policy::commit::{Backing, CommitAccount, CommitRefused, OvercommitPolicy};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

static ACCOUNT: Mutex<CommitAccount> = Mutex::new(CommitAccount::new(OvercommitPolicy::DEFAULT));

/// The build-time setting, if one was given.
const BUILD_SETTING: Option<&str> = option_env!("PAGEKEEPER_OVERCOMMIT");

pub fn init() {
    let Some(text) = BUILD_SETTING.filter(|t| !t.is_empty()) else { return };
    match OvercommitPolicy::parse(text) {
        Some(policy) => set_policy(policy),
        None => crate::warn!("PAGEKEEPER_OVERCOMMIT={text:?} is not MODE or MODE:RATIO; keeping 0:50"),
    }
}

fn with<R>(f: impl FnOnce(&mut CommitAccount) -> R) -> R {
    without_interrupts(|| f(&mut ACCOUNT.lock()))
}

/// RAM (every usable frame) and swap (every slot), in pages.
fn backing() -> Backing {
    let swap_pages = crate::swap::info().map_or(0, |s| s.usable_total());
    Backing { ram_pages: frames::stats().total, swap_pages }
}

/// Charges a region's `pages` (see `CommitAccount::charge_region`).
pub fn charge(pages: u64, no_reserve: bool) -> Result<bool, CommitRefused> {
    let backing = backing();
    with(|account| account.charge_region(pages, no_reserve, backing))
}

/// Whether what is promised now would still be allowed without the swap
/// disk: `swapoff` refuses when not (in mode 2; the other modes hold no
/// promise to the limit), as Linux's does.
pub fn holds_without_swap() -> Result<(), CommitRefused> {
    let backing = Backing { swap_pages: 0, ..backing() };
    with(|account| account.check(0, backing))
}

pub fn uncharge(pages: u64) {
    with(|account| account.uncharge(pages));
}

/// Changes the mode and ratio now (what was promised stays promised).
pub fn set_policy(policy: OvercommitPolicy) {
    with(|account| account.policy = policy);
    crate::info!("overcommit: mode {}, ratio {} %", policy.mode as u64, policy.ratio);
}

/// meminfo's commit lines.
#[derive(Clone, Copy, Debug)]
pub struct CommitInfo {
    pub policy: OvercommitPolicy,
    /// `Committed_AS`, in pages.
    pub committed: u64,
    /// `CommitLimit`, in pages.
    pub limit: u64,
}

pub fn info() -> CommitInfo {
    info_for(backing())
}

/// [`info`] for counts the caller has already read (the pressure page).
pub fn info_for(backing: Backing) -> CommitInfo {
    with(|a| CommitInfo { policy: a.policy, committed: a.committed(), limit: a.limit(backing) })
}

impl fmt::Display for CommitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |pages: u64| pages * 4;
        write!(
            f,
            "commit: CommitLimit {} KiB, Committed_AS {} KiB (overcommit mode {}, ratio {} %)",
            kib(self.limit),
            kib(self.committed),
            self.policy.mode as u64,
            self.policy.ratio
        )
    }
}
