//! One scope's listing of merged merge requests, newest update first, down to the watermark.
//!
//! Endpoints: <https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests> and
//! <https://docs.gitlab.com/api/merge_requests/#list-group-merge-requests>. Pagination:
//! <https://docs.gitlab.com/api/rest/#pagination> (offset pagination; these endpoints have no
//! keyset pagination): the `Link` header's `rel="next"` when present, else `x-next-page`,
//! which is empty on the last page.

use super::item::MergeRequest;
use super::Scope;
use crate::change::Watermark;
use crate::http::{Api, JsonResponse};
use crate::CollectError;
use serde_json::Value;
use std::collections::BTreeSet;
use url::Url;

/// What to list.
pub(super) struct Listing<'a> {
    pub base: &'a Url,
    pub scope: &'a Scope,
    pub page_size: u32,
    pub target_branches: &'a BTreeSet<String>,
}

/// What a listing found.
#[derive(Debug)]
pub(super) struct Listed {
    /// Merge requests new since the watermark (and into a wanted branch), as listed.
    pub merge_requests: Vec<MergeRequest>,
    /// The watermark after taking them.
    pub mark: Watermark,
    pub pages: u32,
    /// Merge requests on the pages read, including those already taken.
    pub listed: u32,
    /// Whether paging stopped at a merge request older than the watermark.
    pub stopped_early: bool,
}

impl Listing<'_> {
    /// Page through the listing. `mark` is the scope's stored watermark (or the first-run
    /// bound): merge requests it already holds are skipped, and paging stops at the first
    /// one updated before it (the server's `updated_after` filter should already have left
    /// those out).
    pub async fn run(&self, api: &Api, mark: &Watermark) -> Result<Listed, CollectError> {
        let mut listed = Listed {
            merge_requests: Vec::new(),
            mark: mark.clone(),
            pages: 0,
            listed: 0,
            stopped_early: false,
        };
        let mut next = Some(self.first_url(mark)?);
        while let Some(url) = next.take() {
            let page = api.get(&url).await?;
            listed.pages += 1;
            let after = next_page(&page, self.base)?;
            let elements = match page.body {
                Value::Array(elements) => elements,
                other => {
                    return Err(CollectError::Other(format!(
                        "GET {url}: expected a list of merge requests, got {}",
                        json_kind(&other)
                    )))
                }
            };
            for element in elements {
                let mr = MergeRequest::from_json(element, self.base)
                    .map_err(|why| CollectError::Other(format!("GET {url}: {why}")))?;
                listed.listed += 1;
                if mark.is_older(&mr.updated_at) {
                    listed.stopped_early = true;
                    continue;
                }
                if !mark.is_new(&mr.id, &mr.updated_at) {
                    continue;
                }
                // Taken even when its branch is not wanted: it was looked at, and the next
                // run need not look again.
                listed.mark.take(&mr.id, &mr.updated_at);
                if self.target_branches.is_empty()
                    || self.target_branches.contains(mr.target_branch())
                {
                    listed.merge_requests.push(mr);
                }
            }
            if !listed.stopped_early {
                next = after;
            }
        }
        Ok(listed)
    }

    fn first_url(&self, mark: &Watermark) -> Result<Url, CollectError> {
        let (kind, path) = match self.scope {
            Scope::Project(path) => ("projects", path),
            Scope::Group(path) => ("groups", path),
        };
        let relative = format!("api/v4/{kind}/{}/merge_requests", encode_path(path));
        let mut url = self.base.join(&relative).map_err(|e| {
            CollectError::Other(format!(
                "cannot make the URL of {relative} on {}: {e}",
                self.base
            ))
        })?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("state", "merged")
                .append_pair("scope", "all")
                .append_pair("order_by", "updated_at")
                .append_pair("sort", "desc")
                .append_pair("per_page", &self.page_size.to_string());
            if let Some(since) = &mark.since {
                query.append_pair("updated_after", since);
            }
            if let [branch] = self.target_branches.iter().collect::<Vec<_>>()[..] {
                query.append_pair("target_branch", branch);
            }
        }
        Ok(url)
    }
}

/// The next page of an offset-paginated answer, or `None` after the last. A next page on
/// another origin than `base` is refused: the token must not follow a link elsewhere.
pub(super) fn next_page<T>(
    page: &JsonResponse<T>,
    base: &Url,
) -> Result<Option<Url>, CollectError> {
    let next = match page.next_link() {
        Some(url) => Some(url),
        None => match page.header("x-next-page").map(str::trim) {
            None | Some("") => None,
            Some(number) => {
                let number: u32 = number.parse().map_err(|_| {
                    CollectError::Other(format!(
                        "GET {}: x-next-page {number:?} is not a page number",
                        page.url
                    ))
                })?;
                Some(with_page(&page.url, number))
            }
        },
    };
    match next {
        Some(url) if url.origin() != base.origin() => Err(CollectError::Other(format!(
            "GET {}: the next page is on another server ({}); refused to send the token there",
            page.url,
            url.origin().ascii_serialization()
        ))),
        Some(url) if url == page.url => Err(CollectError::Other(format!(
            "GET {}: the next page is this page again; GitLab's pagination is broken",
            page.url
        ))),
        next => Ok(next),
    }
}

/// `url` with its `page` parameter set to `number`.
fn with_page(url: &Url, number: u32) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut url = url.clone();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("page", &number.to_string());
    url
}

/// A namespaced path as one URL path segment: `group/project` → `group%2Fproject`
/// (<https://docs.gitlab.com/api/rest/#namespaced-paths>).
pub(super) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() * 3);
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn page(url: &str, headers: &[(&'static str, &'static str)]) -> JsonResponse {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        JsonResponse {
            url: Url::parse(url).unwrap(),
            headers: map,
            body: Value::Null,
        }
    }

    #[test]
    fn x_next_page_is_the_fallback_of_link() {
        let base = Url::parse("https://gitlab.com/").unwrap();
        let url =
            "https://gitlab.com/api/v4/groups/g/merge_requests?state=merged&page=2&per_page=3";
        let next = next_page(&page(url, &[("x-next-page", "3")]), &base).unwrap();
        assert_eq!(
            next.unwrap().as_str(),
            "https://gitlab.com/api/v4/groups/g/merge_requests?state=merged&per_page=3&page=3"
        );
        assert_eq!(
            next_page(&page(url, &[("x-next-page", "")]), &base).unwrap(),
            None
        );
        let link =
            "<https://gitlab.com/api/v4/groups/g/merge_requests?page=3&per_page=3>; rel=\"next\"";
        let next = next_page(&page(url, &[("link", link), ("x-next-page", "9")]), &base);
        assert!(next.unwrap().unwrap().as_str().contains("page=3&"));
    }

    #[test]
    fn a_next_page_elsewhere_or_the_same_page_is_refused() {
        let base = Url::parse("https://gitlab.com/").unwrap();
        let url = "https://gitlab.com/api/v4/projects/1/merge_requests?page=1";
        let elsewhere = next_page(
            &page(
                url,
                &[("link", "<https://evil.example/x?page=2>; rel=\"next\"")],
            ),
            &base,
        )
        .unwrap_err()
        .to_string();
        assert!(elsewhere.contains("https://evil.example"), "{elsewhere}");
        let again = next_page(&page(url, &[("x-next-page", "1")]), &base);
        assert!(again.is_err());
        assert!(next_page(&page(url, &[("x-next-page", "two")]), &base).is_err());
    }

    #[test]
    fn paths_become_one_segment() {
        assert_eq!(
            encode_path("my-group/sub.g/my_project"),
            "my-group%2Fsub.g%2Fmy_project"
        );
        assert_eq!(encode_path("a b/ü"), "a%20b%2F%C3%BC");
    }
}
