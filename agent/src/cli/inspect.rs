//! Commands that read the ledger: status, log, show, diff. They open it read-only and never
//! need the private key.

use super::{Failed, Paths};
use crate::ledger::{EntryRecord, Ledger};
use crate::statement::{self, Statement};
use crate::tlog::note::{self, Checkpoint};
use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use std::io::Write;

pub fn status(paths: &Paths) -> anyhow::Result<()> {
    let ledger = paths.open_ledger()?;
    println!("ledger      {}", ledger.path().display());
    println!("origin      {}", ledger.origin());
    println!("entries     {}", ledger.size()?);
    match ledger.latest_checkpoint()? {
        Some(cp) => {
            // Shown, not trusted: `verify` checks the signature.
            let root = note::split(&cp.note)
                .and_then(|(text, _)| Checkpoint::parse(text))
                .map(|c| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, c.root))
                .unwrap_or_else(|e| format!("unreadable ({e})"));
            println!(
                "checkpoint  size {} at {} root {root}",
                cp.size, cp.created_at
            );
        }
        None => println!("checkpoint  none yet"),
    }
    println!("last runs:");
    let last = ledger.last_entries()?;
    for e in &last {
        let detail = statement::read_unverified(&e.envelope)
            .ok()
            .and_then(|s| s.predicate.error)
            .map(|err| format!(": {err}"))
            .unwrap_or_default();
        println!(
            "  {:<24} {:<8} scheduled {} (entry {}){detail}",
            e.collector_id, e.status, e.scheduled_for, e.index
        );
    }
    if let Some(config) = &paths.config {
        for c in config
            .collectors
            .iter()
            .filter(|c| !last.iter().any(|e| e.collector_id == c.id))
        {
            println!(
                "  {:<24} never run{}",
                c.id,
                if c.enabled { "" } else { " (disabled)" }
            );
        }
        match &config.s3 {
            None => println!("sync        off (no [s3] table in the configuration)"),
            Some(s3) => sync_status(&ledger, &crate::sync::location(s3, &config.host_id)),
        }
    }
    Ok(())
}

/// The sync backlog and the outcome of the last attempts. A ledger that predates sync has no
/// sync tables when opened read-only; that is shown, not fatal.
fn sync_status(ledger: &Ledger, location: &str) {
    println!("sync        to {location}");
    let (plan, state) = match ledger
        .sync_plan(location)
        .and_then(|p| Ok((p, ledger.sync_status(location)?)))
    {
        Ok(found) => found,
        Err(e) => {
            println!("  state     unknown ({e})");
            return;
        }
    };
    println!(
        "  synced    tree size {} of {}",
        plan.synced_size, plan.size
    );
    let oldest = plan
        .oldest_pending
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            let age = Utc::now().signed_duration_since(t).num_seconds().max(0);
            format!(", oldest pending entry finished {age}s ago")
        })
        .unwrap_or_default();
    println!(
        "  backlog   {} objects, {} bytes{oldest}",
        plan.objects(),
        plan.bytes()
    );
    match &state.last_success_at {
        Some(t) => println!("  last ok   {t}"),
        None => println!("  last ok   never"),
    }
    if let (Some(error), Some(at)) = (&state.last_error, &state.last_error_at) {
        println!("  error     {at}: {error}");
    }
    for alarm in &state.alarms {
        println!(
            "  ALARM     {} {}: {}",
            alarm.detected_at, alarm.key, alarm.message
        );
    }
}

/// `2026-01-31` (midnight UTC) or a full RFC 3339 time.
fn parse_time(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("{text:?} is neither YYYY-MM-DD nor an RFC 3339 time"))?;
    Ok(date.and_hms_opt(0, 0, 0).context("midnight")?.and_utc())
}

pub fn log(
    paths: &Paths,
    collectors: &[String],
    since: Option<&str>,
    until: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let since = since.map(parse_time).transpose()?;
    let until = until.map(parse_time).transpose()?;
    let ledger = paths.open_ledger()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !json {
        writeln!(
            out,
            "{:>7}  {:<24} {:<20} {:<9} {:<8} {:>7} {:>10}  sha256",
            "index", "scheduled for", "collector", "trigger", "status", "items", "bytes"
        )?;
    }
    ledger.for_each_entry(|e| {
        if !collectors.is_empty() && !collectors.contains(&e.collector_id) {
            return Ok(());
        }
        let at = DateTime::parse_from_rfc3339(&e.scheduled_for)
            .map(|t| t.with_timezone(&Utc))
            .ok();
        if since.is_some_and(|s| at.is_some_and(|a| a < s))
            || until.is_some_and(|u| at.is_some_and(|a| a >= u))
        {
            return Ok(());
        }
        let st = statement::read_unverified(&e.envelope);
        let line = if json {
            json_line(&e, st.ok())
        } else {
            text_line(&e, st.ok())
        };
        writeln!(out, "{line}").map_err(|err| crate::ledger::LedgerError::Io {
            op: "write to stdout",
            source: err,
        })
    })?;
    out.flush()?;
    Ok(())
}

fn text_line(e: &EntryRecord, st: Option<Statement>) -> String {
    let (items, bytes, error) = match &st {
        Some(s) => (
            s.predicate.item_count.to_string(),
            s.predicate.content_size.to_string(),
            s.predicate.error.clone(),
        ),
        None => ("?".into(), "?".into(), Some("unreadable statement".into())),
    };
    let mut line = format!(
        "{:>7}  {:<24} {:<20} {:<9} {:<8} {:>7} {:>10}  {}",
        e.index,
        e.scheduled_for,
        e.collector_id,
        e.trigger,
        e.status,
        items,
        bytes,
        &hex::encode(e.content_digest)[..16]
    );
    if let Some(err) = error {
        line.push_str("  ");
        line.push_str(&err);
    }
    line
}

fn json_line(e: &EntryRecord, st: Option<Statement>) -> String {
    serde_json::json!({
        "index": e.index,
        "collector": e.collector_id,
        "status": e.status,
        "trigger": e.trigger,
        "scheduled_for": e.scheduled_for,
        "content_sha256": hex::encode(e.content_digest),
        "statement": st,
    })
    .to_string()
}

fn entry(ledger: &Ledger, index: u64) -> anyhow::Result<EntryRecord> {
    ledger.entry(index)?.with_context(|| {
        format!(
            "no entry {index}: the ledger has {} entries",
            ledger.size().unwrap_or(0)
        )
    })
}

/// Stream the content of an `ok` entry into `out`; a failed or skipped run has none, and the
/// error says why.
fn copy_content(ledger: &Ledger, e: &EntryRecord, out: &mut dyn Write) -> anyhow::Result<()> {
    if e.status != "ok" {
        let why = statement::read_unverified(&e.envelope)
            .ok()
            .and_then(|s| s.predicate.error)
            .unwrap_or_default();
        return Err(Failed(format!(
            "entry {} is a {} run of {} and has no content: {why}",
            e.index, e.status, e.collector_id
        ))
        .into());
    }
    ledger.copy_blob(&e.content_digest, out)?.with_context(|| {
        format!(
            "entry {}: content sha256:{} is missing from the ledger",
            e.index,
            hex::encode(e.content_digest)
        )
    })?;
    Ok(())
}

pub fn show(paths: &Paths, index: u64) -> anyhow::Result<()> {
    let ledger = paths.open_ledger()?;
    let e = entry(&ledger, index)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    copy_content(&ledger, &e, &mut out)?;
    out.flush()?;
    Ok(())
}

pub fn diff(paths: &Paths, old: u64, new: u64, json: bool) -> anyhow::Result<()> {
    let ledger = paths.open_ledger()?;
    let (a, b) = (entry(&ledger, old)?, entry(&ledger, new)?);
    if a.collector_id != b.collector_id {
        eprintln!(
            "note: entry {old} is from {} and entry {new} from {}",
            a.collector_id, b.collector_id
        );
    }
    let parse = |e: &EntryRecord| -> anyhow::Result<serde_json::Value> {
        let mut bytes = Vec::new();
        copy_content(&ledger, e, &mut bytes)?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "entry {} ({}) is not structured JSON evidence",
                e.index, e.collector_id
            )
        })
    };
    let d = collectors::diff::diff(&parse(&a)?, &parse(&b)?)
        .with_context(|| format!("cannot compare entries {old} and {new}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        println!(
            "changes from entry {old} ({}) to entry {new} ({}):",
            a.scheduled_for, b.scheduled_for
        );
        print!("{d}");
    }
    Ok(())
}
