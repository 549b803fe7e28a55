//! `make bench`: the process heap against `linked_list_allocator` (the kernel
//! heap's allocator, blog_os's choice) and `talc`, in one run:
//!
//! 1. throughput on one seeded random malloc/free workload (same sequence for
//!    all three);
//! 2. the fragmentation experiment of shared/seeds/004 ("fragmented1" vs
//!    "fragmented2"): resident bytes against live bytes, before and after
//!    scavenge.
//!
//! "Resident" for Pagekeeper's heap is what its counters say the kernel has
//! mapped (arena pages not known clean, plus large regions). The other two
//! manage one contiguous arena and cannot give memory back, so for them it is
//! the arena up to the highest byte ever handed out, as a brk heap would be.

use heap::host::HostKernel;
use heap::{Heap, HeapConfig};
use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Instant;

const ARENA: usize = 256 << 20;

/// The three allocators behind one interface.
trait Bench {
    fn name(&self) -> &'static str;
    fn alloc(&mut self, layout: Layout) -> NonNull<u8>;
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout);
    /// Bytes the allocator holds from the system right now.
    fn resident(&self) -> usize;
    /// Gives free memory back; false when the allocator cannot.
    fn scavenge(&mut self) -> bool;
}

struct Pagekeeper(Heap<HostKernel>);

impl Bench for Pagekeeper {
    fn name(&self) -> &'static str {
        "pagekeeper heap"
    }
    fn alloc(&mut self, layout: Layout) -> NonNull<u8> {
        self.0.allocate(layout.size(), layout.align()).expect("memory")
    }
    fn free(&mut self, ptr: NonNull<u8>, _: Layout) {
        self.0.free(ptr).expect("valid free");
    }
    fn resident(&self) -> usize {
        self.0.stats().resident_estimate
    }
    fn scavenge(&mut self) -> bool {
        self.0.scavenge_to_kernel(4096);
        true
    }
}

/// A contiguous arena for the two classic allocators, with a high-water mark.
struct Arena {
    memory: Vec<u8>,
    high: usize,
}

impl Arena {
    fn new() -> Self {
        Arena { memory: vec![0; ARENA], high: 0 }
    }
    fn note(&mut self, ptr: NonNull<u8>, layout: Layout) {
        let end = ptr.as_ptr() as usize + layout.size() - self.memory.as_ptr() as usize;
        self.high = self.high.max(end.next_multiple_of(4096));
    }
}

struct LinkedList(linked_list_allocator::Heap, Arena);

impl LinkedList {
    fn new() -> Self {
        let mut arena = Arena::new();
        let mut heap = linked_list_allocator::Heap::empty();
        // SAFETY: the arena outlives the heap (same struct) and is used by nothing else.
        unsafe { heap.init(arena.memory.as_mut_ptr(), ARENA) };
        LinkedList(heap, arena)
    }
}

impl Bench for LinkedList {
    fn name(&self) -> &'static str {
        "linked_list_allocator"
    }
    fn alloc(&mut self, layout: Layout) -> NonNull<u8> {
        let p = self.0.allocate_first_fit(layout).expect("memory");
        self.1.note(p, layout);
        p
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: ptr came from allocate_first_fit with this layout.
        unsafe { self.0.deallocate(ptr, layout) }
    }
    fn resident(&self) -> usize {
        self.1.high
    }
    fn scavenge(&mut self) -> bool {
        false
    }
}

struct Talc(talc::Talc<talc::ErrOnOom>, Arena);

impl Talc {
    fn new() -> Self {
        let mut arena = Arena::new();
        let mut talc = talc::Talc::new(talc::ErrOnOom);
        let span = talc::Span::from_slice(arena.memory.as_mut_slice() as *mut [u8]);
        // SAFETY: the arena outlives the allocator (same struct), used by nothing else.
        unsafe { talc.claim(span).expect("claim") };
        Talc(talc, arena)
    }
}

impl Bench for Talc {
    fn name(&self) -> &'static str {
        "talc"
    }
    fn alloc(&mut self, layout: Layout) -> NonNull<u8> {
        // SAFETY: sizes are non-zero.
        let p = unsafe { self.0.malloc(layout) }.expect("memory");
        self.1.note(p, layout);
        p
    }
    fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: ptr came from malloc with this layout.
        unsafe { self.0.free(ptr, layout) }
    }
    fn resident(&self) -> usize {
        self.1.high
    }
    fn scavenge(&mut self) -> bool {
        false
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

/// One seeded sequence: sizes mostly small, some medium, a few up to 32 KiB;
/// up to 20,000 live blocks; allocate or free a random live block.
fn workload(ops: usize) -> Vec<(bool, usize, usize)> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut live = 0usize;
    (0..ops)
        .map(|_| {
            let r = rng.next();
            let alloc = live == 0 || (live < 20_000 && r % 100 < 55);
            let size = match r % 100 {
                0..=69 => 16 + (r >> 8) as usize % 240,
                70..=94 => 256 + (r >> 8) as usize % 3840,
                _ => 4096 + (r >> 8) as usize % 28_672,
            };
            if alloc {
                live += 1;
            } else {
                live -= 1;
            }
            (alloc, size, (r >> 32) as usize)
        })
        .collect()
}

fn throughput(b: &mut dyn Bench, ops: &[(bool, usize, usize)]) -> f64 {
    let mut live: Vec<(NonNull<u8>, Layout)> = Vec::with_capacity(25_000);
    let start = Instant::now();
    for &(alloc, size, pick) in ops {
        if alloc {
            let layout = Layout::from_size_align(size, 16).unwrap();
            live.push((black_box(b.alloc(layout)), layout));
        } else {
            let (p, l) = live.swap_remove(pick % live.len());
            b.free(p, l);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for (p, l) in live {
        b.free(p, l);
    }
    ops.len() as f64 / elapsed / 1e6
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
    let mut kept = Vec::new();
    for _ in 0..rounds {
        let (a, c, first_b) = if lifo {
            let a = b.alloc(l(1024));
            let c = b.alloc(l(4096));
            (a, c, b.alloc(l(5678)))
        } else {
            let a = b.alloc(l(1024));
            let first_b = b.alloc(l(5678));
            (a, b.alloc(l(4096)), first_b)
        };
        b.free(first_b, l(5678));
        kept.push([(a, l(1024)), (c, l(4096)), (b.alloc(l(12345)), l(12345))]);
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
    let make: [fn() -> Box<dyn Bench>; 3] = [
        || {
            Box::new(Pagekeeper(
                Heap::new(HostKernel::default(), HeapConfig { arena: ARENA, large_slots: 4096 }).unwrap(),
            ))
        },
        || Box::new(LinkedList::new()),
        || Box::new(Talc::new()),
    ];
    let ops = workload(400_000);
    println!(
        "heap throughput: {} random malloc/free operations, up to 20,000 live blocks (Mops/s)",
        ops.len()
    );
    let results: Vec<(&str, f64)> = make
        .iter()
        .map(|m| {
            let mut b = m();
            (b.name(), throughput(b.as_mut(), &ops))
        })
        .collect();
    let ours = results[0].1;
    for (name, mops) in &results {
        println!("  {name:<22} {mops:>8.2}   pagekeeper / this = {:.2}x", ours / mops);
    }

    let rounds = 2000;
    println!("\nfragmentation (shared/seeds/004): {rounds} rounds of a=1024 b=5678 c=4096, free b, b=12345;");
    println!("then every other round freed. Resident bytes / live bytes:");
    println!(
        "  {:<22} {:<12} {:>10} {:>12} {:>12} {:>12}",
        "allocator", "order", "built", "half freed", "scavenged", "live KiB"
    );
    for m in &make {
        for (order, lifo) in [("fragmented1", false), ("fragmented2", true)] {
            let mut b = m();
            let f = fragmentation(b.as_mut(), lifo, rounds);
            let scavenged = f.scavenged.map_or("n/a".to_string(), |r| format!("{r:.2}x"));
            println!(
                "  {:<22} {order:<12} {:>9.2}x {:>11.2}x {scavenged:>12} {:>5}/{:<5}",
                b.name(),
                f.built,
                f.half_freed,
                f.live_built / 1024,
                f.live_half / 1024
            );
        }
    }
}
