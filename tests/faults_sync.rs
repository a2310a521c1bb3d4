//! SIGKILL during sync, with the real binary against moto behind the fault proxy.
//!
//! The proxy holds the connection of one chosen request (it is never forwarded), so the kill
//! lands while that upload is in flight: half-way through the key and blobs, through the tiles
//! and entry bundles, through `checkpoints/<size>`, and on the PUT of `checkpoint` itself. The
//! chosen connection number comes from the ledger's own sync plan and what S3 already holds
//! (a PUT S3 refuses with 412 is read back: two connections). After every kill nothing
//! committed changes, `verify` passes and S3's `checkpoint` has not moved (what it shows still
//! verifies); the next sync completes, and S3 then holds exactly what one clean sync of the
//! same ledger puts in another server, its `checkpoint` is the local one, and a fleet export
//! from S3 verifies. The daemon, killed twice mid-pass, catches up the same way.

mod common;

use common::bundle::files_under;
use common::process::{sigterm, DEADLINE};
use common::s3::host::{
    assert_prefix_verifies, assert_written_once, logged_tree_size, s3_tree_size,
    server_with_bucket, text, Host, BUCKET, HOST_PREFIX,
};
use common::s3::{FaultProxy, Faults, S3Server};
use common::{assert_verifies, committed};
use evidence_agent::ledger::Ledger;
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Entries synced: 100 minutes of runs from 2026-06-01 00:00 (see `host::entry`).
const ENTRIES: u64 = 100;
const PERIOD: [&str; 4] = [
    "--from",
    "2026-06-01T00:00:00Z",
    "--to",
    "2026-06-01T01:40:00Z",
];

/// Where the kill lands.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// Half-way through the stage of the plan whose keys start so: `blobs/` (with
    /// `key.vkey`), `tile/` (hash tiles and entry bundles), `checkpoints/`.
    MidStage(&'static str),
    /// On the PUT of `checkpoint`, every other object confirmed.
    Pointer,
}

/// The keys S3 holds under the host's prefix.
fn s3_keys(server: &S3Server) -> HashSet<String> {
    server
        .versions(BUCKET, HOST_PREFIX)
        .into_iter()
        .map(|v| v.key)
        .collect()
}

/// The number, counted from the next connection the proxy accepts, of the request a pass
/// makes at `moment`, after `anchors` reads of `checkpoint`, when S3 holds the keys `held`.
/// Objects S3 holds already cost two connections (the refused PUT and the read-back), the
/// others one.
fn connection_at(host: &Host, held: &HashSet<String>, anchors: u64, moment: Moment) -> u64 {
    let location = format!("s3://{BUCKET}/{HOST_PREFIX}");
    let plan = Ledger::open_read_only(&host.ledger_path())
        .and_then(|l| l.sync_plan(&location))
        .expect("read the sync plan");
    let cost = |key: &str| {
        if held.contains(&format!("{HOST_PREFIX}{key}")) {
            2
        } else {
            1
        }
    };
    let stage_cost = |s: &[_]| -> u64 {
        s.iter()
            .map(|o: &evidence_agent::ledger::sync_state::PendingObject| cost(&o.key))
            .sum()
    };
    let upto = match moment {
        Moment::MidStage(prefix) => {
            // Stages with nothing pending are left out of the plan.
            let n = plan
                .stages
                .iter()
                .position(|s| s.iter().any(|o| o.key.starts_with(prefix)))
                .unwrap_or_else(|| panic!("no {prefix} object is pending"));
            let stage = &plan.stages[n];
            let before: u64 = plan.stages[..n].iter().map(|s| stage_cost(s)).sum();
            before + stage_cost(&stage[..stage.len() / 2])
        }
        Moment::Pointer => plan.stages.iter().map(|s| stage_cost(s)).sum(),
    };
    anchors + upto + 1
}

/// Hold connection `at` (counted from now) and every later one, start `args`, and SIGKILL
/// it once connection `at` arrives; then let the proxy settle (every forwarded request
/// answered), so S3 is what the killed process left.
fn kill_at(host: &Host, proxy: &FaultProxy, at: u64, args: &[&str]) {
    let target = proxy.connections() + at;
    proxy.hold_from(target);
    let mut child = host
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    let deadline = Instant::now() + DEADLINE;
    while !proxy.wait_for_connections(target, Duration::from_millis(50)) {
        if let Some(status) = child.try_wait().expect("poll the agent") {
            panic!("{args:?} ended ({status}) before connection {target}");
        }
        assert!(Instant::now() < deadline, "connection {target} never came");
    }
    child.kill().expect("SIGKILL the agent");
    let status = child.wait().expect("reap the agent");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{args:?}: {status}");
    proxy.release_held();
    let deadline = Instant::now() + DEADLINE;
    while proxy.open_connections() > 0 {
        assert!(Instant::now() < deadline, "the proxy never settled");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// What must hold after a kill, given what S3 then holds: the entries committed before are
/// unchanged, the ledger verifies, and S3's `checkpoint` has not moved (the pass that would
/// have moved it was killed). Returns the keys S3 holds.
fn assert_intact(
    host: &Host,
    server: &S3Server,
    before: &[(i64, Vec<u8>)],
    when: &str,
) -> HashSet<String> {
    let now = committed(&host.ledger_path());
    assert_eq!(now[..before.len()], before[..], "{when}: entries changed");
    assert_verifies(&host.data(), when);
    let keys = s3_keys(server);
    let pointer = format!("{HOST_PREFIX}checkpoint");
    assert!(!keys.contains(&pointer), "{when}: checkpoint moved");
    keys
}

/// S3 is complete and consistent: `checkpoint` is the local latest, every object was written
/// once, the prefix verifies independently, and a fleet export from S3 verifies.
fn assert_s3_complete(host: &Host, server: &S3Server) {
    let size = host.size();
    assert_eq!(s3_tree_size(server), Some(size));
    let local = Ledger::open_read_only(&host.ledger_path())
        .and_then(|l| l.checkpoint(size))
        .expect("read the local checkpoint")
        .expect("the local checkpoint of the whole tree");
    let remote = server
        .get(BUCKET, &format!("{HOST_PREFIX}checkpoint"))
        .expect("S3's checkpoint");
    assert_eq!(String::from_utf8_lossy(&remote), local.note);
    assert_written_once(&server.versions(BUCKET, HOST_PREFIX));
    assert_prefix_verifies(server, host);

    let scratch = tempfile::tempdir().expect("temp dir");
    let bundle = scratch.path().join("fleet.tar.gz");
    let mut args = vec!["export", "--source", "s3://evidence-test/ev"];
    args.extend_from_slice(&PERIOD);
    args.extend_from_slice(&["--out", bundle.to_str().expect("UTF-8 path")]);
    let out = host.agent(&args);
    assert!(out.status.success(), "fleet export: {}", text(&out));
    let vkey = host.vkey();
    let vkey = vkey.to_str().expect("UTF-8 path");
    let verify = host.agent(&["verify", bundle.to_str().expect("UTF-8"), "--vkey", vkey]);
    assert!(verify.status.success(), "{}", text(&verify));
}

/// moto, the proxy in front of it, and a host syncing through the proxy with [`ENTRIES`]
/// entries to sync.
fn proxied_host() -> (S3Server, FaultProxy, Host) {
    let server = server_with_bucket(false);
    let proxy = FaultProxy::start(server.port(), Faults::none());
    let host = Host::new(&proxy.endpoint(), "", "@daily");
    host.append(ENTRIES);
    (server, proxy, host)
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = files_under(dir)
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(dir.join(&rel)).expect("read a downloaded object");
            (rel, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn sync_killed_at_each_stage_resumes_and_ends_as_a_clean_sync_would() {
    let (server, proxy, host) = proxied_host();
    // The same ledger and key, synced once without trouble to a server of its own.
    let clean_server = server_with_bucket(false);
    let clean = Host::new(&clean_server.endpoint(), "", "@daily");
    for file in ["ledger.sqlite", "keys/host.key", "keys/host.vkey"] {
        std::fs::copy(host.data().join(file), clean.data().join(file)).expect("copy the host");
    }
    let out = clean.agent(&["sync"]);
    assert!(out.status.success(), "clean sync: {}", text(&out));

    let before = committed(&host.ledger_path());
    let mut held = HashSet::new();
    let mut confirmed = 0;
    let moments = [
        Moment::MidStage("blobs/"),
        Moment::MidStage("tile/"),
        Moment::MidStage("checkpoints/"),
        Moment::Pointer,
    ];
    for moment in moments {
        let at = connection_at(&host, &held, 1, moment);
        kill_at(&host, &proxy, at, &["sync"]);
        let when = format!("after a kill at {moment:?}");
        held = assert_intact(&host, &server, &before, &when);
        let now = host.confirmed_uploads();
        assert!(now >= confirmed, "{when}: upload records lost");
        confirmed = now;
    }
    // Killed on the PUT of `checkpoint`: everything else was confirmed and recorded.
    let location = format!("s3://{BUCKET}/{HOST_PREFIX}");
    let plan = Ledger::open_read_only(&host.ledger_path())
        .and_then(|l| l.sync_plan(&location))
        .expect("read the sync plan");
    assert!(
        plan.stages.iter().all(Vec::is_empty) && plan.pointer.is_some(),
        "only `checkpoint` should be left: {:?}",
        plan.stages.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "sync after the kills: {}", text(&out));
    assert_eq!(committed(&host.ledger_path()), before, "entries changed");
    assert_s3_complete(&host, &server);
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    server.download(BUCKET, HOST_PREFIX, ours.path());
    clean_server.download(BUCKET, HOST_PREFIX, theirs.path());
    let (ours, theirs) = (tree(ours.path()), tree(theirs.path()));
    assert_eq!(
        ours.len(),
        theirs.len(),
        "object count differs from a clean sync"
    );
    for ((key, bytes), (clean_key, clean_bytes)) in ours.iter().zip(&theirs) {
        assert_eq!(key, clean_key, "objects differ from a clean sync");
        assert!(bytes == clean_bytes, "{key} differs from a clean sync");
    }
}

#[test]
fn the_daemon_killed_mid_sync_catches_up_after_restart() {
    let (server, proxy, host) = proxied_host();
    let before = committed(&host.ledger_path());
    // The daemon reads `checkpoint` at start, then once per pass. It may record runs (its
    // collector is daily): entries after `before` are new, not changed.
    let mut held = HashSet::new();
    for moment in [Moment::MidStage("blobs/"), Moment::MidStage("checkpoints/")] {
        let at = connection_at(&host, &held, 2, moment);
        kill_at(&host, &proxy, at, &["run"]);
        let when = format!("after the daemon was killed at {moment:?}");
        held = assert_intact(&host, &server, &before, &when);
    }

    let (mut daemon, mut log) = host.start_daemon();
    let size = host.size();
    log.wait_count("a pass that brings S3 up to the ledger", 1, |l| {
        l.contains("synced to") && logged_tree_size(l).is_some_and(|s| s >= size)
    });
    sigterm(&daemon);
    let status = daemon.wait().expect("reap the daemon");
    assert!(status.success(), "daemon: {status}\n{}", log.rest());
    // Whatever the daemon appended after its last pass goes up with one more sync.
    let out = host.agent(&["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_s3_complete(&host, &server);
}
