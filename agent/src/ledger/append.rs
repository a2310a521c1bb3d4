//! One append: the content blob, the signed statement, the leaf and the tree nodes it
//! completes, the cursor the run advanced, and the pending-run row it closes. Called inside the
//! transaction that `Ledger::append` commits together with the new checkpoint.

use super::{blobs, timestamp, LedgerError, NewEntry, Outcome, SqlNodes};
use crate::statement::{self, CollectorRef, SnapshotPredicate, Statement, Status};
use crate::tlog::merkle::{self, NodeSource};
use crate::tlog::note::NoteSigner;
use crate::tlog::{tiles, Hash};
use rusqlite::{params, Connection};

/// Store leaf `index` and every perfect subtree it completes.
fn insert_leaf(conn: &Connection, index: u64, leaf: Hash) -> Result<(), LedgerError> {
    let mut insert =
        conn.prepare_cached("INSERT INTO tree_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
    let (mut level, mut idx, mut hash) = (0u32, index, leaf);
    insert.execute(params![level, idx as i64, &hash[..]])?;
    while idx & 1 == 1 {
        let left = SqlNodes(conn).node(level, idx - 1)?;
        hash = merkle::node_hash(&left, &hash);
        level += 1;
        idx >>= 1;
        insert.execute(params![level, idx as i64, &hash[..]])?;
    }
    Ok(())
}

/// Largest `error` text kept in a statement; the rest is cut with a note.
const MAX_ERROR_BYTES: usize = 4096;
/// Largest `details` object kept in a statement. Together these keep every envelope well under
/// the 64 KiB a C2SP entry bundle allows per entry.
const MAX_DETAILS_BYTES: usize = 32 * 1024;

/// Keep a run's error text and details small enough for a log entry, saying what was cut.
fn bound_metadata(
    error: Option<String>,
    details: serde_json::Value,
) -> (Option<String>, serde_json::Value) {
    let error = error.map(|mut e| {
        if e.len() > MAX_ERROR_BYTES {
            let mut cut = MAX_ERROR_BYTES;
            while !e.is_char_boundary(cut) {
                cut -= 1;
            }
            let total = e.len();
            e.truncate(cut);
            e.push_str(&format!(" … ({total} bytes, cut to {cut})"));
        }
        e
    });
    let size = serde_json::to_vec(&details).map(|v| v.len()).unwrap_or(0);
    let details = if size > MAX_DETAILS_BYTES {
        serde_json::json!({
            "omitted": format!("the run's details were {size} bytes, over the {MAX_DETAILS_BYTES}-byte limit of a statement"),
        })
    } else {
        details
    };
    (error, details)
}

pub(super) fn append_one(
    conn: &Connection,
    signer: &NoteSigner,
    host_id: &str,
    index: u64,
    entry: NewEntry,
    clock_anomaly: Option<&serde_json::Value>,
) -> Result<(), LedgerError> {
    let empty = collectors::Content::from_bytes(Vec::new());
    let (status, error, content, media_type, item_count, cursor, details) = match &entry.outcome {
        Outcome::Ok(s) => (
            Status::Ok,
            None,
            &s.content,
            s.media_type,
            s.item_count,
            s.cursor.as_ref(),
            s.details.clone(),
        ),
        Outcome::Failed(e) => (
            Status::Failed,
            Some(e.clone()),
            &empty,
            collectors::MEDIA_TYPE_OCTETS,
            0,
            None,
            serde_json::Value::Null,
        ),
        Outcome::Skipped(r) => (
            Status::Skipped,
            Some(r.clone()),
            &empty,
            collectors::MEDIA_TYPE_OCTETS,
            0,
            None,
            serde_json::Value::Null,
        ),
    };
    let (error, mut details) = bound_metadata(error, details);
    if let Some(anomaly) = clock_anomaly {
        details = super::clock::annotate(details, anomaly);
    }
    let digest = content.sha256();
    let mut reader = content.reader().map_err(|e| LedgerError::Io {
        op: "open snapshot content",
        source: e,
    })?;
    blobs::put(conn, &digest, content.size(), &mut reader)?;

    let scheduled_for = timestamp(entry.scheduled_for);
    let finished_at = timestamp(entry.finished_at);
    let predicate = SnapshotPredicate {
        host: host_id.to_owned(),
        collector: CollectorRef {
            id: entry.collector_id.clone(),
            kind: entry.kind.clone(),
        },
        log_index: index,
        trigger: entry.trigger,
        scheduled_for: scheduled_for.clone(),
        started_at: timestamp(entry.started_at),
        finished_at: finished_at.clone(),
        status,
        error,
        content_size: content.size(),
        media_type: media_type.to_owned(),
        item_count,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        config_sha256: hex::encode(entry.config_sha256),
        schedule: entry.schedule.clone(),
        details,
    };
    let payload = Statement::new(&entry.collector_id, &hex::encode(digest), predicate).to_payload();
    let envelope = statement::sign(&payload, signer);
    if envelope.len() > tiles::MAX_ENTRY_SIZE {
        return Err(LedgerError::Corrupt(format!(
            "the statement of {} is {} bytes, over the {} a log entry may have",
            entry.collector_id,
            envelope.len(),
            tiles::MAX_ENTRY_SIZE
        )));
    }
    let leaf = merkle::leaf_hash(&envelope);
    conn.prepare_cached(
        "INSERT INTO entries (idx, collector_id, status, trigger, scheduled_for, finished_at,
            content_digest, envelope, leaf_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        index as i64,
        entry.collector_id,
        status.as_str(),
        entry.trigger.as_str(),
        scheduled_for,
        finished_at,
        &digest[..],
        envelope,
        &leaf[..],
    ])?;
    insert_leaf(conn, index, leaf)?;
    conn.prepare_cached("DELETE FROM pending_runs WHERE collector_id = ?1 AND scheduled_for = ?2")?
        .execute(params![entry.collector_id, scheduled_for])?;
    if let Some(cursor) = cursor {
        conn.prepare_cached(
            "INSERT INTO cursors (collector_id, cursor, entry_idx) VALUES (?1, ?2, ?3)
             ON CONFLICT (collector_id) DO UPDATE SET cursor = excluded.cursor, entry_idx = excluded.entry_idx",
        )?
        .execute(params![entry.collector_id, cursor.to_string(), index as i64])?;
    }
    Ok(())
}
