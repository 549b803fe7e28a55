//! A [`Kernel`] made of host memory, for tests and benchmarks on the host
//! (feature `host`): reserve = a zeroed allocation, decommit = zero-fill
//! (what demand-zero pages read afterwards), release = deallocation. It
//! records the calls and counts resident bytes the way a kernel would.

extern crate std;

use crate::{Kernel, PAGE, SPAN};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::vec::Vec;

/// A "kernel" made of host memory: reserve = zeroed allocation, decommit =
/// zero-fill (what demand-zero pages read after MADV_DONTNEED), release =
/// deallocation. It records every call.
#[derive(Default)]
pub struct HostKernel {
    pub regions: BTreeMap<usize, usize>,
    pub decommitted: Vec<(usize, usize)>,
    pub released: usize,
    /// Arena growth: calls granted, and how many more may be (`None`: all).
    pub grown: Vec<(usize, usize)>,
    pub grow_budget: Option<usize>,
}

// SAFETY: reserve returns fresh zeroed host memory owned by the heap until
// release; decommit zero-fills the range.
unsafe impl Kernel for HostKernel {
    fn reserve(&mut self, len: usize) -> Option<usize> {
        let layout = Layout::from_size_align(len, SPAN).ok()?;
        // SAFETY: non-zero size (callers reserve at least a span).
        let p = unsafe { alloc_zeroed(layout) } as usize;
        (p != 0).then(|| {
            self.regions.insert(p, len);
            p
        })
    }

    fn grow(&mut self, addr: usize, len: usize) -> bool {
        if let Some(left) = &mut self.grow_budget {
            let Some(rest) = left.checked_sub(1) else { return false };
            *left = rest;
        }
        self.grown.push((addr, len));
        true
    }

    fn release(&mut self, addr: usize, len: usize) {
        assert_eq!(self.regions.remove(&addr), Some(len), "release of an unknown region");
        // SAFETY: allocated in reserve with this layout.
        unsafe { dealloc(addr as *mut u8, Layout::from_size_align(len, SPAN).unwrap()) };
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

impl Drop for HostKernel {
    fn drop(&mut self) {
        for (&addr, &len) in &self.regions {
            // SAFETY: allocated in reserve with this layout.
            unsafe { dealloc(addr as *mut u8, Layout::from_size_align(len, SPAN).unwrap()) };
        }
    }
}
