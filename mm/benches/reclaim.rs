//! `make bench`: the kernel's page replacement (the clock with hot and cold
//! pages) on reference traces, against Belady's optimal (the lower bound),
//! a plain second-chance clock (what the kernel used before), FIFO, and A0
//! (a fixed set of the most probable pages: on traces of independent
//! references, what any policy that does not see the future can at best
//! expect), with the same number of frames. Counts, not times: repeatable
//! on any machine.
//!
//! Traces (seeded): a loop over 1.25x the frames (every LRU-like policy's
//! worst case), a Zipf-like popularity over 4x the frames, and a hot set of
//! half the frames that moves every quarter of the trace, 10 % of the
//! references going anywhere in 8x the frames.

use mm::reclaim::sim::{self, TraceRng};

fn row(name: &str, trace: &[u64], frames: usize, a0: u64) {
    let opt = sim::optimal_faults(trace, frames);
    let kernel = sim::hot_cold_faults(trace, frames);
    let clock = sim::clock_faults(trace, frames);
    let fifo = sim::fifo_faults(trace, frames);
    let x = |faults: u64| faults as f64 / opt as f64;
    println!(
        "{name:<13} optimal {opt:>7} | hot/cold clock {kernel:>7} ({:.2}x optimal) | plain clock {clock:>7} ({:.2}x) | \
         fifo {fifo:>7} ({:.2}x) | A0 {a0:>7} ({:.2}x) | hot/cold vs fifo {:.2}, vs plain clock {:.2}",
        x(kernel),
        x(clock),
        x(fifo),
        x(a0),
        kernel as f64 / fifo as f64,
        kernel as f64 / clock as f64,
    );
}

fn main() {
    let frames = 1024;
    let len = 200_000;
    let mut rng = TraceRng::from_state(2026);
    println!(
        "page replacement, faults on {len}-reference traces with {frames} frames \
         (target: <= 1.3x optimal, better than fifo)"
    );
    let first_pages = |n: usize| (0..n as u64 - 1).collect();
    let looping = sim::looping(frames as u64 * 5 / 4, len);
    row("loop", &looping, frames, sim::a0_faults([(&looping[..], first_pages(frames))]));
    // Zipf's page numbers are its popularity ranks: A0 keeps the first.
    let zipf = sim::zipf(frames as u64 * 4, len, &mut rng);
    row("zipf", &zipf, frames, sim::a0_faults([(&zipf[..], first_pages(frames))]));
    let (pages, hot, phases) = (frames as u64 * 8, frames as u64 / 2, 4);
    let phase = sim::phase_change(pages, hot, phases, len, &mut rng);
    row("phase change", &phase, frames, sim::phase_change_a0_faults(&phase, pages, hot, phases, frames));
}
