//! The plugin's side of the protocol, read on the blocking pool: each stdout line checked to be
//! an item record or the final done record, items keyed by `(type, id)`, and the content
//! written as canonical JSON once the done record came.

use crate::{canonical, Content, ContentWriter};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `type` given to an item that has none.
pub(super) const DEFAULT_TYPE: &str = "item";

/// What the plugin reported.
pub(super) struct Output {
    pub(super) content: Content,
    pub(super) items: u64,
    pub(super) lines: u64,
    /// The done record's `cursor` (`null` when it had none).
    pub(super) cursor: Value,
    /// The done record's `details`, if any.
    pub(super) details: Option<Map<String, Value>>,
}

/// Why the plugin's output cannot be taken.
pub(super) enum ProtocolError {
    /// Line `line` (1-based) is not a record of the protocol.
    Line { line: u64, why: String },
    /// The output ended without the done record.
    NoDone { lines: u64 },
    /// The spool file could not be written.
    Spool(PathBuf, std::io::Error),
}

/// A secret given to the plugin, looked for in its output.
pub(super) struct Secret {
    /// The plugin's variable holding it (named in errors; the value never is).
    pub(super) var: String,
    pub(super) value: Vec<u8>,
}

struct Done {
    line: u64,
    cursor: Value,
    details: Option<Map<String, Value>>,
}

/// Take the batches of lines (each ending in `\n`) until the reader closes the channel.
/// Returns at the first bad line, which drops the receiver: the reader sees it and kills the
/// plugin.
pub(super) fn take(
    mut batches: tokio::sync::mpsc::Receiver<Vec<u8>>,
    spool_dir: PathBuf,
    secrets: &[Secret],
) -> Result<Output, ProtocolError> {
    let mut parser = Parser::new(secrets);
    while let Some(batch) = batches.blocking_recv() {
        parser.batch(&batch)?;
    }
    parser.finish(spool_dir)
}

/// The whole of a plugin's stdout checked at once, as [`take`] checks it batch by batch (a
/// last line without its newline is completed, as the reader does; the reader's byte limit is
/// not applied). Returns the canonical content and the item count, or the error the run would
/// report. For the fuzz target (fuzz/) and its regression tests.
#[doc(hidden)]
pub fn parse_stdout(stdout: &[u8], spool_dir: &Path) -> Result<(Content, u64), String> {
    let completed;
    let stdout = if stdout.is_empty() || stdout.ends_with(b"\n") {
        stdout
    } else {
        completed = [stdout, b"\n"].concat();
        &completed
    };
    let mut parser = Parser::new(&[]);
    let output = parser
        .batch(stdout)
        .and_then(|()| parser.finish(spool_dir.to_owned()));
    match output {
        Ok(output) => Ok((output.content, output.items)),
        Err(ProtocolError::Line { line, why }) => Err(format!("line {line}: {why}")),
        Err(ProtocolError::NoDone { lines }) => Err(format!(
            "the output ended after {lines} lines without the final done record"
        )),
        Err(ProtocolError::Spool(dir, e)) => Err(format!("{}: {e}", dir.display())),
    }
}

/// The protocol's state between lines: the items so far, the done record once it came.
struct Parser<'a> {
    /// Canonical bytes of each item by (type, id), with the line that gave it.
    items: BTreeMap<(String, String), (u64, Vec<u8>)>,
    done: Option<Done>,
    lines: u64,
    secrets: &'a [Secret],
}

impl<'a> Parser<'a> {
    fn new(secrets: &'a [Secret]) -> Parser<'a> {
        Parser {
            items: BTreeMap::new(),
            done: None,
            lines: 0,
            secrets,
        }
    }

    /// Check the lines of `batch`, each ending in `\n`.
    fn batch(&mut self, batch: &[u8]) -> Result<(), ProtocolError> {
        for raw in batch.split_inclusive(|b| *b == b'\n') {
            self.line(raw)?;
        }
        Ok(())
    }

    fn line(&mut self, raw: &[u8]) -> Result<(), ProtocolError> {
        self.lines += 1;
        let lines = self.lines;
        let bad = |why: String| ProtocolError::Line { line: lines, why };
        if let Some(secret) = self.secrets.iter().find(|s| contains(raw, &s.value)) {
            return Err(bad(format!(
                "it holds the value of secret_env {}, which is never recorded",
                secret.var
            )));
        }
        if let Some(done) = &self.done {
            return Err(bad(format!(
                "it comes after the final done record (line {})",
                done.line
            )));
        }
        let json = raw.strip_suffix(b"\n").unwrap_or(raw);
        let record: Value =
            serde_json::from_slice(json).map_err(|e| bad(format!("it is not JSON: {e}")))?;
        match record_kind(record).map_err(bad)? {
            Record::Item(item) => {
                let (key, bytes) = keyed(item).map_err(bad)?;
                if let Some((first, _)) = self.items.get(&key) {
                    return Err(bad(format!(
                        "it repeats the item of type {:?} and id {:?} of line {first}",
                        key.0, key.1
                    )));
                }
                self.items.insert(key, (lines, bytes));
            }
            Record::Done { cursor, details } => {
                self.done = Some(Done {
                    line: lines,
                    cursor,
                    details,
                })
            }
        }
        Ok(())
    }

    /// The content, once every line was taken.
    fn finish(self, spool_dir: PathBuf) -> Result<Output, ProtocolError> {
        let Some(done) = self.done else {
            return Err(ProtocolError::NoDone { lines: self.lines });
        };
        let content = write_content(self.items.values().map(|(_, bytes)| bytes), &spool_dir)
            .map_err(|e| ProtocolError::Spool(spool_dir, e))?;
        Ok(Output {
            content,
            items: self.items.len() as u64,
            lines: self.lines,
            cursor: done.cursor,
            details: done.details,
        })
    }
}

enum Record {
    Item(Map<String, Value>),
    Done {
        cursor: Value,
        details: Option<Map<String, Value>>,
    },
}

/// `{"item": {...}}` or `{"done": {"cursor": …, "details": {...}}}`, nothing else.
fn record_kind(record: Value) -> Result<Record, String> {
    const SHAPES: &str = "a record is {\"item\": {...}} or {\"done\": {...}}";
    let Value::Object(mut record) = record else {
        return Err(format!("it is not a JSON object; {SHAPES}"));
    };
    if record.len() != 1 {
        return Err(format!("it has {} keys; {SHAPES}", record.len()));
    }
    if let Some(item) = record.remove("item") {
        return match item {
            Value::Object(item) => Ok(Record::Item(item)),
            _ => Err("its \"item\" is not a JSON object".into()),
        };
    }
    let Some(done) = record.remove("done") else {
        return Err(format!(
            "it is neither an item nor the done record; {SHAPES}"
        ));
    };
    let Value::Object(mut done) = done else {
        return Err("its \"done\" is not a JSON object".into());
    };
    let cursor = done.remove("cursor").unwrap_or(Value::Null);
    let details = match done.remove("details") {
        None => None,
        Some(Value::Object(details)) => Some(details),
        Some(_) => return Err("the done record's \"details\" is not a JSON object".into()),
    };
    if let Some(key) = done.keys().next() {
        return Err(format!(
            "the done record has the unknown key {key:?} (it takes \"cursor\" and \"details\")"
        ));
    }
    Ok(Record::Done { cursor, details })
}

/// The item's `(type, id)` and its canonical bytes, `type` and `id` filled in when it has
/// none: `type` [`DEFAULT_TYPE`], `id` `sha256:<hex>` of the item's canonical JSON as the
/// plugin gave it (stable for the same item, whatever the order of its keys).
fn keyed(mut item: Map<String, Value>) -> Result<((String, String), Vec<u8>), String> {
    let encode = |item: &Map<String, Value>| {
        canonical::to_vec(item).map_err(|e| format!("its item cannot be encoded: {e}"))
    };
    let id = match item.get("id") {
        None => format!("sha256:{}", hex::encode(Sha256::digest(encode(&item)?))),
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(_) => return Err("its item's \"id\" is not a non-empty string".into()),
    };
    let kind = match item.get("type") {
        None => DEFAULT_TYPE.to_owned(),
        Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
        Some(_) => return Err("its item's \"type\" is not a non-empty string".into()),
    };
    item.insert("id".into(), Value::String(id.clone()));
    item.insert("type".into(), Value::String(kind.clone()));
    Ok(((kind, id), encode(&item)?))
}

/// `{"items":[...]}` in canonical JSON: the items are canonical already, in key order.
fn write_content<'a>(
    items: impl Iterator<Item = &'a Vec<u8>>,
    spool_dir: &std::path::Path,
) -> std::io::Result<Content> {
    let mut writer = ContentWriter::new(spool_dir);
    writer.write_all(b"{\"items\":[")?;
    for (i, item) in items.enumerate() {
        if i > 0 {
            writer.write_all(b",")?;
        }
        writer.write_all(item)?;
    }
    writer.write_all(b"]}")?;
    writer.finish()
}

/// Whether `needle` (non-empty) occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_get_a_type_and_a_content_id_when_they_have_none() {
        let Value::Object(item) = json!({"name": "root", "uid": 0}) else {
            unreachable!()
        };
        let ((kind, id), bytes) = keyed(item).unwrap();
        assert_eq!(kind, "item");
        let digest = hex::encode(Sha256::digest(br#"{"name":"root","uid":0}"#));
        assert_eq!(id, format!("sha256:{digest}"));
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(r#"{{"id":"sha256:{digest}","name":"root","type":"item","uid":0}}"#)
        );
        let Value::Object(numbered) = json!({"id": 7}) else {
            unreachable!()
        };
        assert!(keyed(numbered).is_err(), "ids are strings");
    }

    #[test]
    fn only_the_two_record_shapes_are_taken() {
        assert!(matches!(
            record_kind(json!({"item": {}})),
            Ok(Record::Item(_))
        ));
        assert!(matches!(
            record_kind(json!({"done": {"cursor": [1], "details": {"pages": 2}}})),
            Ok(Record::Done { .. })
        ));
        for bad in [
            json!([]),
            json!({"item": []}),
            json!({"item": {}, "done": {}}),
            json!({"items": {}}),
            json!({"done": {"cursor": 1, "next": 2}}),
            json!({"done": {"details": []}}),
        ] {
            assert!(record_kind(bad.clone()).is_err(), "{bad}");
        }
    }
}
