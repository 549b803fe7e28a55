//! QEMU's firmware configuration device (fw_cfg), read through its I/O
//! ports: how the host hands a kernel named strings (`-fw_cfg
//! name=opt/...,string=...`), since the bootloader passes no command line.
//! The boot tool sets them (`RunConfig::settings`); a test kernel reads
//! one to know which of its tests the boot is for.
//!
//! The protocol (QEMU's docs/specs/fw_cfg.rst): write a 16-bit key to the
//! selector port, then read the item's bytes one at a time from the data
//! port. Key 0 holds the signature "QEMU"; key 0x19 the file directory, a
//! big-endian count and then 64-byte entries (size, key, name).

use alloc::string::String;
use alloc::vec::Vec;
use x86_64::instructions::port::Port;

const SELECTOR_PORT: u16 = 0x510;
const DATA_PORT: u16 = 0x511;
const KEY_SIGNATURE: u16 = 0x0000;
const KEY_FILE_DIR: u16 = 0x0019;
/// Longest value read: settings are short strings.
const MAX_VALUE: u32 = 4096;

/// Reads `buf.len()` bytes of item `key` from its start.
fn read(key: u16, buf: &mut [u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: QEMU's fw_cfg ports on the `pc` machine; selecting an item
        // and reading it has no side effect beyond the device's read
        // position, and only this module uses the ports, with interrupts
        // off around the sequence. Without the device the reads return
        // 0xff and the signature check fails.
        unsafe {
            Port::<u16>::new(SELECTOR_PORT).write(key);
            let mut data = Port::<u8>::new(DATA_PORT);
            for byte in buf.iter_mut() {
                *byte = data.read();
            }
        }
    })
}

/// The value of the host's setting `name` (`opt/...`), if it set one.
pub fn setting(name: &str) -> Option<String> {
    let mut signature = [0u8; 4];
    read(KEY_SIGNATURE, &mut signature);
    if &signature != b"QEMU" {
        return None;
    }
    let mut count = [0u8; 4];
    read(KEY_FILE_DIR, &mut count);
    let count = u32::from_be_bytes(count).min(1024) as usize;
    // The directory is read whole: the data port runs on from the count.
    let mut dir = alloc::vec![0u8; 4 + 64 * count];
    read(KEY_FILE_DIR, &mut dir);
    let (size, key) = dir[4..].chunks_exact(64).find_map(|entry| {
        let name_bytes = &entry[8..];
        let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(name_bytes.len());
        (&name_bytes[..end] == name.as_bytes()).then(|| {
            let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            (size, u16::from_be_bytes([entry[4], entry[5]]))
        })
    })?;
    let mut value: Vec<u8> = alloc::vec![0; size.min(MAX_VALUE) as usize];
    read(key, &mut value);
    String::from_utf8(value).ok()
}
