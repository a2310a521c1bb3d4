//! The one shape every change-ticket kind records (SOC 2 CC8.1), and the watermark that makes
//! their runs incremental.
//!
//! A change is a GitHub pull request, a GitLab merge request, a Jira issue or a ServiceNow
//! change request. Each run of a change kind records, as canonical JSON
//! `{"items": [ChangeItem, …]}` sorted by id, the *full current state* of every change that was
//! created or updated since the previous committed run. The bundle's population of a period
//! is then every distinct change id over the period's snapshots, with the fields of its latest
//! snapshot (agent/src/bundle/population.rs reads `type`, `id`, `title`, `author`,
//! `approvers`, `approved_at`, `merged_at`/`closed_at`).
//!
//! Times are RFC 3339 UTC with whole seconds (`2026-03-01T12:00:00Z`) whatever the vendor's
//! format, so that they compare as text and read the same in every population.

use crate::{canonical, CollectError, Content, SettingError, Snapshot, MEDIA_TYPE_JSON};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use regex::Regex;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

/// The `type` of a change item.
pub const ITEM_TYPE: &str = "change";

/// One approval of a change: who gave it and when.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Approval {
    pub by: String,
    pub at: Option<String>,
}

/// One change as recorded. Fields the vendor does not have are `null` or empty, never
/// invented.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeItem {
    /// Always [`ITEM_TYPE`].
    #[serde(rename = "type")]
    pub item_type: &'static str,
    /// Stable across runs and hosts: `github:<owner>/<repo>#<number>`,
    /// `gitlab:<project path>!<iid>`, `jira:<issue key>`, `servicenow:<number>`.
    pub id: String,
    /// `github`, `gitlab`, `jira`, `servicenow`.
    pub source: &'static str,
    pub title: String,
    /// Where a person sees the change (the web page, not the API URL).
    pub url: Option<String>,
    pub author: Option<String>,
    /// The vendor's state (`merged`, `closed`, `Done`, `Closed`, …).
    pub state: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// When the change took effect: the merge (pull and merge requests).
    pub merged_at: Option<String>,
    /// When the change was closed or resolved (tickets, change requests, unmerged requests).
    pub closed_at: Option<String>,
    /// Every approval, sorted by time then approver.
    pub approvals: Vec<Approval>,
    /// The distinct approvers, sorted.
    pub approvers: Vec<String>,
    /// The last approval at or before `merged_at` (else `closed_at`); without either, the
    /// last approval.
    pub approved_at: Option<String>,
    /// Whether an approval was given at or before the merge (or close). `None` when the
    /// change has neither.
    pub approved_before_merge: Option<bool>,
    /// Ticket keys the change refers to (`OPS-12`, `CHG0030001`), sorted and distinct.
    pub linked_tickets: Vec<String>,
    /// The target branch (pull/merge requests) or environment (change requests).
    pub target: Option<String>,
    /// Vendor facts worth keeping that have no common field (merge commit, CAB date, risk…).
    pub details: Map<String, Value>,
}

impl ChangeItem {
    /// A change with the given identity; the rest is filled by the kind, then [`Self::finish`].
    pub fn new(source: &'static str, id: String, title: String, state: String) -> ChangeItem {
        ChangeItem {
            item_type: ITEM_TYPE,
            id,
            source,
            title,
            url: None,
            author: None,
            state,
            created_at: None,
            updated_at: None,
            merged_at: None,
            closed_at: None,
            approvals: Vec::new(),
            approvers: Vec::new(),
            approved_at: None,
            approved_before_merge: None,
            linked_tickets: Vec::new(),
            target: None,
            details: Map::new(),
        }
    }

    /// Derive `approvers`, `approved_at` and `approved_before_merge` from `approvals`, and put
    /// the lists in order.
    pub fn finish(mut self) -> ChangeItem {
        self.approvals
            .sort_by(|a, b| (&a.at, &a.by).cmp(&(&b.at, &b.by)));
        self.approvals.dedup();
        let approvers: BTreeSet<&str> = self.approvals.iter().map(|a| a.by.as_str()).collect();
        self.approvers = approvers.into_iter().map(str::to_owned).collect();
        let effective = self.merged_at.as_ref().or(self.closed_at.as_ref());
        let before: Vec<&Approval> = self
            .approvals
            .iter()
            .filter(|a| match (&a.at, effective) {
                (Some(at), Some(end)) => at <= end,
                _ => false,
            })
            .collect();
        self.approved_at = match effective {
            Some(_) => before.last().and_then(|a| a.at.clone()),
            None => self.approvals.iter().rev().find_map(|a| a.at.clone()),
        };
        self.approved_before_merge = effective.map(|_| !before.is_empty());
        let tickets: BTreeSet<String> = self.linked_tickets.drain(..).collect();
        self.linked_tickets = tickets.into_iter().collect();
        self
    }
}

/// A vendor time as RFC 3339 UTC with whole seconds. Understands RFC 3339 with any offset and
/// fraction (GitHub, GitLab), Jira's `2026-03-01T12:00:00.000+0000`, and ServiceNow's
/// `2026-03-01 12:00:00` (UTC when read with `sysparm_display_value=false`).
pub fn utc_time(text: &str) -> Option<String> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc()))
        .ok()?;
    Some(parsed.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The `since` setting of the change kinds (where a first run starts): a date, meaning its
/// midnight UTC, or an RFC 3339 time; as RFC 3339 UTC with whole seconds.
pub fn since_setting(text: &str) -> Result<String, SettingError> {
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok();
    let rfc3339 = || {
        DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    };
    date.map(|d| format!("{d}T00:00:00Z"))
        .or_else(rfc3339)
        .ok_or_else(|| {
            SettingError::new(
                Some("since"),
                format!("{text:?} is neither a date (2026-01-01) nor an RFC 3339 time"),
            )
        })
}

/// Jira-style ticket keys (`OPS-12`, `MY_PROJ-7`); boundaries are checked by hand in
/// [`ticket_keys`] because the regex crate has no look-around.
static TICKET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Z][A-Z0-9_]+-[0-9]+").unwrap_or_else(|_| unreachable!("constant regex"))
});

/// Prefixes of standards and algorithms that look like ticket keys in prose and branch
/// names (`UTF-8`, `SHA-256`, `RFC-3339`, `CVE-2024`), never taken as tickets.
const NOT_TICKETS: &[&str] = &[
    "AES", "CVE", "CWE", "HTTP", "IEEE", "ISO", "RFC", "SHA", "TLS", "UTF",
];

/// The Jira-style keys in `texts` (titles, descriptions, branch names), the one rule of every
/// kind that reads keys out of free text: an uppercase key of two or more characters, `-`, a number
/// not starting with 0, with no letter or digit glued to either end, and not a standard's
/// name ([`NOT_TICKETS`]).
pub fn ticket_keys(texts: &[&str]) -> Vec<String> {
    let mut keys = Vec::new();
    for text in texts {
        for found in TICKET_KEY.find_iter(text) {
            let before = text[..found.start()].chars().next_back();
            let after = text[found.end()..].chars().next();
            let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
            let key = found.as_str();
            let Some((project, number)) = key.rsplit_once('-') else {
                continue;
            };
            if glued(before)
                || glued(after)
                || number.starts_with('0')
                || NOT_TICKETS.contains(&project)
            {
                continue;
            }
            keys.push(key.to_owned());
        }
    }
    keys
}

/// The snapshot of one run: the changes sorted by id (a change met twice in one run, e.g. on
/// two pages while it was being edited, is kept once, as last met), `cursor` and `details`.
///
/// Encoding and hashing thousands of changes takes a noticeable time (about 0.5 s for 10,000
/// pull requests), so it runs on the blocking pool, not on the run's async worker.
pub async fn snapshot(
    items: Vec<ChangeItem>,
    cursor: Value,
    details: Value,
) -> Result<Snapshot, CollectError> {
    tokio::task::spawn_blocking(move || encode(items, cursor, details))
        .await
        .map_err(|e| CollectError::Other(format!("encoding the changes stopped: {e}")))?
}

fn encode(items: Vec<ChangeItem>, cursor: Value, details: Value) -> Result<Snapshot, CollectError> {
    let by_id: BTreeMap<String, ChangeItem> =
        items.into_iter().map(|i| (i.id.clone(), i)).collect();
    let item_count = by_id.len() as u64;
    let items: Vec<&ChangeItem> = by_id.values().collect();
    let bytes = canonical::to_vec(&json!({ "items": items }))
        .map_err(|e| CollectError::Other(format!("cannot encode the changes: {e}")))?;
    Ok(Snapshot {
        content: Content::from_bytes(bytes),
        media_type: MEDIA_TYPE_JSON,
        item_count,
        cursor: Some(cursor),
        details,
    })
}

/// How far a scope (a repository, a project, a query) has been read: the greatest `updated`
/// time taken, and the ids taken at exactly that time.
///
/// Vendors filter on updated time with whole-second (or coarser) precision, so the next run
/// asks again from `since` *inclusive* and skips the ids already taken at that second. A change
/// updated again later has a later time and is taken again, with its new state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    pub since: Option<String>,
    pub taken_at_since: BTreeSet<String>,
}

impl Watermark {
    /// The watermark stored as `{"since": …, "taken_at_since": […]}`; `None` or `null` is a
    /// first run. Anything else is a cursor this version did not write.
    pub fn from_json(value: Option<&Value>) -> Result<Watermark, CollectError> {
        let bad = || CollectError::Other(format!("unreadable cursor {}", json!(value)));
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(Watermark::default());
        };
        let since = match value.get("since") {
            Some(Value::String(s)) => Some(utc_time(s).ok_or_else(bad)?),
            Some(Value::Null) | None => None,
            Some(_) => return Err(bad()),
        };
        let taken = match value.get("taken_at_since") {
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|id| id.as_str().map(str::to_owned).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
            None => BTreeSet::new(),
            Some(_) => return Err(bad()),
        };
        Ok(Watermark {
            since,
            taken_at_since: taken,
        })
    }

    pub fn to_json(&self) -> Value {
        json!({"since": self.since, "taken_at_since": self.taken_at_since})
    }

    /// Whether a change updated at `updated` (RFC 3339 UTC) is new since this watermark.
    pub fn is_new(&self, id: &str, updated: &str) -> bool {
        match &self.since {
            None => true,
            Some(since) => {
                updated > since.as_str()
                    || (updated == since.as_str() && !self.taken_at_since.contains(id))
            }
        }
    }

    /// Whether everything updated strictly before `updated` was already taken: a listing
    /// sorted by update time, newest first, can stop there.
    pub fn is_older(&self, updated: &str) -> bool {
        self.since.as_deref().is_some_and(|since| updated < since)
    }

    /// Record that the change `id` updated at `updated` was taken.
    pub fn take(&mut self, id: &str, updated: &str) {
        match self.since.as_deref() {
            Some(since) if updated < since => {}
            Some(since) if updated == since => {
                self.taken_at_since.insert(id.to_owned());
            }
            _ => {
                self.since = Some(updated.to_owned());
                self.taken_at_since = BTreeSet::from([id.to_owned()]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_times_become_utc_seconds() {
        for (text, want) in [
            ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z"),
            ("2026-03-01T12:00:00.123Z", "2026-03-01T12:00:00Z"),
            ("2026-03-01T13:00:00+01:00", "2026-03-01T12:00:00Z"),
            ("2026-03-01T12:00:00.000+0000", "2026-03-01T12:00:00Z"),
            ("2026-03-01T14:00:00.000+0200", "2026-03-01T12:00:00Z"),
            ("2026-03-01 12:00:00", "2026-03-01T12:00:00Z"),
        ] {
            assert_eq!(utc_time(text).as_deref(), Some(want), "{text}");
        }
        assert_eq!(utc_time("yesterday"), None);
        assert_eq!(utc_time(""), None);
    }

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert_eq!(since_setting("2026-01-01").unwrap(), "2026-01-01T00:00:00Z");
        assert_eq!(
            since_setting("2026-01-01T02:00:00.5+02:00").unwrap(),
            "2026-01-01T00:00:00Z"
        );
        let err = since_setting("last week").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("since"));
    }

    fn approval(by: &str, at: &str) -> Approval {
        Approval {
            by: by.into(),
            at: Some(at.into()),
        }
    }

    #[test]
    fn ticket_keys_are_found_in_prose_and_branch_names() {
        let found = ticket_keys(&[
            "OPS-12: fix login (see also MY_PROJ-7, and not UTF-8 or SHA-256)",
            "Closes OPS-13.\nRefs: OPS-12",
            "feature/OPS-14-new-login",
            "hotfix/ops-15 abcOPS-16 OPS-017 OPS-18x OPS-19_fix",
        ]);
        assert_eq!(
            found,
            vec![
                "OPS-12",
                "MY_PROJ-7",
                "OPS-13",
                "OPS-12",
                "OPS-14",
                "OPS-19"
            ]
        );
    }

    #[test]
    fn approval_before_merge_is_derived() {
        let mut item =
            ChangeItem::new("github", "github:o/r#1".into(), "t".into(), "merged".into());
        item.merged_at = Some("2026-03-01T12:00:00Z".into());
        item.approvals = vec![
            approval("carol", "2026-03-02T09:00:00Z"),
            approval("bob", "2026-03-01T11:00:00Z"),
            approval("bob", "2026-03-01T11:00:00Z"),
        ];
        item.linked_tickets = vec!["OPS-2".into(), "OPS-1".into(), "OPS-2".into()];
        let item = item.finish();
        assert_eq!(item.approvers, vec!["bob", "carol"]);
        assert_eq!(item.approvals.len(), 2);
        assert_eq!(item.approved_at.as_deref(), Some("2026-03-01T11:00:00Z"));
        assert_eq!(item.approved_before_merge, Some(true));
        assert_eq!(item.linked_tickets, vec!["OPS-1", "OPS-2"]);

        let mut late =
            ChangeItem::new("github", "github:o/r#2".into(), "t".into(), "merged".into());
        late.merged_at = Some("2026-03-01T12:00:00Z".into());
        late.approvals = vec![approval("carol", "2026-03-02T09:00:00Z")];
        let late = late.finish();
        assert_eq!(late.approved_before_merge, Some(false));
        assert_eq!(late.approved_at, None);

        let open = ChangeItem::new("jira", "jira:OPS-3".into(), "t".into(), "Open".into());
        assert_eq!(open.finish().approved_before_merge, None);
    }

    #[test]
    fn the_watermark_skips_what_was_taken_at_its_second_only() {
        let mut mark = Watermark::default();
        assert!(mark.is_new("a", "2026-03-01T12:00:00Z"));
        mark.take("a", "2026-03-01T12:00:00Z");
        mark.take("b", "2026-03-01T12:00:00Z");
        mark.take("c", "2026-03-01T11:00:00Z");
        let stored = Watermark::from_json(Some(&mark.to_json())).unwrap();
        assert_eq!(stored, mark);
        assert!(!stored.is_new("a", "2026-03-01T12:00:00Z"));
        assert!(stored.is_new("d", "2026-03-01T12:00:00Z"));
        assert!(stored.is_new("a", "2026-03-01T12:00:01Z"));
        assert!(!stored.is_new("c", "2026-03-01T11:00:00Z"));
        assert!(stored.is_older("2026-03-01T11:59:59Z"));

        mark.take("e", "2026-03-01T13:00:00Z");
        assert_eq!(mark.taken_at_since, BTreeSet::from(["e".to_owned()]));
        assert!(Watermark::from_json(Some(&json!({"since": 5}))).is_err());
        assert_eq!(
            Watermark::from_json(Some(&Value::Null)).unwrap(),
            Watermark::default()
        );
    }

    #[tokio::test]
    async fn a_snapshot_is_sorted_by_id_with_each_change_once() {
        let item = |id: &str, title: &str| {
            ChangeItem::new("jira", id.into(), title.into(), "Done".into()).finish()
        };
        let snap = snapshot(
            vec![
                item("jira:B-1", "b"),
                item("jira:A-1", "old"),
                item("jira:A-1", "new"),
            ],
            json!({"x": 1}),
            json!({}),
        )
        .await
        .unwrap();
        assert_eq!(snap.item_count, 2);
        let doc: Value = serde_json::from_slice(snap.content.as_bytes().unwrap()).unwrap();
        assert_eq!(doc["items"][0]["id"], "jira:A-1");
        assert_eq!(doc["items"][0]["title"], "new");
        assert_eq!(doc["items"][0]["type"], "change");
        assert_eq!(doc["items"][1]["id"], "jira:B-1");
    }
}
