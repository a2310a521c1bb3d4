//! Helpers shared by the end-to-end test crates.
#![allow(dead_code)] // each test crate uses a subset

pub mod bundle;
pub mod s3;

use chrono::{DateTime, Utc};
use collectors::{Content, Snapshot};
use evidence_agent::ledger::{NewEntry, Outcome};
use evidence_agent::statement::Trigger;
use rusqlite::Connection;
use std::path::Path;

/// Open a ledger file with plain SQLite, as an attacker with write access would, and drop the
/// triggers that guard the append-only tables so that rows can be changed or deleted.
pub fn attacker(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open the ledger with plain SQLite");
    for t in evidence_agent::ledger::APPEND_ONLY_TABLES {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {t}_no_update; DROP TRIGGER IF EXISTS {t}_no_delete;"
        ))
        .expect("drop the append-only triggers");
    }
    conn
}

/// Entry `i` of a test ledger: a scheduled run of collector `c<i mod 3>`, `i` minutes after
/// `start`, taking one second, with `outcome`.
pub fn test_entry(i: u64, start: DateTime<Utc>, outcome: Outcome) -> NewEntry {
    let t = start + chrono::Duration::minutes(i as i64);
    NewEntry {
        collector_id: format!("c{}", i % 3),
        kind: "command".into(),
        trigger: Trigger::Schedule,
        scheduled_for: t,
        started_at: t,
        finished_at: t + chrono::Duration::seconds(1),
        config_sha256: [9; 32],
        // Collector c<k> runs every third minute from minute k, as its entries do (for `start`
        // on a minute divisible by 3).
        schedule: Some(format!("{}/3 * * * *", i % 3)),
        outcome,
    }
}

/// A successful run whose content is the JSON `body` with one item.
pub fn ok_json(body: impl Into<Vec<u8>>, cursor: Option<serde_json::Value>) -> Outcome {
    Outcome::Ok(Snapshot {
        content: Content::from_bytes(body.into()),
        media_type: collectors::MEDIA_TYPE_JSON,
        item_count: 1,
        cursor,
        details: serde_json::Value::Null,
    })
}

/// A scheduled run of `collector` (of `kind`, on `schedule`) at `at`, taking a second.
pub fn scheduled_run(
    collector: &str,
    kind: &str,
    schedule: &str,
    at: DateTime<Utc>,
    outcome: Outcome,
) -> NewEntry {
    NewEntry {
        collector_id: collector.into(),
        kind: kind.into(),
        trigger: Trigger::Schedule,
        scheduled_for: at,
        started_at: at,
        finished_at: at + chrono::Duration::seconds(1),
        config_sha256: [3; 32],
        schedule: Some(schedule.into()),
        outcome,
    }
}

/// A finished command's stdout then stderr, for assertion messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
