//! What the AWS collectors share: the connection settings and the SDK configuration built from
//! them, the mapping of SDK errors to [`CollectError`], bounded concurrency, and run facts.
//!
//! Kinds: [`iam`] (`aws_iam`: users, groups, roles, policies, access keys, MFA, console access,
//! the credential report) and [`s3_backup`] (`s3_bucket_backup_config`: versioning, lifecycle,
//! replication, Object Lock and default encryption of buckets).
//!
//! Connection settings, the same keys in both kinds:
//! - `region` (optional): the region requests are signed for. Default: the standard AWS chain's
//!   (`AWS_REGION`, the profile), else `us-east-1` (IAM is global and answers there).
//! - `endpoint_url` (optional): an `http(s)://host[:port]` endpoint instead of AWS's, for an
//!   S3-compatible store or a local test server (moto). No user or password in it.
//! - `profile` (optional): the named profile of `~/.aws/config` to take credentials and region
//!   from.
//! - `max_attempts` (default 5, 1 to 10): attempts per request, the first included, in the SDK's
//!   standard retry mode (exponential backoff with jitter on throttling, 5xx and network errors).
//!
//! Credentials come only from the standard AWS chain (environment, profile, web identity,
//! container or instance metadata), never from the TOML. Every request has a connect timeout
//! (5 s), a per-attempt timeout (30 s) and an overall timeout per operation (2 min).
//!
//! Guarantees: an error names the API operation, the resource and the service's error code and
//! message (or the transport failure); it never carries request headers, signatures or
//! credentials. Any failed request fails the whole run (no partial snapshot), except answers
//! that a kind documents as "not configured" or "not available".

pub mod iam;
pub mod s3_backup;

use crate::{CollectError, SettingError};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iam::primitives::{DateTime, DateTimeFormat};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt of a request may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one operation may take, all its attempts and backoff included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// The region used when neither the settings nor the AWS chain name one.
const FALLBACK_REGION: &str = "us-east-1";
/// Requests in flight at once per run: enough to overlap latency, few enough not to trip
/// IAM's account-wide request rate limits.
pub(crate) const CONCURRENCY: usize = 4;
/// Error texts from a service are cut to this many characters.
const MAX_MESSAGE: usize = 300;
/// Warnings recorded in a run's details (the agent replaces details over 32 KiB by a note).
const MAX_WARNINGS: usize = 50;

pub(crate) fn default_max_attempts() -> u32 {
    5
}

/// The connection part of a kind's settings (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    pub max_attempts: u32,
}

impl Connection {
    /// Every problem with the connection settings, each naming its key.
    pub fn validate(&self) -> Vec<SettingError> {
        let mut errors = Vec::new();
        if let Some(region) = &self.region {
            let valid = !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                errors.push(SettingError::new(
                    Some("region"),
                    format!("{region:?} is not a region name (like \"eu-west-1\")"),
                ));
            }
        }
        if let Some(url) = &self.endpoint_url {
            if let Err(problem) = check_endpoint_url(url) {
                errors.push(SettingError::new(Some("endpoint_url"), problem));
            }
        }
        if let Some(profile) = &self.profile {
            if profile.trim().is_empty() {
                errors.push(SettingError::new(Some("profile"), "is empty"));
            }
        }
        if !(1..=10).contains(&self.max_attempts) {
            errors.push(SettingError::new(
                Some("max_attempts"),
                format!("{} is not between 1 and 10", self.max_attempts),
            ));
        }
        errors
    }

    /// The SDK configuration: the standard chain for credentials (and region unless set),
    /// with our endpoint, retry and timeouts. Makes no request.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            );
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        if config.region().is_some() {
            config
        } else {
            config
                .into_builder()
                .region(Region::new(FALLBACK_REGION))
                .build()
        }
    }

    /// The facts about the connection that go into a run's details.
    pub fn details(&self, config: &SdkConfig) -> Value {
        json!({
            "region": config.region().map(|r| r.as_ref().to_owned()),
            "endpoint_url": self.endpoint_url,
            "profile": self.profile,
        })
    }
}

/// `http(s)://host[:port][/path]` without user information (credentials never go in the TOML).
fn check_endpoint_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} does not start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "must not contain a user or password (credentials come from the AWS chain)".to_owned(),
        );
    }
    if authority.is_empty() || authority.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} has no valid host"));
    }
    Ok(())
}

pub(crate) type HttpResponse = aws_sdk_iam::config::http::HttpResponse;

/// A failed AWS request as a [`CollectError`]: `AWS <operation> <resource>: <what happened>`.
pub(crate) fn sdk_error<E>(
    op: &str,
    resource: &str,
    err: &SdkError<E, HttpResponse>,
) -> CollectError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    CollectError::Other(format!("AWS {op} {resource}: {}", describe(err)))
}

/// The service's HTTP status, error code and message; for an answer that is no AWS error
/// document (an HTML page from a proxy), the start of its body; otherwise the transport
/// error chain. Request headers are never part of it.
fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let e = service.err();
            match e.code() {
                Some(code) => format!(
                    "HTTP {status} {}: {}",
                    one_line(code),
                    one_line(e.message().unwrap_or("(no message)"))
                ),
                None => {
                    let body = service
                        .raw()
                        .body()
                        .bytes()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    // An error document in another layout than the protocol's (some
                    // compatible services wrap `<Error>` differently): its code and message.
                    match (xml_text(&body, "Code"), xml_text(&body, "Message")) {
                        (Some(code), message) if status >= 300 => format!(
                            "HTTP {status} {}: {}",
                            one_line(&code),
                            one_line(message.as_deref().unwrap_or("(no message)"))
                        ),
                        // A HEAD request's error has no body to say more.
                        _ if body.trim().is_empty() => {
                            format!("HTTP {status} with an empty answer")
                        }
                        _ => format!(
                            "HTTP {status}, an answer that is not an AWS response; it begins: \
                             {:?} ({})",
                            one_line(&body),
                            one_line(&DisplayErrorContext(e).to_string())
                        ),
                    }
                }
            }
        }
        other => one_line(&DisplayErrorContext(other).to_string()),
    }
}

/// The text of the first `<name>…</name>` element in `xml`, entities decoded; for reading
/// what the SDK could not.
pub(crate) fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    let text = &xml[start..start + len];
    if text.contains('<') {
        return None;
    }
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `text` with runs of whitespace and control characters made one space, cut to
/// [`MAX_MESSAGE`] characters.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > MAX_MESSAGE {
            let cut: String = out.chars().take(MAX_MESSAGE).collect();
            return format!("{cut}…");
        }
    }
    out
}

/// The service's error code, when the request failed with a service error.
pub(crate) fn error_code<E>(err: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// The HTTP status and body of an answer the SDK could not read as the operation's answer nor
/// as an AWS error (no error code): for the caller to recognise a known deviation.
pub(crate) fn unreadable_answer<E>(err: &SdkError<E, HttpResponse>) -> Option<(u16, String)>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) if service.err().code().is_none() => {
            let body = service.raw().body().bytes()?;
            Some((
                service.raw().status().as_u16(),
                String::from_utf8_lossy(body).into_owned(),
            ))
        }
        _ => None,
    }
}

/// The HTTP status of a service error.
pub(crate) fn error_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    match err {
        SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
        _ => None,
    }
}

/// A timestamp as RFC 3339 (UTC, `Z`), or null in the (unexpected) case it cannot be written.
pub(crate) fn timestamp(time: Option<&DateTime>) -> Value {
    time.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
        .map_or(Value::Null, Value::String)
}

/// What a run counts and notes while its requests run concurrently.
#[derive(Debug, Default)]
pub(crate) struct RunLog {
    calls: Mutex<BTreeMap<&'static str, u64>>,
    warnings: Mutex<Vec<String>>,
}

impl RunLog {
    /// One successful call (one page, for a paginated operation) of `op`.
    pub fn call(&self, op: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(op).or_default() += 1;
        }
    }

    pub fn warn(&self, warning: String) {
        if let Ok(mut warnings) = self.warnings.lock() {
            warnings.push(warning);
        }
    }

    /// Calls per operation, as a JSON object.
    pub fn calls_json(&self) -> Value {
        self.calls.lock().map_or(Value::Null, |calls| json!(*calls))
    }

    /// The warnings, sorted (they are noted in the order concurrent requests finish), at most
    /// [`MAX_WARNINGS`] and a count of the rest, so the details stay small.
    pub fn warnings_json(&self) -> Value {
        let mut warnings = self.warnings.lock().map(|w| w.clone()).unwrap_or_default();
        warnings.sort();
        if warnings.len() > MAX_WARNINGS {
            let more = warnings.len() - MAX_WARNINGS;
            warnings.truncate(MAX_WARNINGS);
            warnings.push(format!("… and {more} more warnings"));
        }
        json!(warnings)
    }
}

/// Every page of a paginated request, flattened: `all_pages!(log, "ListUsers", "account",
/// client.list_users(), |page| page.users)`. Counts each page; the first failure is returned.
macro_rules! all_pages {
    ($log:expr, $op:literal, $resource:expr, $request:expr, |$page:ident| $items:expr) => {{
        let mut stream = $request.into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = stream.next().await {
            let $page = page.map_err(|e| crate::aws::sdk_error($op, $resource, &e))?;
            $log.call($op);
            all.extend($items);
        }
        all
    }};
}
pub(crate) use all_pages;

/// A run's items sorted by (type, id), with the count of each type.
pub(crate) fn sorted_items(mut items: Vec<Value>) -> (Vec<Value>, Value) {
    let key = |item: &Value| {
        (
            item["type"].as_str().unwrap_or_default().to_owned(),
            item["id"].as_str().unwrap_or_default().to_owned(),
        )
    };
    items.sort_by_key(key);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for item in &items {
        *counts.entry(key(item).0).or_default() += 1;
    }
    (items, json!(counts))
}

/// A shared [`RunLog`].
pub(crate) type SharedLog = Arc<RunLog>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_without_credentials_are_accepted() {
        assert!(check_endpoint_url("http://127.0.0.1:5000").is_ok());
        assert!(check_endpoint_url("https://s3.example.com/base").is_ok());
        assert!(check_endpoint_url("ftp://example.com").is_err());
        assert!(check_endpoint_url("https://").is_err());
        assert!(check_endpoint_url("https://key:secret@example.com").is_err());
    }

    #[test]
    fn element_text_is_found_and_decoded() {
        let xml = "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>\
                   <Message>a &quot;token&quot; &amp; more</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            xml_text(xml, "Code").as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(
            xml_text(xml, "Message").as_deref(),
            Some("a \"token\" & more")
        );
        assert_eq!(xml_text(xml, "Type"), None);
        assert_eq!(xml_text("<Code><b>x</b></Code>", "Code"), None);
        assert_eq!(xml_text("<Code>unclosed", "Code"), None);
    }

    #[test]
    fn warnings_are_sorted_and_bounded() {
        let log = RunLog::default();
        for i in (0..MAX_WARNINGS + 3).rev() {
            log.warn(format!("w{i:03}"));
        }
        let warnings = log.warnings_json();
        let warnings = warnings.as_array().unwrap();
        assert_eq!(warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(warnings[0], "w000");
        assert_eq!(warnings[MAX_WARNINGS], "… and 3 more warnings");
    }

    #[test]
    fn messages_are_one_bounded_line() {
        assert_eq!(one_line("a\n  b\r\n\tc"), "a b c");
        let long = "x ".repeat(1000);
        assert!(one_line(&long).chars().count() <= MAX_MESSAGE + 1);
    }
}
