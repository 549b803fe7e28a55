//! Pagekeeper's memory-management algorithms.
//!
//! Everything here is plain `no_std` Rust with no hardware access, so the
//! host can unit-test, property-test and benchmark it with `cargo test`; the
//! kernel crate (`kernel/`) is the thin layer that feeds it real memory maps,
//! page tables and frames.
#![no_std]
// No unsafe code here; the one `unsafe` item is the declaration of the
// `vm::Platform` contract, which implementors (the kernel) take on.
#![deny(unsafe_code)]

extern crate alloc;

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// A table of `len` copies of `value`, or the heap's refusal with nothing
/// allocated: how every out-of-band table here (per frame, per slot, per
/// cache entry) is made, since the kernel builds them from its fallible
/// heap.
pub(crate) fn try_table<T: Clone>(len: usize, value: T) -> Result<Vec<T>, TryReserveError> {
    let mut table = Vec::new();
    table.try_reserve_exact(len)?;
    table.resize(len, value);
    Ok(table)
}

pub mod addr;
pub mod bitmap;
pub mod block;
pub mod files;
pub mod frame;
pub mod memory_map;
pub mod paging;
pub mod picture;
pub mod policy;
pub mod pte;
pub mod reclaim;
pub mod swap;
pub mod vm;
