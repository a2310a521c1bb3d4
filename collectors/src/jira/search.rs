//! The requests: the JQL sent, the search pages of each deployment, and the complete
//! changelogs of issues whose changelog the search cut short.
//!
//! - Cloud: `POST /rest/api/3/search/jql` (the enhanced search) with `nextPageToken` paging
//!   until `isLast`; `GET /rest/api/3/issue/{key}/changelog` paged by `startAt` until `isLast`.
//! - Data Center: `GET /rest/api/2/search` paged by `startAt`; `GET /rest/api/2/issue/{key}`
//!   with `expand=changelog` when a search result's changelog is incomplete.
//!
//! Offset paging is only correct if the list does not shift under it: an issue that leaves
//! the query (moved to another project, a status the JQL excludes) between two pages moves
//! every later issue one place up, and the one at the page boundary would never be read. So
//! each Data Center page after the first starts one issue early, and that issue must be the
//! last one of the previous page; when it is not, the list moved and the walk starts again
//! (at most [`MAX_WALKS`] times). The order is `created ASC, key ASC`, which edits do not
//! change, so the walk only restarts when issues leave or join the query mid-run.

use super::Deployment;
use crate::concurrent::each_bounded;
use crate::http::Api;
use crate::CollectError;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use url::Url;

/// Walks of a Data Center search before giving up on a list that keeps moving.
const MAX_WALKS: u32 = 3;
/// Changelog requests in flight at once.
const CHANGELOG_CONCURRENCY: usize = 8;
/// Page size of changelog requests (the documented maximum of the Cloud endpoint).
const CHANGELOG_PAGE: u32 = 100;
/// The sort order of every search: fixed by creation, which edits do not change.
const ORDER: &str = "ORDER BY created ASC, key ASC";

/// The fields every search asks for (the Cloud search returns only ids without a list).
pub(super) const FIELDS: [&str; 13] = [
    "summary",
    "status",
    "issuetype",
    "priority",
    "resolution",
    "resolutiondate",
    "created",
    "updated",
    "reporter",
    "creator",
    "issuelinks",
    "fixVersions",
    "project",
];

/// The JQL of a run: the configured query, limited to issues updated since `from` (rendered
/// by [`jql_time`]) when there is a watermark, in a fixed order.
pub(super) fn jql(query: &str, from: Option<&str>) -> String {
    match from {
        Some(from) => format!("({query}) AND updated >= \"{from}\" {ORDER}"),
        None => format!("({query}) {ORDER}"),
    }
}

/// The `updated >=` bound for a watermark at `since` (RFC 3339 UTC): `since` less `margin`,
/// rounded down to the minute, as `yyyy-MM-dd HH:mm`. JQL dates have minute precision and
/// are read in the searching user's time zone; the margin covers every zone (see the module
/// docs of `jira`), so the bound is never later than `since` in UTC.
pub(super) fn jql_time(since: &str, margin: Duration) -> Option<String> {
    let since = DateTime::parse_from_rfc3339(since)
        .ok()?
        .with_timezone(&Utc);
    Some((since - margin).format("%Y-%m-%d %H:%M").to_string())
}

/// Every issue a search returned, in order.
#[derive(Debug, Default)]
pub(super) struct Walk {
    pub issues: Vec<Value>,
    pub pages: u64,
    /// Data Center walks started again because the list moved.
    pub restarts: u32,
    /// The server's clock (`Date` header) at the first page.
    pub server_time: Option<DateTime<Utc>>,
}

fn server_time(response: &crate::http::JsonResponse) -> Option<DateTime<Utc>> {
    let date = response.header("date")?;
    DateTime::parse_from_rfc2822(date)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn shape_error(what: &str, url: &Url, why: &str) -> CollectError {
    CollectError::Other(format!("{what} {url}: {why}"))
}

/// Jira Cloud: the enhanced search, every page.
pub(super) async fn cloud(
    api: &Api,
    base: &Url,
    jql: &str,
    fields: &[String],
    page_size: u32,
) -> Result<Walk, CollectError> {
    let url = join(base, &["rest", "api", "3", "search", "jql"]);
    let mut walk = Walk::default();
    let mut token: Option<String> = None;
    let mut tokens = HashSet::new();
    loop {
        let mut body = json!({
            "jql": jql,
            "fields": fields,
            "expand": "changelog",
            "maxResults": page_size,
        });
        if let Some(token) = &token {
            body["nextPageToken"] = json!(token);
        }
        let response = api.post(&url, &body).await?;
        if walk.pages == 0 {
            walk.server_time = server_time(&response);
        }
        walk.pages += 1;
        walk.issues
            .extend(issues_of(&response.body, "POST", &url)?.iter().cloned());
        let is_last = response.body.get("isLast").and_then(Value::as_bool);
        let next = response
            .body
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        match next {
            Some(next) if is_last != Some(true) => {
                if !tokens.insert(next.to_owned()) {
                    return Err(shape_error(
                        "POST",
                        &url,
                        "the same nextPageToken came back twice; stopped to avoid a loop",
                    ));
                }
                token = Some(next.to_owned());
            }
            _ => return Ok(walk),
        }
    }
}

/// Jira Data Center: the search by offset, every page, restarted when the list moved.
pub(super) async fn data_center(
    api: &Api,
    base: &Url,
    jql: &str,
    fields: &[String],
    page_size: u32,
) -> Result<Walk, CollectError> {
    let endpoint = join(base, &["rest", "api", "2", "search"]);
    let mut pages = 0u64;
    let mut server_time_seen = None;
    for walk_number in 1..=MAX_WALKS {
        let mut issues: Vec<Value> = Vec::new();
        let complete = loop {
            // After the first page, start one early: that issue must be the last one read.
            let start_at = issues.len().saturating_sub(1);
            let mut url = endpoint.clone();
            url.query_pairs_mut()
                .append_pair("jql", jql)
                .append_pair("startAt", &start_at.to_string())
                .append_pair("maxResults", &page_size.to_string())
                .append_pair("fields", &fields.join(","))
                .append_pair("expand", "changelog");
            let response = api.get(&url).await?;
            if server_time_seen.is_none() {
                server_time_seen = server_time(&response);
            }
            pages += 1;
            let page = issues_of(&response.body, "GET", &url)?;
            // The server may lower maxResults (jira.search.views.default.max); a page shorter
            // than the size it used is the last one.
            let size = response
                .body
                .get("maxResults")
                .and_then(Value::as_u64)
                .unwrap_or(u64::from(page_size));
            let fresh = match issues.last() {
                None => page,
                Some(last) => match page.first() {
                    Some(first) if first.get("key") == last.get("key") => &page[1..],
                    _ => break false,
                },
            };
            issues.extend(fresh.iter().cloned());
            if fresh.is_empty() || (page.len() as u64) < size.max(1) {
                break true;
            }
        };
        if complete {
            return Ok(Walk {
                issues,
                pages,
                restarts: walk_number - 1,
                server_time: server_time_seen,
            });
        }
        tracing::info!(url = %endpoint, "jira search results moved while paging; reading again");
    }
    Err(shape_error(
        "GET",
        &endpoint,
        &format!(
            "the search results moved while they were paged (issues left or joined the \
             query) in {MAX_WALKS} walks in a row; nothing was recorded"
        ),
    ))
}

fn issues_of<'v>(body: &'v Value, method: &str, url: &Url) -> Result<&'v [Value], CollectError> {
    match body.get("issues") {
        Some(Value::Array(issues)) => Ok(issues),
        // The Cloud search leaves `issues` out of an empty result.
        None if body.is_object() => Ok(&[]),
        _ => Err(shape_error(
            method,
            url,
            "the answer is not a search result (no `issues` list)",
        )),
    }
}

/// `base` with path segments appended, each percent-encoded as needed.
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// What a changelog request needs, owned, so that requests can run as tasks.
#[derive(Debug, Clone)]
pub(super) struct Fetcher {
    pub api: Api,
    pub deadline: Option<Instant>,
    pub base: Url,
    pub deployment: Deployment,
}

/// The complete changelog histories of each issue in `keys`, up to
/// [`CHANGELOG_CONCURRENCY`] issues at a time; the first error ends the run.
pub(super) async fn changelogs(
    fetcher: &Fetcher,
    keys: Vec<String>,
) -> Result<BTreeMap<String, Vec<Value>>, CollectError> {
    let histories = each_bounded(keys, CHANGELOG_CONCURRENCY, fetcher.deadline, |key| {
        let fetcher = fetcher.clone();
        async move {
            let histories = match fetcher.deployment {
                Deployment::Cloud => cloud_changelog(&fetcher.api, &fetcher.base, &key).await,
                Deployment::DataCenter => dc_changelog(&fetcher.api, &fetcher.base, &key).await,
            }?;
            Ok((key, histories))
        }
    })
    .await?;
    Ok(histories.into_iter().collect())
}

/// Cloud: `GET /rest/api/3/issue/{key}/changelog`, oldest first, every page.
async fn cloud_changelog(api: &Api, base: &Url, key: &str) -> Result<Vec<Value>, CollectError> {
    let endpoint = join(base, &["rest", "api", "3", "issue", key, "changelog"]);
    let mut histories = Vec::new();
    loop {
        let mut url = endpoint.clone();
        url.query_pairs_mut()
            .append_pair("startAt", &histories.len().to_string())
            .append_pair("maxResults", &CHANGELOG_PAGE.to_string());
        let response = api.get(&url).await?;
        let values = response
            .body
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| shape_error("GET", &url, "the answer has no `values` list"))?;
        histories.extend(values.iter().cloned());
        let total = response.body.get("total").and_then(Value::as_u64);
        let is_last = response.body.get("isLast").and_then(Value::as_bool);
        let done = match (is_last, total) {
            (Some(last), _) => last,
            (None, Some(total)) => histories.len() as u64 >= total,
            (None, None) => true,
        };
        if done || values.is_empty() {
            if total.is_some_and(|t| (histories.len() as u64) < t) {
                return Err(shape_error(
                    "GET",
                    &url,
                    &format!(
                        "the changelog ended after {} of {} histories",
                        histories.len(),
                        total.unwrap_or_default()
                    ),
                ));
            }
            return Ok(histories);
        }
    }
}

/// Data Center: the issue with `expand=changelog`, which holds the whole changelog.
async fn dc_changelog(api: &Api, base: &Url, key: &str) -> Result<Vec<Value>, CollectError> {
    let mut url = join(base, &["rest", "api", "2", "issue", key]);
    url.query_pairs_mut()
        .append_pair("fields", "updated")
        .append_pair("expand", "changelog");
    let response = api.get(&url).await?;
    let (histories, complete) = super::issue::inline_histories(&response.body);
    if !complete {
        return Err(shape_error(
            "GET",
            &url,
            "the issue's changelog is missing or incomplete",
        ));
    }
    Ok(histories)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_rounded_down_to_the_minute_before_the_margin() {
        assert_eq!(
            jql_time("2026-03-02T10:15:59Z", Duration::hours(24)).as_deref(),
            Some("2026-03-01 10:15")
        );
        assert_eq!(
            jql("project = OPS", Some("2026-03-01 10:15")),
            "(project = OPS) AND updated >= \"2026-03-01 10:15\" ORDER BY created ASC, key ASC"
        );
        assert_eq!(
            jql("project = OPS", None),
            "(project = OPS) ORDER BY created ASC, key ASC"
        );
    }

    #[test]
    fn path_segments_are_encoded_under_the_base() {
        let base = Url::parse("https://jira.example.com/jira/").unwrap();
        assert_eq!(
            join(&base, &["rest", "api", "2", "issue", "OPS-1"]).as_str(),
            "https://jira.example.com/jira/rest/api/2/issue/OPS-1"
        );
    }
}
