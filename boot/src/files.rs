//! The file disk: a directory packed into a ustar archive, attached
//! read-only as a second virtio-blk disk. The kernel reads the archive's
//! index at boot (`mm::files::FileTable`) and maps files from it on demand
//! through its page cache.
//!
//! The archive is written by the `tar` crate, one ustar header per regular
//! file (path relative to the directory, '/'-separated, sorted, so file
//! ids are repeatable), read-only mode, no directories.

use super::TempDisk;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The test data file of [`standard_files`]: 32 MiB of self-checking
/// pages (`abi::pattern`).
pub const PATTERN_FILE: &str = "data/pages32";
pub const PATTERN_PAGES: u64 = 8192;

impl TempDisk {
    /// A file disk: every regular file under `dir` packed into a fresh
    /// archive.
    pub fn files(dir: &Path) -> io::Result<TempDisk> {
        let disk = TempDisk::named("files", "tar");
        let mut files = Vec::new();
        list(dir, dir, &mut files)?;
        files.sort();
        let mut builder = tar::Builder::new(BufWriter::new(File::create(&disk.path)?));
        for (name, source) in files {
            let mut header = tar::Header::new_ustar();
            header.set_path(&name)?;
            header.set_size(source.metadata()?.len());
            header.set_mode(0o444);
            header.set_cksum();
            builder.append(&header, File::open(&source)?)?;
        }
        builder.into_inner()?.flush()?;
        Ok(disk)
    }
}

/// (archive name, path) of every regular file under `dir`.
fn list(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list(root, &path, out)?;
        } else if path.is_file() {
            let relative = path.strip_prefix(root).expect("under root");
            let name = relative.to_str().ok_or_else(|| io::Error::other("a file name that is not UTF-8"))?;
            out.push((name.replace('\\', "/"), path));
        }
    }
    Ok(())
}

/// Makes `target/files` under the repository `root`: `bin/NAME` for every
/// user program (built by the kernel's build script into `target/user`),
/// and [`PATTERN_FILE`]. Returns its path.
pub fn standard_files(root: &Path) -> io::Result<PathBuf> {
    let dir = root.join("target/files");
    let (bin, data) = (dir.join("bin"), dir.join("data"));
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&data)?;
    let built = root.join("target/user/x86_64-unknown-none/release");
    for entry in std::fs::read_dir(root.join("user/src/bin"))? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if path.extension().is_some_and(|e| e == "rs") {
            let program = built.join(name);
            if !program.exists() {
                return Err(io::Error::other(format!(
                    "{} not built: build the kernel first",
                    program.display()
                )));
            }
            std::fs::copy(&program, bin.join(name))?;
        }
    }
    let pattern = dir.join(PATTERN_FILE);
    if pattern.metadata().map(|m| m.len()).ok() != Some(PATTERN_PAGES * abi::PAGE_SIZE) {
        let mut out = BufWriter::new(File::create(&pattern)?);
        let mut page = [0u8; abi::PAGE_SIZE as usize];
        for index in 0..PATTERN_PAGES {
            abi::pattern::fill(index, &mut page);
            out.write_all(&page)?;
        }
        out.flush()?;
    }
    Ok(dir)
}
