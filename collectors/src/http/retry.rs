//! What to do with an answer that is not a success: wait as the vendor's rate-limit headers say,
//! back off and try again, or give up.
//!
//! The header conventions covered are the documented ones of the APIs we call:
//! - `Retry-After` (seconds or an HTTP date) on 429 and 503 (RFC 9110 §10.2.3; Jira, ServiceNow,
//!   GitHub's secondary limits);
//! - `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (epoch seconds) on 403 or 429 (GitHub's
//!   primary limit);
//! - `RateLimit-Reset` (epoch seconds, GitLab), `X-RateLimit-Reset` (epoch seconds, ServiceNow;
//!   an ISO 8601 time, Jira Cloud). A 429 that gives no wait is retried with backoff.
//!
//! A reset value below 10^9 cannot be an epoch time in this century and is taken as a number of
//! seconds to wait, which is what the IETF RateLimit draft means by it.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Headers giving a rate-limit reset time, in the order they are looked for.
const RESET_HEADERS: [&str; 3] = ["x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset"];
/// GitHub: "If you exceed a secondary rate limit … wait for at least one minute" when no
/// `retry-after` is given.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Added to a reset time, so the retry does not land a moment before the vendor's clock.
const RESET_SLACK: Duration = Duration::from_secs(1);

/// The verdict on one failed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Not worth repeating (a client error, an auth failure).
    No,
    /// Rate limited: wait this long, then repeat.
    RateLimited(Duration),
    /// A transient failure (5xx, timeout): repeat after the next backoff delay, or after the
    /// given `Retry-After`.
    Transient(Option<Duration>),
}

/// Decide on an answer with `status`, given its headers and body.
pub(super) fn verdict(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Retry {
    let retry_after = retry_after(headers, now);
    let exhausted = header(headers, "x-ratelimit-remaining") == Some("0");
    match status.as_u16() {
        // A 429 that does not say how long to wait is retried with backoff, not at once.
        429 => match retry_after.or_else(|| reset_wait(headers, now)) {
            Some(wait) => Retry::RateLimited(wait),
            None => Retry::Transient(None),
        },
        403 if exhausted => Retry::RateLimited(
            reset_wait(headers, now)
                .or(retry_after)
                .unwrap_or(SECONDARY_LIMIT_WAIT),
        ),
        403 if retry_after.is_some() || mentions_rate_limit(body) => {
            Retry::RateLimited(retry_after.unwrap_or(SECONDARY_LIMIT_WAIT))
        }
        408 | 500 | 502 | 503 | 504 => Retry::Transient(retry_after),
        _ => Retry::No,
    }
}

/// The backoff delay before attempt `attempt + 1` after a transient failure: 0.5 s doubling,
/// with up to a quarter more so that agents started together do not retry together.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.saturating_pow(attempt.min(10));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = header(headers, "retry-after")?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn reset_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = RESET_HEADERS
        .iter()
        .find_map(|name| header(headers, name))?;
    // Jira Cloud gives the reset as an ISO 8601 time.
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO) + RESET_SLACK);
    }
    let value: u64 = text.parse().ok()?;
    if value < 1_000_000_000 {
        return Some(Duration::from_secs(value));
    }
    let at = UNIX_EPOCH + Duration::from_secs(value);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO) + RESET_SLACK)
}

fn mentions_rate_limit(body: &[u8]) -> bool {
    let head = &body[..body.len().min(4096)];
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .contains("rate limit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    const NOW: u64 = 1_790_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn verdict_of(status: u16, pairs: &[(&str, &str)], body: &str) -> Retry {
        verdict(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            body.as_bytes(),
            at(NOW),
        )
    }

    #[test]
    fn github_primary_limit_waits_for_the_reset_time() {
        let reset = (NOW + 30).to_string();
        let pairs = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ];
        assert_eq!(
            verdict_of(403, &pairs, "{\"message\":\"API rate limit exceeded\"}"),
            Retry::RateLimited(Duration::from_secs(31))
        );
        assert_eq!(
            verdict_of(429, &pairs, ""),
            Retry::RateLimited(Duration::from_secs(31))
        );
    }

    #[test]
    fn secondary_limits_follow_retry_after_or_wait_a_minute() {
        assert_eq!(
            verdict_of(403, &[("retry-after", "7")], ""),
            Retry::RateLimited(Duration::from_secs(7))
        );
        assert_eq!(
            verdict_of(
                403,
                &[],
                "{\"message\":\"You have exceeded a secondary rate limit\"}"
            ),
            Retry::RateLimited(SECONDARY_LIMIT_WAIT)
        );
    }

    #[test]
    fn an_http_date_and_a_delta_reset_are_understood() {
        // 1_790_000_060 is 2026-09-21T14:14:20Z.
        assert_eq!(
            verdict_of(429, &[("retry-after", "Mon, 21 Sep 2026 14:14:20 GMT")], ""),
            Retry::RateLimited(Duration::from_secs(60))
        );
        assert_eq!(
            verdict_of(429, &[("ratelimit-reset", "12")], ""),
            Retry::RateLimited(Duration::from_secs(12))
        );
        assert_eq!(
            verdict_of(429, &[("x-ratelimit-reset", "2026-09-21T14:14:20Z")], ""),
            Retry::RateLimited(Duration::from_secs(61))
        );
    }

    #[test]
    fn a_429_without_a_wait_backs_off() {
        assert_eq!(verdict_of(429, &[], ""), Retry::Transient(None));
    }

    #[test]
    fn a_plain_forbidden_or_unauthorized_is_not_retried() {
        assert_eq!(
            verdict_of(403, &[], "{\"message\":\"Resource not accessible\"}"),
            Retry::No
        );
        assert_eq!(verdict_of(401, &[], ""), Retry::No);
        assert_eq!(verdict_of(404, &[], ""), Retry::No);
    }

    #[test]
    fn server_errors_are_transient() {
        assert_eq!(verdict_of(502, &[], "<html>"), Retry::Transient(None));
        assert_eq!(
            verdict_of(503, &[("retry-after", "2")], ""),
            Retry::Transient(Some(Duration::from_secs(2)))
        );
    }

    #[test]
    fn backoff_doubles_within_a_quarter_of_jitter() {
        for attempt in 0..4 {
            let base = Duration::from_millis(500) * 2u32.pow(attempt);
            let delay = backoff(attempt);
            assert!(delay >= base && delay <= base + base / 4, "{delay:?}");
        }
    }
}
