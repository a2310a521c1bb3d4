//! Fleet export end to end: two hosts sync to a real S3-compatible server (moto, started by
//! the test on 127.0.0.1), then one `export --source s3://…` makes a bundle of both straight
//! from S3, which `verify` accepts with both hosts' keys pinned; an object altered in S3 makes
//! the export fail naming it.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::s3::S3Server;
use evidence_agent::keys;
use evidence_agent::ledger::Ledger;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BUCKET: &str = "evidence-fleet";

struct Host {
    dir: tempfile::TempDir,
    id: &'static str,
}

impl Host {
    fn new(server: &S3Server, id: &'static str) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            r#"host_id = "{id}"
data_dir = "{}"
min_free_disk_mib = 0

[[collectors]]
id = "accounts"
kind = "command"
schedule = "@daily"
argv = ["true"]

[s3]
bucket = "{BUCKET}"
prefix = "fleet"
region = "us-east-1"
endpoint_url = "{}"
force_path_style = true
"#,
            dir.path().join("data").display(),
            server.endpoint()
        );
        std::fs::write(dir.path().join("agent.toml"), config).expect("write config");
        let host = Host { dir, id };
        let out = host.agent(&["keygen"]);
        assert!(out.status.success(), "keygen: {}", text(&out));
        host
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    fn vkey(&self) -> String {
        self.dir
            .path()
            .join("data/keys/host.vkey")
            .display()
            .to_string()
    }

    fn agent(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .envs(common::s3::aws_env())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run evidence-agent")
    }

    /// Daily runs from May 20 to June 10, a batch (and checkpoint) per day, then a sync.
    fn collect_and_sync(&self) {
        let key = self.dir.path().join("data/keys/host.key");
        let signer = keys::load(&key, Some(&keys::key_name(self.id))).expect("host key");
        let path = self.dir.path().join("data/ledger.sqlite");
        let mut ledger = Ledger::open(&path, self.id, signer).expect("open ledger");
        for d in 0..22 {
            let at = Utc.with_ymd_and_hms(2026, 5, 20, 3, 0, 0).unwrap() + Duration::days(d);
            let body = format!(r#"{{"items":[{{"id":"{}-{d}","type":"user"}}]}}"#, self.id);
            ledger
                .append(vec![common::scheduled_run(
                    "accounts",
                    "command",
                    "0 3 * * *",
                    at,
                    common::ok_json(body, None),
                )])
                .expect("append");
        }
        let out = self.agent(&["sync"]);
        assert!(out.status.success(), "sync: {}", text(&out));
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn export(host: &Host, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "export",
        "--source",
        "s3://evidence-fleet/fleet",
        "--from",
        "2026-06-01",
        "--to",
        "2026-06-10",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    host.agent(&args)
}

#[test]
fn a_fleet_bundle_is_exported_from_s3_and_verifies() {
    let server = S3Server::start();
    server.create_bucket(BUCKET, false);
    let web = Host::new(&server, "web-1");
    let db = Host::new(&server, "db-1");
    web.collect_and_sync();
    db.collect_and_sync();
    let scratch = tempfile::tempdir().unwrap();

    let both = scratch.path().join("fleet.tar.gz");
    let out = export(&web, &both, &["--sample", "3", "--seed", "fleet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("2 host(s), 20 entries"),
        "{}",
        text(&out)
    );
    let verify = web.agent(&[
        "verify",
        both.to_str().unwrap(),
        "--vkey",
        &web.vkey(),
        "--vkey",
        &db.vkey(),
        "--json",
    ]);
    assert!(verify.status.success(), "{}", text(&verify));
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let hosts: Vec<(&str, bool, u64, u64)> = report["report"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap(),
                h["pinned"].as_bool().unwrap(),
                h["start_size"].as_u64().unwrap(),
                h["end_size"].as_u64().unwrap(),
            )
        })
        .collect();
    // June 1–10 of each host: entries 12..22, the range starting at May 31's checkpoint.
    assert_eq!(hosts, vec![("db-1", true, 12, 22), ("web-1", true, 12, 22)]);
    assert_eq!(
        report["report"]["sampled"], 6,
        "3 rows from each host's population"
    );

    let one = scratch.path().join("db-only");
    let out = export(&web, &one, &["--host", "db-1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(one.join("keys/db-1.vkey").exists() && !one.join("keys/web-1.vkey").exists());
    let out = export(&web, &scratch.path().join("nope"), &["--host", "mail-1"]);
    assert!(text(&out).contains("--host mail-1: s3://evidence-fleet/fleet has no such host"));

    // Content altered in S3 (no Object Lock on this bucket) is caught on the way.
    let blob = std::fs::read_dir(one.join("blobs/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let blob = blob.to_str().unwrap();
    server.put(
        BUCKET,
        &format!("fleet/db-1/blobs/sha256/{blob}"),
        b"forged",
    );
    let out = export(&web, &scratch.path().join("forged"), &["--host", "db-1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("blobs/sha256/{blob} does not match its digest")),
        "{}",
        text(&out)
    );
    assert!(
        !scratch.path().join("forged").exists(),
        "no partial bundle is left"
    );
}
