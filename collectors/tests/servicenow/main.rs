//! The `servicenow_changes` collector against a local ServiceNow instance (instance.rs) that
//! answers the Table API as documented, with fixture records in the documented shapes
//! (fixtures.rs).

#[path = "../common/mod.rs"]
mod common;
mod fixtures;
mod instance;

use base64::Engine;
use collectors::{CollectError, Collector, Snapshot};
use common::api_server::{epoch_now, ApiServer, Fault};
use fixtures::{change_sys_id, number, user_sys_id, DELETED_USER};
use instance::Shared;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

const USER: &str = "svc.evidence";
const PASSWORD: &str = "pw-s3cr3t-9f8e7d";
const CHANGES: &str = "/api/now/table/change_request";
const APPROVERS: &str = "/api/now/table/sysapproval_approver";
const INCIDENTS: &str = "/api/now/table/incident";

struct Setup {
    server: ApiServer,
    db: Shared,
    dir: tempfile::TempDir,
}

fn basic() -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    format!("Basic {pair}")
}

/// An instance with changes `0..n` that accepts `USER`/`PASSWORD`, and the password in a
/// 0600 file.
fn start(n: usize) -> Setup {
    let db = Arc::new(Mutex::new(fixtures::db(n, &basic())));
    let server = ApiServer::start(instance::router(Arc::clone(&db)));
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    Setup { server, db, dir }
}

impl Setup {
    /// Basic-auth settings with 10 records a page, plus `extra` lines.
    fn settings(&self, extra: &str) -> String {
        format!(
            "base_url = \"{}\"\nusername = \"{USER}\"\ntoken_file = \"{}\"\npage_size = 10\n{extra}",
            self.server.base,
            self.dir.path().join("password").display()
        )
    }

    fn collector(&self, extra: &str) -> Box<dyn Collector> {
        common::build("servicenow_changes", &self.settings(extra))
    }

    async fn run(
        &self,
        collector: &dyn Collector,
        cursor: Option<&Value>,
    ) -> Result<Snapshot, CollectError> {
        let ctx = common::ctx_with_cursor(self.dir.path(), cursor.cloned());
        collector.collect(ctx).await
    }

    fn item_url(&self, i: usize) -> String {
        format!(
            "{}nav_to.do?uri=change_request.do?sys_id={}",
            self.server.base,
            change_sys_id(i)
        )
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn all_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("servicenow:{}", number(i)))
        .collect()
}

#[tokio::test]
async fn changes_are_read_over_pages_with_approvals_links_and_targets() {
    let s = start(25);
    let collector = s.collector("");
    let snapshot = s.run(&*collector, None).await.unwrap();
    let items = common::items(&snapshot);
    assert_eq!(ids(&items), all_ids(25));

    let pages = s.server.requests_to(CHANGES);
    let offsets: Vec<_> = pages.iter().map(|r| r.param("sysparm_offset")).collect();
    assert_eq!(offsets, ["0", "10", "20"].map(|o| Some(o.to_owned())));
    for page in &pages {
        assert_eq!(page.header("authorization"), Some(basic().as_str()));
        assert_eq!(page.param("sysparm_limit").as_deref(), Some("10"));
        assert_eq!(
            page.param("sysparm_display_value").as_deref(),
            Some("false")
        );
        assert_eq!(
            page.param("sysparm_exclude_reference_link").as_deref(),
            Some("true")
        );
        let query = page.param("sysparm_query").unwrap();
        assert!(query.starts_with("sys_updated_on<"), "{query}");
        assert!(
            query.ends_with("^ORDERBYsys_updated_on^ORDERBYsys_id"),
            "{query}"
        );
    }
    // One batch each for approvals (24 records: 3 pages) and incidents, naming every change.
    let every_id = (0..25).map(change_sys_id).collect::<Vec<_>>().join(",");
    let approvals = s.server.requests_to(APPROVERS);
    let offsets: Vec<_> = approvals
        .iter()
        .map(|r| r.param("sysparm_offset"))
        .collect();
    assert_eq!(offsets, ["0", "10", "20"].map(|o| Some(o.to_owned())));
    for page in &approvals {
        assert_eq!(
            page.param("sysparm_query").unwrap(),
            format!("sysapprovalIN{every_id}^stateINapproved,rejected^ORDERBYsys_id")
        );
    }
    let incidents = s.server.requests_to(INCIDENTS);
    assert_eq!(incidents.len(), 1);
    assert_eq!(
        incidents[0].param("sysparm_query").unwrap(),
        format!("rfcIN{every_id}^ORcaused_byIN{every_id}^ORDERBYsys_id")
    );

    // Change 0: closed; approved by beth.anglin and by a since-deleted user (kept as its
    // sys_id); rejected first by don.goodliffe; a problem parent and two incidents.
    let first = common::find(&items, "change", "servicenow:CHG0030001");
    assert_eq!(
        first,
        &json!({
            "type": "change", "id": "servicenow:CHG0030001", "source": "servicenow",
            "title": "Rotate TLS certificates on web tier (0)", "url": s.item_url(0),
            "author": "abel.tuter", "state": "Closed",
            "created_at": "2026-03-01T09:00:00Z", "updated_at": "2026-03-10T12:00:00Z",
            "merged_at": null, "closed_at": "2026-03-02T05:00:00Z",
            "approvals": [
                {"by": "beth.anglin", "at": "2026-03-01T10:00:00Z"},
                {"by": DELETED_USER, "at": "2026-03-01T11:00:00Z"},
            ],
            "approvers": [DELETED_USER, "beth.anglin"],
            "approved_at": "2026-03-01T11:00:00Z", "approved_before_merge": true,
            "linked_tickets": ["INC0010001", "INC0010002", "PRB0040001"],
            "target": "db-prod-01",
            "details": {
                "sys_id": change_sys_id(0), "state_code": "3", "type": "normal",
                "risk": "Low", "impact": "Medium", "approval": "approved",
                "cab_required": true, "cab_date": "2026-03-02",
                "start_date": "2026-03-01T19:00:00Z", "end_date": "2026-03-01T21:00:00Z",
                "close_code": "successful", "assignment_group": "CAB Approval",
                "configuration_item": "db-prod-01",
                "rejections": [{"by": "don.goodliffe", "at": "2026-03-01T09:30:00Z"}],
            },
        })
    );
    // Approved only after it was closed; still New with a pending request; canceled.
    let late = common::find(&items, "change", "servicenow:CHG0030005");
    assert_eq!(late["approvers"], json!(["bud.richman"]));
    assert_eq!(late["approved_before_merge"], json!(false));
    let new = common::find(&items, "change", "servicenow:CHG0030003");
    assert_eq!(new["state"], "New");
    assert_eq!(new["approvals"], json!([]));
    assert_eq!(new["approved_before_merge"], Value::Null);
    assert_eq!(new["closed_at"], Value::Null);
    let canceled = common::find(&items, "change", "servicenow:CHG0030004");
    assert_eq!(canceled["state"], "Canceled");
    assert_eq!(canceled["details"]["risk"], "Moderate");
    let fixed = common::find(&items, "change", "servicenow:CHG0030008");
    assert_eq!(fixed["linked_tickets"], json!(["INC0010003"]));

    assert_eq!(snapshot.details["change_pages"], 3);
    assert_eq!(snapshot.details["first_run"], true);
    assert_eq!(snapshot.details["approval_records"], 24);
    assert_eq!(snapshot.details["api"]["requests"], 7);
    let cursor = snapshot.cursor.unwrap();
    assert_eq!(cursor["since"], "2026-03-10T12:12:00Z");
    assert_eq!(cursor["taken_at_since"], json!(["servicenow:CHG0030025"]));
    assert_eq!(cursor["query"], "");
}

#[tokio::test]
async fn a_second_run_takes_only_what_changed_since_the_watermark() {
    let s = start(25);
    let collector = s.collector("environment_field = \"u_environment\"");
    let first = s.run(&*collector, None).await.unwrap();
    let cursor = first.cursor.unwrap();
    {
        let mut db = s.db.lock().unwrap();
        // Change 3 (canceled) is reopened and closed successfully; change 7 gets one more
        // approval; change 25 is new, updated in the same second as change 7; change 26 was
        // updated a moment ago and is left to a later run.
        let reopened = db.record("change_request", &change_sys_id(3));
        reopened.insert("state".into(), json!("3"));
        reopened.insert("close_code".into(), json!("successful"));
        reopened.insert("sys_updated_on".into(), json!("2026-03-20 08:00:00"));
        db.record("change_request", &change_sys_id(7))
            .insert("sys_updated_on".into(), json!("2026-03-20 09:00:00"));
        let extra = fixtures::approver(900, 7, &user_sys_id(3), "approved", "2026-03-20 08:30:00");
        db.table("sysapproval_approver").push(extra);
        let mut added = fixtures::change(25);
        added.insert("sys_updated_on".into(), json!("2026-03-20 09:00:00"));
        db.table("change_request").push(added);
        let mut recent = fixtures::change(26);
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
        recent.insert("sys_updated_on".into(), json!(now));
        db.table("change_request").push(recent);
    }
    s.server.clear_requests();

    let second = s.run(&*collector, Some(&cursor)).await.unwrap();
    let items = common::items(&second);
    assert_eq!(
        ids(&items),
        ["CHG0030004", "CHG0030008", "CHG0030026"].map(|n| format!("servicenow:{n}"))
    );
    assert_eq!(items[0]["state"], "Closed");
    assert_eq!(items[0]["target"], "staging");
    assert_eq!(items[1]["approvers"], json!(["bud.richman", "david.loo"]));
    assert_eq!(items[2]["target"], "staging");
    // Only the window since the watermark was asked for: one page, then one batch of
    // approvals and incidents for exactly the three changes.
    let pages = s.server.requests_to(CHANGES);
    assert_eq!(pages.len(), 1);
    let query = pages[0].param("sysparm_query").unwrap();
    assert!(
        query.starts_with("sys_updated_on>=2026-03-10 12:12:00^sys_updated_on<"),
        "{query}"
    );
    let three = [3, 7, 25].map(change_sys_id).join(",");
    let approvals = s.server.requests_to(APPROVERS);
    assert_eq!(approvals.len(), 1);
    assert_eq!(
        approvals[0].param("sysparm_query").unwrap(),
        format!("sysapprovalIN{three}^stateINapproved,rejected^ORDERBYsys_id")
    );
    assert_eq!(second.details["first_run"], false);
    let cursor = second.cursor.unwrap();
    assert_eq!(cursor["since"], "2026-03-20T09:00:00Z");
    assert_eq!(
        cursor["taken_at_since"],
        json!(["servicenow:CHG0030008", "servicenow:CHG0030026"])
    );

    // Nothing changed since: no items, the same cursor.
    let third = s.run(&*collector, Some(&cursor)).await.unwrap();
    assert_eq!(common::items(&third), Vec::<Value>::new());
    assert_eq!(third.cursor, Some(cursor.clone()));

    // Another query is another scope: its first run starts over.
    let narrowed = s.collector("query = \"type=emergency\"");
    let other = s.run(&*narrowed, Some(&cursor)).await.unwrap();
    assert_eq!(other.details["scope_changed"], true);
    assert_eq!(common::items(&other).len(), 8);
}

#[tokio::test]
async fn records_leaving_the_window_mid_listing_do_not_hide_others() {
    let s = start(25);
    // While page 1 is being read, changes 1 and 2 (already read) are updated: they leave the
    // window and every later change moves two places down.
    s.db.lock().unwrap().hooks.push((
        "change_request",
        10,
        Box::new(|db: &mut instance::Db| {
            let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
            for i in [1, 2] {
                db.record("change_request", &change_sys_id(i))
                    .insert("sys_updated_on".into(), json!(now));
            }
        }),
    ));
    let collector = s.collector("");
    let snapshot = s.run(&*collector, None).await.unwrap();
    assert_eq!(ids(&common::items(&snapshot)), all_ids(25));
    let offsets: Vec<_> = s
        .server
        .requests_to(CHANGES)
        .iter()
        .map(|r| r.param("sysparm_offset").unwrap())
        .collect();
    assert_eq!(offsets, ["0", "10", "8", "18"]);
    assert_eq!(snapshot.details["list_step_backs"], 1);
}

const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 100 requests per hour for Table API exceeded"},"status":"failure"}"#;

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let s = start(25);
    // ServiceNow's documented 429: Retry-After plus the X-RateLimit-* headers.
    let limited = || {
        Fault::json(429, RATE_LIMITED)
            .header("Retry-After", "1")
            .header("X-RateLimit-Limit", "100")
            .header("X-RateLimit-Reset", &(epoch_now() + 1).to_string())
            .header("X-RateLimit-Rule", "2fe3a8d3db2a1010b9d7f3b5ca96191b")
    };
    {
        let mut db = s.db.lock().unwrap();
        db.page_faults.push(("change_request", 10, limited()));
        db.page_faults.push(("sysapproval_approver", 0, limited()));
    }
    let collector = s.collector("");
    let snapshot = s.run(&*collector, None).await.unwrap();
    assert_eq!(ids(&common::items(&snapshot)), all_ids(25));
    assert!(s.db.lock().unwrap().page_faults.is_empty());
    assert_eq!(snapshot.details["api"]["rate_limit_waits"], 2);
    assert_eq!(s.server.requests_to(CHANGES).len(), 4);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let s = start(25);
    s.server
        .inject(Fault::html(502, "502 Bad Gateway").on(CHANGES));
    s.server
        .inject(Fault::html(503, "503 Service Unavailable").on(CHANGES));
    let collector = s.collector("");
    let snapshot = s.run(&*collector, None).await.unwrap();
    assert_eq!(ids(&common::items(&snapshot)), all_ids(25));
    assert_eq!(snapshot.details["api"]["retries"], 2);
    assert_eq!(s.server.faults_left(), 0);
}

#[tokio::test]
async fn a_broken_page_fails_the_run_and_the_next_run_is_whole() {
    let s = start(25);
    s.db.lock()
        .unwrap()
        .page_faults
        .push(("change_request", 10, Fault::truncated_json()));
    let collector = s.collector("");
    let err = s.run(&*collector, None).await.unwrap_err().to_string();
    assert!(
        err.contains(CHANGES) && err.contains("sysparm_offset=10"),
        "{err}"
    );
    assert!(err.contains("not valid JSON"), "{err}");

    // The agent keeps the old cursor (none): the next runs read everything, the same way.
    let again = s.run(&*collector, None).await.unwrap();
    let control = s.run(&*collector, None).await.unwrap();
    assert_eq!(ids(&common::items(&again)), all_ids(25));
    assert_eq!(common::bytes(&again), common::bytes(&control));
    assert_eq!(again.cursor, control.cursor);
}

#[tokio::test]
async fn an_error_page_that_persists_fails_the_run_naming_the_url() {
    let s = start(5);
    for _ in 0..5 {
        s.server
            .inject(Fault::html(502, "502 Bad Gateway").on(CHANGES));
    }
    let collector = s.collector("");
    let err = s.run(&*collector, None).await.unwrap_err().to_string();
    assert!(err.contains(&format!("GET {}", s.server.base)), "{err}");
    assert!(err.contains(CHANGES), "{err}");
    assert!(
        err.contains("502 Bad Gateway: an HTML page titled \"502 Bad Gateway\" (5 attempts)"),
        "{err}"
    );
}

#[tokio::test]
async fn auth_failures_give_servicenows_message_and_no_secret() {
    let s = start(3);
    let wrong = s.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password-4711").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let collector = common::build(
        "servicenow_changes",
        &format!(
            "base_url = \"{}\"\nusername = \"{USER}\"\ntoken_file = \"{}\"",
            s.server.base,
            wrong.display()
        ),
    );
    let err = s.run(&*collector, None).await.unwrap_err().to_string();
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(
        err.contains("\"User Not Authenticated; Required to provide Auth information\""),
        "{err}"
    );
    assert!(
        !err.contains("not-the-password") && !err.contains("Basic "),
        "{err}"
    );

    // A password file others can read is refused before any request.
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.server.clear_requests();
    let err = s.run(&*collector, None).await.unwrap_err().to_string();
    assert!(err.contains("0644") && err.contains("refused"), "{err}");
    assert!(s.server.requests().is_empty());
}

#[tokio::test]
async fn an_oauth_token_is_sent_as_bearer() {
    let s = start(3);
    let token = "oauth-access-token-Zk9wX2";
    s.db.lock().unwrap().authorization = format!("Bearer {token}");
    std::env::set_var("EVIDENCE_AGENT_TEST_SERVICENOW_TOKEN", token);
    let collector = common::build(
        "servicenow_changes",
        &format!(
            "base_url = \"{}\"\nauth = \"oauth\"\ntoken_env = \"EVIDENCE_AGENT_TEST_SERVICENOW_TOKEN\"",
            s.server.base
        ),
    );
    let snapshot = s.run(&*collector, None).await.unwrap();
    assert_eq!(ids(&common::items(&snapshot)), all_ids(3));
    for request in s.server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }
}

#[tokio::test]
async fn a_host_clock_ahead_of_the_instance_fails_the_run() {
    let s = start(3);
    s.db.lock().unwrap().clock_offset = -300;
    let collector = s.collector("");
    let err = s.run(&*collector, None).await.unwrap_err().to_string();
    assert!(err.contains("ahead of ServiceNow's"), "{err}");
}

#[test]
fn settings_errors_name_their_key() {
    // Every key, as config/agent.toml documents them, is accepted.
    let every_key = "base_url = \"https://acme.service-now.com\"\nauth = \"basic\"\n\
        username = \"svc.evidence\"\ntoken_env = \"SERVICENOW_PASSWORD\"\n\
        query = \"assignment_group=287ebd7da9fe198100f92cc8d1d2154e^type!=standard\"\n\
        environment_field = \"u_environment\"\nlinked_incidents = true\npage_size = 1000\n\
        since = \"2026-01-01\"";
    let collector = common::build("servicenow_changes", every_key);
    assert_eq!(collector.kind(), "servicenow_changes");

    let base = "base_url = \"https://acme.service-now.com/\"\nusername = \"u\"\n";
    for (settings, key) in [
        ("username = \"u\"\ntoken_env = \"T\"", "base_url"),
        (
            "base_url = \"ftp://acme\"\nusername = \"u\"\ntoken_env = \"T\"",
            "base_url",
        ),
        (
            &format!("{base}token_env = \"T\"\ntoken_file = \"/etc/t\""),
            "token_file",
        ),
        (
            &format!("{base}token_env = \"T\"\nquery = \"active=true^NQactive=false\""),
            "query",
        ),
        (
            &format!("{base}token_env = \"T\"\npage_size = 0"),
            "page_size",
        ),
        (
            &format!("{base}token_env = \"T\"\nsince = \"yesterday\""),
            "since",
        ),
        (
            &format!("{base}token_env = \"T\"\nenvironment_field = \"u env\""),
            "environment_field",
        ),
        (
            &format!("{base}token_env = \"T\"\nauth = \"token\""),
            "auth",
        ),
        (
            &format!("{base}token_env = \"T\"\nauth = \"oauth\""),
            "username",
        ),
        (
            "base_url = \"https://acme.service-now.com/\"\ntoken_env = \"T\"",
            "username",
        ),
        (
            &format!("{base}token_env = \"T\"\nprojects = [\"x\"]"),
            "projects",
        ),
    ] {
        let errors = collectors::registry::build("servicenow_changes", &common::table(settings))
            .expect_err(settings);
        assert!(
            errors.iter().any(|e| e.key.as_deref() == Some(key)),
            "{settings}: {errors:?}"
        );
    }
}
