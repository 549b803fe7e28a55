//! Disk images and QEMU for Pagekeeper kernels.
//!
//! This crate is the one place that knows how a kernel ELF becomes a bootable
//! disk image (the `bootloader` crate, UEFI or BIOS) and which flags QEMU gets.
//! The `pagekeeper-boot` binary (`make run`, `make gdb`) and the host
//! integration tests (`tests/`) both go through [`run`].
//!
//! A kernel reports its result by writing to the `isa-debug-exit` port; QEMU
//! then exits with `(value << 1) | 1`. [`QemuExit`] is the decoded form.

pub mod files;
pub mod session;

pub use files::standard_files;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Values a kernel writes to the debug-exit port; keep in sync with
/// `kernel/src/arch/qemu.rs`.
pub const EXIT_SUCCESS: i32 = 0x10;
pub const EXIT_FAILURE: i32 = 0x11;

/// The I/O port of QEMU's `isa-debug-exit` device.
const DEBUG_EXIT_PORT: &str = "0xf4";

/// Where Debian's `ovmf` package puts the UEFI firmware.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    Uefi,
    Bios,
}

impl Firmware {
    fn image_suffix(self) -> &'static str {
        match self {
            Firmware::Uefi => "uefi.img",
            Firmware::Bios => "bios.img",
        }
    }

    /// The least memory (MiB) with which this firmware and the bootloader
    /// reach the kernel: below it they fail before the kernel runs, and
    /// what QEMU shows is the firmware's or the bootloader's own complaint
    /// followed by a hang. Measured with the debug demo kernel (2026-12-07,
    /// docs/boot-and-tests.md), with a MiB to spare: UEFI booted at 47 MiB
    /// and not at 46 (OVMF, then the bootloader's allocation for the
    /// kernel file, `OUT_OF_RESOURCES`); BIOS at 23 and not at 22 (the
    /// bootloader could not map physical memory).
    pub const fn minimum_memory_mib(self) -> u32 {
        match self {
            Firmware::Uefi => 48,
            Firmware::Bios => 24,
        }
    }
}

/// Everything that varies between QEMU runs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub kernel: PathBuf,
    pub firmware: Firmware,
    pub memory_mib: u32,
    /// Kill QEMU after this long; `None` runs until the guest exits.
    pub timeout: Option<Duration>,
    /// Extra raw disk images, attached in order after the boot disk.
    pub disks: Vec<PathBuf>,
    /// MiB of swap: a fresh swap disk (header written, like `mkswap`) is
    /// made for the run, attached as virtio-blk, and deleted after. 0: none.
    pub swap_mib: u32,
    /// Throttles the swap disk to this many bytes per second (QEMU's
    /// `throttling.bps-total`): a slow disk, or at a few KiB/s one that
    /// stops answering within the kernel's request timeout.
    pub swap_bytes_per_second: Option<u64>,
    /// Named strings for the kernel (QEMU's fw_cfg, `-fw_cfg
    /// name=NAME,string=VALUE`; NAME starts with `opt/`): the kernel reads
    /// them with `arch::fw_cfg::setting`, in place of a command line.
    pub settings: Vec<(String, String)>,
    /// A directory to pack into a read-only file disk (virtio-blk, after
    /// the swap disk): the kernel maps files and starts programs from it.
    pub files: Option<PathBuf>,
    /// Stop at the first instruction and wait for gdb on localhost:1234.
    pub gdb: bool,
    /// Tie the guest clock to executed instructions (repeatable cost counts,
    /// much slower boot): for benchmarks only.
    pub icount: bool,
    /// Copy the serial console to our stdout as it arrives.
    pub echo: bool,
    /// Show the guest's screen in a window (GTK or SDL front end) instead
    /// of running headless.
    pub window: bool,
    /// Stop QEMU this long after the serial output first contains the
    /// marker, for kernels that stay up instead of exiting ([`QemuExit::Stopped`]).
    pub stop_after: Option<(String, Duration)>,
}

impl RunConfig {
    /// Refuses a run that cannot reach the kernel, with the reason, before
    /// anything is built or started: too little memory for the firmware.
    pub fn check(&self) -> io::Result<()> {
        if let Some((name, _)) =
            self.settings.iter().find(|(name, _)| !name.starts_with("opt/") || name.contains(','))
        {
            let message =
                format!("setting {name:?}: QEMU takes names that start with opt/ and have no comma");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let least = self.firmware.minimum_memory_mib();
        if self.memory_mib >= least {
            return Ok(());
        }
        let (name, other) = match self.firmware {
            Firmware::Uefi => ("UEFI", " (BIOS boots with 24 MiB: BOOT=bios, or --bios)"),
            Firmware::Bios => ("BIOS", ""),
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} MiB of memory is too little: the {name} firmware and the bootloader need {least} MiB before the \
                 kernel runs{other}",
                self.memory_mib
            ),
        ))
    }

    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        RunConfig {
            kernel: kernel.into(),
            firmware: Firmware::Uefi,
            memory_mib: 128,
            timeout: Some(Duration::from_secs(300)),
            disks: Vec::new(),
            swap_mib: 0,
            swap_bytes_per_second: None,
            settings: Vec::new(),
            files: None,
            gdb: false,
            icount: false,
            echo: false,
            window: false,
            stop_after: None,
        }
    }
}

/// How a QEMU run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QemuExit {
    /// The kernel wrote [`EXIT_SUCCESS`] to the debug-exit port.
    Success,
    /// The kernel wrote [`EXIT_FAILURE`] (panic, failed test).
    Failure,
    /// The kernel wrote some other value, or QEMU exited on its own (a triple
    /// fault with `-no-reboot` exits with status 0).
    Other(Option<i32>),
    /// The run was killed after the configured timeout.
    Timeout,
    /// Still running when stopped on purpose (`RunConfig::stop_after`).
    Stopped,
}

impl QemuExit {
    fn from_status(status: ExitStatus) -> Self {
        match status.code() {
            Some(code) if code == (EXIT_SUCCESS << 1) | 1 => QemuExit::Success,
            Some(code) if code == (EXIT_FAILURE << 1) | 1 => QemuExit::Failure,
            code => QemuExit::Other(code),
        }
    }
}

impl fmt::Display for QemuExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QemuExit::Success => write!(f, "kernel reported success"),
            QemuExit::Failure => write!(f, "kernel reported failure"),
            QemuExit::Other(Some(c)) => write!(f, "QEMU exited with status {c}"),
            QemuExit::Other(None) => write!(f, "QEMU was killed by a signal"),
            QemuExit::Timeout => write!(f, "timed out"),
            QemuExit::Stopped => write!(f, "still running when stopped"),
        }
    }
}

/// The result of a run: how it ended and everything the serial console said.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub exit: QemuExit,
    pub serial: String,
    pub elapsed: Duration,
}

/// Where the project's toolchain set-up puts `llvm-objcopy`
/// (scripts/setup-toolchain.sh), then the usual names on `PATH`.
const OBJCOPY_CANDIDATES: [&str; 3] =
    ["/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objcopy", "llvm-objcopy", "rust-objcopy"];

/// A copy of `kernel` without debug sections, next to it. Debug info makes a
/// kernel ELF 20x larger, and the UEFI loader reads the whole file into
/// memory, which fails on small machines (64 MiB). gdb uses the original.
fn stripped(kernel: &Path) -> io::Result<PathBuf> {
    let out = kernel.with_extension("stripped");
    if is_newer(&out, kernel) {
        return Ok(out);
    }
    for objcopy in OBJCOPY_CANDIDATES {
        let status =
            Command::new(objcopy).arg("--strip-debug").arg(kernel).arg(&out).stderr(Stdio::null()).status();
        if status.is_ok_and(|s| s.success()) {
            return Ok(out);
        }
    }
    Err(io::Error::other("llvm-objcopy not found: run scripts/setup-toolchain.sh"))
}

/// Builds (or rebuilds, when the kernel is newer) the disk image for `kernel`,
/// next to it, and returns its path. The image holds the kernel without its
/// debug sections.
pub fn disk_image(kernel: &Path, firmware: Firmware) -> io::Result<PathBuf> {
    // Tests boot the same kernel from several threads: build each image once.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let image = kernel.with_extension(firmware.image_suffix());
    if is_newer(&image, kernel) {
        return Ok(image);
    }
    let kernel = &stripped(kernel)?;
    // Written under another name and renamed, so a reader never sees half an image.
    let partial = image.with_extension(format!("partial-{}", std::process::id()));
    // The bootloader logs every step at Trace by default; keep its warnings.
    let mut config = bootloader::BootConfig::default();
    config.log_level = bootloader_boot_config::LevelFilter::Warn;
    config.frame_buffer_logging = false;
    let result = match firmware {
        Firmware::Uefi => {
            bootloader::UefiBoot::new(kernel).set_boot_config(&config).create_disk_image(&partial)
        }
        Firmware::Bios => {
            bootloader::BiosBoot::new(kernel).set_boot_config(&config).create_disk_image(&partial)
        }
    };
    result.map_err(|e| io::Error::other(format!("disk image for {}: {e:#}", kernel.display())))?;
    std::fs::rename(&partial, &image)?;
    Ok(image)
}

fn is_newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(ma), Some(mb)) if ma >= mb)
}

/// A disk image made for one run, in the temporary directory, deleted when
/// dropped: the swap disk ([`TempDisk::swap`]) and the file disk
/// ([`TempDisk::files`]).
pub struct TempDisk {
    pub path: PathBuf,
}

impl TempDisk {
    /// A fresh name: `pagekeeper-KIND-PID-N.EXT` (runs on several threads
    /// and in several processes at once never share one).
    fn named(kind: &str, ext: &str) -> TempDisk {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("pagekeeper-{kind}-{}-{n}.{ext}", std::process::id());
        TempDisk { path: std::env::temp_dir().join(name) }
    }

    /// A swap disk: a sparse file of `mib` MiB with a swap header
    /// (`mm::swap::header`).
    pub fn swap(mib: u32) -> io::Result<TempDisk> {
        let disk = TempDisk::named("swap", "img");
        let bytes = u64::from(mib) << 20;
        let mut file = std::fs::File::create(&disk.path)?;
        file.write_all(&mm::swap::SwapHeader::for_disk(bytes).encode())?;
        file.set_len(bytes)?;
        Ok(disk)
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The disks a run makes for itself, deleted after it.
#[derive(Default)]
pub struct RunDisks {
    pub swap: Option<TempDisk>,
    pub files: Option<TempDisk>,
}

impl RunDisks {
    pub(crate) fn for_config(config: &RunConfig) -> io::Result<RunDisks> {
        Ok(RunDisks {
            swap: (config.swap_mib > 0).then(|| TempDisk::swap(config.swap_mib)).transpose()?,
            files: config.files.as_deref().map(TempDisk::files).transpose()?,
        })
    }
}

/// The QEMU command line for `config`, booting `image`, with `disks` as
/// its virtio-blk disks (swap first, then files, read-only).
pub fn qemu_command(config: &RunConfig, image: &Path, disks: &RunDisks) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    // KVM does not work on these machines (nested virtualisation fails), so
    // always use the TCG software emulator.
    cmd.args(["-accel", "tcg", "-cpu", "qemu64", "-no-reboot"]);
    cmd.args(["-m", &format!("{}M", config.memory_mib)]);
    cmd.args(["-serial", "stdio", "-display", display(config.window)]);
    cmd.args(["-device", &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT},iosize=0x04")]);
    if config.firmware == Firmware::Uefi {
        cmd.args(["-bios", OVMF_CODE]);
    }
    // snapshot=on: guest writes go to a throwaway overlay, so the image is
    // only read and several runs can boot it at once.
    cmd.arg("-drive").arg(format!("format=raw,snapshot=on,file={}", image.display()));
    for disk in &config.disks {
        cmd.arg("-drive").arg(format!("format=raw,if=ide,file={}", disk.display()));
    }
    if let Some(swap) = &disks.swap {
        let throttle = config.swap_bytes_per_second.map(|bps| format!(",throttling.bps-total={bps}"));
        cmd.arg("-drive").arg(format!(
            "if=none,id=swap0,format=raw,file={}{}",
            swap.path.display(),
            throttle.unwrap_or_default()
        ));
        cmd.args(["-device", "virtio-blk-pci,drive=swap0"]);
    }
    for (name, value) in &config.settings {
        // QEMU's option syntax: a comma inside a value is written twice.
        let value = value.replace(',', ",,");
        cmd.arg("-fw_cfg").arg(format!("name={name},string={value}"));
    }
    if let Some(files) = &disks.files {
        cmd.arg("-drive")
            .arg(format!("if=none,id=files0,format=raw,readonly=on,file={}", files.path.display()));
        cmd.args(["-device", "virtio-blk-pci,drive=files0"]);
    }
    if config.icount {
        cmd.args(["-icount", "shift=0,sleep=off"]);
    }
    if config.gdb {
        cmd.args(["-s", "-S"]);
    }
    // A QEMU monitor on a Unix socket, for looking into a hung boot
    // (`info registers`, then the kernel's symbols: docs/tools.md).
    if let Some(socket) = std::env::var_os("PK_QEMU_MONITOR") {
        let mut spec = std::ffi::OsString::from("unix:");
        spec.push(socket);
        spec.push(",server,nowait");
        cmd.arg("-monitor").arg(spec);
    }
    cmd
}

/// QEMU's `-display` for a run: a window when asked for and this QEMU has
/// a front end that can open one, else none (headless; the screen is still
/// there for screendumps).
fn display(window: bool) -> &'static str {
    if !window {
        return "none";
    }
    let help = Command::new("qemu-system-x86_64").args(["-display", "help"]).output();
    let listed = help.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    match ["gtk", "sdl"].into_iter().find(|ui| listed.lines().any(|l| l.trim() == *ui)) {
        Some(ui) => ui,
        None => {
            eprintln!("pagekeeper-boot: this QEMU has no window front end (Debian: qemu-system-gui); running headless");
            "none"
        }
    }
}

/// Builds the image, boots it, waits for the guest to exit or the timeout,
/// and returns the serial output and how it ended.
pub fn run(config: &RunConfig) -> io::Result<RunOutcome> {
    config.check()?;
    let image = disk_image(&config.kernel, config.firmware)?;
    let disks = RunDisks::for_config(config)?;
    let mut cmd = qemu_command(config, &image, &disks);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| io::Error::other(format!("starting QEMU: {e}")))?;
    let serial = Arc::new(Mutex::new(Vec::new()));
    let serial_done = collect(child.stdout.take().expect("piped stdout"), config.echo, serial.clone());
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let stderr_done = collect(child.stderr.take().expect("piped stderr"), false, stderr.clone());
    let stop =
        config.stop_after.as_ref().map(|(marker, delay)| StopRule { marker, delay: *delay, serial: &serial });
    let exit = wait(&mut child, config.timeout, stop)?;
    let _ = (serial_done.recv(), stderr_done.recv());
    let mut serial = text(&serial);
    let stderr = text(&stderr);
    if !stderr.trim().is_empty() {
        serial.push_str("\n[qemu stderr]\n");
        serial.push_str(&stderr);
    }
    Ok(RunOutcome { exit, serial, elapsed: start.elapsed() })
}

pub(crate) fn text(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().expect("reader thread panicked")).into_owned()
}

/// Reads a pipe to its end on a thread, appending to `bytes`; the channel
/// says when the pipe is closed.
pub(crate) fn collect(
    mut pipe: impl Read + Send + 'static,
    echo: bool,
    bytes: Arc<Mutex<Vec<u8>>>,
) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if echo {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
            bytes.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(());
    });
    rx
}

struct StopRule<'a> {
    marker: &'a str,
    delay: Duration,
    serial: &'a Mutex<Vec<u8>>,
}

fn wait(child: &mut Child, timeout: Option<Duration>, stop: Option<StopRule>) -> io::Result<QemuExit> {
    let start = Instant::now();
    let mut marker_seen: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(QemuExit::from_status(status));
        }
        if let Some(rule) = &stop {
            if marker_seen.is_none() && text(rule.serial).contains(rule.marker) {
                marker_seen = Some(Instant::now());
            }
            if marker_seen.is_some_and(|seen| seen.elapsed() > rule.delay) {
                return kill(child, QemuExit::Stopped);
            }
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            return kill(child, QemuExit::Timeout);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn kill(child: &mut Child, exit: QemuExit) -> io::Result<QemuExit> {
    child.kill()?;
    child.wait()?;
    Ok(exit)
}

/// Builds the demo kernel (`cargo build` in `root`/kernel, as `make run`
/// does) and returns its ELF. The kernel's own cargo configuration
/// (kernel/.cargo/config.toml) holds the target and build-std settings;
/// cargo reads its `[unstable]` table only with `RUSTC_BOOTSTRAP=1`.
pub fn build_demo_kernel(root: &Path) -> io::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--bins"])
        .current_dir(root.join("kernel"))
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .map_err(|e| io::Error::other(format!("running cargo for the kernel: {e}")))?;
    if !status.success() {
        return Err(io::Error::other("the kernel build failed (is the toolchain set up? `make setup`)"));
    }
    Ok(root.join("target/kernel/x86_64-unknown-none/debug/pagekeeper"))
}

/// Runs QEMU with the console attached to this terminal (for `make run` and
/// `make gdb`): the guest's serial port is our stdin/stdout.
pub fn run_interactive(config: &RunConfig) -> io::Result<QemuExit> {
    config.check()?;
    let image = disk_image(&config.kernel, config.firmware)?;
    let disks = RunDisks::for_config(config)?;
    let mut cmd = qemu_command(config, &image, &disks);
    let mut child = cmd.spawn().map_err(|e| io::Error::other(format!("starting QEMU: {e}")))?;
    wait(&mut child, config.timeout, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_below_the_firmwares_floor_is_refused_with_the_reason() {
        let mut config = RunConfig::new("kernel");
        config.memory_mib = 32;
        let error = config.check().expect_err("32 MiB under UEFI");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let message = error.to_string();
        assert!(
            message.contains("32 MiB") && message.contains("UEFI") && message.contains("48 MiB"),
            "{message}"
        );
        config.firmware = Firmware::Bios;
        assert!(config.check().is_ok(), "BIOS boots with 32 MiB");
        config.memory_mib = 23;
        assert!(config.check().unwrap_err().to_string().contains("24 MiB"));
        config.memory_mib = 24;
        assert!(config.check().is_ok());
        (config.firmware, config.memory_mib) = (Firmware::Uefi, 48);
        assert!(config.check().is_ok(), "the suites' smallest boot");
    }

    #[test]
    fn a_setting_qemu_would_not_take_is_refused() {
        let mut config = RunConfig::new("kernel");
        config.settings.push(("opt/pagekeeper/mode".into(), "a, b".into()));
        assert!(config.check().is_ok(), "a comma in a value is escaped");
        config.settings.push(("pagekeeper/mode".into(), "x".into()));
        let error = config.check().expect_err("not under opt/");
        assert!(error.to_string().contains("opt/"), "{error}");
    }
}
