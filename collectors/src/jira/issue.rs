//! One Jira issue, as the search returns it with its changelog, turned into a [`ChangeItem`].
//!
//! Pure functions of the JSON: no I/O. The shapes are those of Jira Cloud's REST API v3 and
//! Jira Data Center's REST API v2, which differ only in how a person is named (Cloud has
//! `accountId` and `displayName`, no user name; Data Center has `name` and `key`) and in
//! rich-text fields (Cloud v3 sends Atlassian Document Format where Data Center sends text).

use super::Deployment;
use crate::change::{utc_time, Approval, ChangeItem};
use serde_json::{json, Map, Value};
use url::Url;

/// What turns an issue into a change item, from the settings.
pub(super) struct Rules<'a> {
    pub deployment: Deployment,
    /// The site's base URL, ending in `/`; issues are shown at `<base>browse/<key>`.
    pub base: &'a Url,
    /// A move into one of these statuses is an approval.
    pub approved: &'a [String],
    /// Being in one of these statuses means the change is closed.
    pub done: &'a [String],
    /// The field holding the change's target (environment, service); fixVersions without it.
    pub target_field: Option<&'a str>,
}

/// A status change from the changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Transition {
    at: String,
    /// The person as [`ChangeItem`] names people (see [`person`]).
    by: String,
    /// The person's stable id: the Cloud `accountId`, the Data Center user `key`.
    by_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The issue's key and its `updated` time (RFC 3339 UTC). Every issue must have both: the key
/// names the change and the time drives the watermark.
pub(super) fn key_and_updated(issue: &Value) -> Result<(String, String), String> {
    let key = issue
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| is_issue_key(k))
        .ok_or_else(|| {
            format!(
                "an issue without a valid key ({})",
                issue.get("key").unwrap_or(&Value::Null)
            )
        })?;
    let text = issue
        .pointer("/fields/updated")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("issue {key} has no fields.updated"))?;
    let updated = utc_time(text)
        .ok_or_else(|| format!("issue {key}: fields.updated {text:?} is not a time"))?;
    Ok((key.to_owned(), updated))
}

/// `OPS-12`: a project key (a letter, then letters, digits or `_`), `-`, a number. Anything
/// else from a server is refused rather than put into a URL path.
fn is_issue_key(key: &str) -> bool {
    let Some((project, number)) = key.rsplit_once('-') else {
        return false;
    };
    project.starts_with(|c: char| c.is_ascii_alphabetic())
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// The histories the search returned with the issue, and whether they are all of them. Jira
/// Cloud's search returns only the most recent histories of a long changelog (`total` says how
/// many there are); a missing changelog counts as incomplete too.
pub(super) fn inline_histories(issue: &Value) -> (Vec<Value>, bool) {
    let Some(changelog) = issue.get("changelog").filter(|c| c.is_object()) else {
        return (Vec::new(), false);
    };
    let histories = changelog
        .get("histories")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let complete = match changelog.get("total").and_then(Value::as_u64) {
        Some(total) => total <= histories.len() as u64,
        None => changelog.get("histories").is_some_and(Value::is_array),
    };
    (histories, complete)
}

/// The change item of `issue`, given its complete changelog `histories` (in any order).
pub(super) fn change_item(
    issue: &Value,
    histories: &[Value],
    rules: &Rules,
) -> Result<ChangeItem, String> {
    let (key, updated) = key_and_updated(issue)?;
    let empty = Map::new();
    let fields = issue
        .get("fields")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let state = fields
        .get("status")
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("issue {key} has no fields.status.name"))?;
    let title = fields
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut item = ChangeItem::new(
        "jira",
        format!("jira:{key}"),
        title.to_owned(),
        state.to_owned(),
    );
    item.url = rules
        .base
        .join(&format!("browse/{key}"))
        .ok()
        .map(String::from);
    // The reporter asked for the change; the creator stands in when the field is hidden.
    let reporter = [fields.get("reporter"), fields.get("creator")]
        .into_iter()
        .flatten()
        .find(|u| u.is_object());
    item.author = reporter.and_then(|u| person(u, rules.deployment));
    item.created_at = time_field(fields, "created", &key)?;
    item.updated_at = Some(updated);

    let transitions = transitions(histories, rules.deployment, &key)?;
    item.approvals = transitions
        .iter()
        .filter(|t| is_one_of(t.to.as_deref(), rules.approved))
        .map(|t| Approval {
            by: t.by.clone(),
            at: Some(t.at.clone()),
        })
        .collect();
    // Jira clears `resolutiondate` when an issue is reopened, so it is the close time when
    // set; workflows without resolutions close by moving into a done status.
    item.closed_at = match time_field(fields, "resolutiondate", &key)? {
        Some(at) => Some(at),
        None if is_one_of(Some(state), rules.done) => transitions
            .iter()
            .rev()
            .find(|t| is_one_of(t.to.as_deref(), rules.done))
            .map(|t| t.at.clone()),
        None => None,
    };
    item.linked_tickets = linked_keys(fields);
    item.target = match rules.target_field {
        Some(field) => fields.get(field).and_then(field_text),
        None => fields.get("fixVersions").and_then(field_text),
    };
    item.details = details(issue, fields, reporter, &transitions, rules.deployment);
    Ok(item.finish())
}

/// How a person is named in `author` and approvals: on Cloud the display name (Cloud has no
/// user names, and an `accountId` means nothing to an auditor), on Data Center the user name.
/// The stable id is kept beside it in the details.
fn person(user: &Value, deployment: Deployment) -> Option<String> {
    let field = |name: &str| {
        user.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match deployment {
        Deployment::Cloud => field("displayName").or_else(|| field("accountId")),
        Deployment::DataCenter => field("name")
            .or_else(|| field("key"))
            .or_else(|| field("displayName")),
    }
    .map(str::to_owned)
}

/// A person's stable id: the Cloud `accountId`, the Data Center user `key`.
fn person_id(user: &Value, deployment: Deployment) -> Option<String> {
    let name = match deployment {
        Deployment::Cloud => "accountId",
        Deployment::DataCenter => "key",
    };
    user.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A time field as RFC 3339 UTC; absent or null is `None`, anything else that is not a time
/// is an error (a wrong close time would be worse than none).
fn time_field(
    fields: &Map<String, Value>,
    name: &str,
    key: &str,
) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => utc_time(text)
            .map(Some)
            .ok_or_else(|| format!("issue {key}: fields.{name} {text:?} is not a time")),
        Some(other) => Err(format!("issue {key}: fields.{name} is {other}, not a time")),
    }
}

/// The status changes of the changelog, oldest first (histories sorted by time, then by their
/// numeric id, whatever order the endpoint used).
fn transitions(
    histories: &[Value],
    deployment: Deployment,
    key: &str,
) -> Result<Vec<Transition>, String> {
    let mut dated = Vec::new();
    for history in histories {
        let created = history
            .get("created")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("issue {key}: a changelog history without `created`"))?;
        let at = utc_time(created)
            .ok_or_else(|| format!("issue {key}: changelog time {created:?} is not a time"))?;
        let id: u64 = history
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        dated.push((at, id, history));
    }
    dated.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut out = Vec::new();
    for (at, _, history) in dated {
        // Changes made by automation or anonymously carry no author.
        let author = history.get("author").filter(|a| a.is_object());
        let by = author
            .and_then(|a| person(a, deployment))
            .unwrap_or_else(|| "anonymous".to_owned());
        let by_id = author.and_then(|a| person_id(a, deployment));
        let items = history.get("items").and_then(Value::as_array);
        for change in items.into_iter().flatten() {
            let field = change.get("field").and_then(Value::as_str);
            let field_id = change.get("fieldId").and_then(Value::as_str);
            if field != Some("status") && field_id != Some("status") {
                continue;
            }
            let text = |name: &str| change.get(name).and_then(Value::as_str).map(str::to_owned);
            out.push(Transition {
                at: at.clone(),
                by: by.clone(),
                by_id: by_id.clone(),
                from: text("fromString"),
                to: text("toString"),
            });
        }
    }
    Ok(out)
}

/// Status names compare as Jira compares them: without regard to case.
fn is_one_of(status: Option<&str>, names: &[String]) -> bool {
    status.is_some_and(|s| {
        let s = s.to_lowercase();
        names.iter().any(|n| n.to_lowercase() == s)
    })
}

/// The keys of the issues linked either way (`outwardIssue` / `inwardIssue`).
fn linked_keys(fields: &Map<String, Value>) -> Vec<String> {
    let links = fields.get("issuelinks").and_then(Value::as_array);
    links
        .into_iter()
        .flatten()
        .flat_map(|link| {
            ["outwardIssue", "inwardIssue"]
                .into_iter()
                .filter_map(move |side| link.get(side)?.get("key")?.as_str())
        })
        .map(str::to_owned)
        .collect()
}

/// A field's value as one line of text: a string or number as is, an option or version or
/// user by its `value` / `name` / `displayName`, a list joined with ", ", an Atlassian
/// Document Format document (Cloud's rich text) by its text. Empty is `None`.
fn field_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(list) => list
            .iter()
            .filter_map(field_text)
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(object) if object.get("type").and_then(Value::as_str) == Some("doc") => {
            let mut words = Vec::new();
            document_text(value, &mut words);
            words.join(" ")
        }
        Value::Object(object) => ["value", "name", "displayName", "key"]
            .iter()
            .find_map(|k| object.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
            .trim()
            .to_owned(),
        Value::Null => String::new(),
    };
    (!text.is_empty()).then_some(text)
}

/// The `text` nodes of an Atlassian Document Format tree, in order.
fn document_text(node: &Value, out: &mut Vec<String>) {
    if let Some(text) = node.get("text").and_then(Value::as_str) {
        let text = text.trim();
        if !text.is_empty() {
            out.push(text.to_owned());
        }
    }
    for child in node
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        document_text(child, out);
    }
}

fn details(
    issue: &Value,
    fields: &Map<String, Value>,
    reporter: Option<&Value>,
    transitions: &[Transition],
    deployment: Deployment,
) -> Map<String, Value> {
    let name_of = |field: &str| fields.get(field).and_then(|v| v.get("name")).cloned();
    let mut details = Map::new();
    details.insert(
        "issue_id".into(),
        issue.get("id").cloned().unwrap_or(Value::Null),
    );
    details.insert(
        "project".into(),
        fields
            .get("project")
            .and_then(|p| p.get("key"))
            .cloned()
            .unwrap_or(Value::Null),
    );
    for field in ["issuetype", "priority", "resolution"] {
        details.insert(field.into(), name_of(field).unwrap_or(Value::Null));
    }
    details.insert(
        "author_id".into(),
        json!(reporter.and_then(|r| person_id(r, deployment))),
    );
    details.insert(
        "transitions".into(),
        transitions
            .iter()
            .map(|t| json!({"at": t.at, "by": t.by, "by_id": t.by_id, "from": t.from, "to": t.to}))
            .collect(),
    );
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_before_they_reach_a_url() {
        for good in ["OPS-1", "A_B2-10"] {
            assert!(is_issue_key(good), "{good}");
        }
        for bad in ["OPS", "OPS-", "-1", "1A-2", "../x-1", "OPS-1a", "O/P-1"] {
            assert!(!is_issue_key(bad), "{bad}");
        }
    }

    #[test]
    fn field_text_reads_options_lists_and_documents() {
        assert_eq!(field_text(&json!("prod ")).as_deref(), Some("prod"));
        assert_eq!(
            field_text(&json!({"value": "production", "id": "1"})).as_deref(),
            Some("production")
        );
        assert_eq!(
            field_text(&json!([{"name": "2.0"}, {"name": "2.1"}])).as_deref(),
            Some("2.0, 2.1")
        );
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "eu-west-1"},
                                              {"type": "text", "text": "prod"}]}]});
        assert_eq!(field_text(&doc).as_deref(), Some("eu-west-1 prod"));
        assert_eq!(field_text(&json!([])), None);
        assert_eq!(field_text(&Value::Null), None);
    }

    #[test]
    fn a_changelog_is_complete_when_it_holds_its_total() {
        let issue = |changelog: Value| json!({"key": "OPS-1", "changelog": changelog});
        let h = json!({"id": "1"});
        assert!(
            inline_histories(&issue(
                json!({"startAt": 0, "maxResults": 1, "total": 1, "histories": [h]})
            ))
            .1
        );
        assert!(
            !inline_histories(&issue(
                json!({"startAt": 0, "maxResults": 1, "total": 3, "histories": [h]})
            ))
            .1
        );
        assert!(!inline_histories(&json!({"key": "OPS-1"})).1);
    }
}
