//! A kernel that reads an unmapped kernel address outside any test: the page
//! fault must produce the register report and a failing exit, not a hang or a
//! triple fault. The host side (tests/tests/qemu.rs) judges the output.
#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};
use pagekeeper::{println, BOOTLOADER_CONFIG};

entry_point!(main, config = &BOOTLOADER_CONFIG);

/// Nothing is mapped here: the bootloader places its mappings elsewhere.
pub const UNMAPPED: u64 = 0x0000_5555_dead_0000;

fn main(boot_info: &'static mut BootInfo) -> ! {
    pagekeeper::init(boot_info);
    println!("about to read {UNMAPPED:#x}");
    // SAFETY: deliberately unsound: this read must fault.
    let value = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    println!("read {value:#x}: the fault did not happen");
    pagekeeper::arch::qemu::exit(pagekeeper::arch::qemu::ExitCode::Success)
}
