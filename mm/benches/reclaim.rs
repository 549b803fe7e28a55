//! `make bench`: the clock's fault count on reference traces, against
//! Belady's optimal (the lower bound), FIFO, and the best fixed resident
//! set chosen with hindsight (on the Zipf trace, whose references are
//! independent, the most any online policy can expect to achieve), with the
//! same number of frames. Counts, not times: repeatable on any machine.
//!
//! Traces (seeded): a loop over 1.25x the frames (every LRU-like policy's
//! worst case), a Zipf-like popularity over 4x the frames, and a hot set
//! that moves every quarter of the trace.

use mm::reclaim::sim::{self, TraceRng};

fn row(name: &str, trace: &[u64], frames: usize) {
    let opt = sim::optimal_faults(trace, frames);
    let clock = sim::clock_faults(trace, frames);
    let fifo = sim::fifo_faults(trace, frames);
    let fixed = sim::best_fixed_set_faults(trace, frames);
    let of_opt = |faults: u64| faults as f64 / opt as f64;
    println!(
        "{name:<14} {frames:>6} frames {:>8} refs: optimal {opt:>7}  clock {clock:>7} ({:.2}x optimal)  \
         fifo {fifo:>7} ({:.2}x optimal)  clock/fifo {:.2}  best fixed set {fixed:>7} ({:.2}x optimal)",
        trace.len(),
        of_opt(clock),
        of_opt(fifo),
        clock as f64 / fifo as f64,
        of_opt(fixed)
    );
}

fn main() {
    let frames = 1024;
    let len = 200_000;
    let mut rng = TraceRng::from_state(2026);
    println!("page replacement, faults on {len}-reference traces (target: clock <= 1.3x optimal, better than fifo)");
    row("looping", &sim::looping(frames as u64 * 5 / 4, len), frames);
    row("zipf", &sim::zipf(frames as u64 * 4, len, &mut rng), frames);
    row("phase change", &sim::phase_change(frames as u64 * 8, frames as u64 / 2, 4, len, &mut rng), frames);
}
