//! Global descriptor table and task-state segment.
//!
//! The TSS carries the interrupt stack table (IST): exceptions that must work
//! even when the current stack is broken (double fault, and page fault, whose
//! most common kernel cause is a stack overflow into the guard page) switch to
//! a stack of their own. The IST stacks are statics: they have no guard page,
//! so handlers running on them must stay shallow.
//!
//! Segment order follows what `syscall`/`sysret` require (kernel code, kernel
//! data, user data, user code), so ring 3 can be added without reshuffling.

use spin::Lazy;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slots, 0-based as in `TaskStateSegment::interrupt_stack_table` (Intel
/// numbers them from 1: slot 0 is IST1, slot 1 is IST2; the IDT gate holds
/// the 1-based number, see `idt.rs`).
pub const DOUBLE_FAULT_IST: u16 = 0;
pub const PAGE_FAULT_IST: u16 = 1;

const IST_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
/// Where the CPU switches to when a trap arrives from ring 3 (TSS.rsp0).
/// One for all processes: a process never blocks inside the kernel, so each
/// user trap is finished (resumed, or saved and left) before the next.
static mut USER_TRAP_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
static mut PAGE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);

fn stack_top(stack: *const IstStack) -> VirtAddr {
    VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64
}

static TSS: Lazy<TaskStateSegment> = Lazy::new(|| {
    let mut tss = TaskStateSegment::new();
    // Only addresses are taken here; the CPU is the one writer of these stacks.
    tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = stack_top(core::ptr::addr_of!(DOUBLE_FAULT_STACK));
    tss.interrupt_stack_table[PAGE_FAULT_IST as usize] = stack_top(core::ptr::addr_of!(PAGE_FAULT_STACK));
    tss.privilege_stack_table[0] = user_trap_stack_top_addr();
    tss
});

fn user_trap_stack_top_addr() -> VirtAddr {
    stack_top(core::ptr::addr_of!(USER_TRAP_STACK))
}

/// Top of the stack traps from ring 3 arrive on.
pub fn user_trap_stack_top() -> u64 {
    user_trap_stack_top_addr().as_u64()
}

/// The selectors the rest of the kernel needs.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    pub tss: SegmentSelector,
}

static GDT: Lazy<(GlobalDescriptorTable, Selectors)> = Lazy::new(|| {
    let mut gdt = GlobalDescriptorTable::new();
    let selectors = Selectors {
        kernel_code: gdt.append(Descriptor::kernel_code_segment()),
        kernel_data: gdt.append(Descriptor::kernel_data_segment()),
        user_data: gdt.append(Descriptor::user_data_segment()),
        user_code: gdt.append(Descriptor::user_code_segment()),
        tss: gdt.append(Descriptor::tss_segment(&TSS)),
    };
    (gdt, selectors)
});

pub fn selectors() -> Selectors {
    GDT.1
}

pub fn init() {
    GDT.0.load();
    let s = selectors();
    // SAFETY: the selectors index the GDT that was just loaded, and the
    // descriptors are valid long-mode kernel code/data and an available TSS.
    unsafe {
        CS::set_reg(s.kernel_code);
        SS::set_reg(s.kernel_data);
        DS::set_reg(s.kernel_data);
        ES::set_reg(s.kernel_data);
        load_tss(s.tss);
    }
}
