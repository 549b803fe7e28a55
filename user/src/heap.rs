//! The process's global allocator: Pagekeeper's heap (the `heap` crate) on
//! a few system calls. A double free or a foreign pointer is reported and
//! ends the process with [`HEAP_ERROR_EXIT`].
//!
//! It also runs the **background scavenger** (shared/seeds/002; Go's
//! runtime scavenger as the anchor): while the pressure page says memory
//! is short (level low or worse), free heap pages go back to the kernel
//! without the program calling [`scavenge`], in bounded steps taken on
//! `free` and on pressure notifications, paced like Go's so that its time
//! stays within [`SCAVENGER_BUDGET_PERCENT`] of the time elapsed since it
//! started: a step runs only while `spent ≤ budget × elapsed`.

use crate::sys;
use abi::PROT_WRITE;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use heap::{Heap, HeapConfig, Kernel};

/// Exit code of a process whose heap refused a free.
pub const HEAP_ERROR_EXIT: i32 = 3;

/// The heap's view of the kernel.
pub struct SysKernel;

// SAFETY: reserve returns fresh demand-zero memory of this process that
// nothing else uses, read-only until grow makes it writable; decommit makes
// pages read zero.
unsafe impl Kernel for SysKernel {
    fn reserve(&mut self, len: usize) -> Option<usize> {
        // Read-only: no commit charge until the heap grows into it.
        sys::reserve(len as u64, 0).ok().map(|a| a as usize)
    }

    fn grow(&mut self, addr: usize, len: usize) -> bool {
        sys::protect(addr as u64, len as u64, PROT_WRITE).is_ok()
    }

    fn decommit(&mut self, addr: usize, len: usize) {
        sys::decommit(addr as u64, len as u64).expect("decommit of heap pages");
    }

    fn give_back(&mut self, addr: usize, len: usize) -> bool {
        // Read-only with nothing in them: the kernel drops their charge.
        let (addr, len) = (addr as u64, len as u64);
        sys::decommit(addr, len).is_ok() && sys::protect(addr, len, 0).is_ok()
    }
}

struct ProcessHeap(UnsafeCell<Option<Heap<SysKernel>>>);

// SAFETY: Pagekeeper processes are single-threaded and the kernel never
// calls into user code, so there is never concurrent access.
unsafe impl Sync for ProcessHeap {}

#[global_allocator]
static HEAP: ProcessHeap = ProcessHeap(UnsafeCell::new(None));

/// Set while a heap operation runs: an event handler arriving then must
/// wait (see `events`).
static IN_USE: AtomicBool = AtomicBool::new(false);

pub(crate) fn in_use() -> bool {
    IN_USE.load(Ordering::Relaxed)
}

/// Address space the process heap reserves for its blocks (it costs no
/// memory until used; the heap can hold no more than this).
pub const ARENA_BYTES: usize = 64 << 20;

/// Runs `f` on the process heap, creating it on first use. Event handlers
/// that arrived meanwhile run when it is done.
pub fn with_heap<R>(f: impl FnOnce(&mut Heap<SysKernel>) -> R) -> R {
    assert!(!IN_USE.swap(true, Ordering::Relaxed), "heap re-entered (from an event handler?)");
    // SAFETY: single-threaded (see ProcessHeap), and IN_USE (checked above)
    // keeps anyone, event handlers included, from re-entering meanwhile.
    let slot = unsafe { &mut *HEAP.0.get() };
    let heap = slot.get_or_insert_with(|| {
        let config = HeapConfig { arena: ARENA_BYTES };
        // The background scavenger hears of pressure even when idle, and
        // the operator's scavenge request reaches the heap.
        let _ = crate::events::listen_for_the_heap();
        Heap::new(SysKernel, config).expect("address space for the heap")
    });
    let result = f(heap);
    IN_USE.store(false, Ordering::Relaxed);
    crate::events::run_pending();
    result
}

/// Most time the background scavenger takes, as a share of the time since
/// it first ran (Go's runtime aims at about 1 % of one CPU).
pub const SCAVENGER_BUDGET_PERCENT: u64 = 1;
/// Most bytes one step hands back (64 pages): a step stays short.
const STEP_BYTES: usize = 64 * heap::PAGE;

static STARTED: AtomicU64 = AtomicU64::new(0);
static SPENT: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);
static RETURNED: AtomicU64 = AtomicU64::new(0);

/// What the background scavenger did: its cost against the budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScavengerStats {
    pub steps: u64,
    pub bytes_returned: u64,
    /// TSC cycles spent in steps, and elapsed since the first.
    pub spent_cycles: u64,
    pub elapsed_cycles: u64,
}

pub fn scavenger_stats() -> ScavengerStats {
    let started = STARTED.load(Ordering::Relaxed);
    ScavengerStats {
        steps: STEPS.load(Ordering::Relaxed),
        bytes_returned: RETURNED.load(Ordering::Relaxed),
        spent_cycles: SPENT.load(Ordering::Relaxed),
        elapsed_cycles: if started == 0 { 0 } else { tsc() - started },
    }
}

fn tsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter (allowed in ring 3:
    // the kernel leaves CR4.TSD clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// One paced step when memory is short: hands back up to [`STEP_BYTES`]
/// of free pages if the time spent so far is within budget.
fn background_step(heap: &mut Heap<SysKernel>) {
    if crate::pressure::level() == 0 {
        return;
    }
    let now = tsc();
    let started = match STARTED.load(Ordering::Relaxed) {
        0 => {
            STARTED.store(now, Ordering::Relaxed);
            now
        }
        t => t,
    };
    let budget = (now - started) / 100 * SCAVENGER_BUDGET_PERCENT;
    if STEPS.load(Ordering::Relaxed) > 0 && SPENT.load(Ordering::Relaxed) > budget {
        return;
    }
    let bytes = heap.scavenge_some(heap::PAGE, STEP_BYTES);
    SPENT.fetch_add(tsc() - now, Ordering::Relaxed);
    STEPS.fetch_add(1, Ordering::Relaxed);
    RETURNED.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// The pressure level changed (from `events`, at a safe point).
pub(crate) fn on_pressure() {
    with_heap(background_step);
}

/// Hands free heap pages back to the kernel; returns the bytes.
pub fn scavenge() -> usize {
    with_heap(|h| h.scavenge_to_kernel(heap::PAGE))
}

fn refused(error: heap::HeapError) -> ! {
    crate::println!("heap error: {error}");
    sys::exit(HEAP_ERROR_EXIT)
}

// SAFETY: blocks come from Pagekeeper's heap, which returns distinct blocks
// of at least the requested size and alignment.
unsafe impl GlobalAlloc for ProcessHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        with_heap(|h| h.allocate(layout.size(), layout.align()))
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        with_heap(|h| h.allocate_zeroed(layout.size(), layout.align()))
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _: Layout) {
        let Some(ptr) = NonNull::new(ptr) else { return };
        let freed = with_heap(|h| {
            let freed = h.free(ptr);
            background_step(h);
            freed
        });
        if let Err(e) = freed {
            refused(e);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else { return core::ptr::null_mut() };
        match with_heap(|h| h.reallocate_in_use(ptr, layout.size(), new_size, layout.align())) {
            Ok(new) => new.map_or(core::ptr::null_mut(), NonNull::as_ptr),
            Err(e) => refused(e),
        }
    }
}
