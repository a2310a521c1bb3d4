//! Incremental runs: the cursor of one run makes the next read only what changed, stopping
//! at the first older pull request.

use crate::server::{at, merged_pull, Review};
use crate::{id, ids, Fixture, REPO, REPO_ID};
use serde_json::json;

/// The list requests by name (first pages) and by GitHub's links (later pages).
fn list_requests(fx: &Fixture) -> (usize, usize) {
    let first = fx
        .server
        .requests_to("/repos/octo-org/hello-world/pulls")
        .iter()
        .filter(|r| r.path.ends_with("/pulls"))
        .count();
    let later = fx
        .server
        .requests_to(&format!("/repositories/{REPO_ID}/pulls"))
        .iter()
        .filter(|r| r.path.ends_with("/pulls"))
        .count();
    (first, later)
}

#[tokio::test]
async fn a_second_run_takes_only_what_changed_since_the_first() {
    let fx = Fixture::with_merged(25);
    let collector = fx.collector("repos = [\"octo-org/hello-world\"]\npage_size = 10");
    let first = fx.run(collector.as_ref(), None).await.unwrap();
    assert_eq!(first.item_count, 25);
    let cursor = first.cursor.clone().unwrap();
    assert_eq!(
        cursor["repos"]["octo-org/hello-world"],
        json!({"since": "2026-03-01T04:17:00Z", "taken_at_since": [id(25)]})
    );

    // Two edited after the first run, and one new whose update time is the very second the
    // watermark holds (it was not there when the first run read that second).
    fx.gh.edit(REPO, 3, |p| {
        p.labels.push("hotfix".into());
        p.updated_at = at(300);
    });
    fx.gh.edit(REPO, 11, |p| {
        p.reviews.push(Review {
            id: 1_199,
            login: "auditor".into(),
            state: "APPROVED",
            submitted_at: at(290),
        });
        p.updated_at = at(290);
    });
    let mut late = merged_pull(26);
    late.created_at = at(200);
    late.merged_at = Some(at(256));
    late.closed_at = Some(at(256));
    late.updated_at = at(257);
    fx.gh.add_pull(REPO, late);
    fx.server.clear_requests();

    let second = fx.run(collector.as_ref(), Some(cursor)).await.unwrap();
    let mut expected = vec![id(3), id(11), id(26)];
    expected.sort();
    assert_eq!(ids(&second), expected);
    let items = crate::common::items(&second);
    let eleven = crate::common::find(&items, "change", &id(11));
    assert_eq!(eleven["approvers"], json!(["auditor", "reviewer2"]));
    let three = crate::common::find(&items, "change", &id(3));
    assert_eq!(three["details"]["labels"], json!(["change", "hotfix"]));
    assert_eq!(three["updated_at"], "2026-03-01T05:00:00Z");

    // One list page, sorted by update, newest first; no later page; reviews of the three.
    assert_eq!(list_requests(&fx), (1, 0));
    let list = &fx.server.requests_to("/repos/octo-org/hello-world/pulls")[0];
    assert_eq!(list.param("sort").as_deref(), Some("updated"));
    assert_eq!(list.param("direction").as_deref(), Some("desc"));
    assert_eq!(list.param("state").as_deref(), Some("closed"));
    assert_eq!(fx.reviewed_numbers(), [3, 11, 26]);
    assert_eq!(second.details["repos_stopped_at_watermark"], 1);
    assert_eq!(second.details["updated_from"], "2026-03-01T04:17:00Z");
    let cursor = second.cursor.clone().unwrap();
    assert_eq!(
        cursor["repos"]["octo-org/hello-world"],
        json!({"since": "2026-03-01T05:00:00Z", "taken_at_since": [id(3)]})
    );

    // Nothing changed since: an empty snapshot, the same cursor, one request.
    fx.server.clear_requests();
    let third = fx
        .run(collector.as_ref(), Some(cursor.clone()))
        .await
        .unwrap();
    assert_eq!(ids(&third), Vec::<String>::new());
    assert_eq!(third.cursor, Some(cursor));
    assert_eq!(fx.server.requests().len(), 1);
}

#[tokio::test]
async fn the_since_setting_bounds_a_first_run() {
    let fx = Fixture::with_merged(25);
    // Updated at minute n * 10 + 7: from 03:00 on, that is #18 to #25.
    let collector = fx.collector(
        "repos = [\"octo-org/hello-world\"]\npage_size = 10\nsince = 2026-03-01T03:00:00Z",
    );
    let snapshot = fx.run(collector.as_ref(), None).await.unwrap();
    let mut expected: Vec<String> = (18..=25).map(id).collect();
    expected.sort();
    assert_eq!(ids(&snapshot), expected);
    assert_eq!(list_requests(&fx), (1, 0), "stopped on the first page");
    assert_eq!(snapshot.details["updated_from"], "2026-03-01T03:00:00Z");
}
