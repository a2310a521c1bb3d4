//! Jira Data Center: the offset search (`startAt`/`maxResults`/`total`), Bearer personal access
//! tokens, user names, server times with an offset, and a list that moves while it is paged.

use super::common;
use super::site::{t0, Flavor, Issue, ALANA, MIA, RAVI};
use super::{ids, searched_jql, Env};
use chrono::Duration;
use serde_json::json;

const SEARCH: &str = "/jira/rest/api/2/search";
const PAGES_OF_10: &str = "page_size = 10\n";

fn starts(env: &Env) -> Vec<String> {
    env.server
        .requests_to(SEARCH)
        .iter()
        .map(|r| r.param("startAt").unwrap())
        .collect()
}

#[tokio::test]
async fn offset_pages_overlap_by_one_and_times_become_utc() {
    let env = Env::start(Flavor::DataCenter, 25);
    let collector = env.collector(PAGES_OF_10);
    let first = env.run(collector.as_ref(), None).await.unwrap();

    // Each page after the first starts on the last issue already read, to see that the list
    // did not move; a short page is the last.
    assert_eq!(starts(&env), ["0", "9", "18"]);
    let request = &env.server.requests_to(SEARCH)[0];
    assert_eq!(
        request.header("authorization"),
        Some("Bearer ATATT3xFfGF0-test-token-0123456789")
    );
    assert_eq!(request.param("maxResults").as_deref(), Some("10"));
    assert_eq!(request.param("expand").as_deref(), Some("changelog"));
    assert_eq!(
        request.param("jql").as_deref(),
        Some("(project = OPS AND issuetype = Change) ORDER BY created ASC, key ASC")
    );
    assert!(request
        .param("fields")
        .unwrap()
        .split(',')
        .any(|f| f == "fixVersions"));
    assert!(
        env.server.requests_to("/jira/rest/api/2/issue").is_empty(),
        "Data Center returns whole changelogs with the search"
    );

    let items = common::items(&first);
    assert_eq!(items.len(), 25);
    let transition = |at: &str, who: super::site::Person, from: &str, to: &str| json!({"at": at, "by": who.name, "by_id": who.key, "from": from, "to": to});
    // The server writes times as 2026-03-02T07:00:00.000+0100.
    assert_eq!(
        common::find(&items, "change", "jira:OPS-10"),
        &json!({
            "type": "change",
            "id": "jira:OPS-10",
            "source": "jira",
            "title": "Deploy release 2026.03.10 to production",
            "url": format!("{}jira/browse/OPS-10", env.server.base),
            "author": "mia",
            "state": "Done",
            "created_at": "2026-03-02T06:00:00Z",
            "updated_at": "2026-03-02T08:34:00Z",
            "merged_at": null,
            "closed_at": "2026-03-02T08:00:00Z",
            "approvals": [{"by": "alana", "at": "2026-03-02T07:00:00Z"}],
            "approvers": ["alana"],
            "approved_at": "2026-03-02T07:00:00Z",
            "approved_before_merge": true,
            "linked_tickets": ["DEV-110", "INC-10"],
            "target": "2026.03",
            "details": {
                "issue_id": "10010",
                "project": "OPS",
                "issuetype": "Change",
                "priority": "High",
                "resolution": "Done",
                "author_id": MIA.key,
                "transitions": [
                    transition("2026-03-02T06:10:00Z", MIA, "Open", "Awaiting Approval"),
                    transition("2026-03-02T07:00:00Z", ALANA, "Awaiting Approval", "Approved"),
                    transition("2026-03-02T07:30:00Z", RAVI, "Approved", "In Progress"),
                    transition("2026-03-02T08:00:00Z", RAVI, "In Progress", "Done"),
                ],
            },
        })
    );

    // Incremental: one edit, one new issue.
    env.jira.with(|site| {
        site.issue(4)
            .edit(RAVI, t0() + Duration::days(4) + Duration::hours(9), None);
        site.issues.push(Issue::generate(26));
    });
    env.server.clear_requests();
    let second = env
        .run(collector.as_ref(), first.cursor.clone())
        .await
        .unwrap();
    assert_eq!(ids(&second), ["jira:OPS-26", "jira:OPS-4"]);
    let since = "(project = OPS AND issuetype = Change) AND updated >= \"2026-03-03 05:34\" \
                 ORDER BY created ASC, key ASC";
    assert_eq!(
        searched_jql(&env.server),
        [since, since],
        "11 issues, 2 pages"
    );
    // Read in the user's zone (UTC+1): updated since 04:34Z on the 3rd, OPS-17 to OPS-26
    // and the edited OPS-4.
    assert_eq!(second.details["issues_seen"], 11);
    assert_eq!(
        second.cursor.unwrap()["watermark"],
        json!({"since": "2026-03-05T09:00:00Z", "taken_at_since": ["OPS-4"]})
    );
}

#[tokio::test]
async fn an_issue_leaving_the_query_mid_run_makes_the_walk_start_again() {
    let env = Env::start(Flavor::DataCenter, 25);
    // After page 1, OPS-3 is moved out of the project: every later issue moves up one place,
    // and OPS-11 would have been skipped by plain offsets.
    env.jira.with(|site| site.hide_after_first_page = Some(3));
    let collector = env.collector(PAGES_OF_10);
    let snapshot = env.run(collector.as_ref(), None).await.unwrap();

    assert_eq!(starts(&env), ["0", "9", "0", "9", "18"]);
    assert_eq!(snapshot.details["restarts"], 1);
    let taken = ids(&snapshot);
    assert_eq!(taken.len(), 24);
    for n in (1..=25).filter(|n| *n != 3) {
        assert!(taken.contains(&format!("jira:OPS-{n}")), "OPS-{n} read");
    }
}
