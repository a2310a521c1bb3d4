//! The `servicenow_changes` collector: ServiceNow change requests (SOC 2 CC8.1), with who
//! approved them and when, through the Table API.
//!
//! Each run lists the `change_request` records updated since the previous committed run
//! (`sys_updated_on`), reads the approver records of those changes from `sysapproval_approver`
//! and, unless turned off, the incidents linked to them, and records each change's full current
//! state as a [`ChangeItem`](crate::change::ChangeItem) with id `servicenow:<number>`.
//!
//! Settings:
//! - `base_url` (required): the instance, e.g. `https://acme.service-now.com/`.
//! - `auth`: `"basic"` (default; `username` + password) or `"oauth"` (an OAuth access token,
//!   sent as `Authorization: Bearer`; the agent does not refresh it, so keep the token file
//!   fresh from outside).
//! - `username`: the API user, with `auth = "basic"` only.
//! - `token_env` / `token_file` (exactly one): where the password (basic) or the access token
//!   (oauth) is read at each run; a file must be readable by its owner only.
//! - `ca_file`: PEM certificates to trust besides the system roots (a TLS-inspecting proxy).
//! - `query`: an encoded query narrowing the changes (`assignment_group=<sys_id>^type=normal`),
//!   as the list filter's "Copy query" gives it. `^NQ`, `^EQ` and `ORDERBY` are refused: this
//!   collector adds its own time window and order, which they would undo.
//! - `environment_field`: a change_request field (dot-walks allowed, e.g. `u_environment` or
//!   `cmdb_ci.u_environment`) whose value is the item's `target`; without it the target is the
//!   name of the configuration item (`cmdb_ci`).
//! - `linked_incidents` (default true): link the incidents whose `rfc` (fixed by) or
//!   `caused_by` is the change; needs read access to `incident`.
//! - `page_size` (default 1000, at most 10000, ServiceNow's default limit).
//! - `since`: on the first run, only changes updated at or after this RFC 3339 date or time;
//!   without it the first run takes every matching change.
//!
//! Cursor: `{"base_url", "query", "since", "taken_at_since"}`: a [`Watermark`] over
//! `sys_updated_on` and the scope it was taken for. A cursor of another `base_url` or `query`
//! is not continued: the run starts over as a first run (`scope_changed` in the details).
//!
//! Guarantees: a run reads the window `since <= sys_updated_on < now - 60 s` (UTC), ordered by
//! `sys_updated_on` then `sys_id`. The upper bound leaves changes still being written to the
//! next run, and keeps records from entering the window while it is paged through, so that the
//! listing's `X-Total-Count` reveals every record that leaves it (`table.rs`); a host clock over
//! 30 s ahead of the instance's (its `Date` header) fails the run rather than weaken that.
//! Approvals and incidents are read in batches (`sysapprovalIN…`, 100 changes a request;
//! `rfcIN…^ORcaused_byIN…`, 50), one request after the other: batching already divides the
//! requests by the batch size, and a single stream keeps clear of the instance's rate limits.
//! Approvers in state `approved` are the item's approvals (at the approver record's
//! `sys_updated_on`); those in state `rejected` are listed in `details.rejections`. People are
//! user names (`user_name`) read by dot-walking; a reference whose user cannot be read is kept
//! as its sys_id. Any failed request fails the run, and the cursor stays.

mod record;
mod table;

use crate::change::{self, Watermark};
use crate::http::{self, Api, Auth, HttpClient, JsonResponse, SecretSource};
use crate::registry::parse_settings;
use crate::{CollectContext, CollectError, Collector, SettingError, Snapshot};
use chrono::{DateTime, SubsecRound, Utc};
use record::{Key, Related};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use table::{Query, Record};
use url::Url;

const DEFAULT_PAGE_SIZE: u32 = 1000;
const MAX_PAGE_SIZE: u32 = 10_000;
/// How far behind "now" a run's window ends: changes written in the last minute wait for the
/// next run, when their transaction has surely committed.
const SETTLE: chrono::Duration = chrono::Duration::seconds(60);
/// The least the window must end behind the instance's own clock.
const MIN_SETTLE: chrono::Duration = chrono::Duration::seconds(30);
/// Changes per approvals request (100 sys_ids make a 3.3 kB query).
const APPROVAL_BATCH: usize = 100;
/// Changes per incidents request (the sys_ids appear twice in the query).
const INCIDENT_BATCH: usize = 50;

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AuthKind {
    #[default]
    Basic,
    Oauth,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    base_url: Option<String>,
    #[serde(default)]
    auth: AuthKind,
    username: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    query: Option<String>,
    environment_field: Option<String>,
    #[serde(default = "default_true")]
    linked_incidents: bool,
    #[serde(default = "default_page_size")]
    page_size: u32,
    since: Option<String>,
}

/// A built `servicenow_changes` collector.
#[derive(Debug)]
pub struct ServiceNowCollector {
    base: Url,
    auth: AuthKind,
    username: String,
    secret: SecretSource,
    client: HttpClient,
    query: String,
    environment_field: Option<String>,
    linked_incidents: bool,
    page_size: u32,
    since: Option<DateTime<Utc>>,
}

/// Build a `servicenow_changes` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let s: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    let base = match s.base_url.as_deref() {
        None => {
            errors.push(SettingError::new(
                Some("base_url"),
                "required: the instance URL, e.g. \"https://acme.service-now.com/\"",
            ));
            None
        }
        Some(text) => http::base_url("base_url", text)
            .map_err(|e| errors.push(e))
            .ok(),
    };
    let username = match (s.auth, s.username) {
        (AuthKind::Basic, None) => {
            errors.push(SettingError::new(
                Some("username"),
                "required with auth = \"basic\"",
            ));
            String::new()
        }
        (AuthKind::Basic, Some(user)) => {
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                errors.push(SettingError::new(
                    Some("username"),
                    format!("{user:?} cannot be a Basic authentication user name"),
                ));
            }
            user
        }
        (AuthKind::Oauth, Some(_)) => {
            errors.push(SettingError::new(
                Some("username"),
                "only with auth = \"basic\"; an OAuth access token names its user",
            ));
            String::new()
        }
        (AuthKind::Oauth, None) => String::new(),
    };
    let what = match s.auth {
        AuthKind::Basic => "the password of `username`",
        AuthKind::Oauth => "the OAuth access token",
    };
    let secret = SecretSource::from_settings(
        "token_env",
        s.token_env.as_deref(),
        "token_file",
        s.token_file.as_deref(),
        what,
    )
    .map_err(|e| errors.push(e))
    .ok();
    let client = HttpClient::new(s.ca_file.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    let query = s.query.as_deref().unwrap_or("").trim().trim_matches('^');
    if let Some(why) = query_problem(query) {
        errors.push(SettingError::new(Some("query"), why));
    }
    if let Some(field) = &s.environment_field {
        let valid_part =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !field.split('.').all(valid_part) {
            errors.push(SettingError::new(
                Some("environment_field"),
                format!("{field:?} is not a field name (letters, digits, '_', dot-walks with '.')"),
            ));
        }
    }
    if s.page_size == 0 || s.page_size > MAX_PAGE_SIZE {
        errors.push(SettingError::new(
            Some("page_size"),
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let since = match s.since.as_deref().map(change::since_setting) {
        None => None,
        Some(Ok(t)) => DateTime::parse_from_rfc3339(&t)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Some(Err(error)) => {
            errors.push(error);
            None
        }
    };
    match (base, secret, client) {
        (Some(base), Some(secret), Some(client)) if errors.is_empty() => {
            Ok(Box::new(ServiceNowCollector {
                base,
                auth: s.auth,
                username,
                secret,
                client,
                query: query.to_owned(),
                environment_field: s.environment_field,
                linked_incidents: s.linked_incidents,
                page_size: s.page_size,
                since,
            }))
        }
        _ => Err(errors),
    }
}

/// Why an encoded query cannot be combined with this collector's window, if it cannot.
fn query_problem(query: &str) -> Option<String> {
    if query.chars().any(char::is_control) {
        return Some("must be one line".into());
    }
    for (part, why) in [
        (
            "^NQ",
            "a new query (^NQ) would escape this collector's time window",
        ),
        (
            "^EQ",
            "^EQ would end the query before this collector's time window",
        ),
        (
            "ORDERBY",
            "the order is this collector's (by sys_updated_on); remove ORDERBY",
        ),
    ] {
        if query.contains(part) {
            return Some(why.into());
        }
    }
    None
}

#[async_trait::async_trait]
impl Collector for ServiceNowCollector {
    fn kind(&self) -> &'static str {
        "servicenow_changes"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let secret = self.secret.load().await?;
        let auth = match self.auth {
            AuthKind::Basic => Auth::Basic {
                user: self.username.clone(),
                password: secret,
            },
            AuthKind::Oauth => Auth::Bearer(secret),
        };
        let api = Api::new(&self.client, Some(auth), ctx.deadline);
        let (mark, scope_changed) = self.watermark(ctx.cursor.as_ref())?;
        let from = match &mark.since {
            Some(since) => Some(
                DateTime::parse_from_rfc3339(since)
                    .map_err(|_| CollectError::Other(format!("unreadable cursor time {since:?}")))?
                    .with_timezone(&Utc),
            ),
            None => self.since,
        };
        let until = (Utc::now() - SETTLE).trunc_subsecs(0);
        let query = self.change_query(from.as_ref(), &until);
        let fields = self.change_fields();
        let listing = table::read_all(
            &api,
            &self.base,
            &Query {
                table: "change_request",
                query: &query,
                fields: &fields,
                page_size: self.page_size,
            },
            |response| check_clock(response, &until),
        )
        .await?;

        // The last state read of each change, if it is new since the watermark and inside the
        // window (an instance that ignored a condition cannot move the watermark past it).
        let until_text = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut latest: BTreeMap<String, (Key, &Record)> = BTreeMap::new();
        for record in &listing.records {
            let key = record::key(record)?;
            latest.insert(key.sys_id.clone(), (key, record));
        }
        latest.retain(|_, (key, _)| key.updated < until_text && mark.is_new(&key.id, &key.updated));

        let sys_ids: Vec<&str> = latest.keys().map(String::as_str).collect();
        let (approvals, approval_pages) = self
            .read_related(
                &api,
                "sysapproval_approver",
                record::APPROVAL_FIELDS,
                &sys_ids,
                APPROVAL_BATCH,
                |ids| format!("sysapprovalIN{ids}^stateINapproved,rejected^ORDERBYsys_id"),
            )
            .await?;
        let (incidents, incident_pages) = if self.linked_incidents {
            self.read_related(
                &api,
                "incident",
                record::INCIDENT_FIELDS,
                &sys_ids,
                INCIDENT_BATCH,
                |ids| format!("rfcIN{ids}^ORcaused_byIN{ids}^ORDERBYsys_id"),
            )
            .await?
        } else {
            (BTreeMap::new(), 0)
        };
        let related = group_related(&approvals, &incidents);

        let mut next = mark.clone();
        let mut items = Vec::with_capacity(latest.len());
        for (sys_id, (_, record)) in &latest {
            let empty = Related::default();
            let related = related.get(sys_id.as_str()).unwrap_or(&empty);
            items.push(record::change_item(
                &self.base,
                record,
                related,
                self.environment_field.as_deref(),
            )?);
        }
        for (key, _) in latest.values() {
            next.take(&key.id, &key.updated);
        }
        let details = json!({
            "api": api.stats().to_json(),
            "query": query,
            "from": from.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "until": until_text,
            "first_run": mark.since.is_none(),
            "scope_changed": scope_changed,
            "change_pages": listing.pages,
            "change_records_read": listing.records.len(),
            "list_restarts": listing.restarts,
            "list_step_backs": listing.step_backs,
            "changes": items.len(),
            "approval_pages": approval_pages,
            "approval_records": approvals.len(),
            "incident_pages": incident_pages,
            "linked_incidents": incidents.len(),
        });
        change::snapshot(items, self.cursor_json(&next), details).await
    }
}

impl ServiceNowCollector {
    /// The stored watermark, unless it was taken for another instance or query; and whether
    /// the scope changed.
    fn watermark(&self, cursor: Option<&Value>) -> Result<(Watermark, bool), CollectError> {
        let Some(stored) = cursor.filter(|c| !c.is_null()) else {
            return Ok((Watermark::default(), false));
        };
        if !stored.is_object() {
            return Err(CollectError::Other(format!("unreadable cursor {stored}")));
        }
        let same_scope = stored.get("base_url") == Some(&json!(self.base.as_str()))
            && stored.get("query") == Some(&json!(self.query));
        if !same_scope {
            return Ok((Watermark::default(), true));
        }
        Ok((Watermark::from_json(Some(stored))?, false))
    }

    fn cursor_json(&self, mark: &Watermark) -> Value {
        let mut cursor = mark.to_json();
        if let Some(object) = cursor.as_object_mut() {
            object.insert("base_url".into(), json!(self.base.as_str()));
            object.insert("query".into(), json!(self.query));
        }
        cursor
    }

    /// The user's query, then the window, then the order. `^` binds the user's `^OR`s first,
    /// so the window applies to all of it.
    fn change_query(&self, from: Option<&DateTime<Utc>>, until: &DateTime<Utc>) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.query.is_empty() {
            parts.push(self.query.clone());
        }
        if let Some(from) = from {
            parts.push(format!("sys_updated_on>={}", table::query_time(from)));
        }
        parts.push(format!("sys_updated_on<{}", table::query_time(until)));
        parts.push("ORDERBYsys_updated_on^ORDERBYsys_id".into());
        parts.join("^")
    }

    fn change_fields(&self) -> String {
        let mut fields: Vec<&str> = record::CHANGE_FIELDS.to_vec();
        if let Some(field) = self.environment_field.as_deref() {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        fields.join(",")
    }

    /// Every record of `table` that `query` (given a comma-separated batch of change sys_ids)
    /// matches, merged by sys_id, with the number of pages read.
    async fn read_related(
        &self,
        api: &Api,
        table: &str,
        fields: &str,
        sys_ids: &[&str],
        batch: usize,
        query: impl Fn(&str) -> String,
    ) -> Result<(BTreeMap<String, Record>, u64), CollectError> {
        let mut records = BTreeMap::new();
        let mut pages = 0;
        for chunk in sys_ids.chunks(batch) {
            let query = query(&chunk.join(","));
            let listing = table::read_all(
                api,
                &self.base,
                &Query {
                    table,
                    query: &query,
                    fields,
                    page_size: self.page_size,
                },
                |_| Ok(()),
            )
            .await?;
            pages += listing.pages;
            for record in listing.records {
                let sys_id = table::text(&record, "sys_id")
                    .ok_or_else(|| {
                        CollectError::Other(format!(
                            "unexpected answer from ServiceNow: a {table} record without sys_id"
                        ))
                    })?
                    .to_owned();
                records.insert(sys_id, record);
            }
        }
        Ok((records, pages))
    }
}

/// Approver records and incident numbers by the sys_id of their change.
fn group_related<'r>(
    approvals: &'r BTreeMap<String, Record>,
    incidents: &'r BTreeMap<String, Record>,
) -> HashMap<&'r str, Related<'r>> {
    let mut related: HashMap<&str, Related> = HashMap::new();
    for approval in approvals.values() {
        if let Some(change) = table::text(approval, "sysapproval") {
            related.entry(change).or_default().approvals.push(approval);
        }
    }
    for incident in incidents.values() {
        let Some(number) = table::text(incident, "number") else {
            continue;
        };
        for field in ["rfc", "caused_by"] {
            if let Some(change) = table::text(incident, field) {
                related
                    .entry(change)
                    .or_default()
                    .incidents
                    .push(number.to_owned());
            }
        }
    }
    related
}

/// Fails when the instance's clock (the first answer's `Date`) shows that the window's end
/// is less than [`MIN_SETTLE`] behind it: the host's clock runs ahead.
fn check_clock(response: &JsonResponse, until: &DateTime<Utc>) -> Result<(), CollectError> {
    let Some(server_now) = table::server_date(response) else {
        return Ok(());
    };
    if server_now - *until < MIN_SETTLE {
        let ahead = (*until + SETTLE - server_now).num_seconds();
        return Err(CollectError::Other(format!(
            "{}: this host's clock is {ahead} s ahead of ServiceNow's (Date: {}); changes still \
             being written could be missed, so the run stops. Fix the host's time (NTP)",
            response.url,
            server_now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_that_would_escape_the_window_are_refused() {
        assert_eq!(query_problem("assignment_group=abc^ORtype=emergency"), None);
        assert!(query_problem("active=true^NQactive=false").is_some());
        assert!(query_problem("active=true^ORDERBYnumber").is_some());
        assert!(query_problem("active=true^EQ").is_some());
    }
}
