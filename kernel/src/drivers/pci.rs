//! PCI configuration space through the legacy I/O ports 0xCF8 (address) and
//! 0xCFC (data): QEMU's `pc` machine has no memory-mapped (ECAM) access,
//! which is all `virtio-drivers` ships. Its `PciRoot` (enumeration, BARs,
//! capabilities) works over any `ConfigurationAccess`; this is ours.

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, PciRoot};
use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Configuration mechanism #1: write the bus/device/function/register to
/// the address port, then move the dword through the data port.
pub struct PortCam {
    _private: (),
}

impl PortCam {
    /// # Safety
    /// Only one `PortCam` may be in use at a time (the address/data pair is
    /// a two-step protocol; an interleaved access would read another
    /// register).
    pub unsafe fn new() -> Self {
        PortCam { _private: () }
    }

    fn address(df: DeviceFunction, register: u8) -> u32 {
        0x8000_0000
            | u32::from(df.bus) << 16
            | u32::from(df.device) << 11
            | u32::from(df.function) << 8
            | u32::from(register & 0xfc)
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, register: u8) -> u32 {
        // SAFETY: 0xCF8/0xCFC are the PCI configuration ports on every PC;
        // the pair is used by this one PortCam (its constructor's contract).
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(Self::address(df, register));
            Port::<u32>::new(CONFIG_DATA).read()
        }
    }

    fn write_word(&mut self, df: DeviceFunction, register: u8, data: u32) {
        // SAFETY: as in read_word.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(Self::address(df, register));
            Port::<u32>::new(CONFIG_DATA).write(data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam { _private: () }
    }
}

/// The devices on bus 0 (QEMU's `pc` machine puts every device there).
pub fn devices(root: &PciRoot<PortCam>) -> impl Iterator<Item = (DeviceFunction, DeviceFunctionInfo)> + '_ {
    root.enumerate_bus(0)
}
