//! Support for the QEMU integration tests: build the kernels, boot them,
//! read their libtest-style reports.
//!
//! The kernels are built once per test process by running cargo inside
//! `kernel/` (a separate workspace with its own target directory) and reading
//! the executables' paths from its JSON messages.

use pagekeeper_boot::{QemuExit, RunConfig, RunOutcome};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub use pagekeeper_boot as boot;

/// The repository's root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A kernel ELF the build produced, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel<'a> {
    /// The `make run` kernel (src/main.rs).
    Demo,
    /// The library's `#[test_case]` suite.
    Suite,
    /// A test kernel from kernel/tests/NAME.rs.
    Named(&'a str),
}

impl fmt::Display for Kernel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kernel::Demo => write!(f, "demo kernel"),
            Kernel::Suite => write!(f, "in-kernel suite"),
            Kernel::Named(name) => write!(f, "test kernel {name}"),
        }
    }
}

/// Paths of every kernel executable, keyed by "bin", "lib" or a test's name.
fn executables() -> &'static HashMap<String, PathBuf> {
    static EXECUTABLES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    EXECUTABLES.get_or_init(|| {
        let mut found = HashMap::new();
        found.extend(cargo_in_kernel(&["build", "--bins"]));
        found.extend(cargo_in_kernel(&["test", "--no-run"]));
        found
    })
}

/// Extra cargo arguments for the kernel's build profile: `--release` when
/// `PK_KERNEL_PROFILE=release` (what `make bench` sets: a benchmark
/// measures the optimised kernel, as it would ship), none otherwise (the
/// dev profile the tests use: opt-level 1, debug assertions and overflow
/// checks on).
fn profile_args() -> &'static [&'static str] {
    static ARGS: OnceLock<&'static [&'static str]> = OnceLock::new();
    ARGS.get_or_init(|| match std::env::var("PK_KERNEL_PROFILE").as_deref() {
        Ok("release") => &["--release"],
        Ok("dev") | Err(_) => &[],
        Ok(other) => panic!("PK_KERNEL_PROFILE={other}: use release or dev"),
    })
}

/// Runs cargo in kernel/ with JSON messages; returns (key, executable) pairs.
fn cargo_in_kernel(args: &[&str]) -> Vec<(String, PathBuf)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .args(profile_args())
        .arg("--message-format=json-render-diagnostics")
        .current_dir(repo_root().join("kernel"))
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .expect("running cargo for the kernel");
    assert!(output.status.success(), "kernel build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().filter_map(artifact).collect()
}

/// One cargo JSON message → (key, executable), for artifacts with an executable.
fn artifact(line: &str) -> Option<(String, PathBuf)> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    let executable = message.get("executable")?.as_str()?;
    let target = message.get("target")?;
    let kind = target.get("kind")?.get(0)?.as_str()?;
    let key = match kind {
        "bin" | "lib" => kind.to_string(),
        _ => target.get("name")?.as_str()?.to_string(),
    };
    Some((key, PathBuf::from(executable)))
}

pub fn kernel_path(kernel: Kernel) -> PathBuf {
    let key = match kernel {
        Kernel::Demo => "bin",
        Kernel::Suite => "lib",
        Kernel::Named(name) => name,
    };
    executables().get(key).unwrap_or_else(|| panic!("no executable for {kernel}")).clone()
}

/// A run configuration for `kernel` with the test defaults (UEFI, 128 MiB).
pub fn config(kernel: Kernel) -> RunConfig {
    let mut config = RunConfig::new(kernel_path(kernel));
    // A suite boot takes 10-30 s; a hung boot (e.g. the bootloader failing
    // before the kernel runs) should not cost the whole CI budget.
    config.timeout = Some(Duration::from_secs(150));
    config
}

/// The standard file disk's directory (`target/files`: every user program
/// as `bin/NAME`, and the test data), made or brought up to date.
pub fn standard_files() -> PathBuf {
    pagekeeper_boot::standard_files(&repo_root()).expect("making target/files")
}

/// Boots with `config`; panics with the whole console output if QEMU cannot run.
pub fn boot(config: &RunConfig) -> RunOutcome {
    pagekeeper_boot::run(config).unwrap_or_else(|e| panic!("running {}: {e}", config.kernel.display()))
}

/// The counts from a libtest-style `test result:` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

/// The last `test result: ... N passed; M failed` line in `output`.
pub fn parse_summary(output: &str) -> Option<Summary> {
    let line = output.lines().rev().find(|l| l.starts_with("test result: "))?;
    let count = |word: &str| -> Option<usize> {
        let before = line.split(word).next()?;
        before.trim_end().rsplit([' ', ';', '.']).next()?.parse().ok()
    };
    Some(Summary { passed: count(" passed")?, failed: count(" failed")? })
}

/// Each test's (NAME, VERDICT) from `test NAME ... VERDICT` lines. A test
/// that logs something prints it after the `... `; its verdict (`ok`, or a
/// line starting with `FAILED`) then comes on a later line, and is found
/// there.
pub fn test_lines(output: &str) -> Vec<(&str, &str)> {
    let lines: Vec<&str> = output.lines().collect();
    let is_verdict = |s: &str| s == "ok" || s.starts_with("FAILED");
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let (name, rest) = line.strip_prefix("test ")?.split_once(" ... ")?;
            let later = lines[i + 1..].iter().copied().take_while(|l| !l.starts_with("test "));
            let verdict = std::iter::once(rest).chain(later).find(|s| is_verdict(s)).unwrap_or(rest);
            Some((name, verdict))
        })
        .collect()
}

/// Asserts that a suite run passed and records its counts for `make test`'s
/// closing summary (target/test-results/LABEL.txt).
pub fn expect_suite_passed(label: &str, outcome: &RunOutcome) -> Summary {
    let summary = parse_summary(&outcome.serial);
    assert!(
        outcome.exit == QemuExit::Success && summary.is_some_and(|s| s.failed == 0 && s.passed > 0),
        "{label}: {} with summary {summary:?}; console:\n{}",
        outcome.exit,
        outcome.serial
    );
    let summary = summary.expect("checked above");
    record(label, summary);
    summary
}

fn record(label: &str, summary: Summary) {
    let dir = repo_root().join("target/test-results");
    let _ = std::fs::create_dir_all(&dir);
    let line = format!("test result: ok. {} passed; {} failed\n", summary.passed, summary.failed);
    let _ = std::fs::write(dir.join(format!("{label}.txt")), line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_summary() {
        let out = "noise\ntest result: FAILED. 2 passed; 3 failed; 0 ignored; finished in 2.00s\n";
        assert_eq!(parse_summary(out), Some(Summary { passed: 2, failed: 3 }));
        assert_eq!(
            parse_summary("test result: ok. 17 passed; 0 failed"),
            Some(Summary { passed: 17, failed: 0 })
        );
        assert_eq!(parse_summary("no summary here"), None);
    }

    #[test]
    fn splits_test_lines() {
        let out = "test a::b ... ok\ntest c ... FAILED\nrunning 2 tests\n";
        assert_eq!(test_lines(out), vec![("a::b", "ok"), ("c", "FAILED")]);
        let logged = "test d ... [ 1.0 INFO ] started\nmore\nFAILED\n    timed out\ntest e ... ok\n";
        assert_eq!(test_lines(logged), vec![("d", "FAILED"), ("e", "ok")]);
    }

    #[test]
    fn reads_cargo_artifact_messages() {
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"pagekeeper"},"executable":"/t/pagekeeper-1"}"#;
        let test = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"runner_selftest"},"executable":"/t/r-2"}"#;
        let rlib =
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"spin"},"executable":null}"#;
        assert_eq!(artifact(lib), Some(("lib".into(), "/t/pagekeeper-1".into())));
        assert_eq!(artifact(test), Some(("runner_selftest".into(), "/t/r-2".into())));
        assert_eq!(artifact(rlib), None);
    }
}
