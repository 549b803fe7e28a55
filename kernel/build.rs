//! Builds the user programs (`../user`, their own workspace and target
//! directory) and tells the kernel where they are: `PK_USER_<NAME>` is the
//! path of each ELF, which `src/process/programs.rs` embeds.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Every binary in user/src/bin.
const PROGRAMS: [&str; 8] = [
    "hello",
    "alloc_demo",
    "scribbler",
    "wild",
    "syscall_check",
    "double_free",
    "stack_overflow",
    "kernel_peek",
];

fn main() {
    let kernel = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = kernel.parent().expect("kernel/ has a parent");
    let target_dir = root.join("target/user");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root.join("user"))
        .args(["build", "--release", "--bins"])
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer build's settings are for the kernel, not for the programs.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .expect("running cargo for the user programs");
    assert!(status.success(), "building the user programs failed");
    let bin_dir = target_dir.join("x86_64-unknown-none/release");
    for name in PROGRAMS {
        let path = bin_dir.join(name);
        assert!(path.exists(), "user program {} was not built", path.display());
        println!("cargo:rustc-env=PK_USER_{}={}", name.to_uppercase(), path.display());
    }
    for dir in ["user/src", "user/Cargo.toml", "user/.cargo", "heap/src", "abi/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
}
