//! The `gitlab_merge_requests` collector: merged GitLab merge requests with who approved them
//! and when (SOC 2 CC8.1 change management), from gitlab.com or a self-managed GitLab, through
//! the REST API v4.
//!
//! Each run lists the merged merge requests of every configured project and group that were
//! updated since the last committed run (`GET /projects/:id/merge_requests` and
//! `GET /groups/:id/merge_requests` with `state=merged&order_by=updated_at&sort=desc&
//! updated_after=…`, following the `Link: rel="next"` pages, or `x-next-page` when a proxy
//! dropped `Link`), then reads the approvals of each of them
//! (`GET /projects/:id/merge_requests/:iid/approvals`), at most 8 at a time. It records each as
//! a [`ChangeItem`](crate::change::ChangeItem) with its full current state.
//!
//! Approval times: `approved_by[].approved_at` where GitLab gives it (current versions, every
//! tier). Older servers give only `approved_by[].user`; for those merge requests the times come
//! from the merge request's system notes (`GET /projects/:id/merge_requests/:iid/notes`, the
//! last "approved this merge request" note of each approver, read oldest first), and an
//! approver without such a note is recorded with `at: null`, which never counts as approved
//! before the merge. Times are never guessed from `updated_at` or `merged_at`.
//!
//! Settings:
//! - `base_url`: the GitLab root (default `https://gitlab.com/`); a self-managed instance
//!   under a path such as `https://git.example.com/gitlab/` works, requests go to
//!   `<base_url>api/v4/…`. Giving the `api/v4` URL itself is refused.
//! - `projects`: project paths (`"group/subgroup/project"`), sent URL-encoded as `:id`.
//! - `groups`: group paths; a group's listing includes its subgroups' projects (GitLab's own
//!   default excludes archived projects). At least one project or group is required.
//! - `target_branches`: only merge requests into these branches (default: all). One branch is
//!   also sent as GitLab's `target_branch` filter; several are filtered here.
//! - `token_env` / `token_file`: where the token is read at each run (exactly one; the file
//!   must be 0600). `token_kind`: `"private"` (default: a personal, project or group access
//!   token, sent as `PRIVATE-TOKEN`) or `"oauth"` (sent as `Authorization: Bearer`). The token
//!   needs the `read_api` scope.
//! - `ca_file`: PEM certificates to trust besides the system roots (self-managed instances).
//! - `page_size`: merge requests per page, 1 to 100 (GitLab's maximum, the default).
//! - `since`: on the first run (no cursor), only merge requests updated at or after this time
//!   (`2026-01-01` or RFC 3339); default: all of them.
//!
//! Cursor: `{"projects": {"<path>": W}, "groups": {"<path>": W}}` with one
//! [`Watermark`](crate::change::Watermark) `W` (`{"since", "taken_at_since"}`) per configured
//! scope. The next run asks from `since` (GitLab's `updated_after` is inclusive) and skips the
//! merge requests already taken at that second. A scope removed from the settings is dropped
//! from the cursor; added back, it starts over from `since`.
//!
//! Guarantees: content is `{"items": [change, …]}` sorted by id
//! (`gitlab:<project path>!<iid>`, the path from `references.full`), holding only the merge
//! requests changed since the cursor, each once even when a project is also covered by a
//! group; `item_count` is their number. Any failed request (after the shared client's
//! rate-limit waits and 5xx retries), any answer not in GitLab's shape, or a `next` page link
//! to another origin than `base_url` fails the whole run: no partial snapshot, the cursor
//! stays where it was. Errors name the URL, the HTTP status and GitLab's `message`, never the
//! token.

mod approvals;
mod item;
mod listing;

use crate::change::{self, Watermark};
use crate::http::{self, Api, Auth, HttpClient, SecretSource};
use crate::registry::parse_settings;
use crate::{CollectContext, CollectError, Collector, SettingError, Snapshot};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use url::Url;

const DEFAULT_BASE_URL: &str = "https://gitlab.com/";
/// GitLab's largest `per_page`.
const MAX_PAGE_SIZE: u32 = 100;

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TokenKind {
    /// Personal, project or group access token: `PRIVATE-TOKEN: <token>`.
    #[default]
    Private,
    /// OAuth 2 access token: `Authorization: Bearer <token>`.
    Oauth,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    target_branches: Vec<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    token_kind: TokenKind,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_page_size")]
    page_size: u32,
    since: Option<String>,
}

/// What one listing covers: a project or a group, by its full path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Project(String),
    Group(String),
}

impl Scope {
    /// The cursor key holding this kind of scope.
    fn cursor_key(&self) -> &'static str {
        match self {
            Scope::Project(_) => "projects",
            Scope::Group(_) => "groups",
        }
    }

    /// `project` or `group`, as the details name it.
    fn noun(&self) -> &'static str {
        match self {
            Scope::Project(_) => "project",
            Scope::Group(_) => "group",
        }
    }

    fn path(&self) -> &str {
        match self {
            Scope::Project(path) | Scope::Group(path) => path,
        }
    }
}

/// A built `gitlab_merge_requests` collector.
#[derive(Debug)]
pub struct GitLabCollector {
    base: Url,
    scopes: Vec<Scope>,
    target_branches: BTreeSet<String>,
    secret: SecretSource,
    token_kind: TokenKind,
    client: HttpClient,
    page_size: u32,
    /// The lower bound of a first run (RFC 3339 UTC).
    since: Option<String>,
}

/// Build a `gitlab_merge_requests` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    let base = match http::base_url("base_url", &settings.base_url) {
        Ok(url) if url.path().trim_end_matches('/').ends_with("/api/v4") => {
            errors.push(SettingError::new(
                Some("base_url"),
                format!(
                    "{:?}: give GitLab's root URL (e.g. https://gitlab.com/), without api/v4",
                    settings.base_url
                ),
            ));
            None
        }
        Ok(url) => Some(url),
        Err(err) => {
            errors.push(err);
            None
        }
    };
    check_paths("projects", &settings.projects, &mut errors);
    check_paths("groups", &settings.groups, &mut errors);
    if settings.projects.is_empty() && settings.groups.is_empty() {
        errors.push(SettingError::new(
            Some("projects"),
            "set `projects` (project paths such as \"group/project\") and/or `groups`",
        ));
    }
    if let Some(bad) = settings
        .target_branches
        .iter()
        .find(|b| b.trim().is_empty() || b.trim() != b.as_str())
    {
        errors.push(SettingError::new(
            Some("target_branches"),
            format!("{bad:?} is not a branch name"),
        ));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&settings.page_size) {
        errors.push(SettingError::new(
            Some("page_size"),
            format!("must be 1 to {MAX_PAGE_SIZE} (GitLab's largest page)"),
        ));
    }
    let since = match settings.since.as_deref().map(change::since_setting) {
        Some(Ok(since)) => Some(since),
        Some(Err(err)) => {
            errors.push(err);
            None
        }
        None => None,
    };
    let secret = SecretSource::from_settings(
        "token_env",
        settings.token_env.as_deref(),
        "token_file",
        settings.token_file.as_deref(),
        "the GitLab token",
    )
    .map_err(|err| errors.push(err))
    .ok();
    let client = HttpClient::new(settings.ca_file.as_deref())
        .map_err(|err| errors.push(err))
        .ok();
    let (Some(base), Some(secret), Some(client), true) = (base, secret, client, errors.is_empty())
    else {
        return Err(errors);
    };
    let scopes = settings
        .projects
        .iter()
        .map(|p| Scope::Project(p.clone()))
        .chain(settings.groups.iter().map(|g| Scope::Group(g.clone())))
        .collect();
    Ok(Box::new(GitLabCollector {
        base,
        scopes,
        target_branches: settings.target_branches.into_iter().collect(),
        secret,
        token_kind: settings.token_kind,
        client,
        page_size: settings.page_size,
        since,
    }))
}

/// Project and group paths: `a/b/c`, without empty parts, spaces or duplicates.
fn check_paths(key: &str, paths: &[String], errors: &mut Vec<SettingError>) {
    let mut seen = BTreeSet::new();
    for path in paths {
        let well_formed = !path.is_empty()
            && path.split('/').all(|part| !part.is_empty())
            && !path.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            errors.push(SettingError::new(
                Some(key),
                format!("{path:?} is not a GitLab path such as \"group/project\""),
            ));
        } else if !seen.insert(path) {
            errors.push(SettingError::new(
                Some(key),
                format!("{path:?} is listed twice"),
            ));
        }
    }
}

#[async_trait::async_trait]
impl Collector for GitLabCollector {
    fn kind(&self) -> &'static str {
        "gitlab_merge_requests"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let token = self.secret.load().await?;
        let auth = match self.token_kind {
            TokenKind::Private => Auth::Header {
                name: "private-token",
                token,
            },
            TokenKind::Oauth => Auth::Bearer(token),
        };
        let cursor = Cursor::from_json(ctx.cursor.as_ref(), &self.scopes)?;
        let api = Api::new(&self.client, Some(auth), ctx.deadline);

        // Listings first, every page of every scope, so that the approvals of a merge request
        // met in two scopes (a project and its group) are read once.
        let mut changed: BTreeMap<String, item::MergeRequest> = BTreeMap::new();
        let mut next_cursor = Cursor::default();
        let mut scope_details = Vec::new();
        for scope in &self.scopes {
            let mark = cursor.get(scope).cloned().unwrap_or_else(|| Watermark {
                since: self.since.clone(),
                taken_at_since: BTreeSet::new(),
            });
            let request = listing::Listing {
                base: &self.base,
                scope,
                page_size: self.page_size,
                target_branches: &self.target_branches,
            };
            let listed = request.run(&api, &mark).await?;
            scope_details.push(json!({
                "scope": scope.noun(),
                "path": scope.path(),
                "pages": listed.pages,
                "listed": listed.listed,
                "changed": listed.merge_requests.len(),
                "stopped_early": listed.stopped_early,
                "since": mark.since,
                "until": listed.mark.since,
            }));
            next_cursor.set(scope, listed.mark);
            for mr in listed.merge_requests {
                changed.insert(mr.id.clone(), mr);
            }
        }

        let fetcher = approvals::Fetcher {
            api: api.clone(),
            deadline: ctx.deadline,
            base: self.base.clone(),
        };
        let fetched = approvals::fetch_all(fetcher, changed.into_values().collect()).await?;
        let from_notes = fetched.iter().filter(|(_, a)| a.from_notes).count();
        let items = fetched
            .into_iter()
            .map(|(mr, record)| mr.into_item(record))
            .collect::<Vec<_>>();

        let details = json!({
            "merge_requests": items.len(),
            "approval_times_from_notes": from_notes,
            "scopes": scope_details,
            "http": api.stats().to_json(),
        });
        change::snapshot(items, next_cursor.to_json(), details).await
    }
}

/// The watermarks of the configured scopes.
#[derive(Debug, Default)]
struct Cursor {
    marks: BTreeMap<&'static str, BTreeMap<String, Watermark>>,
}

impl Cursor {
    /// Read the watermarks of `scopes` from a stored cursor; `None` is a first run.
    fn from_json(value: Option<&Value>, scopes: &[Scope]) -> Result<Cursor, CollectError> {
        let mut cursor = Cursor::default();
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(cursor);
        };
        let Some(object) = value.as_object() else {
            return Err(CollectError::Other(format!(
                "unreadable cursor {value}: not a JSON object"
            )));
        };
        for scope in scopes {
            let stored = object
                .get(scope.cursor_key())
                .and_then(|marks| marks.get(scope.path()));
            if stored.is_some() {
                cursor.set(scope, Watermark::from_json(stored)?);
            }
        }
        Ok(cursor)
    }

    fn get(&self, scope: &Scope) -> Option<&Watermark> {
        self.marks.get(scope.cursor_key())?.get(scope.path())
    }

    fn set(&mut self, scope: &Scope, mark: Watermark) {
        self.marks
            .entry(scope.cursor_key())
            .or_default()
            .insert(scope.path().to_owned(), mark);
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (key, marks) in &self.marks {
            let marks: Map<String, Value> = marks
                .iter()
                .map(|(path, mark)| (path.clone(), mark.to_json()))
                .collect();
            out.insert((*key).to_owned(), Value::Object(marks));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_keeps_configured_scopes_only() {
        let scopes = vec![Scope::Project("g/p".into()), Scope::Group("g".into())];
        let stored = json!({
            "projects": {"g/p": {"since": "2026-03-01T12:00:00Z", "taken_at_since": ["gitlab:g/p!1"]},
                         "old/gone": {"since": "2026-01-01T00:00:00Z"}},
        });
        let cursor = Cursor::from_json(Some(&stored), &scopes).unwrap();
        assert_eq!(
            cursor.get(&scopes[0]).unwrap().since.as_deref(),
            Some("2026-03-01T12:00:00Z")
        );
        assert!(cursor.get(&scopes[1]).is_none());
        assert_eq!(
            cursor.to_json(),
            json!({"projects": {"g/p": {"since": "2026-03-01T12:00:00Z",
                                        "taken_at_since": ["gitlab:g/p!1"]}}})
        );
        assert!(Cursor::from_json(Some(&json!([1])), &scopes).is_err());
    }
}
