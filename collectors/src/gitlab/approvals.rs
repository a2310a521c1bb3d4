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
use crate::http::{Api, Auth, HttpClient};
use crate::CollectError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;
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
#[derive(Debug)]
pub(super) struct Fetcher {
    pub client: HttpClient,
    pub auth: Auth,
    pub deadline: Option<Instant>,
    pub base: Url,
}

/// The merge requests with their approvals, in the order given, and the request counts.
#[derive(Debug)]
pub(super) struct Fetched {
    pub records: Vec<(MergeRequest, ApprovalRecord)>,
    pub stats: Value,
}

type Done = (
    usize,
    MergeRequest,
    Result<ApprovalRecord, CollectError>,
    Value,
);

/// Read the approvals of every merge request. The first failure fails the whole: the tasks
/// still running are aborted when the set is dropped.
pub(super) async fn fetch_all(
    fetcher: Fetcher,
    merge_requests: Vec<MergeRequest>,
) -> Result<Fetched, CollectError> {
    let fetcher = Arc::new(fetcher);
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut records = Vec::with_capacity(merge_requests.len());
    let mut stats = json!({});
    for (index, mr) in merge_requests.into_iter().enumerate() {
        if tasks.len() >= CONCURRENCY {
            if let Some(joined) = tasks.join_next().await {
                records.push(finished(joined, &mut stats)?);
            }
        }
        let fetcher = Arc::clone(&fetcher);
        tasks.spawn(async move {
            let api = Api::new(
                &fetcher.client,
                Some(fetcher.auth.clone()),
                fetcher.deadline,
            );
            let record = fetcher.approvals_of(&api, &mr).await;
            (index, mr, record, api.stats.to_json())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        records.push(finished(joined, &mut stats)?);
    }
    records.sort_by_key(|(index, _)| *index);
    Ok(Fetched {
        records: records.into_iter().map(|(_, pair)| pair).collect(),
        stats,
    })
}

type Indexed = (usize, (MergeRequest, ApprovalRecord));

fn finished(
    joined: Result<Done, tokio::task::JoinError>,
    stats: &mut Value,
) -> Result<Indexed, CollectError> {
    let (index, mr, record, counts) = joined.map_err(|e| {
        CollectError::Other(format!(
            "reading the approvals of a merge request stopped: {e}"
        ))
    })?;
    add_counts(stats, &counts);
    Ok((index, (mr, record?)))
}

/// Add the numbers of `from` to those of `into` (request statistics of several [`Api`]s).
pub(super) fn add_counts(into: &mut Value, from: &Value) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else {
        return;
    };
    for (key, value) in from {
        let sum = into.get(key).and_then(Value::as_u64).unwrap_or(0) + value.as_u64().unwrap_or(0);
        into.insert(key.clone(), json!(sum));
    }
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

    async fn approvals_of(
        &self,
        api: &Api<'_>,
        mr: &MergeRequest,
    ) -> Result<ApprovalRecord, CollectError> {
        let url = self.url(mr, "approvals")?;
        let response = api.get(&url).await?;
        let state: ApprovalState = serde_json::from_value(response.body).map_err(|e| {
            CollectError::Other(format!("GET {url}: not GitLab's approvals object: {e}"))
        })?;
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
            let times = self.approval_notes(api, mr).await?;
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
        api: &Api<'_>,
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
            let page = api.get(&url).await?;
            let after = next_page(&page, &self.base)?;
            let notes: Vec<Note> = serde_json::from_value(page.body).map_err(|e| {
                CollectError::Other(format!("GET {url}: not a list of GitLab notes: {e}"))
            })?;
            for note in notes.into_iter().filter(|n| n.system) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_several_clients_add_up() {
        let mut total = json!({"requests": 3, "retries": 1, "rate_limit_waits": 0});
        add_counts(
            &mut total,
            &json!({"requests": 2, "retries": 0, "rate_limit_waits": 1}),
        );
        assert_eq!(
            total,
            json!({"requests": 5, "retries": 1, "rate_limit_waits": 1})
        );
    }
}
