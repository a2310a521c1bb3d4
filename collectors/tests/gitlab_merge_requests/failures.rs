//! What goes wrong: GitLab's rate limit, 5xx pages, bodies that are not JSON, a missing
//! merge request, bad tokens and bad settings. A failed run is an `Err`, never a partial
//! snapshot, and the next run from the old cursor loses nothing.

use super::common::api_server::{epoch_now, Fault};
use super::{ids, payments_state, Bench, API_APPROVALS, API_LISTING, KIND};
use std::os::unix::fs::PermissionsExt;

const PROJECT: &str = "projects = [\"acme/payments/api\"]\npage_size = 10";

/// GitLab.com's answer past a rate limit
/// (https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers):
/// 429, Rack::Attack's plain-text body, `RateLimit-*` headers with the reset as epoch seconds
/// and as an HTTP date, and `Retry-After`.
fn rate_limited() -> Fault {
    let reset = epoch_now() + 1;
    let reset_time = chrono::DateTime::from_timestamp(reset as i64, 0)
        .unwrap()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    Fault {
        path_prefix: None,
        status: 429,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: "Retry later\n".into(),
    }
    .header("ratelimit-name", "throttle_authenticated_api")
    .header("ratelimit-limit", "2000")
    .header("ratelimit-observed", "2001")
    .header("ratelimit-remaining", "0")
    .header("ratelimit-reset", &reset.to_string())
    .header("ratelimit-resettime", &reset_time)
    .header("retry-after", "1")
}

#[tokio::test]
async fn a_rate_limit_mid_way_is_waited_out() {
    let bench = Bench::start("", payments_state(25));
    let approvals_13 = format!("{API_APPROVALS}13/approvals");
    bench.server.inject(rate_limited().on(&approvals_13));
    let collector = bench.collector(PROJECT);
    let snapshot = bench.run(&*collector, None).await.unwrap();
    assert_eq!(super::common::items(&snapshot).len(), 25);
    assert_eq!(bench.server.faults_left(), 0);
    assert_eq!(bench.server.requests_to(&approvals_13).len(), 2);
    assert_eq!(snapshot.details["http"]["rate_limit_waits"], 1);
}

#[tokio::test]
async fn a_bad_gateway_then_a_maintenance_page_are_retried() {
    let bench = Bench::start("", payments_state(25));
    bench
        .server
        .inject(Fault::html(502, "502 Bad Gateway").on(API_LISTING));
    bench
        .server
        .inject(Fault::html(503, "503 Service Unavailable").on(API_LISTING));
    let collector = bench.collector(PROJECT);
    let snapshot = bench.run(&*collector, None).await.unwrap();
    assert_eq!(super::common::items(&snapshot).len(), 25);
    assert_eq!(snapshot.details["http"]["retries"], 2);
    assert_eq!(bench.server.requests_to(API_LISTING).len(), 3 + 2);
}

#[tokio::test]
async fn broken_json_on_page_two_fails_the_run_and_the_next_run_loses_nothing() {
    let bench = Bench::start("", payments_state(25));
    let collector = bench.collector(PROJECT);
    let first = bench.run(&*collector, None).await.unwrap();
    let old_cursor = first.cursor.clone();

    // Twelve merge requests change (two pages), and page 2 comes back cut off.
    let changed: Vec<u64> = (1..=12).collect();
    bench.edit(|state| {
        for mr in state.mrs.iter_mut().filter(|mr| changed.contains(&mr.iid)) {
            mr.updated_at += chrono::Duration::days(7);
        }
        state.broken_page = Some(2);
    });
    let err = bench
        .run(&*collector, old_cursor.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("GET http://127.0.0.1:"), "{err}");
    assert!(err.contains(&format!("{API_LISTING}?")), "{err}");
    assert!(err.contains("page=2"), "{err}");
    assert!(
        err.contains("HTTP 200, but the body is not valid JSON"),
        "{err}"
    );

    // The agent kept the old cursor: the next run takes every change, as if page 2 had
    // never failed.
    bench.edit(|state| state.broken_page = None);
    let retry = bench.run(&*collector, old_cursor).await.unwrap();
    let mut expected: Vec<String> = changed
        .iter()
        .map(|n| format!("gitlab:acme/payments/api!{n}"))
        .collect();
    expected.sort();
    assert_eq!(ids(&super::common::items(&retry)), expected);
    assert_eq!(
        retry.cursor.unwrap()["projects"]["acme/payments/api"]["since"],
        "2026-03-08T21:00:10Z"
    );
}

#[tokio::test]
async fn a_bad_gateway_that_persists_fails_naming_the_url() {
    let bench = Bench::start("", payments_state(3));
    for _ in 0..5 {
        bench
            .server
            .inject(Fault::html(502, "502 Bad Gateway").on(API_LISTING));
    }
    let collector = bench.collector(PROJECT);
    let err = bench.run(&*collector, None).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "{API_LISTING}?state=merged&scope=all&order_by=updated_at"
        )),
        "{err}"
    );
    assert!(
        err.ends_with(
            ": HTTP 502 Bad Gateway: an HTML page titled \"502 Bad Gateway\" (5 attempts)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn approvals_of_a_merge_request_that_vanished_fail_the_run() {
    let bench = Bench::start("", payments_state(25));
    let approvals_17 = format!("{API_APPROVALS}17/approvals");
    bench
        .server
        .inject(Fault::json(404, r#"{"message":"404 Not found"}"#).on(&approvals_17));
    let collector = bench.collector(PROJECT);
    let err = bench.run(&*collector, None).await.unwrap_err().to_string();
    assert!(err.contains(&approvals_17), "{err}");
    assert!(
        err.ends_with("HTTP 404 Not Found: \"404 Not found\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_token_fails_with_gitlabs_message_and_without_the_token() {
    let bench = Bench::start("", payments_state(3));
    let wrong = "glpat-WRONGwrongWRONGwrong";
    std::fs::write(&bench.token_file, wrong).unwrap();
    let collector = bench.collector(PROJECT);
    let err = bench.run(&*collector, None).await.unwrap_err().to_string();
    assert!(err.contains(API_LISTING), "{err}");
    assert!(
        err.ends_with("HTTP 401 Unauthorized: \"401 Unauthorized\""),
        "{err}"
    );
    assert!(
        !err.contains(wrong) && !err.contains(super::fake::TOKEN),
        "{err}"
    );
    assert_eq!(bench.server.requests().len(), 1, "a 401 is not retried");
}

#[tokio::test]
async fn a_token_file_others_can_read_or_a_missing_variable_fails_before_any_request() {
    let bench = Bench::start("", payments_state(3));
    std::fs::set_permissions(&bench.token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let collector = bench.collector(PROJECT);
    let err = bench.run(&*collector, None).await.unwrap_err().to_string();
    assert!(
        err.contains("mode 0644") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains(super::fake::TOKEN), "{err}");

    let unset = "EVIDENCE_AGENT_TEST_GITLAB_TOKEN_UNSET";
    let settings = format!(
        "base_url = {:?}\ntoken_env = {unset:?}\n{PROJECT}",
        bench.base_url()
    );
    let collector = super::common::build(KIND, &settings);
    let err = bench.run(&*collector, None).await.unwrap_err().to_string();
    assert!(err.contains(unset), "{err}");
    assert!(bench.server.requests().is_empty());
}

fn error_keys(settings: &str) -> Vec<Option<String>> {
    match collectors::registry::build(KIND, &super::common::table(settings)) {
        Ok(_) => panic!("accepted: {settings}"),
        Err(errors) => errors.into_iter().map(|e| e.key).collect(),
    }
}

#[test]
fn settings_errors_name_their_key() {
    let key = |k: &str| vec![Some(k.to_owned())];
    let token = "token_env = \"GITLAB_TOKEN\"";
    assert_eq!(error_keys(token), key("projects"), "no project nor group");
    assert_eq!(
        error_keys("projects = [\"g/p\"]\ntoken_env = \"T\"\ntoken_file = \"/etc/t\""),
        key("token_file")
    );
    assert_eq!(
        error_keys(&format!(
            "projects = [\"g/p\"]\n{token}\nbase_url = \"gitlab.example.com\""
        )),
        key("base_url")
    );
    assert_eq!(
        error_keys(&format!(
            "projects = [\"g/p\"]\n{token}\nbase_url = \"https://gitlab.example.com/api/v4\""
        )),
        key("base_url")
    );
    assert_eq!(
        error_keys(&format!("projects = [\"g/p\", \"/p\", \"g/p\"]\n{token}")),
        vec![Some("projects".to_owned()); 2]
    );
    assert_eq!(
        error_keys(&format!("groups = [\"g\"]\n{token}\npage_size = 101")),
        key("page_size")
    );
    assert_eq!(
        error_keys(&format!("groups = [\"g\"]\n{token}\nsince = \"March\"")),
        key("since")
    );
    assert_eq!(
        error_keys(&format!("groups = [\"g\"]\n{token}\ntoken_kind = \"job\"")),
        key("token_kind")
    );
    assert_eq!(
        error_keys(&format!("groups = [\"g\"]\n{token}\nrepos = [\"x\"]")),
        key("repos")
    );
    // Every problem at once, not the first one.
    assert_eq!(
        error_keys("base_url = \"ftp://x\"\npage_size = 0"),
        vec![
            Some("base_url".to_owned()),
            Some("projects".to_owned()),
            Some("page_size".to_owned()),
            None,
        ]
    );
}
