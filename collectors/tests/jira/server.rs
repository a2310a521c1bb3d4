//! The HTTP side of the test Jira: the searches of both deployments, Cloud's changelog
//! endpoint, authentication, the JQL the collector sends (evaluated, not just accepted), and
//! faults served at a chosen page.

use super::common::api_server::Fault;
use super::site::{Flavor, Issue};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The query configured in the tests.
pub const BASE_JQL: &str = "project = OPS AND issuetype = Change";
pub const EMAIL: &str = "evidence-bot@acme.example";
pub const TOKEN: &str = "ATATT3xFfGF0-test-token-0123456789";
/// The order the collector asks for.
const ORDER: &str = " ORDER BY created ASC, key ASC";
/// Cloud's search returns at most this many (the most recent) histories per issue.
const INLINE_HISTORIES: usize = 20;
/// Cloud's changelog endpoint returns at most this many histories per page here (it may
/// return fewer than asked; the response's `maxResults` says how many).
const CHANGELOG_PAGE: usize = 10;

pub struct Site {
    pub flavor: Flavor,
    pub issues: Vec<Issue>,
    /// The time zone of the token's user, in which JQL dates are read.
    user_zone: FixedOffset,
    /// Faults answered instead of the search page at an offset.
    page_faults: Vec<(usize, Fault)>,
    /// An issue that leaves the query once the first search page was served.
    pub hide_after_first_page: Option<u32>,
    pages_served: u32,
}

#[derive(Clone)]
pub struct Jira(Arc<Mutex<Site>>);

impl Jira {
    /// A site holding issues OPS-1 to OPS-`count`.
    pub fn new(flavor: Flavor, count: u32) -> Jira {
        // Cloud's bot user lives in Los Angeles (UTC−8 in early March), the Data Center one
        // in Berlin (UTC+1).
        let user_zone = match flavor {
            Flavor::Cloud => FixedOffset::west_opt(8 * 3600),
            Flavor::DataCenter => FixedOffset::east_opt(3600),
        }
        .expect("offset");
        Jira(Arc::new(Mutex::new(Site {
            flavor,
            issues: (1..=count).map(Issue::generate).collect(),
            user_zone,
            page_faults: Vec::new(),
            hide_after_first_page: None,
            pages_served: 0,
        })))
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Site) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    /// Answer the search page starting at `offset` with `fault` (once).
    pub fn fail_at(&self, offset: usize, fault: Fault) {
        self.with(|site| site.page_faults.push((offset, fault)));
    }

    pub fn router(&self) -> Router {
        Router::new()
            // https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-post
            .route("/rest/api/3/search/jql", post(cloud_search))
            // https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-changelog-get
            .route("/rest/api/3/issue/{key}/changelog", get(cloud_changelog))
            // https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/#api/2/search-search
            // (served under the context path /jira, as Data Center often is)
            .route("/jira/rest/api/2/search", get(dc_search))
            .with_state(self.clone())
    }
}

impl Site {
    pub fn issue(&mut self, n: u32) -> &mut Issue {
        self.issues
            .iter_mut()
            .find(|i| i.n == n)
            .expect("a fixture issue")
    }

    /// Jira's error collection (`{"errorMessages": [...], "errors": {}}`) with `status`.
    fn error(status: StatusCode, message: &str) -> Response {
        (
            status,
            Json(json!({"errorMessages": [message], "errors": {}})),
        )
            .into_response()
    }

    /// Cloud: Basic with the account's e-mail and API token; Data Center: Bearer with a
    /// personal access token. Cloud answers a bad credential with a plain-text 401.
    fn deny(&self, headers: &HeaderMap) -> Option<Response> {
        let expected = match self.flavor {
            Flavor::Cloud => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"))
            ),
            Flavor::DataCenter => format!("Bearer {TOKEN}"),
        };
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent == Some(expected.as_str()) {
            return None;
        }
        let mut response = Response::new(Body::from(
            "Client must be authenticated to access this resource.",
        ));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/plain;charset=UTF-8"),
        );
        Some(response)
    }

    fn page_fault(&mut self, offset: usize) -> Option<Response> {
        let at = self.page_faults.iter().position(|(o, _)| *o == offset)?;
        let (_, fault) = self.page_faults.remove(at);
        let mut response = Response::new(Body::from(fault.body.clone()));
        *response.status_mut() = StatusCode::from_u16(fault.status).expect("status");
        for (name, value) in &fault.headers {
            response.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        Some(response)
    }

    fn page_served(&mut self) {
        self.pages_served += 1;
        if self.pages_served == 1 {
            if let Some(n) = self.hide_after_first_page.take() {
                self.issue(n).hidden = true;
            }
        }
    }

    /// The issues the collector's JQL selects, in its order. The JQL must be the configured
    /// query, optionally `AND updated >= "yyyy-MM-dd HH:mm"` (read in the user's zone, as
    /// Jira does), then `ORDER BY created ASC, key ASC`.
    fn search(&self, jql: &str) -> Result<Vec<&Issue>, String> {
        let bad = |why: &str| format!("Error in the JQL Query: {why} (query: {jql})");
        let rest = jql
            .strip_prefix(&format!("({BASE_JQL})"))
            .ok_or_else(|| bad("not the configured query"))?;
        let rest = rest
            .strip_suffix(ORDER)
            .ok_or_else(|| bad("not ordered by created, key"))?;
        let from: Option<DateTime<Utc>> = match rest {
            "" => None,
            _ => {
                let text = rest
                    .strip_prefix(" AND updated >= \"")
                    .and_then(|r| r.strip_suffix('"'))
                    .ok_or_else(|| bad("unexpected clause"))?;
                let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
                    .map_err(|_| bad("date value is not yyyy-MM-dd HH:mm"))?;
                let at = local
                    .and_local_timezone(self.user_zone)
                    .single()
                    .ok_or_else(|| bad("date out of range"))?;
                Some(at.with_timezone(&Utc))
            }
        };
        let mut found: Vec<&Issue> = self
            .issues
            .iter()
            .filter(|i| !i.hidden && from.is_none_or(|from| i.updated() >= from))
            .collect();
        found.sort_by_key(|i| (i.created, i.key()));
        Ok(found)
    }

    fn issue_json(&self, issue: &Issue, wanted: &[String], changelog: bool) -> Value {
        let mut out = issue.json(self.flavor, wanted);
        if changelog {
            let all = issue.histories_json(self.flavor);
            let total = all.len();
            out["changelog"] = match self.flavor {
                // "a list of recent updates to an issue, sorted by date, starting from the most recent"
                Flavor::Cloud => {
                    let recent: Vec<Value> = all.into_iter().rev().take(INLINE_HISTORIES).collect();
                    json!({"startAt": 0, "maxResults": INLINE_HISTORIES, "total": total, "histories": recent})
                }
                Flavor::DataCenter => {
                    json!({"startAt": 0, "maxResults": total, "total": total, "histories": all})
                }
            };
        }
        out
    }
}

fn token_of(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ops-search:{offset}"))
}

fn offset_of(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("ops-search:")?
        .parse()
        .ok()
}

fn wants_changelog(expand: Option<&str>) -> bool {
    expand.is_some_and(|e| e.split(',').any(|x| x.trim() == "changelog"))
}

/// `POST /rest/api/3/search/jql` → `{"issues", "nextPageToken", "isLast"}`.
async fn cloud_search(
    State(jira): State<Jira>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    jira.with(|site| {
        if let Some(denied) = site.deny(&headers) {
            return denied;
        }
        let offset = match body.get("nextPageToken").and_then(Value::as_str) {
            None => 0,
            Some(token) => match offset_of(token) {
                Some(offset) => offset,
                None => return Site::error(StatusCode::BAD_REQUEST, "Invalid nextPageToken."),
            },
        };
        if let Some(fault) = site.page_fault(offset) {
            return fault;
        }
        let jql = body.get("jql").and_then(Value::as_str).unwrap_or_default();
        let wanted: Vec<String> = body
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        let size = body
            .get("maxResults")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .min(100) as usize;
        let changelog = wants_changelog(body.get("expand").and_then(Value::as_str));
        let found = match site.search(jql) {
            Ok(found) => found,
            Err(why) => return Site::error(StatusCode::BAD_REQUEST, &why),
        };
        let end = (offset + size).min(found.len());
        let issues: Vec<Value> = found
            .get(offset..end)
            .unwrap_or_default()
            .iter()
            .map(|i| site.issue_json(i, &wanted, changelog))
            .collect();
        let mut answer = json!({"issues": issues, "isLast": end >= found.len()});
        if end < found.len() {
            answer["nextPageToken"] = json!(token_of(end));
        }
        site.page_served();
        Json(answer).into_response()
    })
}

/// `GET /rest/api/3/issue/{key}/changelog` → a PageBeanChangelog, oldest first.
async fn cloud_changelog(
    State(jira): State<Jira>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    jira.with(|site| {
        if let Some(denied) = site.deny(&headers) {
            return denied;
        }
        let Some(issue) = site.issues.iter().find(|i| i.key() == key) else {
            return Site::error(
                StatusCode::NOT_FOUND,
                "Issue does not exist or you do not have permission to see it.",
            );
        };
        let start: usize = query
            .get("startAt")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let size: usize = query
            .get("maxResults")
            .and_then(|s| s.parse().ok())
            .unwrap_or(100)
            .min(CHANGELOG_PAGE);
        let all = issue.histories_json(site.flavor);
        let end = (start + size).min(all.len());
        let values = all.get(start..end).unwrap_or_default().to_vec();
        let url = |at: usize| {
            format!(
                "{}/rest/api/3/issue/{key}/changelog?startAt={at}&maxResults={size}",
                super::site::CLOUD_SITE
            )
        };
        let mut page = json!({
            "self": url(start),
            "maxResults": size,
            "startAt": start,
            "total": all.len(),
            "isLast": end >= all.len(),
            "values": values,
        });
        if end < all.len() {
            page["nextPage"] = json!(url(end));
        }
        Json(page).into_response()
    })
}

/// `GET /rest/api/2/search?jql=&startAt=&maxResults=&fields=&expand=` →
/// `{"expand", "startAt", "maxResults", "total", "issues"}`.
async fn dc_search(
    State(jira): State<Jira>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    jira.with(|site| {
        if let Some(denied) = site.deny(&headers) {
            return denied;
        }
        let start: usize = query
            .get("startAt")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if let Some(fault) = site.page_fault(start) {
            return fault;
        }
        // jira.search.views.default.max is 1000 by default.
        let size: usize = query
            .get("maxResults")
            .and_then(|s| s.parse().ok())
            .unwrap_or(50)
            .min(1000);
        let wanted: Vec<String> = query
            .get("fields")
            .map(|f| f.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let changelog = wants_changelog(query.get("expand").map(String::as_str));
        let jql = query.get("jql").map(String::as_str).unwrap_or_default();
        let found = match site.search(jql) {
            Ok(found) => found,
            Err(why) => return Site::error(StatusCode::BAD_REQUEST, &why),
        };
        let end = (start + size).min(found.len());
        let issues: Vec<Value> = found
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|i| site.issue_json(i, &wanted, changelog))
            .collect();
        let answer = json!({
            "expand": "schema,names",
            "startAt": start,
            "maxResults": size,
            "total": found.len(),
            "issues": issues,
        });
        site.page_served();
        Json(answer).into_response()
    })
}
