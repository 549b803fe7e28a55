//! Probed memory access: a load or store that may fault, with a fixup.
//!
//! `pk_probe_read_u8` / `pk_probe_write_u8` each do one access at a known
//! instruction address. When the page-fault handler finds a violation whose
//! RIP is one of those instructions, it sets RIP to `pk_probe_fixup` instead
//! of panicking; the fixup returns 1 to the caller. (Linux's exception table
//! for user copies works the same way.) The probes push nothing, so at the
//! fault RSP still points at the return address and the fixup can `ret`.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.probe, "ax"
    // u64 pk_probe_read_u8(u64 addr, u8 *out): 0 ok, 1 faulted
    .global pk_probe_read_u8
    pk_probe_read_u8:
    pk_probe_read_insn:
        movzx eax, byte ptr [rdi]
        mov byte ptr [rsi], al
        xor eax, eax
        ret

    // u64 pk_probe_write_u8(u64 addr, u8 value): 0 ok, 1 faulted
    .global pk_probe_write_u8
    pk_probe_write_u8:
    pk_probe_write_insn:
        mov byte ptr [rdi], sil
        xor eax, eax
        ret

    pk_probe_fixup:
        mov eax, 1
        ret

    .section .data.rel.ro.probe, "aw"
    .balign 8
    .global pk_probe_addresses
    pk_probe_addresses:
        .quad pk_probe_read_insn, pk_probe_write_insn, pk_probe_fixup
    "#
);

extern "C" {
    fn pk_probe_read_u8(addr: u64, out: *mut u8) -> u64;
    fn pk_probe_write_u8(addr: u64, value: u8) -> u64;
    static pk_probe_addresses: [u64; 3];
}

/// Where to resume after a faulting probe at `rip`; `None` if `rip` is not a
/// probe instruction.
pub fn fixup_for(rip: u64) -> Option<u64> {
    // SAFETY: a read-only table defined in the asm above.
    let [read, write, fixup] = unsafe { *core::ptr::addr_of!(pk_probe_addresses) };
    (rip == read || rip == write).then_some(fixup)
}

/// Reads one byte; `None` if the access faulted as a violation.
pub fn read_u8(addr: u64) -> Option<u8> {
    let mut value = 0;
    // SAFETY: the probe only reads `addr`, through the fault-fixup path, and
    // writes `value`, a live local.
    let faulted = unsafe { pk_probe_read_u8(addr, &mut value) };
    (faulted == 0).then_some(value)
}

/// Writes one byte; false if the access faulted as a violation.
///
/// # Safety
/// A successful write changes memory at `addr`: the caller must own it.
pub unsafe fn write_u8(addr: u64, value: u8) -> bool {
    // SAFETY: the caller owns `addr`; faults are fixed up.
    unsafe { pk_probe_write_u8(addr, value) == 0 }
}
