//! Byte ranges of a log file: the head hash that recognises a file, the end of its last
//! complete line, and copying a range into the snapshot content.
//!
//! Guarantees: positional reads only (`pread`), in 64 KiB blocks, so no range is ever held in
//! memory whole; a file that shrinks while it is read ends the range early instead of failing.

use crate::ContentWriter;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// A file is recognised by the hash of its first bytes, up to this many.
pub(super) const HEAD_LEN: u64 = 4096;
const BLOCK: usize = 64 * 1024;

/// Hex SHA-256 of the first `min(HEAD_LEN, len)` bytes of `file`; fewer if the file is shorter.
pub(super) fn head_sha256(file: &File, len: u64) -> io::Result<String> {
    let mut head = vec![0u8; usize::try_from(len.min(HEAD_LEN)).unwrap_or(0)];
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read_at(&mut head[filled..], filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok(hex::encode(Sha256::digest(&head)))
}

/// The offset just after the last `\n` in `[start, end)`, if there is one.
pub(super) fn last_line_end(file: &File, start: u64, end: u64) -> io::Result<Option<u64>> {
    let mut block = vec![0u8; BLOCK];
    let mut upto = end;
    while upto > start {
        let from = upto.saturating_sub(BLOCK as u64).max(start);
        let want = usize::try_from(upto - from).unwrap_or(BLOCK);
        let n = read_full_at(file, &mut block[..want], from)?;
        if let Some(pos) = block[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(Some(from + pos as u64 + 1));
        }
        upto = from;
    }
    Ok(None)
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a copy did: bytes copied and lines they hold (a final partial line counts as one).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Copied {
    pub(super) bytes: u64,
    pub(super) lines: u64,
}

/// Where a copy failed.
#[derive(Debug)]
pub(super) enum CopyError {
    Read(io::Error),
    Write(io::Error),
    Deadline(crate::CollectError),
}

/// Copy `[start, end)` of `file` to `writer`.
pub(super) fn copy_range(
    file: &File,
    start: u64,
    end: u64,
    writer: &mut ContentWriter,
    deadline: Option<std::time::Instant>,
) -> Result<Copied, CopyError> {
    let mut block = vec![0u8; BLOCK];
    let mut at = start;
    let mut copied = Copied::default();
    let mut last = b'\n';
    while at < end {
        crate::check_deadline(deadline).map_err(CopyError::Deadline)?;
        let want = usize::try_from(end - at).unwrap_or(BLOCK).min(BLOCK);
        let n = read_full_at(file, &mut block[..want], at).map_err(CopyError::Read)?;
        if n == 0 {
            break; // the file shrank under us
        }
        let chunk = &block[..n];
        writer.write_all(chunk).map_err(CopyError::Write)?;
        copied.lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        last = chunk[n - 1];
        at += n as u64;
        copied.bytes += n as u64;
    }
    if copied.bytes > 0 && last != b'\n' {
        copied.lines += 1;
    }
    Ok(copied)
}
