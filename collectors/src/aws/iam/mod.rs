//! The `aws_iam` collector: who can do what in an AWS account (access lists, SOC 2 CC6.1-CC6.3).
//!
//! Collects, through the IAM API: every user (ListUsers) with its inline policies (names and
//! documents), attached managed policies, access keys (id, status, creation date, age in whole
//! days at the run's start, last use from GetAccessKeyLastUsed), MFA devices and console access
//! (whether a login profile exists, when it was made, whether a password reset is required);
//! every group (ListGroups) with its members (GetGroup) and policies; every role (ListRoles)
//! with its trust policy and policies; every customer managed policy and every AWS managed
//! policy that is attached to something (ListPolicies) with its default version's document
//! (GetPolicyVersion); and the credential report (GenerateCredentialReport, then
//! GetCredentialReport), whose row for each user is added to that user and whose root account
//! row becomes its own item. Policy documents are URL-decoded and recorded as JSON.
//!
//! Items, sorted by (type, id): `iam_group`, `iam_policy`, `iam_role`, `iam_root_account`,
//! `iam_user`; the id of each is its ARN.
//!
//! Settings: the connection keys of [`crate::aws`] (`region`, `endpoint_url`, `profile`,
//! `max_attempts`), and `credential_report` (default true): ask for the credential report (needs
//! `iam:GenerateCredentialReport` and `iam:GetCredentialReport`).
//!
//! Cursor: none; every run is a full snapshot.
//!
//! Guarantees: no password and no secret access key is ever requested or recorded (IAM never
//! returns either from these operations; access key ids are not secret). A credential report
//! that cannot be had (no permission, not ready within a minute, unreadable) is a warning in
//! `details.warnings` and `credential_report: null` on the users; every other failed request
//! fails the run. Details give the calls made per operation (pages, for paginated ones).

mod credential_report;
mod policies;
mod principals;

use crate::aws::{all_pages, sorted_items, Connection, RunLog, SharedLog, CONCURRENCY};
use crate::concurrent::each_bounded;
use crate::registry::parse_settings;
use crate::{canonical, CollectContext, CollectError, Collector, Content, SettingError};
use crate::{Snapshot, MEDIA_TYPE_JSON};
use credential_report::Report;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    region: Option<String>,
    endpoint_url: Option<String>,
    profile: Option<String>,
    #[serde(default = "crate::aws::default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_true")]
    credential_report: bool,
}

/// A built `aws_iam` collector.
#[derive(Debug)]
pub struct IamCollector {
    connection: Connection,
    credential_report: bool,
}

/// Build an `aws_iam` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let connection = Connection {
        region: settings.region,
        endpoint_url: settings.endpoint_url,
        profile: settings.profile,
        max_attempts: settings.max_attempts,
    };
    let errors = connection.validate();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(IamCollector {
        connection,
        credential_report: settings.credential_report,
    }))
}

/// What every request of one run shares.
#[derive(Debug, Clone)]
struct Iam {
    client: aws_sdk_iam::Client,
    log: SharedLog,
    deadline: Option<std::time::Instant>,
    /// The run's start, in seconds since the Unix epoch: access key ages are counted from it.
    started: i64,
}

#[async_trait::async_trait]
impl Collector for IamCollector {
    fn kind(&self) -> &'static str {
        "aws_iam"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let started = chrono::Utc::now();
        let config = self.connection.load().await;
        let iam = Iam {
            client: aws_sdk_iam::Client::new(&config),
            log: Arc::new(RunLog::default()),
            deadline: ctx.deadline,
            started: started.timestamp(),
        };
        let (client, log) = (&iam.client, &*iam.log);

        let users = all_pages!(log, "ListUsers", "account", client.list_users(), |page| {
            page.users
        });
        let groups = all_pages!(log, "ListGroups", "account", client.list_groups(), |page| {
            page.groups
        });
        let roles = all_pages!(log, "ListRoles", "account", client.list_roles(), |page| {
            page.roles
        });
        ctx.check_deadline()?;

        let mut users = each_bounded(users, CONCURRENCY, ctx.deadline, |user| {
            let iam = iam.clone();
            async move { principals::user(&iam, user).await }
        })
        .await?;
        let groups = each_bounded(groups, CONCURRENCY, ctx.deadline, |group| {
            let iam = iam.clone();
            async move { principals::group(&iam, group).await }
        })
        .await?;
        let roles = each_bounded(roles, CONCURRENCY, ctx.deadline, |role| {
            let iam = iam.clone();
            async move { principals::role(&iam, role).await }
        })
        .await?;
        let policies = policies::managed(&iam).await?;
        ctx.check_deadline()?;

        add_group_names(&mut users, &groups);
        let report = if self.credential_report {
            Some(credential_report::fetch(&iam).await?)
        } else {
            None
        };
        let (root, report_details) = add_report(&mut users, report, log);

        let mut items = users;
        items.extend(groups);
        items.extend(roles);
        items.extend(policies);
        items.extend(root);
        let (items, counts) = sorted_items(items);
        let item_count = items.len() as u64;
        let bytes = canonical::to_vec(&json!({ "items": items }))
            .map_err(|e| CollectError::Other(format!("cannot encode the IAM snapshot: {e}")))?;
        let mut details = self.connection.details(&config);
        if let Value::Object(map) = &mut details {
            map.insert(
                "started_at".into(),
                json!(started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
            map.insert("counts".into(), counts);
            map.insert("api_calls".into(), log.calls_json());
            map.insert("credential_report".into(), report_details);
            map.insert("warnings".into(), log.warnings_json());
        }
        Ok(Snapshot {
            content: Content::from_bytes(bytes),
            media_type: MEDIA_TYPE_JSON,
            item_count,
            cursor: None,
            details,
        })
    }
}

/// Each user's `groups`: the names of the groups that list it as a member, sorted.
fn add_group_names(users: &mut [Value], groups: &[Value]) {
    let mut by_user: HashMap<&str, Vec<&str>> = HashMap::new();
    for group in groups {
        let name = group["name"].as_str().unwrap_or_default();
        for member in group["members"].as_array().into_iter().flatten() {
            if let Some(member) = member.as_str() {
                by_user.entry(member).or_default().push(name);
            }
        }
    }
    for user in users.iter_mut() {
        let mut names: Vec<String> = user["name"]
            .as_str()
            .and_then(|n| by_user.get(n))
            .map(|g| g.iter().map(|s| (*s).to_owned()).collect())
            .unwrap_or_default();
        names.sort();
        if let Value::Object(map) = user {
            map.insert("groups".into(), json!(names));
        }
    }
}

/// Adds each user's report row (less `user` and `arn`) as its `credential_report` (null when
/// the report is unavailable or does not list the user); returns the root account's item, if
/// the report has one, and the report's facts for the details.
fn add_report(users: &mut [Value], report: Option<Report>, log: &RunLog) -> (Option<Value>, Value) {
    let mut rows: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let details = match report {
        None => json!({ "status": "disabled" }),
        Some(Report::Unavailable(reason)) => {
            log.warn(format!("credential report unavailable: {reason}"));
            json!({ "status": "unavailable", "reason": reason })
        }
        Some(Report::Included {
            generated_time,
            rows: report_rows,
        }) => {
            let count = report_rows.len();
            for mut row in report_rows {
                let arn = row.remove("arn").unwrap_or_default();
                let user = row.get("user").cloned().unwrap_or_default();
                if user != "<root_account>" {
                    row.remove("user");
                }
                let row = row
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                rows.insert(arn, row);
            }
            json!({ "status": "included", "generated_time": generated_time, "rows": count })
        }
    };
    let included = details["status"] == "included";
    for user in users.iter_mut() {
        let arn = user["arn"].as_str().unwrap_or_default().to_owned();
        let row = rows.remove(&arn);
        if included && row.is_none() {
            log.warn(format!(
                "credential report: no row for {arn} (created after the report?)"
            ));
        }
        if let Value::Object(map) = user {
            map.insert(
                "credential_report".into(),
                row.map_or(Value::Null, Value::Object),
            );
        }
    }
    let mut root = None;
    for (arn, row) in rows {
        if row.get("user").and_then(Value::as_str) == Some("<root_account>") && root.is_none() {
            root = Some(
                json!({ "type": "iam_root_account", "id": arn, "arn": arn, "credential_report": row }),
            );
        } else {
            log.warn(format!(
                "credential report: {arn} is not a user ListUsers returned; not recorded"
            ));
        }
    }
    (root, details)
}
