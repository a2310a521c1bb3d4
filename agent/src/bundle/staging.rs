//! The work files an export leaves beside its output while it writes: the staging directory
//! (renamed to the output when it is a directory bundle) and, for a `.tar.gz`, the archive
//! being packed. Both are named `.evidence-bundle-…` and held under an advisory `flock` for as
//! long as their export runs; the kernel drops the lock when the process dies, however it
//! dies. So the next export into the same directory can tell the leftovers of a killed export
//! (no lock holder) from the work of one still running (locked), and removes only the former.

use std::fs::{self, File};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Name prefix of every staging directory and partial archive.
pub const PREFIX: &str = ".evidence-bundle-";

/// Take the advisory lock of `file` (a staging directory or partial archive, opened by its
/// export) without waiting; the lock lasts as long as the descriptor.
pub fn lock(file: &File) -> io::Result<()> {
    // SAFETY: flock on a descriptor the caller owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Open `path` (a directory or a file) and take its lock; the returned handle holds it.
pub fn hold(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    lock(&file)?;
    Ok(file)
}

/// Remove the `.evidence-bundle-*` leftovers in `dir` whose export is gone (nobody holds their
/// lock); returns what was removed. Entries that cannot be opened, locked or removed are left
/// as they are: they are someone's work or not ours to judge.
pub fn remove_stale(dir: &Path) -> Vec<PathBuf> {
    let Ok(listing) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in listing.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        // Never follow a link: only our own directories and files are candidates.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !(meta.is_dir() || meta.is_file()) {
            continue;
        }
        // Locked: an export is still writing it. Acquired: its export died; the lock is
        // held while it is removed, so no other export judges it meanwhile.
        let Ok(_held) = hold(&path) else {
            continue;
        };
        let gone = if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}
