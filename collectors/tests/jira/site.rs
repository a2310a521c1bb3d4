//! A Jira site for the tests: issues with their changelogs, people, and their JSON in the
//! documented shapes of Jira Cloud (REST API v3) and Jira Data Center (REST API v2).
//!
//! Shapes follow the vendors' example responses:
//! - issue and fields: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-get
//!   and https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/#api/2/issue-getIssue
//! - changelog histories (`id`, `author`, `created`, `items[]` with `field`, `fieldtype`,
//!   `fieldId` (Cloud), `from`, `fromString`, `to`, `toString`):
//!   https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-changelog-get
//! - users: Cloud `accountId`/`displayName`/`accountType`, Data Center `name`/`key`.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use serde_json::{json, Map, Value};

pub const CLOUD_SITE: &str = "https://acme.atlassian.net";
pub const DC_SITE: &str = "https://jira.example.com/jira";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Cloud,
    DataCenter,
}

impl Flavor {
    fn site(self) -> &'static str {
        match self {
            Flavor::Cloud => CLOUD_SITE,
            Flavor::DataCenter => DC_SITE,
        }
    }

    fn api(self) -> String {
        match self {
            Flavor::Cloud => format!("{CLOUD_SITE}/rest/api/3"),
            Flavor::DataCenter => format!("{DC_SITE}/rest/api/2"),
        }
    }

    /// The offset Jira writes times with: Cloud answers in UTC (`+0000`), this Data Center
    /// server runs in Central European Time (`+0100`).
    fn offset(self) -> FixedOffset {
        match self {
            Flavor::Cloud => FixedOffset::east_opt(0).expect("offset"),
            Flavor::DataCenter => FixedOffset::east_opt(3600).expect("offset"),
        }
    }

    /// `2026-03-01T10:00:00.000+0000`, as Jira writes times.
    pub fn time(self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.offset())
            .format("%Y-%m-%dT%H:%M:%S%.3f%z")
            .to_string()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Person {
    pub account_id: &'static str,
    pub display: &'static str,
    pub name: &'static str,
    pub key: &'static str,
}

pub const MIA: Person = Person {
    account_id: "5b10a2844c20165700ede21g",
    display: "Mia Krystof",
    name: "mia",
    key: "JIRAUSER10100",
};
pub const ALANA: Person = Person {
    account_id: "5b10ac8d82e05b22cc7d4ef5",
    display: "Alana Grant",
    name: "alana",
    key: "JIRAUSER10101",
};
pub const RAVI: Person = Person {
    account_id: "712020:2a8fc5a4-6d6d-4c8f-9a4e-0e3b6b1c9d11",
    display: "Ravi Patel",
    name: "ravi",
    key: "JIRAUSER10102",
};

impl Person {
    pub fn json(&self, flavor: Flavor) -> Value {
        let avatars = |id: &str| {
            json!({
                "48x48": format!("https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/{id}/48"),
                "24x24": format!("https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/{id}/24"),
                "16x16": format!("https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/{id}/16"),
                "32x32": format!("https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/{id}/32"),
            })
        };
        match flavor {
            Flavor::Cloud => json!({
                "self": format!("{}/user?accountId={}", flavor.api(), self.account_id),
                "accountId": self.account_id,
                "emailAddress": format!("{}@acme.example", self.name),
                "avatarUrls": avatars(self.account_id),
                "displayName": self.display,
                "active": true,
                "timeZone": "America/Los_Angeles",
                "accountType": "atlassian",
            }),
            Flavor::DataCenter => json!({
                "self": format!("{}/user?username={}", flavor.api(), self.name),
                "name": self.name,
                "key": self.key,
                "emailAddress": format!("{}@acme.example", self.name),
                "avatarUrls": avatars(self.key),
                "displayName": self.display,
                "active": true,
                "timeZone": "Europe/Berlin",
            }),
        }
    }
}

/// One changed field of a history: (field, fieldtype, from id, from text, to id, to text).
#[derive(Debug, Clone)]
pub struct Change {
    pub field: &'static str,
    pub from: Option<(String, String)>,
    pub to: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct History {
    pub id: u64,
    pub by: Person,
    pub at: DateTime<Utc>,
    pub changes: Vec<Change>,
}

impl History {
    pub fn json(&self, flavor: Flavor) -> Value {
        let items: Vec<Value> = self
            .changes
            .iter()
            .map(|c| {
                let mut item = json!({
                    "field": c.field,
                    "fieldtype": "jira",
                    "from": c.from.as_ref().map(|f| f.0.clone()),
                    "fromString": c.from.as_ref().map(|f| f.1.clone()),
                    "to": c.to.as_ref().map(|t| t.0.clone()),
                    "toString": c.to.as_ref().map(|t| t.1.clone()),
                });
                if flavor == Flavor::Cloud {
                    item["fieldId"] = json!(c.field);
                }
                item
            })
            .collect();
        json!({
            "id": self.id.to_string(),
            "author": self.by.json(flavor),
            "created": flavor.time(self.at),
            "items": items,
        })
    }
}

/// Status name → (id, status category key, category id, colour).
fn status_meta(name: &str) -> (&'static str, &'static str, u32, &'static str) {
    match name {
        "Open" => ("1", "new", 2, "blue-gray"),
        "Awaiting Approval" => ("10002", "indeterminate", 4, "yellow"),
        "Approved" => ("10003", "indeterminate", 4, "yellow"),
        "In Progress" => ("3", "indeterminate", 4, "yellow"),
        _ => ("10001", "done", 3, "green"),
    }
}

fn status_change(from: &str, to: &str) -> Change {
    let id = |n: &str| (status_meta(n).0.to_owned(), n.to_owned());
    Change {
        field: "status",
        from: Some(id(from)),
        to: Some(id(to)),
    }
}

/// The first fixture time; issue `n` is created `3n` hours later.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("time")
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub n: u32,
    pub summary: String,
    pub created: DateTime<Utc>,
    pub status: String,
    pub resolved: Option<DateTime<Utc>>,
    pub histories: Vec<History>,
    /// No longer matched by the query (moved to another project).
    pub hidden: bool,
}

impl Issue {
    /// Issue `n` of the change workflow: Open → Awaiting Approval → Approved (by Alana) →
    /// In Progress → Done. Every 4th (n % 4 == 3) is an emergency change that skips approval;
    /// every 7th is still in progress; every 5th had its labels edited 30 times after it was
    /// done, so its changelog is longer than a search returns.
    pub fn generate(n: u32) -> Issue {
        let created = t0() + Duration::hours(3 * i64::from(n));
        let mut histories = Vec::new();
        let mut push = |by: Person, at: DateTime<Utc>, changes: Vec<Change>| {
            let id = 10_000 + u64::from(n) * 100 + histories.len() as u64;
            histories.push(History {
                id,
                by,
                at,
                changes,
            });
        };
        push(
            MIA,
            created + Duration::minutes(10),
            vec![status_change("Open", "Awaiting Approval")],
        );
        let emergency = n % 4 == 3;
        let before_work = if emergency {
            "Awaiting Approval"
        } else {
            push(
                ALANA,
                created + Duration::hours(1),
                vec![status_change("Awaiting Approval", "Approved")],
            );
            "Approved"
        };
        push(
            RAVI,
            created + Duration::minutes(90),
            vec![
                status_change(before_work, "In Progress"),
                Change {
                    field: "assignee",
                    from: None,
                    to: Some((RAVI.account_id.to_owned(), RAVI.display.to_owned())),
                },
            ],
        );
        let mut status = "In Progress".to_owned();
        let mut resolved = None;
        if n % 7 != 0 {
            let at = created + Duration::hours(2);
            push(
                RAVI,
                at,
                vec![
                    status_change("In Progress", "Done"),
                    Change {
                        field: "resolution",
                        from: None,
                        to: Some(("10000".into(), "Done".into())),
                    },
                ],
            );
            status = "Done".to_owned();
            resolved = Some(at);
        }
        if n % 5 == 0 {
            for k in 0..30 {
                push(
                    MIA,
                    created + Duration::minutes(125 + k),
                    vec![Change {
                        field: "labels",
                        from: Some((String::new(), format!("rev-{k}"))),
                        to: Some((String::new(), format!("rev-{}", k + 1))),
                    }],
                );
            }
        }
        Issue {
            n,
            summary: format!("Deploy release 2026.03.{n} to production"),
            created,
            status,
            resolved,
            histories,
            hidden: false,
        }
    }

    pub fn key(&self) -> String {
        format!("OPS-{}", self.n)
    }

    pub fn updated(&self) -> DateTime<Utc> {
        self.histories
            .iter()
            .map(|h| h.at)
            .max()
            .unwrap_or(self.created)
            .max(self.created)
    }

    /// Record a change by `by` at `at` (status, when given, moves to `to_status`).
    pub fn edit(&mut self, by: Person, at: DateTime<Utc>, to_status: Option<&str>) {
        let id = 10_000 + u64::from(self.n) * 100 + self.histories.len() as u64;
        let change = match to_status {
            Some(to) => {
                let change = status_change(&self.status, to);
                self.status = to.to_owned();
                change
            }
            None => Change {
                field: "priority",
                from: Some(("2".into(), "High".into())),
                to: Some(("1".into(), "Highest".into())),
            },
        };
        self.histories.push(History {
            id,
            by,
            at,
            changes: vec![change],
        });
    }

    /// The issue's JSON (without its changelog) holding only `wanted` fields, as the search
    /// returns it.
    pub fn json(&self, flavor: Flavor, wanted: &[String]) -> Value {
        let api = flavor.api();
        let id = 10_000 + self.n;
        let (status_id, category, category_id, colour) = status_meta(&self.status);
        let category_name = match category {
            "new" => "To Do",
            "done" => "Done",
            _ => "In Progress",
        };
        let description = match flavor {
            Flavor::Cloud => json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "Roll out the release behind the canary gate."}]}]}),
            Flavor::DataCenter => json!("Roll out the release behind the canary gate."),
        };
        let mut issuetype = json!({
            "self": format!("{api}/issuetype/10005"),
            "id": "10005",
            "description": "A change to production infrastructure or services.",
            "iconUrl": format!("{}/images/icons/issuetypes/change.svg", flavor.site()),
            "name": "Change",
            "subtask": false,
            "avatarId": 10300,
        });
        if flavor == Flavor::Cloud {
            issuetype["hierarchyLevel"] = json!(0);
        }
        let all = json!({
            "summary": self.summary,
            "description": description,
            "status": {
                "self": format!("{api}/status/{status_id}"),
                "description": "",
                "iconUrl": format!("{}/images/icons/statuses/generic.png", flavor.site()),
                "name": self.status,
                "id": status_id,
                "statusCategory": {
                    "self": format!("{api}/statuscategory/{category_id}"),
                    "id": category_id,
                    "key": category,
                    "colorName": colour,
                    "name": category_name,
                },
            },
            "issuetype": issuetype,
            "priority": {
                "self": format!("{api}/priority/2"),
                "iconUrl": format!("{}/images/icons/priorities/high.svg", flavor.site()),
                "name": "High",
                "id": "2",
            },
            "resolution": self.resolved.map(|_| json!({
                "self": format!("{api}/resolution/10000"),
                "id": "10000",
                "description": "Work has been completed on this issue.",
                "name": "Done",
            })),
            "resolutiondate": self.resolved.map(|t| flavor.time(t)),
            "created": flavor.time(self.created),
            "updated": flavor.time(self.updated()),
            "reporter": MIA.json(flavor),
            "creator": MIA.json(flavor),
            "assignee": RAVI.json(flavor),
            "labels": ["change", "release"],
            "issuelinks": [
                {
                    "id": format!("{}", 20_000 + self.n * 2),
                    "self": format!("{api}/issueLink/{}", 20_000 + self.n * 2),
                    "type": {"id": "10003", "name": "Relates", "inward": "relates to",
                             "outward": "relates to", "self": format!("{api}/issueLinkType/10003")},
                    "outwardIssue": linked(flavor, &format!("INC-{}", self.n), 30_000 + self.n),
                },
                {
                    "id": format!("{}", 20_001 + self.n * 2),
                    "self": format!("{api}/issueLink/{}", 20_001 + self.n * 2),
                    "type": {"id": "10000", "name": "Blocks", "inward": "is blocked by",
                             "outward": "blocks", "self": format!("{api}/issueLinkType/10000")},
                    "inwardIssue": linked(flavor, &format!("DEV-{}", 100 + self.n), 40_000 + self.n),
                },
            ],
            "fixVersions": [{
                "self": format!("{api}/version/10200"),
                "id": "10200",
                "description": "March release train",
                "name": "2026.03",
                "archived": false,
                "released": true,
                "releaseDate": "2026-03-31",
            }],
            "project": {
                "self": format!("{api}/project/10000"),
                "id": "10000",
                "key": "OPS",
                "name": "Operations",
                "projectTypeKey": "software",
                "avatarUrls": {"48x48": format!("{}/secure/projectavatar?avatarId=10324", flavor.site())},
            },
            "customfield_10050": {
                "self": format!("{api}/customFieldOption/10100"),
                "value": "production",
                "id": "10100",
            },
        });
        let mut fields = Map::new();
        for name in wanted {
            if let Some(value) = all.get(name.as_str()) {
                fields.insert(name.clone(), value.clone());
            }
        }
        json!({
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": id.to_string(),
            "self": format!("{api}/issue/{id}"),
            "key": self.key(),
            "fields": fields,
        })
    }

    /// Histories oldest first.
    pub fn histories_json(&self, flavor: Flavor) -> Vec<Value> {
        let mut histories = self.histories.clone();
        histories.sort_by_key(|h| (h.at, h.id));
        histories.iter().map(|h| h.json(flavor)).collect()
    }
}

fn linked(flavor: Flavor, key: &str, id: u32) -> Value {
    json!({
        "id": id.to_string(),
        "key": key,
        "self": format!("{}/issue/{id}", flavor.api()),
        "fields": {
            "summary": format!("{key} linked work"),
            "status": {"iconUrl": format!("{}/images/icons/statuses/open.png", flavor.site()),
                       "name": "Open"},
            "priority": {"iconUrl": format!("{}/images/icons/priorities/medium.svg", flavor.site()),
                         "name": "Medium"},
            "issuetype": {"iconUrl": format!("{}/images/icons/issuetypes/task.svg", flavor.site()),
                          "name": "Task", "subtask": false},
        },
    })
}
