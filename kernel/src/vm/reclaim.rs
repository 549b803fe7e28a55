//! Reclaim on the real machine: the reverse map (frame → space, page) and
//! the replacement policy (`mm::reclaim::hot_cold`) under one lock, the
//! clock hand, and the two callers of `mm::reclaim::Clock::sweep`:
//!
//! - **direct reclaim**, in the page-fault path and in commit: when an
//!   allocation failed (free frames at the min watermark, the kernel's
//!   reserve), the process that asked pays for evicting a batch, then its
//!   fault or commit is retried;
//! - **background reclaim**, between time slices (`process::run_until_idle`
//!   calls [`in_background`]): below low, evict in batches up to high, so
//!   that faults seldom have to.
//!
//! Both run with the address-space registry locked (they change other
//! spaces' page tables); the clock sees every process page of every space
//! and every page of the page cache. An anonymous page goes to swap; a
//! cached file page, which any number of spaces may map, is aged in all of
//! them (second chance if any entry was accessed), then unmapped from all
//! and dropped: it is clean, the disk still has it.

use super::{Space, SpaceId};
use crate::memory::frames;
use crate::swap;
use alloc::collections::BTreeMap;
use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::addr::{Pfn, UserAddr};
use mm::files::FilePage;
use mm::reclaim::hot_cold::{HotCold, HotColdStats, Step};
use mm::reclaim::{Clock, PageOwner, ReverseMap, Sweep, Verdict, Watermarks};
use mm::vm::{Choice, Chosen, MAX_FINISHED};
use spin::{Mutex, Once};
use x86_64::instructions::interrupts::without_interrupts;

static RESIDENT: Once<Mutex<Resident>> = Once::new();
static CLOCK: Mutex<Clock> = Mutex::new(Clock::new());
static WATERMARKS: Once<Watermarks> = Once::new();

/// What reclaim knows of every frame, under one lock: whose page it holds
/// and what the replacement policy thinks of it.
struct Resident {
    map: ReverseMap,
    policy: HotCold,
}

/// Pages evicted, by who did it.
static DIRECT: AtomicU64 = AtomicU64::new(0);
static BACKGROUND: AtomicU64 = AtomicU64::new(0);
/// Of those, pages whose frame read all zero: made demand-zero again, no write.
static ZERO_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Background work per call: bounded so a time slice is not delayed long.
const BACKGROUND_BATCH: u64 = 256;
/// Direct reclaim after a failed allocation: a few pages so the retry
/// (and the next faults) find frames.
const DIRECT_BATCH: u64 = 32;
/// Empty frames the hand passes over under one lock (interrupts are off
/// meanwhile: a bound on how long).
const EMPTY_RUN_AT_ONCE: u64 = 1024;
/// Cold pages the policy keeps at least: a cold page needs two visits of
/// the hand before it may go, and a sweep wants up to a background batch,
/// so a smaller cold pool would send sweeps round a whole turn and into
/// the hot pages (`HotCold::visit`'s `short`) on every busy moment.
const MIN_COLD: u64 = 4 * BACKGROUND_BATCH;

pub fn init() {
    let span = frames::span();
    let span_frames = span.end.number() - span.start.number();
    let map = ReverseMap::new(span).expect("a reverse map at boot (8 bytes per frame)");
    let mut policy = HotCold::new(span_frames, MIN_COLD)
        .expect("the replacement policy's state at boot (5 bytes per frame)");
    policy.set_capacity(free_frames());
    RESIDENT.call_once(|| Mutex::new(Resident { map, policy }));
    WATERMARKS.call_once(|| Watermarks::for_total(frames::stats().total));
}

pub fn watermarks() -> Watermarks {
    *WATERMARKS.get().expect("reclaim::init has run")
}

fn resident<R>(f: impl FnOnce(&mut Resident) -> R) -> R {
    without_interrupts(|| f(&mut RESIDENT.get().expect("reclaim::init has run").lock()))
}

/// `frame` now holds page `va` of space `space`.
pub(super) fn record(frame: Pfn, space: SpaceId, va: UserAddr) {
    resident(|r| {
        r.map.set(frame, PageOwner { space: space.0, page: va });
        r.policy.admit(r.map.index_of(frame));
    });
}

/// The page just read into `frame` (from swap, or from the file disk into
/// the page cache) left memory at `evicted_at` of the eviction clock: the
/// policy judges its refault distance.
pub(crate) fn refaulted(frame: Pfn, evicted_at: u32) {
    resident(|r| r.policy.refaulted(r.map.index_of(frame), evicted_at));
}

/// `frame` now caches file page `key`.
pub fn record_cached(frame: Pfn, key: FilePage) {
    resident(|r| {
        r.map.set_cached(frame, key);
        r.policy.admit(r.map.index_of(frame));
    });
}

/// The file page `frame` caches, if it is a page-cache frame.
pub fn cached_page(frame: Pfn) -> Option<FilePage> {
    resident(|r| r.map.get_cached(frame))
}

/// `frame` holds no process or page-cache page any more.
pub fn forget(frame: Pfn) {
    forget_all(core::iter::once(frame));
}

/// [`forget`] for several frames, under one lock.
pub fn forget_all(frames: impl Iterator<Item = Pfn>) {
    resident(|r| {
        for frame in frames {
            r.map.clear(frame);
            r.policy.remove(r.map.index_of(frame));
        }
    });
}

/// Evicts up to `want` pages with the clock and the hot/cold policy (two
/// turns at most: after one without enough, unused hot pages go too).
/// When swap takes no more pages, anonymous pages are passed over and the
/// sweep goes on for page-cache pages, which need no swap. Anonymous pages
/// chosen are gathered in batches and written behind ([`WriteBehind`]).
fn sweep(spaces: &mut BTreeMap<SpaceId, Space>, want: u64) -> Sweep {
    if !anything_to_reclaim() {
        return Sweep::default();
    }
    let free = free_frames();
    let frames = resident(|r| {
        r.policy.set_capacity(r.policy.stats().resident + free);
        r.map.frames()
    });
    let mut clock = *CLOCK.lock();
    let mut swap_refused = false;
    let mut writer = WriteBehind::default();
    // Chosen pages count as evicted for the hand (so it stops at `want`);
    // what the writes really evicted replaces the count at the end.
    let (mut chosen, mut written) = (0, 0);
    // Frames the hand passed, visited or not (a whole turn: memory is short).
    let passed = Cell::new(0);
    // Frames that hold nothing are passed over in runs, under one lock per
    // run: most frames of a machine with memory to spare hold no page, and
    // a lock and a lookup for each made up most of the sweep's time.
    let empty_run = |index, most: u64| {
        let empty = resident(|r| {
            if index == 0 {
                r.policy.turn_began();
            }
            r.map.empty_run(index, most.min(EMPTY_RUN_AT_ONCE))
        });
        passed.set(passed.get() + empty);
        empty
    };
    let mut sweep = clock.sweep_occupied(frames, want, 2 * frames, empty_run, |index| {
        passed.set(passed.get() + 1);
        let short = passed.get() > frames;
        // One lock for the look-up, the page's aging and the policy's
        // verdict, which used to take it twice (nothing in between takes
        // it: aging reads and writes the page's entry and flushes it).
        let (all, waiting) = (&mut *spaces, &writer);
        let visit = resident(move |r| {
            let frame = r.map.frame_at(index);
            if let Some(key) = r.map.get_cached(frame) {
                return Visit::Cached(frame, key);
            }
            if swap_refused {
                return Visit::Done(Verdict::Skipped);
            }
            let Some(owner) = r.map.get(frame) else { return Visit::Done(Verdict::Skipped) };
            let id = SpaceId(owner.space);
            let Some(space) = all.get_mut(&id) else { return Visit::Done(Verdict::Skipped) };
            match space.age_or_choose(owner.page, frame) {
                Choice::Skipped => Visit::Done(Verdict::Skipped),
                // On its second turn the hand can meet a page still waiting.
                Choice::Chosen(_) if waiting.holds(frame) => Visit::Done(Verdict::Skipped),
                Choice::Referenced => {
                    // A used page always stays; the policy learns it was used.
                    r.policy.visit(index, true, short);
                    Visit::Done(Verdict::Referenced)
                }
                Choice::Chosen(pick) => match r.policy.visit(index, false, short) {
                    Step::Keep => Visit::Done(Verdict::Referenced),
                    Step::Evict => Visit::Evict(id, space, pick),
                },
            }
        });
        let (id, space, pick) = match visit {
            Visit::Done(verdict) => return verdict,
            Visit::Cached(frame, key) => {
                let referenced = age_cached(spaces, key, frame);
                return match resident(|r| r.policy.visit(index, referenced, short)) {
                    Step::Keep => Verdict::Referenced,
                    Step::Evict => drop_cached(spaces, key, frame),
                };
            }
            Visit::Evict(id, space, pick) => (id, space, pick),
        };
        // A page back from swap and not written since still has its copy
        // there (the swap cache): it leaves with no write.
        if let Some(slot) = space.evict_clean(pick) {
            swap::set_evicted_at(core::iter::once(slot), eviction_clock());
            (chosen, written) = (chosen + 1, written + 1);
            return Verdict::Evicted;
        }
        // A page that reads all zero needs no slot and no write.
        if space.drop_if_zero(pick) {
            ZERO_DROPPED.fetch_add(1, Ordering::Relaxed);
            (chosen, written) = (chosen + 1, written + 1);
            return Verdict::Evicted;
        }
        writer.gathering.add(id, pick);
        let refused = writer.gathering.len == swap::BATCH_PAGES && {
            let (evicted, refused) = writer.submit(spaces);
            written += evicted;
            refused
        };
        if !refused {
            chosen += 1;
            return Verdict::Evicted;
        }
        swap_refused = true;
        if crate::files::has_pages() {
            Verdict::Skipped
        } else {
            Verdict::Stop
        }
    });
    written += writer.drain(spaces);
    let file_evictions = sweep.evicted - chosen;
    sweep.evicted = file_evictions + written;
    *CLOCK.lock() = clock;
    sweep
}

/// What one visit of the hand decided under the reclaim lock.
enum Visit<'a> {
    /// Nothing more to do.
    Done(Verdict),
    /// A page-cache page: aged in every space that maps it, outside the lock.
    Cached(Pfn, FilePage),
    /// An anonymous page of this space to evict.
    Evict(SpaceId, &'a mut Space, Chosen),
}

/// Anonymous pages the clock chose ([`Choice::Chosen`]: still mapped,
/// unchanged), waiting to go to swap in one request.
#[derive(Default)]
struct Batch {
    pages: [Option<(SpaceId, Chosen)>; swap::BATCH_PAGES],
    len: usize,
}

const _: () = assert!(swap::BATCH_PAGES <= MAX_FINISHED, "a batch fits one call of finish_evictions");

impl Batch {
    fn chosen(&self) -> impl Iterator<Item = &(SpaceId, Chosen)> {
        self.pages[..self.len].iter().flatten()
    }

    fn holds(&self, frame: Pfn) -> bool {
        self.chosen().any(|(_, c)| c.frame() == frame)
    }

    fn add(&mut self, space: SpaceId, chosen: Chosen) {
        self.pages[self.len] = Some((space, chosen));
        self.len += 1;
    }

    /// Puts the pages in (space, address) order, so that the run of slots
    /// they are written to follows their addresses: the clock gathers them
    /// in frame order, which is often the reverse (the frame allocator
    /// hands recently freed frames back last-in, first-out), and swap-in
    /// read-ahead reads a page's neighbours in one request when their
    /// slots follow its slot (one request per run of slots otherwise).
    fn sort_by_page(&mut self) {
        self.pages[..self.len].sort_unstable_by_key(|page| page.map(|(space, c)| (space, c.page())));
    }

    fn frames(&self) -> ([Pfn; swap::BATCH_PAGES], usize) {
        let mut frames = [Pfn::new(0); swap::BATCH_PAGES];
        for (frame, (_, c)) in frames.iter_mut().zip(self.chosen()) {
            *frame = c.frame();
        }
        (frames, self.len)
    }

    /// The batch's pages are on the disk, in `slots` (in order; fewer
    /// slots than pages: only the first ones were written): their entries
    /// become `Swapped` and their frames go, one call for each run of one
    /// space's pages (which frees their frames together), and their slots
    /// are stamped with the eviction clock under one lock. Nothing ran since the pages were
    /// chosen, so this holds; a page for which it did not stays, and its
    /// slot goes back. Returns the pages evicted.
    fn finish(&self, spaces: &mut BTreeMap<SpaceId, Space>, slots: impl Iterator<Item = u64>) -> u64 {
        let Some(&(_, any)) = self.chosen().next() else { return 0 };
        // The written pages, in batch order: their spaces, and each page
        // with its slot (`any` only fills the unused tail).
        let (mut ids, mut pages) = ([SpaceId(0); swap::BATCH_PAGES], [(any, 0); swap::BATCH_PAGES]);
        let mut len = 0;
        for ((id, page), (&(space, chosen), slot)) in
            ids.iter_mut().zip(&mut pages).zip(self.chosen().zip(slots))
        {
            (*id, *page, len) = (space, (chosen, slot), len + 1);
        }
        // Each run of pages of one space is finished in one call.
        let (mut evicted, mut start) = (0u32, 0);
        while start < len {
            let id = ids[start];
            let end = start + ids[start..len].iter().take_while(|&&other| other == id).count();
            let done = spaces.get_mut(&id).map_or(0, |space| space.finish_evictions(&pages[start..end]));
            evicted |= done << start;
            start = end;
        }
        let kept = |i: &usize| evicted & (1 << i) != 0;
        swap::set_evicted_at((0..len).filter(kept).map(|i| pages[i].1), eviction_clock());
        for i in (0..len).filter(|i| !kept(i)) {
            swap::release(pages[i].1);
        }
        evicted.count_ones() as u64
    }

    /// Writes the pages one request each (no batch could start) and
    /// finishes their evictions. Returns the pages evicted and whether
    /// swap refused (full or failing: the pages not written stay as they
    /// were).
    fn write_one_by_one(&self, spaces: &mut BTreeMap<SpaceId, Space>) -> (u64, bool) {
        let mut slots = [0u64; swap::BATCH_PAGES];
        let mut written = 0;
        let mut refused = false;
        for (slot, (_, chosen)) in slots.iter_mut().zip(self.chosen()) {
            match swap::write_out(chosen.frame()) {
                Ok(s) => (*slot, written) = (s, written + 1),
                Err(_) => {
                    refused = true;
                    break;
                }
            }
        }
        (self.finish(spaces, slots[..written].iter().copied()), refused)
    }
}

/// The policy's eviction clock, read once per batch for its pages'
/// eviction stamps (a batch is a few evictions; the stamps measure
/// distances of hundreds), and for a dropped page-cache page's shadow
/// entry.
pub(crate) fn eviction_clock() -> u32 {
    resident(|r| r.policy.now())
}

/// Swap-out's write-behind: a full batch's write is started, and only when
/// [`swap::BATCHES_IN_FLIGHT`] are on their way is the oldest (whose write
/// ran while the later ones were gathered) waited for and its evictions
/// finished, so the device and the clock work at the same time. The
/// device reads the pages straight from their frames, so every chosen page
/// stays mapped, allocated and unchanged until its batch is finished: the
/// registry lock is held for the whole sweep (no process runs, no other
/// space changes), and a frame is freed only by its batch's
/// [`finish_eviction`], after the write.
#[derive(Default)]
struct WriteBehind {
    gathering: Batch,
    /// Started batches, oldest first.
    started: Started,
}

/// A FIFO of started batches, at most [`swap::BATCHES_IN_FLIGHT`].
#[derive(Default)]
struct Started {
    batches: [Option<(Batch, swap::StartedBatch)>; swap::BATCHES_IN_FLIGHT],
    oldest: usize,
    len: usize,
}

impl Started {
    fn is_full(&self) -> bool {
        self.len == swap::BATCHES_IN_FLIGHT
    }

    fn push(&mut self, batch: (Batch, swap::StartedBatch)) {
        assert!(!self.is_full(), "a batch is waited for before another starts");
        self.batches[(self.oldest + self.len) % swap::BATCHES_IN_FLIGHT] = Some(batch);
        self.len += 1;
    }

    fn pop_oldest(&mut self) -> Option<(Batch, swap::StartedBatch)> {
        self.len = self.len.checked_sub(1)?;
        let batch = self.batches[self.oldest].take();
        self.oldest = (self.oldest + 1) % swap::BATCHES_IN_FLIGHT;
        batch
    }

    fn holds(&self, frame: Pfn) -> bool {
        self.batches.iter().flatten().any(|(batch, _)| batch.holds(frame))
    }
}

impl WriteBehind {
    fn holds(&self, frame: Pfn) -> bool {
        self.gathering.holds(frame) || self.started.holds(frame)
    }

    /// Starts the gathered batch (after finishing the oldest when
    /// [`swap::BATCHES_IN_FLIGHT`] are on their way). Returns the pages
    /// evicted and whether swap refused.
    fn submit(&mut self, spaces: &mut BTreeMap<SpaceId, Space>) -> (u64, bool) {
        let (mut evicted, mut refused) =
            if self.started.is_full() { self.finish_oldest(spaces) } else { (0, false) };
        let mut batch = core::mem::take(&mut self.gathering);
        batch.sort_by_page();
        let (frames, len) = batch.frames();
        match swap::start_batch(&frames[..len]) {
            Some(write) => self.started.push((batch, write)),
            None => {
                let (one_by_one, failed) = batch.write_one_by_one(spaces);
                evicted += one_by_one;
                refused |= failed;
            }
        }
        (evicted, refused)
    }

    /// Waits for the oldest started batch, if any, and finishes its
    /// evictions.
    fn finish_oldest(&mut self, spaces: &mut BTreeMap<SpaceId, Space>) -> (u64, bool) {
        let Some((batch, write)) = self.started.pop_oldest() else { return (0, false) };
        match swap::finish_batch(write) {
            Ok(slots) => (batch.finish(spaces, slots), false),
            Err(_) => (0, true),
        }
    }

    /// The end of a sweep: what is gathered goes too, and every write is
    /// waited for. Returns the pages evicted.
    fn drain(&mut self, spaces: &mut BTreeMap<SpaceId, Space>) -> u64 {
        let mut evicted = if self.gathering.len > 0 { self.submit(spaces).0 } else { 0 };
        while self.started.len > 0 {
            evicted += self.finish_oldest(spaces).0;
        }
        evicted
    }
}

/// Whether a sweep could free anything: swap has a free slot on a disk in
/// service, or the page cache holds pages. (Without either, a sweep would visit every frame for
/// nothing, on every allocation that fails.)
fn anything_to_reclaim() -> bool {
    crate::swap::info().is_some_and(|s| s.takes_pages()) || crate::files::has_pages()
}

/// Whether a page-cache page was used since the last pass: the cache saw
/// it used, or any entry that maps it was accessed (all bits cleared).
fn age_cached(spaces: &mut BTreeMap<SpaceId, Space>, key: FilePage, frame: Pfn) -> bool {
    let (file, page) = (key.file.0, key.page);
    let mut referenced = crate::files::take_referenced(key);
    for space in spaces.values_mut() {
        referenced |= space.age_file_page(file, page, frame);
    }
    referenced
}

/// A page-cache page the policy let go: unmapped from every space and
/// dropped (it is clean; the disk still has it).
fn drop_cached(spaces: &mut BTreeMap<SpaceId, Space>, key: FilePage, frame: Pfn) -> Verdict {
    for space in spaces.values_mut() {
        space.drop_file_page(key.file.0, key.page, frame);
    }
    if crate::files::evict(key, frame) {
        Verdict::Evicted
    } else {
        Verdict::Skipped
    }
}

fn free_frames() -> u64 {
    frames::free_count()
}

/// Frames one fault or one commit step may need at once: the page and
/// the page tables on its way (three levels below the root).
const FRAMES_PER_PAGE: u64 = 4;

/// Direct reclaim around one allocating attempt (a fault, a commit step;
/// the loop and its bound in `mm::reclaim::direct`): when the next
/// allocation would fail (free frames at the min watermark) a batch is
/// evicted first, so the attempt does not fail and get counted as out of
/// memory; when it still ran out of memory, another batch and the attempt
/// again, while reclaim frees some, `direct::MAX_RETRIES` times at most.
pub(super) fn direct<R>(
    spaces: &mut BTreeMap<SpaceId, Space>,
    attempt: impl FnMut(&mut BTreeMap<SpaceId, Space>) -> R,
    out_of_memory: impl Fn(&R) -> bool,
) -> R {
    let short = free_frames() < watermarks().min + FRAMES_PER_PAGE;
    mm::reclaim::direct::around(spaces, short, attempt, out_of_memory, evict_batch)
}

/// Evicts a batch for direct reclaim; returns how many pages went.
fn evict_batch(spaces: &mut BTreeMap<SpaceId, Space>) -> u64 {
    let evicted = sweep(spaces, DIRECT_BATCH).evicted;
    DIRECT.fetch_add(evicted, Ordering::Relaxed);
    evicted
}

/// Evicts up to `want` pages now, whatever the watermarks say (for
/// `make bench`); returns how many went.
pub fn evict(want: u64) -> u64 {
    let mut evicted = 0;
    while evicted < want {
        let swept = super::with_all(|spaces| sweep(spaces, want - evicted));
        evicted += swept.evicted;
        if swept.evicted == 0 {
            break;
        }
    }
    evicted
}

/// Between time slices: below low, evict a batch towards high.
pub fn in_background() {
    let (free, marks) = (free_frames(), watermarks());
    if free >= marks.low {
        return;
    }
    let evicted = super::with_all(|spaces| sweep(spaces, (marks.high - free).min(BACKGROUND_BATCH)).evicted);
    BACKGROUND.fetch_add(evicted, Ordering::Relaxed);
}

/// Reclaim's numbers for meminfo.
#[derive(Clone, Copy, Debug)]
pub struct ReclaimInfo {
    pub marks: Watermarks,
    pub direct: u64,
    pub background: u64,
    /// Of the pages evicted, those dropped to demand-zero without a write.
    pub zero_dropped: u64,
    pub mapped_frames: u64,
    pub policy: HotColdStats,
}

pub fn info() -> ReclaimInfo {
    let (mapped_frames, policy) = resident(|r| (r.map.mapped(), r.policy.stats()));
    ReclaimInfo {
        marks: watermarks(),
        direct: DIRECT.load(Ordering::Relaxed),
        background: BACKGROUND.load(Ordering::Relaxed),
        zero_dropped: ZERO_DROPPED.load(Ordering::Relaxed),
        mapped_frames,
        policy,
    }
}

impl core::fmt::Display for ReclaimInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.marks;
        write!(
            f,
            "reclaim: watermarks min {} / low {} / high {} free frames; evicted {} directly, {} in the background ({} of them zero pages, dropped without a write); {} frames in the reverse map (process and page-cache pages)",
            m.min, m.low, m.high, self.direct, self.background, self.zero_dropped, self.mapped_frames
        )?;
        let p = self.policy;
        write!(
            f,
            "\nreplacement: {} pages resident, {} hot; promoted {} (used again), demoted {}; refaults {} hot, {} cold; hot pages evicted when memory was short {}",
            p.resident, p.hot, p.promoted, p.demoted, p.refaulted_hot, p.refaulted_cold, p.hot_evicted
        )
    }
}
