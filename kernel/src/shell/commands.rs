//! What each shell command does (the table of commands and their parsing
//! are in the `shell` crate).

use crate::process::{self, programs, Pid, SpawnOptions};
use crate::{console, files, memory, policy, println, swap, vm};
use mm::addr::UserAddr;
use mm::memory_map::Mib;
use mm::paging::{PAGE_SIZE, USER_END, USER_START};
use mm::policy::commit::OvercommitPolicy;
use mm::pte::{PageKind, PteState};
use mm::vm::{EntryWalk, PageCounts, Region};
use shell::command::{self, Command, COMMANDS};

/// Parses and runs one line, printing its answer or its error.
pub fn execute(line: &str) {
    match command::parse(line) {
        Ok(command) => run(command),
        Err(command::ParseError::Empty) => {}
        Err(e) => println!("error: {e}"),
    }
}

fn run(command: Command) {
    match command {
        Command::Help => help(),
        Command::Meminfo => meminfo(),
        Command::Ps => ps(),
        Command::Vmmap { pid } => vmmap(Pid(pid)),
        Command::Pte { pid, addr } => pte(Pid(pid), addr),
        Command::Run { program, arg } => match programs::spawn_with(program, arg, SpawnOptions::DEFAULT) {
            Ok(pid) => println!("started process {pid} ({program})"),
            Err(e) => println!("error: cannot start {program}: {e:?}"),
        },
        Command::Kill { pid } => match process::kill(Pid(pid)) {
            Ok(_) => {} // its end is reported like any other
            Err(_) => println!("error: no process {pid}"),
        },
        Command::Scavenge { pid } => match process::request_scavenge(Pid(pid)) {
            Ok(()) => println!("scavenge asked of process {pid}: its heap runs it at its next turn"),
            Err(process::events::RequestError::NoSuchProcess) => println!("error: no process {pid}"),
            Err(process::events::RequestError::NoHandler) => {
                println!("error: process {pid} has no heap to scavenge (no scavenge handler registered)")
            }
        },
        Command::Frames => frames(),
        Command::Swapinfo => swapinfo(),
        Command::Swapoff => swapoff(),
        Command::Swapon => match (swap::swap_on(), swap::info()) {
            (true, Some(info)) => println!("swap on: {} KiB", info.total_slots * 4),
            _ => println!("error: swap is not off (swapoff first; make run SWAP=MiB attaches a disk)"),
        },
        Command::OomAdj { pid, adj } => match process::set_oom_score_adj(Pid(pid), adj) {
            Ok(()) => println!("process {pid}: oom_score_adj {adj}"),
            Err(process::SpawnError::BadOptions) => println!("error: oom_score_adj is -1000..=1000"),
            Err(_) => println!("error: no process {pid}"),
        },
        Command::Overcommit { setting } => overcommit(setting),
        Command::Log { level } => log(level),
        Command::Picture => picture(),
    }
}

fn help() {
    println!("commands (numbers are decimal, or hex with 0x):");
    for c in COMMANDS {
        let usage = alloc::format!("{} {}", c.name, c.args);
        println!("  {usage:<24} {}", c.help);
    }
    println!("keys: Backspace, Left/Right, Up/Down (history), Ctrl-U (clear), Ctrl-C (abandon)");
}

/// Everything the kernel counts about memory, one subsystem per line.
pub fn meminfo() {
    println!("{}", memory::frames::stats());
    println!("{}", memory::frames::zeroed_pool());
    println!("{}", vm::summary());
    match swap::info() {
        Some(info) => println!("{info}"),
        None => println!("swap: none (make run SWAP=MiB attaches a swap disk)"),
    }
    match files::info() {
        Some(info) => println!("{info}"),
        None => println!("page cache: no file disk"),
    }
    println!("{}", vm::reclaim::info());
    println!("{}", policy::commit::info());
    println!("{}", policy::pressure::info());
    println!("oom killer: {} processes killed", process::oom::kills());
}

/// A limit in KiB, or "-" for none.
struct Limit(u64);

impl core::fmt::Display for Limit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            u64::MAX => f.pad("-"),
            bytes => f.pad(&alloc::format!("{}K", bytes / 1024)),
        }
    }
}

fn ps() {
    let all = process::list();
    println!(
        "{:>4} {:<14} {:<10} {:>9} {:>9} {:>7} {:>10} {:>9} {:>9} {:>6}",
        "PID", "NAME", "STATE", "RESIDENT", "SWAPPED", "TABLES", "COMMITTED", "QUOTA", "REDLINE", "ADJ"
    );
    for p in &all {
        let s = &p.stats;
        println!(
            "{:>4} {:<14} {:<10} {:>8}K {:>8}K {:>7} {:>9}K {:>9} {:>9} {:>6}",
            p.pid.0,
            p.name,
            p.state,
            s.resident_pages * 4,
            s.swapped_pages * 4,
            s.table_frames,
            s.committed_pages * 4,
            Limit(p.limits.ram_quota),
            Limit(p.limits.redline),
            p.oom_score_adj
        );
    }
    println!("{} processes (RESIDENT includes shared page-cache pages; TABLES in frames)", all.len());
}

fn with_space_of<R>(pid: Pid, f: impl FnOnce(&mut vm::Space) -> R) -> Option<R> {
    let Some(space) = process::space_of(pid) else {
        println!("error: no process {pid}");
        return None;
    };
    let result = vm::with(space, f);
    if result.is_none() {
        println!("error: process {pid} has just ended");
    }
    result
}

fn vmmap(pid: Pid) {
    let Some(lines) = with_space_of(pid, |space| {
        let regions: alloc::vec::Vec<Region> = space.regions().copied().collect();
        regions.into_iter().map(|r| (r, space.page_counts(r.start..r.end))).collect::<alloc::vec::Vec<_>>()
    }) else {
        return;
    };
    println!("process {pid}: {} regions", lines.len());
    for (region, counts) in &lines {
        println!("  {region}  {} pages: {}", region.pages(), Counts(counts));
    }
}

/// A region's page counts, the zero ones left out.
struct Counts<'a>(&'a PageCounts);

impl core::fmt::Display for Counts<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = self.0;
        let parts = [
            ("resident", c.anonymous),
            ("resident from the page cache", c.file_mapped),
            ("kernel's", c.kernel),
            ("mapped to the shared zero frame", c.zero_frame),
            ("swapped", c.swapped),
            ("demand-zero (given back)", c.demand_zero),
            ("file, not read", c.file_unread),
            ("guard", c.guard),
            ("untouched", c.untouched),
            ("CORRUPT", c.corrupt),
        ];
        let mut first = true;
        for (name, n) in parts.into_iter().filter(|(_, n)| *n > 0) {
            write!(f, "{}{n} {name}", if first { "" } else { ", " })?;
            first = false;
        }
        Ok(())
    }
}

fn pte(pid: Pid, addr: u64) {
    if !(USER_START..USER_END).contains(&addr) {
        println!("error: {addr:#x} is not a user address ({USER_START:#x}..{USER_END:#x})");
        return;
    }
    let va = UserAddr::new(addr & !(PAGE_SIZE - 1));
    let Some(walk) = with_space_of(pid, |space| space.walk_entry(va)) else { return };
    print_walk(pid, &walk);
}

fn print_walk(pid: Pid, walk: &EntryWalk) {
    println!("process {pid}, page {}:", walk.va);
    for step in walk.steps.iter().flatten() {
        let name = ["", "PT  ", "PD  ", "PDPT", "PML4"][step.level as usize];
        println!(
            "  {name} (level {}) table at frame {:#x}, entry {:3}: {:#018x}",
            step.level,
            step.table.number(),
            step.index,
            step.raw
        );
    }
    match walk.leaf {
        None => println!("  the walk stops: no page table below (nothing recorded for this page)"),
        Some(Ok(state)) => println!("  leaf: {}", State(state)),
        Some(Err(bad)) => println!("  leaf: CORRUPT entry {:#x} (no state this kernel writes)", bad.0),
    }
    match (walk.region, walk.effective()) {
        (None, _) => println!("  no region: touching it kills the process (unreserved)"),
        (Some(region), Some(Ok(state))) => println!("  region {region}; the page is {}", State(state)),
        (Some(region), _) => println!("  region {region}"),
    }
}

/// A page state in words.
struct State(PteState);

impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            PteState::Absent => write!(f, "empty (the region's default applies)"),
            PteState::Present(m) => {
                let kind = match m.kind {
                    PageKind::Anonymous => "anonymous",
                    PageKind::File => "page-cache",
                    PageKind::Other => "kernel",
                    PageKind::Zero => "zero (shared)",
                };
                write!(f, "present, {kind} frame {:#x}, {}", m.frame.number(), m.prot)?;
                for (on, flag) in [(m.accessed, "accessed"), (m.dirty, "dirty"), (m.pinned, "pinned")] {
                    if on {
                        write!(f, ", {flag}")?;
                    }
                }
                Ok(())
            }
            PteState::DemandZero { prot } => write!(f, "demand-zero ({prot} when touched)"),
            PteState::Swapped { slot, prot } => write!(f, "swapped to slot {slot} ({prot})"),
            PteState::File { file, page, prot } => {
                write!(f, "file {file} page {page}, not read yet ({prot})")
            }
            PteState::Guard => write!(f, "a guard page (touching it kills the process)"),
        }
    }
}

fn frames() {
    println!("{}", memory::frames::stats());
    println!("{}", memory::frames::zeroed_pool());
    let kernel_reserve = memory::frames::kernel_reserve();
    println!("  kernel reserve (processes may not take): {kernel_reserve} frames");
    for p in process::list() {
        let own = p.stats.resident_pages - p.stats.file_pages;
        println!(
            "  process {} ({}): {own} own frames ({}), {} page-table frames",
            p.pid.0,
            p.name,
            Mib(own * PAGE_SIZE),
            p.stats.table_frames
        );
    }
}

fn swapoff() {
    let in_swap = swap::info().map(|i| i.total_slots - i.free_slots);
    match swap::swap_off() {
        Ok(back) => println!(
            "swap off: {back} pages brought back into RAM ({} slots were in use)",
            in_swap.unwrap_or(0)
        ),
        Err(swap::SwapOffError::SwapIn(stopped)) => {
            // The operator knows processes, not address spaces.
            let owner = process::list().into_iter().find(|p| p.space == stopped.space);
            let who = owner.map_or(alloc::format!("space {}", stopped.space.0), |p| {
                alloc::format!("process {} ({})", p.pid.0, p.name)
            });
            println!("error: swap stays on: {who} {stopped}");
        }
        Err(e) => println!("error: swap stays on: {e}"),
    }
}

fn swapinfo() {
    match swap::info() {
        Some(info) => {
            println!("{info}");
            println!("  {} slots, {} free", info.total_slots, info.free_slots);
            for p in process::list().iter().filter(|p| p.stats.swapped_pages > 0) {
                println!("  process {} ({}): {} pages in swap", p.pid.0, p.name, p.stats.swapped_pages);
            }
        }
        None => println!("swap: none (make run SWAP=MiB attaches a swap disk)"),
    }
}

fn overcommit(setting: Option<&str>) {
    if let Some(text) = setting {
        match OvercommitPolicy::parse(text) {
            Some(policy) => policy::commit::set_policy(policy),
            None => {
                println!("error: '{text}' is not MODE or MODE:RATIO (mode 0, 1 or 2; ratio a percentage)");
                return;
            }
        }
    }
    println!("{}", policy::commit::info());
}

fn log(level: Option<&str>) {
    if let Some(text) = level {
        if console::set_level(text).is_err() {
            println!("error: '{text}' is not a level (off error warn info debug trace)");
            return;
        }
    }
    println!("log level: {}", console::level());
}

/// Redraws the picture and prints, per colour, the kernel's own count of
/// frames beside what the picture shows: the frame allocator's statistics
/// per owner, each process's own resident pages, the boot information's
/// kernel image. (A host test counts the colours in a screendump.)
fn picture() {
    use mm::frame::Owner;
    use mm::picture::Category;
    let Some(drawn) = crate::picture::redraw() else {
        println!("error: no picture (no framebuffer)");
        return;
    };
    let l = drawn.layout;
    let (width, height) = l.size();
    println!(
        "picture: grid at {},{} size {width}x{height}, cell {} px, {} frames per cell",
        l.x, l.y, l.cell, l.frames_per_cell
    );
    let stats = memory::frames::stats();
    let processes = process::list();
    let own = |pid: Pid| {
        processes.iter().find(|p| p.pid == pid).map_or(0, |p| p.stats.resident_pages - p.stats.file_pages)
    };
    let coloured: u64 = drawn.processes.iter().map(|&(pid, _)| own(pid)).sum();
    let kernel_image = memory::boot_memory().kernel_image.clone();
    let image_frames = kernel_image.end.div_ceil(PAGE_SIZE) - kernel_image.start / PAGE_SIZE;
    for index in 0..mm::picture::COUNT as u8 {
        let category = Category::from_index(index);
        let (kernel, name) = match category {
            Category::Free => (Some(stats.free), alloc::string::String::from("free")),
            Category::KernelImage => (Some(image_frames), "kernel image".into()),
            Category::Unmanaged => (None, category.name().into()),
            Category::Owned(owner) => (Some(stats.used_by(owner)), owner.name().into()),
            Category::Process(slot) => match drawn.processes.get(usize::from(slot)) {
                Some(&(pid, name)) => (Some(own(pid)), alloc::format!("pid {pid} {name}")),
                None => (Some(0), "(no process)".into()),
            },
            Category::OtherProcesses => {
                (Some(stats.used_by(Owner::Process) - coloured), "other processes".into())
            }
        };
        let shown = drawn.counts[usize::from(index)];
        match kernel {
            Some(count) => {
                println!("picture: colour {:06x} kernel {count} shown {shown} {name}", category.colour())
            }
            None => println!("picture: colour {:06x} kernel - shown {shown} {name}", category.colour()),
        }
    }
}
