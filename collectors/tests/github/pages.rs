//! Listings over several pages, the item recorded for one pull request, and the scopes:
//! filters, an organization, GitHub Enterprise Server.

use crate::server::{self, at, merged_pull, GitHub, Review, TOKEN};
use crate::{id, ids, Fixture, REPO, REPO_ID};
use serde_json::json;

fn review(id: u64, login: &str, state: &'static str, minute: i64) -> Review {
    Review {
        id,
        login: login.into(),
        state,
        submitted_at: at(minute),
    }
}

/// 25 merged pull requests, #7 with 16 reviews of every kind; #26 closed without merge, #27
/// open, #28 merged into a release branch.
fn repo_with_every_case() -> Fixture {
    let gh = GitHub::new("");
    let mut pulls: Vec<_> = (1..=25).map(merged_pull).collect();
    let seven = &mut pulls[6];
    seven.title = "SEC-7: rotate the signing keys".into();
    seven.head_ref = "feature/OPS-70-rotate".into();
    seven.body = Some("Part of CHG-1; see also SEC-7.\r\n\r\n- [x] tested".into());
    seven.labels = vec!["security".into(), "change".into()];
    seven.reviews = (701..=711)
        .map(|id| review(id, "reviewer1", "COMMENTED", 71))
        .collect();
    seven.reviews.extend([
        review(712, "carol", "CHANGES_REQUESTED", 72),
        review(713, "dave", "DISMISSED", 73),
        review(714, "erin", "APPROVED", 74),
        review(715, "carol", "APPROVED", 75),
        review(716, "frank", "APPROVED", 80),
    ]);
    let mut unmerged = merged_pull(26);
    unmerged.merged_at = None;
    let mut open = merged_pull(27);
    open.closed_at = None;
    open.merged_at = None;
    let mut release = merged_pull(28);
    release.base_ref = "release/1.x".into();
    pulls.extend([unmerged, open, release]);
    gh.add_repo(REPO, false, pulls);
    Fixture::start(gh, "")
}

#[tokio::test]
async fn every_page_is_read_and_a_change_is_recorded_field_by_field() {
    let fx = repo_with_every_case();
    let collector = fx.collector("repos = [\"octo-org/hello-world\"]\npage_size = 10");
    let snapshot = fx.run(collector.as_ref(), None).await.unwrap();

    let mut expected: Vec<String> = (1..=25).chain([28]).map(id).collect();
    expected.sort();
    assert_eq!(
        ids(&snapshot),
        expected,
        "merged ones only, whatever the branch"
    );

    // 27 closed pull requests, 10 a page: the first page by name, then GitHub's links.
    let first = fx.server.requests_to("/repos/octo-org/hello-world/pulls");
    let first: Vec<_> = first
        .iter()
        .filter(|r| r.path.ends_with("/pulls"))
        .collect();
    assert_eq!(first.len(), 1);
    for (name, value) in [
        ("state", "closed"),
        ("sort", "updated"),
        ("direction", "desc"),
        ("per_page", "10"),
    ] {
        assert_eq!(first[0].param(name).as_deref(), Some(value), "{name}");
    }
    let accepts: Vec<_> = first[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "accept")
        .collect();
    assert_eq!(
        accepts.len(),
        1,
        "GitHub's media type instead of the default"
    );
    assert_eq!(
        first[0].header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(first[0].header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(
        first[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let linked = fx
        .server
        .requests_to(&format!("/repositories/{REPO_ID}/pulls"));
    let pages: Vec<_> = linked
        .iter()
        .filter(|r| r.path.ends_with("/pulls"))
        .map(|r| r.param("page").unwrap())
        .collect();
    assert_eq!(pages, ["2", "3"]);
    // Reviews of every kept pull request, #7's over two pages.
    let mut reviewed: Vec<u64> = (1..=25).chain([7, 28]).collect();
    reviewed.sort_unstable();
    assert_eq!(fx.reviewed_numbers(), reviewed);

    let items = crate::common::items(&snapshot);
    let seven = crate::common::find(&items, "change", &id(7));
    let merge_sha = server::objects::sha(REPO_ID * 7_000_000 + 7);
    let head_sha = server::objects::sha(REPO_ID * 1_000_000 + 7);
    assert_eq!(
        *seven,
        json!({
            "type": "change",
            "id": "github:octo-org/hello-world#7",
            "source": "github",
            "title": "SEC-7: rotate the signing keys",
            "url": "https://github.com/octo-org/hello-world/pull/7",
            "author": "dev2",
            "state": "merged",
            "created_at": "2026-03-01T01:10:00Z",
            "updated_at": "2026-03-01T01:17:00Z",
            "merged_at": "2026-03-01T01:16:00Z",
            "closed_at": "2026-03-01T01:16:00Z",
            "approvals": [
                {"by": "erin", "at": "2026-03-01T01:14:00Z"},
                {"by": "carol", "at": "2026-03-01T01:15:00Z"},
                {"by": "frank", "at": "2026-03-01T01:20:00Z"},
            ],
            "approvers": ["carol", "erin", "frank"],
            "approved_at": "2026-03-01T01:15:00Z",
            "approved_before_merge": true,
            "linked_tickets": ["CHG-1", "OPS-70", "SEC-7"],
            "target": "main",
            "details": {
                "repository": "octo-org/hello-world",
                "number": 7,
                "merge_commit_sha": merge_sha,
                "head_ref": "feature/OPS-70-rotate",
                "head_sha": head_sha,
                "draft": false,
                "labels": ["change", "security"],
                "review_count": 16,
                "dismissed_reviews": 1,
                "changes_requested_by": [],
            },
        })
    );
    let release = crate::common::find(&items, "change", &id(28));
    assert_eq!(release["target"], "release/1.x");

    let details = &snapshot.details;
    assert_eq!(details["pulls_listed"], 27);
    assert_eq!(details["skipped_unmerged"], 1);
    assert_eq!(details["list_pages"], 3);
    assert_eq!(details["review_pages"], 27);
    assert_eq!(details["updated_to"], "2026-03-01T04:47:00Z");
    assert_eq!(details["http"]["requests"], 30);
    let cursor = snapshot.cursor.unwrap();
    assert_eq!(
        cursor,
        json!({"repos": {"octo-org/hello-world": {
            "since": "2026-03-01T04:47:00Z",
            "taken_at_since": [id(28)],
        }}})
    );
}

#[tokio::test]
async fn closed_unmerged_ones_and_base_branches_follow_the_settings() {
    let fx = repo_with_every_case();
    let collector = fx.collector(
        "repos = [\"octo-org/hello-world\"]\nbase_branches = [\"main\"]\n\
         include_unmerged_closed = true",
    );
    let snapshot = fx.run(collector.as_ref(), None).await.unwrap();
    let mut expected: Vec<String> = (1..=26).map(id).collect();
    expected.sort();
    assert_eq!(ids(&snapshot), expected);
    let items = crate::common::items(&snapshot);
    let unmerged = crate::common::find(&items, "change", &id(26));
    assert_eq!(unmerged["state"], "closed");
    assert_eq!(unmerged["merged_at"], json!(null));
    assert_eq!(unmerged["closed_at"], "2026-03-01T04:26:00Z");
    assert_eq!(
        unmerged["approved_before_merge"], true,
        "approved before it closed"
    );
    assert_eq!(snapshot.details["skipped_other_base"], 1);
    assert_eq!(
        snapshot.details["list_pages"], 1,
        "page_size is 100 by default"
    );
    assert_eq!(
        fx.server.requests()[0].param("per_page").as_deref(),
        Some("100")
    );
}

#[tokio::test]
async fn an_organization_on_github_enterprise_server() {
    let gh = GitHub::new("/api/v3");
    gh.add_repo(REPO, false, (1..=3).map(merged_pull).collect());
    gh.add_repo("legacy-tool", true, (1..=2).map(merged_pull).collect());
    gh.add_repo("docs", false, Vec::new());
    let fx = Fixture::start(gh, "/api/v3");
    // The org's repositories, and one of them named again with other capitals.
    let collector =
        fx.collector("org = \"octo-org\"\nrepos = [\"octo-org/Hello-World\"]\npage_size = 2");
    let snapshot = fx.run(collector.as_ref(), None).await.unwrap();

    let mut expected: Vec<String> = (1..=3)
        .map(id)
        .chain((1..=2).map(|n| format!("github:octo-org/legacy-tool#{n}")))
        .collect();
    expected.sort();
    assert_eq!(ids(&snapshot), expected);
    let items = crate::common::items(&snapshot);
    let web = fx.server.base.clone();
    assert_eq!(
        crate::common::find(&items, "change", &id(1))["url"],
        format!("{web}octo-org/hello-world/pull/1")
    );

    let repos = fx.server.requests_to("/api/v3/orgs/octo-org/repos");
    assert_eq!(repos.len(), 1);
    assert_eq!(repos[0].param("type").as_deref(), Some("all"));
    let more = fx.server.requests_to("/api/v3/organizations/");
    assert_eq!(more.len(), 1, "three repositories, two a page");
    assert_eq!(more[0].param("page").as_deref(), Some("2"));
    assert!(fx
        .server
        .requests()
        .iter()
        .all(|r| r.path.starts_with("/api/v3/")));
    assert_eq!(snapshot.details["repos"], 3);
    assert_eq!(snapshot.details["archived_repos"], 1);
    let cursor = snapshot.cursor.unwrap();
    let marks = cursor["repos"].as_object().unwrap();
    assert_eq!(
        marks.keys().collect::<Vec<_>>(),
        [
            "octo-org/docs",
            "octo-org/hello-world",
            "octo-org/legacy-tool"
        ]
    );
    assert_eq!(marks["octo-org/docs"]["since"], json!(null));
}
