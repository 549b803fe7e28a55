//! `make bench`: Pagekeeper's process heap against talc 5, talc 4,
//! dlmalloc, rlsf, a buddy allocator and linked_list_allocator (the kernel
//! heap's allocator, blog_os's choice), in one run:
//!
//! 1. **random actions**, the mix talc's own benchmark uses: sizes biased
//!    small up to 200, 1,000, 3,000, 10,000 and 30,000 bytes, alignments
//!    mostly 8, about 300 live blocks; allocate / free / (with realloc)
//!    resize to up to 3x the maximum. Operations per second, best of a few
//!    trials, on one seeded sequence shared by all;
//! 2. **memory efficiency**: fill a fixed 128 MiB budget with allocations,
//!    frees and reallocs (up to 100,000 bytes) until the first failure; the
//!    requested bytes live then, over the budget (the mix of talc's
//!    heap-efficiency benchmark). Pagekeeper's metadata counts against its
//!    budget too;
//! 3. the fragmentation experiment of shared/seeds/004 ("fragmented1" vs
//!    "fragmented2"): resident bytes against live bytes, before and after
//!    scavenge.
//!
//! The arena allocators get one contiguous, pre-touched arena. Pagekeeper's
//! heap gets a [`HostKernel`] (reserve = host allocation, grow = counted
//! against the budget), warmed by the same untimed pass as the others.

use heap::host::HostKernel;
use heap::{Heap, HeapConfig, MAX_SMALL};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::time::Instant;

const BUDGET: usize = 128 << 20;

/// The allocators behind one interface.
trait Bench {
    fn name(&self) -> &'static str;
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout);
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>>;
    /// Bytes the allocator holds from the system right now.
    fn resident(&self) -> usize;
    /// Gives free memory back; false when the allocator cannot.
    fn scavenge(&mut self) -> bool {
        false
    }
    /// Where the memory is, when the allocator can say (`live`: the
    /// blocks the program holds, with what it asked for).
    fn describe(&self, _live: &[(NonNull<u8>, Layout)]) -> String {
        String::new()
    }
}

/// realloc as allocate + copy + free, for allocators without one.
fn move_block(b: &mut dyn Bench, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
    let new = b.alloc(Layout::from_size_align(new_size, layout.align()).ok()?)?;
    // SAFETY: both blocks are live and distinct, at least min(old, new) long.
    unsafe { std::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size)) };
    b.free(ptr, layout);
    Some(new)
}

struct Pagekeeper(Heap<HostKernel>);

impl Pagekeeper {
    fn new() -> Self {
        // Four times the budget of address space: only the budget binds.
        let kernel = HostKernel::with_byte_budget(BUDGET);
        Pagekeeper(Heap::new(kernel, HeapConfig { arena: 4 * BUDGET }).unwrap())
    }
}

impl Bench for Pagekeeper {
    fn name(&self) -> &'static str {
        "pagekeeper heap"
    }
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.0.allocate(layout.size(), layout.align()).ok()
    }
    fn free(&mut self, ptr: NonNull<u8>, _: Layout) {
        self.0.free(ptr).expect("valid free");
    }
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        self.0.reallocate_in_use(ptr, layout.size(), new_size, layout.align()).expect("valid realloc")
    }
    fn resident(&self) -> usize {
        self.0.stats().resident_estimate
    }
    fn scavenge(&mut self) -> bool {
        self.0.scavenge_to_kernel(4096);
        true
    }
    fn describe(&self, live: &[(NonNull<u8>, Layout)]) -> String {
        let s = self.0.stats();
        // Rounding: what each block holds beyond what was asked, large
        // blocks (whole pages) apart from small ones (their class).
        let (mut large, mut small) = (0usize, 0usize);
        for &(p, layout) in live {
            let usable = self.0.usable_size(p).expect("a live block");
            let rounding = usable - layout.size();
            *(if usable > MAX_SMALL { &mut large } else { &mut small }) += rounding;
        }
        let share = |bytes: usize| bytes as f64 * 100.0 / BUDGET as f64;
        format!(
            "usable {} KiB, free runs {} KiB ({:.1} %), given back {} KiB (free runs' and spans' pages of free blocks), metadata {} KiB ({:.1} %), \
             arena writable {} KiB, spans {}; rounding of large blocks {:.1} %, of small blocks {:.1} % \
             (shares of the budget)",
            s.live_bytes >> 10,
            self.0.free_run_bytes() >> 10,
            share(self.0.free_run_bytes()),
            s.given_back_bytes >> 10,
            s.metadata_bytes >> 10,
            share(s.metadata_bytes),
            self.0.arena_writable() >> 10,
            s.spans_in_use,
            share(large),
            share(small)
        )
    }
}

/// A contiguous, pre-touched arena with a high-water mark.
struct Arena {
    memory: Vec<u8>,
    high: usize,
}

impl Arena {
    fn new() -> Self {
        Arena { memory: vec![0xab; BUDGET], high: 0 }
    }
    fn base(&mut self) -> *mut u8 {
        self.memory.as_mut_ptr()
    }
    /// The arena as the `'static` slice rlsf wants.
    ///
    /// # Safety
    /// The caller keeps the arena alive as long as the slice is used.
    unsafe fn as_static(&mut self) -> &'static mut [MaybeUninit<u8>] {
        // SAFETY: u8 and MaybeUninit<u8> have one layout; the caller keeps
        // the Vec alive (it lives beside the allocator).
        unsafe { std::slice::from_raw_parts_mut(self.memory.as_mut_ptr().cast(), BUDGET) }
    }
    fn note(&mut self, ptr: Option<NonNull<u8>>, size: usize) -> Option<NonNull<u8>> {
        let p = ptr?;
        let end = (p.as_ptr() as usize + size).saturating_sub(self.memory.as_ptr() as usize);
        self.high = self.high.max(end.next_multiple_of(4096));
        Some(p)
    }
}

struct LinkedList(linked_list_allocator::Heap, Arena);

impl Bench for LinkedList {
    fn name(&self) -> &'static str {
        "linked_list_allocator"
    }
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let p = self.0.allocate_first_fit(layout).ok();
        self.1.note(p, layout.size())
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: ptr came from allocate_first_fit with this layout.
        unsafe { self.0.deallocate(ptr, layout) }
    }
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        move_block(self, ptr, layout, new_size)
    }
    fn resident(&self) -> usize {
        self.1.high
    }
}

struct Talc4(talc::Talc<talc::ErrOnOom>, Arena);

impl Bench for Talc4 {
    fn name(&self) -> &'static str {
        "talc 4"
    }
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: sizes are non-zero.
        let p = unsafe { self.0.malloc(layout) }.ok();
        self.1.note(p, layout.size())
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: ptr came from malloc with this layout.
        unsafe { self.0.free(ptr, layout) }
    }
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        let p = if new_size <= layout.size() {
            // SAFETY: ptr is live with this layout; new_size is non-zero.
            unsafe { self.0.shrink(ptr, layout, new_size) };
            Some(ptr)
        } else {
            // SAFETY: as above; grow copies when it cannot grow in place.
            unsafe { self.0.grow(ptr, layout, new_size) }.ok()
        };
        self.1.note(p, new_size)
    }
    fn resident(&self) -> usize {
        self.1.high
    }
}

/// The allocators that implement GlobalAlloc over their arena.
struct Global<A: GlobalAlloc>(&'static str, A, Arena);

impl<A: GlobalAlloc> Bench for Global<A> {
    fn name(&self) -> &'static str {
        self.0
    }
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: sizes are non-zero.
        let p = NonNull::new(unsafe { self.1.alloc(layout) });
        self.2.note(p, layout.size())
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: ptr came from alloc with this layout.
        unsafe { self.1.dealloc(ptr.as_ptr(), layout) }
    }
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        // SAFETY: ptr is live with this layout; new_size is non-zero.
        let p = NonNull::new(unsafe { self.1.realloc(ptr.as_ptr(), layout, new_size) });
        self.2.note(p, new_size)
    }
    fn resident(&self) -> usize {
        self.2.high
    }
}

struct Rlsf(rlsf::Tlsf<'static, u32, u32, 28, 32>, Arena);

impl Bench for Rlsf {
    fn name(&self) -> &'static str {
        "rlsf"
    }
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let p = self.0.allocate(layout);
        self.1.note(p, layout.size())
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: ptr came from allocate with this alignment.
        unsafe { self.0.deallocate(ptr, layout.align()) }
    }
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        let new = Layout::from_size_align(new_size, layout.align()).ok()?;
        // SAFETY: ptr is live, allocated with this alignment.
        let p = unsafe { self.0.reallocate(ptr, new) };
        self.1.note(p, new_size)
    }
    fn resident(&self) -> usize {
        self.1.high
    }
}

struct Dlmalloc(dlmalloc::Dlmalloc<OneArena>, Arena);

/// dlmalloc's system allocator: the one arena, once.
struct OneArena(usize, std::sync::atomic::AtomicBool);

// SAFETY: hands out the arena once, never anything else.
unsafe impl dlmalloc::Allocator for OneArena {
    fn alloc(&self, _size: usize) -> (*mut u8, usize, u32) {
        if self.1.swap(false, std::sync::atomic::Ordering::Relaxed) {
            (self.0 as *mut u8, BUDGET, 0)
        } else {
            (std::ptr::null_mut(), 0, 0)
        }
    }
    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        std::ptr::null_mut()
    }
    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }
    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }
    fn can_release_part(&self, _: u32) -> bool {
        false
    }
    fn allocates_zeros(&self) -> bool {
        false
    }
    fn page_size(&self) -> usize {
        4096
    }
}

impl Bench for Dlmalloc {
    fn name(&self) -> &'static str {
        "dlmalloc"
    }
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: sizes are non-zero.
        let p = NonNull::new(unsafe { self.0.malloc(layout.size(), layout.align()) });
        self.1.note(p, layout.size())
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: ptr came from malloc with this layout.
        unsafe { self.0.free(ptr.as_ptr(), layout.size(), layout.align()) }
    }
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        // SAFETY: ptr is live with this layout.
        let p =
            NonNull::new(unsafe { self.0.realloc(ptr.as_ptr(), layout.size(), layout.align(), new_size) });
        self.1.note(p, new_size)
    }
    fn resident(&self) -> usize {
        self.1.high
    }
}

struct Buddy(buddy_system_allocator::Heap<32>, Arena);

impl Bench for Buddy {
    fn name(&self) -> &'static str {
        "buddy_system_allocator"
    }
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let p = self.0.alloc(layout).ok();
        self.1.note(p, layout.size())
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        self.0.dealloc(ptr, layout)
    }
    fn realloc(&mut self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        move_block(self, ptr, layout, new_size)
    }
    fn resident(&self) -> usize {
        self.1.high
    }
}

type Maker = fn() -> Box<dyn Bench>;

fn makers() -> Vec<Maker> {
    vec![
        || Box::new(Pagekeeper::new()),
        || {
            let mut arena = Arena::new();
            let talc = talc5::TalcCell::new(talc5::source::Manual);
            // SAFETY: the arena lives as long as the allocator (same struct), used by nothing else.
            unsafe { talc.claim(arena.base(), BUDGET) }.expect("claim");
            Box::new(Global("talc 5", talc, arena))
        },
        || {
            let mut arena = Arena::new();
            let mut talc = talc::Talc::new(talc::ErrOnOom);
            // SAFETY: as above.
            unsafe { talc.claim(talc::Span::from_base_size(arena.base(), BUDGET)) }.expect("claim");
            Box::new(Talc4(talc, arena))
        },
        || {
            let mut arena = Arena::new();
            let mut tlsf = rlsf::Tlsf::new();
            // SAFETY: the arena lives beside the allocator, as long as it.
            tlsf.insert_free_block(unsafe { arena.as_static() });
            Box::new(Rlsf(tlsf, arena))
        },
        || {
            let mut arena = Arena::new();
            let system = OneArena(arena.base() as usize, std::sync::atomic::AtomicBool::new(true));
            Box::new(Dlmalloc(dlmalloc::Dlmalloc::new_with_allocator(system), arena))
        },
        || {
            let mut arena = Arena::new();
            let mut heap = buddy_system_allocator::Heap::<32>::new();
            // SAFETY: as above.
            unsafe { heap.init(arena.base() as usize, BUDGET) };
            Box::new(Buddy(heap, arena))
        },
        || {
            let mut arena = Arena::new();
            let mut heap = linked_list_allocator::Heap::empty();
            // SAFETY: as above.
            unsafe { heap.init(arena.base(), BUDGET) };
            Box::new(LinkedList(heap, arena))
        },
    ]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }
    /// Biased small, as talc's benchmarks: a random cap, then below it.
    fn size(&mut self, max: usize) -> usize {
        let cap = self.range(16, max);
        self.range(4, cap)
    }
    /// 8 three times in four, then 16, 32, ... (at most 2048).
    fn align(&mut self) -> usize {
        8 << ((self.next() as u16).trailing_zeros() / 2)
    }
}

#[derive(Clone, Copy)]
enum Action {
    Alloc(Layout),
    Free(usize),
    Realloc(usize, usize),
}

/// talc's random-actions mix as a fixed sequence: 3 in 6 (7) allocate,
/// else free, 1 in 7 realloc when enabled; allocate while fewer than 300
/// blocks are live.
fn random_actions(max: usize, realloc: bool, count: usize) -> Vec<Action> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ max as u64);
    let mut live = 0usize;
    (0..count)
        .map(|_| {
            let action = rng.below(6 + realloc as usize);
            if action == 6 && live > 0 {
                Action::Realloc(rng.next() as usize, rng.range(1, max * 3))
            } else if action < 3 || live < 300 {
                live += 1;
                Action::Alloc(Layout::from_size_align(rng.size(max), rng.align()).unwrap())
            } else {
                live -= 1;
                Action::Free(rng.next() as usize)
            }
        })
        .collect()
}

/// Plays `actions` on `b`, the blocks it holds in `live`; `resized(old
/// block, its layout, new size, new block)` hears of every realloc.
#[inline(always)]
fn play(
    b: &mut dyn Bench,
    actions: &[Action],
    live: &mut Vec<(NonNull<u8>, Layout)>,
    mut resized: impl FnMut(NonNull<u8>, Layout, usize, NonNull<u8>),
) {
    for &action in actions {
        match action {
            Action::Alloc(layout) => live.push((black_box(b.alloc(layout).expect("memory")), layout)),
            Action::Free(pick) => {
                let (p, l) = live.swap_remove(pick % live.len());
                b.free(p, l);
            }
            Action::Realloc(pick, size) => {
                let i = pick % live.len();
                let (p, l) = live[i];
                let q = b.realloc(p, l, size).expect("memory");
                resized(p, l, size, q);
                live[i] = (black_box(q), Layout::from_size_align(size, l.align()).unwrap());
            }
        }
    }
}

fn free_all(b: &mut dyn Bench, live: Vec<(NonNull<u8>, Layout)>) {
    for (p, l) in live {
        b.free(p, l);
    }
}

fn run(b: &mut dyn Bench, actions: &[Action]) -> f64 {
    let mut live: Vec<(NonNull<u8>, Layout)> = Vec::with_capacity(100_000);
    let start = Instant::now();
    play(b, actions, &mut live, |_, _, _, _| {});
    let elapsed = start.elapsed().as_secs_f64();
    free_all(b, live);
    actions.len() as f64 / elapsed / 1e6
}

/// What one pass of a realloc mix made an allocator copy, by kind of
/// resize: how many, how many moved (the block's address changed), and the
/// bytes a move had to carry (the smaller of the old and new size).
#[derive(Default)]
struct ReallocMoves {
    /// Indexed by [`ReallocMoves::kind`].
    resizes: [usize; 6],
    moves: [usize; 6],
    copied: [usize; 6],
}

impl ReallocMoves {
    const KINDS: [&'static str; 6] = [
        "small -> small, grow",
        "small -> small, shrink",
        "small -> large",
        "large -> small",
        "large -> large, grow",
        "large -> large, shrink",
    ];

    /// Small and large as Pagekeeper's heap divides them (MAX_SMALL).
    fn kind(old: usize, new: usize) -> usize {
        match (old > MAX_SMALL, new > MAX_SMALL) {
            (false, false) => (new <= old) as usize,
            (false, true) => 2,
            (true, false) => 3,
            (true, true) => 4 + (new <= old) as usize,
        }
    }
}

/// Replays `actions` untimed and counts the reallocs that moved
/// (`HEAP_BENCH_DESCRIBE`): where a realloc mix's copying comes from.
fn realloc_moves(b: &mut dyn Bench, actions: &[Action]) -> ReallocMoves {
    let mut counts = ReallocMoves::default();
    let mut live = Vec::new();
    play(b, actions, &mut live, |p, l, size, q| {
        let kind = ReallocMoves::kind(l.size(), size);
        counts.resizes[kind] += 1;
        if q != p {
            counts.moves[kind] += 1;
            counts.copied[kind] += l.size().min(size);
        }
    });
    free_all(b, live);
    counts
}

fn print_realloc_moves(makers: &[Maker], sizes: &[usize], count: usize) {
    println!(
        "
reallocs of the mix with realloc that moved (untimed replay): moved / resizes, MB copied"
    );
    for &max in sizes {
        let actions = random_actions(max, true, count);
        for make in makers {
            let mut b = make();
            let counts = realloc_moves(b.as_mut(), &actions);
            let total: usize = counts.copied.iter().sum();
            println!("  max {max:>6} {:<24} {:>7.1} MB copied", b.name(), total as f64 / 1e6);
            for (k, name) in ReallocMoves::KINDS.iter().enumerate().filter(|&(k, _)| counts.resizes[k] > 0) {
                println!(
                    "      {name:<24} {:>6} / {:<6} {:>7.1} MB",
                    counts.moves[k],
                    counts.resizes[k],
                    counts.copied[k] as f64 / 1e6
                );
            }
        }
    }
}

/// Mops/s of each allocator on each maximum size: best of `trials`, the
/// allocators taking turns (so drift in the machine's speed hits all
/// alike), after an untimed warm-up on the same allocator.
fn throughput(
    makers: &[Maker],
    realloc: bool,
    sizes: &[usize],
    count: usize,
    trials: usize,
) -> Vec<Vec<f64>> {
    let mut allocators: Vec<_> = makers.iter().map(|make| make()).collect();
    let mut table = vec![vec![0.0f64; sizes.len()]; makers.len()];
    for (i, &max) in sizes.iter().enumerate() {
        let actions = random_actions(max, realloc, count);
        allocators.iter_mut().for_each(|b| _ = run(b.as_mut(), &actions));
        for _ in 0..trials {
            for (row, b) in table.iter_mut().zip(allocators.iter_mut()) {
                row[i] = row[i].max(run(b.as_mut(), &actions));
            }
        }
    }
    table
}

fn print_throughput(title: &str, makers: &[Maker], sizes: &[usize], table: &[Vec<f64>]) {
    println!("\n{title} (Mops/s; ratio = pagekeeper / talc 5 at the same size)");
    print!("  {:<24}", "allocator \\ max size");
    sizes.iter().for_each(|s| print!("{s:>10}"));
    println!();
    let names: Vec<&str> = makers.iter().map(|make| make().name()).collect();
    for (name, row) in names.iter().zip(table) {
        print!("  {name:<24}");
        row.iter().for_each(|m| print!("{m:>10.2}"));
        println!();
    }
    // Both rows are there unless HEAP_BENCH_ONLY left one out.
    let row = |name| names.iter().position(|n| *n == name).map(|i| &table[i]);
    if let (Some(pagekeeper), Some(talc)) = (row("pagekeeper heap"), row("talc 5")) {
        print!("  {:<24}", "pagekeeper / talc 5");
        pagekeeper.iter().zip(talc).for_each(|(p, t)| print!("{:>9.2}x", p / t));
        println!();
    }
}

/// talc's heap-efficiency mix, until the first failure: requested bytes
/// live then, as a share of the budget.
fn efficiency(b: &mut dyn Bench, seed: u64) -> f64 {
    let mut rng = Rng(seed);
    let mut live: Vec<(NonNull<u8>, Layout)> = Vec::new();
    loop {
        match rng.below(10) {
            0..=4 => {
                let layout = Layout::from_size_align(rng.size(10_000), rng.align()).unwrap();
                match b.alloc(layout) {
                    Some(p) => live.push((p, layout)),
                    None => break,
                }
            }
            5 if !live.is_empty() => {
                let (p, l) = live.swap_remove(rng.below(live.len()));
                b.free(p, l);
            }
            6..=9 if !live.is_empty() => {
                let i = rng.below(live.len());
                let (p, l) = live[i];
                let size = rng.range(1, 100_000);
                match b.realloc(p, l, size) {
                    Some(q) => live[i] = (q, Layout::from_size_align(size, l.align()).unwrap()),
                    None => break,
                }
            }
            _ => {}
        }
    }
    let used: usize = live.iter().map(|(_, l)| l.size()).sum();
    if std::env::var("HEAP_BENCH_DESCRIBE").is_ok() {
        println!("    at failure: requested {} KiB; {}", used >> 10, b.describe(&live));
    }
    for (p, l) in live {
        b.free(p, l);
    }
    used as f64 / BUDGET as f64
}

/// Resident bytes / live bytes at the three moments of the experiment.
struct Fragmentation {
    live_built: usize,
    built: f64,
    live_half: usize,
    half_freed: f64,
    scavenged: Option<f64>,
}

/// fragmented1 (a, b, c; free b; bigger b) or fragmented2 (a, c, b; ...),
/// `rounds` times, everything kept; then the program frees every other
/// round's blocks (a long-running process dropping half its data) and the
/// allocator scavenges if it can.
fn fragmentation(b: &mut dyn Bench, lifo: bool, rounds: usize) -> Fragmentation {
    let l = |n| Layout::from_size_align(n, 16).unwrap();
    let alloc = |b: &mut dyn Bench, n| b.alloc(l(n)).expect("memory");
    let mut kept = Vec::new();
    for _ in 0..rounds {
        let (a, c, first_b) = if lifo {
            let a = alloc(b, 1024);
            let c = alloc(b, 4096);
            (a, c, alloc(b, 5678))
        } else {
            let a = alloc(b, 1024);
            let first_b = alloc(b, 5678);
            (a, alloc(b, 4096), first_b)
        };
        b.free(first_b, l(5678));
        kept.push([(a, l(1024)), (c, l(4096)), (alloc(b, 12345), l(12345))]);
    }
    let per_round = 1024 + 4096 + 12345;
    let live_built = rounds * per_round;
    let built = b.resident() as f64 / live_built as f64;
    let (dropped, kept): (Vec<_>, Vec<_>) = kept.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, blocks) in dropped {
        for (p, layout) in blocks {
            b.free(p, layout);
        }
    }
    let live_half = kept.len() * per_round;
    let half_freed = b.resident() as f64 / live_half as f64;
    let scavenged = b.scavenge().then(|| b.resident() as f64 / live_half as f64);
    for (_, blocks) in kept {
        for (p, layout) in blocks {
            b.free(p, layout);
        }
    }
    Fragmentation { live_built, built, live_half, half_freed, scavenged }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (count, trials, rounds) = if quick { (100_000, 2, 2) } else { (400_000, 5, 8) };
    let mut makers = makers();
    // HEAP_BENCH_ONLY=pagekeeper,"talc 5": only the allocators whose names
    // contain one of the parts (for profiling).
    if let Ok(only) = std::env::var("HEAP_BENCH_ONLY") {
        makers.retain(|m| only.split(',').any(|part| m().name().contains(part.trim())));
    }
    let mut sizes = vec![200, 1000, 3000, 10_000, 30_000];
    // HEAP_BENCH_SIZES=200,3000: only those maximum sizes (for profiling).
    if let Ok(only) = std::env::var("HEAP_BENCH_SIZES") {
        sizes.retain(|size| only.split(',').any(|s| s.trim() == size.to_string()));
    }
    println!("heap benchmark: {count} random actions per size and trial, best of {trials} trials");
    for realloc in [true, false] {
        let table = throughput(&makers, realloc, &sizes, count, trials);
        let title = if realloc { "random actions with realloc" } else { "random actions without realloc" };
        print_throughput(title, &makers, &sizes, &table);
    }

    if std::env::var("HEAP_BENCH_DESCRIBE").is_ok() {
        print_realloc_moves(&makers, &sizes, count);
    }
    if std::env::args().any(|a| a == "--throughput-only") {
        return;
    }
    println!(
        "\nmemory efficiency: requested bytes live at the first failure in a {} MiB budget",
        BUDGET >> 20
    );
    println!("(mean of {rounds} seeded fills; allocate, free, realloc up to 100,000 bytes)");
    for make in &makers {
        let name = make().name();
        if name == "linked_list_allocator" {
            println!("  {name:<24} skipped (minutes per fill at this size)");
            continue;
        }
        let share: f64 =
            (0..rounds).map(|r| efficiency(make().as_mut(), 0x9e37_79b9 + r as u64)).sum::<f64>()
                / rounds as f64;
        println!("  {name:<24} {:>6.1} %", share * 100.0);
    }

    let rounds = 2000;
    println!("\nfragmentation (shared/seeds/004): {rounds} rounds of a=1024 b=5678 c=4096, free b, b=12345;");
    println!("then every other round freed. Resident bytes / live bytes:");
    println!(
        "  {:<24} {:<12} {:>10} {:>12} {:>12} {:>12}",
        "allocator", "order", "built", "half freed", "scavenged", "live KiB"
    );
    for make in &makers {
        for (order, lifo) in [("fragmented1", false), ("fragmented2", true)] {
            let mut b = make();
            let f = fragmentation(b.as_mut(), lifo, rounds);
            let scavenged = f.scavenged.map_or("n/a".to_string(), |r| format!("{r:.2}x"));
            println!(
                "  {:<24} {order:<12} {:>9.2}x {:>11.2}x {scavenged:>12} {:>5}/{:<5}",
                b.name(),
                f.built,
                f.half_freed,
                f.live_built / 1024,
                f.live_half / 1024
            );
        }
    }
}
