//! The `[s3]` table (DESIGN.md "S3 settings"): where evidence is synced, validated here and
//! used by the sync module. Credentials never appear in the configuration; they come from the
//! standard AWS chain.

use super::source::{did_you_mean, Source};
use std::ops::Range;
use toml::de::DeTable;

/// Where and how to sync the ledger and evidence. No `[s3]` table means sync is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket name (3–63 characters of `a-z 0-9 . -`, starting and ending alphanumeric).
    pub bucket: String,
    /// Key prefix under which `<host-id>/` lives; no leading or trailing `/` (a trailing one
    /// in the file is dropped). Empty: host directories at the bucket root.
    pub prefix: String,
    /// The region; `None` leaves it to the AWS chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// An S3-compatible endpoint (`http://` or `https://`); `None`: AWS, or `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (MinIO and friends).
    pub force_path_style: bool,
    /// Object Lock retention to put on every object written once, if any.
    pub object_lock: Option<ObjectLock>,
}

/// Object Lock retention: mode and how long each object is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: ObjectLockMode,
    /// Retain-until = time of upload + this many days (1–36500).
    pub days: u32,
}

/// The S3 Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectLockMode {
    /// Users with `s3:BypassGovernanceRetention` can still delete or shorten retention.
    Governance,
    /// Nobody, not even the root account, can delete the object before retain-until.
    Compliance,
}

impl ObjectLockMode {
    /// The name S3 uses (`GOVERNANCE` / `COMPLIANCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectLockMode::Governance => "GOVERNANCE",
            ObjectLockMode::Compliance => "COMPLIANCE",
        }
    }
}

impl std::fmt::Display for ObjectLockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const S3_KEYS: [&str; 7] = [
    "bucket",
    "prefix",
    "region",
    "endpoint_url",
    "force_path_style",
    "object_lock_mode",
    "object_lock_days",
];
const KEYS: &str =
    "bucket, prefix, region, endpoint_url, force_path_style, object_lock_mode, object_lock_days";

/// Read the `[s3]` table whose header (or inline table) is at `span`.
pub(crate) fn s3(src: &mut Source, span: Range<usize>, table: &DeTable) -> Option<S3Config> {
    let before = src.problems.len();
    let mut bucket = None;
    let mut prefix = String::new();
    let mut region = None;
    let mut endpoint_url = None;
    let mut force_path_style = false;
    let mut mode = None;
    let mut days = None;
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let at = value.span();
        match name {
            "bucket" => {
                if let Some(b) = src.string(name, value) {
                    match check_bucket(b) {
                        Ok(()) => bucket = Some(b.to_owned()),
                        Err(why) => src.error(at, format!("`bucket` {b:?} {why}")),
                    }
                }
            }
            "prefix" => {
                if let Some(p) = src.string(name, value) {
                    match check_prefix(p) {
                        Ok(p) => prefix = p.to_owned(),
                        Err(why) => src.error(at, format!("`prefix` {p:?} {why}")),
                    }
                }
            }
            "region" => {
                if let Some(r) = src.non_empty(name, value) {
                    if r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        src.error(at, format!("`region` {r:?} must not contain spaces"));
                    } else {
                        region = Some(r.to_owned());
                    }
                }
            }
            "endpoint_url" => {
                if let Some(u) = src.string(name, value) {
                    match check_url(u) {
                        Ok(()) => endpoint_url = Some(u.to_owned()),
                        Err(why) => src.error(at, format!("`endpoint_url` {u:?} {why}")),
                    }
                }
            }
            "force_path_style" => force_path_style = src.boolean(name, value).unwrap_or(false),
            "object_lock_mode" => {
                mode = match src.string(name, value) {
                    Some("GOVERNANCE") => Some(ObjectLockMode::Governance),
                    Some("COMPLIANCE") => Some(ObjectLockMode::Compliance),
                    Some(other) => {
                        let message = format!(
                            "`object_lock_mode` must be \"GOVERNANCE\" or \"COMPLIANCE\", found {other:?}"
                        );
                        src.error(at, message);
                        None
                    }
                    None => None,
                }
            }
            "object_lock_days" => {
                days = src
                    .integer(name, value, 1, 36_500)
                    .and_then(|d| u32::try_from(d).ok());
            }
            other => {
                let hint = if super::KNOWN_TOP_LEVEL.contains(&other) {
                    "; top-level keys must come before the first [table]".to_owned()
                } else {
                    did_you_mean(other, &S3_KEYS)
                };
                let message =
                    format!("unknown key `{other}` in [s3] (expected one of {KEYS}){hint}");
                src.error(key.span(), message);
            }
        }
    }
    let header = src.locate(span.start);
    if !table.contains_key("bucket") {
        src.error_at(header, "[s3] is missing required key `bucket`");
    }
    match (table.get("object_lock_mode"), table.get("object_lock_days")) {
        (Some(m), None) => src.error(
            m.span(),
            "`object_lock_days` is required when `object_lock_mode` is set",
        ),
        (None, Some(d)) => src.error(
            d.span(),
            "`object_lock_days` needs `object_lock_mode` (\"GOVERNANCE\" or \"COMPLIANCE\")",
        ),
        _ => {}
    }
    if src.problems.len() != before {
        return None;
    }
    let object_lock = match (mode, days) {
        (Some(mode), Some(days)) => Some(ObjectLock { mode, days }),
        _ => None,
    };
    Some(S3Config {
        bucket: bucket?,
        prefix,
        region,
        endpoint_url,
        force_path_style,
        object_lock,
    })
}

/// S3 bucket naming rules (the general-purpose bucket subset every S3-compatible store takes).
fn check_bucket(b: &str) -> Result<(), &'static str> {
    let bytes = b.as_bytes();
    if !(3..=63).contains(&bytes.len()) {
        return Err("must be 3 to 63 characters long");
    }
    if !bytes
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        return Err("may contain only lowercase letters, digits, '.' and '-'");
    }
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return Err("must start and end with a letter or digit");
    }
    if b.contains("..") {
        return Err("must not contain \"..\"");
    }
    Ok(())
}

/// A key prefix: `/`-separated segments, none empty, `.` or `..`; a trailing `/` is dropped.
fn check_prefix(p: &str) -> Result<&str, &'static str> {
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() {
        return Ok(p);
    }
    if p.chars().any(|c| c.is_control() || c == '\\') {
        return Err("must not contain control characters or '\\'");
    }
    if p.split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("must be segments separated by single '/', without leading '/', '.' or '..'");
    }
    Ok(p)
}

fn check_url(u: &str) -> Result<(), &'static str> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("is not a valid URL");
    }
    Ok(())
}
