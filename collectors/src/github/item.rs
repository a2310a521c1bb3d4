//! A GitHub pull request and its reviews as a [`ChangeItem`].

use super::api::{PullRequest, Review};
use crate::change::{self, utc_time, Approval, ChangeItem};
use crate::CollectError;
use regex::Regex;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The login GitHub shows for a deleted account, used when a review has no user.
const GHOST: &str = "ghost";

/// `github:<owner>/<repo>#<number>`, with the repository as GitHub spells it in `base.repo`
/// (so the id does not depend on how the settings spell it), else as listed.
pub(super) fn pull_id(repo: &str, pull: &PullRequest) -> String {
    let name = pull
        .base
        .repo
        .as_ref()
        .map_or(repo, |r| r.full_name.as_str());
    format!("github:{name}#{}", pull.number)
}

/// A pull request read from a listing, waiting for its reviews.
#[derive(Debug)]
pub(super) struct Draft {
    pub item: ChangeItem,
    /// `updated_at`, RFC 3339 UTC.
    pub updated_at: String,
    /// `base.ref`.
    pub base_ref: String,
    /// `owner/name` for the reviews' URL.
    pub repo_path: String,
    pub number: u64,
}

impl Draft {
    /// Everything but the approvals. The body is read for ticket keys and dropped.
    pub fn new(
        repo: &str,
        pull: PullRequest,
        tickets: Option<&Regex>,
    ) -> Result<Draft, CollectError> {
        let id = pull_id(repo, &pull);
        let time = |field: &str, value: &Option<String>| -> Result<Option<String>, CollectError> {
            match value {
                None => Ok(None),
                Some(text) => utc_time(text).map(Some).ok_or_else(|| {
                    CollectError::Other(format!("{id}: {field} {text:?} is not an RFC 3339 time"))
                }),
            }
        };
        let updated_at = pull.updated_utc(repo)?;
        let merged_at = time("merged_at", &pull.merged_at)?;
        let state = if merged_at.is_some() {
            "merged".to_owned()
        } else {
            pull.state.clone()
        };
        let mut item = ChangeItem::new("github", id.clone(), pull.title.clone(), state);
        item.url = pull.html_url.clone();
        item.author = pull.user.as_ref().map(|u| u.login.clone());
        item.created_at = time("created_at", &pull.created_at)?;
        item.updated_at = Some(updated_at.clone());
        item.merged_at = merged_at;
        item.closed_at = time("closed_at", &pull.closed_at)?;
        item.target = Some(pull.base.git_ref.clone());
        let texts = [
            pull.title.as_str(),
            pull.head.git_ref.as_str(),
            pull.body.as_deref().unwrap_or(""),
        ];
        item.linked_tickets = match tickets {
            None => change::ticket_keys(&texts),
            Some(pattern) => texts
                .iter()
                .flat_map(|text| pattern.find_iter(text).map(|m| m.as_str().to_owned()))
                .collect(),
        };
        let mut labels: Vec<&str> = pull.labels.iter().map(|l| l.name.as_str()).collect();
        labels.sort_unstable();
        let full_name = id
            .strip_prefix("github:")
            .and_then(|rest| rest.rsplit_once('#'))
            .map_or(repo, |(name, _)| name);
        let details = [
            ("repository", json!(full_name)),
            ("number", json!(pull.number)),
            ("merge_commit_sha", json!(pull.merge_commit_sha)),
            ("head_ref", json!(pull.head.git_ref)),
            ("head_sha", json!(pull.head.sha)),
            ("draft", json!(pull.draft.unwrap_or(false))),
            ("labels", json!(labels)),
        ];
        item.details = details
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        Ok(Draft {
            item,
            updated_at,
            base_ref: pull.base.git_ref,
            repo_path: repo.to_owned(),
            number: pull.number,
        })
    }

    /// The item with its approvals: every review in state `APPROVED`. Also records how many
    /// reviews there are, how many were dismissed, and `changes_requested_by`: reviewers
    /// whose latest approving-or-blocking review asks for changes (GitHub's review decision,
    /// in which dismissed and comment-only reviews do not count).
    pub fn finish(self, reviews: Vec<Review>) -> ChangeItem {
        let mut item = self.item;
        let login = |r: &Review| {
            r.user
                .as_ref()
                .map_or(GHOST, |u| u.login.as_str())
                .to_owned()
        };
        let mut decisive: BTreeMap<String, &str> = BTreeMap::new();
        for review in &reviews {
            match review.state.as_str() {
                "APPROVED" => {
                    item.approvals.push(Approval {
                        by: login(review),
                        at: review.submitted_at.as_deref().and_then(utc_time),
                    });
                    decisive.insert(login(review), "APPROVED");
                }
                "CHANGES_REQUESTED" => {
                    decisive.insert(login(review), "CHANGES_REQUESTED");
                }
                _ => {}
            }
        }
        let blocking: Vec<&String> = decisive
            .iter()
            .filter(|(_, state)| **state == "CHANGES_REQUESTED")
            .map(|(by, _)| by)
            .collect();
        let dismissed = reviews.iter().filter(|r| r.state == "DISMISSED").count();
        item.details
            .insert("review_count".into(), Value::from(reviews.len()));
        item.details
            .insert("dismissed_reviews".into(), Value::from(dismissed));
        item.details
            .insert("changes_requested_by".into(), json!(blocking));
        item.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(value: Value) -> PullRequest {
        serde_json::from_value(value).unwrap()
    }

    fn review(login: Option<&str>, state: &str, at: &str) -> Review {
        serde_json::from_value(json!({
            "user": login.map(|l| json!({"login": l})),
            "state": state,
            "submitted_at": at,
        }))
        .unwrap()
    }

    fn example() -> PullRequest {
        pull(json!({
            "number": 7,
            "title": "OPS-12: rotate keys (see SEC-3)",
            "body": "Also closes OPS-12 and ops-99, not UTF8-x",
            "html_url": "https://github.com/Acme/api/pull/7",
            "user": {"login": "alice"},
            "state": "closed",
            "draft": false,
            "created_at": "2026-03-01T10:00:00Z",
            "updated_at": "2026-03-02T12:00:00.5+01:00",
            "closed_at": "2026-03-02T11:00:00Z",
            "merged_at": "2026-03-02T11:00:00Z",
            "merge_commit_sha": "e5bd3914e2e596debea16f433f57875b5b90bcd6",
            "labels": [{"name": "security"}, {"name": "change"}],
            "head": {"ref": "feature/INFRA-4-keys", "sha": "6dcb09b", "repo": null},
            "base": {"ref": "main", "sha": "abc", "repo": {"full_name": "Acme/api"}},
        }))
    }

    #[test]
    fn a_merged_pull_request_becomes_a_change() {
        let draft = Draft::new("acme/api", example(), None).unwrap();
        assert_eq!(draft.updated_at, "2026-03-02T11:00:00Z");
        let item = draft.finish(vec![
            review(Some("bob"), "COMMENTED", "2026-03-01T11:00:00Z"),
            review(Some("carol"), "CHANGES_REQUESTED", "2026-03-01T12:00:00Z"),
            review(Some("bob"), "APPROVED", "2026-03-02T10:30:00Z"),
            review(None, "APPROVED", "2026-03-02T10:45:00Z"),
            review(Some("dave"), "DISMISSED", "2026-03-02T10:50:00Z"),
        ]);
        assert_eq!(item.id, "github:Acme/api#7");
        assert_eq!(item.state, "merged");
        assert_eq!(item.target.as_deref(), Some("main"));
        assert_eq!(item.linked_tickets, vec!["INFRA-4", "OPS-12", "SEC-3"]);
        assert_eq!(item.approvers, vec!["bob", "ghost"]);
        assert_eq!(item.approved_at.as_deref(), Some("2026-03-02T10:45:00Z"));
        assert_eq!(item.approved_before_merge, Some(true));
        assert_eq!(item.details["changes_requested_by"], json!(["carol"]));
        assert_eq!(item.details["dismissed_reviews"], json!(1));
        assert_eq!(item.details["labels"], json!(["change", "security"]));
        assert_eq!(item.details["repository"], json!("Acme/api"));
    }

    #[test]
    fn an_approval_after_changes_requested_lifts_the_block() {
        let tickets = Regex::new("X-[0-9]+").unwrap();
        let item = Draft::new("acme/api", example(), Some(&tickets))
            .unwrap()
            .finish(vec![
                review(Some("carol"), "CHANGES_REQUESTED", "2026-03-01T12:00:00Z"),
                review(Some("carol"), "APPROVED", "2026-03-02T12:00:00Z"),
            ]);
        assert_eq!(item.details["changes_requested_by"], json!([]));
        assert_eq!(
            item.approved_before_merge,
            Some(false),
            "approved after merge"
        );
        assert!(item.linked_tickets.is_empty());
    }

    #[test]
    fn a_time_that_is_not_rfc_3339_is_an_error_naming_the_pull_request() {
        let mut bad = example();
        bad.merged_at = Some("yesterday".into());
        let tickets = Regex::new("X").unwrap();
        let err = Draft::new("acme/api", bad, Some(&tickets))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("github:Acme/api#7") && err.contains("merged_at"),
            "{err}"
        );
    }
}
