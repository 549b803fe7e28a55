//! `pagekeeper-boot`: make a disk image from a kernel ELF and boot it in QEMU
//! with the serial console on this terminal. `make run` and `make gdb` call it;
//! `cargo run` from the project root runs it with no kernel named, and then it
//! builds the demo kernel and boots it as `make run` does.

use pagekeeper_boot::{run_interactive, Firmware, QemuExit, RunConfig};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: pagekeeper-boot [options] [KERNEL_ELF]
  (no KERNEL_ELF: build the demo kernel and boot it with 128 MiB, 256 MiB of
   swap and the standard file disk, unless the options say otherwise: `cargo run`)
  --bios            boot with the legacy BIOS loader (default: UEFI)
  --memory MIB      guest memory in MiB (default 128; at least 48 under UEFI, 24 under BIOS)
  --timeout SECS    kill QEMU after SECS seconds (default: never)
  --disk FILE       attach FILE as an extra raw disk (repeatable)
  --swap MIB        attach a fresh swap disk of MIB MiB (virtio-blk; default 0: none)
  --swap-bps BYTES  throttle the swap disk to BYTES per second (a slow disk; at 2048
                    it stops answering within the kernel's 10 s request timeout)
  --setting N=V     a named string for the kernel (QEMU fw_cfg; N starts with opt/),
                    e.g. opt/pagekeeper/swap-disk=stalled for the swap kernel's stall test
  --files DIR       pack DIR into a read-only file disk (virtio-blk, after the swap disk)
  --standard-files  the file disk of the tests and the demo: every user program as
                    bin/NAME and the test data (made in target/files)
  --window          show the screen (the memory picture) in a QEMU window, if this
                    QEMU has a GTK or SDL front end (else stay headless, with a note)
  --gdb             wait for gdb on localhost:1234 before the first instruction
  --icount          tie the guest clock to executed instructions (benchmarks)
  --image-only      build the disk image, print its path, do not boot";

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok((config, image_only)) => boot(&config, image_only),
        Err(message) => {
            eprintln!("pagekeeper-boot: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<(RunConfig, bool), String> {
    let mut config = RunConfig::new("");
    config.timeout = None;
    let mut kernel = None;
    let mut image_only = false;
    let (mut memory_set, mut swap_set, mut standard) = (false, false, false);
    while let Some(arg) = args.next() {
        memory_set |= arg == "--memory";
        swap_set |= arg == "--swap";
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--bios" => config.firmware = Firmware::Bios,
            "--memory" => config.memory_mib = number(&value("--memory")?)?,
            "--timeout" => config.timeout = Some(Duration::from_secs(number(&value("--timeout")?)?)),
            "--disk" => config.disks.push(value("--disk")?.into()),
            "--swap" => config.swap_mib = number(&value("--swap")?)?,
            "--swap-bps" => config.swap_bytes_per_second = Some(number(&value("--swap-bps")?)?),
            "--setting" => {
                let setting = value("--setting")?;
                let (name, text) =
                    setting.split_once('=').ok_or(format!("--setting {setting}: NAME=VALUE"))?;
                config.settings.push((name.into(), text.into()));
            }
            "--files" => config.files = Some(value("--files")?.into()),
            "--standard-files" => standard = true,
            "--gdb" => config.gdb = true,
            "--window" => config.window = true,
            "--icount" => config.icount = true,
            "--image-only" => image_only = true,
            "-h" | "--help" => return Err("help".into()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            path if kernel.is_none() => kernel = Some(path.to_string()),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    // Before the kernel build: a run the firmware cannot start is refused now.
    config.check().map_err(|e| e.to_string())?;
    config.kernel = match kernel {
        Some(path) => path.into(),
        None => {
            // `cargo run`: what `make run` boots, with its defaults.
            config.swap_mib = if swap_set { config.swap_mib } else { 256 };
            config.memory_mib = if memory_set { config.memory_mib } else { 128 };
            standard |= config.files.is_none();
            // As `make run` GRAPHICS=auto: a window when there is a display.
            let graphics = std::env::var("GRAPHICS").unwrap_or_default();
            config.window |= graphics == "1" || (graphics != "0" && std::env::var_os("DISPLAY").is_some());
            pagekeeper_boot::build_demo_kernel(project_root()).map_err(|e| e.to_string())?
        }
    };
    // After the kernel build, which builds the programs this disk holds.
    if standard {
        config.files = Some(standard_files()?);
    }
    Ok((config, image_only))
}

fn project_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("boot/ has a parent")
}

fn standard_files() -> Result<std::path::PathBuf, String> {
    pagekeeper_boot::standard_files(project_root()).map_err(|e| e.to_string())
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn boot(config: &RunConfig, image_only: bool) -> ExitCode {
    if image_only {
        return match pagekeeper_boot::disk_image(&config.kernel, config.firmware) {
            Ok(path) => {
                println!("{}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    match run_interactive(config) {
        Ok(QemuExit::Success) => ExitCode::SUCCESS,
        Ok(exit) => fail(&exit.to_string()),
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("pagekeeper-boot: {message}");
    ExitCode::FAILURE
}
