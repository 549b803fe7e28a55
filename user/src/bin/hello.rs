//! Says hello, yields a few times (so others run in between), exits 0.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

use pkrt::{println, sys};

fn main() -> i32 {
    for round in 0..3 {
        println!("hello: round {round}");
        sys::yield_now();
    }
    0
}

pkrt::entry!(main);
