//! The serial shell's hardware-free half: turning the bytes a terminal
//! sends into edited lines ([`line::LineEditor`]) and lines into typed
//! commands ([`command::Command`]). The kernel (`kernel/src/shell`) reads the
//! serial port, feeds the editor and runs the commands.
//!
//! Everything here is total: no input, however long or strange, panics or
//! allocates without bound (the editor's buffer and history are fixed
//! size), so the host's property tests can throw anything at it.
#![no_std]
#![deny(unsafe_code)]

pub mod command;
pub mod line;

#[cfg(test)]
mod tests;
