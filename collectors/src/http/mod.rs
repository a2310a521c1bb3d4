//! What the collectors of remote APIs share: one HTTPS client, secrets, and requests that
//! survive rate limits and transient failures.
//!
//! - [`HttpClient`] is reqwest over rustls with the system's root certificates, plus an optional
//!   CA bundle (`ca_file`) for self-hosted servers. Proxies come from the standard environment
//!   variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`), which reqwest honours.
//! - [`SecretSource`] / [`Secret`]: tokens from an environment variable or a file of mode 0600,
//!   read at each run, never printed.
//! - [`Api`] sends one request and returns the parsed JSON of a success. It waits out rate
//!   limits as the vendor's headers say ([`retry`]), retries transient failures (5xx, timeouts,
//!   dropped connections) with backoff, and turns everything else into a [`CollectError`] that
//!   names the method, URL, status and the vendor's message, and never a header.
//!
//! Every wait is bounded by the run's deadline: when the wait would outlast it, the run fails
//! at once and says until when the vendor asked to wait.

mod body;
mod retry;
mod secret;

pub use body::describe as describe_body;
pub use secret::{Secret, SecretSource};

use crate::{CollectError, SettingError};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// Attempts for one request that keeps failing transiently (5xx, timeouts).
const MAX_ATTEMPTS: u32 = 5;
/// Rate-limit waits for one request before giving up (each bounded by the deadline too).
const MAX_RATE_LIMIT_WAITS: u32 = 20;
/// Longest a single request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response body accepted; API pages are far smaller.
const MAX_BODY_BYTES: usize = 64 << 20;

/// An HTTPS client for one collector: built once, its connections reused across runs.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client trusting the system roots and, when given, the PEM certificates in `ca_file`.
    /// An error names the `ca_file` setting.
    pub fn new(ca_file: Option<&Path>) -> Result<HttpClient, SettingError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("evidence-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .https_only(false);
        if let Some(path) = ca_file {
            let bad = |why: String| SettingError::new(Some("ca_file"), why);
            let pem = std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("{}: not PEM certificates: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(bad(format!("{}: holds no certificate", path.display())));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| SettingError::new(None, format!("cannot set up the HTTPS client: {e}")))?;
        Ok(HttpClient { client })
    }
}

/// How requests prove who they are.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>` (GitHub, GitLab, Jira Data Center, OAuth tokens).
    Bearer(Secret),
    /// `Authorization: Basic` (Jira Cloud e-mail + API token, ServiceNow user + password).
    Basic { user: String, password: Secret },
    /// A vendor header holding the token (GitLab's `PRIVATE-TOKEN`).
    Header { name: &'static str, token: Secret },
}

/// A base URL setting: absolute http(s), with a trailing `/` so that joining a relative path
/// keeps its own path (self-hosted servers often live under `/gitlab/` or `/jira/`).
pub fn base_url(key: &str, text: &str) -> Result<Url, SettingError> {
    let bad = |why: &str| SettingError::new(Some(key), format!("{text:?}: {why}"));
    let mut url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("must be an https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not hold credentials; use the token settings"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A successful answer, its body parsed as `T` (any JSON by default).
#[derive(Debug)]
pub struct JsonResponse<T = Value> {
    pub url: Url,
    pub headers: HeaderMap,
    pub body: T,
}

impl<T> JsonResponse<T> {
    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The `rel="next"` target of the `Link` header (RFC 8288), as GitHub and GitLab paginate.
    pub fn next_link(&self) -> Option<Url> {
        let link = self.header("link")?;
        link.split(',').find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                self.url.join(target).ok()
            } else {
                None
            }
        })
    }
}

/// Counts of what a run's requests met, for the snapshot's details.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limit_waits: AtomicU64,
}

impl Stats {
    /// `{"requests", "retries", "rate_limit_waits"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "retries": self.retries.load(Ordering::Relaxed),
            "rate_limit_waits": self.rate_limit_waits.load(Ordering::Relaxed),
        })
    }
}

/// Requests of one run: the client, the credentials and the run's deadline. Cheap to clone
/// (the client's connection pool and the counters are shared), so a run's concurrent tasks
/// each take a clone and [`Api::stats`] counts the requests of them all.
#[derive(Debug, Clone)]
pub struct Api {
    client: HttpClient,
    auth: Option<Auth>,
    deadline: Option<Instant>,
    extra_headers: Vec<(&'static str, &'static str)>,
    stats: Arc<Stats>,
}

impl Api {
    pub fn new(client: &HttpClient, auth: Option<Auth>, deadline: Option<Instant>) -> Self {
        Api {
            client: client.clone(),
            auth,
            deadline,
            extra_headers: Vec::new(),
            stats: Arc::new(Stats::default()),
        }
    }

    /// What the requests of this `Api` and all its clones met so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A header sent with every request (an API version header, or an `Accept` that replaces
    /// the default `application/json`).
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.extra_headers.push((name, value));
        self
    }

    /// `GET url`, parsed as JSON.
    pub async fn get(&self, url: &Url) -> Result<JsonResponse, CollectError> {
        self.send(Method::GET, url, None).await
    }

    /// `GET url`, parsed straight into `T`: for large pages, an order of magnitude faster than
    /// building a [`Value`] first, since the fields `T` does not name are skipped. A body that
    /// is JSON of another shape is an error saying what did not fit.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<JsonResponse<T>, CollectError> {
        self.send(Method::GET, url, None).await
    }

    /// `POST url` with a JSON body (Jira's search), parsed as JSON.
    pub async fn post(&self, url: &Url, body: &Value) -> Result<JsonResponse, CollectError> {
        self.send(Method::POST, url, Some(body)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        json: Option<&Value>,
    ) -> Result<JsonResponse<T>, CollectError> {
        let what = format!("{method} {}", shown(url));
        let mut failures = 0u32;
        let mut rate_limit_waits = 0u32;
        loop {
            crate::check_deadline(self.deadline)?;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let request = self.request(method.clone(), url, json)?;
            let response = match self.client.client.execute(request).await {
                Ok(response) => response,
                Err(err) => {
                    failures += 1;
                    let why = transport_error(&err);
                    if is_permanent(&err) {
                        return Err(CollectError::Other(format!("{what}: {why}")));
                    }
                    if failures >= MAX_ATTEMPTS {
                        return Err(CollectError::Other(format!(
                            "{what}: {why} ({failures} attempts)"
                        )));
                    }
                    self.pause(&what, &why, retry::backoff(failures - 1), "retrying")
                        .await?;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_body(response)
                .await
                .map_err(|why| CollectError::Other(format!("{what}: {why}")))?;
            tracing::debug!(%method, url = %shown(url), status = status.as_u16(), "http");
            if status.is_success() {
                let body = serde_json::from_slice(&body).map_err(|err| {
                    let why = if serde_json::from_slice::<IgnoredAny>(&body).is_ok() {
                        format!("the body is not the JSON expected ({err})")
                    } else {
                        body::not_json(&body, content_type.as_deref(), &err)
                    };
                    CollectError::Other(format!("{what}: HTTP {}, but {why}", status.as_u16()))
                })?;
                return Ok(JsonResponse {
                    url: url.clone(),
                    headers,
                    body,
                });
            }
            let failed = || {
                format!(
                    "HTTP {}: {}",
                    status_text(status),
                    body::describe(&body, content_type.as_deref())
                )
            };
            match retry::verdict(status, &headers, &body, SystemTime::now()) {
                retry::Retry::No => {
                    return Err(CollectError::Other(format!("{what}: {}", failed())))
                }
                retry::Retry::RateLimited(wait) => {
                    rate_limit_waits += 1;
                    if rate_limit_waits > MAX_RATE_LIMIT_WAITS {
                        return Err(CollectError::Other(format!(
                            "{what}: still rate limited after {MAX_RATE_LIMIT_WAITS} waits: {}",
                            failed()
                        )));
                    }
                    self.stats.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
                    self.pause(&what, &failed(), wait, "rate limited").await?;
                }
                retry::Retry::Transient(after) => {
                    failures += 1;
                    if failures >= MAX_ATTEMPTS {
                        return Err(CollectError::Other(format!(
                            "{what}: {} ({failures} attempts)",
                            failed()
                        )));
                    }
                    let wait = after.unwrap_or_else(|| retry::backoff(failures - 1));
                    self.pause(&what, &failed(), wait, "retrying").await?;
                }
            }
        }
    }

    fn request(
        &self,
        method: Method,
        url: &Url,
        json: Option<&Value>,
    ) -> Result<reqwest::Request, CollectError> {
        let mut builder = self.client.client.request(method, url.clone());
        // A vendor's own media type (GitHub's `application/vnd.github+json`) replaces the
        // default rather than being sent beside it.
        if !self
            .extra_headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("accept"))
        {
            builder = builder.header("accept", "application/json");
        }
        for (name, value) in &self.extra_headers {
            builder = builder.header(*name, *value);
        }
        builder = match &self.auth {
            None => builder,
            Some(Auth::Bearer(token)) => builder.bearer_auth(token.expose()),
            Some(Auth::Basic { user, password }) => {
                builder.basic_auth(user, Some(password.expose()))
            }
            Some(Auth::Header { name, token }) => {
                let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                    CollectError::Other(format!(
                        "the token for the {name} header holds characters a header cannot"
                    ))
                })?;
                value.set_sensitive(true);
                builder.header(HeaderName::from_static(name), value)
            }
        };
        if let Some(json) = json {
            let bytes = serde_json::to_vec(json)
                .map_err(|e| CollectError::Other(format!("cannot encode a request: {e}")))?;
            builder = builder
                .header("content-type", "application/json")
                .body(bytes);
        }
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            builder = builder.timeout(left.min(REQUEST_TIMEOUT).max(Duration::from_millis(1)));
        }
        builder
            .build()
            .map_err(|e| CollectError::Other(format!("cannot build a request: {e}")))
    }

    /// Sleep `wait` before the next attempt, unless the deadline comes first.
    async fn pause(
        &self,
        what: &str,
        why: &str,
        wait: Duration,
        doing: &str,
    ) -> Result<(), CollectError> {
        if let Some(deadline) = self.deadline {
            if Instant::now() + wait >= deadline {
                let until = chrono::Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                return Err(CollectError::Other(format!(
                    "{what}: {why}; {doing} would mean waiting until {}, after this run's \
                     timeout",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
        }
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{what}: {why}; {doing} in {:.1}s", wait.as_secs_f64());
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// The URL as shown in logs and errors: without userinfo (base URLs cannot hold any, but a
/// `next` link comes from the server).
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// A transport failure in a few words, with its causes (reqwest's own Display is terse).
fn transport_error(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the connection failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Failures that trying again cannot mend: a failed TLS handshake (a certificate the client does
/// not trust, no common protocol; rustls errors reach us inside I/O errors), a redirect loop, a
/// request that cannot be built.
fn is_permanent(err: &reqwest::Error) -> bool {
    if err.is_builder() || err.is_redirect() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        // An I/O error's `source` skips the error it wraps, so unwrap those by hand.
        let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(cause);
        while let Some(error) = inner {
            if error.is::<rustls::Error>() {
                return true;
            }
            inner = error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|e| e as &(dyn std::error::Error + 'static));
        }
        source = cause.source();
    }
    false
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the body: {}", transport_error(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!(
                "the body is over the limit of {MAX_BODY_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_end_in_a_slash_and_hold_no_credentials() {
        let url = base_url("base_url", "https://gitlab.example.com/gitlab").unwrap();
        assert_eq!(url.as_str(), "https://gitlab.example.com/gitlab/");
        assert_eq!(
            url.join("api/v4/projects").unwrap().as_str(),
            "https://gitlab.example.com/gitlab/api/v4/projects"
        );
        assert!(base_url("base_url", "https://u:p@example.com").is_err());
        assert!(base_url("base_url", "ftp://example.com").is_err());
        assert!(base_url("base_url", "example.com").is_err());
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/repositories/1/pulls?page=3>; rel=\"next\", \
                 <https://api.github.com/repositories/1/pulls?page=9>; rel=\"last\"",
            ),
        );
        let response = JsonResponse {
            url: Url::parse("https://api.github.com/repos/o/r/pulls?page=2").unwrap(),
            headers,
            body: Value::Null,
        };
        assert_eq!(
            response.next_link().unwrap().as_str(),
            "https://api.github.com/repositories/1/pulls?page=3"
        );
        let last_page = JsonResponse {
            headers: HeaderMap::new(),
            ..response
        };
        assert_eq!(last_page.next_link(), None);
    }
}
