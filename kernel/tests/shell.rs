//! A kernel that goes straight to the shell with the memory picture on (the
//! demo, without the demo): the host side (tests/tests/qemu.rs) types
//! commands and garbage into its serial port, checks the answers, and
//! counts the picture's colours in screendumps.
#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};
use pagekeeper::{picture, shell, BOOTLOADER_CONFIG};

entry_point!(main, config = &BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    let framebuffer = boot_info.framebuffer.take();
    pagekeeper::init(boot_info);
    picture::init(framebuffer);
    shell::run()
}
