//! Commit accounting (shared/seeds/004, Linux `mm/util.c`,
//! `__vm_enough_memory`).
//!
//! Every page a writable private mapping may need is *committed* when the
//! mapping is made (reserve, or protect making it writable) and given
//! back when it is released: `Committed_AS` is their sum, what the system
//! has promised. Whether a promise is refused depends on the mode:
//!
//! | mode | name | refuses a request of `n` pages when |
//! |---|---|---|
//! | 0 | heuristic | `n` > RAM + swap (one absurd request) |
//! | 1 | always | never |
//! | 2 | never overcommit | `Committed_AS + n` > `CommitLimit` |
//!
//! with `CommitLimit = swap + RAM × ratio / 100`. In mode 2 the sum of all
//! promises fits in what RAM and swap can hold, so a process never faults
//! for lack of memory: it got its error code at reserve time instead.

use core::fmt;

/// `vm.overcommit_memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvercommitMode {
    /// 0: refuse only a single request larger than RAM + swap.
    Heuristic = 0,
    /// 1: never refuse.
    Always = 1,
    /// 2: refuse what would take `Committed_AS` past `CommitLimit`.
    Never = 2,
}

impl OvercommitMode {
    pub fn from_number(n: u64) -> Option<OvercommitMode> {
        [OvercommitMode::Heuristic, OvercommitMode::Always, OvercommitMode::Never]
            .into_iter()
            .find(|m| *m as u64 == n)
    }
}

/// The mode and `vm.overcommit_ratio` (percent of RAM counted in
/// `CommitLimit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvercommitPolicy {
    pub mode: OvercommitMode,
    pub ratio: u64,
}

impl OvercommitPolicy {
    /// Linux's defaults: heuristic, 50 %.
    pub const DEFAULT: OvercommitPolicy = OvercommitPolicy { mode: OvercommitMode::Heuristic, ratio: 50 };

    /// Parses `MODE` or `MODE:RATIO` (e.g. `2:80`); the ratio is a percent,
    /// at most 1000 (Linux allows more than 100: RAM counted more than once).
    pub fn parse(text: &str) -> Option<OvercommitPolicy> {
        let (mode, ratio) = match text.split_once(':') {
            Some((mode, ratio)) => (mode, ratio.parse().ok()?),
            None => (text, Self::DEFAULT.ratio),
        };
        let mode = OvercommitMode::from_number(mode.parse().ok()?)?;
        (ratio <= 1000).then_some(OvercommitPolicy { mode, ratio })
    }
}

/// What the system can back, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backing {
    pub ram_pages: u64,
    pub swap_pages: u64,
}

/// A promise refused; nothing was charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitRefused {
    pub mode: OvercommitMode,
    pub requested: u64,
    pub committed: u64,
    /// The bound the request passed: CommitLimit (mode 2) or RAM + swap
    /// (mode 0).
    pub limit: u64,
}

impl fmt::Display for CommitRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            OvercommitMode::Never => write!(
                f,
                "commit limit: {} pages committed + {} asked > CommitLimit {} pages (overcommit mode 2)",
                self.committed, self.requested, self.limit
            ),
            _ => write!(
                f,
                "a request of {} pages is more than RAM + swap ({} pages; overcommit mode 0)",
                self.requested, self.limit
            ),
        }
    }
}

/// `Committed_AS` and the policy that guards it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitAccount {
    pub policy: OvercommitPolicy,
    committed: u64,
}

impl CommitAccount {
    pub const fn new(policy: OvercommitPolicy) -> Self {
        CommitAccount { policy, committed: 0 }
    }

    /// Pages promised now (`Committed_AS`).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// `CommitLimit = swap + RAM × ratio / 100`.
    pub fn limit(&self, backing: Backing) -> u64 {
        backing.swap_pages + backing.ram_pages * self.policy.ratio / 100
    }

    /// Promises `pages` more, or refuses by the mode's rule.
    pub fn charge(&mut self, pages: u64, backing: Backing) -> Result<(), CommitRefused> {
        self.check(pages, backing)?;
        self.committed += pages;
        Ok(())
    }

    /// Whether the mode's rule lets `pages` more be promised with
    /// `backing`, promising nothing. `check(0, less)` asks whether what is
    /// promised now still holds with less backing: `swapoff` asks it of
    /// the backing without the swap it takes away, as Linux's does.
    pub fn check(&self, pages: u64, backing: Backing) -> Result<(), CommitRefused> {
        let refused = |limit| CommitRefused {
            mode: self.policy.mode,
            requested: pages,
            committed: self.committed,
            limit,
        };
        match self.policy.mode {
            OvercommitMode::Always => {}
            OvercommitMode::Heuristic => {
                let all = backing.ram_pages + backing.swap_pages;
                if pages > all {
                    return Err(refused(all));
                }
            }
            OvercommitMode::Never => {
                let limit = self.limit(backing);
                if self.committed.saturating_add(pages) > limit {
                    return Err(refused(limit));
                }
            }
        }
        Ok(())
    }

    /// Promises `pages` for a region reserved with Linux's `MAP_NORESERVE`
    /// when `no_reserve`: modes 0 and 1 waive the charge (`Ok(false)`),
    /// mode 2 charges it like any other (`Ok(true)`).
    pub fn charge_region(
        &mut self,
        pages: u64,
        no_reserve: bool,
        backing: Backing,
    ) -> Result<bool, CommitRefused> {
        if no_reserve && self.policy.mode != OvercommitMode::Never {
            return Ok(false);
        }
        self.charge(pages, backing).map(|()| true)
    }

    /// Gives back `pages` promised earlier.
    pub fn uncharge(&mut self, pages: u64) {
        debug_assert!(pages <= self.committed, "uncharging {pages} of {} committed", self.committed);
        self.committed = self.committed.saturating_sub(pages);
    }
}
