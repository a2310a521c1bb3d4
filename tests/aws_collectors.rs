//! The AWS collectors (`aws_iam`, `s3_bucket_backup_config`) against a real AWS API: moto's
//! server (PyPI `moto[server]==5.2.1`, installed by tests/run.sh), which serves IAM and S3 on
//! one endpoint, seeded through boto3 (`tests/aws_seed.py`). Collectors are built through the
//! registry from TOML, as the agent builds them, and run directly.
//!
//! - `aws_collectors/iam.rs`: paging over 201 roles, the exact item of a seeded user, group,
//!   role and policies, the credential report and a refused one, no secret in the evidence.
//! - `aws_collectors/s3.rs`: every bucket's backup configuration, exactly, with and without
//!   each configuration; a configured bucket list; a missing bucket.
//! - `aws_collectors/faults.rs`: throttling and 5xx retried to the same snapshot, HTML pages
//!   and malformed bodies, refused credentials, an endpoint that is down, settings errors.
//!
//! The collectors take credentials from the standard AWS chain, so this process's environment
//! is set once (before any test reads it) to test credentials whose secret is looked for in
//! every error and snapshot.

#[path = "../collectors/tests/common/mod.rs"]
mod collector_tests;
mod common;

#[path = "aws_collectors/faults.rs"]
mod faults;
#[path = "aws_collectors/iam.rs"]
mod iam;
#[path = "aws_collectors/refusing.rs"]
mod refusing;
#[path = "aws_collectors/s3.rs"]
mod s3;

use collectors::{CollectContext, CollectError, Snapshot};
use common::s3::tests_dir;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::Once;

/// The secret access key of this process's environment (moto does not check it unless told).
pub const ENV_SECRET_KEY: &str = "evidence-tests-secret-key-0f1e2d3c4b5a";
const ENV_ACCESS_KEY: &str = "AKIDEVIDENCETESTS000";

/// Sets the AWS environment of this process once. Every test calls it first (through
/// [`collect`] or [`seed`]), so no other test thread reads the environment meanwhile.
pub fn aws_test_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (key, value) in common::s3::aws_env() {
            std::env::set_var(key, value);
        }
        std::env::set_var("AWS_ACCESS_KEY_ID", ENV_ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", ENV_SECRET_KEY);
        for key in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_IAM",
            "AWS_ENDPOINT_URL_S3",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_MAX_ATTEMPTS",
            "AWS_RETRY_MODE",
        ] {
            std::env::remove_var(key);
        }
    });
}

/// Builds a collector of `kind` from `settings` (TOML) through the registry and runs it once
/// on a runtime of its own.
pub fn collect(kind: &str, settings: &str) -> Result<Snapshot, CollectError> {
    aws_test_env();
    let collector = collector_tests::build(kind, settings);
    let spool = tempfile::tempdir().expect("spool directory");
    let ctx = CollectContext {
        collector_id: format!("test-{kind}"),
        ..collector_tests::ctx(spool.path())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(collector.collect(ctx))
}

/// [`collect`] that must succeed.
pub fn collect_ok(kind: &str, settings: &str) -> Snapshot {
    collect(kind, settings).unwrap_or_else(|e| panic!("{kind} failed: {e}"))
}

/// [`collect`] that must fail; returns the error's text, checked to hold no secret.
pub fn collect_err(kind: &str, settings: &str) -> String {
    match collect(kind, settings) {
        Ok(snapshot) => panic!("{kind} succeeded but should fail: {:?}", snapshot.details),
        Err(e) => {
            let text = e.to_string();
            assert!(
                !text.contains(ENV_SECRET_KEY),
                "secret in the error: {text}"
            );
            assert!(!text.contains('\n'), "the error is one line: {text}");
            text
        }
    }
}

/// moto with AWS's managed policies loaded, for the IAM seed (it attaches ReadOnlyAccess).
pub fn iam_server() -> common::s3::S3Server {
    common::s3::S3Server::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")])
}

/// The usual settings for an endpoint: region and endpoint, plus `extra` lines.
pub fn settings(endpoint: &str, extra: &str) -> String {
    format!("region = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n{extra}\n")
}

/// Runs `tests/aws_seed.py ARGS...`; returns what it printed (JSON).
pub fn seed(args: &[&str]) -> Value {
    aws_test_env();
    let out = Command::new("python3")
        .arg(tests_dir().join("aws_seed.py"))
        .args(args)
        .envs(common::s3::aws_env())
        .stdin(Stdio::null())
        .output()
        .expect("run python3 tests/aws_seed.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aws_seed.py {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("aws_seed.py printed {stdout:?}: {e}"))
}

/// The items, checked: canonical JSON `{"items": [...]}`, unique and sorted by (type, id),
/// `item_count` matching, no cursor, and no secret of this process's environment anywhere.
pub fn items(snapshot: &Snapshot) -> Vec<Value> {
    assert_eq!(snapshot.cursor, None, "a full snapshot has no cursor");
    assert!(snapshot.details.is_object(), "details is an object");
    assert_no_secret(snapshot, ENV_SECRET_KEY);
    collector_tests::items(snapshot)
}

/// `secret` is in neither the content nor the details.
pub fn assert_no_secret(snapshot: &Snapshot, secret: &str) {
    let raw = bytes(snapshot);
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "a secret is in the content"
    );
    assert!(
        !snapshot.details.to_string().contains(secret),
        "a secret is in the details"
    );
}

pub use collector_tests::{bytes, find};

/// A timestamp field: RFC 3339 and within the last day (moto stamps things as it makes them);
/// returned as it is, to be put into an expected item.
pub fn recent(value: &Value) -> Value {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
    let age = chrono::Utc::now().signed_duration_since(time);
    assert!(
        age < chrono::Duration::days(1) && age > chrono::Duration::minutes(-5),
        "{text} is not recent"
    );
    value.clone()
}
