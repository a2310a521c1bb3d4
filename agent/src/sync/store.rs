//! The S3 side: one host's directory in a bucket, written through aws-sdk-s3.
//!
//! Write-once objects are put with `If-None-Match: *`, so S3 itself refuses to replace an
//! object (AWS since 2024, MinIO, moto; on a store that ignored the header a repeated PUT would
//! replace the object, and only a versioned bucket would keep the first). When it refuses (412), the object is read back: the same bytes mean an earlier attempt
//! landed (idempotent), other bytes are a [`StoreError::Conflict`] and are never overwritten.
//! Every PUT carries its SHA-256 checksum, which S3 checks against the body it received, and,
//! with Object Lock configured, the retention mode and retain-until date.

use crate::config::{ObjectLock, S3Config};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// How long to wait for a connection, and for any one attempt of a request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// S3 holds other bytes under a write-once key.
    #[error(
        "{url} already holds different bytes (sha256 {theirs}, ours {ours}); \
         it is left as it is and never overwritten"
    )]
    Conflict {
        key: String,
        url: String,
        ours: String,
        theirs: String,
    },
    /// A request failed: network, timeout, throttling, credentials, or an S3 error.
    #[error("{op} {url}: {message}")]
    Request {
        op: &'static str,
        url: String,
        message: String,
    },
}

impl StoreError {
    /// The key S3 holds other bytes under, for a [`StoreError::Conflict`].
    pub fn conflict_key(&self) -> Option<&str> {
        match self {
            StoreError::Conflict { key, .. } => Some(key),
            StoreError::Request { .. } => None,
        }
    }
}

/// Whether a write-once PUT stored the object or found it already there, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    AlreadyThere,
}

/// One host's directory, `s3://<bucket>/<prefix>/<host-id>/`.
#[derive(Clone, Debug)]
pub struct HostStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// `<prefix>/<host-id>/` (or `<host-id>/` without a prefix).
    base: String,
    object_lock: Option<ObjectLock>,
}

impl HostStore {
    /// A client for `config`, with credentials and anything left unset from the standard AWS
    /// chain (environment, profile, web identity, IMDS). No request is made yet.
    pub async fn connect(config: &S3Config, host_id: &str) -> HostStore {
        Self::connect_dir(config, host_base(config, host_id)).await
    }

    /// The directory holding every host's, `s3://<bucket>/<prefix>/`: for listing hosts.
    pub async fn connect_fleet(config: &S3Config) -> HostStore {
        let base = if config.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", config.prefix)
        };
        Self::connect_dir(config, base).await
    }

    async fn connect_dir(config: &S3Config, base: String) -> HostStore {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .load()
            .await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style)
            .build();
        HostStore {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            bucket: config.bucket.clone(),
            base,
            object_lock: config.object_lock,
        }
    }

    /// `s3://<bucket>/<prefix>/<host-id>/`: what the ledger's sync records are keyed by.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.base)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.base)
    }

    /// Put a write-once object whose SHA-256 is `sha256`, unless S3 already has it.
    pub async fn put_once(
        &self,
        key: &str,
        bytes: Vec<u8>,
        sha256: [u8; 32],
    ) -> Result<PutOutcome, StoreError> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.base))
            .if_none_match("*")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(B64.encode(sha256))
            .body(ByteStream::from(bytes));
        if let Some(lock) = self.object_lock {
            let until = SystemTime::now() + Duration::from_secs(u64::from(lock.days) * 86_400);
            put = put
                .object_lock_mode(ObjectLockMode::from(lock.mode.as_str()))
                .object_lock_retain_until_date(DateTime::from(until));
        }
        match put.send().await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) if status(&e) == Some(412) => self.compare(key, &sha256).await,
            Err(e) => Err(self.request_error("PUT", key, &e)),
        }
    }

    /// S3 refused a write-once PUT because the key exists: read it back and compare.
    async fn compare(&self, key: &str, ours: &[u8; 32]) -> Result<PutOutcome, StoreError> {
        let theirs = match self.get(key).await? {
            Some(bytes) => Sha256::digest(&bytes),
            // Gone again between the PUT and the GET: let the next attempt put it.
            None => {
                return Err(StoreError::Request {
                    op: "PUT",
                    url: self.url(key),
                    message: "S3 reported the object as existing, then as missing".into(),
                })
            }
        };
        if theirs.as_slice() == ours {
            Ok(PutOutcome::AlreadyThere)
        } else {
            Err(StoreError::Conflict {
                key: key.to_owned(),
                url: self.url(key),
                ours: hex::encode(ours),
                theirs: hex::encode(theirs),
            })
        }
    }

    /// Put the mutable `checkpoint` object (no Object Lock: it moves with every sync).
    pub async fn put_pointer(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let sha256 = Sha256::digest(&bytes);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.base))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(B64.encode(sha256))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.request_error("PUT", key, &e))?;
        Ok(())
    }

    /// Read an object; `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let response = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.base))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.request_error("GET", key, &e)),
        };
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Request {
                op: "GET",
                url: self.url(key),
                message: format!("reading the body: {e}"),
            })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    /// Keys under `<host dir>/<under>`, relative to the host directory; with `folders`, only
    /// the next level's "folders" (common prefixes ending in `/`). Follows every page.
    pub async fn list(&self, under: &str, folders: bool) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{}{under}", self.base);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take());
            if folders {
                request = request.delimiter("/");
            }
            let page = request
                .send()
                .await
                .map_err(|e| self.request_error("LIST", under, &e))?;
            let strip = |k: &str| k.strip_prefix(&self.base).map(str::to_owned);
            if folders {
                out.extend(
                    page.common_prefixes()
                        .iter()
                        .filter_map(|p| p.prefix().and_then(strip)),
                );
            } else {
                out.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().and_then(strip)),
                );
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    fn request_error<E>(
        &self,
        op: &'static str,
        key: &str,
        e: &SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let message = match e {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("error");
                let detail = err.message().unwrap_or("");
                let http = service.raw().status().as_u16();
                format!("HTTP {http} {code} {detail}").trim_end().to_owned()
            }
            other => DisplayErrorContext(other).to_string(),
        };
        StoreError::Request {
            op,
            url: self.url(key),
            message,
        }
    }
}

/// `<prefix>/<host-id>/`, or `<host-id>/` without a prefix: the host's directory in the bucket.
pub fn host_base(config: &S3Config, host_id: &str) -> String {
    if config.prefix.is_empty() {
        format!("{host_id}/")
    } else {
        format!("{}/{host_id}/", config.prefix)
    }
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// The HTTP status of a failed request, when a response arrived.
fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}
