//! The `s3_bucket_backup_config` collector: how S3 buckets protect their data (backup and
//! recovery, SOC 2 A1.2 and CC7.5).
//!
//! For each bucket (every bucket ListBuckets returns, or the `buckets` setting's), records:
//! versioning status and MFA delete (GetBucketVersioning), lifecycle rules
//! (GetBucketLifecycleConfiguration), replication (GetBucketReplication), Object Lock with its
//! default retention (GetObjectLockConfiguration) and default encryption with its KMS key
//! (GetBucketEncryption). A bucket's region comes from ListBuckets, else from HeadBucket's
//! `x-amz-bucket-region` (answered even with a redirect or a refusal); against AWS, each bucket
//! is asked in its own region.
//!
//! Items, sorted by id: `s3_bucket`, id the bucket name. A configuration the bucket does not
//! have is `null` (`lifecycle_rules`, `replication`, `object_lock`, `encryption`) when S3
//! answers NoSuchLifecycleConfiguration, ReplicationConfigurationNotFoundError,
//! ObjectLockConfigurationNotFoundError or ServerSideEncryptionConfigurationNotFoundError; a
//! `versioning.status` of `null` means versioning was never enabled.
//!
//! Settings: the connection keys of [`crate::aws`] (`region`, `endpoint_url`, `profile`,
//! `max_attempts`); `force_path_style` (default false: path-style URLs, which S3-compatible
//! stores and moto need); `buckets` (optional): the bucket names to collect instead of every
//! bucket (then `s3:ListAllMyBuckets` is not needed).
//!
//! Cursor: none; every run is a full snapshot.
//!
//! Guarantees: no object is read or listed; any error (a missing bucket, a refused permission,
//! a server error outlasting the retries, an answer that cannot be read) fails the run naming
//! the operation and bucket. Details give the calls made per operation.

mod config;
mod versioning;

use crate::aws::{
    all_pages, error_code, sdk_error, sorted_items, Connection, HttpResponse, RunLog, SharedLog,
    CONCURRENCY,
};
use crate::concurrent::each_bounded;
use crate::registry::parse_settings;
use crate::{canonical, CollectContext, CollectError, Collector, Content, SettingError};
use crate::{Snapshot, MEDIA_TYPE_JSON};
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    region: Option<String>,
    endpoint_url: Option<String>,
    profile: Option<String>,
    #[serde(default = "crate::aws::default_max_attempts")]
    max_attempts: u32,
    #[serde(default)]
    force_path_style: bool,
    buckets: Option<Vec<String>>,
}

/// A built `s3_bucket_backup_config` collector.
#[derive(Debug)]
pub struct S3BackupCollector {
    connection: Connection,
    force_path_style: bool,
    buckets: Option<Vec<String>>,
}

/// Build an `s3_bucket_backup_config` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let connection = Connection {
        region: settings.region,
        endpoint_url: settings.endpoint_url,
        profile: settings.profile,
        max_attempts: settings.max_attempts,
    };
    let mut errors = connection.validate();
    if let Some(buckets) = &settings.buckets {
        if buckets.is_empty() {
            errors.push(SettingError::new(
                Some("buckets"),
                "is empty; leave it out to collect every bucket",
            ));
        }
        let mut seen = BTreeSet::new();
        for name in buckets {
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                errors.push(SettingError::new(
                    Some("buckets"),
                    format!("{name:?} is not a bucket name"),
                ));
            } else if !seen.insert(name) {
                errors.push(SettingError::new(
                    Some("buckets"),
                    format!("{name:?} is listed twice"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(S3BackupCollector {
        connection,
        force_path_style: settings.force_path_style,
        buckets: settings.buckets,
    }))
}

/// What every request of one run shares.
#[derive(Debug, Clone)]
struct S3 {
    config: Arc<SdkConfig>,
    client: aws_sdk_s3::Client,
    force_path_style: bool,
    /// Whether requests go to AWS (each bucket is then asked in its own region).
    aws: bool,
    log: SharedLog,
}

impl S3 {
    /// The client for a bucket in `region`.
    fn client_for(&self, region: Option<&str>) -> aws_sdk_s3::Client {
        match region {
            Some(region)
                if self.aws && self.config.region().map(|r| r.as_ref()) != Some(region) =>
            {
                client(&self.config, Some(region), self.force_path_style)
            }
            _ => self.client.clone(),
        }
    }
}

fn client(config: &SdkConfig, region: Option<&str>, force_path_style: bool) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(config).force_path_style(force_path_style);
    if let Some(region) = region {
        builder = builder.region(Region::new(region.to_owned()));
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

#[async_trait::async_trait]
impl Collector for S3BackupCollector {
    fn kind(&self) -> &'static str {
        "s3_bucket_backup_config"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let config = self.connection.load().await;
        let s3 = S3 {
            client: client(&config, None, self.force_path_style),
            config: Arc::new(config),
            force_path_style: self.force_path_style,
            aws: self.connection.endpoint_url.is_none(),
            log: Arc::new(RunLog::default()),
        };
        let log = &*s3.log;
        let buckets: Vec<(String, Option<String>)> = match &self.buckets {
            Some(names) => names.iter().map(|n| (n.clone(), None)).collect(),
            None => all_pages!(
                log,
                "ListBuckets",
                "account",
                s3.client.list_buckets(),
                |page| page
                    .buckets
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|b| Some((b.name?, b.bucket_region)))
            ),
        };
        ctx.check_deadline()?;
        let items = each_bounded(buckets, CONCURRENCY, ctx.deadline, |(name, region)| {
            let s3 = s3.clone();
            async move { bucket(&s3, name, region).await }
        })
        .await?;
        let (items, counts) = sorted_items(items);
        let item_count = items.len() as u64;
        let bytes = canonical::to_vec(&json!({ "items": items }))
            .map_err(|e| CollectError::Other(format!("cannot encode the buckets: {e}")))?;
        let mut details = self.connection.details(&s3.config);
        if let Value::Object(map) = &mut details {
            map.insert("force_path_style".into(), json!(self.force_path_style));
            let source = if self.buckets.is_some() {
                "settings"
            } else {
                "ListBuckets"
            };
            map.insert("buckets_from".into(), json!(source));
            map.insert("counts".into(), counts);
            map.insert("api_calls".into(), log.calls_json());
            map.insert("warnings".into(), log.warnings_json());
        }
        Ok(Snapshot {
            content: Content::from_bytes(bytes),
            media_type: MEDIA_TYPE_JSON,
            item_count,
            cursor: None,
            details,
        })
    }
}

/// One `s3_bucket` item.
async fn bucket(s3: &S3, name: String, region: Option<String>) -> Result<Value, CollectError> {
    let resource = format!("s3://{name}");
    let region = match region {
        Some(region) => Some(region),
        None => bucket_region(s3, &name, &resource).await?,
    };
    let client = s3.client_for(region.as_deref());
    let log = &*s3.log;

    let versioning = versioning::get(&client, log, &name, &resource).await?;
    let lifecycle = unless_not_configured(
        log,
        "GetBucketLifecycleConfiguration",
        &resource,
        "NoSuchLifecycleConfiguration",
        client
            .get_bucket_lifecycle_configuration()
            .bucket(&name)
            .send(),
    )
    .await?;
    let replication = unless_not_configured(
        log,
        "GetBucketReplication",
        &resource,
        "ReplicationConfigurationNotFoundError",
        client.get_bucket_replication().bucket(&name).send(),
    )
    .await?;
    let object_lock = unless_not_configured(
        log,
        "GetObjectLockConfiguration",
        &resource,
        "ObjectLockConfigurationNotFoundError",
        client.get_object_lock_configuration().bucket(&name).send(),
    )
    .await?;
    let encryption = unless_not_configured(
        log,
        "GetBucketEncryption",
        &resource,
        "ServerSideEncryptionConfigurationNotFoundError",
        client.get_bucket_encryption().bucket(&name).send(),
    )
    .await?;

    Ok(json!({
        "type": "s3_bucket",
        "id": name,
        "name": name,
        "region": region,
        "versioning": versioning,
        "lifecycle_rules": lifecycle.and_then(|l| l.rules).map(|rules| config::lifecycle_rules(&rules)),
        "replication": replication.and_then(|r| r.replication_configuration)
            .map(|c| config::replication(&c)),
        "object_lock": object_lock.and_then(|o| o.object_lock_configuration)
            .map(|c| config::object_lock(&c)),
        "encryption": encryption.and_then(|e| e.server_side_encryption_configuration)
            .map(|c| config::encryption(&c)),
    }))
}

/// The bucket's region from HeadBucket's `x-amz-bucket-region` header, which S3 sends with a
/// success, a redirect (the bucket is in another region) and a refusal alike. None when the
/// store does not send it (some S3-compatible stores).
async fn bucket_region(
    s3: &S3,
    name: &str,
    resource: &str,
) -> Result<Option<String>, CollectError> {
    match s3.client.head_bucket().bucket(name).send().await {
        Ok(out) => {
            s3.log.call("HeadBucket");
            Ok(out.bucket_region)
        }
        Err(err) => {
            let header = err
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(str::to_owned);
            match header {
                Some(region) => {
                    s3.log.call("HeadBucket");
                    Ok(Some(region))
                }
                None => Err(sdk_error("HeadBucket", resource, &err)),
            }
        }
    }
}

/// The answer of a request for a configuration, or None when S3 answers with
/// `not_configured` (the bucket has no such configuration).
async fn unless_not_configured<T, E>(
    log: &RunLog,
    op: &'static str,
    resource: &str,
    not_configured: &str,
    request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<Option<T>, CollectError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match request.await {
        Ok(out) => {
            log.call(op);
            Ok(Some(out))
        }
        Err(err) if error_code(&err) == Some(not_configured) => {
            log.call(op);
            Ok(None)
        }
        Err(err) => Err(sdk_error(op, resource, &err)),
    }
}
