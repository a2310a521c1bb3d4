//! The outside view of the bucket: the AWS environment, `tests/s3_client.py` (boto3) and the
//! typed helpers on [`S3Server`] built on it.

use super::server::{temp_dir, S3Server};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The credentials, region and switches every client of the test server uses.
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

/// The repository's `tests/` directory (holding `s3_client.py`).
pub fn tests_dir() -> PathBuf {
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
    ];
    // This file is tests/common/s3/client.rs.
    let here = Path::new(file!())
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let candidates: Vec<PathBuf> = candidates.into_iter().chain(here).collect();
    for c in &candidates {
        if c.join("s3_client.py").is_file() {
            return c.clone();
        }
    }
    panic!("cannot find tests/s3_client.py (looked in {candidates:?})");
}

/// The environment an AWS SDK client (the agent, boto3) needs to talk to the test server:
/// static credentials, the region, no IMDS probing, and no profile files from the user's home.
pub fn aws_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        (
            "AWS_CONFIG_FILE",
            "/nonexistent/evidence-agent-tests/aws-config",
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/evidence-agent-tests/aws-credentials",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Fail loudly (never skip) when moto or boto3 cannot be imported.
pub fn require_moto() {
    let out = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .output();
    let ok = matches!(&out, Ok(o) if o.status.success());
    assert!(
        ok,
        "the S3 tests need `python3` with `moto[server]` (and boto3); run tests/run.sh (it \
         installs them) or `python3 -m pip install 'moto[server]==5.2.1'`; import said: {}",
        match &out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        }
    );
}

/// Runs `tests/s3_client.py ARGS...` with [`aws_env`]; returns its output whatever the status.
pub fn s3_client(args: &[&str]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("s3_client.py")).args(args);
    cmd.envs(aws_env()).stdin(Stdio::null());
    cmd.output().expect("run python3 tests/s3_client.py")
}

/// Like [`s3_client`] but panics (with stdout and stderr) unless it exits 0; returns stdout.
pub fn s3_client_ok(args: &[&str]) -> String {
    let out = s3_client(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "s3_client.py {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One object version as `s3_client.py versions` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    /// Hex SHA-256 of the version's bytes (None for a delete marker).
    pub sha256: Option<String>,
    /// `GOVERNANCE` | `COMPLIANCE` | None.
    pub lock_mode: Option<String>,
    /// RFC 3339 (UTC, `Z`) or None.
    pub retain_until: Option<String>,
}

/// Parses the JSON `s3_client.py versions` prints.
pub fn parse_versions(json: &str) -> Vec<ObjectVersion> {
    let v: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("s3_client.py versions printed invalid JSON ({e}): {json}"));
    let text =
        |o: &serde_json::Value, k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
    v.as_array()
        .expect("versions prints a JSON list")
        .iter()
        .map(|o| ObjectVersion {
            key: text(o, "key").expect("version key"),
            version_id: text(o, "version_id").expect("version id"),
            is_latest: o["is_latest"].as_bool().unwrap_or(false),
            delete_marker: o["delete_marker"].as_bool().unwrap_or(false),
            size: o["size"].as_u64().unwrap_or(0),
            sha256: text(o, "sha256"),
            lock_mode: text(o, "lock_mode"),
            retain_until: text(o, "retain_until"),
        })
        .collect()
}

/// The typed client helpers: `s3_client.py` against this server's endpoint.
impl S3Server {
    /// See [`aws_env`].
    pub fn aws_env(&self) -> Vec<(String, String)> {
        aws_env()
    }

    /// Creates a bucket with versioning on, and Object Lock enabled when `object_lock`.
    pub fn create_bucket(&self, name: &str, object_lock: bool) {
        let endpoint = self.endpoint();
        let mut args = vec!["create-bucket", endpoint.as_str(), name];
        if object_lock {
            args.push("--object-lock");
        }
        s3_client_ok(&args);
    }

    /// Every version of every object under `prefix` (see `s3_client.py versions`).
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<ObjectVersion> {
        parse_versions(&s3_client_ok(&[
            "versions",
            &self.endpoint(),
            bucket,
            prefix,
        ]))
    }

    /// Downloads the latest version of every object under `prefix` into `dir`, prefix stripped.
    pub fn download(&self, bucket: &str, prefix: &str, dir: &Path) {
        s3_client_ok(&[
            "download",
            &self.endpoint(),
            bucket,
            prefix,
            &dir.to_string_lossy(),
        ]);
    }

    /// The latest version of `key`'s bytes, or None when there is no such object.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let file = temp_dir("s3-get").join("object");
        let out = s3_client(&[
            "get",
            &self.endpoint(),
            bucket,
            key,
            &file.to_string_lossy(),
        ]);
        let got = if out.status.success() {
            fs::read(&file).ok()
        } else {
            None
        };
        let _ = fs::remove_dir_all(file.parent().unwrap());
        got
    }

    /// A plain PutObject of `bytes` (no condition, no retention); returns the new version id.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> String {
        let dir = temp_dir("s3-put");
        let file = dir.join("object");
        fs::write(&file, bytes).expect("write the object to upload");
        let out = s3_client_ok(&[
            "put",
            &self.endpoint(),
            bucket,
            key,
            &file.to_string_lossy(),
        ]);
        let _ = fs::remove_dir_all(&dir);
        out.trim().to_string()
    }

    /// Tries to delete one version without any bypass: `"deleted"` or the S3 error code.
    pub fn delete_version(&self, bucket: &str, key: &str, version_id: &str) -> String {
        s3_client_ok(&["delete-version", &self.endpoint(), bucket, key, version_id])
            .trim()
            .to_string()
    }
}
