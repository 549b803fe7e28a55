//! A [`Kernel`] made of host memory, for tests and benchmarks on the host
//! (feature `host`): reserve = a zeroed allocation, decommit = zero-fill
//! (what demand-zero pages read afterwards). It records the calls and can
//! hold the heap to a budget of bytes made writable, the way a kernel's
//! commit limit would.

extern crate std;

use crate::{Kernel, PAGE};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

/// A "kernel" made of host memory: reserve = zeroed allocation, decommit =
/// zero-fill (what demand-zero pages read after MADV_DONTNEED). It records
/// every call; its regions are freed when it is dropped.
#[derive(Default)]
pub struct HostKernel {
    /// Regions handed out: start -> (length, the host allocation under
    /// it). The allocation is a page more than asked and 16-byte aligned,
    /// so that calloc takes fresh zero pages from the host instead of
    /// clearing them.
    regions: BTreeMap<usize, (usize, usize)>,
    pub decommitted: Vec<(usize, usize)>,
    /// Growth granted: (addr, len) of each call.
    pub grown: Vec<(usize, usize)>,
    /// Bytes that may still be made writable (`None`: no limit): a fixed
    /// memory budget.
    pub byte_budget: Option<usize>,
    /// Bytes writable now: made writable, less what was given back.
    pub writable_bytes: usize,
    /// Ranges given back (`give_back`), in call order.
    pub given_back: Vec<(usize, usize)>,
    /// Refuse every `give_back`, as a kernel that cannot would.
    pub refuse_give_back: bool,
    /// When set, the writable pages one by one, so a test can check that
    /// the heap hands out only memory it made writable.
    pub writable_pages: Option<BTreeSet<usize>>,
}

impl HostKernel {
    /// A kernel that lets the heap make at most `bytes` writable.
    pub fn with_byte_budget(bytes: usize) -> Self {
        let mut kernel = HostKernel::default();
        kernel.byte_budget = Some(bytes);
        kernel
    }

    fn allocate_region(&mut self, len: usize) -> Option<usize> {
        // SAFETY: non-zero size (callers reserve at least a page).
        let raw = unsafe { alloc_zeroed(raw_layout(len)) } as usize;
        if raw == 0 {
            return None;
        }
        let start = raw.next_multiple_of(PAGE);
        self.regions.insert(start, (len, raw));
        Some(start)
    }
}

// SAFETY: reserve returns fresh zeroed host memory owned by the heap for
// as long as this kernel lives (writable at once: grow only counts);
// decommit zero-fills the range.
unsafe impl Kernel for HostKernel {
    fn reserve(&mut self, len: usize) -> Option<usize> {
        self.allocate_region(len)
    }

    fn grow(&mut self, addr: usize, len: usize) -> bool {
        if let Some(left) = &mut self.byte_budget {
            let Some(rest) = left.checked_sub(len) else { return false };
            *left = rest;
        }
        self.writable_bytes += len;
        self.grown.push((addr, len));
        if let Some(pages) = &mut self.writable_pages {
            for page in (addr..addr + len).step_by(PAGE) {
                assert!(pages.insert(page), "grew page {page:#x} twice");
            }
        }
        true
    }

    fn decommit(&mut self, addr: usize, len: usize) {
        assert!(addr.is_multiple_of(PAGE) && len.is_multiple_of(PAGE));
        let inside = self.regions.range(..=addr).next_back().is_some_and(|(&s, &(l, _))| addr + len <= s + l);
        assert!(inside, "decommit outside any region");
        // SAFETY: inside a region this fake owns.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len) };
        self.decommitted.push((addr, len));
    }

    fn give_back(&mut self, addr: usize, len: usize) -> bool {
        if self.refuse_give_back {
            return false;
        }
        self.decommit(addr, len);
        if let Some(pages) = &mut self.writable_pages {
            for page in (addr..addr + len).step_by(PAGE) {
                assert!(pages.remove(&page), "gave back page {page:#x}, which was not writable");
            }
        }
        if let Some(left) = &mut self.byte_budget {
            *left += len;
        }
        self.writable_bytes -= len;
        self.given_back.push((addr, len));
        true
    }
}

fn raw_layout(len: usize) -> Layout {
    Layout::from_size_align(len + PAGE, 16).expect("region size")
}

impl Drop for HostKernel {
    fn drop(&mut self) {
        for &(len, raw) in self.regions.values() {
            // SAFETY: allocated in allocate_region with this layout.
            unsafe { dealloc(raw as *mut u8, raw_layout(len)) };
        }
    }
}
