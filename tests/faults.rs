//! Faults the agent must survive, with the real binary on real files.
//!
//! Disk full: the data directory is a small tmpfs (mounted by the test, as root), the disk floor
//! is off, and a collector writes 3 MB of random bytes per run until the filesystem has no room.
//! Every `collect` must then either record its runs (a snapshot that does not fit as a `failed`
//! entry saying so) or end with an error saying the disk is full and what to do (never a
//! panic); `verify` must pass after each one; nothing committed may change or disappear; and
//! once the filesystem grows again, the next `collect` records its runs as before.

mod common;

use common::{assert_verifies, committed};
use rusqlite::{Connection, OpenFlags};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
