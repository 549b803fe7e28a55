//! Device drivers: PCI configuration through I/O ports, and virtio-blk disks
//! (through the `virtio-drivers` crate) behind `mm::block::BlockDevice`.

pub mod pci;
pub mod virtio_blk;
