//! The page heap: the arena divided into runs of whole pages, each free,
//! a large block, or a span of small blocks. Boundary tags, as in
//! dlmalloc or talc, but kept out of band: one [`PageTag`] per page in
//! the metadata region, never in the arena, so a program writing past its
//! blocks cannot reach them.
//!
//! ```text
//!  arena pages   0    1    2    3    4    5    6    7    8    9   frontier
//!               ┌────┬────┬────┬────┬────┬────┬────┬────┬────┬────┐ ·····
//!               │ span (class 7) │  free run │ large block │free│  never used
//!               └────┴────┴────┴────┴────┴────┴────┴────┴────┴────┘ ·····
//!  tags         S4   s    s    S4   F2   F2   L3   ·    L3   F1
//!               (run length at the first and last page of each run; every
//!                page of a span names the span; `·` = inside a run)
//! ```
//!
//! Free runs sit in size bins (exact up to 32 pages, then four per
//! doubling, as TLSF does) with a bitmap of non-empty bins: a fit is one
//! `trailing_zeros`. Freeing merges with free neighbours through their
//! tags. Pages past the frontier have never been used; the arena is made
//! writable ([`Kernel::grow`](crate::Kernel::grow)) a chunk at a time as
//! the frontier passes. Every page also remembers whether it is known to
//! read zero (clean): untouched, or scavenged and not handed out since;
//! and whether its writability, and with it the kernel's commit charge,
//! was given back ([`PageHeap::give_back`]): such a page is grown again
//! before it is handed out.

/// Bins: 32 exact sizes, then 4 per doubling up to 2^28 pages.
const EXACT_BINS: usize = 32;
const BINS: usize = EXACT_BINS + 4 * (28 - 5);
const NONE: u32 = u32::MAX;

/// What a run is; stored at its first and last page, `Inside` elsewhere.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(u8)]
pub enum RunKind {
    #[default]
    Inside = 0,
    Free,
    Large,
    Span,
}

/// Out-of-band tag of one arena page.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct PageTag {
    /// Run length in pages (at the run's first and last page).
    pub len: u32,
    pub kind: RunKind,
    /// The page is the first of its run (`kind` is set at both ends).
    pub first: bool,
    /// The page is known to read zero.
    pub clean: bool,
    /// A free page whose writability went back to the kernel.
    pub given_back: bool,
    /// For pages of a span: the span's class and this page's index in it,
    /// so `free` finds the block without waiting for the span record.
    pub class: u8,
    pub index_in_span: u8,
    /// Span index + 1 for pages of a span, else 0.
    pub span: u32,
    /// Bin neighbours of a free run (at its first page).
    next: u32,
    prev: u32,
}

/// Where the page heap asks for more writable memory.
pub trait Grow {
    /// Makes arena pages `first..first+count` (and their tags) usable;
    /// false if the kernel refused.
    fn grow_pages(&mut self, first: usize, count: usize) -> bool;
}

pub struct PageHeap {
    /// Tags of every page of the arena (only `..frontier` meaningful).
    tags: &'static mut [PageTag],
    /// Pages handed out at least once: `0..frontier`.
    frontier: usize,
    /// Pages usable (grown) so far.
    writable: usize,
    bins: [u32; BINS],
    nonempty: u128,
    /// Pages in free runs.
    pub free_pages: usize,
    /// Free pages given back to the kernel (not writable until grown again).
    pub given_back: usize,
}

/// Pages made writable at once when the frontier passes the writable end.
const GROW_PAGES: usize = 256;

/// Bin of a run of `n` pages (the bin whose range contains n).
fn bin_of(n: usize) -> usize {
    if n <= EXACT_BINS {
        return n - 1;
    }
    let top = (usize::BITS - 1 - n.leading_zeros()) as usize;
    EXACT_BINS + (top - 5) * 4 + ((n >> (top - 2)) & 3)
}

/// The first bin all of whose runs hold `n` pages.
fn bin_fitting(n: usize) -> usize {
    if n <= EXACT_BINS {
        return n - 1;
    }
    let top = (usize::BITS - 1 - n.leading_zeros()) as usize;
    bin_of(n + (1 << (top - 2)) - 1)
}

impl PageHeap {
    /// `tags` covers the whole arena; all zero (a valid empty state).
    pub fn new(tags: &'static mut [PageTag]) -> Self {
        PageHeap {
            tags,
            frontier: 0,
            writable: 0,
            bins: [NONE; BINS],
            nonempty: 0,
            free_pages: 0,
            given_back: 0,
        }
    }

    #[inline]
    pub fn frontier(&self) -> usize {
        self.frontier
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.tags.len()
    }

    #[inline]
    pub fn writable(&self) -> usize {
        self.writable
    }

    // Inline and without a slice (whose bound check could panic): free's
    // first step on every call, in another crate than the heap's callers.
    #[inline]
    pub fn tag(&self, page: usize) -> Option<&PageTag> {
        if page < self.frontier {
            self.tags.get(page)
        } else {
            None
        }
    }

    #[inline]
    pub fn tag_mut(&mut self, page: usize) -> &mut PageTag {
        &mut self.tags[page]
    }

    /// A run of `n` pages marked `kind`, or None when the arena (or the
    /// kernel) has no room. Returns its first page.
    pub fn allocate(&mut self, n: usize, kind: RunKind, grow: &mut impl Grow) -> Option<usize> {
        let first = match self.find_fit(n) {
            Some(first) => {
                self.grow_given_back(first, n, grow)?;
                self.split_free(first, n)
            }
            None => self.extend(n, grow)?,
        };
        self.set_bounds(first, n, kind);
        Some(first)
    }

    /// Grows again the pages of `first..first+n` that were given back
    /// (free pages, or free blocks' pages of a span: nothing else
    /// changes); None when the kernel refuses (those grown so far stay
    /// grown).
    pub fn grow_given_back(&mut self, first: usize, n: usize, grow: &mut impl Grow) -> Option<()> {
        if self.given_back == 0 {
            return Some(());
        }
        let (mut page, end) = (first, first + n);
        while page < end {
            if !self.tags[page].given_back {
                page += 1;
                continue;
            }
            let len = self.tags[page..end].iter().take_while(|t| t.given_back).count();
            if !grow.grow_pages(page, len) {
                return None;
            }
            for tag in &mut self.tags[page..page + len] {
                tag.given_back = false;
            }
            self.given_back -= len;
            page += len;
        }
        Some(())
    }

    /// Gives the writability of every free page not given back yet to the
    /// kernel, one call of `give(first, count)` per stretch of such pages
    /// (true: done, and the pages read zero); returns the pages given
    /// back and how many of them were not clean. The cold path of an
    /// allocation the kernel's commit limit refused: the free runs, each
    /// too short for the request, no longer count against the limit, and
    /// the frontier can move on by as much.
    pub fn give_back(&mut self, mut give: impl FnMut(usize, usize) -> bool) -> (usize, usize) {
        let before = self.given_back;
        let (mut page, mut were_dirty) = (0, 0);
        while page < self.frontier {
            let len = self.tags[page].len as usize;
            if self.tags[page].kind == RunKind::Free {
                were_dirty += self.give_back_run(page, len, &mut give);
            }
            page += len;
        }
        (self.given_back - before, were_dirty)
    }

    /// Records that the kernel took back the writability of pages
    /// `first..first+n` (of a free run, or of a span holding only free
    /// blocks there): they read zero, and [`Self::grow_given_back`] must
    /// grow them before they are used.
    pub fn mark_given_back(&mut self, first: usize, n: usize) {
        for tag in &mut self.tags[first..first + n] {
            debug_assert!(!tag.given_back);
            tag.given_back = true;
            tag.clean = true;
        }
        self.given_back += n;
    }

    /// Returns how many of the pages it gave back were not clean.
    fn give_back_run(
        &mut self,
        first: usize,
        n: usize,
        give: &mut impl FnMut(usize, usize) -> bool,
    ) -> usize {
        let mut were_dirty = 0;
        let (mut page, end) = (first, first + n);
        while page < end {
            if self.tags[page].given_back {
                page += 1;
                continue;
            }
            let len = self.tags[page..end].iter().take_while(|t| !t.given_back).count();
            if give(page, len) {
                were_dirty += self.tags[page..page + len].iter().filter(|t| !t.clean).count();
                self.mark_given_back(page, len);
            }
            page += len;
        }
        were_dirty
    }

    /// The first page of a free run of at least n pages from the bins.
    fn find_fit(&self, n: usize) -> Option<usize> {
        // The floor bin may hold a run that fits; look at a few first.
        let floor = bin_of(n);
        let mut at = self.bins[floor];
        for _ in 0..4 {
            if at == NONE {
                break;
            }
            if self.tags[at as usize].len as usize >= n {
                return Some(at as usize);
            }
            at = self.tags[at as usize].next;
        }
        let from = bin_fitting(n);
        if from >= BINS {
            return None;
        }
        let candidates = self.nonempty & (!0u128 << from);
        if candidates == 0 {
            return None;
        }
        Some(self.bins[candidates.trailing_zeros() as usize] as usize)
    }

    /// Takes free run `first` out of its bin; its first `n` pages become
    /// the caller's, the rest goes back as a free run.
    fn split_free(&mut self, first: usize, n: usize) -> usize {
        let len = self.tags[first].len as usize;
        self.unlink(first);
        if len > n {
            self.insert_free(first + n, len - n);
        }
        first
    }

    /// Pages from the frontier (joined to a free run just below it).
    fn extend(&mut self, n: usize, grow: &mut impl Grow) -> Option<usize> {
        let below = match self.frontier.checked_sub(1).map(|last| self.tags[last]) {
            Some(tag) if tag.kind == RunKind::Free => tag.len as usize,
            _ => 0,
        };
        let first = self.frontier - below;
        self.grow_given_back(first, below.min(n), grow)?;
        self.extend_frontier(n.saturating_sub(below), grow)?;
        if below > 0 {
            self.unlink(first);
            self.clear_bounds(first, below);
            // The bins' search looks only at the first runs of the exact
            // bin, so a free run below the frontier can hold more than n.
            if below > n {
                self.insert_free(first + n, below - n);
            }
        }
        Some(first)
    }

    /// Makes pages up to `end` writable: a chunk of GROW_PAGES ahead, or,
    /// when the kernel refuses that, just what is needed (the last
    /// megabyte of a budget is not lost to the chunk size).
    fn make_writable(&mut self, end: usize, grow: &mut impl Grow) -> bool {
        if end <= self.writable {
            return true;
        }
        let needed = end - self.writable;
        let chunk = needed.max(GROW_PAGES).min(self.tags.len() - self.writable);
        let granted = if grow.grow_pages(self.writable, chunk) {
            chunk
        } else if chunk > needed && grow.grow_pages(self.writable, needed) {
            needed
        } else {
            return false;
        };
        self.writable += granted;
        true
    }

    fn set_bounds(&mut self, first: usize, n: usize, kind: RunKind) {
        let last = first + n - 1;
        for page in [last, first] {
            self.tags[page].len = n as u32;
            self.tags[page].kind = kind;
            self.tags[page].first = page == first;
        }
    }

    fn clear_bounds(&mut self, first: usize, n: usize) {
        for page in [first, first + n - 1] {
            self.tags[page].kind = RunKind::Inside;
            self.tags[page].first = false;
        }
    }

    /// Gives run `first` (n pages, used) back, merged with free neighbours.
    /// Returns the free run it is now part of (first page, pages).
    pub fn free(&mut self, first: usize, n: usize) -> (usize, usize) {
        self.clear_bounds(first, n);
        let (mut start, mut len) = (first, n);
        if start > 0 && self.tags[start - 1].kind == RunKind::Free {
            let before = self.tags[start - 1].len as usize;
            start -= before;
            self.unlink(start);
            self.clear_bounds(start, before);
            len += before;
        }
        let after = first + n;
        if after < self.frontier && self.tags[after].kind == RunKind::Free {
            let more = self.tags[after].len as usize;
            self.unlink(after);
            self.clear_bounds(after, more);
            len += more;
        }
        self.insert_free(start, len);
        (start, len)
    }

    /// Undoes a [`Self::free`] of `first..first+n` that merged into free
    /// run `run` (nothing having been taken from it since): the run is
    /// split around the block again, which is `kind` once more.
    pub fn take_back(&mut self, run: (usize, usize), first: usize, n: usize, kind: RunKind) {
        let (start, len) = run;
        self.unlink(start);
        self.clear_bounds(start, len);
        if first > start {
            self.insert_free(start, first - start);
        }
        if start + len > first + n {
            self.insert_free(first + n, start + len - (first + n));
        }
        self.set_bounds(first, n, kind);
    }

    /// Grows used run `first` of `n` pages to `want` pages in place, from
    /// a free run right after it and, past that, the frontier. False
    /// (nothing changed) if they do not reach.
    pub fn grow_in_place(&mut self, first: usize, n: usize, want: usize, grow: &mut impl Grow) -> bool {
        let after = first + n;
        let free = match self.tags.get(after) {
            Some(tag) if after < self.frontier && tag.kind == RunKind::Free => tag.len as usize,
            _ => 0,
        };
        let reaches_frontier = after + free == self.frontier;
        if n + free < want && !reaches_frontier {
            return false;
        }
        if self.grow_given_back(after, free.min(want - n), grow).is_none() {
            return false;
        }
        if n + free < want && self.extend_frontier(want - n - free, grow).is_none() {
            return false;
        }
        if free > 0 {
            self.unlink(after);
            self.clear_bounds(after, free);
            if n + free > want {
                self.insert_free(first + want, n + free - want);
            }
        }
        let kind = self.tags[first].kind;
        self.clear_bounds(first, n);
        self.set_bounds(first, want, kind);
        true
    }

    /// `count` more pages past the frontier, made writable and clean.
    fn extend_frontier(&mut self, count: usize, grow: &mut impl Grow) -> Option<()> {
        let end = self.frontier.checked_add(count).filter(|&e| e <= self.tags.len())?;
        if !self.make_writable(end, grow) {
            return None;
        }
        for tag in &mut self.tags[self.frontier..end] {
            tag.clean = true;
        }
        self.frontier = end;
        Some(())
    }

    /// Shrinks used run `first` from `n` to `keep` pages; the tail becomes
    /// free (merged with what follows).
    pub fn shrink(&mut self, first: usize, n: usize, keep: usize) {
        let kind = self.tags[first].kind;
        self.clear_bounds(first, n);
        self.set_bounds(first, keep, kind);
        self.set_bounds(first + keep, n - keep, RunKind::Large);
        self.free(first + keep, n - keep);
    }

    fn insert_free(&mut self, first: usize, n: usize) {
        self.set_bounds(first, n, RunKind::Free);
        let bin = bin_of(n);
        let head = self.bins[bin];
        self.tags[first].next = head;
        self.tags[first].prev = NONE;
        if head != NONE {
            self.tags[head as usize].prev = first as u32;
        }
        self.bins[bin] = first as u32;
        self.nonempty |= 1 << bin;
        self.free_pages += n;
    }

    fn unlink(&mut self, first: usize) {
        let n = self.tags[first].len as usize;
        let bin = bin_of(n);
        let (prev, next) = (self.tags[first].prev, self.tags[first].next);
        if prev == NONE {
            self.bins[bin] = next;
            if next == NONE {
                self.nonempty &= !(1 << bin);
            }
        } else {
            self.tags[prev as usize].next = next;
        }
        if next != NONE {
            self.tags[next as usize].prev = prev;
        }
        self.free_pages -= n;
    }

    /// Marks `first..first+n` clean or not; returns how many changed.
    pub fn set_clean(&mut self, first: usize, n: usize, clean: bool) -> usize {
        let mut changed = 0;
        for tag in &mut self.tags[first..first + n] {
            changed += (tag.clean != clean) as usize;
            tag.clean = clean;
        }
        changed
    }

    /// (kind, length) of the run that starts at `page`, if one does.
    #[inline]
    pub fn run_at(&self, page: usize) -> Option<(RunKind, usize)> {
        let tag = self.tag(page)?;
        tag.first.then_some((tag.kind, tag.len as usize))
    }
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
impl PageHeap {
    /// Checks the tags: runs tile `0..frontier` with matching bounds, no
    /// two free runs touch, every free run is in its bin, the free count
    /// adds up. Returns the runs (first, len, kind).
    pub fn check(&self) -> std::vec::Vec<(usize, usize, RunKind)> {
        let mut runs = std::vec::Vec::new();
        let mut page = 0;
        let (mut free, mut given_back_total) = (0, 0);
        while page < self.frontier {
            let (kind, len) = self.run_at(page).unwrap_or_else(|| panic!("no run starts at page {page}"));
            let last = &self.tags[page + len - 1];
            assert!(last.kind == kind && last.len as usize == len, "run at {page}: end tag disagrees");
            for inside in page + 1..page + len - 1 {
                assert_eq!(self.tags[inside].kind, RunKind::Inside, "stale bound inside run at {page}");
            }
            if kind == RunKind::Free {
                assert!(
                    runs.last().is_none_or(|&(_, _, k)| k != RunKind::Free),
                    "adjacent free runs at {page}"
                );
                let bin = bin_of(len);
                let mut at = self.bins[bin];
                while at != NONE && at as usize != page {
                    at = self.tags[at as usize].next;
                }
                assert_eq!(at as usize, page, "free run at {page} not in bin {bin}");
                free += len;
            }
            let given_back = self.tags[page..page + len].iter().filter(|t| t.given_back).count();
            assert!(
                given_back == 0 || kind != RunKind::Large,
                "{kind:?} run at {page} holds pages given back"
            );
            assert!(
                self.tags[page..page + len].iter().all(|t| t.clean || !t.given_back),
                "given back and dirty"
            );
            given_back_total += given_back;
            runs.push((page, len, kind));
            page += len;
        }
        assert_eq!(page, self.frontier);
        assert_eq!(free, self.free_pages);
        assert_eq!(given_back_total, self.given_back);
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Unlimited;

    impl Grow for Unlimited {
        fn grow_pages(&mut self, _: usize, _: usize) -> bool {
            true
        }
    }

    #[test]
    fn a_free_run_below_the_frontier_longer_than_asked_keeps_its_rest() {
        let tags = std::vec![PageTag::default(); 1024].leak();
        let mut heap = PageHeap::new(tags);
        let mut runs = std::vec::Vec::new();
        for _ in 0..4 {
            runs.push(heap.allocate(33, RunKind::Large, &mut Unlimited).unwrap());
            heap.allocate(1, RunKind::Large, &mut Unlimited).unwrap();
        }
        let last = heap.allocate(38, RunKind::Large, &mut Unlimited).unwrap();
        assert_eq!(last + 38, heap.frontier());
        // Runs of 33..=39 pages share a bin. The 38-page run goes in first,
        // behind four 33-page runs, where the first look at the bin stops;
        // a request for 36 then finds nothing in the bins above.
        heap.free(last, 38);
        runs.iter().for_each(|&r| _ = heap.free(r, 33));
        let got = heap.allocate(36, RunKind::Large, &mut Unlimited).unwrap();
        assert_eq!(got, last, "taken from below the frontier, no growth");
        assert_eq!(heap.frontier(), last + 38);
        assert_eq!(heap.run_at(last + 36), Some((RunKind::Free, 2)), "the rest stays a free run");
        heap.check();
    }

    #[test]
    fn bins_ascend_and_a_fitting_bin_only_holds_runs_that_fit() {
        let mut smallest_in_bin = [usize::MAX; BINS];
        let mut last = 0;
        for n in 1..300_000usize {
            let b = bin_of(n);
            assert!(b >= last && b < BINS, "bins ascend with length");
            last = b;
            smallest_in_bin[b] = smallest_in_bin[b].min(n);
        }
        for n in 1..200_000usize {
            let fit = bin_fitting(n);
            assert!(smallest_in_bin[fit] >= n, "bin {fit} holds runs shorter than {n}");
            assert!(fit <= bin_of(n) + 1, "no bin skipped");
        }
    }
}
