//! A [`Kernel`] made of host memory, for tests and benchmarks on the host
//! (feature `host`): reserve = a zeroed allocation, decommit = zero-fill
//! (what demand-zero pages read afterwards), release = deallocation. It
//! records the calls and can hold the heap to a budget of bytes made
//! writable, the way a kernel's commit limit would.

extern crate std;

use crate::{Kernel, PAGE};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::vec::Vec;

/// A "kernel" made of host memory: reserve = zeroed allocation, decommit =
/// zero-fill (what demand-zero pages read after MADV_DONTNEED), release =
/// deallocation. It records every call.
#[derive(Default)]
pub struct HostKernel {
    /// Regions handed out: start -> length.
    pub regions: BTreeMap<usize, usize>,
    /// The host allocation under each region (start -> raw pointer): a
    /// page more than asked, 16-byte aligned, so that calloc can take
    /// fresh zero pages from the host instead of clearing them.
    raw: BTreeMap<usize, usize>,
    pub decommitted: Vec<(usize, usize)>,
    pub released: usize,
    /// Growth granted: (addr, len) of each call.
    pub grown: Vec<(usize, usize)>,
    /// How many more growth calls may succeed (`None`: all).
    pub grow_budget: Option<usize>,
    /// Bytes that may still be made writable, by `grow` or a plain
    /// `reserve` (`None`: no limit): a fixed memory budget.
    pub byte_budget: Option<usize>,
    /// Bytes made writable so far (grown, plus plain reserves).
    pub writable_bytes: usize,
}

impl HostKernel {
    /// A kernel that lets the heap make at most `bytes` writable.
    pub fn with_byte_budget(bytes: usize) -> Self {
        let mut kernel = HostKernel::default();
        kernel.byte_budget = Some(bytes);
        kernel
    }

    fn charge(&mut self, len: usize) -> bool {
        if let Some(left) = &mut self.byte_budget {
            let Some(rest) = left.checked_sub(len) else { return false };
            *left = rest;
        }
        self.writable_bytes += len;
        true
    }

    fn allocate_region(&mut self, len: usize) -> Option<usize> {
        // SAFETY: non-zero size (callers reserve at least a page).
        let raw = unsafe { alloc_zeroed(raw_layout(len)) } as usize;
        if raw == 0 {
            return None;
        }
        let start = raw.next_multiple_of(PAGE);
        self.regions.insert(start, len);
        self.raw.insert(start, raw);
        Some(start)
    }

    fn free_region(&mut self, start: usize, len: usize) {
        let raw = self.raw.remove(&start).expect("a region of this kernel");
        // SAFETY: allocated in allocate_region with this layout.
        unsafe { dealloc(raw as *mut u8, raw_layout(len)) };
    }
}

// SAFETY: reserve returns fresh zeroed host memory owned by the heap until
// release; decommit zero-fills the range.
unsafe impl Kernel for HostKernel {
    fn reserve(&mut self, len: usize) -> Option<usize> {
        if !self.charge(len) {
            return None;
        }
        self.allocate_region(len)
    }

    fn reserve_growable(&mut self, len: usize) -> Option<usize> {
        self.allocate_region(len)
    }

    fn grow(&mut self, addr: usize, len: usize) -> bool {
        if let Some(left) = &mut self.grow_budget {
            let Some(rest) = left.checked_sub(1) else { return false };
            *left = rest;
        }
        if !self.charge(len) {
            return false;
        }
        self.grown.push((addr, len));
        true
    }

    fn release(&mut self, addr: usize, len: usize) {
        assert_eq!(self.regions.remove(&addr), Some(len), "release of an unknown region");
        // SAFETY: allocated in allocate_region with this layout.
        unsafe { dealloc(addr as *mut u8, Layout::from_size_align(len, PAGE).unwrap()) };
        self.released += 1;
    }

    fn decommit(&mut self, addr: usize, len: usize) {
        assert!(addr.is_multiple_of(PAGE) && len.is_multiple_of(PAGE));
        let inside = self.regions.range(..=addr).next_back().is_some_and(|(&s, &l)| addr + len <= s + l);
        assert!(inside, "decommit outside any region");
        // SAFETY: inside a region this fake owns.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len) };
        self.decommitted.push((addr, len));
    }
}

fn raw_layout(len: usize) -> Layout {
    Layout::from_size_align(len + PAGE, 16).expect("region size")
}

impl Drop for HostKernel {
    fn drop(&mut self) {
        for (addr, len) in core::mem::take(&mut self.regions) {
            self.free_region(addr, len);
        }
    }
}
