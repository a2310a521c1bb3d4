//! A bucket's backup-relevant configurations as JSON, field for field from the S3 API's types
//! (names in snake_case, enums as S3 spells them, timestamps RFC 3339). Every field is written,
//! null when S3 left it out, so that items of one type always have the same shape.

use crate::aws::timestamp;
use aws_sdk_s3::types::{
    DefaultRetention, Destination, LifecycleRule, LifecycleRuleFilter, ObjectLockConfiguration,
    ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter,
    ServerSideEncryptionConfiguration, Tag,
};
use serde_json::{json, Value};

fn tag(tag: &Tag) -> Value {
    json!({ "key": tag.key, "value": tag.value })
}

fn tags(list: Option<&Vec<Tag>>) -> Value {
    list.map_or(Value::Null, |list| list.iter().map(tag).collect())
}

/// Lifecycle rules (GetBucketLifecycleConfiguration), in S3's order.
pub(super) fn lifecycle_rules(rules: &[LifecycleRule]) -> Value {
    rules.iter().map(lifecycle_rule).collect()
}

// `prefix` is deprecated in favour of `filter`, but rules written before filters existed still
// carry it, and then it is what selects the objects.
#[allow(deprecated)]
fn lifecycle_rule(rule: &LifecycleRule) -> Value {
    json!({
        "id": rule.id,
        "status": rule.status.as_str(),
        "prefix": rule.prefix,
        "filter": rule.filter.as_ref().map(lifecycle_filter),
        "expiration": rule.expiration.as_ref().map(|e| json!({
            "days": e.days,
            "date": timestamp(e.date.as_ref()),
            "expired_object_delete_marker": e.expired_object_delete_marker,
        })),
        "transitions": rule.transitions.as_ref().map(|list| list.iter().map(|t| json!({
            "days": t.days,
            "date": timestamp(t.date.as_ref()),
            "storage_class": t.storage_class.as_ref().map(|c| c.as_str()),
        })).collect::<Vec<_>>()),
        "noncurrent_version_expiration": rule.noncurrent_version_expiration.as_ref().map(|e| json!({
            "noncurrent_days": e.noncurrent_days,
            "newer_noncurrent_versions": e.newer_noncurrent_versions,
        })),
        "noncurrent_version_transitions": rule.noncurrent_version_transitions.as_ref().map(|list| {
            list.iter().map(|t| json!({
                "noncurrent_days": t.noncurrent_days,
                "newer_noncurrent_versions": t.newer_noncurrent_versions,
                "storage_class": t.storage_class.as_ref().map(|c| c.as_str()),
            })).collect::<Vec<_>>()
        }),
        "abort_incomplete_multipart_upload": rule.abort_incomplete_multipart_upload.as_ref()
            .map(|a| json!({ "days_after_initiation": a.days_after_initiation })),
    })
}

fn lifecycle_filter(filter: &LifecycleRuleFilter) -> Value {
    json!({
        "prefix": filter.prefix,
        "tag": filter.tag.as_ref().map(tag),
        "object_size_greater_than": filter.object_size_greater_than,
        "object_size_less_than": filter.object_size_less_than,
        "and": filter.and.as_ref().map(|and| json!({
            "prefix": and.prefix,
            "tags": tags(and.tags.as_ref()),
            "object_size_greater_than": and.object_size_greater_than,
            "object_size_less_than": and.object_size_less_than,
        })),
    })
}

/// The replication configuration (GetBucketReplication): the role S3 assumes and the rules.
pub(super) fn replication(config: &ReplicationConfiguration) -> Value {
    json!({
        "role": config.role,
        "rules": config.rules.iter().map(replication_rule).collect::<Vec<_>>(),
    })
}

#[allow(deprecated)] // `prefix`: as for lifecycle rules.
fn replication_rule(rule: &ReplicationRule) -> Value {
    json!({
        "id": rule.id,
        "priority": rule.priority,
        "status": rule.status.as_str(),
        "prefix": rule.prefix,
        "filter": rule.filter.as_ref().map(replication_filter),
        "destination": rule.destination.as_ref().map(destination),
        "delete_marker_replication": rule.delete_marker_replication.as_ref()
            .map(|d| json!({ "status": d.status.as_ref().map(|s| s.as_str()) })),
        "existing_object_replication": rule.existing_object_replication.as_ref()
            .map(|e| json!({ "status": e.status.as_str() })),
        "source_selection_criteria": rule.source_selection_criteria.as_ref().map(|c| json!({
            "sse_kms_encrypted_objects": c.sse_kms_encrypted_objects.as_ref()
                .map(|s| json!({ "status": s.status.as_str() })),
            "replica_modifications": c.replica_modifications.as_ref()
                .map(|r| json!({ "status": r.status.as_str() })),
        })),
    })
}

fn replication_filter(filter: &ReplicationRuleFilter) -> Value {
    json!({
        "prefix": filter.prefix,
        "tag": filter.tag.as_ref().map(tag),
        "and": filter.and.as_ref().map(|and| json!({
            "prefix": and.prefix,
            "tags": tags(and.tags.as_ref()),
        })),
    })
}

fn destination(d: &Destination) -> Value {
    json!({
        "bucket": d.bucket,
        "account": d.account,
        "storage_class": d.storage_class.as_ref().map(|c| c.as_str()),
        "access_control_translation": d.access_control_translation.as_ref()
            .map(|a| json!({ "owner": a.owner.as_str() })),
        "replica_kms_key_id": d.encryption_configuration.as_ref()
            .and_then(|e| e.replica_kms_key_id.clone()),
        "replication_time": d.replication_time.as_ref().map(|r| json!({
            "status": r.status.as_str(),
            "minutes": r.time.as_ref().and_then(|t| t.minutes),
        })),
        "metrics": d.metrics.as_ref().map(|m| json!({
            "status": m.status.as_str(),
            "event_threshold_minutes": m.event_threshold.as_ref().and_then(|t| t.minutes),
        })),
    })
}

/// The Object Lock configuration (GetObjectLockConfiguration).
pub(super) fn object_lock(config: &ObjectLockConfiguration) -> Value {
    json!({
        "enabled": config.object_lock_enabled.as_ref().map(|e| e.as_str()),
        "default_retention": config.rule.as_ref()
            .and_then(|r| r.default_retention.as_ref())
            .map(default_retention),
    })
}

fn default_retention(retention: &DefaultRetention) -> Value {
    json!({
        "mode": retention.mode.as_ref().map(|m| m.as_str()),
        "days": retention.days,
        "years": retention.years,
    })
}

/// The default encryption (GetBucketEncryption): its rules, in S3's order.
pub(super) fn encryption(config: &ServerSideEncryptionConfiguration) -> Value {
    let rules: Vec<Value> = config
        .rules
        .iter()
        .map(|rule| {
            let default = rule.apply_server_side_encryption_by_default.as_ref();
            json!({
                "sse_algorithm": default.map(|d| d.sse_algorithm.as_str()),
                "kms_master_key_id": default.and_then(|d| d.kms_master_key_id.clone()),
                "bucket_key_enabled": rule.bucket_key_enabled,
            })
        })
        .collect();
    json!({ "rules": rules })
}
