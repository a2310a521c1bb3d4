//! The `log_file` collector: the lines appended to a log file since the last committed run.
//!
//! Settings: `path` (absolute, required), `max_segment_bytes` (bytes per run, default 1 GiB; the
//! rest is taken by the next run).
//!
//! Cursor: `{"inode", "dev", "offset", "head_sha256"}`, where the head is the SHA-256 of the
//! first `min(4096, offset)` bytes, which recognises the file after a rotation. The agent only
//! hands back the cursor of a committed run, so a failed run is retried from the same place.
//!
//! Rotation: when the inode at `path` changed (logrotate's rename), the previous file is looked
//! for at `<path>.1` by inode, and its remaining bytes are read first, then the new file from 0
//! (`rotated: true`). When the inode is the same but the file is shorter than the offset or its
//! head changed (copytruncate), the copy at `<path>.1` is recognised by its head and finished
//! the same way, then the file is read from 0 (`truncated: true`). When the previous file cannot
//! be found, a warning says what could not be read.
//!
//! Guarantees: content is the raw bytes (`application/octet-stream`), streamed through the spool;
//! only complete lines are taken from the live file (up to its last `\n`), while a rotated-away
//! file is taken to its end; `item_count` is the number of lines; a missing or non-regular
//! `path` fails the run, and so does a `path` or `<path>.1` that is (or leads by a symlink into)
//! the agent's protected data (`CollectContext::protected_paths`), checked on the opened file.

mod segment;

use crate::files::protect::Protected;
use crate::files::read::{self, ReadError, Warnings};
use crate::registry::parse_settings;
use crate::MEDIA_TYPE_OCTETS;
use crate::{CollectContext, CollectError, Collector, ContentWriter, SettingError, Snapshot};
use segment::{copy_range, head_sha256, last_line_end, CopyError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DEFAULT_MAX_SEGMENT_BYTES: u64 = 1 << 30;

fn default_max_segment_bytes() -> u64 {
    DEFAULT_MAX_SEGMENT_BYTES
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    path: PathBuf,
    #[serde(default = "default_max_segment_bytes")]
    max_segment_bytes: u64,
}

/// Where the next run starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    inode: u64,
    dev: u64,
    offset: u64,
    head_sha256: String,
}

/// A built `log_file` collector.
#[derive(Debug)]
pub struct LogFileCollector {
    settings: Arc<Settings>,
}

/// Build a `log_file` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    if !settings.path.is_absolute() {
        errors.push(SettingError::new(
            Some("path"),
            format!("{} is not an absolute path", settings.path.display()),
        ));
    }
    if settings.max_segment_bytes == 0 {
        errors.push(SettingError::new(
            Some("max_segment_bytes"),
            "must be at least 1",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(LogFileCollector {
        settings: Arc::new(settings),
    }))
}

#[async_trait::async_trait]
impl Collector for LogFileCollector {
    fn kind(&self) -> &'static str {
        "log_file"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let settings = Arc::clone(&self.settings);
        tokio::task::spawn_blocking(move || collect_blocking(&settings, &ctx))
            .await
            .map_err(|e| CollectError::Other(format!("the log_file collector stopped: {e}")))?
    }

    fn check(&self) -> Vec<SettingError> {
        match read::stat_regular(&self.settings.path) {
            Ok(_) => Vec::new(),
            Err(err) => vec![SettingError::new(
                Some("path"),
                format!("{}: {}", self.settings.path.display(), err.reason()),
            )],
        }
    }
}

/// One run: the content being written, what is left of the byte budget, and what was read.
struct Run<'a> {
    spool_dir: &'a Path,
    deadline: Option<std::time::Instant>,
    protected: Protected,
    writer: ContentWriter,
    budget: u64,
    lines: u64,
    segments: Vec<Value>,
    warnings: Warnings,
}

impl Run<'_> {
    /// Copy `[start, end)` of `file` (found at `path`) into the content.
    fn copy(
        &mut self,
        path: &Path,
        file: &File,
        start: u64,
        end: u64,
    ) -> Result<u64, CollectError> {
        let copied =
            copy_range(file, start, end, &mut self.writer, self.deadline).map_err(|e| match e {
                CopyError::Read(e) => CollectError::io("read", path, e),
                CopyError::Write(e) => CollectError::io("write spool file in", self.spool_dir, e),
                CopyError::Deadline(e) => e,
            })?;
        let end = start + copied.bytes;
        let lines = copied.lines;
        self.budget = self.budget.saturating_sub(copied.bytes);
        self.lines += lines;
        let inode = file.metadata().map(|m| m.ino()).ok();
        self.segments.push(json!({
            "path": path,
            "inode": inode,
            "start": start,
            "end": end,
            "lines": lines,
        }));
        Ok(end)
    }

    /// Finish the previous file (the cursor's), rotated away to `<path>.1`. Returns the cursor
    /// to keep when the budget ran out inside it.
    fn finish_previous(
        &mut self,
        path: &Path,
        cursor: &Cursor,
        renamed: bool,
    ) -> Result<Option<Cursor>, CollectError> {
        let mut rotated = OsString::from(path.as_os_str());
        rotated.push(".1");
        let rotated = PathBuf::from(rotated);
        let lost = |why: String| {
            format!(
                "{}: the previous file was rotated away, and {why}; its bytes after offset {} \
                 could not be read",
                path.display(),
                cursor.offset
            )
        };
        let (file, meta) = match read::open_regular(&rotated, &self.protected) {
            Ok(opened) => opened,
            Err(err @ ReadError::Protected) => return Err(err.into_collect_error(&rotated)),
            Err(err) => {
                self.warnings
                    .push(lost(format!("{}: {}", rotated.display(), err.reason())));
                return Ok(None);
            }
        };
        let same_inode = (meta.dev(), meta.ino()) == (cursor.dev, cursor.inode);
        let head =
            head_sha256(&file, cursor.offset).map_err(|e| CollectError::io("read", &rotated, e))?;
        if (renamed && !same_inode) || meta.len() < cursor.offset || head != cursor.head_sha256 {
            self.warnings.push(lost(format!(
                "{} is not the previous file",
                rotated.display()
            )));
            return Ok(None);
        }
        let size = meta.len();
        let mut end = size.min(cursor.offset.saturating_add(self.budget));
        if end < size {
            // Cut by the budget: end on a line if one ends in the range.
            end = last_line_end(&file, cursor.offset, end)
                .map_err(|e| CollectError::io("read", &rotated, e))?
                .unwrap_or(end);
        }
        let end = self.copy(&rotated, &file, cursor.offset, end)?;
        if end < size {
            let head =
                head_sha256(&file, end).map_err(|e| CollectError::io("read", &rotated, e))?;
            return Ok(Some(Cursor {
                inode: meta.ino(),
                dev: meta.dev(),
                offset: end,
                head_sha256: head,
            }));
        }
        Ok(None)
    }
}

fn collect_blocking(settings: &Settings, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
    let path = settings.path.as_path();
    let protected = Protected::new(&ctx.protected_paths);
    let (live, meta) =
        read::open_regular(path, &protected).map_err(|e| e.into_collect_error(path))?;
    let (size, dev, inode) = (meta.len(), meta.dev(), meta.ino());
    let mut run = Run {
        spool_dir: &ctx.spool_dir,
        deadline: ctx.deadline,
        protected,
        writer: ContentWriter::new(&ctx.spool_dir),
        budget: settings.max_segment_bytes,
        lines: 0,
        segments: Vec::new(),
        warnings: Warnings::default(),
    };
    let cursor = match ctx
        .cursor
        .as_ref()
        .map(|c| serde_json::from_value::<Cursor>(c.clone()))
    {
        None => None,
        Some(Ok(cursor)) => Some(cursor),
        Some(Err(e)) => {
            run.warnings.push(format!(
                "the stored cursor is not understood ({e}); reading {} from the start",
                path.display()
            ));
            None
        }
    };
    let read_err = |e: std::io::Error| CollectError::io("read", path, e);

    let (mut rotated, mut truncated) = (false, false);
    let mut kept_cursor = None;
    let start = match &cursor {
        None => 0,
        Some(c) if (c.dev, c.inode) == (dev, inode) => {
            if size >= c.offset && head_sha256(&live, c.offset).map_err(read_err)? == c.head_sha256
            {
                c.offset
            } else {
                truncated = true;
                kept_cursor = run.finish_previous(path, c, false)?;
                0
            }
        }
        Some(c) => {
            rotated = true;
            kept_cursor = run.finish_previous(path, c, true)?;
            0
        }
    };

    let mut live_range = Value::Null;
    let next_cursor = match kept_cursor {
        Some(cursor) => cursor,
        None => {
            let limit = size.min(start.saturating_add(run.budget));
            let end = match last_line_end(&live, start, limit).map_err(read_err)? {
                Some(end) => end,
                None if limit < size => {
                    run.warnings.push(format!(
                        "{}: a line at offset {start} is longer than max_segment_bytes; it is split",
                        path.display()
                    ));
                    limit
                }
                None => start,
            };
            let end = if end > start {
                run.copy(path, &live, start, end)?
            } else {
                end
            };
            live_range = json!({"start_offset": start, "end_offset": end});
            Cursor {
                inode,
                dev,
                offset: end,
                head_sha256: head_sha256(&live, end).map_err(read_err)?,
            }
        }
    };
    let more_pending = next_cursor.inode != inode || (next_cursor.offset < size && run.budget == 0);
    let content = run
        .writer
        .finish()
        .map_err(|e| CollectError::io("write spool file in", &ctx.spool_dir, e))?;
    let cursor_value = serde_json::to_value(&next_cursor)
        .map_err(|e| CollectError::Other(format!("cannot encode the cursor: {e}")))?;
    Ok(Snapshot {
        content,
        media_type: MEDIA_TYPE_OCTETS,
        item_count: run.lines,
        cursor: Some(cursor_value),
        details: json!({
            "path": path,
            "inode": inode,
            "dev": dev,
            "size": size,
            "start_offset": live_range.get("start_offset"),
            "end_offset": live_range.get("end_offset"),
            "rotated": rotated,
            "truncated": truncated,
            "more_pending": more_pending,
            "segments": run.segments,
            "warnings": run.warnings.into_json(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_cursor_field_is_refused() {
        let value = json!({"inode": 1, "dev": 2, "offset": 3, "head_sha256": "x", "extra": 1});
        assert!(serde_json::from_value::<Cursor>(value).is_err());
    }
}
