//! A merge request as GitLab lists it, checked when read, and the change item made of it.
//!
//! Shape: <https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests>. Only the
//! fields recorded are read; the rest of GitLab's object is ignored.

use super::approvals::ApprovalRecord;
use crate::change::{self, utc_time, ChangeItem};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

#[derive(Debug, Deserialize)]
struct User {
    username: String,
}

#[derive(Debug, Deserialize)]
struct References {
    full: Option<String>,
}

/// The fields of GitLab's merge request object that are recorded.
#[derive(Debug, Deserialize)]
struct Raw {
    iid: u64,
    project_id: u64,
    title: String,
    description: Option<String>,
    state: String,
    created_at: Option<String>,
    updated_at: String,
    merged_at: Option<String>,
    closed_at: Option<String>,
    target_branch: String,
    source_branch: String,
    author: Option<User>,
    merge_user: Option<User>,
    /// Deprecated for `merge_user`, still sent by API v4; read when `merge_user` is absent.
    merged_by: Option<User>,
    #[serde(default)]
    labels: Vec<String>,
    sha: Option<String>,
    merge_commit_sha: Option<String>,
    squash_commit_sha: Option<String>,
    web_url: Option<String>,
    references: Option<References>,
}

/// A listed merge request, its identity and times already checked.
#[derive(Debug)]
pub(super) struct MergeRequest {
    /// `gitlab:<project path>!<iid>`.
    pub id: String,
    pub project_id: u64,
    pub iid: u64,
    /// `updated_at` in UTC seconds, what the watermark compares.
    pub updated_at: String,
    created_at: Option<String>,
    merged_at: Option<String>,
    closed_at: Option<String>,
    raw: Raw,
}

impl MergeRequest {
    /// Read one element of a listing fetched from `url`. `base` is the GitLab root, used to
    /// find the project path in `web_url` when `references` is missing (GitLab before 12.6).
    pub fn from_json(value: Value, base: &Url) -> Result<MergeRequest, String> {
        let raw: Raw =
            serde_json::from_value(value).map_err(|e| format!("not a merge request: {e}"))?;
        let path = project_path(&raw, base).ok_or_else(|| {
            format!(
                "merge request iid {} names its project neither in references.full nor in web_url",
                raw.iid
            )
        })?;
        let utc = |field: &str, text: &str| {
            utc_time(text).ok_or_else(|| {
                format!(
                    "merge request {path}!{}: {field} {text:?} is not a time",
                    raw.iid
                )
            })
        };
        let time = |field: &str, text: Option<&str>| text.map(|t| utc(field, t)).transpose();
        let updated_at = utc("updated_at", &raw.updated_at)?;
        Ok(MergeRequest {
            id: format!("gitlab:{path}!{}", raw.iid),
            project_id: raw.project_id,
            iid: raw.iid,
            created_at: time("created_at", raw.created_at.as_deref())?,
            merged_at: time("merged_at", raw.merged_at.as_deref())?,
            closed_at: time("closed_at", raw.closed_at.as_deref())?,
            updated_at,
            raw,
        })
    }

    pub fn target_branch(&self) -> &str {
        &self.raw.target_branch
    }

    /// The change item: this merge request with its approvals.
    pub fn into_item(self, record: ApprovalRecord) -> ChangeItem {
        let raw = self.raw;
        let description = raw.description.unwrap_or_default();
        let mut item = ChangeItem::new("gitlab", self.id, raw.title, raw.state);
        item.linked_tickets =
            change::ticket_keys(&[item.title.as_str(), &description, &raw.source_branch]);
        item.url = raw.web_url;
        item.author = raw.author.map(|u| u.username);
        item.created_at = self.created_at;
        item.updated_at = Some(self.updated_at);
        item.merged_at = self.merged_at;
        item.closed_at = self.closed_at;
        item.approvals = record.approvals;
        item.target = Some(raw.target_branch);
        let merged_by = raw.merge_user.or(raw.merged_by).map(|u| u.username);
        let details = json!({
            "project_id": raw.project_id,
            "iid": raw.iid,
            "source_branch": raw.source_branch,
            "sha": raw.sha,
            "merge_commit_sha": raw.merge_commit_sha,
            "squash_commit_sha": raw.squash_commit_sha,
            "merged_by": merged_by,
            "labels": raw.labels,
            "approvals_required": record.required,
            "approvals_left": record.left,
            "approval_times_from_notes": record.from_notes,
        });
        if let Value::Object(details) = details {
            item.details = details;
        }
        item.finish()
    }
}

/// The project's full path: from `references.full` (`group/project!12`), else from `web_url`
/// (`<base>group/project/-/merge_requests/12`).
fn project_path(raw: &Raw, base: &Url) -> Option<String> {
    let iid = raw.iid.to_string();
    let from_reference = raw
        .references
        .as_ref()
        .and_then(|r| r.full.as_deref())
        .and_then(|full| full.rsplit_once('!'))
        .filter(|(path, number)| !path.is_empty() && *number == iid)
        .map(|(path, _)| path.to_owned());
    from_reference.or_else(|| {
        let rest = raw.web_url.as_deref()?.strip_prefix(base.as_str())?;
        let path = rest
            .strip_suffix(&format!("/-/merge_requests/{iid}"))
            .or_else(|| rest.strip_suffix(&format!("/merge_requests/{iid}")))?;
        (!path.is_empty()).then(|| path.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(value: Value) -> Result<MergeRequest, String> {
        MergeRequest::from_json(
            value,
            &Url::parse("https://git.example.com/gitlab/").unwrap(),
        )
    }

    #[test]
    fn the_project_path_comes_from_references_or_the_web_url() {
        let base = json!({
            "iid": 12, "project_id": 3, "title": "t", "state": "merged",
            "updated_at": "2026-03-01T12:00:00.520Z", "target_branch": "main",
            "source_branch": "b",
        });
        let mut with_refs = base.clone();
        with_refs["references"] = json!({"short": "!12", "relative": "!12", "full": "g/sub/p!12"});
        assert_eq!(raw(with_refs).unwrap().id, "gitlab:g/sub/p!12");

        let mut with_url = base.clone();
        with_url["web_url"] = json!("https://git.example.com/gitlab/g/p/-/merge_requests/12");
        let mr = raw(with_url).unwrap();
        assert_eq!(mr.id, "gitlab:g/p!12");
        assert_eq!(mr.updated_at, "2026-03-01T12:00:00Z");

        let err = raw(base.clone()).unwrap_err();
        assert!(
            err.contains("neither in references.full nor in web_url"),
            "{err}"
        );
        let mut bad_time = base;
        bad_time["updated_at"] = json!("yesterday");
        bad_time["references"] = json!({"full": "g/p!12"});
        let err = raw(bad_time).unwrap_err();
        assert!(
            err.contains("updated_at \"yesterday\" is not a time"),
            "{err}"
        );
        assert!(raw(json!({"iid": "x"}))
            .unwrap_err()
            .starts_with("not a merge request"));
    }
}
