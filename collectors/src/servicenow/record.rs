//! From Table API records (`change_request`, `sysapproval_approver`, `incident`) to the common
//! [`ChangeItem`].

use super::table::{text, Record};
use crate::change::{utc_time, Approval, ChangeItem};
use crate::CollectError;
use serde_json::{json, Map, Value};
use url::Url;

/// The `change_request` fields read, before the optional `environment_field`. Dot-walked
/// fields give the user name of the requester, the names of the configuration item and of
/// the group, and the number of the parent task.
pub(super) const CHANGE_FIELDS: &[&str] = &[
    "sys_id",
    "number",
    "short_description",
    "state",
    "type",
    "risk",
    "impact",
    "approval",
    "cab_required",
    "cab_date",
    "start_date",
    "end_date",
    "close_code",
    "sys_created_on",
    "sys_updated_on",
    "closed_at",
    "requested_by",
    "requested_by.user_name",
    "assignment_group",
    "assignment_group.name",
    "cmdb_ci",
    "cmdb_ci.name",
    "parent",
    "parent.number",
];

/// The `sysapproval_approver` fields read.
pub(super) const APPROVAL_FIELDS: &str =
    "sys_id,sysapproval,approver,approver.user_name,state,sys_updated_on";

/// The `incident` fields read to link incidents to the changes that fixed or caused them.
pub(super) const INCIDENT_FIELDS: &str = "sys_id,number,rfc,caused_by";

/// The change states of the base system (Change Management "State" choices).
fn state_label(code: &str) -> Option<&'static str> {
    Some(match code {
        "-5" => "New",
        "-4" => "Assess",
        "-3" => "Authorize",
        "-2" => "Scheduled",
        "-1" => "Implement",
        "0" => "Review",
        "3" => "Closed",
        "4" => "Canceled",
        _ => return None,
    })
}

/// `change_request.risk` choices of the base system.
fn risk_label(code: &str) -> Option<&'static str> {
    Some(match code {
        "1" => "Very High",
        "2" => "High",
        "3" => "Moderate",
        "4" => "Low",
        _ => return None,
    })
}

/// `task.impact` choices of the base system.
fn impact_label(code: &str) -> Option<&'static str> {
    Some(match code {
        "1" => "High",
        "2" => "Medium",
        "3" => "Low",
        _ => return None,
    })
}

/// The identity of a change record and the time it was last updated (RFC 3339 UTC).
pub(super) struct Key {
    pub sys_id: String,
    pub id: String,
    pub updated: String,
}

/// The key of a change record; a record without one is a malformed answer.
pub(super) fn key(record: &Record) -> Result<Key, CollectError> {
    let sys_id = text(record, "sys_id")
        .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| malformed("a change_request record without a valid sys_id"))?;
    let number = text(record, "number")
        .ok_or_else(|| malformed(&format!("change_request {sys_id} has no number")))?;
    let updated = text(record, "sys_updated_on")
        .and_then(utc_time)
        .ok_or_else(|| {
            malformed(&format!(
                "change_request {number} has no valid sys_updated_on"
            ))
        })?;
    Ok(Key {
        sys_id: sys_id.to_owned(),
        id: format!("servicenow:{number}"),
        updated,
    })
}

fn malformed(why: &str) -> CollectError {
    CollectError::Other(format!("unexpected answer from ServiceNow: {why}"))
}

/// A person named by a reference: the dot-walked user name, else the sys_id (a deleted user,
/// or one the API user may not read), else nobody.
fn person(record: &Record, field: &str) -> Option<String> {
    text(record, &format!("{field}.user_name"))
        .or_else(|| text(record, field))
        .map(str::to_owned)
}

/// A time field as RFC 3339 UTC; a date-only field (`yyyy-MM-dd`) as the date.
fn time_or_date(record: &Record, field: &str) -> Value {
    match text(record, field) {
        None => Value::Null,
        Some(t) => match utc_time(t) {
            Some(utc) => json!(utc),
            None => json!(t),
        },
    }
}

fn labelled(record: &Record, field: &str, label: fn(&str) -> Option<&'static str>) -> Value {
    match text(record, field) {
        None => Value::Null,
        Some(code) => json!(label(code).unwrap_or(code)),
    }
}

fn opt_text(record: &Record, field: &str) -> Value {
    text(record, field).map_or(Value::Null, |t| json!(t))
}

/// What else belongs to one change: its approver records and the incidents linked to it.
#[derive(Debug, Default)]
pub(super) struct Related<'r> {
    pub approvals: Vec<&'r Record>,
    pub incidents: Vec<String>,
}

/// The item of one change record.
pub(super) fn change_item(
    base: &Url,
    record: &Record,
    related: &Related<'_>,
    environment_field: Option<&str>,
) -> Result<ChangeItem, CollectError> {
    let key = key(record)?;
    let state_code = text(record, "state").unwrap_or("");
    let state = state_label(state_code).unwrap_or(state_code).to_owned();
    let title = text(record, "short_description").unwrap_or("").to_owned();
    let mut item = ChangeItem::new("servicenow", key.id, title, state);
    item.url = Some(format!(
        "{base}nav_to.do?uri=change_request.do?sys_id={}",
        key.sys_id
    ));
    item.author = person(record, "requested_by");
    item.created_at = text(record, "sys_created_on").and_then(utc_time);
    item.updated_at = Some(key.updated);
    item.closed_at = text(record, "closed_at").and_then(utc_time);
    let mut rejections = Vec::new();
    for approval in &related.approvals {
        let entry = Approval {
            by: person(approval, "approver").unwrap_or_default(),
            at: text(approval, "sys_updated_on").and_then(utc_time),
        };
        match text(approval, "state") {
            Some("approved") => item.approvals.push(entry),
            Some("rejected") => rejections.push(entry),
            _ => {}
        }
    }
    rejections.sort();
    item.linked_tickets = related.incidents.clone();
    item.linked_tickets
        .extend(text(record, "parent.number").map(str::to_owned));
    let configuration_item = text(record, "cmdb_ci.name").or_else(|| text(record, "cmdb_ci"));
    item.target = match environment_field {
        Some(field) => text(record, field),
        None => configuration_item,
    }
    .map(str::to_owned);
    item.details = details(record, state_code, configuration_item, rejections);
    Ok(item.finish())
}

fn details(
    record: &Record,
    state_code: &str,
    configuration_item: Option<&str>,
    rejections: Vec<Approval>,
) -> Map<String, Value> {
    let cab_required = match text(record, "cab_required") {
        Some("true") => json!(true),
        Some("false") => json!(false),
        _ => Value::Null,
    };
    let group = text(record, "assignment_group.name").or_else(|| text(record, "assignment_group"));
    let mut details = Map::new();
    for (key, value) in [
        ("sys_id", opt_text(record, "sys_id")),
        ("state_code", json!(state_code)),
        ("type", opt_text(record, "type")),
        ("risk", labelled(record, "risk", risk_label)),
        ("impact", labelled(record, "impact", impact_label)),
        ("approval", opt_text(record, "approval")),
        ("cab_required", cab_required),
        ("cab_date", time_or_date(record, "cab_date")),
        ("start_date", time_or_date(record, "start_date")),
        ("end_date", time_or_date(record, "end_date")),
        ("close_code", opt_text(record, "close_code")),
        ("assignment_group", group.map_or(Value::Null, |g| json!(g))),
        (
            "configuration_item",
            configuration_item.map_or(Value::Null, |c| json!(c)),
        ),
        ("rejections", json!(rejections)),
    ] {
        details.insert(key.to_owned(), value);
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: Value) -> Record {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_change_record_becomes_an_item() {
        let change = record(json!({
            "sys_id": "c83c5e5347c12200e0ef563dbb9a7190",
            "number": "CHG0030001",
            "short_description": "Upgrade the database",
            "state": "3",
            "type": "normal",
            "risk": "4",
            "impact": "2",
            "approval": "approved",
            "cab_required": "true",
            "cab_date": "2026-03-02",
            "start_date": "2026-03-03 22:00:00",
            "end_date": "",
            "close_code": "successful",
            "sys_created_on": "2026-03-01 09:00:00",
            "sys_updated_on": "2026-03-04 08:00:00",
            "closed_at": "2026-03-04 07:59:00",
            "requested_by": "6816f79cc0a8016401c5a33be04be441",
            "requested_by.user_name": "abel.tuter",
            "cmdb_ci": "b0c4030ac0a800090152e7a4564ca36c",
            "cmdb_ci.name": "db-prod-01",
            "parent": "",
            "parent.number": "",
            "u_environment": "production",
        }));
        let approver = |state: &str, user: &str, at: &str| {
            record(
                json!({"state": state, "approver": "x", "approver.user_name": user,
                          "sys_updated_on": at}),
            )
        };
        let approvals = [
            approver("approved", "beth.anglin", "2026-03-02 10:00:00"),
            approver("rejected", "don.goodliffe", "2026-03-02 09:00:00"),
            approver("requested", "fred.luddy", "2026-03-02 08:00:00"),
        ];
        let related = Related {
            approvals: approvals.iter().collect(),
            incidents: vec!["INC0010002".into()],
        };
        let base = Url::parse("https://acme.service-now.com/").unwrap();
        let item = change_item(&base, &change, &related, Some("u_environment")).unwrap();
        assert_eq!(item.id, "servicenow:CHG0030001");
        assert_eq!(item.state, "Closed");
        assert_eq!(item.author.as_deref(), Some("abel.tuter"));
        assert_eq!(
            item.url.as_deref(),
            Some("https://acme.service-now.com/nav_to.do?uri=change_request.do?sys_id=c83c5e5347c12200e0ef563dbb9a7190")
        );
        assert_eq!(item.approvers, vec!["beth.anglin"]);
        assert_eq!(item.approved_before_merge, Some(true));
        assert_eq!(item.target.as_deref(), Some("production"));
        assert_eq!(item.linked_tickets, vec!["INC0010002"]);
        assert_eq!(item.details["risk"], "Low");
        assert_eq!(item.details["impact"], "Medium");
        assert_eq!(item.details["cab_date"], "2026-03-02");
        assert_eq!(item.details["start_date"], "2026-03-03T22:00:00Z");
        assert_eq!(item.details["end_date"], Value::Null);
        assert_eq!(item.details["configuration_item"], "db-prod-01");
        assert_eq!(item.details["rejections"][0]["by"], "don.goodliffe");

        let item = change_item(&base, &change, &Related::default(), None).unwrap();
        assert_eq!(item.target.as_deref(), Some("db-prod-01"));
        assert_eq!(item.approved_before_merge, Some(false));
    }

    #[test]
    fn a_record_without_its_key_is_malformed() {
        let no_number = record(json!({"sys_id": "abc", "sys_updated_on": "2026-03-04 08:00:00"}));
        assert!(key(&no_number).is_err());
        let bad_time = record(json!({"sys_id": "abc", "number": "CHG1", "sys_updated_on": "x"}));
        assert!(key(&bad_time).is_err());
        let bad_id = record(json!({"sys_id": "a/b", "number": "CHG1",
                                   "sys_updated_on": "2026-03-04 08:00:00"}));
        assert!(key(&bad_id).is_err());
    }
}
