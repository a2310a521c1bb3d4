//! Jira Cloud: the enhanced search paged by `nextPageToken`, changelogs the search cut short,
//! incremental runs, and every way a run can fail.

use super::common::{self, api_server::Fault};
use super::site::{t0, Flavor, Issue, ALANA, MIA, RAVI};
use super::{ids, searched_jql, write_secret, Env};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

const TARGET: &str = "page_size = 10\ntarget_field = \"customfield_10050\"\n";
const SEARCH: &str = "/rest/api/3/search/jql";
const BASE_ORDER: &str = "(project = OPS AND issuetype = Change) ORDER BY created ASC, key ASC";

fn bodies(env: &Env) -> Vec<Value> {
    env.server
        .requests_to(SEARCH)
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// Two issues changed and one created after the first run.
fn change_site(env: &Env) {
    env.jira.with(|site| {
        let at = t0() + Duration::days(4) + Duration::hours(9);
        site.issue(4).edit(RAVI, at, None);
        site.issue(17)
            .edit(ALANA, at + Duration::minutes(30), Some("Closed"));
        site.issues.push(Issue::generate(26));
    });
}

#[tokio::test]
async fn every_page_is_read_and_an_issue_is_recorded_field_by_field() {
    let env = Env::start(Flavor::Cloud, 25);
    let collector = env.collector(TARGET);
    let snapshot = env.run(collector.as_ref(), None).await.unwrap();

    let bodies = bodies(&env);
    assert_eq!(bodies.len(), 3, "25 issues in pages of 10");
    assert_eq!(bodies[0]["jql"], BASE_ORDER, "a first run takes everything");
    assert_eq!(bodies[0]["expand"], "changelog");
    assert_eq!(bodies[0]["maxResults"], 10);
    assert!(bodies[0].get("nextPageToken").is_none());
    assert!(bodies[1]["nextPageToken"].is_string() && bodies[2]["nextPageToken"].is_string());
    let fields = bodies[0]["fields"].as_array().unwrap();
    for field in [
        "summary",
        "status",
        "resolutiondate",
        "issuelinks",
        "customfield_10050",
    ] {
        assert!(fields.contains(&json!(field)), "{field} asked for");
    }
    let auth = env.server.requests_to(SEARCH)[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    assert!(auth.starts_with("Basic "), "{auth}");

    // Issues 5, 10, 15, 20, 25 have 33-34 histories: the search returned 20, so their
    // changelogs were read from the changelog endpoint, 10 per page.
    let changelog = env.server.requests_to("/rest/api/3/issue/");
    assert_eq!(changelog.len(), 20);
    let starts: Vec<String> = changelog
        .iter()
        .filter(|r| r.path == "/rest/api/3/issue/OPS-10/changelog")
        .map(|r| r.param("startAt").unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(sorted, ["0", "10", "20", "30"]);

    let items = common::items(&snapshot);
    assert_eq!(items.len(), 25);
    let base = &env.server.base;
    let transition = |at: &str, who: super::site::Person, from: &str, to: &str| json!({"at": at, "by": who.display, "by_id": who.account_id, "from": from, "to": to});
    assert_eq!(
        common::find(&items, "change", "jira:OPS-10"),
        &json!({
            "type": "change",
            "id": "jira:OPS-10",
            "source": "jira",
            "title": "Deploy release 2026.03.10 to production",
            "url": format!("{base}browse/OPS-10"),
            "author": "Mia Krystof",
            "state": "Done",
            "created_at": "2026-03-02T06:00:00Z",
            "updated_at": "2026-03-02T08:34:00Z",
            "merged_at": null,
            "closed_at": "2026-03-02T08:00:00Z",
            // Only in the part of the changelog the search left out.
            "approvals": [{"by": "Alana Grant", "at": "2026-03-02T07:00:00Z"}],
            "approvers": ["Alana Grant"],
            "approved_at": "2026-03-02T07:00:00Z",
            "approved_before_merge": true,
            "linked_tickets": ["DEV-110", "INC-10"],
            "target": "production",
            "details": {
                "issue_id": "10010",
                "project": "OPS",
                "issuetype": "Change",
                "priority": "High",
                "resolution": "Done",
                "author_id": MIA.account_id,
                "transitions": [
                    transition("2026-03-02T06:10:00Z", MIA, "Open", "Awaiting Approval"),
                    transition("2026-03-02T07:00:00Z", ALANA, "Awaiting Approval", "Approved"),
                    transition("2026-03-02T07:30:00Z", RAVI, "Approved", "In Progress"),
                    transition("2026-03-02T08:00:00Z", RAVI, "In Progress", "Done"),
                ],
            },
        })
    );
    // An emergency change never approved, and one still in progress.
    let emergency = common::find(&items, "change", "jira:OPS-3");
    assert_eq!(emergency["approvals"], json!([]));
    assert_eq!(emergency["approved_before_merge"], false);
    let open = common::find(&items, "change", "jira:OPS-14");
    assert_eq!(open["state"], "In Progress");
    assert_eq!(open["closed_at"], Value::Null);
    assert_eq!(open["approved_before_merge"], Value::Null);
    assert_eq!(open["approvers"], json!(["Alana Grant"]));

    assert_eq!(
        snapshot.cursor,
        Some(json!({
            "jql": "project = OPS AND issuetype = Change",
            "watermark": {"since": "2026-03-04T05:34:00Z", "taken_at_since": ["OPS-25"]},
            "settling": {},
        }))
    );
    assert_eq!(snapshot.details["pages"], 3);
    assert_eq!(snapshot.details["changelogs_fetched"], 5);
    assert_eq!(snapshot.details["http"]["requests"], 23);
}

#[tokio::test]
async fn a_second_run_takes_only_what_changed_since_the_watermark() {
    let env = Env::start(Flavor::Cloud, 25);
    let collector = env.collector(TARGET);
    let first = env.run(collector.as_ref(), None).await.unwrap();
    change_site(&env);
    env.server.clear_requests();

    let second = env
        .run(collector.as_ref(), first.cursor.clone())
        .await
        .unwrap();
    assert_eq!(ids(&second), ["jira:OPS-17", "jira:OPS-26", "jira:OPS-4"]);
    // The watermark (2026-03-04T05:34Z) less a day, in JQL's minute format. The server reads
    // it in its user's zone (UTC−8), so it returns the issues updated since 13:34Z on the
    // 3rd: OPS-20 to OPS-26 and the two edited ones. Those already taken are dropped.
    assert_eq!(
        searched_jql(&env.server),
        [
            "(project = OPS AND issuetype = Change) AND updated >= \"2026-03-03 05:34\" \
          ORDER BY created ASC, key ASC"
        ]
    );
    assert_eq!(second.details["issues_seen"], 9);
    assert_eq!(
        env.server.requests_to("/rest/api/3/issue/").len(),
        0,
        "no changelog is fetched for issues not taken"
    );
    let items = common::items(&second);
    let closed = common::find(&items, "change", "jira:OPS-17");
    assert_eq!(closed["state"], "Closed");
    assert_eq!(closed["updated_at"], "2026-03-05T09:30:00Z");
    assert_eq!(
        closed["closed_at"], "2026-03-03T05:00:00Z",
        "the resolution date"
    );
    assert_eq!(
        common::find(&items, "change", "jira:OPS-4")["updated_at"],
        "2026-03-05T09:00:00Z"
    );
    let cursor = second.cursor.clone().unwrap();
    assert_eq!(
        cursor["watermark"],
        json!({"since": "2026-03-05T09:30:00Z", "taken_at_since": ["OPS-17"]})
    );

    // Nothing changed: an empty snapshot with the same cursor.
    let third = env
        .run(collector.as_ref(), Some(cursor.clone()))
        .await
        .unwrap();
    assert_eq!(third.item_count, 0);
    assert_eq!(third.cursor, Some(cursor));
}

#[tokio::test]
async fn an_issue_updated_minutes_ago_settles_before_the_watermark_passes_it() {
    let env = Env::start(Flavor::Cloud, 12);
    let just_now = Utc::now() - Duration::minutes(2);
    env.jira
        .with(|site| site.issue(5).edit(RAVI, just_now, None));
    let collector = env.collector(TARGET);
    let first = env.run(collector.as_ref(), None).await.unwrap();
    assert_eq!(first.item_count, 12);
    // The search may not show yet what else changed at that time: the watermark stays at
    // the last issue older than the cutoff, and OPS-5 is remembered with its time.
    let cursor = first.cursor.clone().unwrap();
    let at = just_now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(cursor["settling"], json!({ "OPS-5": at }));
    assert_eq!(cursor["watermark"]["since"], "2026-03-02T14:00:00Z");

    let second = env
        .run(collector.as_ref(), Some(cursor.clone()))
        .await
        .unwrap();
    assert_eq!(second.item_count, 0, "OPS-5 is not taken twice");
    assert_eq!(second.cursor, Some(cursor));
}

#[tokio::test]
async fn a_rate_limit_mid_run_is_waited_out() {
    let env = Env::start(Flavor::Cloud, 25);
    // https://developer.atlassian.com/cloud/jira/platform/rate-limiting/ : 429 with
    // Retry-After (seconds) and X-RateLimit-Reset (ISO 8601), on page 2 and on a changelog.
    let reset = (Utc::now() + Duration::seconds(1))
        .format("%Y-%m-%dT%H:%MZ")
        .to_string();
    let limited = || {
        Fault::json(
            429,
            r#"{"errorMessages":["Rate limit exceeded."],"errors":{}}"#,
        )
        .header("Retry-After", "1")
        .header("X-RateLimit-Limit", "100")
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset", &reset)
        .header("RateLimit-Reason", "jira-burst-based")
    };
    env.jira.fail_at(10, limited());
    env.server
        .inject(limited().on("/rest/api/3/issue/OPS-15/changelog"));
    let collector = env.collector(TARGET);
    let snapshot = env.run(collector.as_ref(), None).await.unwrap();
    assert_eq!(snapshot.item_count, 25);
    assert_eq!(env.server.faults_left(), 0);
    assert_eq!(
        env.server.requests_to(SEARCH).len(),
        4,
        "page 2 asked twice"
    );
    assert_eq!(snapshot.details["http"]["rate_limit_waits"], 2);
    let items = common::items(&snapshot);
    let emergency = common::find(&items, "change", "jira:OPS-15");
    assert_eq!(
        emergency["details"]["transitions"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the whole changelog"
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_change_nothing() {
    let env = Env::start(Flavor::Cloud, 25);
    let collector = env.collector(TARGET);
    let clean = env.run(collector.as_ref(), None).await.unwrap();

    env.server
        .inject(Fault::html(503, "503 Service Temporarily Unavailable").on(SEARCH));
    env.jira.fail_at(10, Fault::html(502, "502 Bad Gateway"));
    let retried = env.run(collector.as_ref(), None).await.unwrap();
    assert_eq!(retried.details["http"]["retries"], 2);
    assert_eq!(common::bytes(&retried), common::bytes(&clean));
    assert_eq!(retried.cursor, clean.cursor);
}

#[tokio::test]
async fn a_broken_page_fails_the_run_and_the_next_run_is_as_if_it_never_happened() {
    let env = Env::start(Flavor::Cloud, 25);
    let small_pages = "page_size = 4\ntarget_field = \"customfield_10050\"\n";
    let collector = env.collector(small_pages);
    let first = env.run(collector.as_ref(), None).await.unwrap();
    change_site(&env);

    // Page 2 of the incremental run is cut off mid-JSON.
    env.jira.fail_at(4, Fault::truncated_json());
    let err = env
        .run(collector.as_ref(), first.cursor.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "POST {}rest/api/3/search/jql: HTTP 200, but",
            env.server.base
        )) && err.contains("not valid JSON"),
        "{err}"
    );

    // The agent keeps the old cursor; the next run gives what the failed one should have.
    let retried = env
        .run(collector.as_ref(), first.cursor.clone())
        .await
        .unwrap();
    assert_eq!(ids(&retried), ["jira:OPS-17", "jira:OPS-26", "jira:OPS-4"]);
    let fresh = env.collector(small_pages);
    let never_failed = env.run(fresh.as_ref(), first.cursor.clone()).await.unwrap();
    assert_eq!(common::bytes(&retried), common::bytes(&never_failed));
    assert_eq!(retried.cursor, never_failed.cursor);

    // An HTML error page that does not go away.
    for _ in 0..5 {
        env.jira.fail_at(0, Fault::html(502, "502 Bad Gateway"));
    }
    let err = env
        .run(collector.as_ref(), first.cursor.clone())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "POST {}rest/api/3/search/jql: HTTP 502 Bad Gateway: an HTML page titled \
             \"502 Bad Gateway\" (5 attempts)",
            env.server.base
        )
    );
}

#[tokio::test]
async fn a_refused_token_is_reported_in_jiras_words_and_never_shown() {
    let env = Env::start(Flavor::Cloud, 3);
    let wrong = "ATATT3xFfGF0-revoked-token-999";
    write_secret(&env.token_file, wrong, 0o600);
    let collector = env.collector(TARGET);
    let err = env
        .run(collector.as_ref(), None)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "POST {}rest/api/3/search/jql: HTTP 401 Unauthorized: \"Client must be \
             authenticated to access this resource.\"",
            env.server.base
        )
    );
    assert!(!err.contains(wrong));
    assert_eq!(env.server.requests().len(), 1, "a 401 is not retried");

    write_secret(&env.token_file, super::TOKEN, 0o644);
    let err = env
        .run(collector.as_ref(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mode 0644") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains(super::TOKEN), "{err}");
    assert_eq!(
        env.server.requests().len(),
        1,
        "nothing sent without a safe token"
    );
}

#[test]
fn settings_errors_name_their_key() {
    let keys = |text: &str| -> Vec<Option<String>> {
        match collectors::registry::build("jira_issues", &common::table(text)) {
            Ok(_) => panic!("accepted: {text}"),
            Err(errors) => errors.into_iter().map(|e| e.key).collect(),
        }
    };
    let site = "base_url = \"https://acme.atlassian.net\"\nemail = \"bot@acme.example\"\n";
    assert_eq!(
        keys(&format!("{site}token_env = \"JIRA_TOKEN\"")),
        [Some("jql".into())]
    );
    assert_eq!(
        keys(&format!(
            "{site}jql = \"project = OPS\"\ntoken_env = \"JIRA_TOKEN\"\ntoken_file = \"/etc/t\""
        )),
        [Some("token_file".into())]
    );
    assert_eq!(
        keys("base_url = \"acme.atlassian.net\"\nemail = \"b@a\"\njql = \"project = OPS\"\ntoken_env = \"T\""),
        [Some("base_url".into())]
    );
    assert_eq!(
        keys(
            "base_url = \"https://acme.atlassian.net\"\njql = \"project = OPS\"\ntoken_env = \"T\""
        ),
        [Some("email".into())]
    );
    assert_eq!(
        keys(&format!(
            "{site}jql = \"project = OPS ORDER BY created DESC\"\ntoken_env = \"T\""
        )),
        [Some("jql".into())]
    );
    assert_eq!(
        keys(&format!(
            "{site}jql = \"project = OPS\"\ntoken_env = \"T\"\ndeployment = \"server\""
        )),
        [Some("deployment".into())]
    );
}
