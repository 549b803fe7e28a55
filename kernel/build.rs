//! Builds the user programs (`../user`, their own workspace and target
//! directory) and writes the list the kernel embeds: one entry per file in
//! `user/src/bin` (the only list of programs) up to 256 KiB, included by
//! `src/process/programs.rs`. Bigger ones are on the file disk only.

use std::env;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs: the file stems of user/src/bin/*.rs, sorted.
fn programs(root: &Path) -> Vec<String> {
    let dir = root.join("user/src/bin");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}

/// Largest program embedded in the kernel image.
const MAX_EMBEDDED: u64 = 256 * 1024;

fn main() {
    // The overcommit setting the kernel boots with (src/policy/commit.rs).
    println!("cargo:rerun-if-env-changed=PAGEKEEPER_OVERCOMMIT");
    // The log level it boots with (src/console.rs).
    println!("cargo:rerun-if-env-changed=PAGEKEEPER_LOG");
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
    let mut list = String::from("&[\n");
    for name in programs(root) {
        let path = bin_dir.join(&name);
        assert!(path.exists(), "user program {} was not built", path.display());
        // Big programs live on the file disk only: every byte embedded is
        // loaded with the kernel, and small machines (48 MiB under UEFI)
        // must still boot.
        if path.metadata().map(|m| m.len()).unwrap_or(0) > MAX_EMBEDDED {
            continue;
        }
        writeln!(list, "    ({name:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    list.push(']');
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it")).join("programs.rs");
    std::fs::write(&out, list).expect("writing the program list");
    for dir in ["user/src", "user/Cargo.toml", "user/.cargo", "heap/src", "abi/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
}
