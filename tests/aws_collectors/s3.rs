//! `s3_bucket_backup_config` against moto: every bucket's configuration, exactly.

use super::{collect_err, collect_ok, find, items, seed, settings};
use crate::common::s3::S3Server;
use serde_json::{json, Value};

const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/0b7e4d64-6a3c-4c6e-9d8a-5f1e2a3b4c5d";

fn s3_settings(endpoint: &str, extra: &str) -> String {
    settings(endpoint, &format!("force_path_style = true\n{extra}"))
}

/// A bucket with no configuration but `versioning`.
fn bare(name: &str, versioning: Value) -> Value {
    json!({
        "type": "s3_bucket",
        "id": name,
        "name": name,
        "region": "us-east-1",
        "versioning": versioning,
        "lifecycle_rules": null,
        "replication": null,
        "object_lock": null,
        "encryption": null,
    })
}

#[test]
fn every_bucket_is_recorded_with_each_backup_configuration_or_null() {
    let server = S3Server::start();
    seed(&["s3", &server.endpoint()]);
    let snapshot = collect_ok(
        "s3_bucket_backup_config",
        &s3_settings(&server.endpoint(), ""),
    );
    let items = items(&snapshot);
    let names: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "backup-full",
            "backup-replica",
            "plain-a",
            "plain-b",
            "suspended"
        ]
    );
    let details = &snapshot.details;
    assert_eq!(details["buckets_from"], "ListBuckets");
    assert_eq!(details["counts"], json!({"s3_bucket": 5}));
    assert_eq!(details["api_calls"]["ListBuckets"], 1);
    assert_eq!(details["api_calls"]["GetBucketEncryption"], 5);
    assert_eq!(details["warnings"], json!([]));

    assert_eq!(
        find(&items, "s3_bucket", "backup-full"),
        &json!({
            "type": "s3_bucket",
            "id": "backup-full",
            "name": "backup-full",
            "region": "us-east-1",
            "versioning": {"status": "Enabled", "mfa_delete": null},
            "lifecycle_rules": [{
                "id": "archive-then-expire",
                "status": "Enabled",
                "prefix": null,
                "filter": {
                    "prefix": "db/",
                    "tag": null,
                    "object_size_greater_than": null,
                    "object_size_less_than": null,
                    "and": null,
                },
                "expiration": {"days": 365, "date": null, "expired_object_delete_marker": null},
                "transitions": [{"days": 30, "date": null, "storage_class": "GLACIER"}],
                "noncurrent_version_expiration": {
                    "noncurrent_days": 90,
                    "newer_noncurrent_versions": null,
                },
                "noncurrent_version_transitions": null,
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }],
            "replication": {
                "role": "arn:aws:iam::123456789012:role/replication",
                "rules": [{
                    "id": "to-replica",
                    "priority": 1,
                    "status": "Enabled",
                    "prefix": null,
                    "filter": {"prefix": "", "tag": null, "and": null},
                    "destination": {
                        "bucket": "arn:aws:s3:::backup-replica",
                        "account": null,
                        "storage_class": "STANDARD_IA",
                        "access_control_translation": null,
                        "replica_kms_key_id": null,
                        "replication_time": null,
                        "metrics": null,
                    },
                    "delete_marker_replication": {"status": "Disabled"},
                    "existing_object_replication": null,
                    "source_selection_criteria": null,
                }],
            },
            // moto answers `Years` 0 beside `Days` (AWS leaves it out).
            "object_lock": {
                "enabled": "Enabled",
                "default_retention": {"mode": "GOVERNANCE", "days": 30, "years": 0},
            },
            "encryption": {"rules": [{
                "sse_algorithm": "aws:kms",
                "kms_master_key_id": KMS_KEY,
                "bucket_key_enabled": true,
            }]},
        })
    );
    let enabled = json!({"status": "Enabled", "mfa_delete": null});
    let never = json!({"status": null, "mfa_delete": null});
    assert_eq!(
        find(&items, "s3_bucket", "backup-replica"),
        &bare("backup-replica", enabled)
    );
    assert_eq!(
        find(&items, "s3_bucket", "plain-a"),
        &bare("plain-a", never.clone())
    );
    assert_eq!(
        find(&items, "s3_bucket", "plain-b"),
        &bare("plain-b", never)
    );
    assert_eq!(
        find(&items, "s3_bucket", "suspended"),
        &bare(
            "suspended",
            json!({"status": "Suspended", "mfa_delete": null})
        )
    );

    // A configured list: those buckets only, without ListBuckets; the same items.
    let listed = collect_ok(
        "s3_bucket_backup_config",
        &s3_settings(
            &server.endpoint(),
            "buckets = [\"plain-a\", \"backup-full\"]",
        ),
    );
    let listed_items = super::items(&listed);
    assert_eq!(listed.details["buckets_from"], "settings");
    assert_eq!(listed.details["api_calls"].get("ListBuckets"), None);
    assert_eq!(
        listed_items,
        vec![
            find(&items, "s3_bucket", "backup-full").clone(),
            find(&items, "s3_bucket", "plain-a").clone(),
        ]
    );

    // A configured bucket that does not exist fails the run, naming it.
    let error = collect_err(
        "s3_bucket_backup_config",
        &s3_settings(
            &server.endpoint(),
            "buckets = [\"plain-a\", \"no-such-bucket\"]",
        ),
    );
    assert!(
        error.starts_with("AWS HeadBucket s3://no-such-bucket: HTTP 404"),
        "{error}"
    );
}
