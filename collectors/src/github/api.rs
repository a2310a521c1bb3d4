//! The GitHub REST requests of the collector: the documented response fields it reads, the
//! pages of a listing (`Link: <…>; rel="next"`), and the review lists fetched a few at a time.
//!
//! Every request carries `Accept: application/vnd.github+json` and
//! `X-GitHub-Api-Version: 2022-11-28`, as GitHub asks; rate limits, retries and error messages
//! are the shared [`crate::http::Api`]'s.

use super::item;
use crate::change::{utc_time, Watermark};
use crate::concurrent::each_bounded;
use crate::http::{Api, Auth, HttpClient};
use crate::CollectError;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use std::collections::HashSet;
use std::time::Instant;
use url::Url;

/// GitHub's JSON media type; `application/json` would do, this is what the docs ask for.
const MEDIA_TYPE: &str = "application/vnd.github+json";
/// The REST API version the fields read here are documented for.
const API_VERSION: &str = "2022-11-28";
/// Review lists in flight at once. GitHub's secondary limits allow 100 concurrent requests,
/// but ask integrations to stay well below; 8 keeps a run of thousands of pull requests short.
const REVIEW_CONCURRENCY: usize = 8;

/// A pull request as listed by `GET /repos/{owner}/{repo}/pulls` (the "pull-request-simple"
/// schema); only the fields recorded.
#[derive(Debug, Deserialize)]
pub(super) struct PullRequest {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub html_url: Option<String>,
    pub user: Option<User>,
    pub state: String,
    pub draft: Option<bool>,
    pub created_at: Option<String>,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    pub head: Branch,
    pub base: Branch,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct User {
    pub login: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Label {
    pub name: String,
}

/// `head` or `base` of a pull request.
#[derive(Debug, Deserialize)]
pub(super) struct Branch {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: Option<String>,
    /// `null` for the head of a pull request whose fork was deleted.
    pub repo: Option<RepoRef>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RepoRef {
    pub full_name: String,
}

/// A review as listed by `GET /repos/{owner}/{repo}/pulls/{n}/reviews`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Review {
    /// `null` in the schema; GitHub shows deleted accounts as `ghost`.
    pub user: Option<User>,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED` or `PENDING`.
    pub state: String,
    /// Absent for a pending review.
    pub submitted_at: Option<String>,
}

/// A repository as listed by `GET /orgs/{org}/repos` ("minimal-repository").
#[derive(Debug, Deserialize)]
pub(super) struct OrgRepo {
    pub full_name: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub disabled: bool,
}

impl PullRequest {
    /// `updated_at` as RFC 3339 UTC.
    pub fn updated_utc(&self, repo: &str) -> Result<String, CollectError> {
        utc_time(&self.updated_at).ok_or_else(|| {
            CollectError::Other(format!(
                "{repo}#{}: updated_at {:?} is not an RFC 3339 time",
                self.number, self.updated_at
            ))
        })
    }
}

/// What a run's requests share.
/// What every request of one run shares.
#[derive(Debug)]
pub(super) struct Session<'a> {
    /// Requests with GitHub's headers; its stats count every request of the run.
    pub api: Api,
    pub deadline: Option<Instant>,
    pub base_url: &'a Url,
    pub page_size: u32,
}

impl<'a> Session<'a> {
    pub fn new(
        client: &HttpClient,
        auth: Auth,
        deadline: Option<Instant>,
        base_url: &'a Url,
        page_size: u32,
    ) -> Session<'a> {
        let api = Api::new(client, Some(auth), deadline)
            .with_header("accept", MEDIA_TYPE)
            .with_header("x-github-api-version", API_VERSION);
        Session {
            api,
            deadline,
            base_url,
            page_size,
        }
    }
}

/// `base_url` + `path` + `query`.
fn endpoint(base: &Url, path: &str, query: &[(&str, &str)]) -> Result<Url, CollectError> {
    let mut url = base
        .join(path)
        .map_err(|e| CollectError::Other(format!("cannot make the URL of {path}: {e}")))?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// The pages of one listing, read one after the other.
struct Pages {
    next: Option<Url>,
    read: HashSet<String>,
    base: Url,
    count: u64,
}

impl Pages {
    fn new(first: Url, base: &Url) -> Pages {
        Pages {
            next: Some(first),
            read: HashSet::new(),
            base: base.clone(),
            count: 0,
        }
    }

    /// The next page's items, or `None` after the last page.
    async fn next<T: DeserializeOwned>(
        &mut self,
        api: &Api,
    ) -> Result<Option<Vec<T>>, CollectError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        self.read.insert(url.to_string());
        let response = api.get_as::<Vec<T>>(&url).await?;
        self.count += 1;
        let next = response.next_link();
        if let Some(next) = &next {
            // The token goes with every request: never to a server the settings did not name.
            if next.origin() != self.base.origin() {
                return Err(CollectError::Other(format!(
                    "GET {url}: the next page is on another server ({}); refused",
                    next.origin().ascii_serialization()
                )));
            }
            if self.read.contains(next.as_str()) {
                return Err(CollectError::Other(format!(
                    "GET {url}: the next page link leads back to a page already read ({next})"
                )));
            }
        }
        self.next = next;
        Ok(Some(response.body))
    }
}

/// The repositories of an organization.
pub(super) struct OrgListing {
    pub repos: Vec<OrgRepo>,
    pub pages: u64,
}

/// `GET /orgs/{org}/repos?type=all` (https://docs.github.com/en/rest/repos/repos#list-organization-repositories),
/// all pages. GitHub's default order (newest first) means a repository created while the
/// listing runs shifts later pages down, repeating one rather than hiding one.
pub(super) async fn org_repos(
    session: &Session<'_>,
    org: &str,
) -> Result<OrgListing, CollectError> {
    let per_page = session.page_size.to_string();
    let first = endpoint(
        session.base_url,
        &format!("orgs/{org}/repos"),
        &[("type", "all"), ("per_page", &per_page)],
    )?;
    let mut pages = Pages::new(first, session.base_url);
    let mut repos = Vec::new();
    while let Some(page) = pages.next::<OrgRepo>(&session.api).await? {
        repos.extend(page);
    }
    Ok(OrgListing {
        repos,
        pages: pages.count,
    })
}

/// The closed pull requests of one repository updated since a watermark.
pub(super) struct Listing {
    /// Newest first, each once, all new by the watermark.
    pub pulls: Vec<PullRequest>,
    pub pages: u64,
    /// Whether the listing stopped at an older pull request rather than at the last page.
    pub stopped_at_watermark: bool,
}

/// `GET /repos/{repo}/pulls?state=closed&sort=updated&direction=desc`
/// (https://docs.github.com/en/rest/pulls/pulls#list-pull-requests), page after page until a
/// pull request older than `mark`. A pull request updated while the listing runs moves to the
/// first page: if it was not read, its new `updated_at` is after every one read, so the next
/// run takes it.
pub(super) async fn changed_pulls(
    session: &Session<'_>,
    repo: &str,
    mark: &Watermark,
) -> Result<Listing, CollectError> {
    let per_page = session.page_size.to_string();
    let first = endpoint(
        session.base_url,
        &format!("repos/{repo}/pulls"),
        &[
            ("state", "closed"),
            ("sort", "updated"),
            ("direction", "desc"),
            ("per_page", &per_page),
        ],
    )?;
    let mut pages = Pages::new(first, session.base_url);
    let mut numbers = HashSet::new();
    let mut pulls = Vec::new();
    let mut stopped_at_watermark = false;
    'pages: while let Some(page) = pages.next::<PullRequest>(&session.api).await? {
        for pull in page {
            let updated = pull.updated_utc(repo)?;
            if mark.is_older(&updated) {
                stopped_at_watermark = true;
                break 'pages;
            }
            // A pull request met twice (pages shifted under an update) is kept as first met,
            // its newer state.
            if mark.is_new(&item::pull_id(repo, &pull), &updated) && numbers.insert(pull.number) {
                pulls.push(pull);
            }
        }
    }
    Ok(Listing {
        pulls,
        pages: pages.count,
        stopped_at_watermark,
    })
}

/// One pull request whose reviews are wanted.
pub(super) struct ReviewJob {
    pub repo: String,
    pub number: u64,
}

/// The reviews of each job, in the jobs' order.
pub(super) struct Reviews {
    pub lists: Vec<Vec<Review>>,
    pub pages: u64,
}

/// `GET /repos/{repo}/pulls/{n}/reviews` (https://docs.github.com/en/rest/pulls/reviews#list-reviews-for-a-pull-request),
/// all pages, for every job, [`REVIEW_CONCURRENCY`] at a time. The first failure fails the
/// whole.
pub(super) async fn reviews(
    session: &Session<'_>,
    jobs: Vec<ReviewJob>,
) -> Result<Reviews, CollectError> {
    let per_page = session.page_size.to_string();
    let listed = each_bounded(jobs, REVIEW_CONCURRENCY, session.deadline, |job| {
        let api = session.api.clone();
        let base = session.base_url.clone();
        let per_page = per_page.clone();
        async move {
            let first = endpoint(
                &base,
                &format!("repos/{}/pulls/{}/reviews", job.repo, job.number),
                &[("per_page", &per_page)],
            )?;
            let mut listing = Pages::new(first, &base);
            let mut list = Vec::new();
            while let Some(page) = listing.next::<Review>(&api).await? {
                list.extend(page);
            }
            Ok((list, listing.count))
        }
    })
    .await?;
    Ok(Reviews {
        pages: listed.iter().map(|(_, pages)| pages).sum(),
        lists: listed.into_iter().map(|(list, _)| list).collect(),
    })
}
