//! The `github_pull_requests` collector: merged pull requests of GitHub (or GitHub Enterprise
//! Server) repositories, with their approvals, as change tickets (SOC 2 CC8.1).
//!
//! Each run records, as `{"items": [ChangeItem, …]}` ([`crate::change`]), the full current
//! state of every pull request closed or updated since the previous committed run: title,
//! author, base branch (`target`), times, the approvals of its reviews, the ticket keys it
//! names, and in `details` its number, repository, merge commit, head branch, draft flag,
//! labels, review count and who last asked for changes.
//!
//! Settings:
//! - `base_url`: the REST API root. Default `https://api.github.com/`; GitHub Enterprise
//!   Server: `https://HOST/api/v3/`.
//! - `repos`: `["owner/name", …]`, and/or `org`: every repository of that organization
//!   (`GET /orgs/{org}/repos`, all types). At least one of them. Archived repositories are
//!   recorded too (their pull requests merged in the period are evidence; after the first run
//!   they cost one request per run); repositories GitHub marks `disabled` are skipped and
//!   named in the details, as their API answers 403.
//! - `base_branches`: only pull requests into these branches (exact names). Default: all.
//! - `token_env` / `token_file`: where the token is (exactly one); read at each run. A
//!   fine-grained token needs "Pull requests: read" (and "Metadata: read") on the
//!   repositories; a classic one `repo` (private) or none (public).
//! - `ca_file`: PEM certificates to trust besides the system roots (GHES with a private CA).
//! - `page_size`: items per page, 1–100. Default 100 (GitHub's maximum).
//! - `since`: first-run lower bound on `updated_at` (`"2026-01-01"` or RFC 3339), applied to
//!   every repository without a watermark yet (also one that joins the org later). Default:
//!   everything.
//! - `include_unmerged_closed`: also record pull requests closed without merge (state
//!   `closed`). Default false: only merged pull requests are changes.
//! - `ticket_pattern`: a regular expression for the ticket keys looked for in the title, head
//!   branch name and body. Default: the rule of every ticket kind, [`change::ticket_keys`]
//!   (Jira-style `OPS-12`, not standards' names such as `UTF-8`).
//!
//! Cursor: `{"repos": {"<owner/name, lowercase>": {"since", "taken_at_since"}}}`, one
//! [`Watermark`] over `updated_at` per repository. A run lists
//! `GET /repos/{o}/{r}/pulls?state=closed&sort=updated&direction=desc`, following the `Link`
//! header's `rel="next"`, and stops at the first pull request older than the watermark; for
//! each new one kept it lists `GET /repos/{o}/{r}/pulls/{n}/reviews` (all pages), eight
//! requests in flight at most. A repository no longer in scope is dropped from the cursor;
//! if it comes back, it starts again like a first run (bounded by `since`).
//!
//! Guarantees: an approval is a review in state `APPROVED`, by its `user.login` (`ghost` for a
//! deleted account), at its `submitted_at`; a dismissed review is in state `DISMISSED` and does
//! not count. `merged_by` is not recorded: the list endpoint does not carry it, and fetching
//! each pull request again would double the requests. Any failure (a page, a review list, a
//! body that is not the documented JSON, a `next` link to another server) fails the whole run,
//! so the cursor never moves past something not recorded. The token goes only to the
//! `base_url`'s server, and never into an error or log line.

mod api;
mod item;

use crate::change::{self, Watermark};
use crate::http::{self, Auth, HttpClient, SecretSource};
use crate::registry::parse_settings;
use crate::{CollectContext, CollectError, Collector, SettingError, Snapshot};
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use url::Url;

/// The `kind` of this collector.
pub const KIND: &str = "github_pull_requests";
const DEFAULT_BASE_URL: &str = "https://api.github.com/";
/// GitHub's largest `per_page`.
const MAX_PAGE_SIZE: u32 = 100;

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default)]
    repos: Vec<String>,
    org: Option<String>,
    #[serde(default)]
    base_branches: Vec<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_page_size")]
    page_size: u32,
    /// A string or a TOML date-time.
    since: Option<toml::Value>,
    #[serde(default)]
    include_unmerged_closed: bool,
    ticket_pattern: Option<String>,
}

/// What a run needs, checked once in [`build`].
#[derive(Debug)]
struct Config {
    base_url: Url,
    repos: Vec<RepoName>,
    org: Option<String>,
    base_branches: BTreeSet<String>,
    token: SecretSource,
    page_size: u32,
    since: Option<String>,
    include_unmerged_closed: bool,
    /// `ticket_pattern`, when set; else the shared rule ([`change::ticket_keys`]).
    tickets: Option<Regex>,
}

/// `owner/name` of a repository, checked to be safe in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RepoName(String);

impl RepoName {
    fn parse(text: &str) -> Option<RepoName> {
        let (owner, name) = text.split_once('/')?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (part_ok(owner) && part_ok(name)).then(|| RepoName(text.to_owned()))
    }

    /// The cursor key: GitHub names are case-insensitive.
    fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

fn org_name_ok(org: &str) -> bool {
    !org.is_empty() && org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A built `github_pull_requests` collector.
#[derive(Debug)]
pub struct GithubCollector {
    config: Config,
    client: HttpClient,
}

/// Build a `github_pull_requests` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    let base_url = http::base_url("base_url", &settings.base_url)
        .map_err(|e| errors.push(e))
        .ok();
    let mut repos = Vec::new();
    let mut keys = BTreeSet::new();
    for text in &settings.repos {
        match RepoName::parse(text) {
            Some(repo) if !keys.insert(repo.key()) => errors.push(SettingError::new(
                Some("repos"),
                format!("{text:?} is listed twice"),
            )),
            Some(repo) => repos.push(repo),
            None => errors.push(SettingError::new(
                Some("repos"),
                format!("{text:?} is not \"owner/name\""),
            )),
        }
    }
    if let Some(org) = settings.org.as_deref().filter(|o| !org_name_ok(o)) {
        errors.push(SettingError::new(
            Some("org"),
            format!("{org:?} is not a GitHub organization name"),
        ));
    }
    if settings.repos.is_empty() && settings.org.is_none() {
        errors.push(SettingError::new(
            Some("repos"),
            "name the repositories to read: `repos = [\"owner/name\", …]` and/or `org = \"name\"`",
        ));
    }
    if settings.base_branches.iter().any(String::is_empty) {
        errors.push(SettingError::new(
            Some("base_branches"),
            "holds an empty branch name",
        ));
    }
    let token = SecretSource::from_settings(
        "token_env",
        settings.token_env.as_deref(),
        "token_file",
        settings.token_file.as_deref(),
        "the GitHub token",
    )
    .map_err(|e| errors.push(e))
    .ok();
    if !(1..=MAX_PAGE_SIZE).contains(&settings.page_size) {
        errors.push(SettingError::new(
            Some("page_size"),
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let since = match &settings.since {
        None => None,
        Some(value) => parse_since(value)
            .map_err(|why| errors.push(SettingError::new(Some("since"), why)))
            .ok(),
    };
    let tickets = match settings.ticket_pattern.as_deref().map(Regex::new) {
        None => Some(None),
        Some(Ok(pattern)) => Some(Some(pattern)),
        Some(Err(e)) => {
            errors.push(SettingError::new(Some("ticket_pattern"), e.to_string()));
            None
        }
    };
    let client = HttpClient::new(settings.ca_file.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    match (base_url, token, since, tickets, client) {
        (Some(base_url), Some(token), since, Some(tickets), Some(client)) if errors.is_empty() => {
            Ok(Box::new(GithubCollector {
                config: Config {
                    base_url,
                    repos,
                    org: settings.org,
                    base_branches: settings.base_branches.into_iter().collect(),
                    token,
                    page_size: settings.page_size,
                    since,
                    include_unmerged_closed: settings.include_unmerged_closed,
                    tickets,
                },
                client,
            }))
        }
        _ => Err(errors),
    }
}

/// `since` as RFC 3339 UTC: a date (`2026-01-01`, midnight UTC) or a time with an offset, as a
/// string or a TOML date-time.
fn parse_since(value: &toml::Value) -> Result<String, String> {
    let text = match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Datetime(time) => time.to_string(),
        other => {
            return Err(format!(
                "must be a date or time, not a {}",
                other.type_str()
            ))
        }
    };
    change::since_setting(&text).map_err(|e| e.message)
}

#[async_trait::async_trait]
impl Collector for GithubCollector {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let token = self.config.token.load().await?;
        let session = api::Session::new(
            &self.client,
            Auth::Bearer(token),
            ctx.deadline,
            &self.config.base_url,
            self.config.page_size,
        );
        run(&self.config, &session, ctx.cursor.as_ref()).await
    }
}

/// Counts for the snapshot's details.
#[derive(Debug, Default)]
struct Counts {
    pages: u64,
    listed: u64,
    skipped_unmerged: u64,
    skipped_other_base: u64,
    stopped_at_watermark: u64,
}

async fn run(
    config: &Config,
    session: &api::Session<'_>,
    cursor: Option<&Value>,
) -> Result<Snapshot, CollectError> {
    let marks = read_cursor(cursor)?;
    let mut repos: BTreeMap<String, RepoName> =
        config.repos.iter().map(|r| (r.key(), r.clone())).collect();
    let mut archived = 0u64;
    let mut disabled = Vec::new();
    let mut counts = Counts::default();
    if let Some(org) = &config.org {
        let listed = api::org_repos(session, org).await?;
        counts.pages += listed.pages;
        for repo in listed.repos {
            let Some(name) = RepoName::parse(&repo.full_name) else {
                return Err(CollectError::Other(format!(
                    "organization {org}: GitHub listed a repository named {:?}, not owner/name",
                    repo.full_name
                )));
            };
            if repo.disabled {
                disabled.push(repo.full_name);
                continue;
            }
            archived += u64::from(repo.archived);
            // The organization's spelling is GitHub's own; it wins over the settings'.
            repos.insert(name.key(), name);
        }
    }

    let mut drafts = Vec::new();
    let mut new_marks = BTreeMap::new();
    for (key, repo) in &repos {
        let old = match marks.get(key) {
            Some(mark) => mark.clone(),
            None => Watermark {
                since: config.since.clone(),
                ..Watermark::default()
            },
        };
        let listing = api::changed_pulls(session, &repo.0, &old).await?;
        counts.pages += listing.pages;
        counts.stopped_at_watermark += u64::from(listing.stopped_at_watermark);
        let mut mark = old.clone();
        for pull in listing.pulls {
            counts.listed += 1;
            let draft = item::Draft::new(&repo.0, pull, config.tickets.as_ref())?;
            mark.take(&draft.item.id, &draft.updated_at);
            if draft.item.merged_at.is_none() && !config.include_unmerged_closed {
                counts.skipped_unmerged += 1;
            } else if !config.base_branches.is_empty()
                && !config.base_branches.contains(&draft.base_ref)
            {
                counts.skipped_other_base += 1;
            } else {
                drafts.push(draft);
            }
        }
        new_marks.insert(key.clone(), (old, mark));
    }

    let jobs: Vec<api::ReviewJob> = drafts
        .iter()
        .map(|d| api::ReviewJob {
            repo: d.repo_path.clone(),
            number: d.number,
        })
        .collect();
    let reviews = api::reviews(session, jobs).await?;
    let review_pages = reviews.pages;
    let items: Vec<_> = drafts
        .into_iter()
        .zip(reviews.lists)
        .map(|(draft, reviews)| draft.finish(reviews))
        .collect();

    let http = session.api.stats().to_json();
    let window_from = new_marks
        .values()
        .map(|(old, _)| old.since.clone())
        .min()
        .flatten();
    let window_to = new_marks
        .values()
        .filter_map(|(_, new)| new.since.clone())
        .max();
    let details = json!({
        "repos": repos.len(),
        "archived_repos": archived,
        "disabled_repos_skipped": disabled,
        "changes": items.len(),
        "pulls_listed": counts.listed,
        "skipped_unmerged": counts.skipped_unmerged,
        "skipped_other_base": counts.skipped_other_base,
        "repos_stopped_at_watermark": counts.stopped_at_watermark,
        "list_pages": counts.pages,
        "review_pages": review_pages,
        "updated_from": window_from,
        "updated_to": window_to,
        "http": http,
    });
    let cursor_repos: Map<String, Value> = new_marks
        .into_iter()
        .map(|(key, (_, mark))| (key, mark.to_json()))
        .collect();
    change::snapshot(items, json!({ "repos": cursor_repos }), details).await
}

/// The watermarks of the last committed run, by repository key.
fn read_cursor(cursor: Option<&Value>) -> Result<BTreeMap<String, Watermark>, CollectError> {
    let Some(cursor) = cursor.filter(|c| !c.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let Some(repos) = cursor.get("repos").and_then(Value::as_object) else {
        return Err(CollectError::Other(format!(
            "unreadable cursor {cursor}: no \"repos\" object"
        )));
    };
    repos
        .iter()
        .map(|(key, mark)| Ok((key.clone(), Watermark::from_json(Some(mark))?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_owner_slash_name_without_path_tricks() {
        assert!(RepoName::parse("octo-org/hello.world_2").is_some());
        for bad in [
            "octo", "/x", "o/", "o/r/x", "o/..", "o/r?x", "o/r#1", "o/r x",
        ] {
            assert!(RepoName::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(RepoName::parse("Octo/Hello").unwrap().key(), "octo/hello");
    }

    #[test]
    fn since_takes_a_date_or_an_offset_time() {
        let text = |s: &str| parse_since(&toml::Value::String(s.into()));
        assert_eq!(text("2026-01-01").unwrap(), "2026-01-01T00:00:00Z");
        assert_eq!(
            text("2026-01-01T02:00:00+02:00").unwrap(),
            "2026-01-01T00:00:00Z"
        );
        assert!(text("2026-01-01T00:00:00").is_err());
        let table: toml::Table = "since = 2026-03-01T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since(&table["since"]).unwrap(),
            "2026-03-01T12:00:00Z"
        );
        assert!(parse_since(&toml::Value::Integer(5)).is_err());
    }
}
