//! A host that syncs to the S3 test bench: a data directory with a key, a configuration with
//! one collector and an `[s3]` table pointing at an endpoint (moto, or a [`super::FaultProxy`]
//! in front of it), entries appended through the library, and what S3 holds for it, looked at
//! from outside (boto3, the independent verifier).

use super::{ObjectVersion, S3Server};
use crate::common::process::{agent_command, start, Log};
use chrono::{TimeZone, Utc};
use evidence_agent::keys;
use evidence_agent::ledger::{Ledger, NewEntry, Outcome};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

pub const BUCKET: &str = "evidence-test";
pub const HOST: &str = "sync-host";
/// The host's directory in the bucket (`prefix = "ev"`).
pub const HOST_PREFIX: &str = "ev/sync-host/";
/// A host: data directory, key and configuration pointing at an S3 endpoint.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Host {
    /// `extra_s3` lines go into the `[s3]` table; `schedule` is the one collector's schedule.
    pub fn new(endpoint: &str, extra_s3: &str, schedule: &str) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("agent.toml");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                r#"host_id = "{HOST}"
data_dir = "{}"
min_free_disk_mib = 0

[[collectors]]
id = "echo"
kind = "command"
schedule = "{schedule}"
argv = ["echo", "evidence"]

[s3]
bucket = "{BUCKET}"
prefix = "ev"
region = "us-east-1"
endpoint_url = "{endpoint}"
force_path_style = true
{extra_s3}
"#,
                data.display()
            ),
        )
        .expect("write config");
        let host = Host { dir, config };
        let out = host.agent(&["keygen"]);
        assert!(out.status.success(), "keygen: {}", text(&out));
        host
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.data().join("ledger.sqlite")
    }

    pub fn vkey(&self) -> PathBuf {
        self.data().join("keys/host.vkey")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        agent_command(&self.config, args)
    }

    /// `evidence-agent run`, its stderr followed line by line.
    pub fn start_daemon(&self) -> (Child, Log) {
        start(self.command(&["run"]))
    }

    pub fn agent(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run evidence-agent")
    }

    /// Append `n` entries with distinct content through the library, in batches of 7.
    pub fn append(&self, n: u64) {
        let name = keys::key_name(HOST);
        let key = self.data().join("keys/host.key");
        let signer = keys::load(&key, Some(&name)).expect("load the host key");
        let mut ledger = Ledger::open(&self.ledger_path(), HOST, signer).expect("open ledger");
        let start = ledger.size().expect("size");
        let mut i = start;
        while i < start + n {
            let batch: Vec<NewEntry> = (i..(i + 7).min(start + n)).map(entry).collect();
            i += batch.len() as u64;
            ledger.append(batch).expect("append");
        }
    }

    pub fn size(&self) -> u64 {
        Ledger::open_read_only(&self.ledger_path())
            .and_then(|l| l.size())
            .expect("read the ledger size")
    }

    /// Objects S3 confirmed, as the ledger records them.
    pub fn confirmed_uploads(&self) -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            self.ledger_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open ledger read-only");
        conn.query_row("SELECT count(*) FROM sync_uploads", [], |r| r.get(0))
            .unwrap_or(0)
    }
}

pub fn entry(i: u64) -> NewEntry {
    let outcome = if i % 11 == 10 {
        Outcome::Failed(format!("cannot read /etc/app/{i}.conf"))
    } else {
        let pad = "x".repeat(300);
        crate::common::ok_json(
            format!("{{\"items\":[{{\"id\":\"user-{i}\",\"pad\":\"{pad}\"}}]}}"),
            None,
        )
    };
    let start = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single();
    crate::common::test_entry(i, start.expect("valid time"), outcome)
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn server_with_bucket(object_lock: bool) -> S3Server {
    let server = S3Server::start();
    server.create_bucket(BUCKET, object_lock);
    server
}

/// Download the host's prefix with the plain client and run the independent verifier on it.
pub fn assert_prefix_verifies(server: &S3Server, host: &Host) {
    let dir = tempfile::tempdir().expect("temp dir");
    server.download(BUCKET, HOST_PREFIX, dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/independent_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("--tiles")
        .arg(dir.path())
        .arg(host.vkey())
        .output()
        .expect("run the independent verifier");
    assert!(
        out.status.success(),
        "the downloaded prefix does not verify:\n{}",
        text(&out)
    );
}

/// The tree size S3's `checkpoint` object shows, if there is one.
pub fn s3_tree_size(server: &S3Server) -> Option<u64> {
    let bytes = server.get(BUCKET, &format!("{HOST_PREFIX}checkpoint"))?;
    let text = String::from_utf8(bytes).ok()?;
    text.lines().nth(1)?.parse().ok()
}

/// Every write-once key has exactly one version (nothing was written twice, let alone with
/// other bytes); `checkpoint` may have several.
pub fn assert_written_once(versions: &[ObjectVersion]) {
    let mut seen = std::collections::HashMap::new();
    for v in versions {
        assert!(!v.delete_marker, "delete marker on {}", v.key);
        *seen.entry(v.key.as_str()).or_insert(0) += 1;
    }
    for (key, count) in seen {
        if !key.ends_with("/checkpoint") {
            assert_eq!(count, 1, "{key} has {count} versions");
        }
    }
}

/// `tree_size=N` of a "synced to" log line.
pub fn logged_tree_size(line: &str) -> Option<u64> {
    let rest = &line[line.find("tree_size=")? + "tree_size=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
