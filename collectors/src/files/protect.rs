//! The agent's own data (its data directory, its private key) that no collector may read,
//! wherever a pattern, a symlink, an include or a home directory leads.
//!
//! Guarantees: the check is made on the *opened* descriptor, so a symlink swapped between a
//! check and the open cannot get around it: its real path is read back from
//! `/proc/self/fd/<n>` (or, without `/proc`, the canonical path of the name opened, accepted
//! only when it is the same device and inode as the descriptor) and refused when it lies inside
//! a protected path, compared after resolving symlinks on both sides. A protected path that
//! does not exist yet is resolved through its deepest existing ancestor. A protected path that
//! is a file is also recognised by device and inode, so a second hard link to the key is
//! refused too. When the real path cannot be established, the file is refused.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

/// The protected paths of one run, resolved once when the run starts.
#[derive(Debug, Default, Clone)]
pub(crate) struct Protected {
    /// Each protected path as given (made absolute) and as resolved, without duplicates.
    roots: Vec<PathBuf>,
    /// (device, inode) of the protected paths that are files.
    inodes: Vec<(u64, u64)>,
}

impl Protected {
    /// Resolve `paths` (the context's `protected_paths`); paths that do not exist are kept.
    pub(crate) fn new(paths: &[PathBuf]) -> Protected {
        let mut protected = Protected::default();
        for path in paths {
            let Some(absolute) = std::path::absolute(path).ok().map(|p| lexical(&p)) else {
                continue;
            };
            let resolved = resolve_existing(&absolute);
            for root in [absolute, resolved] {
                if !protected.roots.contains(&root) {
                    protected.roots.push(root);
                }
            }
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.is_file() {
                    protected.inodes.push((meta.dev(), meta.ino()));
                }
            }
        }
        protected
    }

    /// Whether `file`, opened from `path`, with metadata `meta` (from `fstat`), must not be read.
    pub(crate) fn refuses(&self, file: &File, meta: &Metadata, path: &Path) -> bool {
        if self.roots.is_empty() && self.inodes.is_empty() {
            return false;
        }
        if self.inodes.contains(&(meta.dev(), meta.ino())) {
            return true;
        }
        match real_path(file, meta, path) {
            Some(real) => self.roots.iter().any(|root| real.starts_with(root)),
            None => true,
        }
    }
}

/// Where the open descriptor `file` really is.
fn real_path(file: &File, meta: &Metadata, path: &Path) -> Option<PathBuf> {
    let link = Path::new("/proc/self/fd").join(file.as_raw_fd().to_string());
    if let Ok(target) = std::fs::read_link(&link) {
        if target.is_absolute() {
            // A file deleted since it was opened reads as "<path> (deleted)".
            let bytes = target.as_os_str().as_bytes();
            let bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
            return Some(PathBuf::from(OsStr::from_bytes(bytes)));
        }
    }
    // No /proc: the canonical path of the name, if it still leads to the same file.
    let canonical = std::fs::canonicalize(path).ok()?;
    let now = std::fs::metadata(&canonical).ok()?;
    ((now.dev(), now.ino()) == (meta.dev(), meta.ino())).then_some(canonical)
}

/// `path` without `.` and with `..` applied, without looking at the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The canonical form of an absolute `path`, resolving its deepest existing ancestor and
/// appending the rest as is.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(canonical) = std::fs::canonicalize(at) {
            let mut resolved = canonical;
            resolved.extend(rest.iter().rev());
            return resolved;
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_paths_are_resolved_even_before_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("data")).unwrap();
        std::os::unix::fs::symlink(real.join("data"), real.join("alias")).unwrap();
        let protected = Protected::new(&[real.join("alias/keys/./x/../host.key")]);
        assert!(protected.roots.contains(&real.join("data/keys/host.key")));
        assert!(protected.roots.contains(&real.join("alias/keys/host.key")));
    }

    #[test]
    fn the_descriptor_decides_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("data")).unwrap();
        std::fs::write(real.join("data/secret"), "s").unwrap();
        std::fs::write(real.join("plain"), "p").unwrap();
        std::os::unix::fs::symlink(real.join("data/secret"), real.join("link")).unwrap();
        let protected = Protected::new(&[real.join("data")]);
        let check = |name: &str| {
            let file = File::open(real.join(name)).unwrap();
            let meta = file.metadata().unwrap();
            protected.refuses(&file, &meta, &real.join(name))
        };
        assert!(check("link"));
        assert!(check("data/secret"));
        assert!(!check("plain"));
        assert!(!Protected::default().refuses(
            &File::open(real.join("link")).unwrap(),
            &std::fs::metadata(real.join("link")).unwrap(),
            &real.join("link")
        ));
    }

    #[test]
    fn a_hard_link_to_a_protected_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::write(real.join("host.key"), "k").unwrap();
        std::fs::hard_link(real.join("host.key"), real.join("copy")).unwrap();
        let protected = Protected::new(&[real.join("host.key")]);
        let file = File::open(real.join("copy")).unwrap();
        let meta = file.metadata().unwrap();
        assert!(protected.refuses(&file, &meta, &real.join("copy")));
    }
}
