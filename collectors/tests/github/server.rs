//! A GitHub REST API double for the `github_pull_requests` tests and benchmark: the endpoints
//! the collector calls, answering in the documented shapes (full objects, `Link` pagination
//! with GitHub's `/repositories/{id}/…` URLs, rate-limit headers on every answer, error bodies
//! `{"message", "documentation_url", "status"}`), and honouring the parameters the collector
//! sends (`state`, `sort`, `direction`, `per_page`, `page`, `base`, `type`), so incremental runs
//! are tested against a real filter. The data is a plain model the tests edit between runs.
#![allow(dead_code)] // the tests and the benchmark use different parts

use crate::common::api_server::{epoch_now, ApiServer, Fault};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The only token the double accepts (the shape of a classic personal access token).
pub const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
pub const ORG: &str = "octo-org";
const ORG_ID: u64 = 9_919;
const RATE_LIMIT: u64 = 5_000;

/// A minute-resolution clock for fixtures: minute `m` after 2026-03-01T00:00:00Z.
pub fn at(minute: i64) -> String {
    let start = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    (start + Duration::minutes(minute)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Clone)]
pub struct Review {
    pub id: u64,
    pub login: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`.
    pub state: &'static str,
    pub submitted_at: String,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub author: String,
    pub head_ref: String,
    pub base_ref: String,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
    pub draft: bool,
    pub labels: Vec<String>,
    pub reviews: Vec<Review>,
}

#[derive(Debug, Clone)]
pub struct Repo {
    pub id: u64,
    pub name: String,
    pub archived: bool,
    pub pulls: Vec<Pull>,
}

/// Pull request `number`, merged into `main` at minute `number * 10 + 6`, last updated a
/// minute later, approved once by `reviewer{number % 3}` before the merge.
pub fn merged_pull(number: u64) -> Pull {
    let m = i64::try_from(number).unwrap() * 10;
    Pull {
        number,
        title: format!("OPS-{number}: change number {number}"),
        body: Some(format!("Implements OPS-{number}.\r\n\r\nRisk: low")),
        author: format!("dev{}", number % 5),
        head_ref: format!("feature/OPS-{number}-work"),
        base_ref: "main".into(),
        created_at: at(m),
        updated_at: at(m + 7),
        closed_at: Some(at(m + 6)),
        merged_at: Some(at(m + 6)),
        draft: false,
        labels: vec!["change".into()],
        reviews: vec![Review {
            id: number * 100 + 1,
            login: format!("reviewer{}", number % 3),
            state: "APPROVED",
            submitted_at: at(m + 5),
        }],
    }
}

/// The data and the request counter behind the double.
pub struct GitHub {
    /// Shared with the answers being built; an edit copies a repository that is in use.
    repos: Mutex<Vec<Arc<Repo>>>,
    used: AtomicU64,
    reset: u64,
    /// "" for api.github.com, "/api/v3" for GitHub Enterprise Server.
    prefix: String,
}

impl GitHub {
    pub fn new(prefix: &str) -> Arc<GitHub> {
        Arc::new(GitHub {
            repos: Mutex::new(Vec::new()),
            used: AtomicU64::new(0),
            reset: epoch_now() + 3600,
            prefix: prefix.to_owned(),
        })
    }

    pub fn add_repo(&self, name: &str, archived: bool, pulls: Vec<Pull>) {
        let mut repos = self.repos.lock().unwrap();
        let id = 1_296_269 + repos.len() as u64;
        repos.push(Arc::new(Repo {
            id,
            name: name.to_owned(),
            archived,
            pulls,
        }));
    }

    /// Change pull request `number` of repository `name`.
    pub fn edit(&self, name: &str, number: u64, change: impl FnOnce(&mut Pull)) {
        let mut repos = self.repos.lock().unwrap();
        let repo = repos.iter_mut().find(|r| r.name == name).unwrap();
        let repo = Arc::make_mut(repo);
        change(repo.pulls.iter_mut().find(|p| p.number == number).unwrap());
    }

    pub fn add_pull(&self, name: &str, pull: Pull) {
        let mut repos = self.repos.lock().unwrap();
        let repo = repos.iter_mut().find(|r| r.name == name).unwrap();
        Arc::make_mut(repo).pulls.push(pull);
    }

    /// Serve the API on a local port: `<base>` or `<base>api/v3/`.
    pub fn start(self: &Arc<Self>) -> ApiServer {
        let routes = Router::new()
            // https://docs.github.com/en/rest/pulls/pulls#list-pull-requests
            .route("/repos/{owner}/{repo}/pulls", get(pulls_by_name))
            .route("/repositories/{id}/pulls", get(pulls_by_id))
            // https://docs.github.com/en/rest/pulls/reviews#list-reviews-for-a-pull-request
            .route(
                "/repos/{owner}/{repo}/pulls/{number}/reviews",
                get(reviews_by_name),
            )
            .route(
                "/repositories/{id}/pulls/{number}/reviews",
                get(reviews_by_id),
            )
            // https://docs.github.com/en/rest/repos/repos#list-organization-repositories
            .route("/orgs/{org}/repos", get(org_repos_by_name))
            .route("/organizations/{id}/repos", get(org_repos_by_id))
            .fallback(|State(gh): State<Arc<GitHub>>| async move {
                gh.error(StatusCode::NOT_FOUND, "Not Found")
            })
            .with_state(Arc::clone(self));
        let router = if self.prefix.is_empty() {
            routes
        } else {
            Router::new().nest(&self.prefix, routes)
        };
        ApiServer::start(router)
    }

    /// The rate-limit headers GitHub sends on every answer
    /// (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).
    fn rate_headers(&self, headers: &mut HeaderMap) {
        let used = self.used.fetch_add(1, Ordering::Relaxed) + 1;
        let value = |n: u64| HeaderValue::from_str(&n.to_string()).unwrap();
        headers.insert("x-ratelimit-limit", value(RATE_LIMIT));
        headers.insert(
            "x-ratelimit-remaining",
            value(RATE_LIMIT.saturating_sub(used)),
        );
        headers.insert("x-ratelimit-reset", value(self.reset));
        headers.insert("x-ratelimit-used", value(used));
        headers.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
        headers.insert(
            "x-github-api-version-selected",
            HeaderValue::from_static("2022-11-28"),
        );
        headers.insert(
            "x-github-media-type",
            HeaderValue::from_static("github.v3; format=json"),
        );
    }

    fn json(&self, status: StatusCode, body: &Value, link: Option<String>) -> Response {
        let mut headers = HeaderMap::new();
        self.rate_headers(&mut headers);
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(link) = link {
            headers.insert("link", HeaderValue::from_str(&link).unwrap());
        }
        (status, headers, body.to_string()).into_response()
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        let body = json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        });
        self.json(status, &body, None)
    }

    /// `None` when the request carries the token, else GitHub's 401.
    fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let ok =
            auth == Some(&format!("Bearer {TOKEN}")) || auth == Some(&format!("token {TOKEN}"));
        (!ok).then(|| self.error(StatusCode::UNAUTHORIZED, "Bad credentials"))
    }

    fn repo_by_name(&self, owner: &str, name: &str) -> Option<Arc<Repo>> {
        let repos = self.repos.lock().unwrap();
        repos
            .iter()
            .find(|r| owner.eq_ignore_ascii_case(ORG) && r.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    fn repo_by_id(&self, id: u64) -> Option<Arc<Repo>> {
        let repos = self.repos.lock().unwrap();
        repos.iter().find(|r| r.id == id).cloned()
    }
}

/// The URL roots of one answer: the API (`http://host/` or `http://host/api/v3/`) and the web.
pub struct Roots {
    pub api: String,
    pub web: String,
}

fn roots(gh: &GitHub, headers: &HeaderMap) -> Roots {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    Roots {
        api: format!("http://{host}{}/", gh.prefix),
        web: if gh.prefix.is_empty() {
            "https://github.com/".to_owned()
        } else {
            format!("http://{host}/")
        },
    }
}

/// Query parameters in order, `page` apart.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Params {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str, default: usize) -> usize {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// One page of `items` and GitHub's `Link` header for it
/// (https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api):
/// the other pages of the same query at `<api root><path>`, in the order prev, next, last,
/// first.
fn page_of<T: Clone>(
    items: &[T],
    params: &Params,
    roots: &Roots,
    path: &str,
) -> (Vec<T>, Option<String>) {
    // per_page: default 30, at most 100.
    let per_page = params.number("per_page", 30).clamp(1, 100);
    let page = params.number("page", 1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    if last == 1 {
        return (slice, None);
    }
    let url = |n: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.0.iter().filter(|(k, _)| k != "page") {
            query.append_pair(k, v);
        }
        query.append_pair("page", &n.to_string());
        format!("<{}{path}?{}>", roots.api, query.finish())
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
    }
    (slice, Some(links.join(", ")))
}

async fn pulls_by_name(
    State(gh): State<Arc<GitHub>>,
    Path((owner, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let repo = gh.repo_by_name(&owner, &name);
    list_pulls(&gh, repo, Params::parse(query), &headers)
}

async fn pulls_by_id(
    State(gh): State<Arc<GitHub>>,
    Path(id): Path<u64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let repo = gh.repo_by_id(id);
    list_pulls(&gh, repo, Params::parse(query), &headers)
}

/// `state` (default open), `sort` (created | updated, default created), `direction` (default
/// desc when sorting by created, else asc), `base`.
fn list_pulls(
    gh: &GitHub,
    repo: Option<Arc<Repo>>,
    params: Params,
    headers: &HeaderMap,
) -> Response {
    if let Some(refused) = gh.refuse(headers) {
        return refused;
    }
    let Some(repo) = repo else {
        return gh.error(StatusCode::NOT_FOUND, "Not Found");
    };
    let state = params.get("state").unwrap_or("open");
    let mut pulls: Vec<&Pull> = repo
        .pulls
        .iter()
        .filter(|p| match state {
            "open" => p.closed_at.is_none(),
            "closed" => p.closed_at.is_some(),
            _ => true,
        })
        .filter(|p| params.get("base").is_none_or(|b| b == p.base_ref))
        .collect();
    let sort = params.get("sort").unwrap_or("created");
    let default_direction = if sort == "created" { "desc" } else { "asc" };
    fn time<'p>(p: &'p Pull, sort: &str) -> &'p str {
        match sort {
            "updated" => &p.updated_at,
            _ => &p.created_at,
        }
    }
    pulls.sort_by(|a, b| {
        time(a, sort)
            .cmp(time(b, sort))
            .then(a.number.cmp(&b.number))
    });
    if params.get("direction").unwrap_or(default_direction) == "desc" {
        pulls.reverse();
    }
    let roots = roots(gh, headers);
    let path = format!("repositories/{}/pulls", repo.id);
    let (page, link) = page_of(&pulls, &params, &roots, &path);
    let body: Vec<Value> = page.iter().map(|p| pull_json(&roots, &repo, p)).collect();
    gh.json(StatusCode::OK, &Value::Array(body), link)
}

async fn reviews_by_name(
    State(gh): State<Arc<GitHub>>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let repo = gh.repo_by_name(&owner, &name);
    list_reviews(&gh, repo, number, Params::parse(query), &headers)
}

async fn reviews_by_id(
    State(gh): State<Arc<GitHub>>,
    Path((id, number)): Path<(u64, u64)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let repo = gh.repo_by_id(id);
    list_reviews(&gh, repo, number, Params::parse(query), &headers)
}

/// Reviews in chronological order.
fn list_reviews(
    gh: &GitHub,
    repo: Option<Arc<Repo>>,
    number: u64,
    params: Params,
    headers: &HeaderMap,
) -> Response {
    if let Some(refused) = gh.refuse(headers) {
        return refused;
    }
    let Some((repo, pull)) = repo.as_deref().and_then(|r| {
        let pull = r.pulls.iter().find(|p| p.number == number)?;
        Some((r, pull))
    }) else {
        return gh.error(StatusCode::NOT_FOUND, "Not Found");
    };
    let roots = roots(gh, headers);
    let path = format!("repositories/{}/pulls/{number}/reviews", repo.id);
    let (page, link) = page_of(&pull.reviews, &params, &roots, &path);
    let body: Vec<Value> = page
        .iter()
        .map(|r| review_json(&roots, repo, pull, r))
        .collect();
    gh.json(StatusCode::OK, &Value::Array(body), link)
}

async fn org_repos_by_name(
    State(gh): State<Arc<GitHub>>,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !org.eq_ignore_ascii_case(ORG) {
        return match gh.refuse(&headers) {
            Some(refused) => refused,
            None => gh.error(StatusCode::NOT_FOUND, "Not Found"),
        };
    }
    org_repos(&gh, Params::parse(query), &headers)
}

async fn org_repos_by_id(
    State(gh): State<Arc<GitHub>>,
    Path(id): Path<u64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if id != ORG_ID {
        return gh.error(StatusCode::NOT_FOUND, "Not Found");
    }
    org_repos(&gh, Params::parse(query), &headers)
}

/// `type` (all the double's repositories are sources, none forks), `sort` (created |
/// full_name, default created), `direction` (default asc for full_name, else desc).
fn org_repos(gh: &GitHub, params: Params, headers: &HeaderMap) -> Response {
    if let Some(refused) = gh.refuse(headers) {
        return refused;
    }
    let mut repos: Vec<Arc<Repo>> = gh.repos.lock().unwrap().clone();
    if params.get("type") == Some("forks") {
        repos.clear();
    }
    let sort = params.get("sort").unwrap_or("created");
    if sort == "full_name" {
        repos.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        repos.sort_by_key(|r| r.id);
    }
    let default_direction = if sort == "full_name" { "asc" } else { "desc" };
    if params.get("direction").unwrap_or(default_direction) == "desc" {
        repos.reverse();
    }
    let roots = roots(gh, headers);
    let (page, link) = page_of(
        &repos,
        &params,
        &roots,
        &format!("organizations/{ORG_ID}/repos"),
    );
    let body: Vec<Value> = page.iter().map(|r| repo_json(&roots, r)).collect();
    gh.json(StatusCode::OK, &Value::Array(body), link)
}

/// GitHub's answer when the primary rate limit is used up: 403 (or 429), remaining 0, and
/// the reset time in epoch seconds.
pub fn primary_rate_limit(status: u16, reset: u64) -> Fault {
    Fault::json(
        status,
        &json!({
            "message": "API rate limit exceeded for user ID 583231.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits",
            "status": status.to_string(),
        })
        .to_string(),
    )
    .header("x-ratelimit-limit", "5000")
    .header("x-ratelimit-remaining", "0")
    .header("x-ratelimit-used", "5000")
    .header("x-ratelimit-reset", &reset.to_string())
    .header("x-ratelimit-resource", "core")
}

/// GitHub's answer to a secondary rate limit: 403 with `retry-after`.
pub fn secondary_rate_limit(retry_after: u64) -> Fault {
    Fault::json(
        403,
        &json!({
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID DBD8:2C3A:1B8F0E6:1C5A2D4:65A1B2C3.",
            "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            "status": "403",
        })
        .to_string(),
    )
    .header("retry-after", &retry_after.to_string())
    .header("x-ratelimit-limit", "5000")
    .header("x-ratelimit-remaining", "4990")
    .header("x-ratelimit-used", "10")
    .header("x-ratelimit-reset", &(epoch_now() + 3600).to_string())
    .header("x-ratelimit-resource", "core")
}

#[path = "objects.rs"]
pub mod objects;
use objects::{pull_json, repo_json, review_json};
