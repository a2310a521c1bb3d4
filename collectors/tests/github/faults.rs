//! What goes wrong on the way: rate limits, server errors, broken bodies, bad credentials, and
//! a link to another server.

use crate::common::api_server::{epoch_now, Fault};
use crate::server::{primary_rate_limit, secondary_rate_limit, TOKEN};
use crate::{Fixture, REPO, REPO_ID};
use std::os::unix::fs::PermissionsExt;

const SETTINGS: &str = "repos = [\"octo-org/hello-world\"]\npage_size = 10";

#[tokio::test]
async fn rate_limits_are_waited_out_and_the_run_is_complete() {
    let fx = Fixture::with_merged(25);
    // The primary limit on the second list page (403, remaining 0, reset in a second), and on
    // a review list as 429; a secondary limit (403 + retry-after) on another.
    fx.server.inject(
        primary_rate_limit(403, epoch_now() + 1).on(&format!("/repositories/{REPO_ID}/pulls")),
    );
    fx.server.inject(
        primary_rate_limit(429, epoch_now() + 1).on("/repos/octo-org/hello-world/pulls/9/"),
    );
    fx.server
        .inject(secondary_rate_limit(1).on("/repos/octo-org/hello-world/pulls/5/"));
    let collector = fx.collector(SETTINGS);
    let snapshot = fx.run(collector.as_ref(), None).await.unwrap();
    assert_eq!(snapshot.item_count, 25);
    assert_eq!(fx.server.faults_left(), 0);
    assert_eq!(snapshot.details["http"]["rate_limit_waits"], 3);
    let second_page: Vec<_> = fx
        .server
        .requests_to(&format!("/repositories/{REPO_ID}/pulls"))
        .into_iter()
        .filter(|r| r.param("page").as_deref() == Some("2"))
        .collect();
    assert_eq!(second_page.len(), 2, "asked again after the reset");
    assert_eq!(fx.reviewed_numbers().len(), 27, "#5 and #9 asked twice");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fx = Fixture::with_merged(25);
    // The first list page fails twice (a proxy's HTML pages), one review list once.
    fx.server
        .inject(Fault::html(502, "502 Bad Gateway").on("/repos/octo-org/hello-world/pulls"));
    fx.server.inject(
        Fault::html(503, "503 Service Temporarily Unavailable")
            .on("/repos/octo-org/hello-world/pulls"),
    );
    fx.server
        .inject(Fault::html(502, "502 Bad Gateway").on("/repos/octo-org/hello-world/pulls/4/"));
    let collector = fx.collector(SETTINGS);
    let snapshot = fx.run(collector.as_ref(), None).await.unwrap();
    assert_eq!(snapshot.item_count, 25);
    assert_eq!(fx.server.faults_left(), 0);
    assert_eq!(snapshot.details["http"]["retries"], 3);
    // Five list requests (three pages, two retried), 26 review lists (one retried).
    assert_eq!(snapshot.details["http"]["requests"], 5 + 26);
}

#[tokio::test]
async fn a_broken_page_fails_the_run_and_the_next_one_loses_nothing() {
    let fx = Fixture::with_merged(25);
    let collector = fx.collector(SETTINGS);
    let cursor = fx.run(collector.as_ref(), None).await.unwrap().cursor;
    // Twelve updated: the next run needs two list pages.
    for n in 1..=12 {
        fx.gh.edit(REPO, n, |p| {
            p.updated_at = crate::server::at(1_000 + n as i64)
        });
    }
    let clean = fx.run(collector.as_ref(), cursor.clone()).await.unwrap();
    assert_eq!(clean.item_count, 12);

    fx.server
        .inject(Fault::truncated_json().on(&format!("/repositories/{REPO_ID}/pulls")));
    let err = fx
        .run(collector.as_ref(), cursor.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("/repositories/{REPO_ID}/pulls?")) && err.contains("page=2"),
        "{err}"
    );
    assert!(err.contains("not valid JSON"), "{err}");

    // The agent keeps the old cursor after a failure: the retry gives the clean result.
    let again = fx.run(collector.as_ref(), cursor).await.unwrap();
    assert_eq!(crate::common::bytes(&again), crate::common::bytes(&clean));
    assert_eq!(again.cursor, clean.cursor);
}

#[tokio::test]
async fn an_error_page_that_persists_fails_the_run_naming_the_url() {
    let fx = Fixture::with_merged(3);
    for _ in 0..5 {
        fx.server.inject(
            Fault::html(502, "502 Bad Gateway").on("/repos/octo-org/hello-world/pulls/2/reviews"),
        );
    }
    let collector = fx.collector(SETTINGS);
    let err = fx
        .run(collector.as_ref(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GET http://127.0.0.1:")
            && err.contains("/repos/octo-org/hello-world/pulls/2/reviews?per_page=10"),
        "{err}"
    );
    assert!(
        err.contains("HTTP 502 Bad Gateway: an HTML page titled \"502 Bad Gateway\""),
        "{err}"
    );
    assert!(err.contains("5 attempts"), "{err}");
}

#[tokio::test]
async fn bad_credentials_are_reported_without_the_token() {
    let fx = Fixture::with_merged(3);
    let wrong = "ghp_wrongwrongwrongwrongwrongwrongwrong1";
    std::fs::write(&fx.token_file, wrong).unwrap();
    let collector = fx.collector(SETTINGS);
    let err = fx
        .run(collector.as_ref(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("401 Unauthorized") && err.contains("\"Bad credentials\""),
        "{err}"
    );
    assert!(err.contains("/repos/octo-org/hello-world/pulls"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(TOKEN), "{err}");
    assert_eq!(fx.server.requests().len(), 1, "a 401 is not retried");

    std::fs::write(&fx.token_file, TOKEN).unwrap();
    std::fs::set_permissions(&fx.token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    fx.server.clear_requests();
    let err = fx
        .run(collector.as_ref(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("0644") && err.contains("refused"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert!(
        fx.server.requests().is_empty(),
        "no request without a safe token"
    );
}

#[tokio::test]
async fn a_next_link_to_another_server_is_refused() {
    let fx = Fixture::with_merged(3);
    fx.server.inject(
        Fault::json(200, "[]")
            .header(
                "link",
                "<http://127.0.0.2:9/repos/octo-org/hello-world/pulls?page=2>; rel=\"next\"",
            )
            .on("/repos/"),
    );
    let collector = fx.collector(SETTINGS);
    let err = fx
        .run(collector.as_ref(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("another server (http://127.0.0.2:9)"), "{err}");
    assert_eq!(fx.server.requests().len(), 1);
}

#[tokio::test]
async fn an_answer_of_another_shape_fails_the_run() {
    let fx = Fixture::with_merged(3);
    // A pull request without its `number`, as a proxy rewriting bodies might leave it.
    fx.server
        .inject(Fault::json(200, r#"[{"title": "x", "state": "closed"}]"#).on("/repos/"));
    let collector = fx.collector(SETTINGS);
    let err = fx
        .run(collector.as_ref(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/repos/octo-org/hello-world/pulls?")
            && err.contains("not the JSON expected (missing field `number`"),
        "{err}"
    );
}
