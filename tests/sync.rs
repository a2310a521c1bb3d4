//! S3 sync end to end: the real `evidence-agent` binary against a real S3-compatible server
//! (moto's server mode, started by these tests on 127.0.0.1), with the bucket looked at from
//! outside through a plain S3 client (boto3) and the downloaded prefix checked by the
//! independent Python verifier. No assertion depends on how fast the machine is: waits poll
//! for a state, with generous deadlines that only bound a hung test.

mod common;

use chrono::{TimeZone, Utc};
use common::daemon::{agent_command, finish, sigterm, start, DEADLINE};
use common::s3::{FaultProxy, Faults, ObjectVersion, S3Server};
use evidence_agent::keys;
use evidence_agent::ledger::{Ledger, NewEntry, Outcome};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BUCKET: &str = "evidence-test";
const HOST: &str = "sync-host";
/// The host's directory in the bucket (`prefix = "ev"`).
const HOST_PREFIX: &str = "ev/sync-host/";

/// A host: data directory, key and configuration pointing at an S3 endpoint.
struct Host {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Host {
    /// `extra_s3` lines go into the `[s3]` table; `schedule` is the one collector's schedule.
    fn new(endpoint: &str, extra_s3: &str, schedule: &str) -> Host {
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

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn ledger_path(&self) -> PathBuf {
        self.data().join("ledger.sqlite")
    }

    fn vkey(&self) -> PathBuf {
        self.data().join("keys/host.vkey")
    }

    fn command(&self, args: &[&str]) -> Command {
        agent_command(&self.config, args)
    }

    fn agent(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run evidence-agent")
    }

    /// Append `n` entries with distinct content through the library, in batches of 7.
    fn append(&self, n: u64) {
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

    fn size(&self) -> u64 {
        Ledger::open_read_only(&self.ledger_path())
            .and_then(|l| l.size())
            .expect("read the ledger size")
    }

    /// Objects S3 confirmed, as the ledger records them.
    fn confirmed_uploads(&self) -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            self.ledger_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open ledger read-only");
        conn.query_row("SELECT count(*) FROM sync_uploads", [], |r| r.get(0))
            .unwrap_or(0)
    }
}

fn entry(i: u64) -> NewEntry {
    let outcome = if i % 11 == 10 {
        Outcome::Failed(format!("cannot read /etc/app/{i}.conf"))
    } else {
        let pad = "x".repeat(300);
        common::ok_json(
            format!("{{\"items\":[{{\"id\":\"user-{i}\",\"pad\":\"{pad}\"}}]}}"),
            None,
        )
    };
    let start = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single();
    common::test_entry(i, start.expect("valid time"), outcome)
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn server_with_bucket(object_lock: bool) -> S3Server {
    let server = S3Server::start();
    server.create_bucket(BUCKET, object_lock);
    server
}

/// Download the host's prefix with the plain client and run the independent verifier on it.
fn assert_prefix_verifies(server: &S3Server, host: &Host) {
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
fn s3_tree_size(server: &S3Server) -> Option<u64> {
    let bytes = server.get(BUCKET, &format!("{HOST_PREFIX}checkpoint"))?;
    let text = String::from_utf8(bytes).ok()?;
    text.lines().nth(1)?.parse().ok()
}

/// Every write-once key has exactly one version (nothing was written twice, let alone with
/// other bytes); `checkpoint` may have several.
fn assert_written_once(versions: &[ObjectVersion]) {
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
fn logged_tree_size(line: &str) -> Option<u64> {
    let rest = &line[line.find("tree_size=")? + "tree_size=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[test]
fn a_synced_prefix_alone_verifies_and_a_second_sync_uploads_only_what_is_new() {
    let server = server_with_bucket(false);
    let host = Host::new(&server.endpoint(), "", "@daily");
    host.append(300);

    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "sync: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tree size 300"), "{stdout}");
    assert_eq!(s3_tree_size(&server), Some(300));
    assert_prefix_verifies(&server, &host);

    let status = host.agent(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.contains("synced    tree size 300 of 300"),
        "{status_text}"
    );
    assert!(
        status_text.contains("backlog   0 objects, 0 bytes"),
        "{status_text}"
    );

    // Nothing new: nothing uploaded.
    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" 0 objects uploaded"),
        "{}",
        text(&out)
    );

    // 40 more entries: the backlog shows them, one sync moves S3 to 340 and the prefix verifies.
    host.append(40);
    let status = host.agent(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.contains("synced    tree size 300 of 340"),
        "{status_text}"
    );
    assert!(
        status_text.contains("oldest pending entry finished"),
        "{status_text}"
    );
    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s3_tree_size(&server), Some(340));
    assert_prefix_verifies(&server, &host);
    let versions = server.versions(BUCKET, HOST_PREFIX);
    assert_written_once(&versions);

    // Someone deletes S3's `checkpoint` and a blob (every version; no Object Lock here): the
    // next sync says so, puts back what is missing, and the prefix verifies again.
    let pointer = format!("{HOST_PREFIX}checkpoint");
    let blob = versions
        .iter()
        .find(|v| v.key.contains("/blobs/sha256/"))
        .expect("a blob")
        .key
        .clone();
    for v in versions
        .iter()
        .filter(|v| v.key == pointer || v.key == blob)
    {
        assert_eq!(
            server.delete_version(BUCKET, &v.key, &v.version_id),
            "deleted"
        );
    }
    assert_eq!(s3_tree_size(&server), None);
    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("is missing"), "{}", text(&out));
    assert_eq!(s3_tree_size(&server), Some(340));
    assert!(server.get(BUCKET, &blob).is_some(), "{blob} is back");
    assert_prefix_verifies(&server, &host);
    let status = host.agent(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("ALARM"),
        "{}",
        text(&status)
    );
}

#[test]
fn with_object_lock_every_write_once_object_is_retained_and_deletes_are_refused() {
    let server = server_with_bucket(true);
    let host = Host::new(
        &server.endpoint(),
        "object_lock_mode = \"GOVERNANCE\"\nobject_lock_days = 2",
        "@daily",
    );
    host.append(20);
    let before = Utc::now();
    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "sync: {}", text(&out));

    let versions = server.versions(BUCKET, HOST_PREFIX);
    assert!(versions.len() > 20, "{versions:?}");
    let mut blob = None;
    for v in &versions {
        if v.key.ends_with("/checkpoint") {
            // The pointer moves with every sync, so it carries no retention.
            assert_eq!(v.lock_mode, None, "{v:?}");
            continue;
        }
        assert_eq!(v.lock_mode.as_deref(), Some("GOVERNANCE"), "{v:?}");
        let until = v
            .retain_until
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .unwrap_or_else(|| panic!("no retain-until on {v:?}"));
        let days = until.signed_duration_since(before).num_hours();
        assert!((47..=49).contains(&days), "{v:?}: retained for {days} h");
        if v.key.contains("/blobs/sha256/") {
            blob = Some(v.clone());
        }
    }
    let blob = blob.expect("a blob was uploaded");
    assert_eq!(
        server.delete_version(BUCKET, &blob.key, &blob.version_id),
        "AccessDenied"
    );
    assert!(
        server.get(BUCKET, &blob.key).is_some(),
        "the blob is still there"
    );
    assert_prefix_verifies(&server, &host);
}

#[test]
fn a_server_killed_mid_sync_ends_complete_after_restart_without_rewrites() {
    let mut server = server_with_bucket(true);
    // Every request passes a proxy (without faults), whose connection count says when uploads
    // are under way (moto closes each connection after one request).
    let proxy = FaultProxy::start(server.port(), Faults::none());
    let host = Host::new(
        &proxy.endpoint(),
        "object_lock_mode = \"GOVERNANCE\"\nobject_lock_days = 1",
        "@daily",
    );
    host.append(400);

    let sync = host
        .command(&["sync"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sync");
    // The anchoring GET, then at least 69 PUTs started, of which at most 8 are still in flight.
    assert!(
        proxy.wait_for_connections(70, DEADLINE),
        "the sync never got under way"
    );
    server.kill();
    let out = finish(sync, "sync with the server gone");
    assert!(
        !out.status.success(),
        "sync must fail while S3 is gone: {}",
        text(&out)
    );
    assert!(text(&out).contains("still pending"), "{}", text(&out));
    let confirmed = host.confirmed_uploads();
    assert!(confirmed >= 50, "{confirmed}");

    server.restart();
    let out = host.agent(&["sync"]);
    assert!(
        out.status.success(),
        "sync after the restart: {}",
        text(&out)
    );
    assert_eq!(s3_tree_size(&server), Some(400));
    assert_prefix_verifies(&server, &host);
    assert_written_once(&server.versions(BUCKET, HOST_PREFIX));
}

#[test]
fn a_proxy_dropping_connections_and_throttling_is_retried_until_s3_is_complete() {
    let server = server_with_bucket(false);
    let proxy = FaultProxy::start(
        server.port(),
        Faults {
            drop_every: Some(5),
            slowdown_every: Some(7),
        },
    );
    let host = Host::new(&proxy.endpoint(), "", "@daily");
    host.append(300);

    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = host.agent(&["sync"]);
        if out.status.success() {
            break;
        }
        assert!(
            attempts < 30,
            "still failing after {attempts} syncs: {}",
            text(&out)
        );
    }
    assert!(proxy.dropped() > 0, "no connection was dropped");
    assert!(proxy.slowdowns() > 0, "no request was throttled");
    assert_eq!(s3_tree_size(&server), Some(300));
    assert_prefix_verifies(&server, &host);
    assert_written_once(&server.versions(BUCKET, HOST_PREFIX));
}

#[test]
fn the_daemon_collects_through_an_outage_and_drains_the_backlog_when_s3_returns() {
    let server = server_with_bucket(false);
    let proxy = FaultProxy::start(server.port(), Faults::none());
    proxy.go_down();
    // A run every second: collection goes on while S3 is unreachable.
    let host = Host::new(&proxy.endpoint(), "", "* * * * * *");
    let (daemon, mut log) = start(host.command(&["run"]));
    log.wait_count("5 runs recorded during the outage", 5, |l| {
        l.contains("run recorded")
    });
    log.wait_count("a failed sync pass", 1, |l| l.contains("failed (attempt"));
    assert!(host.size() >= 5);
    let status = host.agent(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status_text.contains("  error     "), "{status_text}");
    assert!(
        status_text.contains("synced    tree size 0 of"),
        "{status_text}"
    );

    // The daemon holds the sync lock: a second syncer is turned away.
    let out = host.agent(&["sync"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("another evidence-agent process"),
        "{}",
        text(&out)
    );

    proxy.come_up();
    let collected = host.size();
    log.wait_count(
        "a pass that brings S3 up to the entries collected",
        1,
        |l| l.contains("synced to") && logged_tree_size(l).is_some_and(|s| s >= collected),
    );
    assert!(s3_tree_size(&server).is_some_and(|s| s >= collected));
    sigterm(&daemon);
    let out = finish(daemon, "the daemon after SIGTERM");
    let log = log.rest();
    assert!(out.status.success(), "daemon: {}\n{log}", text(&out));
    assert!(log.contains("works again"), "the recovery is logged: {log}");
    // Whatever the daemon appended after its last pass goes up with one more sync.
    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s3_tree_size(&server), Some(host.size()));
    assert_prefix_verifies(&server, &host);
    assert_written_once(&server.versions(BUCKET, HOST_PREFIX));
}

#[test]
fn a_rolled_back_or_replaced_ledger_is_refused() {
    let server = server_with_bucket(false);
    let host = Host::new(&server.endpoint(), "", "@daily");
    host.append(10);
    assert!(host.agent(&["sync"]).status.success());
    // The copy an attacker (or a careless restore) will put back. The sync process closed the
    // ledger, so the database file holds everything (no WAL left).
    let old = host.dir.path().join("old.sqlite");
    std::fs::copy(host.ledger_path(), &old).expect("copy ledger");
    host.append(5);
    assert!(host.agent(&["sync"]).status.success());
    assert_eq!(s3_tree_size(&server), Some(15));

    std::fs::copy(&old, host.ledger_path()).expect("restore the old copy");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(host.data().join(format!("ledger.sqlite{suffix}")));
    }
    for args in [&["sync"][..], &["collect"], &["run"]] {
        let child = host
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the agent");
        let out = finish(child, &format!("{args:?} on a rolled-back ledger"));
        assert!(
            !out.status.success(),
            "{args:?} must refuse: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("rolled back or replaced"),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(
        host.size(),
        10,
        "nothing was appended to the rolled-back ledger"
    );

    // A different ledger of the same size or larger under the same key: not consistent.
    std::fs::remove_file(host.ledger_path()).expect("remove ledger");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(host.data().join(format!("ledger.sqlite{suffix}")));
    }
    let name = keys::key_name(HOST);
    let signer = keys::load(&host.data().join("keys/host.key"), Some(&name)).expect("key");
    let mut forged = Ledger::open(&host.ledger_path(), HOST, signer).expect("open");
    forged
        .append((100..120).map(entry).collect())
        .expect("append");
    drop(forged);
    let out = host.agent(&["sync"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not consistent"), "{}", text(&out));
    assert_eq!(s3_tree_size(&server), Some(15), "S3 is untouched");
}

#[test]
fn a_key_holding_other_bytes_is_an_alarm_and_is_never_overwritten() {
    let server = server_with_bucket(false);
    let host = Host::new(&server.endpoint(), "", "@daily");
    host.append(5);
    let ledger = Ledger::open_read_only(&host.ledger_path()).expect("ledger");
    let plan = ledger
        .sync_plan(&format!("s3://{BUCKET}/{HOST_PREFIX}"))
        .expect("plan");
    let blob = plan.stages[0]
        .iter()
        .find(|o| o.key.starts_with("blobs/"))
        .expect("a blob is pending")
        .key
        .clone();
    drop(ledger);
    let squatted = format!("{HOST_PREFIX}{blob}");
    server.put(BUCKET, &squatted, b"not the evidence");

    let out = host.agent(&["sync"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("different bytes"), "{}", text(&out));
    assert_eq!(
        server.get(BUCKET, &squatted).as_deref(),
        Some(&b"not the evidence"[..]),
        "never overwritten"
    );
    assert_eq!(
        s3_tree_size(&server),
        None,
        "the checkpoint is not moved past it"
    );
    let status = host.agent(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status_text.contains("ALARM"), "{status_text}");
    assert!(status_text.contains(&blob), "{status_text}");
}

#[test]
fn a_checkpoint_in_s3_not_signed_by_the_host_is_an_alarm_and_collection_goes_on() {
    let server = server_with_bucket(false);
    let host = Host::new(&server.endpoint(), "", "@daily");
    host.append(3);
    server.put(
        BUCKET,
        &format!("{HOST_PREFIX}checkpoint"),
        "evidence-agent/sync-host\n99\nAAAA\n\n\u{2014} someone else\n".as_bytes(),
    );
    let out = host.agent(&["sync"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("is not a checkpoint signed by this host's key"),
        "{}",
        text(&out)
    );
    // Not a proof that the local ledger is behind: collection is not stopped.
    let out = host.agent(&["collect"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(host.size(), 4);
    let status = host.agent(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status_text.contains("ALARM"), "{status_text}");
    assert!(
        status_text.contains("not syncing until it is looked at"),
        "{status_text}"
    );
}
