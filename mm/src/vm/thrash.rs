//! Thrashing, seen from one space: its faults keep bringing back, from the
//! page cache or swap, pages it brought in a moment ago, because reclaim
//! takes them again before the process gets to use them. When memory is
//! nearly all pages reclaim cannot take (anonymous pages with no swap),
//! the few pages it can take are every process's code and file pages:
//! each fault's page is the next fault's victim, no process makes
//! progress, and reclaim "succeeds" every time, so no fault ever finds
//! memory short. (Linux thrashes the same way; its answer is pressure
//! stall information and a user-space killer.) After [`THRASH_LIMIT`]
//! such faults in a row, the fault reports thrashing, with its page
//! mapped: the OOM killer ends a process, which frees memory reclaim
//! could not.

use crate::addr::UserAddr;

/// Faults in a row that bring back a page the space brought in lately
/// before one counts as thrashing. Taken again before its first use is
/// rare; 8 times in a row is no accident.
pub const THRASH_LIMIT: u32 = 8;

/// How many of the pages the space brought in last count as "lately": an
/// access can need several pages at once (an instruction or a word that
/// crosses a page boundary, its stack, its data), and they can take turns
/// being taken, so the same page twice in a row is not the only pattern.
const RECENT: usize = 4;

/// The pages the space's last faults brought in, and how many faults in a
/// row brought back one of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefaultRun {
    recent: [Option<UserAddr>; RECENT],
    next: usize,
    count: u32,
}

impl RefaultRun {
    /// Notes a fault that brought `page` in; true when it is the
    /// [`THRASH_LIMIT`]th in a row to bring back a page brought in lately
    /// (the count starts over). A page not brought in lately (a program
    /// reading a file through) is progress and breaks the run.
    pub fn brought_in(&mut self, page: UserAddr) -> bool {
        if self.recent.contains(&Some(page)) {
            self.count += 1;
        } else {
            self.count = 0;
            self.recent[self.next] = Some(page);
            self.next = (self.next + 1) % RECENT;
        }
        if self.count < THRASH_LIMIT {
            return false;
        }
        self.count = 0;
        true
    }

    /// A fault that brought nothing in (demand zero, a copy, a refusal)
    /// breaks the run: the process got somewhere.
    pub fn broken(&mut self) {
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn the_limit_th_refault_in_a_row_is_thrashing() {
        let (a, b) = (UserAddr::new(0x40_0000), UserAddr::new(0x40_1000));
        let mut run = RefaultRun::default();
        assert!(!run.brought_in(a), "a first fault is no refault");
        for _ in 1..THRASH_LIMIT {
            assert!(!run.brought_in(a));
        }
        assert!(run.brought_in(a), "the limit-th refault");
        assert!(!run.brought_in(a), "the count starts over");
        // Two pages taking turns (an access across a page boundary).
        let mut run = RefaultRun::default();
        assert!(!run.brought_in(a) && !run.brought_in(b));
        let turns: Vec<bool> =
            (0..THRASH_LIMIT).map(|i| run.brought_in(if i % 2 == 0 { a } else { b })).collect();
        assert_eq!(turns.iter().filter(|&&t| t).count(), 1, "{turns:?}");
        assert!(turns[THRASH_LIMIT as usize - 1]);
    }

    #[test]
    fn new_pages_and_other_faults_are_progress() {
        let mut run = RefaultRun::default();
        for i in 0..10 * THRASH_LIMIT as u64 {
            assert!(!run.brought_in(UserAddr::new(0x40_0000 + i * 0x1000)), "a file read through");
        }
        let a = UserAddr::new(0x40_0000 + 9 * THRASH_LIMIT as u64 * 0x1000);
        for _ in 0..10 * THRASH_LIMIT {
            assert!(!run.brought_in(a));
            run.broken();
        }
    }
}
