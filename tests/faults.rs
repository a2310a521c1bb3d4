//! Faults the agent must survive, with the real binary on real files.
//!
//! Disk full: the data directory is a small tmpfs (mounted by the test, as root), the disk floor
//! is off, and a collector writes 3 MB of random bytes per run until the filesystem has no room.
//! Every `collect` must then either record its runs (a snapshot that does not fit as a `failed`
//! entry saying so) or end with an error saying the disk is full and what to do (never a
//! panic); `verify` must pass after each one; nothing committed may change or disappear; and
//! once the filesystem grows again, the next `collect` records its runs as before.
//!
//! Export killed: `evidence-agent export` of a ledger big enough to take a while is killed
//! with SIGKILL while it writes its staging directory (directory bundle) and while it packs
//! the archive (`.tar.gz`). Nothing may stand at the output path, the ledger must be unchanged
//! and verify, and the next export to the same path must succeed, verify, and remove what the
//! killed one left (`.evidence-bundle-*`), but not the work of an export still running.

mod common;

use common::{assert_verifies, committed};
use rusqlite::{Connection, OpenFlags};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_evidence-agent")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A tmpfs mounted on a directory of the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let options = format!("size={size},mode=0700");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(path)
            .output()
            .ok()?;
        out.status.success().then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {}", text(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).output();
    }
}

/// Status and error of every entry, in order.
fn statuses(ledger: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = Connection::open_with_flags(ledger, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare("SELECT collector_id, status, envelope FROM entries ORDER BY idx")
        .unwrap();
    stmt.query_map([], |r| {
        let envelope: Vec<u8> = r.get(2)?;
        Ok((r.get(0)?, r.get(1)?, envelope))
    })
    .unwrap()
    .map(|row| {
        let (id, status, envelope) = row.unwrap();
        let statement = evidence_agent::statement::read_unverified(&envelope).unwrap();
        (id, status, statement.predicate.error)
    })
    .collect()
}

fn collect(config: &Path) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .arg("collect")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_fails_runs_clearly_corrupts_nothing_and_collection_resumes_with_space() {
    // SAFETY: geteuid(2) only reads the process's effective user id.
    if unsafe { libc::geteuid() } != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED disk-full test: mounting a small tmpfs needs root ***\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(disk) = Tmpfs::mount(&data, "16m") else {
        panic!("cannot mount a tmpfs on {} as root", data.display());
    };
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"host_id = "full-host"
data_dir = "{}"
min_free_disk_mib = 0

[[collectors]]
id = "big"
kind = "command"
schedule = "@daily"
argv = ["head", "-c", "3000000", "/dev/urandom"]

[[collectors]]
id = "small"
kind = "command"
schedule = "@daily"
argv = ["echo", "still here"]
"#,
            data.display()
        ),
    )
    .unwrap();
    let ledger = data.join("ledger.sqlite");

    // Fill the disk: each round adds 3 MB that cannot be deduplicated.
    let mut before = Vec::new();
    let mut refused = Vec::new();
    for round in 0..12 {
        let out = collect(&config);
        let said = text(&out);
        assert!(!said.contains("panicked"), "round {round}: {said}");
        if !out.status.success() {
            refused.push(said);
        }
        assert_verifies(&data, &format!("after round {round}"));
        let now = committed(&ledger);
        assert!(
            now.len() >= before.len(),
            "round {round}: entries disappeared"
        );
        assert_eq!(
            now[..before.len()],
            before[..],
            "round {round}: committed entries changed"
        );
        before = now;
    }
    let recorded = statuses(&ledger);
    let full: Vec<_> = recorded
        .iter()
        .filter(|(id, status, _)| id == "big" && status == "failed")
        .collect();
    // A run whose snapshot does not fit is a `failed` entry; once not even the start of a run
    // can be written, `collect` refuses with the reason.
    assert!(
        !full.is_empty() || !refused.is_empty(),
        "the disk never filled: {recorded:?}"
    );
    for (_, _, error) in &full {
        let error = error.as_deref().unwrap_or_default();
        assert!(
            error.contains("No space left on device")
                || error.contains("holding the ledger is full"),
            "a failed run does not say the disk is full: {error}"
        );
    }
    for said in &refused {
        let last = said.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.contains("the filesystem holding the ledger is full; free space there"),
            "a refused collect does not say the disk is full and what to do: {said}"
        );
    }

    // Space returns: the next collect records both runs as before.
    disk.resize("64m");
    let out = collect(&config);
    assert!(out.status.success(), "after the disk grew: {}", text(&out));
    assert_verifies(&data, "after the disk grew");
    let after = committed(&ledger);
    assert_eq!(after[..before.len()], before[..]);
    let last_two = &statuses(&ledger)[before.len()..];
    assert_eq!(last_two.len(), 2, "{last_two:#?}");
    assert!(
        last_two.iter().all(|(_, status, _)| status == "ok"),
        "{last_two:#?}"
    );
}

const EXPORT_HOST: &str = "export-host";

/// A ledger of `n` runs with distinct content, one a minute from 1 March 2026, appended
/// through the library in large batches (as fast as it goes).
fn big_ledger(data: &Path, n: u64) {
    let key = data.join("keys/host.key");
    let name = evidence_agent::keys::key_name(EXPORT_HOST);
    evidence_agent::keys::generate(&key, &name).expect("create the host key");
    let signer = evidence_agent::keys::load(&key, Some(&name)).expect("load the host key");
    let mut ledger =
        evidence_agent::ledger::Ledger::open(&data.join("ledger.sqlite"), EXPORT_HOST, signer)
            .expect("open the ledger");
    let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 1, 0, 0, 0).unwrap();
    for first in (0..n).step_by(500) {
        let batch = (first..(first + 500).min(n))
            .map(|i| {
                let body = format!("{{\"items\":[{{\"id\":\"run-{i}\",\"type\":\"line\"}}]}}");
                common::test_entry(i, start, common::ok_json(body, None))
            })
            .collect();
        ledger.append(batch).expect("append a batch");
    }
}

/// The `.evidence-bundle-*` work files in `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the output directory")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".evidence-bundle-")
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

fn export_command(data: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir")
        .arg(data)
        .args([
            "export",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-01",
            "--out",
        ])
        .arg(out)
        .env("RUST_LOG", "info");
    cmd
}

/// Start an export to `out` and SIGKILL it as soon as `landed` holds for its output
/// directory (polled; the moment is an event, not a time). Panics if the export ends first.
fn kill_export_when(data: &Path, out: &Path, landed: impl Fn(&Path) -> bool) {
    let parent = out.parent().expect("the output has a directory");
    let mut child = export_command(data, out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the export");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !landed(parent) {
        if let Some(status) = child.try_wait().expect("poll the export") {
            panic!("the export ended ({status}) before the moment to kill it");
        }
        assert!(Instant::now() < deadline, "the moment to kill never came");
        std::thread::park_timeout(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL the export");
    child.wait().expect("reap the export");
}

#[test]
fn an_export_killed_mid_write_leaves_no_bundle_and_the_next_export_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    big_ledger(&data, 24 * 60);
    let ledger = data.join("ledger.sqlite");
    let before = committed(&ledger);
    let vkey = data.join("keys/host.vkey");
    let outputs = dir.path().join("out");
    std::fs::create_dir_all(&outputs).unwrap();
    // The work of an export that is still running (its lock is held): never touched.
    let live = outputs.join(".evidence-bundle-live");
    std::fs::create_dir_all(live.join("entries")).unwrap();
    let live_lock = evidence_agent::bundle::staging::hold(&live).expect("lock the live dir");

    // A directory bundle: killed while its entries are being written into the staging dir.
    let out = outputs.join("bundle");
    kill_export_when(&data, &out, |d| {
        leftovers(d)
            .iter()
            .any(|p| p != &live && p.join("entries").exists())
    });
    // A .tar.gz: killed while the archive is being packed beside it.
    let archive = outputs.join("bundle.tar.gz");
    kill_export_when(&data, &archive, |d| {
        leftovers(d)
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".partial"))
    });

    assert!(!out.exists(), "a half bundle stands at {}", out.display());
    assert!(
        !archive.exists(),
        "a half archive stands at {}",
        archive.display()
    );
    let left = leftovers(&outputs);
    assert!(
        left.len() >= 3,
        "the kills did not land mid-write (live dir, a staging dir, a partial archive expected): {left:?}"
    );
    assert_eq!(committed(&ledger), before, "the ledger changed");
    assert_verifies(&data, "after the killed exports");

    for out in [&out, &archive] {
        let export = export_command(&data, out).output().expect("run export");
        assert!(export.status.success(), "export again: {}", text(&export));
        let verify = Command::new(bin())
            .arg("verify")
            .arg(out)
            .arg("--vkey")
            .arg(&vkey)
            .output()
            .expect("run verify");
        assert!(
            verify.status.success(),
            "{}: {}",
            out.display(),
            text(&verify)
        );
    }
    assert_eq!(
        leftovers(&outputs),
        vec![live.clone()],
        "the killed exports' work files were not removed, or the live one was"
    );
    drop(live_lock);
    assert_eq!(committed(&ledger), before, "the ledger changed");
}
