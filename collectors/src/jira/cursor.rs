//! How far the query has been read: a [`Watermark`] over `fields.updated` that only advances
//! up to a settled time, plus the issues taken after it.
//!
//! Jira's search is eventually consistent (Cloud says so of its enhanced search; an index lags
//! on any deployment), and issues change while a run pages through them. So an issue updated
//! a moment before a run may not be found by it, while others updated later are. A watermark
//! at the greatest `updated` taken would then skip it forever. The watermark therefore never
//! moves past the **cutoff**, the server's time at the start of the run less
//! [`SETTLE`](super::SETTLE): everything updated before that was searchable when the run
//! started and was read by it. Issues taken with a later `updated` are remembered in
//! `settling` with that time, so the next run (which asks again from the watermark) skips them
//! unless they changed again, and folds them into the watermark once they are older than its
//! own cutoff.
//!
//! The cursor also records the JQL it belongs to: when the `jql` setting changes, the old
//! watermark says nothing about the new query, and the run starts over as a first run.

use crate::change::{utc_time, Watermark};
use crate::CollectError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `{"jql": …, "watermark": {"since", "taken_at_since"}, "settling": {"<key>": "<updated>"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Cursor {
    pub jql: String,
    pub watermark: Watermark,
    pub settling: BTreeMap<String, String>,
}

impl Cursor {
    /// The cursor handed to this run for the query `jql`. `first_since` is the `since` setting,
    /// the start of a first run. Also says whether a stored cursor was set aside because it
    /// belonged to another query.
    pub fn load(
        value: Option<&Value>,
        jql: &str,
        first_since: Option<&str>,
    ) -> Result<(Cursor, bool), CollectError> {
        let fresh = Cursor {
            jql: jql.to_owned(),
            watermark: Watermark {
                since: first_since.map(str::to_owned),
                ..Watermark::default()
            },
            settling: BTreeMap::new(),
        };
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok((fresh, false));
        };
        let bad = || CollectError::Other(format!("unreadable jira_issues cursor {value}"));
        let stored_jql = value.get("jql").and_then(Value::as_str).ok_or_else(bad)?;
        if stored_jql != jql {
            return Ok((fresh, true));
        }
        let watermark = Watermark::from_json(value.get("watermark"))?;
        let mut settling = BTreeMap::new();
        match value.get("settling") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, at) in map {
                    let at = at.as_str().and_then(utc_time).ok_or_else(bad)?;
                    settling.insert(key.clone(), at);
                }
            }
            Some(_) => return Err(bad()),
        }
        Ok((
            Cursor {
                jql: jql.to_owned(),
                watermark,
                settling,
            },
            false,
        ))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "jql": self.jql,
            "watermark": self.watermark.to_json(),
            "settling": self.settling,
        })
    }

    /// Whether the issue `key` last updated at `updated` was not taken yet.
    pub fn is_new(&self, key: &str, updated: &str) -> bool {
        if self.settling.get(key).is_some_and(|at| at == updated) {
            return false;
        }
        self.watermark.is_new(key, updated)
    }

    /// The cursor after a run that read every issue of the query (`seen`: key and `updated`,
    /// taken or not) and started at server time `cutoff + SETTLE`.
    pub fn advance(&mut self, seen: &[(String, String)], cutoff: &str) {
        let mut settling = BTreeMap::new();
        for (key, updated) in seen {
            if updated.as_str() <= cutoff {
                self.watermark.take(key, updated);
            } else {
                let at = settling.entry(key.clone()).or_insert_with(String::new);
                if updated > at {
                    *at = updated.clone();
                }
            }
        }
        self.settling = settling;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, t)| (k.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn the_watermark_stops_at_the_cutoff_and_later_issues_settle() {
        let (mut cursor, reset) = Cursor::load(None, "project = OPS", None).unwrap();
        assert!(!reset);
        let run1 = seen(&[
            ("OPS-1", "2026-03-01T10:00:00Z"),
            ("OPS-2", "2026-03-01T11:58:00Z"),
        ]);
        cursor.advance(&run1, "2026-03-01T11:50:00Z");
        assert_eq!(
            cursor.watermark.since.as_deref(),
            Some("2026-03-01T10:00:00Z")
        );
        assert_eq!(cursor.settling.len(), 1);
        let stored = Cursor::load(Some(&cursor.to_json()), "project = OPS", None)
            .unwrap()
            .0;
        assert_eq!(stored, cursor);

        // Next run: OPS-2 is unchanged, OPS-3 became visible late with an older time.
        assert!(!stored.is_new("OPS-2", "2026-03-01T11:58:00Z"));
        assert!(stored.is_new("OPS-2", "2026-03-01T12:30:00Z"));
        assert!(stored.is_new("OPS-3", "2026-03-01T11:00:00Z"));
        assert!(!stored.is_new("OPS-1", "2026-03-01T10:00:00Z"));

        let mut next = stored.clone();
        next.advance(
            &seen(&[
                ("OPS-1", "2026-03-01T10:00:00Z"),
                ("OPS-2", "2026-03-01T11:58:00Z"),
                ("OPS-3", "2026-03-01T11:00:00Z"),
            ]),
            "2026-03-01T12:50:00Z",
        );
        assert_eq!(
            next.watermark.since.as_deref(),
            Some("2026-03-01T11:58:00Z")
        );
        assert!(next.settling.is_empty());
    }

    #[test]
    fn another_query_starts_over_and_garbage_is_refused() {
        let mut cursor = Cursor::load(None, "project = OPS", Some("2026-01-01T00:00:00Z"))
            .unwrap()
            .0;
        assert!(!cursor.is_new("OPS-1", "2025-12-31T23:59:59Z"));
        assert!(cursor.is_new("OPS-1", "2026-01-01T00:00:00Z"));
        cursor.advance(
            &seen(&[("OPS-1", "2026-02-01T00:00:00Z")]),
            "2026-03-01T00:00:00Z",
        );
        let (other, reset) = Cursor::load(Some(&cursor.to_json()), "project = SEC", None).unwrap();
        assert!(reset);
        assert_eq!(other.watermark, Watermark::default());
        assert!(Cursor::load(Some(&json!({"since": "x"})), "project = OPS", None).is_err());
        assert!(Cursor::load(
            Some(&json!({"jql": "project = OPS", "settling": {"OPS-1": 5}})),
            "project = OPS",
            None
        )
        .is_err());
    }
}
