//! The blocking half of a `journald` run: checks each line journalctl printed, writes it
//! unchanged into the content, and keeps the facts the details report.

use crate::ContentWriter;
use serde::Deserialize;
use std::io::Write;
use std::path::PathBuf;

/// The fields of an entry the collector reads; journalctl prints every other field too, and
/// they go into the content untouched.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "__CURSOR")]
    cursor: String,
    #[serde(rename = "__REALTIME_TIMESTAMP", default)]
    realtime: Option<String>,
}

/// What the taken entries hold.
pub(super) struct Summary {
    pub(super) content: crate::Content,
    pub(super) entries: u64,
    pub(super) first_cursor: Option<String>,
    pub(super) last_cursor: Option<String>,
    pub(super) first_realtime: Option<String>,
    pub(super) last_realtime: Option<String>,
}

/// Why the entries could not be taken.
pub(super) enum EntriesError {
    /// Line `line` (1-based) of journalctl's output is not an entry.
    Malformed { line: u64, why: String },
    /// The spool file could not be written.
    Spool(PathBuf, std::io::Error),
}

/// Take the batches of complete lines sent by the reader until it closes the channel. Returns
/// at the first bad line, which drops the receiver: the reader sees it and stops journalctl.
pub(super) fn take(
    mut batches: tokio::sync::mpsc::Receiver<Vec<u8>>,
    spool_dir: PathBuf,
) -> Result<Summary, EntriesError> {
    let mut writer = ContentWriter::new(&spool_dir);
    let mut entries = 0u64;
    let (mut first, mut last): (Option<Head>, Option<Head>) = (None, None);
    while let Some(batch) = batches.blocking_recv() {
        // The reader sends complete lines only, each ending in '\n'.
        for line in batch.split_inclusive(|b| *b == b'\n') {
            entries += 1;
            let head = check(line).map_err(|why| EntriesError::Malformed { line: entries, why })?;
            if first.is_none() {
                first = Some(head);
            } else {
                last = Some(head);
            }
        }
        writer
            .write_all(&batch)
            .map_err(|e| EntriesError::Spool(spool_dir.clone(), e))?;
    }
    let content = writer
        .finish()
        .map_err(|e| EntriesError::Spool(spool_dir.clone(), e))?;
    let last = last.as_ref().or(first.as_ref());
    Ok(Summary {
        content,
        entries,
        first_cursor: first.as_ref().map(|h| h.cursor.clone()),
        last_cursor: last.map(|h| h.cursor.clone()),
        first_realtime: first.as_ref().and_then(realtime),
        last_realtime: last.and_then(realtime),
    })
}

/// The entry's `__CURSOR` and `__REALTIME_TIMESTAMP`, if the line is one JSON object with a
/// non-empty string cursor.
fn check(line: &[u8]) -> Result<Head, String> {
    let json = line.strip_suffix(b"\n").unwrap_or(line);
    // serde would also take a JSON array for a struct (fields by position).
    if json.first() != Some(&b'{') {
        return Err("it is not a JSON object".into());
    }
    let head: Head =
        serde_json::from_slice(json).map_err(|e| format!("it is not a journal entry: {e}"))?;
    if head.cursor.is_empty() {
        return Err("its __CURSOR is empty".into());
    }
    Ok(head)
}

/// The entry's wall-clock time (microseconds since the epoch, as journald keeps it) in RFC 3339.
fn realtime(head: &Head) -> Option<String> {
    let micros: i64 = head.realtime.as_deref()?.parse().ok()?;
    let time = chrono::DateTime::from_timestamp_micros(micros)?;
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_checked_to_be_entries_with_a_cursor() {
        let head = check(b"{\"__CURSOR\":\"s=1;i=2\",\"__REALTIME_TIMESTAMP\":\"1700000000000001\",\"MESSAGE\":[104,105]}\n").unwrap();
        assert_eq!(head.cursor, "s=1;i=2");
        assert_eq!(
            realtime(&head).as_deref(),
            Some("2023-11-14T22:13:20.000001Z")
        );
        assert!(check(b"[\"s=1\"]\n").is_err(), "an array is not an entry");
        assert!(check(b"{\"MESSAGE\":\"no cursor\"}\n").is_err());
        assert!(check(b"{\"__CURSOR\":\"\"}\n").is_err());
        assert!(check(b"{\"__CURSOR\":5}\n").is_err());
        assert!(check(b"-- No entries --\n").is_err());
        assert!(check(b"{\"__CURSOR\":\"s=1\"} trailing\n").is_err());
    }
}
