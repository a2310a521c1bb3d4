//! Wall-clock steps backwards, seen by the ledger itself.
//!
//! Appends are serialized (one write transaction at a time, across processes), and each one
//! signs a checkpoint stamped with the wall clock of its moment. So, in real time, every append
//! begins after the previous checkpoint's time was read: if the wall clock at the start of an
//! append is *earlier* than that time, the clock went back in between (an operator's `date`,
//! an NTP step, a VM restored from a snapshot). Entry order is the leaf order and cannot go
//! back, but the times written into the entries would, with nothing saying why. The entries of
//! that append therefore carry the observation in their predicate's `details`
//! (`clock_anomaly`, signed with the rest), and it is logged.
//!
//! A step forward needs no note here: the scheduler records the fire times it skipped over as
//! `missed` runs.

use super::{parse_time, timestamp, LedgerError};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

/// A step back of at most this much is not reported: a leap second is inserted by stepping
/// back one second, and it is no anomaly.
const TOLERANCE_MS: i64 = 1000;

/// The `clock_anomaly` object for the entries of an append that starts at `now`, if the
/// wall clock is behind the time of the latest checkpoint.
pub(super) fn went_back(
    conn: &Connection,
    now: DateTime<Utc>,
) -> Result<Option<serde_json::Value>, LedgerError> {
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT size, created_at FROM checkpoints ORDER BY size DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((size, created_at)) = last else {
        return Ok(None);
    };
    let before = parse_time(&created_at)?;
    let behind_ms = (before - now).num_milliseconds();
    if behind_ms <= TOLERANCE_MS {
        return Ok(None);
    }
    tracing::warn!(
        behind_ms,
        checkpoint = size,
        checkpoint_time = %created_at,
        now = %timestamp(now),
        "the wall clock went back: it is behind the time of the last checkpoint; the entries \
         of this append record it (details.clock_anomaly)"
    );
    Ok(Some(serde_json::json!({
        "kind": "wall_clock_went_back",
        "observed_at": timestamp(now),
        "last_checkpoint_size": size,
        "last_checkpoint_time": created_at,
        "behind_ms": behind_ms,
    })))
}

/// `details` with the anomaly added under `clock_anomaly` (the agent's own word replaces a
/// collector's key of that name; details that are not an object are kept under `run`).
pub(super) fn annotate(
    details: serde_json::Value,
    anomaly: &serde_json::Value,
) -> serde_json::Value {
    let mut object = match details {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("run".into(), other);
            map
        }
    };
    object.insert("clock_anomaly".into(), anomaly.clone());
    serde_json::Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anomaly_joins_the_collectors_details_or_stands_alone() {
        let a = serde_json::json!({"behind_ms": 5000});
        assert_eq!(
            annotate(serde_json::json!({"files": 3}), &a),
            serde_json::json!({"files": 3, "clock_anomaly": {"behind_ms": 5000}})
        );
        assert_eq!(
            annotate(serde_json::Value::Null, &a),
            serde_json::json!({"clock_anomaly": {"behind_ms": 5000}})
        );
        assert_eq!(
            annotate(serde_json::json!([1]), &a),
            serde_json::json!({"run": [1], "clock_anomaly": {"behind_ms": 5000}})
        );
    }
}
