//! The `journald` collector: the systemd journal's entries since the last committed run, as
//! journalctl prints them as JSON (`journalctl --output=json`).
//!
//! Settings:
//! - `units` (optional list of unit names or globs, `--unit=` each; an entry matches any);
//! - `priority` (optional, `"0"`..`"7"` or `emerg`, `alert`, `crit`, `err`, `warning`,
//!   `notice`, `info`, `debug`: entries of this priority or more urgent, `--priority=`);
//! - `directory` (optional, absolute: read the journal files of this directory instead of the
//!   system journal, `--directory=`; for journals copied from elsewhere, and for tests);
//! - `journalctl` (optional, the program to run, default `journalctl` looked up on `PATH`; a
//!   path with a `/` must be absolute);
//! - `max_entries` (entries per run, default 100,000; the rest is taken by the next runs).
//!
//! The program runs as
//! `journalctl --output=json --no-pager [--after-cursor=C] [--unit=U]... [--priority=P]
//! [--directory=D]`, without a shell, with stdin on `/dev/null`, in a process group of its own
//! that is killed with the run however it ends (as the `command` kind does).
//!
//! Cursor: `{"cursor": "<__CURSOR of the last entry taken>"}`, handed back as
//! `--after-cursor`. The first run (no cursor) takes the journal from its oldest entry still
//! on disk, up to `max_entries`, and the next runs go on from there, so the whole retained
//! journal is collected once. A stored cursor that is not of this shape (written by another
//! version) is reported as a warning and the journal is read from its start again: evidence
//! taken twice is visible, evidence skipped is not. If the cursor's entry was vacuumed away,
//! journalctl goes on from the next entry it still has.
//!
//! Content: the lines journalctl printed, byte for byte (`application/octet-stream`), one JSON
//! object per entry, streamed through the spool; `item_count` = entries. journalctl's JSON
//! shows a field over 4096 bytes as `null` (it is not run with `--all`), which keeps core
//! dumps and other binary blobs out of the evidence; binary fields are arrays of byte values.
//! Details: `path` (the `directory`, or `journal` for the system journal), `start_offset` and
//! `end_offset` (the cursors of the first and last entry taken, both included: a log segment's
//! position in the journal, as a `log_file` segment's byte offsets are in its file; `null` when
//! nothing was new), `first_cursor`, `last_cursor`, `first_realtime`, `last_realtime` (the
//! entries' `__REALTIME_TIMESTAMP` in RFC 3339), `entries`, `after_cursor` (where the run
//! started), `units`, `priority`, `more_pending` (`max_entries` cut the run short), and
//! `warnings` (among them journalctl's stderr when it exited 0 but said something, such as
//! its hint that an unprivileged user does not see the system journal).
//!
//! Guarantees: every line must be a JSON object with a non-empty string `__CURSOR`, else the
//! run fails naming the line number, with nothing recorded and the cursor not advanced; so
//! does a line over 16 MiB or a last line without its newline. journalctl exiting non-zero (or
//! killed by a signal) fails the run with its stderr tail (the last 2 KiB, redacted as the
//! `command` kind does). No new entry is an `ok` snapshot of 0 items that keeps the cursor.
//! Once `max_entries` entries are read, journalctl is killed (it has no option to stop after
//! the first N entries) and its exit status is not looked at. The run's deadline kills it too.

mod entries;

use crate::child::{failure, find_program, read_line, read_tail, stderr_text, within, Group, Line};
use crate::files::redact::Redactor;
use crate::registry::parse_settings;
use crate::MEDIA_TYPE_OCTETS;
use crate::{CollectContext, CollectError, Collector, SettingError, Snapshot};
use entries::{EntriesError, Summary};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;

const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// The longest line taken from journalctl: far more than an entry whose fields are cut at
/// 4096 bytes, and a bound on memory if a program prints a line without end.
const MAX_LINE: u64 = 16 << 20;
/// Lines are handed to the spool writer in batches of about this size.
const BATCH: usize = 64 * 1024;
/// How much of stderr the error message keeps; twice as much is read back for redaction.
const STDERR_TAIL: usize = 2048;
/// Priority names as journalctl knows them, by their number.
const PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

fn default_max_entries() -> u64 {
    DEFAULT_MAX_ENTRIES
}

fn default_journalctl() -> String {
    "journalctl".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    units: Vec<String>,
    priority: Option<String>,
    directory: Option<PathBuf>,
    #[serde(default = "default_journalctl")]
    journalctl: String,
    #[serde(default = "default_max_entries")]
    max_entries: u64,
}

/// Where the next run starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    cursor: String,
}

/// A built `journald` collector.
#[derive(Debug)]
pub struct JournaldCollector {
    settings: Settings,
    /// `priority` as its number.
    priority: Option<usize>,
}

/// Build a `journald` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    for unit in &settings.units {
        if unit.is_empty() || unit.chars().any(char::is_control) {
            errors.push(SettingError::new(
                Some("units"),
                format!("{unit:?} is not a unit name"),
            ));
        }
    }
    let priority = settings.priority.as_deref().and_then(|p| {
        let number = p
            .parse::<usize>()
            .ok()
            .filter(|n| *n < PRIORITIES.len())
            .or_else(|| PRIORITIES.iter().position(|name| *name == p));
        if number.is_none() {
            errors.push(SettingError::new(
                Some("priority"),
                format!(
                    "{p:?} is not a priority: use 0..7 or {}",
                    PRIORITIES.join(", ")
                ),
            ));
        }
        number
    });
    if let Some(dir) = &settings.directory {
        if !dir.is_absolute() {
            errors.push(SettingError::new(
                Some("directory"),
                format!("{} is not an absolute path", dir.display()),
            ));
        }
    }
    let program = &settings.journalctl;
    if program.is_empty() || program.contains('\0') {
        errors.push(SettingError::new(Some("journalctl"), "is not a program"));
    } else if program.contains('/') && !program.starts_with('/') {
        errors.push(SettingError::new(
            Some("journalctl"),
            format!("{program} is not an absolute path (a name alone is looked up on PATH)"),
        ));
    }
    if settings.max_entries == 0 {
        errors.push(SettingError::new(Some("max_entries"), "must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(JournaldCollector { settings, priority }))
}

#[async_trait::async_trait]
impl Collector for JournaldCollector {
    fn kind(&self) -> &'static str {
        "journald"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        ctx.check_deadline()?;
        run(self, &ctx).await
    }

    fn check(&self) -> Vec<SettingError> {
        let mut problems = Vec::new();
        if let Some(dir) = &self.settings.directory {
            if !dir.is_dir() {
                problems.push(SettingError::new(
                    Some("directory"),
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        let program = &self.settings.journalctl;
        if find_program(program, None, None).is_none() {
            problems.push(SettingError::new(
                Some("journalctl"),
                format!("{program}: not found on PATH, or not an executable file"),
            ));
        }
        problems
    }
}

impl JournaldCollector {
    /// journalctl's arguments, starting after the cursor `after`.
    fn arguments(&self, after: Option<&str>) -> Vec<String> {
        let mut args = vec!["--output=json".to_owned(), "--no-pager".to_owned()];
        if let Some(cursor) = after {
            args.push(format!("--after-cursor={cursor}"));
        }
        for unit in &self.settings.units {
            args.push(format!("--unit={unit}"));
        }
        if let Some(priority) = self.priority {
            args.push(format!("--priority={priority}"));
        }
        if let Some(dir) = &self.settings.directory {
            args.push(format!("--directory={}", dir.display()));
        }
        args
    }
}

/// What reading journalctl's stdout came to.
#[derive(Default)]
struct Read {
    /// `max_entries` were read and more followed.
    more_pending: bool,
    /// The reader stopped at a line it could not take (the spool writer's own errors are
    /// reported by the writer).
    error: Option<String>,
    /// journalctl was killed by the reader, so its exit status says nothing.
    killed: bool,
}

async fn run(
    collector: &JournaldCollector,
    ctx: &CollectContext,
) -> Result<Snapshot, CollectError> {
    let settings = &collector.settings;
    let program = settings.journalctl.as_str();
    let mut warnings: Vec<String> = Vec::new();
    let after = match &ctx.cursor {
        None => None,
        Some(value) => match serde_json::from_value::<Cursor>(value.clone()) {
            Ok(c) if !c.cursor.is_empty() => Some(c.cursor),
            Ok(_) => {
                warnings
                    .push("the stored cursor is empty; reading the journal from its start".into());
                None
            }
            Err(e) => {
                warnings.push(format!(
                    "the stored cursor is not understood ({e}); reading the journal from its start"
                ));
                None
            }
        },
    };
    let child = tokio::process::Command::new(program)
        .args(collector.arguments(after.as_deref()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CollectError::io("start", program, e))?;
    let mut group = Group::new(child);
    let (Some(stdout), Some(stderr)) = (group.child.stdout.take(), group.child.stderr.take())
    else {
        return Err(CollectError::Other(format!(
            "{program}: its output pipes were not opened"
        )));
    };

    // The spool is a file: lines are checked and written on the blocking pool.
    let (batches, received) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let spool_dir = ctx.spool_dir.clone();
    let taker = tokio::task::spawn_blocking(move || entries::take(received, spool_dir));
    let work = async {
        tokio::join!(
            read_entries(&mut group, stdout, batches, settings.max_entries),
            read_tail(stderr, 2 * STDERR_TAIL)
        )
    };
    let finished = within(ctx.deadline, work).await;
    let Some((read, (tail, stderr_bytes))) = finished else {
        group.kill_and_reap().await;
        return Err(CollectError::Other(format!(
            "stopped: the run's timeout passed; {program} was killed"
        )));
    };
    let status = group
        .child
        .wait()
        .await
        .map_err(|e| CollectError::io("wait for", program, e))?;
    let taken = taker
        .await
        .map_err(|e| CollectError::Other(format!("{program}: the entry writer stopped: {e}")))?;
    let redactor = Redactor::new(Vec::new(), ctx.redaction_salt);
    let stderr = || stderr_text(&redactor, &tail, STDERR_TAIL);
    let read = read.map_err(|e| CollectError::io("read the output of", program, e))?;
    if !read.killed {
        if let Some(failure) = failure(status) {
            return Err(CollectError::Other(format!(
                "{program} {failure}; stderr: {}",
                stderr()
            )));
        }
    }
    let summary = match (read.error, taken) {
        (_, Err(EntriesError::Malformed { line, why })) => {
            return Err(CollectError::Other(format!(
                "{program}: line {line} of its output is not usable: {why}"
            )))
        }
        (_, Err(EntriesError::Spool(dir, e))) => {
            return Err(CollectError::io("write spool file in", dir, e))
        }
        (Some(error), Ok(_)) => return Err(CollectError::Other(format!("{program}: {error}"))),
        (None, Ok(summary)) => summary,
    };
    if stderr_bytes > 0 {
        warnings.push(format!("{program} said on stderr: {}", stderr()));
    }
    Ok(snapshot(
        collector,
        summary,
        after,
        read.more_pending,
        warnings,
    ))
}

/// Read journalctl's stdout line by line into batches for the spool writer, up to
/// `max_entries` lines. Kills journalctl when it stops before the end of the output, so that
/// its stderr closes and the run can end.
async fn read_entries(
    group: &mut Group,
    stdout: tokio::process::ChildStdout,
    batches: tokio::sync::mpsc::Sender<Vec<u8>>,
    max_entries: u64,
) -> std::io::Result<Read> {
    let mut reader = tokio::io::BufReader::with_capacity(BATCH, stdout);
    let mut line = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut lines = 0u64;
    let mut read = Read::default();
    loop {
        let found = match read_line(&mut reader, &mut line, MAX_LINE).await {
            Ok(found) => found,
            Err(e) => {
                group.kill();
                return Err(e);
            }
        };
        match found {
            Line::End => break,
            _ if lines == max_entries => {
                read.more_pending = true;
                break;
            }
            Line::Complete => {
                lines += 1;
                batch.extend_from_slice(&line);
            }
            Line::Unterminated => {
                read.error = Some(format!(
                    "line {} of its output does not end with a newline (cut short?)",
                    lines + 1
                ));
                break;
            }
            Line::TooLong => {
                read.error = Some(format!(
                    "line {} of its output is longer than {MAX_LINE} bytes",
                    lines + 1
                ));
                break;
            }
        }
        if batch.len() >= BATCH && batches.send(std::mem::take(&mut batch)).await.is_err() {
            // The writer stopped at a bad line or a spool error; it says which.
            group.kill();
            read.killed = true;
            return Ok(read);
        }
    }
    if read.more_pending || read.error.is_some() {
        group.kill();
        read.killed = true;
    }
    if read.error.is_none() && !batch.is_empty() {
        // A send error means the writer already failed, and it reports why.
        let _ = batches.send(batch).await;
    }
    Ok(read)
}

fn snapshot(
    collector: &JournaldCollector,
    summary: Summary,
    after: Option<String>,
    more_pending: bool,
    warnings: Vec<String>,
) -> Snapshot {
    let settings = &collector.settings;
    let cursor = match (&summary.last_cursor, &after) {
        (Some(last), _) => Some(json!({"cursor": last})),
        (None, Some(after)) => Some(json!({"cursor": after})),
        (None, None) => None,
    };
    let path = match &settings.directory {
        Some(dir) => Value::from(dir.display().to_string()),
        None => Value::from("journal"),
    };
    Snapshot {
        content: summary.content,
        media_type: MEDIA_TYPE_OCTETS,
        item_count: summary.entries,
        cursor,
        details: json!({
            "path": path,
            "start_offset": summary.first_cursor,
            "end_offset": summary.last_cursor,
            "first_cursor": summary.first_cursor,
            "last_cursor": summary.last_cursor,
            "first_realtime": summary.first_realtime,
            "last_realtime": summary.last_realtime,
            "entries": summary.entries,
            "after_cursor": after,
            "units": settings.units,
            "priority": collector.priority.map(|p| p.to_string()),
            "more_pending": more_pending,
            "warnings": warnings,
        }),
    }
}
