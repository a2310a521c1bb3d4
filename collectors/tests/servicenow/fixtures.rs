//! Records of the tables the collector reads, with the full field sets of the documented
//! example answers (Table API, Change Management API), every value a string, references as
//! sys_ids (the instance renders link objects when asked).
//!
//! Change `i` (number `CHG00{30001+i}`) is created at 2026-03-01 09:00 + i hours and last
//! updated at 2026-03-10 12:00 + i/2 minutes, so changes 2k and 2k+1 share their update second.

use crate::instance::{Db, Record};
use chrono::{Duration, NaiveDateTime};
use serde_json::{json, Value};

/// The fixtures' people: (user_name, name). `abel.tuter` requests every change.
pub const USERS: [(&str, &str); 5] = [
    ("abel.tuter", "Abel Tuter"),
    ("beth.anglin", "Beth Anglin"),
    ("bud.richman", "Bud Richman"),
    ("david.loo", "David Loo"),
    ("don.goodliffe", "Don Goodliffe"),
];
/// A user that approved change 0 and was deleted since: no sys_user record.
pub const DELETED_USER: &str = "5137153cc611227c000bbd1bd8cd2007";

pub fn sys_id(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:024x}")
}
pub fn change_sys_id(i: usize) -> String {
    sys_id("c83c5e53", i)
}
pub fn user_sys_id(u: usize) -> String {
    sys_id("6816f79c", u)
}
pub fn number(i: usize) -> String {
    format!("CHG{:07}", 30001 + i)
}

/// ServiceNow's internal time format (UTC).
pub fn at(base: &str, plus: Duration) -> String {
    let t = NaiveDateTime::parse_from_str(base, "%Y-%m-%d %H:%M:%S").unwrap() + plus;
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
fn created(i: usize) -> String {
    at("2026-03-01 09:00:00", Duration::hours(i as i64))
}
pub fn updated(i: usize) -> String {
    at("2026-03-10 12:00:00", Duration::minutes((i / 2) as i64))
}

fn object(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn user(u: usize) -> Record {
    let (user_name, name) = USERS[u];
    let (first, last) = name.split_once(' ').unwrap();
    object(json!({
        "sys_id": user_sys_id(u), "user_name": user_name, "name": name,
        "first_name": first, "last_name": last, "email": format!("{user_name}@example.com"),
        "active": "true", "locked_out": "false", "title": "", "department": "",
        "sys_created_on": "2025-01-10 10:00:00", "sys_updated_on": "2026-01-10 10:00:00",
        "sys_created_by": "admin", "sys_updated_by": "admin", "sys_class_name": "sys_user",
    }))
}

/// The kinds of change, by `i % 4`: (state, approval, close_code).
fn lifecycle(i: usize) -> (&'static str, &'static str, &'static str) {
    match i % 4 {
        0 => ("3", "approved", "successful"),
        1 => ("-1", "approved", ""),
        2 => ("-5", "requested", ""),
        _ => ("4", "rejected", "unsuccessful"),
    }
}

/// Fields of the documented change_request example that the collector does not read, with
/// the values every fixture change has.
const OTHER_FIELDS: &[(&str, &str)] = &[
    ("phase", "requested"),
    ("phase_state", "open"),
    ("urgency", "3"),
    ("priority", "4"),
    ("approval_history", ""),
    ("approval_set", ""),
    ("cab_delegate", ""),
    ("cab_recommendation", ""),
    ("expected_start", ""),
    ("work_start", ""),
    ("work_end", ""),
    ("sys_created_by", "abel.tuter"),
    ("sys_updated_by", "abel.tuter"),
    ("sys_mod_count", "4"),
    ("sys_class_name", "change_request"),
    ("sys_domain", "global"),
    ("sys_domain_path", "/"),
    ("sys_tags", ""),
    ("requested_by_date", ""),
    ("reason", ""),
    ("upon_reject", "cancel"),
    ("upon_approval", "proceed"),
    ("watch_list", ""),
    ("skills", ""),
    ("test_plan", "Check the expiry date."),
    ("ci_class", "cmdb_ci_server"),
    ("knowledge", "false"),
    ("order", ""),
    ("delivery_plan", ""),
    ("work_notes_list", ""),
    ("production_system", "false"),
    ("rejection_goto", ""),
    ("review_date", ""),
    ("business_duration", ""),
    ("group_list", ""),
    ("change_plan", ""),
    ("wf_activity", ""),
    ("implementation_plan", "Deploy the new certificates."),
    ("universal_request", ""),
    ("correlation_display", ""),
    ("correlation_id", ""),
    ("delivery_task", ""),
    ("additional_assignee_list", ""),
    ("outside_maintenance_schedule", "false"),
    ("std_change_producer_version", ""),
    ("service_offering", ""),
    ("follow_up", ""),
    ("reassignment_count", "0"),
    ("review_status", ""),
    ("sla_due", ""),
    ("comments_and_work_notes", ""),
    ("escalation", "0"),
    ("made_sla", "true"),
    ("backout_plan", "Restore the previous certificates."),
    ("conflict_status", "No Conflict"),
    ("conflict_last_run", ""),
    ("user_input", ""),
    ("on_hold", "false"),
    ("on_hold_task", ""),
    ("on_hold_reason", ""),
    ("route_reason", ""),
    ("review_comments", ""),
    ("business_service", ""),
    ("time_worked", ""),
    ("chg_model", ""),
    ("work_notes", ""),
    ("calendar_duration", ""),
    ("contact_type", ""),
    ("scope", "3"),
    ("company", ""),
    ("justification", ""),
    ("activity_due", ""),
    ("comments", ""),
    ("due_date", ""),
    ("risk_value", ""),
    ("unauthorized", "false"),
    ("location", ""),
    ("category", "Other"),
    ("risk_impact_analysis", ""),
];

/// change_request `i`, with the fields of the Change Management API's documented example.
pub fn change(i: usize) -> Record {
    let (state, approval, close_code) = lifecycle(i);
    let closed = matches!(state, "3" | "4");
    let created = created(i);
    let plus = |h: i64| at(&created, Duration::hours(h));
    let when_closed = |value: String| if closed { value } else { String::new() };
    let even = |yes: &str, no: &str| if i % 2 == 0 { yes } else { no }.to_owned();
    let number = number(i);
    let fields: Vec<(&str, String)> = vec![
        ("sys_id", change_sys_id(i)),
        ("number", number.clone()),
        ("task_effective_number", number),
        (
            "short_description",
            format!("Rotate TLS certificates on web tier ({i})"),
        ),
        (
            "description",
            "Replace the certificates that expire next month.".into(),
        ),
        ("state", state.into()),
        ("type", ["normal", "standard", "emergency"][i % 3].into()),
        ("risk", even("4", "3")),
        ("impact", "2".into()),
        ("approval", approval.into()),
        ("cab_required", even("true", "false")),
        ("cab_date", plus(20)[..10].to_owned()),
        ("start_date", plus(10)),
        ("end_date", plus(12)),
        ("close_code", close_code.into()),
        ("close_notes", when_closed("Done as planned.".into())),
        ("closed_at", when_closed(plus(20))),
        ("closed_by", when_closed(user_sys_id(0))),
        ("active", if closed { "false" } else { "true" }.into()),
        ("sys_created_on", created.clone()),
        ("opened_at", created.clone()),
        ("sys_updated_on", updated(i)),
        ("requested_by", user_sys_id(0)),
        ("opened_by", user_sys_id(0)),
        ("assigned_to", user_sys_id(3)),
        ("assignment_group", sys_id("287ebd7d", i % 2)),
        ("cmdb_ci", sys_id("b0c4030a", i % 3)),
        (
            "parent",
            if i == 0 {
                sys_id("a9e4890b", 0)
            } else {
                String::new()
            },
        ),
        ("u_environment", even("production", "staging")),
    ];
    let others = OTHER_FIELDS.iter().map(|(k, v)| (*k, (*v).to_owned()));
    fields
        .into_iter()
        .chain(others)
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect()
}

/// A sysapproval_approver record of the fields of the Table API's documented records.
pub fn approver(n: usize, change: usize, user: &str, state: &str, at_time: &str) -> Record {
    object(json!({
        "sys_id": sys_id("a1b2c3d4", n), "sysapproval": change_sys_id(change),
        "document_id": change_sys_id(change), "source_table": "change_request",
        "approver": user, "state": state, "comments": "", "group": "", "order": "",
        "expected_start": "", "due_date": "", "approval_column": "approval",
        "approval_journal_column": "approval_history", "approval_source": "",
        "wf_activity": "", "sys_created_on": created(change), "sys_updated_on": at_time,
        "sys_created_by": "system", "sys_updated_by": "system", "sys_mod_count": "1",
    }))
}

/// The approver records of change `i`: one approval by `USERS[1 + i % 3]` an hour after
/// creation (for `i % 8 == 4`, after the close instead); a rejection by `don.goodliffe` first
/// when `i % 5 == 0`; only a pending request for the changes still `New`.
pub fn approvals_of(i: usize) -> Vec<Record> {
    let c = created(i);
    let approver_id = user_sys_id(1 + i % 3);
    if lifecycle(i).0 == "-5" {
        return vec![approver(i * 4, i, &approver_id, "requested", &c)];
    }
    let approved_at = at(&c, Duration::hours(if i % 8 == 4 { 21 } else { 1 }));
    let mut list = vec![approver(i * 4, i, &approver_id, "approved", &approved_at)];
    if i % 5 == 0 {
        let rejected_at = at(&c, Duration::minutes(30));
        list.push(approver(
            i * 4 + 1,
            i,
            &user_sys_id(4),
            "rejected",
            &rejected_at,
        ));
    }
    if i == 0 {
        let late = at(&c, Duration::hours(2));
        list.push(approver(2, 0, DELETED_USER, "approved", &late));
    }
    list
}

fn incident(n: usize, rfc: &str, caused_by: &str) -> Record {
    object(json!({
        "sys_id": sys_id("9d385017", n), "number": format!("INC{:07}", 10001 + n),
        "short_description": "Certificate expired on web-prod-01", "state": "7",
        "incident_state": "7", "caller_id": user_sys_id(3), "rfc": rfc, "caused_by": caused_by,
        "problem_id": "", "cmdb_ci": sys_id("b0c4030a", 1), "impact": "2", "urgency": "2",
        "priority": "3", "opened_at": "2026-02-27 08:00:00", "closed_at": "2026-02-28 08:00:00",
        "sys_created_on": "2026-02-27 08:00:00", "sys_updated_on": "2026-03-05 08:00:00",
        "sys_class_name": "incident", "active": "false", "category": "software",
    }))
}

/// An instance holding changes `0..n`, their approvals, the users, groups, configuration
/// items, a problem (parent of change 0) and incidents fixed by (rfc) change 0 and 7 or
/// caused by change 0; `authorization` is the header it accepts.
pub fn db(n: usize, authorization: &str) -> Db {
    let mut db = Db {
        authorization: authorization.to_owned(),
        ..Db::default()
    };
    *db.table("sys_user") = (0..USERS.len()).map(user).collect();
    *db.table("sys_user_group") = ["CAB Approval", "Database"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            object(
                json!({"sys_id": sys_id("287ebd7d", n), "name": name, "active": "true",
                          "description": "", "email": "", "manager": user_sys_id(3)}),
            )
        })
        .collect();
    *db.table("cmdb_ci") = ["db-prod-01", "web-prod-01", "lb-prod-01"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            object(json!({"sys_id": sys_id("b0c4030a", n), "name": name,
                          "sys_class_name": "cmdb_ci_server", "operational_status": "1"}))
        })
        .collect();
    *db.table("problem") = vec![object(json!({
        "sys_id": sys_id("a9e4890b", 0), "number": "PRB0040001", "state": "4",
        "short_description": "Certificates expire unnoticed", "sys_class_name": "problem",
    }))];
    *db.table("incident") = vec![
        incident(0, &change_sys_id(0), ""),
        incident(1, "", &change_sys_id(0)),
        incident(2, &change_sys_id(7), ""),
    ];
    *db.table("change_request") = (0..n).map(change).collect();
    *db.table("sysapproval_approver") = (0..n).flat_map(approvals_of).collect();
    db
}
