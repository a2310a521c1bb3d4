//! Comparing two structured snapshots: what changed between two dates, for an access review.
//!
//! Input: two snapshots in the items shape (`{"items": [{"type": …, "id": …, …}, …]}`, `(type,
//! id)` unique). Output: the items added and removed, and for items present in both, each
//! top-level field that changed (old and new value). [`Diff`] serializes to JSON for `--json`
//! and displays as a text report grouped by item type:
//!
//! ```text
//! user: 1 added, 1 changed
//!   + user bob (uid 1001)
//!   ~ user alice: shell /bin/sh -> /bin/bash
//! ssh_key: 1 removed
//!   - ssh_key alice SHA256:… (ssh-ed25519, alice@laptop)
//! ```
//!
//! Guarantees: the result does not depend on the order of items or keys; input not in the items
//! shape is a [`DiffError`] saying which snapshot and what is wrong, never a panic.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Lines of a multi-line value (a file's content) shown at most per change in the text report.
const MAX_LINES_SHOWN: usize = 20;
/// Single-line values longer than this are shortened in the text report.
const MAX_VALUE_CHARS: usize = 160;

/// What changed from one snapshot to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// Items only in the new snapshot, whole, sorted by (type, id).
    pub added: Vec<Value>,
    /// Items only in the old snapshot, whole, sorted by (type, id).
    pub removed: Vec<Value>,
    /// Items in both whose fields differ, sorted by (type, id).
    pub changed: Vec<ChangedItem>,
}

/// An item present in both snapshots, with the fields that differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangedItem {
    #[serde(rename = "type")]
    pub item_type: String,
    pub id: String,
    /// Sorted by field name.
    pub changes: Vec<FieldChange>,
    /// The item as it is in the new snapshot (for labels such as a sudo rule's text).
    #[serde(skip)]
    new_item: Value,
}

/// One field of a changed item; `old`/`new` are `null` where the field is absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

/// Input that cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {side} snapshot is not structured evidence in the items shape: {reason}")]
pub struct DiffError {
    /// "old" or "new".
    pub side: &'static str,
    pub reason: String,
}

impl Diff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

type Key = (String, String);

/// Compare two structured snapshots.
pub fn diff(old: &Value, new: &Value) -> Result<Diff, DiffError> {
    let old_items = items_of(old, "old")?;
    let new_items = items_of(new, "new")?;
    let mut result = Diff {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for (key, old_item) in &old_items {
        match new_items.get(key) {
            None => result.removed.push(Value::Object((*old_item).clone())),
            Some(new_item) => {
                let changes = field_changes(old_item, new_item);
                if !changes.is_empty() {
                    result.changed.push(ChangedItem {
                        item_type: key.0.clone(),
                        id: key.1.clone(),
                        changes,
                        new_item: Value::Object((*new_item).clone()),
                    });
                }
            }
        }
    }
    for (key, new_item) in &new_items {
        if !old_items.contains_key(key) {
            result.added.push(Value::Object((*new_item).clone()));
        }
    }
    Ok(result)
}

fn items_of<'v>(
    snapshot: &'v Value,
    side: &'static str,
) -> Result<BTreeMap<Key, &'v Map<String, Value>>, DiffError> {
    let fail = |reason: String| DiffError { side, reason };
    let items = snapshot
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("it is not an object with an \"items\" array".to_owned()))?;
    let mut by_key = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let object = item
            .as_object()
            .ok_or_else(|| fail(format!("item {index} is not an object")))?;
        let field = |name: &str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| fail(format!("item {index} has no string \"{name}\"")))
        };
        let key = (field("type")?, field("id")?);
        if by_key.insert(key.clone(), object).is_some() {
            return Err(fail(format!(
                "item {index} repeats type {:?} id {:?}",
                key.0, key.1
            )));
        }
    }
    Ok(by_key)
}

fn field_changes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<FieldChange> {
    let fields: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    fields
        .into_iter()
        .filter(|f| *f != "type" && *f != "id")
        .filter_map(|field| {
            let (o, n) = (old.get(field), new.get(field));
            (o != n).then(|| FieldChange {
                field: field.clone(),
                old: o.cloned().unwrap_or(Value::Null),
                new: n.cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// How an item is named in the report: its id, with what a reviewer needs to recognise it.
fn label(item: &Value) -> String {
    let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
    let text = |name: &str| {
        item.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match item.get("type").and_then(Value::as_str).unwrap_or_default() {
        "user" => match item.get("uid") {
            Some(uid) => format!("{id} (uid {uid})"),
            None => id.to_owned(),
        },
        "group" => match item.get("gid") {
            Some(gid) => format!("{id} (gid {gid})"),
            None => id.to_owned(),
        },
        "ssh_key" => match (text("key_type"), text("comment")) {
            (Some(kind), Some(comment)) => format!("{id} ({kind}, {comment})"),
            (Some(kind), None) => format!("{id} ({kind})"),
            _ => id.to_owned(),
        },
        "sudo_rule" => match text("rule") {
            Some(rule) => format!("{rule:?}"),
            None => id.to_owned(),
        },
        _ => id.to_owned(),
    }
}

fn short(value: &Value) -> String {
    let text = match value {
        Value::Null => "(none)".to_owned(),
        Value::String(s) if s.is_empty() => "\"\"".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(list) => {
            let parts: Vec<String> = list.iter().map(short).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Write one field change: `field old -> new`, `field +a -b` for lists, and a line summary
/// plus the differing lines for multi-line text.
fn write_change(f: &mut fmt::Formatter<'_>, head: &str, change: &FieldChange) -> fmt::Result {
    let field = &change.field;
    match (&change.old, &change.new) {
        (Value::Array(old), Value::Array(new)) => {
            let mut parts = Vec::new();
            parts.extend(
                new.iter()
                    .filter(|v| !old.contains(v))
                    .map(|v| format!("+{}", short(v))),
            );
            parts.extend(
                old.iter()
                    .filter(|v| !new.contains(v))
                    .map(|v| format!("-{}", short(v))),
            );
            if parts.is_empty() {
                parts.push("(reordered)".to_owned());
            }
            writeln!(f, "{head}: {field} {}", parts.join(" "))
        }
        (Value::String(old), Value::String(new)) if old.contains('\n') || new.contains('\n') => {
            let (removed, added) = line_changes(old, new);
            writeln!(
                f,
                "{head}: {field} changed ({} lines removed, {} added)",
                removed.len(),
                added.len()
            )?;
            let shown = removed
                .iter()
                .map(|l| ('-', l))
                .chain(added.iter().map(|l| ('+', l)));
            for (sign, line) in shown.clone().take(MAX_LINES_SHOWN) {
                writeln!(f, "      {sign} {}", short(&Value::from(*line)))?;
            }
            let hidden = shown.count().saturating_sub(MAX_LINES_SHOWN);
            if hidden > 0 {
                writeln!(f, "      … {hidden} more lines")?;
            }
            Ok(())
        }
        (old, new) => writeln!(f, "{head}: {field} {} -> {}", short(old), short(new)),
    }
}

/// Lines only in `old` and lines only in `new`, as multisets, each in its text's order.
fn line_changes<'a>(old: &'a str, new: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let only_in = |a: &'a str, b: &'a str| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for line in b.lines() {
            *counts.entry(line).or_default() += 1;
        }
        a.lines()
            .filter(|line| match counts.get_mut(line) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            })
            .collect::<Vec<_>>()
    };
    (only_in(old, new), only_in(new, old))
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        let type_of = |item: &Value| {
            item.get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut types: BTreeSet<String> = BTreeSet::new();
        types.extend(self.added.iter().map(type_of));
        types.extend(self.removed.iter().map(type_of));
        types.extend(self.changed.iter().map(|c| c.item_type.clone()));
        for kind in &types {
            let added: Vec<&Value> = self.added.iter().filter(|i| type_of(i) == *kind).collect();
            let removed: Vec<&Value> = self
                .removed
                .iter()
                .filter(|i| type_of(i) == *kind)
                .collect();
            let changed: Vec<&ChangedItem> = self
                .changed
                .iter()
                .filter(|c| c.item_type == *kind)
                .collect();
            let counts: Vec<String> = [
                (added.len(), "added"),
                (removed.len(), "removed"),
                (changed.len(), "changed"),
            ]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            writeln!(f, "{kind}: {}", counts.join(", "))?;
            for item in added {
                writeln!(f, "  + {kind} {}", label(item))?;
            }
            for item in removed {
                writeln!(f, "  - {kind} {}", label(item))?;
            }
            for item in changed {
                let head = format!("  ~ {kind} {}", label(&item.new_item));
                for change in &item.changes {
                    write_change(f, &head, change)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_of_items_and_keys_does_not_matter() {
        let a = json!({"items": [{"type": "group", "id": "g", "members": ["a"]}, {"id": "u", "type": "user", "uid": 1}]});
        let b = json!({"items": [{"uid": 1, "type": "user", "id": "u"}, {"type": "group", "id": "g", "members": ["a"]}]});
        assert!(diff(&a, &b).unwrap().is_empty());
        assert_eq!(diff(&a, &b).unwrap().to_string(), "no changes\n");
    }

    #[test]
    fn malformed_input_names_the_side() {
        let good = json!({"items": []});
        let err = diff(&good, &json!([1, 2])).unwrap_err();
        assert_eq!(err.side, "new");
        let err = diff(&json!({"items": [{"type": "user"}]}), &good).unwrap_err();
        assert_eq!(err.to_string(), "the old snapshot is not structured evidence in the items shape: item 0 has no string \"id\"");
        let dup = json!({"items": [{"type": "u", "id": "a"}, {"type": "u", "id": "a"}]});
        assert!(diff(&dup, &good).unwrap_err().reason.contains("repeats"));
    }

    #[test]
    fn content_changes_show_the_lines() {
        let old = json!({"items": [{"type": "file", "id": "/etc/ssh/sshd_config", "content": "Port 22\nPermitRootLogin yes\n"}]});
        let new = json!({"items": [{"type": "file", "id": "/etc/ssh/sshd_config", "content": "Port 22\nPermitRootLogin no\n"}]});
        assert_eq!(
            diff(&old, &new).unwrap().to_string(),
            "file: 1 changed\n  ~ file /etc/ssh/sshd_config: content changed (1 lines removed, 1 added)\n      - PermitRootLogin yes\n      + PermitRootLogin no\n"
        );
    }
}
