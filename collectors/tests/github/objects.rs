//! The JSON objects of the GitHub double, with the full field sets of GitHub's documented
//! example responses (REST API version 2022-11-28): "simple-user", "repository" (as in a pull
//! request's `head.repo` / `base.repo` and the organization's repository list),
//! "pull-request-simple" (https://docs.github.com/en/rest/pulls/pulls#list-pull-requests) and
//! "pull-request-review" (https://docs.github.com/en/rest/pulls/reviews#list-reviews-for-a-pull-request).

use super::{Pull, Repo, Review, Roots, ORG, ORG_ID};
use serde_json::{json, Value};

/// A stable fake id for a login.
fn user_id(login: &str) -> u64 {
    login.bytes().fold(1_000u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }) % 90_000_000
}

/// A short hex string standing in for a commit SHA (40 hex digits).
pub fn sha(seed: u64) -> String {
    format!("{:040x}", seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// "simple-user": `type` is `User` or `Organization`.
pub fn user_json(roots: &Roots, login: &str, kind: &str) -> Value {
    let id = if kind == "Organization" {
        ORG_ID
    } else {
        user_id(login)
    };
    let api = format!("{}users/{login}", roots.api);
    json!({
        "login": login,
        "id": id,
        "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{}{login}", roots.web),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false
    })
}

/// The `*_url` fields of a "repository", relative to its API URL.
const REPO_URLS: [(&str, &str); 37] = [
    ("archive_url", "/{archive_format}{/ref}"),
    ("assignees_url", "/assignees{/user}"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("branches_url", "/branches{/branch}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("comments_url", "/comments{/number}"),
    ("commits_url", "/commits{/sha}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("contents_url", "/contents/{+path}"),
    ("contributors_url", "/contributors"),
    ("deployments_url", "/deployments"),
    ("downloads_url", "/downloads"),
    ("events_url", "/events"),
    ("forks_url", "/forks"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("hooks_url", "/hooks"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("issue_events_url", "/issues/events{/number}"),
    ("issues_url", "/issues{/number}"),
    ("keys_url", "/keys{/key_id}"),
    ("labels_url", "/labels{/name}"),
    ("languages_url", "/languages"),
    ("merges_url", "/merges"),
    ("milestones_url", "/milestones{/number}"),
    (
        "notifications_url",
        "/notifications{?since,all,participating}",
    ),
    ("pulls_url", "/pulls{/number}"),
    ("releases_url", "/releases{/id}"),
    ("stargazers_url", "/stargazers"),
    ("statuses_url", "/statuses/{sha}"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("tags_url", "/tags"),
    ("teams_url", "/teams"),
    ("trees_url", "/git/trees{/sha}"),
    ("url", ""),
];

/// "repository", owned by the organization.
pub fn repo_json(roots: &Roots, repo: &Repo) -> Value {
    let full = format!("{ORG}/{}", repo.name);
    let api = format!("{}repos/{full}", roots.api);
    let web = format!("{}{full}", roots.web);
    let mut object = json!({
        "id": repo.id,
        "node_id": format!("MDEwOlJlcG9zaXRvcnk{}", repo.id),
        "name": repo.name,
        "full_name": full,
        "owner": user_json(roots, ORG, "Organization"),
        "private": true,
        "html_url": web,
        "description": format!("The {} service", repo.name),
        "fork": false,
        "git_url": format!("git://github.com/{full}.git"),
        "ssh_url": format!("git@github.com:{full}.git"),
        "clone_url": format!("{web}.git"),
        "mirror_url": null,
        "svn_url": web,
        "homepage": null,
        "language": "Rust",
        "forks_count": 0,
        "stargazers_count": 12,
        "watchers_count": 12,
        "size": 1_840,
        "default_branch": "main",
        "open_issues_count": 3,
        "is_template": false,
        "topics": ["soc2", "backend"],
    });
    let more = json!({
        "has_issues": true,
        "has_projects": false,
        "has_wiki": false,
        "has_pages": false,
        "has_downloads": true,
        "has_discussions": false,
        "archived": repo.archived,
        "disabled": false,
        "visibility": "private",
        "pushed_at": "2026-02-27T19:06:43Z",
        "created_at": "2024-01-26T19:01:12Z",
        "updated_at": "2026-02-27T19:14:43Z",
        "permissions": {"admin": false, "maintain": false, "push": false, "triage": false, "pull": true},
        "allow_forking": false,
        "web_commit_signoff_required": false,
        "license": {
            "key": "mit",
            "name": "MIT License",
            "spdx_id": "MIT",
            "url": format!("{}licenses/mit", roots.api),
            "node_id": "MDc6TGljZW5zZW1pdA=="
        },
        "forks": 0,
        "open_issues": 3,
        "watchers": 12
    });
    if let (Some(object), Value::Object(more)) = (object.as_object_mut(), more) {
        object.extend(more);
        for (key, suffix) in REPO_URLS {
            object.insert(key.to_owned(), json!(format!("{api}{suffix}")));
        }
    }
    object
}

fn label_json(roots: &Roots, repo: &Repo, name: &str) -> Value {
    let id = 208_045_946 + user_id(name);
    json!({
        "id": id,
        "node_id": format!("MDU6TGFiZWw{id}"),
        "url": format!("{}repos/{ORG}/{}/labels/{name}", roots.api, repo.name),
        "name": name,
        "description": format!("{name} label"),
        "color": "f29513",
        "default": false
    })
}

/// "pull-request-simple", as the list endpoint gives it.
pub fn pull_json(roots: &Roots, repo: &Repo, pull: &Pull) -> Value {
    let full = format!("{ORG}/{}", repo.name);
    let api = format!("{}repos/{full}", roots.api);
    let n = pull.number;
    let html = format!("{}{full}/pull/{n}", roots.web);
    let head_sha = sha(repo.id * 1_000_000 + n);
    let base_sha = sha(repo.id);
    let branch = |git_ref: &str, sha: &str| {
        json!({
            "label": format!("{ORG}:{git_ref}"),
            "ref": git_ref,
            "sha": sha,
            "user": user_json(roots, ORG, "Organization"),
            "repo": repo_json(roots, repo),
        })
    };
    let link = |href: String| json!({ "href": href });
    let links = json!({
        "self": link(format!("{api}/pulls/{n}")),
        "html": link(html.clone()),
        "issue": link(format!("{api}/issues/{n}")),
        "comments": link(format!("{api}/issues/{n}/comments")),
        "review_comments": link(format!("{api}/pulls/{n}/comments")),
        "review_comment": link(format!("{api}/pulls/comments{{/number}}")),
        "commits": link(format!("{api}/pulls/{n}/commits")),
        "statuses": link(format!("{api}/statuses/{head_sha}")),
    });
    let mut object = json!({
        "url": format!("{api}/pulls/{n}"),
        "id": repo.id * 100_000 + n,
        "node_id": format!("MDExOlB1bGxSZXF1ZXN0{}", repo.id * 100_000 + n),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{n}"),
        "commits_url": format!("{api}/pulls/{n}/commits"),
        "review_comments_url": format!("{api}/pulls/{n}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{n}/comments"),
        "statuses_url": format!("{api}/statuses/{head_sha}"),
        "number": n,
        "state": if pull.closed_at.is_some() { "closed" } else { "open" },
        "locked": false,
        "title": pull.title,
        "user": user_json(roots, &pull.author, "User"),
        "body": pull.body,
    });
    let more = json!({
        "labels": pull.labels.iter().map(|l| label_json(roots, repo, l)).collect::<Vec<_>>(),
        "milestone": null,
        "active_lock_reason": null,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": pull.merged_at,
        "merge_commit_sha": pull.merged_at.as_ref().map(|_| sha(repo.id * 7_000_000 + n)),
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": branch(&pull.head_ref, &head_sha),
        "base": branch(&pull.base_ref, &base_sha),
        "_links": links,
        "author_association": "MEMBER",
        "auto_merge": null,
        "draft": pull.draft
    });
    if let (Some(object), Value::Object(more)) = (object.as_object_mut(), more) {
        object.extend(more);
    }
    object
}

/// "pull-request-review".
pub fn review_json(roots: &Roots, repo: &Repo, pull: &Pull, review: &Review) -> Value {
    let full = format!("{ORG}/{}", repo.name);
    let html = format!(
        "{}{full}/pull/{}#pullrequestreview-{}",
        roots.web, pull.number, review.id
    );
    let pull_url = format!("{}repos/{full}/pulls/{}", roots.api, pull.number);
    json!({
        "id": review.id,
        "node_id": format!("PRR_kwDOAE{}", review.id),
        "user": user_json(roots, &review.login, "User"),
        "body": if review.state == "APPROVED" { "LGTM" } else { "Please have a look at the error handling." },
        "state": review.state,
        "html_url": html,
        "pull_request_url": pull_url,
        "author_association": "MEMBER",
        "_links": {
            "html": {"href": html},
            "pull_request": {"href": pull_url}
        },
        "submitted_at": review.submitted_at,
        "commit_id": sha(repo.id * 1_000_000 + pull.number)
    })
}
