//! The `gitlab_merge_requests` collector against a fake GitLab REST API v4 on 127.0.0.1
//! (`fake.rs`): pagination, incremental runs, groups, a self-managed instance under a path,
//! approval times from the approvals API or from system notes; `failures.rs`: rate limits,
//! 5xx, broken bodies, auth and settings errors.

// serde_json's json! recurses once per field; GitLab's merge request object has many.
#![recursion_limit = "256"]

#[path = "../common/mod.rs"]
mod common;
mod failures;
mod fake;

use collectors::{CollectError, Collector, Snapshot};
use common::api_server::{ApiServer, Seen};
use fake::{merged, t0, Project, Shared, State, TOKEN};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const KIND: &str = "gitlab_merge_requests";
/// The listing of the main fixture project, as requested (the path URL-encoded).
const API_LISTING: &str = "/api/v4/projects/acme%2Fpayments%2Fapi/merge_requests";
/// The approvals requests of that project (by its numeric id, as the MR objects give it).
const API_APPROVALS: &str = "/api/v4/projects/11/merge_requests/";

/// A fake GitLab, a token file for it, and a spool directory.
pub struct Bench {
    pub server: ApiServer,
    pub state: Shared,
    pub dir: tempfile::TempDir,
    pub token_file: PathBuf,
    prefix: String,
}

impl Bench {
    /// GitLab served under `prefix` ("" or e.g. "/gitlab").
    pub fn start(prefix: &str, state: State) -> Bench {
        let state = Arc::new(Mutex::new(state));
        let server = ApiServer::start(fake::router(Arc::clone(&state), prefix));
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("gitlab-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        Bench {
            server,
            state,
            dir,
            token_file,
            prefix: prefix.to_owned(),
        }
    }

    /// The `base_url` setting, written without the trailing slash as a user would.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.server.base.trim_end_matches('/'), self.prefix)
    }

    /// Settings with `base_url` and `token_file` set, plus `extra`.
    pub fn settings(&self, extra: &str) -> String {
        format!(
            "base_url = {:?}\ntoken_file = {:?}\n{extra}",
            self.base_url(),
            self.token_file
        )
    }

    pub fn collector(&self, extra: &str) -> Box<dyn Collector> {
        common::build(KIND, &self.settings(extra))
    }

    pub async fn run(
        &self,
        collector: &dyn Collector,
        cursor: Option<Value>,
    ) -> Result<Snapshot, CollectError> {
        collector
            .collect(common::ctx_with_cursor(self.dir.path(), cursor))
            .await
    }

    pub fn edit(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }
}

pub fn payments() -> Project {
    Project {
        id: 11,
        path: "acme/payments/api".to_owned(),
    }
}

/// `count` merged merge requests in acme/payments/api, and one still open.
pub fn payments_state(count: u64) -> State {
    let project = payments();
    let mut mrs: Vec<_> = (1..=count).map(|n| merged(&project, n)).collect();
    let mut open = merged(&project, count + 50);
    open.state = "opened".to_owned();
    open.merged_at = None;
    open.merged_by = None;
    mrs.push(open);
    State {
        projects: vec![project],
        mrs,
        ..State::default()
    }
}

pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn pages(requests: &[Seen]) -> Vec<Option<String>> {
    requests.iter().map(|r| r.param("page")).collect()
}

/// The iids whose approvals were requested, sorted.
fn approvals_requested(server: &ApiServer, prefix: &str) -> Vec<u64> {
    let mut iids: Vec<u64> = server
        .requests_to(prefix)
        .iter()
        .filter_map(|r| r.path.strip_suffix("/approvals"))
        .filter_map(|p| p.rsplit('/').next()?.parse().ok())
        .collect();
    iids.sort();
    iids
}

#[tokio::test]
async fn pages_are_followed_and_each_merge_request_is_recorded_in_full() {
    let bench = Bench::start("", payments_state(25));
    let collector = bench.collector("projects = [\"acme/payments/api\"]\npage_size = 10");
    let snapshot = bench.run(&*collector, None).await.unwrap();
    let items = common::items(&snapshot);
    assert_eq!(items.len(), 25, "the open merge request is not taken");

    let listing = bench.server.requests_to(API_LISTING);
    assert_eq!(
        pages(&listing),
        [None, Some("2".to_owned()), Some("3".to_owned())]
    );
    for request in &listing {
        assert_eq!(request.param("state").as_deref(), Some("merged"));
        assert_eq!(request.param("order_by").as_deref(), Some("updated_at"));
        assert_eq!(request.param("sort").as_deref(), Some("desc"));
        assert_eq!(request.param("per_page").as_deref(), Some("10"));
        assert_eq!(
            request.param("updated_after"),
            None,
            "a first run takes all"
        );
    }
    for request in bench.server.requests() {
        assert_eq!(request.header("private-token"), Some(TOKEN));
        assert_eq!(request.header("authorization"), None);
    }
    assert_eq!(
        approvals_requested(&bench.server, API_APPROVALS),
        (1..=25).collect::<Vec<_>>()
    );
    assert!(bench
        .server
        .requests()
        .iter()
        .all(|r| !r.path.ends_with("/notes")));

    let web = &bench.server.base;
    let item = common::find(&items, "change", "gitlab:acme/payments/api!4");
    assert_eq!(
        *item,
        json!({
            "type": "change",
            "id": "gitlab:acme/payments/api!4",
            "source": "gitlab",
            "title": "OPS-104: tune connection pool #4",
            "url": format!("{web}acme/payments/api/-/merge_requests/4"),
            "author": "dana",
            "state": "merged",
            "created_at": "2026-03-01T12:00:00Z",
            "updated_at": "2026-03-01T13:00:10Z",
            "merged_at": "2026-03-01T13:00:00Z",
            "closed_at": null,
            "approvals": [
                {"by": "alice", "at": "2026-03-01T12:30:00Z"},
                {"by": "bob", "at": "2026-03-01T12:45:00Z"},
            ],
            "approvers": ["alice", "bob"],
            "approved_at": "2026-03-01T12:45:00Z",
            "approved_before_merge": true,
            "linked_tickets": ["OPS-104", "SEC-4"],
            "target": "main",
            "details": {
                "project_id": 11,
                "iid": 4,
                "source_branch": "feature/OPS-104-pool",
                "sha": format!("{:040x}", 11_000_004),
                "merge_commit_sha": format!("{:040x}", 22_000_004),
                "squash_commit_sha": null,
                "merged_by": "maintainer1",
                "labels": ["backend", "change::standard"],
                "approvals_required": 1,
                "approvals_left": 0,
                "approval_times_from_notes": false,
            },
        })
    );
    let unapproved = common::find(&items, "change", "gitlab:acme/payments/api!5");
    assert_eq!(unapproved["approvals"], json!([]));
    assert_eq!(unapproved["approved_at"], Value::Null);
    assert_eq!(unapproved["approved_before_merge"], false);
    assert_eq!(
        common::find(&items, "change", "gitlab:acme/payments/api!7")["target"],
        "release/1.x"
    );

    assert_eq!(
        snapshot.cursor,
        Some(json!({"projects": {"acme/payments/api": {
            "since": "2026-03-02T10:00:10Z",
            "taken_at_since": ["gitlab:acme/payments/api!25"],
        }}}))
    );
    assert_eq!(snapshot.details["merge_requests"], 25);
    assert_eq!(snapshot.details["scopes"][0]["pages"], 3);
    assert_eq!(snapshot.details["scopes"][0]["listed"], 25);
    assert_eq!(snapshot.details["http"]["requests"], 3 + 25);
}

#[tokio::test]
async fn a_second_run_takes_only_what_changed_since_the_cursor() {
    let bench = Bench::start("", payments_state(25));
    let collector = bench.collector("projects = [\"acme/payments/api\"]\npage_size = 10");
    let first = bench.run(&*collector, None).await.unwrap();
    let cursor = first.cursor.clone();

    let edited = |at: &str| at.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    bench.edit(|state| {
        for mr in state.mrs.iter_mut() {
            if mr.iid == 3 {
                mr.labels.push("audited".to_owned());
                mr.updated_at = edited("2026-03-05T09:00:00.250Z");
            }
            if mr.iid == 8 {
                mr.title = "OPS-108: tune connection pool (reverted in OPS-200)".to_owned();
                mr.updated_at = edited("2026-03-05T09:05:00.750Z");
            }
        }
        let added = merged(&payments(), 26);
        state.mrs.push(added);
    });
    bench.server.clear_requests();
    let second = bench.run(&*collector, cursor).await.unwrap();
    let items = common::items(&second);
    assert_eq!(
        ids(&items),
        [
            "gitlab:acme/payments/api!26",
            "gitlab:acme/payments/api!3",
            "gitlab:acme/payments/api!8",
        ]
    );
    let listing = bench.server.requests_to(API_LISTING);
    assert_eq!(listing.len(), 1, "one page holds what changed");
    assert_eq!(
        listing[0].param("updated_after").as_deref(),
        Some("2026-03-02T10:00:10Z"),
        "asked from the first run's watermark"
    );
    assert_eq!(
        approvals_requested(&bench.server, API_APPROVALS),
        [3, 8, 26]
    );
    assert_eq!(
        second.details["scopes"][0]["listed"], 4,
        "!25 listed again, skipped"
    );
    let three = common::find(&items, "change", "gitlab:acme/payments/api!3");
    assert_eq!(three["updated_at"], "2026-03-05T09:00:00Z");
    assert_eq!(
        three["details"]["labels"],
        json!(["backend", "change::standard", "audited"])
    );
    let eight = common::find(&items, "change", "gitlab:acme/payments/api!8");
    assert_eq!(
        eight["linked_tickets"],
        json!(["OPS-108", "OPS-200", "SEC-8"])
    );

    // Nothing changed since: an empty snapshot, the same cursor, no approvals read.
    bench.server.clear_requests();
    let third = bench.run(&*collector, second.cursor.clone()).await.unwrap();
    assert!(common::items(&third).is_empty());
    assert_eq!(third.cursor, second.cursor);
    let listing = bench.server.requests_to(API_LISTING);
    assert_eq!(
        listing[0].param("updated_after").as_deref(),
        Some("2026-03-05T09:05:00Z")
    );
    assert!(approvals_requested(&bench.server, API_APPROVALS).is_empty());
}

#[tokio::test]
async fn a_group_on_a_self_managed_instance_under_a_path() {
    let shop = Project {
        id: 12,
        path: "acme/web/shop".to_owned(),
    };
    let tools = Project {
        id: 13,
        path: "other/tools".to_owned(),
    };
    let mut mrs: Vec<_> = (1..=8).map(|n| merged(&payments(), n)).collect();
    mrs.extend((1..=4).map(|n| merged(&shop, n)));
    mrs.extend((1..=3).map(|n| merged(&tools, n)));
    let bench = Bench::start(
        "/gitlab",
        State {
            projects: vec![payments(), shop, tools],
            mrs,
            ..State::default()
        },
    );
    // The shop project is also listed on its own: its merge requests are recorded once.
    let collector = bench.collector(
        "groups = [\"acme\"]\nprojects = [\"acme/web/shop\"]\ntarget_branches = [\"main\"]\n\
         token_kind = \"oauth\"\npage_size = 4",
    );
    let snapshot = bench.run(&*collector, None).await.unwrap();
    let items = common::items(&snapshot);
    let mut expected: Vec<String> = (1..=8)
        .filter(|n| n % 7 != 0)
        .map(|n| format!("gitlab:acme/payments/api!{n}"))
        .chain((1..=4).map(|n| format!("gitlab:acme/web/shop!{n}")))
        .collect();
    expected.sort();
    assert_eq!(ids(&items), expected);
    assert!(items.iter().all(|i| i["target"] == "main"));
    let shop_one = common::find(&items, "change", "gitlab:acme/web/shop!1");
    assert_eq!(
        shop_one["url"],
        format!(
            "{}gitlab/acme/web/shop/-/merge_requests/1",
            bench.server.base
        )
    );

    let group = bench
        .server
        .requests_to("/gitlab/api/v4/groups/acme/merge_requests");
    assert_eq!(
        pages(&group),
        [None, Some("2".to_owned()), Some("3".to_owned())]
    );
    assert!(group
        .iter()
        .all(|r| r.param("target_branch").as_deref() == Some("main")));
    let project = bench
        .server
        .requests_to("/gitlab/api/v4/projects/acme%2Fweb%2Fshop/merge_requests");
    assert_eq!(project.len(), 1);
    let approvals: Vec<Seen> = bench
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/approvals"))
        .collect();
    assert_eq!(
        approvals.len(),
        11,
        "each merge request's approvals read once"
    );
    assert!(approvals
        .iter()
        .all(|r| r.path.starts_with("/gitlab/api/v4/projects/1")));
    for request in bench.server.requests() {
        assert_eq!(
            request.header("authorization").map(str::to_owned),
            Some(format!("Bearer {TOKEN}"))
        );
        assert_eq!(request.header("private-token"), None);
    }
    let cursor = snapshot.cursor.unwrap();
    assert_eq!(cursor["groups"]["acme"]["since"], "2026-03-01T17:00:10Z");
    assert_eq!(
        cursor["projects"]["acme/web/shop"]["since"],
        "2026-03-01T13:00:10Z"
    );
}

#[tokio::test]
async fn an_older_gitlab_gives_approval_times_through_system_notes() {
    let mut state = payments_state(12);
    state.legacy_approvals = true;
    state.drop_link_header = true;
    for mr in state.mrs.iter_mut() {
        let created = mr.created_at;
        let at = |minutes| created + chrono::Duration::minutes(minutes);
        if mr.iid == 4 {
            // alice withdrew her approval and gave it again.
            mr.extra_notes = vec![
                (
                    "alice".into(),
                    "unapproved this merge request".into(),
                    at(35),
                ),
                ("alice".into(), "approved this merge request".into(), at(50)),
            ];
        }
    }
    let bench = Bench::start("", state);
    let collector = bench.collector("projects = [\"acme/payments/api\"]\npage_size = 5");
    let snapshot = bench.run(&*collector, None).await.unwrap();
    let items = common::items(&snapshot);
    assert_eq!(items.len(), 12);

    let listing = bench.server.requests_to(API_LISTING);
    assert_eq!(
        pages(&listing),
        [None, Some("2".to_owned()), Some("3".to_owned())],
        "x-next-page followed without a Link header"
    );
    let four = common::find(&items, "change", "gitlab:acme/payments/api!4");
    assert_eq!(
        four["approvals"],
        json!([
            {"by": "bob", "at": "2026-03-01T12:45:00Z"},
            {"by": "alice", "at": "2026-03-01T12:50:00Z"},
        ])
    );
    assert_eq!(four["approved_at"], "2026-03-01T12:50:00Z");
    assert_eq!(four["approved_before_merge"], true);
    assert_eq!(four["details"]["approval_times_from_notes"], true);

    // Notes are read only for merge requests that have approvals without times.
    let notes: Vec<Seen> = bench
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/notes"))
        .collect();
    let approved = (1..=12u64).filter(|n| n % 5 != 0).count();
    assert_eq!(notes.len(), approved);
    assert!(notes
        .iter()
        .all(|r| r.param("sort").as_deref() == Some("asc")));
    assert_eq!(snapshot.details["approval_times_from_notes"], approved);
}

#[tokio::test]
async fn an_approval_without_a_time_anywhere_stays_without_one() {
    let mut state = payments_state(2);
    state.legacy_approvals = true;
    let approved = t0() + chrono::Duration::hours(1) + chrono::Duration::minutes(40);
    // An approval whose system note is gone (withdrawn notes, imported history): its time is
    // unknown and recorded as such.
    state.mrs[0].approvals.push(("erin".into(), approved));
    state.mrs[0].extra_notes = vec![(
        "erin".into(),
        "unapproved this merge request".into(),
        approved + chrono::Duration::minutes(1),
    )];
    let bench = Bench::start("", state);
    let collector = bench.collector("projects = [\"acme/payments/api\"]");
    let snapshot = bench.run(&*collector, None).await.unwrap();
    let items = common::items(&snapshot);
    let one = common::find(&items, "change", "gitlab:acme/payments/api!1");
    assert_eq!(
        one["approvals"],
        json!([
            {"by": "erin", "at": null},
            {"by": "alice", "at": "2026-03-01T09:30:00Z"},
        ])
    );
    assert_eq!(one["approvers"], json!(["alice", "erin"]));
    assert_eq!(one["approved_before_merge"], true);
}

#[tokio::test]
async fn the_since_setting_bounds_the_first_run() {
    let bench = Bench::start("", payments_state(10));
    let collector =
        bench.collector("projects = [\"acme/payments/api\"]\nsince = \"2026-03-01T14:00:00Z\"");
    let snapshot = bench.run(&*collector, None).await.unwrap();
    let mut expected: Vec<String> = (5..=10)
        .map(|n| format!("gitlab:acme/payments/api!{n}"))
        .collect();
    expected.sort();
    assert_eq!(ids(&common::items(&snapshot)), expected);
    let listing = bench.server.requests_to(API_LISTING);
    assert_eq!(
        listing[0].param("updated_after").as_deref(),
        Some("2026-03-01T14:00:00Z")
    );
    assert_eq!(
        listing[0].param("per_page").as_deref(),
        Some("100"),
        "the default"
    );
}
