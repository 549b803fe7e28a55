//! A QEMU run driven from the host: the guest's serial port on pipes (type
//! into it, wait for what it prints) and QEMU's monitor on a Unix socket
//! (screendumps). The shell and picture tests use it.

use crate::{qemu_command, RunConfig, RunDisks};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running guest. Dropping it kills QEMU.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    serial: Arc<Mutex<Vec<u8>>>,
    /// How much of `serial` earlier waits consumed.
    read_to: usize,
    monitor: PathBuf,
    _disks: RunDisks,
}

impl Session {
    /// Boots `config` with a monitor socket and the serial port on pipes.
    pub fn start(config: &RunConfig) -> io::Result<Session> {
        config.check()?;
        let image = crate::disk_image(&config.kernel, config.firmware)?;
        let disks = RunDisks::for_config(config)?;
        static SESSIONS: AtomicU32 = AtomicU32::new(0);
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let monitor =
            std::env::temp_dir().join(format!("pagekeeper-monitor-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&monitor);
        let mut cmd: Command = qemu_command(config, &image, &disks);
        cmd.arg("-monitor").arg(format!("unix:{},server=on,wait=off", monitor.display()));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| io::Error::other(format!("starting QEMU: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let serial = Arc::new(Mutex::new(Vec::new()));
        // Read to the end for the session's whole life; its end needs no signal.
        let _ = crate::collect(child.stdout.take().expect("piped stdout"), false, serial.clone());
        Ok(Session { child, stdin, serial, read_to: 0, monitor, _disks: disks })
    }

    /// Everything the guest printed so far.
    pub fn serial(&self) -> String {
        crate::text(&self.serial)
    }

    /// Types `bytes` into the guest's serial port, a few at a time (a
    /// terminal's pace: the UART holds 16).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        for chunk in bytes.chunks(8) {
            self.stdin.write_all(chunk)?;
            self.stdin.flush()?;
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Waits until the output after the previous wait contains `marker`;
    /// returns that output up to and including the marker.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let text = {
                let bytes = self.serial.lock().expect("reader");
                String::from_utf8_lossy(&bytes[self.read_to.min(bytes.len())..]).into_owned()
            };
            if let Some(at) = text.find(marker) {
                let upto = at + marker.len();
                self.read_to += text[..upto].len();
                return Ok(text[..upto].to_string());
            }
            if start.elapsed() > timeout || self.child.try_wait().ok().flatten().is_some() {
                return Err(format!(
                    "no {marker:?} within {timeout:?}; output since the last answer:\n{text}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one monitor command; returns what the monitor answered.
    pub fn monitor(&mut self, command: &str) -> io::Result<String> {
        let mut stream = connect(&self.monitor)?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut answer = Vec::new();
        read_until_prompt(&mut stream, &mut answer);
        answer.clear();
        stream.write_all(format!("{command}\n").as_bytes())?;
        read_until_prompt(&mut stream, &mut answer);
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    /// Saves the guest's screen to `path` (PPM, or PNG if the path ends in
    /// .png) through the monitor's `screendump`.
    pub fn screendump(&mut self, path: &Path) -> io::Result<()> {
        let _ = std::fs::remove_file(path);
        let format = if path.extension().is_some_and(|e| e == "png") { " -f png" } else { "" };
        let answer = self.monitor(&format!("screendump {}{format}", path.display()))?;
        let start = Instant::now();
        while !path.exists() || std::fs::metadata(path)?.len() == 0 {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(io::Error::other(format!("screendump wrote nothing: {answer}")));
            }
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(200)); // the file is written whole by then
        Ok(())
    }
}

fn connect(path: &Path) -> io::Result<UnixStream> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => return Ok(stream),
            Err(e) if start.elapsed() > Duration::from_secs(10) => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Reads until the monitor's `(qemu) ` prompt or a quiet half second.
fn read_until_prompt(stream: &mut UnixStream, into: &mut Vec<u8>) {
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(into).ends_with("(qemu) ") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => into.extend_from_slice(&buf[..n]),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.monitor);
    }
}
