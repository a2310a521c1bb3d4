//! Failures between the collectors and AWS: retried ones give the same snapshot, the others a
//! failed run with a readable one-line reason; and settings errors.

use super::{bytes, collect_err, collect_ok, iam_server, seed, settings};
use crate::common::s3::{free_port, Canned, FaultProxy, Faults, S3Server};

const S3: &str = "s3_bucket_backup_config";
const IAM: &str = "aws_iam";

/// Settings for `kind` at `endpoint` with `extra` lines (S3 addressed by path, as moto needs).
fn at(kind: &str, endpoint: &str, extra: &str) -> String {
    if kind == S3 {
        settings(endpoint, &format!("force_path_style = true\n{extra}"))
    } else {
        settings(endpoint, extra)
    }
}

#[test]
fn throttling_and_server_errors_are_retried_to_the_same_snapshot() {
    let server = iam_server();
    seed(&["iam", &server.endpoint(), "0"]);
    seed(&["s3", &server.endpoint()]);
    let iam = collect_ok(IAM, &at(IAM, &server.endpoint(), ""));
    let s3 = collect_ok(S3, &at(S3, &server.endpoint(), ""));

    // Every 11th connection S3's `503 SlowDown` (a 5xx, for IAM too), and for IAM every 8th
    // its own `400 Throttling` (which S3 would not take for throttling). Each costs a backoff
    // of up to a second or two, so they are kept few.
    let proxy = FaultProxy::start(
        server.port(),
        Faults {
            drop_every: None,
            slowdown_every: Some(11),
        },
    );
    proxy.set_canned(Some((8, Canned::IamThrottling)));
    let iam_again = collect_ok(IAM, &at(IAM, &proxy.endpoint(), "max_attempts = 10"));
    assert!(proxy.canned() > 0, "IAM throttling was injected");
    proxy.set_canned(None);
    let s3_again = collect_ok(S3, &at(S3, &proxy.endpoint(), "max_attempts = 10"));
    assert!(proxy.slowdowns() > 0, "slowdowns were injected");
    assert_eq!(bytes(&iam_again), bytes(&iam), "IAM through the faults");
    assert_eq!(bytes(&s3_again), bytes(&s3), "S3 through the faults");
    assert_eq!(iam_again.details["api_calls"], iam.details["api_calls"]);
}

#[test]
fn an_html_page_or_a_malformed_body_fails_the_run_with_a_readable_reason() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port(), Faults::none());
    let endpoint = proxy.endpoint();

    // A load balancer's 502 page on every request: retried, then a failed run.
    proxy.set_canned(Some((1, Canned::HtmlBadGateway)));
    let error = collect_err(IAM, &at(IAM, &endpoint, "max_attempts = 2"));
    assert!(
        error.starts_with("AWS ListUsers account: HTTP 502"),
        "{error}"
    );
    assert!(error.contains("<title>502 Bad Gateway</title>"), "{error}");
    assert_eq!(proxy.canned(), 2, "two attempts");
    let error = collect_err(S3, &at(S3, &endpoint, "max_attempts = 2"));
    assert!(
        error.starts_with("AWS ListBuckets account: HTTP 502"),
        "{error}"
    );

    // An HTML page with 200 OK: not retried, a failed run saying what came back.
    proxy.set_canned(Some((1, Canned::HtmlOk)));
    let before = proxy.canned();
    let error = collect_err(IAM, &at(IAM, &endpoint, "max_attempts = 2"));
    assert!(
        error.starts_with("AWS ListUsers account: HTTP 200, an answer that is not an AWS response"),
        "{error}"
    );
    assert!(error.contains("<!DOCTYPE html>"), "{error}");
    assert_eq!(
        proxy.canned(),
        before + 1,
        "a malformed body is not retried"
    );
    let error = collect_err(S3, &at(S3, &endpoint, "max_attempts = 2"));
    assert!(
        error.starts_with("AWS ListBuckets account: HTTP 200"),
        "{error}"
    );
}

#[test]
fn refused_credentials_and_an_unreachable_endpoint_fail_the_run_clearly() {
    // moto checking every request's credentials (ours are unknown to it).
    let server = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let error = collect_err(IAM, &at(IAM, &server.endpoint(), ""));
    assert_eq!(
        error,
        "AWS ListUsers account: HTTP 403 InvalidClientTokenId: The security token included in \
         the request is invalid."
    );
    let error = collect_err(S3, &at(S3, &server.endpoint(), ""));
    assert!(
        error.starts_with("AWS ListBuckets account: HTTP 403 InvalidAccessKeyId: "),
        "{error}"
    );
    let error = collect_err(S3, &at(S3, &server.endpoint(), "buckets = [\"evidence\"]"));
    assert_eq!(
        error,
        "AWS HeadBucket s3://evidence: HTTP 403 with an empty answer"
    );

    // Nothing listens: the transport error, after the attempts.
    let nothing = format!("http://127.0.0.1:{}", free_port());
    let error = collect_err(IAM, &at(IAM, &nothing, "max_attempts = 1"));
    assert!(
        error.starts_with("AWS ListUsers account: dispatch failure"),
        "{error}"
    );
}

/// The errors `build` gives for `settings` of `kind`: (key, message).
fn setting_errors(kind: &str, settings: &str) -> Vec<(Option<String>, String)> {
    let table: toml::Table = settings.parse().expect("valid TOML");
    match collectors::registry::build(kind, &table) {
        Ok(_) => panic!("{kind} accepted {settings:?}"),
        Err(errors) => errors.into_iter().map(|e| (e.key, e.message)).collect(),
    }
}

#[test]
fn bad_settings_are_refused_naming_each_key() {
    for kind in [IAM, S3] {
        let errors = setting_errors(
            kind,
            "region = \"EU West\"\nendpoint_url = \"https://AKID:secret@s3.example.com\"\n\
             profile = \" \"\nmax_attempts = 0",
        );
        let keys: Vec<&str> = errors.iter().filter_map(|(k, _)| k.as_deref()).collect();
        assert_eq!(
            keys,
            ["region", "endpoint_url", "profile", "max_attempts"],
            "{errors:?}"
        );
        assert!(
            !errors.iter().any(|(_, m)| m.contains("secret")),
            "{errors:?}"
        );
        // Credentials are not a setting.
        let errors = setting_errors(kind, "aws_secret_access_key = \"x\"");
        assert_eq!(errors[0].0.as_deref(), Some("aws_secret_access_key"));
    }
    let errors = setting_errors(S3, "buckets = []");
    assert_eq!(errors[0].0.as_deref(), Some("buckets"));
    let errors = setting_errors(S3, "buckets = [\"a-bucket\", \"a-bucket\", \"no/slash\"]");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|(k, _)| k.as_deref() == Some("buckets")));
    let errors = setting_errors(IAM, "credential_report = \"yes\"");
    assert_eq!(errors[0].0.as_deref(), Some("credential_report"));
    // Every key at its default builds.
    for kind in [IAM, S3] {
        assert!(collectors::registry::build(kind, &toml::Table::new()).is_ok());
    }
}
