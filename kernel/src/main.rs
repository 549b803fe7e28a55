//! The Pagekeeper kernel binary: `make run` boots it into a demo. Several
//! processes allocate, free and scavenge; one hits a wild pointer and is
//! killed; one overflows its stack into the guard page. Programs start from
//! the file disk, sharing their text; the page cache shrinks under
//! pressure; a process bigger than RAM swaps; an OOM storm ends with the
//! killer's report. Then the kernel shows that every frame came back and
//! stays up.
#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};
use pagekeeper::process::{self, programs, SpawnOptions};
use pagekeeper::{files, info, memory, picture, println, shell, swap, BOOTLOADER_CONFIG};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

fn run_and_report() {
    for done in process::run_until_idle() {
        println!("  process {} ({}): {}", done.pid, done.name, done.status);
    }
}

/// Programs from the file disk, and the page cache under pressure.
fn from_the_file_disk() {
    let Some((big_text, entry)) = files::open("bin/big_text") else {
        println!("\n(no file disk: `make run` attaches one with --standard-files)");
        return;
    };
    println!(
        "\n=== demo: two copies of a {} KiB program start from the file disk, demand-paged ===",
        entry.size / 1024
    );
    for _ in 0..2 {
        if let Err(e) = programs::spawn("big_text") {
            println!("could not start big_text: {e:?}");
        }
    }
    run_and_report();
    println!(
        "  (the exit code is the resident page count) {} of its {} pages are in the page cache, shared by both",
        files::cached_pages_of(big_text),
        entry.pages()
    );
    println!("\n=== demo: a process maps a 32 MiB file and checks every page; its pages stay cached ===");
    print_cache();
    match programs::spawn("file_check") {
        Ok(_) => run_and_report(),
        Err(e) => println!("could not start file_check: {e:?}"),
    }
    print_cache();
}

fn print_cache() {
    if let Some(info) = files::info() {
        println!("  {info}");
    }
}

/// A process with more memory than the machine has RAM: it runs to the
/// end when there is swap, and is killed out of memory when there is not.
fn bigger_than_ram() {
    let ram_mib = (memory::frames::stats().total * 4096) >> 20;
    let mib = ram_mib + ram_mib / 4;
    println!("\n=== demo: a process writes {mib} MiB (RAM is {ram_mib} MiB) and reads it back ===");
    match programs::spawn_with_arg("swap_pattern", mib | 42 << 32) {
        Ok(_) => run_and_report(),
        Err(e) => println!("could not start swap_pattern: {e:?}"),
    }
    println!("  the page cache under that pressure (clean pages dropped, none written):");
    print_cache();
}

/// An OOM storm: five processes grow at once past what RAM holds, with
/// swap switched off so that reclaim has nothing to give. The killer
/// chooses by badness: the one with oom_score_adj 500 first, then the
/// biggest; the one with -1000 is never chosen.
fn oom_storm() {
    let ram_mib = (memory::frames::stats().total * 4096) >> 20;
    let each = ram_mib * 3 / 8;
    println!(
        "\n=== demo: an OOM storm: three processes grow to {each} MiB each, one protected (oom_score_adj -1000) to {} MiB, one preferred (+500) to {} MiB; RAM is {ram_mib} MiB, swap off ===",
        each / 2,
        each / 4
    );
    let swap_was_on = swap::info().is_some();
    match swap::swap_off() {
        Ok(0) => {}
        Ok(back) => println!("  (swap switched off: {back} pages it held brought back into RAM first)"),
        Err(e) => println!("  (swap not switched off: {e}; the storm would swap first)"),
    }
    let grow = |mib: u64| 7 | mib << 8;
    let options = |adj| SpawnOptions { oom_score_adj: adj, ..SpawnOptions::DEFAULT };
    for (mib, adj) in [(each, 0), (each, 0), (each, 0), (each / 2, -1000), (each / 4, 500)] {
        if let Err(e) = programs::spawn_with("policy_check", grow(mib), options(adj)) {
            println!("could not start policy_check: {e:?}");
        }
    }
    run_and_report();
    if swap_was_on {
        swap::swap_on();
    }
}

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    println!("\nPagekeeper {}", env!("CARGO_PKG_VERSION"));
    let framebuffer = boot_info.framebuffer.take();
    pagekeeper::init(boot_info);
    picture::init(framebuffer);
    println!("{}", memory::memory_map_summary(memory::boot_memory()));
    shell::meminfo();

    let free_before = memory::frames::stats().free;
    println!("\n=== demo: processes allocate, free, scavenge; one wild pointer, one stack overflow ===");
    for name in ["alloc_demo", "scribbler", "hello", "wild", "stack_overflow", "alloc_demo"] {
        if let Err(e) = programs::spawn(name) {
            println!("could not start {name}: {e:?}");
        }
    }
    process::print_table();
    run_and_report();
    from_the_file_disk();
    bigger_than_ram();
    oom_storm();
    println!("\n=== after the demo ===");
    shell::meminfo();
    let free_after = memory::frames::stats().free;
    let cached = files::info().map_or(0, |i| i.stats.pages);
    let heap_growth = free_before.saturating_sub(free_after + cached);
    println!(
        "free frames: {free_before} before the processes, {free_after} after ({cached} hold cached file pages, {heap_growth} went to the kernel heap's own growth)"
    );
    info!("kernel up; close QEMU to stop (Ctrl-C)");
    shell::run()
}
