//! The legacy 8259 interrupt controllers. Remapped to vectors 32..48 so IRQs
//! do not collide with CPU exceptions; only the IRQs we handle (timer, serial input) are unmasked.

use x86_64::instructions::port::Port;

pub const IRQ_BASE: u8 = 32;
pub const IRQ_COUNT: u8 = 16;
pub const TIMER_IRQ: u8 = 0;

const PRIMARY_CMD: u16 = 0x20;
const PRIMARY_DATA: u16 = 0x21;
const SECONDARY_CMD: u16 = 0xa0;
const SECONDARY_DATA: u16 = 0xa1;

const ICW1_INIT_WITH_ICW4: u8 = 0x11;
const ICW4_8086: u8 = 0x01;
const CMD_EOI: u8 = 0x20;
const CMD_READ_ISR: u8 = 0x0b;
const SPURIOUS_LINE: u8 = 7;

fn write(port: u16, value: u8) {
    // SAFETY: the 8259 ports; only this module touches them, during init or
    // with interrupts disabled in an interrupt handler.
    unsafe { Port::<u8>::new(port).write(value) }
}

fn read(port: u16) -> u8 {
    // SAFETY: as in `write`.
    unsafe { Port::<u8>::new(port).read() }
}

pub fn init() {
    write(PRIMARY_CMD, ICW1_INIT_WITH_ICW4);
    write(SECONDARY_CMD, ICW1_INIT_WITH_ICW4);
    write(PRIMARY_DATA, IRQ_BASE);
    write(SECONDARY_DATA, IRQ_BASE + 8);
    write(PRIMARY_DATA, 1 << 2); // secondary on line 2
    write(SECONDARY_DATA, 2); // its cascade identity
    write(PRIMARY_DATA, ICW4_8086);
    write(SECONDARY_DATA, ICW4_8086);
    write(PRIMARY_DATA, !(1 << TIMER_IRQ | 1 << super::serial::IRQ));
    write(SECONDARY_DATA, 0xff);
}

/// True for a spurious IRQ 7/15 (line raised and dropped before the CPU
/// acknowledged it): it must not get an end-of-interrupt on its own chip.
fn is_spurious(irq: u8) -> bool {
    if irq % 8 != SPURIOUS_LINE {
        return false;
    }
    let cmd = if irq < 8 { PRIMARY_CMD } else { SECONDARY_CMD };
    write(cmd, CMD_READ_ISR);
    read(cmd) & (1 << SPURIOUS_LINE) == 0
}

/// Acknowledges `irq` (0..16). Returns false for a spurious one, which the
/// caller must then ignore.
pub fn end_of_interrupt(irq: u8) -> bool {
    if is_spurious(irq) {
        // A spurious IRQ 15 was still a real cascade interrupt on the primary.
        if irq >= 8 {
            write(PRIMARY_CMD, CMD_EOI);
        }
        return false;
    }
    if irq >= 8 {
        write(SECONDARY_CMD, CMD_EOI);
    }
    write(PRIMARY_CMD, CMD_EOI);
    true
}
