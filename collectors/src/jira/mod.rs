//! The `jira_issues` collector: change tickets from Jira Cloud or Jira Data Center (SOC 2
//! CC8.1), found by a JQL query, each with the approvals read from its changelog.
//!
//! Each run records, as `{"items": [ChangeItem, …]}` (see [`crate::change`]), the full current
//! state of every issue of the query that was created or updated since the last committed
//! run: id `jira:<key>`, title (summary), url `<base_url>browse/<key>`, author (the reporter,
//! else the creator: the display name on Cloud, the user name on Data Center), state (status
//! name), created/updated, `closed_at` (the resolution date, else the time of the last move
//! into a done status while the issue is in one), approvals (every move into an approved
//! status: who and when), `approved_before_merge` (an approval at or before `closed_at`),
//! linked tickets (issue links either way), target (the `target_field`, else the fix versions)
//! and details (issue id, project, issue type, priority, resolution, the author's stable id,
//! and every status transition with who, when, from and to).
//!
//! Settings:
//! - `base_url` (required): the site, `https://acme.atlassian.net/` or a Data Center URL with
//!   its context path.
//! - `deployment`: `"cloud"` (default; REST API v3, Basic auth with `email` + API token) or
//!   `"data_center"` (REST API v2, a personal access token as Bearer).
//! - `jql` (required): the change tickets, e.g. `project = OPS AND issuetype = Change`,
//!   without `ORDER BY` (the collector sets the order).
//! - `email`: the Atlassian account of the API token (Cloud only, required there).
//! - `token_env` / `token_file`: where the API token (Cloud) or personal access token (Data
//!   Center) is read at each run; exactly one.
//! - `ca_file`: PEM certificates to trust besides the system roots (self-hosted servers).
//! - `page_size`: issues per search page, 1 to 5000 (default 100; Jira may return fewer).
//! - `approved_statuses`: statuses whose entry is an approval (default `["Approved"]`).
//! - `done_statuses`: statuses that close a change (default `["Done", "Closed", "Resolved"]`).
//!   Status names compare without regard to case.
//! - `target_field`: the field id holding the change's target, e.g. `"customfield_10050"` or
//!   `"environment"` (options, lists and rich text are read as text); without it, the fix
//!   versions' names.
//! - `since`: where a first run starts (RFC 3339 time or a date, UTC); without it a first run
//!   takes every issue of the query.
//!
//! Cursor: `{"jql", "watermark": {"since", "taken_at_since"}, "settling": {"<key>": "<updated>"}}`
//! (see [`cursor`]). A run asks for `(<jql>) AND updated >= "<watermark − 24 h, yyyy-MM-dd
//! HH:mm>" ORDER BY created ASC, key ASC` and keeps only the issues new to the cursor. The
//! margin exists because JQL dates have minute precision and are read in the time zone of
//! the token's user, which the collector does not know: with zones from UTC−12 to UTC+14 a
//! day covers any of them (and a daylight-saving shift), so the bound is never later than the
//! watermark in UTC. The issues of that day are fetched again and dropped by comparing their
//! parsed UTC `updated` with the watermark; correctness is bought with some re-reading.
//! The watermark itself stops at the server's time at the start of the run less [`SETTLE`],
//! so an issue indexed late or changed mid-run is still found by the next run.
//!
//! Guarantees: a run reads every page of the query (no early stop), and the complete
//! changelog of every issue it takes (Cloud's search cuts long changelogs short; those are
//! fetched from the changelog endpoint, 8 issues at a time). Any failed request, page or
//! malformed answer fails the whole run: no snapshot, the cursor stays where it was. A run
//! with nothing new is an ok snapshot with no items. A changed `jql` starts over as a first
//! run (the details say so). Tokens are never logged or put in errors.

mod cursor;
mod issue;
mod search;

use crate::change;
use crate::http::{base_url, Api, Auth, HttpClient, SecretSource};
use crate::registry::parse_settings;
use crate::{CollectContext, CollectError, Collector, SettingError, Snapshot};
use chrono::{Duration, SecondsFormat, Utc};
use cursor::Cursor;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use url::Url;

/// How long after its last update an issue is taken to be searchable: the watermark never
/// passes the server's time at the start of a run less this.
pub const SETTLE: Duration = Duration::minutes(10);
/// How far before the watermark the JQL asks (see the module docs: time zones).
pub const JQL_MARGIN: Duration = Duration::hours(24);

const DEFAULT_PAGE_SIZE: u32 = 100;
/// The Cloud search's documented maximum.
const MAX_PAGE_SIZE: u32 = 5000;

/// Which Jira serves the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deployment {
    #[default]
    Cloud,
    DataCenter,
}

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

fn default_approved() -> Vec<String> {
    vec!["Approved".to_owned()]
}

fn default_done() -> Vec<String> {
    ["Done", "Closed", "Resolved"].map(str::to_owned).to_vec()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    base_url: Option<String>,
    #[serde(default)]
    deployment: Deployment,
    jql: Option<String>,
    email: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_page_size")]
    page_size: u32,
    #[serde(default = "default_approved")]
    approved_statuses: Vec<String>,
    #[serde(default = "default_done")]
    done_statuses: Vec<String>,
    target_field: Option<String>,
    since: Option<String>,
}

/// A built `jira_issues` collector.
#[derive(Debug)]
pub struct JiraCollector {
    base: Url,
    deployment: Deployment,
    jql: String,
    email: Option<String>,
    token: SecretSource,
    client: HttpClient,
    page_size: u32,
    approved: Vec<String>,
    done: Vec<String>,
    target_field: Option<String>,
    since: Option<String>,
}

/// Build a `jira_issues` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let s: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    let base = match s.base_url.as_deref() {
        Some(text) => base_url("base_url", text).map_err(|e| errors.push(e)).ok(),
        None => {
            errors.push(SettingError::new(
                Some("base_url"),
                "is required: the Jira site, e.g. \"https://acme.atlassian.net/\"",
            ));
            None
        }
    };
    let jql = s.jql.as_deref().map(str::trim).unwrap_or_default();
    match s.jql {
        None => errors.push(SettingError::new(
            Some("jql"),
            "is required: the change tickets, e.g. \"project = OPS AND issuetype = Change\"",
        )),
        Some(_) if jql.is_empty() => errors.push(SettingError::new(Some("jql"), "is empty")),
        Some(_) if has_order_by(jql) => errors.push(SettingError::new(
            Some("jql"),
            "must not have ORDER BY: the collector orders the search itself",
        )),
        Some(_) => {}
    }
    let email = s.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    match s.deployment {
        Deployment::Cloud if email.is_none() => errors.push(SettingError::new(
            Some("email"),
            "is required with deployment = \"cloud\": the Atlassian account of the API token",
        )),
        Deployment::DataCenter if s.email.is_some() => errors.push(SettingError::new(
            Some("email"),
            "is only for deployment = \"cloud\"; Data Center uses a personal access token alone",
        )),
        _ => {}
    }
    require(
        &mut errors,
        "page_size",
        (1..=MAX_PAGE_SIZE).contains(&s.page_size),
        &format!("must be from 1 to {MAX_PAGE_SIZE}"),
    );
    require(
        &mut errors,
        "approved_statuses",
        !s.approved_statuses.is_empty() && s.approved_statuses.iter().all(|n| !n.trim().is_empty()),
        "must list at least one status name, none empty",
    );
    require(
        &mut errors,
        "done_statuses",
        s.done_statuses.iter().all(|n| !n.trim().is_empty()),
        "must not hold an empty status name",
    );
    require(
        &mut errors,
        "target_field",
        s.target_field.as_deref().is_none_or(|f| {
            !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }),
        "must be a field id such as \"customfield_10050\" or \"environment\"",
    );
    let since = match s.since.as_deref().map(change::since_setting) {
        None => None,
        Some(Ok(since)) => Some(since),
        Some(Err(error)) => {
            errors.push(error);
            None
        }
    };
    let token = SecretSource::from_settings(
        "token_env",
        s.token_env.as_deref(),
        "token_file",
        s.token_file.as_deref(),
        match s.deployment {
            Deployment::Cloud => "the Jira API token",
            Deployment::DataCenter => "the Jira personal access token",
        },
    )
    .map_err(|e| errors.push(e))
    .ok();
    let client = HttpClient::new(s.ca_file.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    match (base, token, client) {
        (Some(base), Some(token), Some(client)) if errors.is_empty() => {
            Ok(Box::new(JiraCollector {
                base,
                deployment: s.deployment,
                jql: jql.to_owned(),
                email: email.map(str::to_owned),
                token,
                client,
                page_size: s.page_size,
                approved: s.approved_statuses,
                done: s.done_statuses,
                target_field: s.target_field,
                since,
            }))
        }
        _ => Err(errors),
    }
}

fn require(errors: &mut Vec<SettingError>, key: &str, ok: bool, why: &str) {
    if !ok {
        errors.push(SettingError::new(Some(key), why));
    }
}

/// Whether the JQL has an `ORDER BY` outside its quoted strings.
fn has_order_by(jql: &str) -> bool {
    let mut outside = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in jql.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                outside.push(' ');
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                outside.push(' ');
            }
            None => outside.push(c.to_ascii_lowercase()),
        }
    }
    let words: Vec<&str> = outside.split_whitespace().collect();
    words.windows(2).any(|w| w == ["order", "by"])
}

#[async_trait::async_trait]
impl Collector for JiraCollector {
    fn kind(&self) -> &'static str {
        "jira_issues"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let secret = self.token.load().await?;
        let auth = match (self.deployment, &self.email) {
            (Deployment::Cloud, Some(email)) => Auth::Basic {
                user: email.clone(),
                password: secret,
            },
            _ => Auth::Bearer(secret),
        };
        let (mut cursor, reset) =
            Cursor::load(ctx.cursor.as_ref(), &self.jql, self.since.as_deref())?;
        let watermark_before = cursor.watermark.since.clone();
        let from = watermark_before
            .as_deref()
            .and_then(|since| search::jql_time(since, JQL_MARGIN));
        let jql = search::jql(&self.jql, from.as_deref());
        let mut fields: Vec<String> = search::FIELDS.map(str::to_owned).to_vec();
        if let Some(field) = &self.target_field {
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }

        let api = Api::new(&self.client, Some(auth), ctx.deadline);
        let started = Utc::now();
        let walk = match self.deployment {
            Deployment::Cloud => {
                search::cloud(&api, &self.base, &jql, &fields, self.page_size).await?
            }
            Deployment::DataCenter => {
                search::data_center(&api, &self.base, &jql, &fields, self.page_size).await?
            }
        };
        ctx.check_deadline()?;

        let mut seen = Vec::with_capacity(walk.issues.len());
        let mut taken = Vec::new();
        let mut incomplete = Vec::new();
        for issue in &walk.issues {
            let (key, updated) = issue::key_and_updated(issue).map_err(|why| self.bad(&why))?;
            if cursor.is_new(&key, &updated) {
                let (histories, complete) = issue::inline_histories(issue);
                if !complete {
                    incomplete.push(key.clone());
                }
                taken.push((key.clone(), issue, histories));
            }
            seen.push((key, updated));
        }
        incomplete.sort();
        incomplete.dedup();
        let changelogs_fetched = incomplete.len();
        let fetcher = search::Fetcher {
            api: api.clone(),
            deadline: ctx.deadline,
            base: self.base.clone(),
            deployment: self.deployment,
        };
        let full = search::changelogs(&fetcher, incomplete).await?;

        let rules = issue::Rules {
            deployment: self.deployment,
            base: &self.base,
            approved: &self.approved,
            done: &self.done,
            target_field: self.target_field.as_deref(),
        };
        let mut items = Vec::with_capacity(taken.len());
        for (key, issue, inline) in taken {
            // An issue met on two pages has its full changelog both times.
            let histories = full.get(&key).cloned().unwrap_or(inline);
            items
                .push(issue::change_item(issue, &histories, &rules).map_err(|why| self.bad(&why))?);
        }

        let cutoff = walk.server_time.unwrap_or(started) - SETTLE;
        let cutoff = cutoff.to_rfc3339_opts(SecondsFormat::Secs, true);
        cursor.advance(&seen, &cutoff);
        let http = api.stats().to_json();
        let details = json!({
            "deployment": match self.deployment {
                Deployment::Cloud => "cloud",
                Deployment::DataCenter => "data_center",
            },
            "jql": jql,
            "cursor_reset": reset,
            "watermark_before": watermark_before,
            "watermark_after": cursor.watermark.since,
            "cutoff": cutoff,
            "pages": walk.pages,
            "restarts": walk.restarts,
            "issues_seen": seen.len(),
            "issues_taken": items.len(),
            "changelogs_fetched": changelogs_fetched,
            "settling": cursor.settling.len(),
            "http": http,
        });
        change::snapshot(items, cursor.to_json(), details).await
    }
}

impl JiraCollector {
    /// An answer that does not hold what Jira documents, named by the search it came from.
    fn bad(&self, why: &str) -> CollectError {
        CollectError::Other(format!("jira search at {}: {why}", self.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<SettingError> {
        let table: toml::Table = text.parse().unwrap();
        match build(&table) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    fn keys(text: &str) -> Vec<Option<String>> {
        errors(text).into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn order_by_is_found_outside_quotes_only() {
        assert!(has_order_by("project = OPS order  by created"));
        assert!(has_order_by("project = OPS\nORDER BY key"));
        assert!(!has_order_by("summary ~ \"order by\" AND project = OPS"));
        assert!(!has_order_by("summary ~ 'sort order' AND labels = by"));
    }

    #[test]
    fn every_problem_names_its_key() {
        let base = "base_url = \"https://acme.atlassian.net\"\ntoken_env = \"JIRA_TOKEN\"\n";
        assert!(errors(&format!("{base}jql = \"project = OPS\"\nemail = \"a@b.c\"")).is_empty());
        assert_eq!(
            keys(&format!(
                "{base}jql = \"project = OPS\"\nemail = \"a@b.c\"\npage_size = 0\n\
                 approved_statuses = []\nsince = \"soon\"\ntarget_field = \"a b\""
            )),
            vec![
                Some("page_size".into()),
                Some("approved_statuses".into()),
                Some("target_field".into()),
                Some("since".into())
            ]
        );
        assert_eq!(
            keys(&format!(
                "{base}deployment = \"data_center\"\njql = \"x = 1\"\nemail = \"a@b.c\""
            )),
            vec![Some("email".into())]
        );
    }
}
