//! What the benchmarks share: an `ok` entry around given content.

use chrono::Utc;
use collectors::{Content, Snapshot};
use evidence_agent::ledger::{NewEntry, Outcome};
use evidence_agent::statement::Trigger;

/// Entry `i`, a successful run of `kind` with `content` as its JSON snapshot, timed now.
pub fn ok_entry(i: u64, kind: &str, content: Vec<u8>) -> NewEntry {
    let now = Utc::now();
    NewEntry {
        collector_id: format!("c{}", i % 10),
        kind: kind.into(),
        trigger: Trigger::Schedule,
        scheduled_for: now,
        started_at: now,
        finished_at: now,
        config_sha256: [0; 32],
        schedule: None,
        outcome: Outcome::Ok(Snapshot {
            content: Content::from_bytes(content),
            media_type: collectors::MEDIA_TYPE_JSON,
            item_count: 1,
            cursor: None,
            details: serde_json::Value::Null,
        }),
    }
}
