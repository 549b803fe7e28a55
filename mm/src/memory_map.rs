//! What the firmware's memory map says, summarised by purpose.
//!
//! The bootloader hands over a list of physical regions with a kind each; the
//! kernel image sits inside regions marked as the bootloader's. The summary
//! splits the kernel image out so the boot log can say where memory went:
//! usable, bootloader, kernel, ACPI, reserved.

use core::fmt;
use core::ops::Range;

/// A region's purpose, as far as memory management cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysKind {
    /// Free for the kernel to use.
    Usable,
    /// Used by the bootloader: page tables, boot info, the kernel image.
    Bootloader,
    /// ACPI tables (reclaimable) and ACPI non-volatile storage.
    Acpi,
    /// Anything else the firmware keeps.
    Reserved,
}

/// One physical region, `start..end` in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRegion {
    pub start: u64,
    pub end: u64,
    pub kind: PhysKind,
}

/// Bytes per purpose, and how many regions the map had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryMapSummary {
    pub usable: u64,
    pub bootloader: u64,
    pub kernel: u64,
    pub acpi: u64,
    pub reserved: u64,
    pub regions: usize,
}

impl MemoryMapSummary {
    /// Sums `regions` by kind; the part of any region that overlaps `kernel`
    /// (the kernel image's physical range) counts as kernel instead.
    pub fn new(regions: impl IntoIterator<Item = PhysRegion>, kernel: Range<u64>) -> Self {
        let mut summary = MemoryMapSummary::default();
        for region in regions {
            let len = region.end.saturating_sub(region.start);
            let in_kernel = overlap(region.start..region.end, kernel.clone());
            summary.kernel += in_kernel;
            *summary.bucket(region.kind) += len - in_kernel;
            summary.regions += 1;
        }
        summary
    }

    fn bucket(&mut self, kind: PhysKind) -> &mut u64 {
        match kind {
            PhysKind::Usable => &mut self.usable,
            PhysKind::Bootloader => &mut self.bootloader,
            PhysKind::Acpi => &mut self.acpi,
            PhysKind::Reserved => &mut self.reserved,
        }
    }

    /// Every byte the map lists, reserved ranges included (which may be
    /// address windows with no RAM behind them: SeaBIOS lists a 12 GiB one).
    pub fn total(&self) -> u64 {
        self.ram() + self.reserved
    }

    /// Memory the machine has: everything but the reserved ranges.
    pub fn ram(&self) -> u64 {
        self.usable + self.bootloader + self.kernel + self.acpi
    }
}

fn overlap(a: Range<u64>, b: Range<u64>) -> u64 {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

/// Bytes as MiB with one decimal, rounded down ("118.4 MiB").
pub struct Mib(pub u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = self.0 * 10 / (1024 * 1024);
        let text_width = f.width().unwrap_or(0).saturating_sub(2);
        write!(f, "{:>w$}.{} MiB", tenths / 10, tenths % 10, w = text_width)
    }
}

impl fmt::Display for MemoryMapSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "memory map: {} regions, {} of RAM", self.regions, Mib(self.ram()))?;
        writeln!(f, "  usable     {:8}", Mib(self.usable))?;
        writeln!(f, "  bootloader {:8}", Mib(self.bootloader))?;
        writeln!(f, "  kernel     {:8}", Mib(self.kernel))?;
        writeln!(f, "  ACPI       {:8}", Mib(self.acpi))?;
        write!(f, "  reserved   {:8} (address ranges, not counted as RAM)", Mib(self.reserved))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    const MIB: u64 = 1024 * 1024;

    fn region(start: u64, end: u64, kind: PhysKind) -> PhysRegion {
        PhysRegion { start, end, kind }
    }

    #[test]
    fn sums_by_kind_and_splits_out_the_kernel() {
        let map = [
            region(0, MIB, PhysKind::Reserved),
            region(MIB, 8 * MIB, PhysKind::Bootloader),
            region(8 * MIB, 100 * MIB, PhysKind::Usable),
            region(100 * MIB, 101 * MIB, PhysKind::Acpi),
        ];
        let s = MemoryMapSummary::new(map, 2 * MIB..5 * MIB);
        assert_eq!(s.reserved, MIB);
        assert_eq!(s.kernel, 3 * MIB);
        assert_eq!(s.bootloader, 4 * MIB);
        assert_eq!(s.usable, 92 * MIB);
        assert_eq!(s.acpi, MIB);
        assert_eq!(s.regions, 4);
        assert_eq!(s.total(), 101 * MIB);
        assert_eq!(s.ram(), 100 * MIB, "reserved ranges are not RAM");
    }

    #[test]
    fn kernel_spanning_two_regions_is_counted_once() {
        let map = [region(0, 4 * MIB, PhysKind::Bootloader), region(4 * MIB, 8 * MIB, PhysKind::Bootloader)];
        let s = MemoryMapSummary::new(map, 3 * MIB..6 * MIB);
        assert_eq!((s.kernel, s.bootloader), (3 * MIB, 5 * MIB));
    }

    #[test]
    fn empty_and_inverted_regions_count_nothing() {
        let s = MemoryMapSummary::new([region(5, 5, PhysKind::Usable), region(9, 3, PhysKind::Usable)], 0..0);
        assert_eq!(s.total(), 0);
        assert_eq!(s.regions, 2);
    }

    #[test]
    fn mib_prints_one_decimal_rounded_down() {
        assert_eq!(format!("{}", Mib(0)), "0.0 MiB");
        assert_eq!(format!("{}", Mib(MIB + MIB / 2)), "1.5 MiB");
        assert_eq!(format!("{}", Mib(2 * MIB - 1)), "1.9 MiB");
        assert_eq!(format!("{:8}", Mib(MIB)), "     1.0 MiB");
    }
}
