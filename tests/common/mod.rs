//! Helpers shared by the end-to-end test crates.
#![allow(dead_code)] // each test crate uses a subset

pub mod bundle;
pub mod daemon;
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

/// (index, envelope) of every committed entry, read through a separate read-only connection
/// (as another process sees them); empty while there is no ledger or no schema yet.
pub fn committed(ledger: &Path) -> Vec<(i64, Vec<u8>)> {
    use rusqlite::OpenFlags;
    if !ledger.exists() {
        return Vec::new();
    }
    let Ok(conn) = Connection::open_with_flags(ledger, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("set a busy timeout");
    let Ok(mut stmt) = conn.prepare("SELECT idx, envelope FROM entries ORDER BY idx") else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("read the entries")
        .collect::<Result<_, _>>()
        .expect("read the entries")
}

/// `evidence-agent --data-dir DATA verify` must pass; `when` names the moment in the message.
pub fn assert_verifies(data: &Path, when: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
        .arg("--data-dir")
        .arg(data)
        .arg("verify")
        .output()
        .expect("run verify");
    assert!(
        out.status.success(),
        "verify failed {when}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
