//! Reading host files safely, for every kind that reads them (`files`, `linux_accounts`,
//! `log_file`), and the bounded list of warnings a run reports in its details.
//!
//! Guarantees: a path is only opened when `stat` (following symlinks) says it is a regular file,
//! and the opened descriptor is checked again with `fstat`, so a FIFO, socket or device swapped
//! in is never read (the open is non-blocking, so a FIFO cannot hang the run either); reads never
//! take more than the caller's limit plus one byte, so a file that grows, or a pseudo-file whose
//! size is not known, cannot exhaust memory; a symlink loop is reported as such (`ELOOP`), never
//! followed forever; a file inside the agent's protected data is never read, whatever path led
//! to it (see [`Protected`]). Errors carry no file contents.

use crate::files::protect::Protected;
use crate::CollectError;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a host file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// `ENOENT` / `ENOTDIR`: nothing there (or a dangling symlink).
    NotFound,
    /// `ELOOP`: a symlink loop.
    Loop,
    /// It exists but is not a regular file; the text says what it is ("a directory").
    NotRegular(&'static str),
    /// Over the caller's size limit; `size` is the size seen (at least `limit + 1`).
    TooLarge { size: u64, limit: u64 },
    /// Any other failure, such as permission denied.
    Io { op: &'static str, source: io::Error },
    /// Inside the agent's protected data (its data directory or key).
    Protected,
}

impl ReadError {
    fn from_io(op: &'static str, source: io::Error) -> ReadError {
        match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => ReadError::NotFound,
            Some(libc::ELOOP) => ReadError::Loop,
            Some(libc::EISDIR) => ReadError::NotRegular("a directory"),
            _ => ReadError::Io { op, source },
        }
    }

    /// A short reason for a warning, e.g. "not found", "a symlink loop", "permission denied".
    pub(crate) fn reason(&self) -> String {
        match self {
            ReadError::NotFound => "not found".to_owned(),
            ReadError::Loop => "a symlink loop (too many levels of symbolic links)".to_owned(),
            ReadError::NotRegular(what) => format!("not a regular file but {what}"),
            ReadError::TooLarge { size, limit } => {
                format!("{size} bytes is over the limit of {limit} bytes")
            }
            ReadError::Io { op, source } => format!("cannot {op}: {source}"),
            ReadError::Protected => PROTECTED_REASON.to_owned(),
        }
    }

    /// The failed-run error for this problem at `path`.
    pub(crate) fn into_collect_error(self, path: &Path) -> CollectError {
        match self {
            ReadError::TooLarge { size, limit } => CollectError::TooLarge {
                path: path.to_path_buf(),
                size,
                limit,
            },
            ReadError::Io { op, source } => CollectError::io(op, path, source),
            other => CollectError::Other(format!("{}: {}", path.display(), other.reason())),
        }
    }
}

fn file_kind(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_block_device() || kind.is_char_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

/// The reason given for a file that is refused because it is the agent's own.
pub(crate) const PROTECTED_REASON: &str = "refused: inside the agent's protected data";

/// The metadata of `path` (following symlinks) if it is a regular file. Nothing is opened.
pub(crate) fn stat_regular(path: &Path) -> Result<Metadata, ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| ReadError::from_io("stat", e))?;
    match file_kind(&meta) {
        Some(what) => Err(ReadError::NotRegular(what)),
        None => Ok(meta),
    }
}

/// Open `path` (following symlinks) for reading if, and only if, it is a regular file outside
/// the `protected` paths (checked on the opened descriptor).
pub(crate) fn open_regular(
    path: &Path,
    protected: &Protected,
) -> Result<(File, Metadata), ReadError> {
    stat_regular(path)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ReadError::from_io("open", e))?;
    let meta = file.metadata().map_err(|e| ReadError::from_io("stat", e))?;
    if let Some(what) = file_kind(&meta) {
        return Err(ReadError::NotRegular(what));
    }
    if protected.refuses(&file, &meta, path) {
        return Err(ReadError::Protected);
    }
    Ok((file, meta))
}

/// Read the whole regular file at `path`, refusing anything over `limit` bytes and anything
/// inside the `protected` paths.
pub(crate) fn read_capped(
    path: &Path,
    limit: u64,
    protected: &Protected,
) -> Result<(Vec<u8>, Metadata), ReadError> {
    let (file, meta) = open_regular(path, protected)?;
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::from_io("read", e))?;
    let read = bytes.len() as u64;
    if read > limit {
        return Err(ReadError::TooLarge { size: read, limit });
    }
    Ok((bytes, meta))
}

/// Decode `bytes` as UTF-8, replacing invalid sequences and warning that `shown` was not UTF-8.
pub(crate) fn decode_lossy(bytes: Vec<u8>, shown: &str, warnings: &mut Warnings) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            warnings.push(format!(
                "{shown}: not valid UTF-8; invalid bytes were replaced by U+FFFD"
            ));
            String::from_utf8_lossy(err.as_bytes()).into_owned()
        }
    }
}

/// At most this many warnings are kept per run; the rest are counted.
const MAX_WARNINGS: usize = 100;

/// The warnings of one run (things skipped or unreadable), bounded so that a hostile input with
/// a million bad lines cannot bloat the signed statement.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    kept: Vec<String>,
    dropped: u64,
}

impl Warnings {
    pub(crate) fn push(&mut self, warning: impl Into<String>) {
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(warning.into());
        } else {
            self.dropped += 1;
        }
    }

    /// The warnings as a JSON array of strings, ending with a count of those left out.
    pub(crate) fn into_json(self) -> serde_json::Value {
        let mut list = self.kept;
        if self.dropped > 0 {
            list.push(format!("... and {} more warnings", self.dropped));
        }
        serde_json::Value::from(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo does not retain the pointer.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_capped(&fifo, 10, &Protected::default()),
            Err(ReadError::NotRegular("a FIFO"))
        ));
    }

    #[test]
    fn a_pseudo_file_without_a_size_is_still_capped() {
        // /proc files report size 0 but have content: the cap applies to what is read.
        let result = read_capped(Path::new("/proc/self/status"), 8, &Protected::default());
        assert!(matches!(
            result,
            Err(ReadError::TooLarge { size: 9, limit: 8 })
        ));
    }

    #[test]
    fn warnings_are_bounded_and_counted() {
        let mut warnings = Warnings::default();
        for i in 0..(MAX_WARNINGS + 5) {
            warnings.push(format!("w{i}"));
        }
        let json = warnings.into_json();
        let list = json.as_array().unwrap();
        assert_eq!(list.len(), MAX_WARNINGS + 1);
        assert_eq!(list[MAX_WARNINGS], "... and 5 more warnings");
    }
}
