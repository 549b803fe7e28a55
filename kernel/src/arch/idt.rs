//! The interrupt descriptor table: every vector we handle points at its asm
//! stub in `trap.rs`, which saves all registers and calls one Rust dispatcher.
//!
//! (The `x86_64` crate's typed IDT wants one `extern "x86-interrupt"` function
//! per vector and exposes only RIP/RSP/flags; a full register frame is what a
//! register report and, later, a context switch need.)

use super::gdt;
use super::trap::{self, Vector};
use spin::Lazy;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// One 16-byte long-mode gate descriptor (Intel SDM vol. 3, 6.14.1).
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 0-2: IST index (1-based, 0 = no stack switch).
    ist: u8,
    /// Present, DPL, type (0xE = 64-bit interrupt gate: IF cleared on entry).
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Gate>() == 16);

const PRESENT_INTERRUPT_GATE: u8 = 0x8e;
/// Descriptor privilege level 3: `int` from ring 3 may use the gate.
const DPL_USER: u8 = 3 << 5;

impl Gate {
    fn new(handler: u64, ist: Option<u16>) -> Self {
        Gate {
            offset_low: handler as u16,
            selector: gdt::selectors().kernel_code.0,
            ist: ist.map_or(0, |slot| slot as u8 + 1),
            type_attr: PRESENT_INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Lazy<Idt> = Lazy::new(|| {
    let mut idt = Idt([Gate::default(); 256]);
    for (vector, stub) in trap::stubs().iter().enumerate() {
        idt.0[vector] = Gate::new(*stub, ist_for(vector as u8));
    }
    let mut syscall = Gate::new(trap::syscall_stub(), None);
    syscall.type_attr |= DPL_USER;
    idt.0[usize::from(Vector::SYSCALL)] = syscall;
    idt
});

fn ist_for(vector: u8) -> Option<u16> {
    match vector {
        Vector::DOUBLE_FAULT => Some(gdt::DOUBLE_FAULT_IST),
        Vector::PAGE_FAULT => Some(gdt::PAGE_FAULT_IST),
        _ => None,
    }
}

pub fn init() {
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(&*IDT),
    };
    // SAFETY: the IDT is a static that lives for the rest of the kernel's
    // life, and every present gate points at a stub that ends in iretq.
    unsafe { lidt(&pointer) };
}
