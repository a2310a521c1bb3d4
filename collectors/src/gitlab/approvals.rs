//! Who approved each merge request, and when: one approvals request per merge request, at most
//! [`CONCURRENCY`] in flight, plus the system notes of those whose approvals carry no time.
//!
//! Endpoints:
//! <https://docs.gitlab.com/api/merge_request_approvals/#retrieve-approval-state-for-a-merge-request>
//! (`GET /projects/:id/merge_requests/:iid/approvals`: `approved_by[].user`, and
//! `approved_by[].approved_at` on current GitLab) and
//! <https://docs.gitlab.com/api/notes/#list-all-merge-request-notes> (system notes
//! "approved this merge request" / "unapproved this merge request", with `created_at`).

use super::item::MergeRequest;
use super::listing::next_page;
use crate::change::{utc_time, Approval};
use crate::concurrent::each_bounded;
use crate::http::Api;
use crate::CollectError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Instant;
use url::Url;

/// Approval requests in flight at once: enough to hide latency, few enough to stay far from
/// GitLab.com's per-user limits.
const CONCURRENCY: usize = 8;
/// The bodies of GitLab's approval system notes.
const APPROVED_NOTE: &str = "approved this merge request";
const UNAPPROVED_NOTE: &str = "unapproved this merge request";

#[derive(Debug, Deserialize)]
struct User {
    username: String,
}

#[derive(Debug, Deserialize)]
struct Approver {
    user: User,
    approved_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApprovalState {
    #[serde(default)]
    approved_by: Vec<Approver>,
    approvals_required: Option<i64>,
    approvals_left: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Note {
    body: String,
    author: User,
    created_at: String,
    #[serde(default)]
    system: bool,
}

/// The approvals of one merge request.
#[derive(Debug)]
pub(super) struct ApprovalRecord {
    pub approvals: Vec<Approval>,
    pub required: Option<i64>,
    pub left: Option<i64>,
    /// Whether the times came from the system notes (the approvals had none).
    pub from_notes: bool,
}

/// What the approval requests need, owned so that each can run as its own task.
#[derive(Debug, Clone)]
pub(super) struct Fetcher {
    pub api: Api,
    pub deadline: Option<Instant>,
    pub base: Url,
}

/// Read the approvals of every merge request, [`CONCURRENCY`] at a time; the merge requests
/// come back in the order given, each with its approvals. The first failure fails the whole.
pub(super) async fn fetch_all(
    fetcher: Fetcher,
    merge_requests: Vec<MergeRequest>,
) -> Result<Vec<(MergeRequest, ApprovalRecord)>, CollectError> {
    let deadline = fetcher.deadline;
    each_bounded(merge_requests, CONCURRENCY, deadline, |mr| {
        let fetcher = fetcher.clone();
        async move {
            let record = fetcher.approvals_of(&mr).await?;
            Ok((mr, record))
        }
    })
    .await
}

impl Fetcher {
    fn url(&self, mr: &MergeRequest, tail: &str) -> Result<Url, CollectError> {
        let relative = format!(
            "api/v4/projects/{}/merge_requests/{}/{tail}",
            mr.project_id, mr.iid
        );
        self.base.join(&relative).map_err(|e| {
            CollectError::Other(format!(
                "cannot make the URL of {relative} on {}: {e}",
                self.base
            ))
        })
    }

    async fn approvals_of(&self, mr: &MergeRequest) -> Result<ApprovalRecord, CollectError> {
        let url = self.url(mr, "approvals")?;
        let state: ApprovalState = self.api.get_as(&url).await?.body;
        let mut approvals = Vec::with_capacity(state.approved_by.len());
        for approver in state.approved_by {
            let at = match approver.approved_at {
                Some(text) => Some(utc_time(&text).ok_or_else(|| {
                    CollectError::Other(format!("GET {url}: approved_at {text:?} is not a time"))
                })?),
                None => None,
            };
            approvals.push(Approval {
                by: approver.user.username,
                at,
            });
        }
        let from_notes = approvals.iter().any(|a| a.at.is_none());
        if from_notes {
            let times = self.approval_notes(mr).await?;
            for approval in approvals.iter_mut().filter(|a| a.at.is_none()) {
                approval.at = times.get(&approval.by).cloned();
            }
        }
        Ok(ApprovalRecord {
            approvals,
            required: state.approvals_required,
            left: state.approvals_left,
            from_notes,
        })
    }

    /// When each user last approved, from the system notes read oldest first; an approval
    /// withdrawn later ("unapproved") is forgotten.
    async fn approval_notes(
        &self,
        mr: &MergeRequest,
    ) -> Result<BTreeMap<String, String>, CollectError> {
        let mut url = self.url(mr, "notes")?;
        url.query_pairs_mut()
            .append_pair("sort", "asc")
            .append_pair("order_by", "created_at")
            .append_pair("per_page", "100");
        let mut times = BTreeMap::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let page = self.api.get_as::<Vec<Note>>(&url).await?;
            let after = next_page(&page, &self.base)?;
            for note in page.body.into_iter().filter(|n| n.system) {
                match note.body.trim() {
                    APPROVED_NOTE => {
                        let at = utc_time(&note.created_at).ok_or_else(|| {
                            CollectError::Other(format!(
                                "GET {url}: created_at {:?} is not a time",
                                note.created_at
                            ))
                        })?;
                        times.insert(note.author.username, at);
                    }
                    UNAPPROVED_NOTE => {
                        times.remove(&note.author.username);
                    }
                    _ => {}
                }
            }
            next = after;
        }
        Ok(times)
    }
}
