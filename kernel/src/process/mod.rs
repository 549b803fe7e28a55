//! Processes: user programs in ring 3, each in its own address space.
//!
//! ```text
//!  run_until_idle()  (kernel, ring 0)                 process (ring 3)
//!   loop: next ready process ─ activate space ─ enter_user ──────► runs
//!         ▲                                                       │ trap: int 0x80, timer, fault
//!         │                                      user_trap(frame) ◄┘ (on the user-trap stack)
//!         │   resume directly  ◄── syscall done / IRQ, slice left ──┤
//!         └── jump_back(SCHEDULER) ◄── registers saved; yield, slice over,
//!                                       exit, or killed (space destroyed)
//! ```
//!
//! A process never blocks inside the kernel, so one user-trap stack serves
//! all of them and a switch is just "save the trap frame, go back to the
//! scheduler loop". [`run_slice`] is one turn of that loop; kernel code
//! runs the loop until no process is ready ([`run_until_idle`]: tests, the
//! demo) or between keystrokes (the shell).
//!
//! A process that faults on memory it may not touch, or raises any other
//! exception, is killed with a report; its address space is destroyed, so
//! every frame it held goes back, and the others keep running.

mod elf;
pub mod events;
pub mod fuzz;
pub mod oom;
mod output;
pub mod programs;
mod syscall;
#[cfg(test)]
mod tests;

pub use elf::ElfError;
pub use oom::OomKill;
pub use syscall::restarted_commits;

use crate::arch::context::{self, JumpBuf};
use crate::arch::fpu::FpuState;
use crate::arch::gdt;
use crate::arch::timer;
use crate::arch::trap::{self, exception_name, Report, Trap, TrapFrame};
use crate::vm::{self, FaultReport, RegionKind, SpaceId, VmError};
use crate::{info, println, warn};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use mm::files::{FileEntry, FileError, FileId};
use mm::paging::PAGE_SIZE as PAGE;
use mm::pte::Prot;
use spin::Mutex;
use x86_64::instructions::interrupts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pid(pub u32);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    /// A page fault it was not allowed to take.
    KilledByFault(FaultReport),
    /// Any other exception (invalid opcode, general protection, ...).
    KilledByException {
        vector: u8,
        rip: u64,
        error_code: u64,
    },
    /// Chosen by the OOM killer when some process's fault found no memory.
    KilledByOom(OomKill),
    /// Ended by the operator (the shell's `kill`); `freed` pages came back.
    Killed {
        freed: u64,
    },
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::KilledByFault(report) => write!(f, "killed: {report}"),
            ExitStatus::KilledByException { vector, rip, error_code } => {
                write!(
                    f,
                    "killed: {} (vector {vector}) at RIP {rip:#x}, error code {error_code:#x}",
                    exception_name(*vector)
                )
            }
            ExitStatus::KilledByOom(kill) => write!(f, "{kill}"),
            ExitStatus::Killed { freed } => write!(f, "killed from the shell ({freed} pages freed)"),
        }
    }
}

/// A process that has ended, with what its space held at the end.
#[derive(Clone, Copy, Debug)]
pub struct Finished {
    pub pid: Pid,
    pub name: &'static str,
    pub status: ExitStatus,
}

struct Process {
    name: &'static str,
    space: SpaceId,
    /// Registers to resume with (valid while the process is not running).
    context: TrapFrame,
    /// x87/SSE registers (saved when another process is about to run).
    fpu: FpuState,
    /// Console output not yet emitted as a whole line.
    output: output::LineBuffer,
    /// Timer tick at which the running process's time slice ends.
    slice_end: u64,
    /// Linux's oom_score_adj (-1000..=1000), and the least it may set
    /// itself (what it was started with).
    oom_score_adj: i16,
    oom_score_adj_floor: i16,
    events: events::Events,
    /// A `commit` its time slice cut short, to be finished when the
    /// process runs again (`syscall.rs`).
    restart: Option<syscall::RestartedCommit>,
}

#[derive(Default)]
struct Table {
    processes: BTreeMap<Pid, Process>,
    ready: VecDeque<Pid>,
    running: Option<Pid>,
    finished: Vec<Finished>,
    next_pid: u32,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    processes: BTreeMap::new(),
    ready: VecDeque::new(),
    running: None,
    finished: Vec::new(),
    next_pid: 1,
});

/// The scheduler loop's saved context: user traps jump back to it.
static mut SCHEDULER: JumpBuf = JumpBuf::new();

/// Timer ticks a process runs before another gets the CPU.
pub const TIME_SLICE_TICKS: u64 = 2;
/// The top of every process's stack, and its size (plus one guard page).
pub const STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
pub const STACK_SIZE: u64 = 64 * 1024;

pub fn init() {
    trap::set_user_trap_handler(user_trap);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// No embedded program has that name.
    NoSuchProgram,
    Elf(ElfError),
    /// A segment or the stack could not be placed (overlap, out of memory).
    Memory(VmError),
    /// The program's file could not be read.
    File(FileError),
    /// oom_score_adj outside -1000..=1000, or a redline above the quota.
    BadOptions,
}

/// How a process starts: its RAM quota and redline (shared/seeds/003 and
/// 001; `vm::Limits`), and its oom_score_adj.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnOptions {
    /// Bytes of memory it may hold (its frames and kernel records).
    pub ram_quota: Option<u64>,
    /// Bytes past which its redline handler runs (below the quota).
    pub redline: Option<u64>,
    pub oom_score_adj: i16,
}

impl SpawnOptions {
    pub const DEFAULT: SpawnOptions = SpawnOptions { ram_quota: None, redline: None, oom_score_adj: 0 };

    fn limits(&self) -> Result<vm::Limits, SpawnError> {
        let (quota, redline) = (self.ram_quota.unwrap_or(u64::MAX), self.redline.unwrap_or(u64::MAX));
        if (self.redline.is_some() && redline > quota) || oom_score_adj(self.oom_score_adj.into()).is_none() {
            return Err(SpawnError::BadOptions);
        }
        Ok(vm::Limits { ram_quota: quota, redline, ..vm::PROCESS_LIMITS })
    }
}

impl Default for SpawnOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    interrupts::without_interrupts(|| f(&mut TABLE.lock()))
}

/// Loads the static ELF executable `image` into a new address space and
/// makes it ready to run.
pub fn spawn(name: &'static str, image: &[u8]) -> Result<Pid, SpawnError> {
    spawn_with_arg(name, image, 0)
}

/// Like [`spawn`]; the program finds `arg` in `rdi` (its `main`'s argument).
pub fn spawn_with_arg(name: &'static str, image: &[u8], arg: u64) -> Result<Pid, SpawnError> {
    spawn_with(name, image, arg, SpawnOptions::DEFAULT)
}

/// Like [`spawn_with_arg`], started with `options`.
pub fn spawn_with(
    name: &'static str,
    image: &[u8],
    arg: u64,
    options: SpawnOptions,
) -> Result<Pid, SpawnError> {
    start(name, arg, options, |space| load(space, image))
}

/// Starts the program in file `path` of the file disk, demand-paged: its
/// text and data are mapped from the page cache (private, so a write
/// copies), its bss is demand-zero, and only the pages it touches are ever
/// read. Processes running the same program share its text frames.
pub fn spawn_file(path: &str, arg: u64, options: SpawnOptions) -> Result<Pid, SpawnError> {
    let (file, entry) = crate::files::open(path).ok_or(SpawnError::NoSuchProgram)?;
    let name = entry.name.rsplit('/').next().unwrap_or(&entry.name);
    start(name, arg, options, |space| load_file(space, file, entry))
}

/// A new space, loaded by `load`, made ready to run with `arg` in `rdi`.
fn start(
    name: &'static str,
    arg: u64,
    options: SpawnOptions,
    load: impl FnOnce(SpaceId) -> Result<u64, SpawnError>,
) -> Result<Pid, SpawnError> {
    let space = vm::create(options.limits()?).map_err(SpawnError::Memory)?;
    let pressure_page = |space| {
        let frame = crate::policy::pressure::frame();
        in_space(space, |s| s.map_kernel_shared(abi::pressure::PRESSURE_PAGE, frame).map(|()| 0))
    };
    match pressure_page(space).and_then(|_| load(space)) {
        Ok(entry) => {
            let context = TrapFrame { rdi: arg, ..initial_context(entry) };
            let pid = with_table(|t| {
                let pid = Pid(t.next_pid);
                t.next_pid += 1;
                let process = Process {
                    name,
                    space,
                    context,
                    fpu: FpuState::INITIAL,
                    output: output::LineBuffer::new(),
                    slice_end: 0,
                    oom_score_adj: options.oom_score_adj,
                    oom_score_adj_floor: options.oom_score_adj,
                    events: events::Events::new(),
                    restart: None,
                };
                t.processes.insert(pid, process);
                t.ready.push_back(pid);
                pid
            });
            info!("process {pid} ({name}) spawned");
            Ok(pid)
        }
        Err(e) => {
            vm::destroy(space);
            Err(e)
        }
    }
}

/// Maps the segments and the stack; returns the entry point.
fn load(space: SpaceId, image: &[u8]) -> Result<u64, SpawnError> {
    let (entry, segments) = elf::parse(image, image.len() as u64).map_err(SpawnError::Elf)?;
    for segment in segments {
        let start = segment.vaddr & !(PAGE - 1);
        let end = (segment.vaddr + segment.mem_size).next_multiple_of(PAGE);
        let bytes = &image[segment.file_offset as usize..(segment.file_offset + segment.file_size) as usize];
        fill_anonymous(space, start..end, segment.vaddr, bytes, prot_of(&segment))?;
    }
    reserve_stack(space)?;
    Ok(entry)
}

fn prot_of(segment: &elf::Segment) -> Prot {
    Prot { write: segment.writable, exec: segment.executable, user: true }
}

fn in_space(
    space: SpaceId,
    f: impl FnOnce(&mut vm::Space) -> Result<u64, VmError>,
) -> Result<u64, SpawnError> {
    vm::with(space, f).expect("live space").map_err(SpawnError::Memory)
}

/// Reserves exactly `start..start + len` of `space` as a region of `kind`.
fn reserve_at(space: SpaceId, start: u64, len: u64, prot: Prot, kind: RegionKind) -> Result<(), SpawnError> {
    in_space(space, |s| s.reserve_at(start, len, prot, kind).map(|_| 0)).map(|_| ())
}

fn reserve_stack(space: SpaceId) -> Result<(), SpawnError> {
    let stack = STACK_TOP - STACK_SIZE - PAGE;
    let kind = RegionKind::Stack { guard_pages: 1 };
    reserve_at(space, stack, STACK_SIZE + PAGE, Prot::USER_RW, kind)
}

/// Reserves `pages` as anonymous memory with `prot`, committed, with
/// `bytes` copied to `at` and zeros elsewhere.
fn fill_anonymous(
    space: SpaceId,
    pages: core::ops::Range<u64>,
    at: u64,
    bytes: &[u8],
    prot: Prot,
) -> Result<(), SpawnError> {
    let (start, len) = (pages.start, pages.end - pages.start);
    reserve_at(space, start, len, Prot::USER_RW, RegionKind::Anonymous)?;
    in_space(space, |s| s.commit(start, len))?;
    vm::activate(space).expect("a live space");
    // SAFETY: the space is active and the range was just reserved writable
    // and committed; the kernel may write user pages (no SMAP).
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) };
    vm::activate_kernel();
    in_space(space, |s| s.protect(start, len, prot).map(|()| 0))?;
    Ok(())
}

/// Loads the executable in `file` demand-paged (see [`spawn_file`]);
/// returns the entry point.
fn load_file(space: SpaceId, file: FileId, entry: &FileEntry) -> Result<u64, SpawnError> {
    let mut head = [0u8; PAGE as usize];
    let head = &mut head[..entry.size.min(PAGE) as usize];
    crate::files::read(file, 0, head).map_err(SpawnError::File)?;
    let (entry_point, segments) = elf::parse(head, entry.size).map_err(SpawnError::Elf)?;
    for segment in segments {
        map_segment(space, file, &segment)?;
    }
    reserve_stack(space)?;
    Ok(entry_point)
}

/// One segment of a program on the file disk:
///
/// ```text
///  start        file_end↓ (page-aligned down)   file_end      mem_end
///  ├── file pages, private ──┼── one anonymous page ──┼── bss: demand-zero ──┤
///      (text: shared frames;    (the file's last bytes
///       data: copied on write)   copied, then zeros)
/// ```
///
/// Without bss, the file pages run to the end (the last one holds what
/// follows the segment in the file, as on Linux).
fn map_segment(space: SpaceId, file: FileId, segment: &elf::Segment) -> Result<(), SpawnError> {
    let prot = prot_of(segment);
    let start = segment.vaddr & !(PAGE - 1);
    let file_end = segment.vaddr + segment.file_size;
    let mem_end = (segment.vaddr + segment.mem_size).next_multiple_of(PAGE);
    let has_bss = segment.mem_size > segment.file_size;
    let mapped_end = if has_bss { file_end & !(PAGE - 1) } else { file_end.next_multiple_of(PAGE) };
    if mapped_end > start {
        let first_page = (segment.file_offset - (segment.vaddr - start)) / PAGE;
        let kind = RegionKind::File { file: file.0, first_page, private: true };
        reserve_at(space, start, mapped_end - start, prot, kind)?;
    }
    if !has_bss {
        return Ok(());
    }
    let anon_start = mapped_end.max(start);
    let tail_end = (anon_start + PAGE).min(mem_end);
    // The file bytes of the page where the segment's file part ends.
    let from = segment.vaddr.max(anon_start);
    let mut tail = [0u8; PAGE as usize];
    let tail = &mut tail[..file_end.saturating_sub(from) as usize];
    if !tail.is_empty() {
        let offset = segment.file_offset + (from - segment.vaddr);
        crate::files::read(file, offset, tail).map_err(SpawnError::File)?;
        fill_anonymous(space, anon_start..tail_end, from, tail, prot)?;
    }
    let bss_start = if tail.is_empty() { anon_start } else { tail_end };
    if mem_end > bss_start {
        reserve_at(space, bss_start, mem_end - bss_start, prot, RegionKind::Anonymous)?;
    }
    Ok(())
}

fn initial_context(entry: u64) -> TrapFrame {
    let selectors = gdt::selectors();
    TrapFrame {
        rip: entry,
        cs: u64::from(selectors.user_code.0),
        // IF set; everything else clear.
        rflags: 0x202,
        // As if `_start` had been called: RSP + 8 is 16-byte aligned.
        rsp: STACK_TOP - 8,
        ss: u64::from(selectors.user_data.0),
        ..TrapFrame::default()
    }
}

/// Runs processes round-robin until none is ready; returns those that ended
/// meanwhile, in the order they ended.
pub fn run_until_idle() -> Vec<Finished> {
    while run_slice() {}
    take_finished()
}

/// The processes that ended since the last call, in the order they ended.
pub fn take_finished() -> Vec<Finished> {
    with_table(|t| core::mem::take(&mut t.finished))
}

/// Runs the next ready process for one time slice (or until it yields,
/// exits or is killed); false when none is ready. The shell calls it
/// between reading keys, so processes run while it waits.
pub fn run_slice() -> bool {
    // Between slices: the background half of reclaim (kswapd's job).
    vm::reclaim::in_background();
    crate::policy::pressure::update();
    crate::picture::tick();
    let next = with_table(|t| {
        let pid = t.ready.pop_front()?;
        t.running = Some(pid);
        let p = t.processes.get_mut(&pid).expect("ready processes exist");
        p.slice_end = timer::ticks() + TIME_SLICE_TICKS;
        events::before_resume(p);
        p.fpu.restore();
        Some((p.space, p.context.clone()))
    });
    let Some((space, context)) = next else {
        vm::activate_kernel();
        return false;
    };
    vm::activate(space).expect("a live process has a live space");
    // SAFETY: `context` is a ring-3 frame of the now-active space (built
    // by initial_context or saved from a user trap); SCHEDULER is used by
    // this function only, and user_trap jumps back to it exactly once.
    unsafe { context::enter_user(core::ptr::addr_of_mut!(SCHEDULER), &context) };
    interrupts::enable();
    // The process's space stays active until another is or none is ready
    // (the kernel half is in every space; `vm::destroy` switches away).
    true
}

/// What to do with the running process after its trap was handled.
enum Next {
    Resume,
    /// Save registers, put it back in the ready queue.
    Requeue,
    End(ExitStatus),
}

/// Every trap from ring 3 lands here, decoded (interrupts off, on the
/// user-trap stack or the page-fault IST stack). This layer only decides
/// what a trap means for the process: resume it, switch, or end it.
fn user_trap(frame: &mut TrapFrame, trap: Trap) {
    let memory_changed = matches!(trap, Trap::Syscall | Trap::PageFault(_));
    let next = match trap {
        Trap::Syscall => syscall::handle(frame),
        Trap::Timer if slice_over() => Next::Requeue,
        Trap::Timer | Trap::Interrupt => Next::Resume,
        Trap::PageFault(fault) => match vm::handle_fault(&fault) {
            Ok(()) => Next::Resume,
            Err(report) if report.outcome.is_out_of_memory() => {
                match oom::out_of_memory(running_pid(), &report) {
                    oom::Verdict::Retry => Next::Resume,
                    oom::Verdict::KillSelf(kill) => Next::End(ExitStatus::KilledByOom(kill)),
                    oom::Verdict::Refused => Next::End(ExitStatus::KilledByFault(report)),
                }
            }
            Err(report) => Next::End(ExitStatus::KilledByFault(report)),
        },
        Trap::Exception(vector) => {
            warn!("user exception\n{}", Report::new(frame, exception_name(vector)));
            Next::End(ExitStatus::KilledByException { vector, rip: frame.rip, error_code: frame.error_code })
        }
    };
    if memory_changed {
        crate::policy::pressure::update();
    }
    match next {
        Next::Resume => events::before_return(frame, memory_changed),
        Next::Requeue => {
            with_table(|t| {
                let pid = t.running.take().expect("a process is running");
                let process = t.processes.get_mut(&pid).expect("running process exists");
                process.context = frame.clone();
                process.fpu.save();
                t.ready.push_back(pid);
            });
            back_to_scheduler()
        }
        Next::End(status) => {
            end_running(status);
            back_to_scheduler()
        }
    }
}

fn slice_over() -> bool {
    with_table(|t| {
        t.running.and_then(|pid| t.processes.get(&pid)).is_some_and(|p| timer::ticks() >= p.slice_end)
    })
}

/// Removes the running process, frees its address space and reports.
fn end_running(status: ExitStatus) {
    let (pid, process) = with_table(|t| {
        let pid = t.running.take().expect("a process is running");
        (pid, t.processes.remove(&pid).expect("running process exists"))
    });
    retire(pid, process, |_| status);
}

/// Ends process `pid`, which is not running (waiting in the ready queue),
/// with the status `status` makes of the pages its end freed; returns
/// them.
fn finish(pid: Pid, status: impl FnOnce(u64) -> ExitStatus) -> u64 {
    let process = with_table(|t| {
        t.ready.retain(|&p| p != pid);
        t.processes.remove(&pid).expect("a live process")
    });
    retire(pid, process, status)
}

/// Frees a removed process's address space, reports its end and records
/// it; returns the pages (frames and swap slots) its end gave back.
fn retire(pid: Pid, mut process: Process, status: impl FnOnce(u64) -> ExitStatus) -> u64 {
    process.output.flush(&mut |line| emit_line(pid, process.name, line));
    let final_stats = vm::destroy(process.space).expect("the process's space is live");
    crate::memory::heap::trim_slack();
    crate::policy::pressure::update();
    let freed = final_stats.resident_pages - final_stats.file_pages
        + final_stats.swapped_pages
        + final_stats.table_frames;
    let status = status(freed);
    match status {
        ExitStatus::Exited(_) => info!("process {pid} ({}) {status}", process.name),
        _ => warn!("process {pid} ({}) {status}", process.name),
    }
    crate::debug!("process {pid}: {} pages were resident at the end, all freed", final_stats.resident_pages);
    with_table(|t| t.finished.push(Finished { pid, name: process.name, status }));
    freed
}

fn back_to_scheduler() -> ! {
    // SAFETY: user traps only happen while run_until_idle is inside
    // enter_user, so SCHEDULER holds its live context; no lock is held here.
    unsafe { context::jump_back(core::ptr::addr_of!(SCHEDULER)) }
}

/// Runs `f` on the running process and its pid.
fn with_running<R>(f: impl FnOnce(Pid, &mut Process) -> R) -> R {
    with_table(|t| {
        let pid = t.running.expect("a process is running");
        f(pid, t.processes.get_mut(&pid).expect("running process exists"))
    })
}

/// The running process's space (for system calls).
fn running_space() -> SpaceId {
    with_running(|_, p| p.space)
}

fn running_pid() -> Pid {
    with_running(|pid, _| pid)
}

/// Sets process `pid`'s oom_score_adj (an operator's command: no floor).
pub fn set_oom_score_adj(pid: Pid, adj: i16) -> Result<(), SpawnError> {
    let adj = oom_score_adj(i64::from(adj)).ok_or(SpawnError::BadOptions)?;
    with_table(|t| t.processes.get_mut(&pid).map(|p| p.oom_score_adj = adj)).ok_or(SpawnError::NoSuchProgram)
}

/// set_oom_score_adj(adj) from the running process itself: it may raise
/// its own, not lower it below its start (Linux needs CAP_SYS_RESOURCE).
fn set_own_oom_score_adj(adj: i64) -> Result<u64, abi::Error> {
    let adj = oom_score_adj(adj).ok_or(abi::Error::Invalid)?;
    with_running(|_, p| {
        if adj < p.oom_score_adj_floor {
            return Err(abi::Error::NotPermitted);
        }
        p.oom_score_adj = adj;
        Ok(0)
    })
}

/// `adj` if it is a valid oom_score_adj (-1000..=1000).
fn oom_score_adj(adj: i64) -> Option<i16> {
    let range = mm::policy::oom::OOM_SCORE_ADJ_MIN..=mm::policy::oom::OOM_SCORE_ADJ_MAX;
    i16::try_from(adj).ok().filter(|adj| range.contains(adj))
}

/// One console line of process `pid`, tagged and escaped (see `output`).
fn emit_line(pid: Pid, name: &str, line: &[u8]) {
    println!("[pid {pid} {name}] {}", output::Escaped(line));
}

/// Console output of the running process: whole lines go out tagged.
fn write_output(bytes: &[u8]) {
    with_running(|pid, p| {
        let name = p.name;
        p.output.push(bytes, &mut |line| emit_line(pid, name, line));
    });
}

/// What the shell's `ps` shows of a live process.
#[derive(Clone, Copy, Debug)]
pub struct ProcessInfo {
    pub pid: Pid,
    pub name: &'static str,
    pub state: &'static str,
    pub space: SpaceId,
    pub stats: mm::vm::SpaceStats,
    pub limits: vm::Limits,
    pub oom_score_adj: i16,
}

/// Every live process, by pid.
pub fn list() -> Vec<ProcessInfo> {
    let mut all: Vec<ProcessInfo> = with_table(|t| {
        t.processes
            .iter()
            .map(|(&pid, p)| ProcessInfo {
                pid,
                name: p.name,
                state: match (t.running == Some(pid), p.events.in_handler()) {
                    (true, _) => "running",
                    (false, true) => "in handler",
                    (false, false) => "ready",
                },
                space: p.space,
                stats: mm::vm::SpaceStats::default(),
                limits: vm::Limits::UNLIMITED,
                oom_score_adj: p.oom_score_adj,
            })
            .collect()
    });
    // As oom::candidates: the table under its lock, then each space under
    // its own, one lock at a time.
    for info in &mut all {
        if let Some((stats, limits)) = vm::with(info.space, |s| (s.stats(), s.limits())) {
            info.stats = stats;
            info.limits = limits;
        }
    }
    all
}

/// The address space of process `pid`.
pub fn space_of(pid: Pid) -> Option<SpaceId> {
    with_table(|t| t.processes.get(&pid).map(|p| p.space))
}

/// No live process has that pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSuchProcess(pub Pid);

/// Ends process `pid` (not the running one: the shell runs between
/// slices); returns the pages its end gave back.
pub fn kill(pid: Pid) -> Result<u64, NoSuchProcess> {
    let live = with_table(|t| t.processes.contains_key(&pid) && t.running != Some(pid));
    if !live {
        return Err(NoSuchProcess(pid));
    }
    Ok(finish(pid, |freed| ExitStatus::Killed { freed }))
}

/// Asks process `pid` to run its heap's scavenge (delivered like any
/// event; see `events`). Refused when it registered no handler for it.
pub fn request_scavenge(pid: Pid) -> Result<(), events::RequestError> {
    with_table(|t| {
        let p = t.processes.get_mut(&pid).ok_or(events::RequestError::NoSuchProcess)?;
        p.events.request_scavenge(p.space)
    })
}

/// Prints a line per live process (for the demo).
pub fn print_table() {
    with_table(|t| {
        for (pid, p) in &t.processes {
            println!("  process {pid} ({}) in space {:?}", p.name, p.space);
        }
    });
}
