//! Pagekeeper kernel library: everything the kernel binary, the in-kernel test
//! suite and the test kernels in `tests/` share.
#![no_std]
#![cfg_attr(test, no_main)]
#![feature(custom_test_frameworks)]
#![test_runner(crate::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod arch;
pub mod console;
pub mod drivers;
pub mod files;
pub mod memory;
pub mod picture;
pub mod policy;
pub mod process;
pub mod shell;
pub mod swap;
pub mod testing;
pub mod vm;

// The kernel's log macros are the `log` facade's (see `console`):
// `pagekeeper::info!` and `log::info!` are one thing.
pub use ::log::{debug, error, info, trace, warn};

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::BootInfo;
use core::panic::PanicInfo;

/// Bootloader settings every Pagekeeper kernel image uses.
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    // Everything the bootloader places (kernel image, stack, boot info, the
    // physical-memory window) goes in the upper half: the lower half is for
    // processes. The first free slot is taken, so addresses are repeatable.
    config.mappings.dynamic_range_start = Some(mm::paging::KERNEL_START);
    config.kernel_stack_size = 256 * 1024;
    config
};

/// Brings the kernel up: CPU tables, interrupts, timer, memory. Call once,
/// first thing, from the entry point.
pub fn init(boot_info: &'static mut BootInfo) {
    console::init();
    arch::init();
    let boot = memory::init(boot_info);
    vm::init();
    // Read-only disks may be the file disk; writable ones may be swap.
    let (read_only, writable) = drivers::virtio_blk::probe().into_iter().partition(|d| d.read_only());
    swap::init(writable);
    policy::commit::init();
    files::init(read_only);
    policy::pressure::init();
    process::init();
    info!("CPU tables, interrupts and {} Hz timer up", arch::timer::TICK_HZ);
    info!("kernel image at {:#x}", boot.kernel_image_offset);
    info!("physical memory mapped at {:#x}", boot.physical_memory_offset.as_u64());
    let frames = memory::frames::stats();
    info!("frame allocator: {} of {} usable frames free", frames.free, frames.total);
    let heap = memory::heap::usage();
    info!("kernel heap: {} KiB at {:#x}, grows on demand", heap.mapped / 1024, heap.start);
}

/// Every Pagekeeper kernel's panic handler: a panic inside a guarded test
/// fails that test; anywhere else it is fatal and QEMU exits with failure.
#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    // SAFETY: single CPU, interrupts off, and whatever held the console lock is
    // below us on this stack and will not resume before we are done.
    unsafe { arch::serial::break_lock() };
    testing::on_panic(info);
    println!("\nKERNEL PANIC: {info}");
    arch::qemu::exit(arch::qemu::ExitCode::Failure)
}

#[cfg(test)]
bootloader_api::entry_point!(test_kernel_main, config = &BOOTLOADER_CONFIG);

#[cfg(test)]
fn test_kernel_main(boot_info: &'static mut BootInfo) -> ! {
    init(boot_info);
    test_main();
    unreachable!("the test runner exits QEMU")
}
