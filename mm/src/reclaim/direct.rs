//! Direct reclaim's loop around one allocating attempt (a page fault, a
//! commit step), apart from the machine so that its bound is tested on the
//! host; the kernel's `vm::reclaim::direct` runs it with the real sweep.
//!
//! ```text
//!  memory short? ── yes ─► evict a batch
//!        │
//!        ▼
//!   attempt ─► succeeded, or failed otherwise than out of memory ─► return it
//!        │ out of memory
//!        ▼
//!   retried MAX_RETRIES times already, or a batch frees nothing ─► return the failure
//!        │ otherwise: a batch went
//!        └──────────────► attempt again
//! ```
//!
//! "A batch frees some" alone is no promise of progress: an attempt that
//! needs two frames (a private file page: the page-cache copy and the
//! process's own) can take the one a batch freed, read the file page into
//! it, fail on the second, and leave the page unmapped, which the next
//! batch drops again: one frame freed each turn, forever, with interrupts
//! off. (The fuzz boot without swap hung with one process's fault at one
//! address for minutes, its file page read again and again.) Hence the
//! bound, Linux's `MAX_RECLAIM_RETRIES`; after it the failure goes back to
//! the caller, and from there to the out-of-memory path, which frees
//! memory for real.

/// Most batches evicted for one attempt that keeps running out of memory.
pub const MAX_RETRIES: u32 = 16;

/// Runs `attempt` on `state` with direct reclaim around it: first a batch
/// (`evict_batch`, which returns the pages it freed) when memory is
/// already `short`; then, each time the attempt's result is
/// `out_of_memory`, another batch and the attempt again, while a batch
/// frees some, [`MAX_RETRIES`] times at most. Returns the last result.
pub fn around<S, R>(
    state: &mut S,
    short: bool,
    mut attempt: impl FnMut(&mut S) -> R,
    out_of_memory: impl Fn(&R) -> bool,
    mut evict_batch: impl FnMut(&mut S) -> u64,
) -> R {
    if short {
        evict_batch(state);
    }
    let mut retries = 0;
    loop {
        let result = attempt(state);
        if !out_of_memory(&result) || retries == MAX_RETRIES || evict_batch(state) == 0 {
            return result;
        }
        retries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one run of [`around`] did.
    #[derive(Debug, Default, PartialEq)]
    struct Counts {
        attempts: u32,
        batches: u32,
    }

    /// [`around`] with an attempt that succeeds on attempt `succeeds_on`
    /// (counted from 1; 0: never) and batches that free `freed(n)` on
    /// the n-th batch.
    fn run(short: bool, succeeds_on: u32, freed: impl Fn(u32) -> u64) -> (bool, Counts) {
        let mut counts = Counts::default();
        let ok = around(
            &mut counts,
            short,
            |c| {
                c.attempts += 1;
                c.attempts == succeeds_on
            },
            |ok| !ok,
            |c| {
                c.batches += 1;
                // Without the bound the loop below would never end: fail instead.
                assert!(c.batches < 1000, "direct reclaim went on past any bound");
                freed(c.batches)
            },
        );
        (ok, counts)
    }

    #[test]
    fn an_attempt_that_succeeds_runs_once_and_reclaims_nothing() {
        assert_eq!(run(false, 1, |_| 1), (true, Counts { attempts: 1, batches: 0 }));
    }

    #[test]
    fn memory_already_short_costs_one_batch_before_the_first_attempt() {
        assert_eq!(run(true, 1, |_| 1), (true, Counts { attempts: 1, batches: 1 }));
    }

    #[test]
    fn an_attempt_is_retried_after_each_batch_until_it_succeeds() {
        assert_eq!(run(false, 5, |_| 1), (true, Counts { attempts: 5, batches: 4 }));
    }

    #[test]
    fn a_batch_that_frees_nothing_ends_the_retries() {
        assert_eq!(run(false, 0, |n| u64::from(n < 3)), (false, Counts { attempts: 3, batches: 3 }));
    }

    #[test]
    fn batches_that_always_free_some_cannot_retry_forever() {
        // The hang of the module documentation: each batch frees a frame
        // and the attempt never gets further.
        let (ok, counts) = run(false, 0, |_| 1);
        assert!(!ok);
        assert_eq!(counts, Counts { attempts: MAX_RETRIES + 1, batches: MAX_RETRIES });
        // The short-memory batch comes on top and takes no retry away.
        let (_, counts) = run(true, 0, |_| 1);
        assert_eq!(counts, Counts { attempts: MAX_RETRIES + 1, batches: MAX_RETRIES + 1 });
    }

    #[test]
    fn the_last_retry_can_still_succeed() {
        let last = Counts { attempts: MAX_RETRIES + 1, batches: MAX_RETRIES };
        assert_eq!(run(false, MAX_RETRIES + 1, |_| 1), (true, last));
        assert!(!run(false, MAX_RETRIES + 2, |_| 1).0, "one more would be past the bound");
    }
}
