//! `make bench`: the frame allocator's cost per allocate+free with 1K, 64K
//! and 1M frames handed out, against a blog_os-style allocator that walks the
//! memory map to its `next`-th usable frame on every call, measured in the
//! same run. Prints ns/operation and the ratios; absolute numbers depend on
//! the machine, the ratios are the result.

use mm::addr::{Pfn, FRAME_SIZE};
use mm::frame::{FrameAllocator, FrameBlock, Owner, CACHE_CAPACITY};
use mm::memory_map::{PhysKind, PhysRegion};
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

thread_local! {
    /// The most anonymous memory seen in huge pages while the metadata was
    /// advised into them (KiB).
    static HUGE_KIB: Cell<u64> = const { Cell::new(0) };
}

/// About 4.6 GiB of usable memory in four regions with holes, like a real map.
fn memory_map() -> Vec<PhysRegion> {
    let gib = 1u64 << 30;
    let mib = 1u64 << 20;
    let r = |start: u64, end: u64, kind| PhysRegion { start, end, kind };
    vec![
        r(0, 0x1000, PhysKind::Reserved),
        r(0x1000, 0x9f000, PhysKind::Usable),
        r(0x9f000, 0x100000, PhysKind::Reserved),
        r(0x100000, 3 * gib, PhysKind::Usable),
        r(3 * gib, 4 * gib, PhysKind::Reserved),
        r(4 * gib, 5 * gib + 18 * mib, PhysKind::Usable),
        r(5 * gib + 18 * mib, 5 * gib + 32 * mib, PhysKind::Acpi),
        r(5 * gib + 32 * mib, 5 * gib + 608 * mib, PhysKind::Usable),
    ]
}

fn usable(map: &[PhysRegion]) -> impl Iterator<Item = &PhysRegion> {
    map.iter().filter(|r| r.kind == PhysKind::Usable)
}

/// The allocator from "Writing an OS in Rust" (blog_os `src/memory.rs`):
/// every call rebuilds the iterator over usable frames and takes the
/// `next`-th. It cannot free; the bench gives it the cheapest possible free
/// (un-bumping `next`), which flatters it.
struct BlogOsAllocator<'a> {
    map: &'a [PhysRegion],
    next: usize,
}

impl BlogOsAllocator<'_> {
    fn usable_frames(&self) -> impl Iterator<Item = u64> + '_ {
        usable(self.map).flat_map(|r| (r.start..r.end).step_by(FRAME_SIZE as usize))
    }

    fn allocate(&mut self) -> Option<u64> {
        let frame = self.usable_frames().nth(self.next);
        self.next += 1;
        frame
    }

    fn free_last(&mut self) {
        self.next -= 1;
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs `op` in batches until at least `budget` has passed; ns per call.
fn time_per_op(budget: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    let mut batch = 1u64;
    while start.elapsed() < budget {
        for _ in 0..batch {
            op();
        }
        calls += batch;
        batch = (batch * 2).min(1 << 16);
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

#[derive(Clone, Copy)]
enum Pattern {
    /// Allocate a frame and free it again, `out` frames staying out.
    Pair,
    /// Free a random one of the `out` frames, allocate one in its place.
    RandomChurn,
}

/// The allocator's metadata, in 2 MiB pages when `huge` (on Linux, asked
/// of the kernel with `madvise(MADV_HUGEPAGE)`): the kernel reaches its
/// metadata through the physical-memory window, which the bootloader maps
/// with 2 MiB pages, so a random state-word access there costs a cache
/// miss but rarely a TLB miss; in 4 KiB pages of a host process it costs
/// both.
struct Metadata {
    words: *mut u64,
    len: usize,
    layout: std::alloc::Layout,
}

const HUGE_PAGE: usize = 2 << 20;

impl Metadata {
    fn new(len: usize, huge: bool) -> Metadata {
        let bytes = (len * 8).next_multiple_of(HUGE_PAGE);
        let layout = std::alloc::Layout::from_size_align(bytes, HUGE_PAGE).expect("layout");
        // SAFETY: a non-zero size with a valid alignment.
        let words = unsafe { std::alloc::alloc(layout) }.cast::<u64>();
        assert!(!words.is_null(), "out of memory");
        if huge {
            advise_huge(words.cast(), bytes);
        }
        // SAFETY: `words` is a fresh allocation of `bytes` bytes; zeroing it
        // touches every page after the advice, so they can be huge ones.
        unsafe { std::ptr::write_bytes(words.cast::<u8>(), 0, bytes) };
        Metadata { words, len, layout }
    }

    fn slice(&mut self) -> &mut [u64] {
        // SAFETY: `len` initialised words of the allocation this owns,
        // borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.words, self.len) }
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.words.cast(), self.layout) };
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(start: *mut u8, bytes: usize) {
    extern "C" {
        fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
    }
    const MADV_HUGEPAGE: i32 = 14;
    // SAFETY: advice only, on a range this process just allocated; a
    // kernel without transparent huge pages refuses it (then 4 KiB pages).
    unsafe { madvise(start, bytes, MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_start: *mut u8, _bytes: usize) {}

/// The process's anonymous memory in transparent huge pages, in KiB (0
/// where the kernel does not say): whether the advice was taken.
fn huge_pages_kib() -> u64 {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let line = rollup.lines().find(|l| l.starts_with("AnonHugePages:")).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).unwrap_or(0)
}

fn pagekeeper_cost(map: &[PhysRegion], out: usize, pattern: Pattern, cache: usize) -> f64 {
    pagekeeper_cost_in(map, out, pattern, cache, false)
}

fn pagekeeper_cost_in(map: &[PhysRegion], out: usize, pattern: Pattern, cache: usize, huge: bool) -> f64 {
    let first = usable(map).map(|r| Pfn::first_at_or_after(r.start)).min().expect("usable memory");
    let last = usable(map).map(|r| Pfn::containing(r.end)).max().expect("usable memory");
    let mut storage = Metadata::new(FrameAllocator::metadata_words(first..last), huge);
    if huge {
        HUGE_KIB.set(HUGE_KIB.get().max(huge_pages_kib()));
    }
    let mut frames = FrameAllocator::new(first..last, storage.slice()).expect("allocator");
    for r in usable(map) {
        frames.add_free(Pfn::first_at_or_after(r.start)..Pfn::containing(r.end)).expect("add");
    }
    frames.set_cache(cache);
    let mut churner = Allocator(&mut frames);
    time_churn(&mut churner, out, pattern)
}

/// What the timed loop asks of an allocator: one frame, and one back.
trait Churner {
    fn allocate(&mut self) -> FrameBlock;
    fn free(&mut self, block: FrameBlock);
}

struct Allocator<'a, 'm>(&'a mut FrameAllocator<'m>);

impl Churner for Allocator<'_, '_> {
    fn allocate(&mut self) -> FrameBlock {
        self.0.allocate(0, Owner::Process).expect("a frame")
    }

    fn free(&mut self, block: FrameBlock) {
        self.0.free(block).expect("free");
    }
}

/// The floor of the churn: an "allocator" with no per-frame state at all, a
/// stack that hands back the frame it was given last (what the recently
/// freed cache does in this loop) and checks nothing. Its calls are not
/// inlined, as the real allocator's are not. What it costs is the loop's
/// own work, including the random read of the held list, which at 1M out
/// misses the cache and, because the free needs the value it read, is
/// paid in full; any allocator pays it in this loop.
struct NullAllocator {
    returned: Vec<FrameBlock>,
    next: u64,
}

impl Churner for NullAllocator {
    #[inline(never)]
    fn allocate(&mut self) -> FrameBlock {
        self.returned.pop().unwrap_or_else(|| {
            self.next += 1;
            FrameBlock::from_raw(Pfn::new(self.next), 0, Owner::Process)
        })
    }

    #[inline(never)]
    fn free(&mut self, block: FrameBlock) {
        self.returned.push(block);
    }
}

/// `out` frames handed out, then allocate + free pairs in `pattern`; ns
/// per pair. The held frames go back at the end.
fn time_churn(churner: &mut impl Churner, out: usize, pattern: Pattern) -> f64 {
    let mut held: Vec<FrameBlock> = (0..out).map(|_| churner.allocate()).collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let per_pair = time_per_op(Duration::from_millis(300), || {
        let new = churner.allocate();
        let old = match pattern {
            Pattern::Pair => new,
            Pattern::RandomChurn => {
                let slot = (rng.next() % held.len() as u64) as usize;
                std::mem::replace(&mut held[slot], new)
            }
        };
        churner.free(old);
    });
    for block in held {
        churner.free(block);
    }
    per_pair
}

/// The random churn through [`NullAllocator`]: the loop's floor.
fn null_churn_cost(out: usize) -> f64 {
    time_churn(&mut NullAllocator { returned: Vec::new(), next: 0 }, out, Pattern::RandomChurn)
}

/// Reclaim's pattern: `count` single frames handed out one after another
/// (neighbours), then freed in address order, as the clock frees what it
/// evicts; ns per free, best of 20 rounds.
fn address_order_free_cost(map: &[PhysRegion], count: usize, cache: usize) -> f64 {
    let first = usable(map).map(|r| Pfn::first_at_or_after(r.start)).min().expect("usable memory");
    let last = usable(map).map(|r| Pfn::containing(r.end)).max().expect("usable memory");
    let mut storage = Metadata::new(FrameAllocator::metadata_words(first..last), false);
    let mut frames = FrameAllocator::new(first..last, storage.slice()).expect("allocator");
    for r in usable(map) {
        frames.add_free(Pfn::first_at_or_after(r.start)..Pfn::containing(r.end)).expect("add");
    }
    frames.set_cache(cache);
    let mut best = f64::MAX;
    for _ in 0..20 {
        let held: Vec<FrameBlock> =
            (0..count).map(|_| frames.allocate(0, Owner::Process).expect("fits")).collect();
        let start = Instant::now();
        for block in held {
            frames.free(block).expect("free");
        }
        best = best.min(start.elapsed().as_nanos() as f64 / count as f64);
        frames.drain_cache();
    }
    best
}

fn blog_os_cost(map: &[PhysRegion], out: usize) -> f64 {
    let mut frames = BlogOsAllocator { map, next: out };
    time_per_op(Duration::from_millis(300), || {
        black_box(frames.allocate());
        frames.free_last();
    })
}

fn spread(values: &[f64]) -> f64 {
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    let min = values.iter().cloned().fold(f64::MAX, f64::min);
    max / min
}

fn main() {
    // `cargo bench` passes --bench; a plain run of the binary works as well.
    let map = memory_map();
    let total: u64 = usable(&map).map(|r| (r.end - r.start) / FRAME_SIZE).sum();
    println!("frame allocator: one allocate + one free, ns per pair ({total} usable frames)");
    println!(
        "{:>10} {:>12} {:>15} {:>8} {:>14} {:>15} {:>14} {:>20}",
        "frames out",
        "pagekeeper",
        "blog_os-style",
        "ratio",
        "churn, cache",
        "churn, no cache",
        "null allocator",
        "churn, cache, 2 MiB"
    );
    let (mut pairs, mut churns, mut bare, mut own) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut huge_churns, mut floors) = (Vec::new(), Vec::new());
    for (label, out) in [("1K", 1usize << 10), ("64K", 1 << 16), ("1M", 1 << 20)] {
        let pk = pagekeeper_cost(&map, out, Pattern::Pair, CACHE_CAPACITY);
        let blog = blog_os_cost(&map, out);
        let churn = pagekeeper_cost(&map, out, Pattern::RandomChurn, CACHE_CAPACITY);
        let uncached = pagekeeper_cost(&map, out, Pattern::RandomChurn, 0);
        let floor = null_churn_cost(out);
        let huge = pagekeeper_cost_in(&map, out, Pattern::RandomChurn, CACHE_CAPACITY, true);
        println!(
            "{label:>10} {pk:>12.1} {blog:>15.1} {:>7.0}x {churn:>14.1} {uncached:>15.1} {floor:>14.1} {huge:>20.1}",
            blog / pk
        );
        huge_churns.push(huge);
        pairs.push(pk);
        churns.push(churn);
        bare.push(uncached);
        own.push(churn - floor);
        floors.push(floor);
    }
    println!(
        "pagekeeper pair cost, slowest/fastest across 1K..1M out: {:.2}x (target: within 2x)",
        spread(&pairs)
    );
    println!(
        "random churn with the recently-freed cache ({CACHE_CAPACITY} frames), slowest/fastest: {:.2}x \
         (target: within 1.5x); without it: {:.2}x",
        spread(&churns),
        spread(&bare)
    );
    println!(
        "  the loop's floor (the null allocator: a stack with no per-frame state) rises {:.2}x from 1K to 1M \
         with no allocator work at all: the held list's random read misses the cache at 1M",
        spread(&floors)
    );
    println!(
        "  the allocator's own part of the churn with the cache (churn minus the floor), 1K / 64K / 1M, ns: {}",
        own.iter().map(|ns| format!("{ns:.1}")).collect::<Vec<_>>().join(" / "),
    );
    println!(
        "  with the metadata in 2 MiB pages, as the kernel's physical-memory window maps it \
         ({} KiB of huge pages granted; 0: the host refused, the column is 4 KiB pages again), \
         slowest/fastest {:.2}x; at 1M out {:.2}x the 4 KiB column",
        HUGE_KIB.get(),
        spread(&huge_churns),
        huge_churns[2] / churns[2]
    );
    let (cached, uncached) =
        (address_order_free_cost(&map, 1 << 16, CACHE_CAPACITY), address_order_free_cost(&map, 1 << 16, 0));
    println!(
        "frees in address order (reclaim's pattern), 64K neighbours: {cached:.1} ns per free with the cache \
         (a full cache's older half goes back sorted, runs of neighbours as one block), {uncached:.1} without: \
         {:.2}x",
        cached / uncached
    );
    println!(
        "  (at 1M out a random free reads the freed frame's state word, 2 bytes a frame over ~2.4 MB: \
         a miss per pair that a cache of recently freed frames cannot remove, and its address comes \
         from the held list's own miss, so the two are paid one after the other; without the cache each \
         free also merges, through buddies' state words and a bitmap word per order)"
    );
}
