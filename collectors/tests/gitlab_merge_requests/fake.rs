//! A fake GitLab REST API v4 answering in GitLab's documented shapes: merge request listings of
//! projects and groups (filters, ordering, offset pagination with its headers), the approvals
//! of a merge request, its notes, and GitLab's error bodies.

use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "glpat-Xq7fN2vR8kLm3pT9wZ4c";

#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    /// `path_with_namespace`.
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Mr {
    pub project_id: u64,
    pub iid: u64,
    pub title: String,
    pub description: String,
    pub source_branch: String,
    pub target_branch: String,
    pub author: String,
    /// `merged` or `opened`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub merged_at: Option<DateTime<Utc>>,
    pub merged_by: Option<String>,
    pub labels: Vec<String>,
    /// (username, approved at).
    pub approvals: Vec<(String, DateTime<Utc>)>,
    /// Extra system notes (username, body, at), e.g. an approval withdrawn and given again.
    pub extra_notes: Vec<(String, String, DateTime<Utc>)>,
}

#[derive(Debug, Default)]
pub struct State {
    pub projects: Vec<Project>,
    pub mrs: Vec<Mr>,
    /// A GitLab from before `approved_by[].approved_at`: approvals carry no time.
    pub legacy_approvals: bool,
    /// A proxy in front that drops the `Link` header.
    pub drop_link_header: bool,
    /// Answer this listing page with a body cut off in the middle of the JSON.
    pub broken_page: Option<u32>,
}

pub type Shared = Arc<Mutex<State>>;

/// The first time of the fixtures; every merge request is placed after it.
pub fn t0() -> DateTime<Utc> {
    "2026-03-01T08:00:00Z".parse().unwrap()
}

/// GitLab's time format: UTC with milliseconds (`2026-03-01T08:00:00.000Z`).
pub fn gitlab_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Merged merge request number `n` of `project`: created `n` hours after [`t0`], approved by
/// alice after 30 min (and by bob after 45 min when `n` is even, none when `n` is a multiple
/// of 5), merged after 1 h, updated 10.517 s later; every 7th goes to `release/1.x`.
pub fn merged(project: &Project, n: u64) -> Mr {
    let created = t0() + Duration::hours(n as i64);
    let merged = created + Duration::hours(1);
    let mut approvals = Vec::new();
    if n % 5 != 0 {
        approvals.push(("alice".to_owned(), created + Duration::minutes(30)));
        if n % 2 == 0 {
            approvals.push(("bob".to_owned(), created + Duration::minutes(45)));
        }
    }
    Mr {
        project_id: project.id,
        iid: n,
        title: format!("OPS-{}: tune connection pool #{n}", 100 + n),
        description: format!(
            "Raises the pool size.\n\nRelated: SEC-{n}. Payload stays UTF-8 and SHA-256 signed."
        ),
        source_branch: format!("feature/OPS-{}-pool", 100 + n),
        target_branch: if n % 7 == 0 { "release/1.x" } else { "main" }.to_owned(),
        author: "dana".to_owned(),
        state: "merged".to_owned(),
        created_at: created,
        updated_at: merged + Duration::milliseconds(10_517),
        merged_at: Some(merged),
        merged_by: Some("maintainer1".to_owned()),
        labels: vec!["backend".to_owned(), "change::standard".to_owned()],
        approvals,
        extra_notes: Vec::new(),
    }
}

/// Routes under `prefix` ("" for gitlab.com, "/gitlab" for a self-managed instance there).
pub fn router(state: Shared, prefix: &str) -> Router {
    Router::new()
        .route(
            &format!("{prefix}/api/v4/projects/{{id}}/merge_requests"),
            get(project_merge_requests),
        )
        .route(
            &format!("{prefix}/api/v4/groups/{{id}}/merge_requests"),
            get(group_merge_requests),
        )
        .route(
            &format!("{prefix}/api/v4/projects/{{id}}/merge_requests/{{iid}}/approvals"),
            get(approvals),
        )
        .route(
            &format!("{prefix}/api/v4/projects/{{id}}/merge_requests/{{iid}}/notes"),
            get(notes),
        )
        .with_state((state, prefix.to_owned()))
}

type Ctx = Extract<(Shared, String)>;
type Params = Query<Vec<(String, String)>>;

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// GitLab's 401 for a missing or wrong token
/// (https://docs.gitlab.com/api/rest/troubleshooting/#status-codes).
fn refused(headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = format!("Bearer {TOKEN}");
    let known = header("private-token") == Some(TOKEN) || header("authorization") == Some(&bearer);
    (!known).then(|| error(StatusCode::UNAUTHORIZED, "401 Unauthorized"))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

fn find_project(state: &State, id: &str) -> Option<Project> {
    state
        .projects
        .iter()
        .find(|p| p.id.to_string() == id || p.path == id)
        .cloned()
}

/// https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
async fn project_merge_requests(
    Extract((state, prefix)): Ctx,
    Path(id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(denied) = refused(&headers) {
        return denied;
    }
    let state = state.lock().unwrap();
    let Some(project) = find_project(&state, &id) else {
        return error(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    listing(&state, &prefix, uri.path(), &params, &headers, |mr| {
        mr.project_id == project.id
    })
}

/// https://docs.gitlab.com/api/merge_requests/#list-group-merge-requests (the group and its
/// subgroups).
async fn group_merge_requests(
    Extract((state, prefix)): Ctx,
    Path(id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(denied) = refused(&headers) {
        return denied;
    }
    let state = state.lock().unwrap();
    let inside = format!("{id}/");
    let members: Vec<u64> = state
        .projects
        .iter()
        .filter(|p| p.path.starts_with(&inside))
        .map(|p| p.id)
        .collect();
    if members.is_empty() {
        return error(StatusCode::NOT_FOUND, "404 Group Not Found");
    }
    listing(&state, &prefix, uri.path(), &params, &headers, |mr| {
        members.contains(&mr.project_id)
    })
}

fn listing(
    state: &State,
    prefix: &str,
    path: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    wanted: impl Fn(&Mr) -> bool,
) -> Response {
    let after = param(params, "updated_after").map(|t| t.parse::<DateTime<Utc>>().unwrap());
    let mut mrs: Vec<&Mr> = state
        .mrs
        .iter()
        .filter(|mr| wanted(mr))
        .filter(|mr| param(params, "state").is_none_or(|s| s == "all" || s == mr.state))
        .filter(|mr| param(params, "target_branch").is_none_or(|b| b == mr.target_branch))
        .filter(|mr| after.is_none_or(|after| mr.updated_at >= after))
        .collect();
    let by_updated = param(params, "order_by") == Some("updated_at");
    mrs.sort_by_key(|mr| {
        if by_updated {
            mr.updated_at
        } else {
            mr.created_at
        }
    });
    if param(params, "sort") != Some("asc") {
        mrs.reverse();
    }
    let host = host(headers);
    let web = format!("http://{host}{prefix}/");
    let objects: Vec<Value> = mrs
        .iter()
        .map(|mr| {
            let project = state
                .projects
                .iter()
                .find(|p| p.id == mr.project_id)
                .unwrap();
            merge_request(mr, project, &web)
        })
        .collect();
    let page = page_number(params);
    if state.broken_page == Some(page) {
        return (
            [("content-type", "application/json")],
            "[{\"id\": 1, \"iid\": 1, \"project_id\": 3, \"title\": \"tr",
        )
            .into_response();
    }
    paginate(
        &objects,
        params,
        &format!("http://{host}{path}"),
        !state.drop_link_header,
    )
}

fn host(headers: &HeaderMap) -> &str {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
}

fn page_number(params: &[(String, String)]) -> u32 {
    param(params, "page").map_or(1, |p| p.parse().unwrap())
}

/// Offset pagination as https://docs.gitlab.com/api/rest/#pagination documents it: `x-page`,
/// `x-per-page`, `x-total`, `x-total-pages`, `x-next-page` / `x-prev-page` (empty at the
/// ends) and a `Link` header with prev, next, first and last, each holding the request's
/// parameters with its page.
fn paginate(all: &[Value], params: &[(String, String)], url: &str, link: bool) -> Response {
    let per_page: usize = param(params, "per_page").map_or(20, |p| p.parse().unwrap());
    let per_page = per_page.clamp(1, 100);
    let page = page_number(params) as usize;
    let total_pages = all.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let page_url = |n: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
        {
            query.append_pair(k, v);
        }
        query.append_pair("page", &n.to_string());
        query.append_pair("per_page", &per_page.to_string());
        format!("{url}?{}", query.finish())
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", page_url(page - 1)));
    }
    if page < total_pages {
        links.push(format!("<{}>; rel=\"next\"", page_url(page + 1)));
    }
    links.push(format!("<{}>; rel=\"first\"", page_url(1)));
    links.push(format!("<{}>; rel=\"last\"", page_url(total_pages)));
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, value.parse().unwrap());
    };
    if link {
        set("link", links.join(", "));
    }
    let next = if page < total_pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    set("x-next-page", next);
    set("x-page", page.to_string());
    set("x-per-page", per_page.to_string());
    set("x-prev-page", prev);
    set("x-total", all.len().to_string());
    set("x-total-pages", total_pages.to_string());
    set("x-request-id", "01JQ2ZC0R6MNXJ4XKQ1V8Y3B2F".to_owned());
    set("x-runtime", "0.108688".to_owned());
    (headers, Json(Value::Array(items))).into_response()
}

fn user(username: &str, web: &str) -> Value {
    let id = username.bytes().map(u64::from).sum::<u64>();
    json!({
        "id": id,
        "username": username,
        "name": format!("{}{}", username[..1].to_uppercase(), &username[1..]),
        "state": "active",
        "locked": false,
        "avatar_url": format!("https://secure.gravatar.com/avatar/{id:032x}?s=80&d=identicon"),
        "web_url": format!("{web}{username}"),
    })
}

/// A merge request object with the field set of the documented list response.
fn merge_request(mr: &Mr, project: &Project, web: &str) -> Value {
    let merged_by = mr.merged_by.as_deref().map(|u| user(u, web));
    json!({
        "id": project.id * 1000 + mr.iid,
        "iid": mr.iid,
        "project_id": project.id,
        "title": mr.title,
        "description": mr.description,
        "state": mr.state,
        "imported": false,
        "imported_from": "none",
        "merged_by": merged_by,
        "merge_user": merged_by,
        "merged_at": mr.merged_at.map(gitlab_time),
        "merge_after": null,
        "prepared_at": gitlab_time(mr.created_at + Duration::seconds(3)),
        "closed_by": null,
        "closed_at": null,
        "created_at": gitlab_time(mr.created_at),
        "updated_at": gitlab_time(mr.updated_at),
        "target_branch": mr.target_branch,
        "source_branch": mr.source_branch,
        "upvotes": 0,
        "downvotes": 0,
        "author": user(&mr.author, web),
        "assignee": user(&mr.author, web),
        "assignees": [user(&mr.author, web)],
        "reviewers": [user("alice", web)],
        "source_project_id": project.id,
        "target_project_id": project.id,
        "labels": mr.labels,
        "draft": false,
        "work_in_progress": false,
        "milestone": null,
        "merge_when_pipeline_succeeds": false,
        "merge_status": "can_be_merged",
        "detailed_merge_status": "not_open",
        "sha": format!("{:040x}", project.id * 1_000_000 + mr.iid),
        "merge_commit_sha": mr.merged_at.map(|_| format!("{:040x}", project.id * 2_000_000 + mr.iid)),
        "squash_commit_sha": null,
        "user_notes_count": 1,
        "discussion_locked": null,
        "should_remove_source_branch": true,
        "force_remove_source_branch": false,
        "allow_collaboration": false,
        "allow_maintainer_to_push": false,
        "web_url": format!("{web}{}/-/merge_requests/{}", project.path, mr.iid),
        "references": {
            "short": format!("!{}", mr.iid),
            "relative": format!("!{}", mr.iid),
            "full": format!("{}!{}", project.path, mr.iid),
        },
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": null,
            "human_total_time_spent": null,
        },
        "squash": false,
        "squash_on_merge": false,
        "task_completion_status": {"count": 0, "completed_count": 0},
        "has_conflicts": false,
        "blocking_discussions_resolved": true,
    })
}

fn find_mr(state: &State, id: &str, iid: u64) -> Option<(Project, Mr)> {
    let project = find_project(state, id)?;
    let mr = state
        .mrs
        .iter()
        .find(|mr| mr.project_id == project.id && mr.iid == iid)?;
    Some((project, mr.clone()))
}

/// https://docs.gitlab.com/api/merge_request_approvals/#retrieve-approval-state-for-a-merge-request
async fn approvals(
    Extract((state, prefix)): Ctx,
    Path((id, iid)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = refused(&headers) {
        return denied;
    }
    let state = state.lock().unwrap();
    let Some((project, mr)) = find_mr(&state, &id, iid) else {
        return error(StatusCode::NOT_FOUND, "404 Not found");
    };
    let web = format!("http://{}{prefix}/", host(&headers));
    let approved_by: Vec<Value> = mr
        .approvals
        .iter()
        .map(|(username, at)| {
            let mut entry = json!({ "user": user(username, &web) });
            if !state.legacy_approvals {
                entry["approved_at"] = json!(gitlab_time(*at));
            }
            entry
        })
        .collect();
    Json(json!({
        "id": project.id * 1000 + mr.iid,
        "iid": mr.iid,
        "project_id": project.id,
        "title": mr.title,
        "description": mr.description,
        "state": mr.state,
        "created_at": gitlab_time(mr.created_at),
        "updated_at": gitlab_time(mr.updated_at),
        "merge_status": "can_be_merged",
        "approvals_required": 1,
        "approvals_left": if mr.approvals.is_empty() { 1 } else { 0 },
        "approved_by": approved_by,
    }))
    .into_response()
}

/// https://docs.gitlab.com/api/notes/#list-all-merge-request-notes: a comment, the approval
/// system notes, and the merge note; `sort` (default `desc`) and pagination honoured.
async fn notes(
    Extract((state, prefix)): Ctx,
    Path((id, iid)): Path<(String, u64)>,
    Query(params): Params,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(denied) = refused(&headers) {
        return denied;
    }
    let state = state.lock().unwrap();
    let Some((project, mr)) = find_mr(&state, &id, iid) else {
        return error(StatusCode::NOT_FOUND, "404 Not found");
    };
    let web = format!("http://{}{prefix}/", host(&headers));
    let mut entries: Vec<(String, String, DateTime<Utc>, bool)> = vec![(
        "alice".to_owned(),
        "Looks good, one nit about the timeout.".to_owned(),
        mr.created_at + Duration::minutes(20),
        false,
    )];
    for (username, at) in &mr.approvals {
        entries.push((
            username.clone(),
            "approved this merge request".to_owned(),
            *at,
            true,
        ));
    }
    for (username, body, at) in &mr.extra_notes {
        entries.push((username.clone(), body.clone(), *at, true));
    }
    if let (Some(merged_at), Some(by)) = (mr.merged_at, &mr.merged_by) {
        entries.push((by.clone(), "merged".to_owned(), merged_at, true));
    }
    entries.sort_by_key(|(_, _, at, _)| *at);
    if param(&params, "sort") != Some("asc") {
        entries.reverse();
    }
    let objects: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, (username, body, at, system))| {
            json!({
                "id": 900_000 + mr.iid * 100 + i as u64,
                "type": null,
                "body": body,
                "attachment": null,
                "author": user(username, &web),
                "created_at": gitlab_time(*at),
                "updated_at": gitlab_time(*at),
                "system": system,
                "noteable_id": project.id * 1000 + mr.iid,
                "noteable_type": "MergeRequest",
                "project_id": project.id,
                "noteable_iid": mr.iid,
                "resolvable": false,
                "confidential": false,
                "internal": false,
                "imported": false,
                "imported_from": "none",
            })
        })
        .collect();
    let url = format!("http://{}{}", host(&headers), uri.path());
    paginate(&objects, &params, &url, !state.drop_link_header)
}
