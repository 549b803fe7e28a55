//! The Pagekeeper kernel binary: `make run` boots it.
#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};
use pagekeeper::{arch, info, memory, println, BOOTLOADER_CONFIG};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    println!("\nPagekeeper {}", env!("CARGO_PKG_VERSION"));
    pagekeeper::init(boot_info);
    println!("{}", memory::memory_map_summary(memory::boot_memory()));
    println!("{}", memory::frames::stats());
    println!("{}", pagekeeper::vm::summary());
    info!("kernel up; close QEMU to stop (Ctrl-C)");
    arch::halt_forever()
}
