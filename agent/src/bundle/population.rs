//! Populations: what an auditor samples from, one per (host, collector) in the period.
//!
//! A collector's kind decides what a row is:
//! - **tickets** (change-ticket kinds, [`TICKET_KINDS`]): every distinct ticket seen in the
//!   period's `ok` snapshots. A ticket is an item `{"type": "change", "id": …}` of the items
//!   shape (`{"items": [...]}`); its row keeps the fields of the last snapshot that held it and
//!   the first and last entry that saw it, so a ticket seen in 30 daily snapshots is one row.
//! - **segments** (log kinds, [`SEGMENT_KINDS`]): every `ok` run, i.e. every log segment.
//! - **runs** (everything else: access lists, backup configs, command output): every run
//!   scheduled in the period, whatever its status, so failed and skipped runs can be sampled.
//!
//! Rows have ids that do not depend on order (`run:<index>`, `segment:<index>`,
//! `ticket:<id>`), which is what makes sampling stable ([`super::sample`]).

use super::hostlog::{BlobSource, HostLog, LogEntry};
use super::layout::Period;
use super::BundleError;
use crate::statement::Status;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// Kinds whose snapshots list change tickets (DESIGN.md §1 change tickets).
pub const TICKET_KINDS: &[&str] = &[
    "github_pull_requests",
    "gitlab_merge_requests",
    "jira_issues",
    "servicenow_changes",
];
/// Kinds whose runs are log segments.
pub const SEGMENT_KINDS: &[&str] = &["log_file", "journald"];
/// The item `type` of a change ticket.
pub const TICKET_ITEM_TYPE: &str = "change";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Runs,
    Segments,
    Tickets,
}

impl Class {
    pub fn of_kind(kind: &str) -> Class {
        if TICKET_KINDS.contains(&kind) {
            Class::Tickets
        } else if SEGMENT_KINDS.contains(&kind) {
            Class::Segments
        } else {
            Class::Runs
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Runs => "runs",
            Class::Segments => "segments",
            Class::Tickets => "tickets",
        }
    }
}

/// One row: an item of a population with the entries that evidence it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    /// Log indexes of the entries that evidence the row, ascending.
    pub entries: Vec<u64>,
    pub scheduled_for: String,
    pub status: String,
    pub digest: String,
    pub items: String,
    pub ticket: String,
    pub title: String,
    pub author: String,
    pub approvers: String,
    pub approved_at: String,
    pub closed_at: String,
    pub segment_path: String,
    pub segment_start: String,
    pub segment_end: String,
}

/// The population of one collector of one host.
#[derive(Debug, Clone)]
pub struct Population {
    pub host: String,
    pub collector: String,
    pub kind: String,
    pub class: Class,
    /// The schedule of the collector's last run in the period, if it had one.
    pub schedule: Option<String>,
    /// Sorted by row id.
    pub rows: Vec<Row>,
}

/// The entries of `log` scheduled in `period`, for the collectors `filter` names (all if empty).
pub fn in_period<'a>(
    log: &'a HostLog,
    period: &'a Period,
    filter: &'a [String],
) -> impl Iterator<Item = (&'a LogEntry, DateTime<Utc>)> + 'a {
    log.entries.iter().filter_map(move |e| {
        let t = DateTime::parse_from_rfc3339(&e.statement.predicate.scheduled_for)
            .ok()?
            .with_timezone(&Utc);
        let wanted = filter.is_empty() || filter.iter().any(|c| c == e.collector());
        (wanted && period.contains(t)).then_some((e, t))
    })
}

/// The populations of one host's log, ordered by collector id.
pub fn build(
    log: &HostLog,
    period: &Period,
    filter: &[String],
    blobs: &dyn BlobSource,
) -> Result<Vec<Population>, BundleError> {
    let mut by_collector: BTreeMap<&str, Vec<&LogEntry>> = BTreeMap::new();
    for (e, _) in in_period(log, period, filter) {
        by_collector.entry(e.collector()).or_default().push(e);
    }
    by_collector
        .into_iter()
        .map(|(collector, entries)| {
            let last = entries[entries.len() - 1];
            let kind = last.statement.predicate.collector.kind.clone();
            let class = Class::of_kind(&kind);
            let mut rows = match class {
                Class::Runs => entries.iter().map(|e| run_row(e, "run")).collect(),
                Class::Segments => entries
                    .iter()
                    .filter(|e| e.statement.predicate.status == Status::Ok)
                    .map(|e| run_row(e, "segment"))
                    .collect(),
                Class::Tickets => ticket_rows(&log.host, &entries, blobs)?,
            };
            rows.sort_by(|a: &Row, b: &Row| a.id.cmp(&b.id));
            Ok(Population {
                host: log.host.clone(),
                collector: collector.to_owned(),
                kind,
                class,
                schedule: entries
                    .iter()
                    .rev()
                    .find_map(|e| e.statement.predicate.schedule.clone()),
                rows,
            })
        })
        .collect()
}

fn run_row(e: &LogEntry, prefix: &str) -> Row {
    let p = &e.statement.predicate;
    let detail = |key: &str| match p.details.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let is_segment = prefix == "segment";
    Row {
        // Zero-padded so that ids sort in log order.
        id: format!("{prefix}:{:012}", e.index),
        entries: vec![e.index],
        scheduled_for: p.scheduled_for.clone(),
        status: p.status.as_str().to_owned(),
        digest: if p.status == Status::Ok {
            e.statement.content_sha256().to_owned()
        } else {
            String::new()
        },
        items: p.item_count.to_string(),
        segment_path: if is_segment {
            detail("path")
        } else {
            String::new()
        },
        segment_start: if is_segment {
            detail("start_offset")
        } else {
            String::new()
        },
        segment_end: if is_segment {
            detail("end_offset")
        } else {
            String::new()
        },
        ..Row::default()
    }
}

/// Distinct tickets over the collector's `ok` snapshots, fields from the last one seen.
fn ticket_rows(
    host: &str,
    entries: &[&LogEntry],
    blobs: &dyn BlobSource,
) -> Result<Vec<Row>, BundleError> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for e in entries {
        if e.statement.predicate.status != Status::Ok {
            continue;
        }
        let digest = e.statement.content_sha256();
        let bad = |why: String| {
            BundleError::Invalid(format!(
                "host {host} entry {} ({}): content sha256:{digest} {why}",
                e.index,
                e.collector()
            ))
        };
        let content = blobs
            .read(digest)?
            .ok_or_else(|| bad("is not available to list its tickets".into()))?;
        let doc: Value =
            serde_json::from_slice(&content).map_err(|err| bad(format!("is not JSON: {err}")))?;
        let items = doc
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("has no \"items\" array".into()))?;
        for item in items {
            if item.get("type").and_then(Value::as_str) != Some(TICKET_ITEM_TYPE) {
                continue;
            }
            let id = match item.get("id") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(bad("has a change item without an id".into())),
            };
            let row = rows.entry(id.clone()).or_insert_with(|| Row {
                id: format!("ticket:{id}"),
                ticket: id,
                ..Row::default()
            });
            // A snapshot listing a ticket twice is still one entry that saw it.
            if row.entries.last() != Some(&e.index) {
                row.entries.push(e.index);
            }
            // Entries come in log order: the last snapshot's fields win.
            row.title = text(item.get("title"));
            row.author = text(item.get("author"));
            row.approvers = match item.get("approvers") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| text(Some(v)))
                    .collect::<Vec<_>>()
                    .join(";"),
                other => text(other),
            };
            row.approved_at = text(item.get("approved_at"));
            row.closed_at = text(item.get("merged_at").or_else(|| item.get("closed_at")));
        }
    }
    Ok(rows.into_values().collect())
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The header of population.csv.
pub const CSV_HEADER: [&str; 20] = [
    "host",
    "collector",
    "kind",
    "population",
    "row_id",
    "first_entry",
    "last_entry",
    "scheduled_for",
    "status",
    "digest",
    "items",
    "ticket",
    "title",
    "author",
    "approvers",
    "approved_at",
    "closed_at",
    "segment_path",
    "segment_start",
    "segment_end",
];

/// population.csv: every row of every population, in (host, collector, row id) order.
pub fn to_csv(populations: &[Population]) -> Vec<u8> {
    let mut records: Vec<Vec<String>> = vec![CSV_HEADER.iter().map(|s| s.to_string()).collect()];
    for p in populations {
        for r in &p.rows {
            let first = r.entries.first().map(u64::to_string).unwrap_or_default();
            let last = r.entries.last().map(u64::to_string).unwrap_or_default();
            records.push(vec![
                p.host.clone(),
                p.collector.clone(),
                p.kind.clone(),
                p.class.as_str().to_owned(),
                r.id.clone(),
                first,
                last,
                r.scheduled_for.clone(),
                r.status.clone(),
                r.digest.clone(),
                r.items.clone(),
                r.ticket.clone(),
                r.title.clone(),
                r.author.clone(),
                r.approvers.clone(),
                r.approved_at.clone(),
                r.closed_at.clone(),
                r.segment_path.clone(),
                r.segment_start.clone(),
                r.segment_end.clone(),
            ]);
        }
    }
    write_csv(records)
}

/// CSV bytes of `records`, each cell made safe to open in a spreadsheet: ticket titles and
/// authors come from outside, and a cell starting with `=`, `+`, `-`, `@`, tab or CR would be
/// taken as a formula, so such a cell gets a leading `'` (OWASP's advice for CSV injection).
pub fn write_csv(records: Vec<Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for record in records {
        let safe = record.into_iter().map(|cell| {
            if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{cell}")
            } else {
                cell
            }
        });
        // Writing to a Vec cannot fail.
        let _ = w.write_record(safe);
    }
    w.into_inner().unwrap_or_default()
}
