//! Child processes of the kinds that run programs (`command`, `journald`, `exec_plugin`): the
//! process group killed with the run, the stderr tail kept for the error message, and stdout
//! read line by line within a byte limit.
//!
//! One place for these so that every kind kills the same way (the whole group, `SIGKILL`,
//! whatever ends the run) and reports stderr the same way (redacted, one line, the end kept).

use crate::files::redact::Redactor;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

/// The search path when none is set.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The running program, whose whole process group is killed when this is dropped. The program
/// must have been started with `process_group(0)` (and `kill_on_drop(true)`).
pub(crate) struct Group {
    pub(crate) child: tokio::process::Child,
    /// The group's id (the program's pid), while it may still have members.
    pgid: Option<libc::pid_t>,
}

impl Group {
    pub(crate) fn new(child: tokio::process::Child) -> Group {
        // Never 0 or 1: killpg would signal the agent's own group, or init's.
        let pgid = child
            .id()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
            .filter(|pid| *pid > 1);
        Group { child, pgid }
    }

    /// `SIGKILL` to every process in the group.
    pub(crate) fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg takes plain integers and has no memory effects.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
    }

    /// Kill the group and reap the program, so that no zombie is left behind an error.
    pub(crate) async fn kill_and_reap(&mut self) {
        self.kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Runs before `child` is dropped (and killed by kill_on_drop). On a timeout or an error
        // the program is not reaped yet, so its pid, the group id, cannot be another's. When it
        // ended and was reaped, the id stays reserved while any member it left lives (those are
        // killed); with none left the kernel only hands the number out again after going round
        // all of pid_max, so the call finds no group (ESRCH).
        self.kill();
    }
}

/// Read `stderr` to its end, keeping only its last `keep` bytes. Returns them and the total
/// byte count. Read errors end the reading: stderr only ever serves the error message.
pub(crate) async fn read_tail<R: AsyncRead + Unpin>(mut stderr: R, keep: usize) -> (Vec<u8>, u64) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut tail = Vec::new();
    let mut total = 0u64;
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > keep {
            tail.drain(..tail.len() - keep);
        }
    }
    (tail, total)
}

/// The stderr tail as one line of at most `limit` bytes: redacted, lossy UTF-8, control
/// characters and line breaks shown as spaces. When it had to be cut, the word cut in two at
/// its start is left out (unless it is the only one). `tail` should hold about twice `limit`
/// bytes, so that a secret is redacted with the key before it even when the kept part starts
/// between the two.
pub(crate) fn stderr_text(redactor: &Redactor, tail: &[u8], limit: usize) -> String {
    let redacted = redactor.redact_command_text(tail);
    let text = String::from_utf8_lossy(&redacted);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = match text.len().checked_sub(limit) {
        Some(excess) if excess > 0 => {
            let mut cut = excess;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            let kept = &text[cut..];
            match kept.split_once(' ') {
                Some((_, rest)) if !rest.is_empty() => rest.to_owned(),
                _ => kept.to_owned(),
            }
        }
        _ => text,
    };
    if text.is_empty() {
        "(empty)".to_owned()
    } else {
        text
    }
}

/// How a program failed, if it did: "exited with status N" or "was killed by signal N".
pub(crate) fn failure(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exited with status {code}")),
        (None, signal) => Some(format!(
            "was killed by signal {}",
            signal.unwrap_or_default()
        )),
    }
}

/// Where `program` would be run from, if it exists and is executable: a path with a `/` as
/// is (relative to `cwd`), otherwise the first match on `search` (the `PATH` the child gets;
/// the agent's when `None`).
pub(crate) fn find_program(
    program: &str,
    search: Option<std::ffi::OsString>,
    cwd: Option<&Path>,
) -> Option<PathBuf> {
    let executable = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let path = match cwd {
            Some(cwd) => cwd.join(program),
            None => PathBuf::from(program),
        };
        return executable(&path).then_some(path);
    }
    let search = search
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
}

/// `work`'s output, or `None` once `deadline` passed first (`work` is then dropped).
pub(crate) async fn within<F: std::future::Future>(
    deadline: Option<std::time::Instant>,
    work: F,
) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work)
            .await
            .ok(),
        None => Some(work.await),
    }
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line ending in `\n` (included in the buffer).
    Complete,
    /// The last bytes of the output, without a final `\n`.
    Unterminated,
    /// The end of the output, nothing read.
    End,
    /// The line would go past `limit` bytes; what was read of it is in the buffer.
    TooLong,
}

/// Read one line (up to and including `\n`) into `line`, which is cleared first, without ever
/// holding more than `limit` bytes of it: a program printing an endless line cannot exhaust
/// the agent's memory.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: u64,
) -> std::io::Result<Line> {
    line.clear();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::End
            } else {
                Line::Unterminated
            });
        }
        let (take, complete) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = usize::try_from(limit.saturating_sub(line.len() as u64)).unwrap_or(usize::MAX);
        if take > room {
            line.extend_from_slice(&buf[..room]);
            reader.consume(room);
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if complete {
            return Ok(Line::Complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_cut_at_the_limit_and_the_last_one_may_lack_its_newline() {
        let mut input: &[u8] = b"ab\ncdefgh\nij";
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut input, &mut line, 4).await.unwrap(),
            Line::Complete
        );
        assert_eq!(line, b"ab\n");
        assert_eq!(
            read_line(&mut input, &mut line, 4).await.unwrap(),
            Line::TooLong
        );
        assert_eq!(line, b"cdef");
        let mut input: &[u8] = b"ij";
        assert_eq!(
            read_line(&mut input, &mut line, 4).await.unwrap(),
            Line::Unterminated
        );
        assert_eq!(line, b"ij");
        assert_eq!(
            read_line(&mut input, &mut line, 4).await.unwrap(),
            Line::End
        );
        assert!(line.is_empty());
    }
}
