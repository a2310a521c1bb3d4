//! The wall clock stepping back and jumping forward under a running daemon, for real: the
//! agent runs under libfaketime (Debian's `faketime`, installed by `tests/run.sh`), whose
//! offset the test changes in a timestamp file while the daemon runs. Only the wall clock is
//! moved (`FAKETIME_DONT_FAKE_MONOTONIC=1`): tokio's timers and `Instant` keep real time, as
//! they do when an operator or NTP steps the clock.
//!
//! Back 2 minutes: the schedule goes on from the new time (it does not stall until the clock
//! has caught up), the step is logged, and the entries of the first append after it carry
//! `details.clock_anomaly` saying how far behind the last checkpoint the clock was. Forward
//! 12 minutes: the fire times jumped over are recorded as `missed` runs, one by one. Entries
//! stay in leaf order (their times do not), `verify` passes, and a bundle of the whole span,
//! exported on the same clock and verified on the real one, has no gap.

mod common;

use common::process::{sigterm, Log};
use common::{assert_verifies, output_text};
use evidence_agent::statement::{read_unverified, Trigger};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_evidence-agent")
}

/// libfaketime's multi-threaded preload library, wherever Debian's multiarch layout put it.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|arch| arch.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.expect(
        "libfaketime is not installed (Debian package `faketime`; tests/run.sh installs it)",
    )
}

/// The wall-clock offset every faked process reads (libfaketime's relative form, seconds).
struct FakeClock {
    file: PathBuf,
}

impl FakeClock {
    fn new(dir: &Path) -> FakeClock {
        let clock = FakeClock {
            file: dir.join("faketime"),
        };
        clock.set(0);
        clock
    }

    /// Move the faked wall clock to real time + `offset` seconds. Written beside and renamed,
    /// so a reader never sees half a line.
    fn set(&self, offset: i64) {
        let tmp = self.file.with_extension("new");
        std::fs::write(&tmp, format!("{offset:+}\n")).expect("write the faketime file");
        std::fs::rename(&tmp, &self.file).expect("rename the faketime file");
    }

    /// `cmd` under the faked wall clock (re-read at most once a second).
    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    }
}

struct Entry {
    trigger: Trigger,
    scheduled_for: String,
    finished_at: String,
    anomaly: Option<serde_json::Value>,
}

fn entries(ledger: &Path) -> Vec<Entry> {
    let conn = Connection::open_with_flags(ledger, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare("SELECT envelope FROM entries ORDER BY idx")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
    rows.map(|envelope| {
        let p = read_unverified(&envelope.unwrap()).unwrap().predicate;
        Entry {
            trigger: p.trigger,
            scheduled_for: p.scheduled_for,
            finished_at: p.finished_at,
            anomaly: p.details.get("clock_anomaly").cloned(),
        }
    })
    .collect()
}

fn time(t: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(t)
        .expect("an RFC 3339 time")
        .to_utc()
}

#[test]
fn the_clock_stepping_back_is_recorded_and_jumping_forward_records_missed_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"host_id = "clock-host"
data_dir = "{}"
min_free_disk_mib = 0

[[collectors]]
id = "tick"
kind = "command"
schedule = "* * * * * *"
argv = ["echo", "tick"]
"#,
            data.display()
        ),
    )
    .unwrap();
    let clock = FakeClock::new(dir.path());
    let mut cmd = Command::new(bin());
    clock
        .apply(&mut cmd)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut daemon = cmd.spawn().expect("start the daemon under libfaketime");
    let mut log = Log::follow(daemon.stderr.take().expect("piped stderr"));
    let runs = |l: &str| l.contains("run recorded");
    log.wait_count("3 runs on the real time", 3, runs);

    clock.set(-120);
    log.wait_count("the scheduler seeing the step back", 1, |l| {
        l.contains("the wall clock went back; the schedule goes on")
    });
    log.wait_count("the ledger recording the step back", 1, |l| {
        l.contains("behind the time of the last checkpoint")
    });
    let before_jump = log.count(runs);
    log.wait_count("3 runs after the step back", before_jump + 3, runs);

    clock.set(600);
    log.wait_count("the runs jumped over", 1, |l| l.contains("runs missed"));
    let after_jump = log.count(runs);
    log.wait_count("2 runs after the jump", after_jump + 2, runs);
    sigterm(&daemon);
    let status = daemon.wait().expect("reap the daemon");
    assert!(status.success(), "daemon: {status}\n{}", log.rest());
    assert_verifies(&data, "after the clock steps");

    let all = entries(&data.join("ledger.sqlite"));
    // The step back: one append's entries carry the anomaly, and they are the first whose
    // times fall behind those before them.
    let flagged: Vec<usize> = (0..all.len())
        .filter(|i| all[*i].anomaly.is_some())
        .collect();
    assert!(!flagged.is_empty(), "no entry records the step back");
    let first = flagged[0];
    assert!(first > 0, "the first entry cannot be behind anything");
    assert_eq!(
        flagged,
        (first..first + flagged.len()).collect::<Vec<_>>(),
        "the anomaly is on one append's entries only"
    );
    let anomaly = all[first].anomaly.as_ref().unwrap();
    assert_eq!(anomaly["kind"], "wall_clock_went_back", "{anomaly}");
    let behind = anomaly["behind_ms"].as_i64().expect("behind_ms");
    // 120 s back, less the real time between the last checkpoint and the append that saw it.
    assert!((60_000..=120_000).contains(&behind), "{anomaly}");
    let (prev, this) = (&all[first - 1], &all[first]);
    assert!(
        time(&this.finished_at) < time(&prev.finished_at),
        "entry {first} ({}) is not behind entry {} ({})",
        this.finished_at,
        first - 1,
        prev.finished_at
    );
    // Fire times already run were run again rather than waited for.
    let run_before: std::collections::HashSet<&str> = all[..first]
        .iter()
        .map(|e| e.scheduled_for.as_str())
        .collect();
    assert!(
        all[first..]
            .iter()
            .any(|e| run_before.contains(e.scheduled_for.as_str())),
        "no fire time was run again after the step back"
    );

    // The jump forward: about 720 fire times recorded as missed, one entry each.
    let missed: Vec<&Entry> = all
        .iter()
        .filter(|e| e.trigger == Trigger::Missed)
        .collect();
    assert!(
        (700..=1000).contains(&missed.len()),
        "{} missed runs recorded for a 12-minute jump",
        missed.len()
    );

    eprintln!(
        "{} entries; step back seen {behind} ms behind by entries {first}..{}; {} missed runs",
        all.len(),
        first + flagged.len(),
        missed.len()
    );

    // A bundle of the whole span, exported on the agent's clock and verified on the real
    // one: every fire time has an entry, duplicates and all.
    let from = all.iter().map(|e| time(&e.scheduled_for)).min().unwrap();
    let to =
        all.iter().map(|e| time(&e.scheduled_for)).max().unwrap() + chrono::Duration::seconds(1);
    let bundle = dir.path().join("bundle");
    let mut export = Command::new(bin());
    clock
        .apply(&mut export)
        .arg("--data-dir")
        .arg(&data)
        .arg("export")
        .args([
            "--from",
            &from.to_rfc3339(),
            "--to",
            &to.to_rfc3339(),
            "--out",
        ])
        .arg(&bundle);
    let out = export.output().expect("run export");
    assert!(out.status.success(), "export: {}", output_text(&out));
    let verify = Command::new(bin())
        .arg("verify")
        .arg(&bundle)
        .output()
        .expect("run verify");
    assert!(verify.status.success(), "verify: {}", output_text(&verify));
}
