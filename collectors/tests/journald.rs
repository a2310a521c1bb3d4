//! The `journald` collector against real journal files: entries written in the journal export
//! format (https://systemd.io/JOURNAL_EXPORT_FORMATS/) are turned into `.journal` files by
//! systemd's own `systemd-journal-remote`, and read back by the real `journalctl`.

mod common;

use collectors::{CollectError, Snapshot};
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where Debian (and Fedora) install systemd-journal-remote.
const JOURNAL_REMOTE: &[&str] = &[
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
];
const BOOT_ID: &str = "6c7c6013a8b34d0bb4c7c9a3b4b7f8d1";
/// 2023-11-14T22:13:20Z in microseconds.
const T0: u64 = 1_700_000_000_000_000;

fn journal_remote() -> &'static str {
    JOURNAL_REMOTE
        .iter()
        .copied()
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| {
            panic!(
                "systemd-journal-remote is not installed (looked at {JOURNAL_REMOTE:?}); the \
                 journald tests need it to write journal files: run tests/run.sh, which \
                 installs Debian's systemd-journal-remote"
            )
        })
}

/// One entry of the journal export format: `FIELD=value` lines, then an empty line.
struct Entry {
    second: u64,
    unit: &'static str,
    priority: u8,
    message: String,
}

impl Entry {
    fn new(second: u64, unit: &'static str, priority: u8, message: &str) -> Entry {
        Entry {
            second,
            unit,
            priority,
            message: message.to_owned(),
        }
    }

    fn export(&self) -> String {
        format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={BOOT_ID}\n\
             _HOSTNAME=web-01\n_TRANSPORT=syslog\nSYSLOG_IDENTIFIER={}\n_SYSTEMD_UNIT={}\n\
             PRIORITY={}\nMESSAGE={}\n\n",
            T0 + self.second * 1_000_000,
            1_000_000 + self.second * 1_000_000,
            self.unit.trim_end_matches(".service"),
            self.unit,
            self.priority,
            self.message
        )
    }
}

struct Journal {
    dir: tempfile::TempDir,
    spool: tempfile::TempDir,
    collector: Box<dyn collectors::Collector>,
    cursor: Option<Value>,
}

impl Journal {
    /// A journal directory and a collector reading it with `extra_settings`.
    fn new(extra_settings: &str) -> Journal {
        journal_remote();
        let dir = tempfile::tempdir().unwrap();
        let collector = build(
            "journald",
            &format!(
                "directory = {:?}\n{extra_settings}",
                dir.path().display().to_string()
            ),
        );
        assert!(collector.check().is_empty(), "{:?}", collector.check());
        Journal {
            dir,
            spool: tempfile::tempdir().unwrap(),
            collector,
            cursor: None,
        }
    }

    /// Write `entries` into the journal file `name` (created, or appended to).
    fn write(&self, name: &str, entries: &[Entry]) {
        let output = self.dir.path().join(format!("{name}.journal"));
        let mut child = Command::new(journal_remote())
            .arg(format!("--output={}", output.display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let export: String = entries.iter().map(Entry::export).collect();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(export.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "systemd-journal-remote: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One run as the agent does it: the committed cursor in, the new one kept on success.
    async fn run(&mut self) -> Result<Snapshot, CollectError> {
        let snapshot = self
            .collector
            .collect(ctx_with_cursor(self.spool.path(), self.cursor.clone()))
            .await?;
        assert_eq!(snapshot.media_type, collectors::MEDIA_TYPE_OCTETS);
        self.cursor = snapshot.cursor.clone();
        Ok(snapshot)
    }

    /// A successful run's entries (each line parsed) and the snapshot.
    async fn entries(&mut self) -> (Vec<Value>, Snapshot) {
        let snapshot = self.run().await.expect("the run succeeds");
        let entries = lines(&snapshot);
        assert_eq!(snapshot.item_count, entries.len() as u64);
        assert_eq!(snapshot.details["entries"], entries.len());
        (entries, snapshot)
    }
}

/// The content's lines, each checked to be one JSON object with a cursor.
fn lines(snapshot: &Snapshot) -> Vec<Value> {
    parse_lines(&bytes(snapshot))
}

fn parse_lines(raw: &[u8]) -> Vec<Value> {
    assert!(raw.is_empty() || raw.ends_with(b"\n"));
    raw.split_inclusive(|b| *b == b'\n')
        .map(|line| {
            let entry: Value = serde_json::from_slice(line).expect("a JSON line");
            assert!(entry["__CURSOR"].is_string(), "{entry}");
            entry
        })
        .collect()
}

fn messages(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["MESSAGE"].as_str().expect("a text message"))
        .collect()
}

fn sshd(second: u64, message: &str) -> Entry {
    Entry::new(second, "ssh.service", 6, message)
}

#[tokio::test]
async fn each_entry_is_taken_once_across_runs_and_files() {
    let mut journal = Journal::new("");
    journal.write(
        "a",
        &[
            sshd(
                1,
                "Accepted publickey for alice from 10.0.0.7 port 52144 ssh2",
            ),
            sshd(
                2,
                "pam_unix(sshd:session): session opened for user alice(uid=1000)",
            ),
            Entry::new(3, "cron.service", 6, "(root) CMD (restic backup /srv)"),
        ],
    );
    let (first, snapshot) = journal.entries().await;
    assert_eq!(
        messages(&first),
        [
            "Accepted publickey for alice from 10.0.0.7 port 52144 ssh2",
            "pam_unix(sshd:session): session opened for user alice(uid=1000)",
            "(root) CMD (restic backup /srv)",
        ]
    );
    assert_eq!(first[0]["_SYSTEMD_UNIT"], "ssh.service");
    assert_eq!(
        first[0]["__REALTIME_TIMESTAMP"],
        (T0 + 1_000_000).to_string()
    );
    let details = &snapshot.details;
    let (first_cursor, last_cursor) = (&first[0]["__CURSOR"], &first[2]["__CURSOR"]);
    assert_eq!(&details["first_cursor"], first_cursor);
    assert_eq!(&details["last_cursor"], last_cursor);
    assert_eq!(&details["start_offset"], first_cursor, "for the population");
    assert_eq!(&details["end_offset"], last_cursor);
    assert_eq!(details["path"], journal.dir.path().display().to_string());
    assert_eq!(details["first_realtime"], "2023-11-14T22:13:21.000000Z");
    assert_eq!(details["last_realtime"], "2023-11-14T22:13:23.000000Z");
    assert_eq!(details["after_cursor"], Value::Null, "the first run");
    assert_eq!(details["more_pending"], false);
    assert_eq!(
        snapshot.cursor,
        Some(serde_json::json!({"cursor": last_cursor}))
    );

    // Nothing new: an empty ok snapshot that keeps the cursor.
    let (none, empty) = journal.entries().await;
    assert!(none.is_empty());
    assert_eq!(empty.content.size(), 0);
    assert_eq!(empty.details["after_cursor"], *last_cursor);
    assert_eq!(empty.details["start_offset"], Value::Null);
    assert_eq!(
        empty.cursor,
        Some(serde_json::json!({"cursor": last_cursor}))
    );

    // A second journal file in the same directory, then more in the first one.
    journal.write(
        "b",
        &[sshd(4, "Disconnected from user alice 10.0.0.7 port 52144")],
    );
    let (second, _) = journal.entries().await;
    assert_eq!(
        messages(&second),
        ["Disconnected from user alice 10.0.0.7 port 52144"]
    );
    journal.write(
        "a",
        &[
            sshd(
                5,
                "Failed password for invalid user admin from 203.0.113.9 port 40022 ssh2",
            ),
            sshd(
                6,
                "Connection closed by invalid user admin 203.0.113.9 port 40022",
            ),
        ],
    );
    let (third, snapshot) = journal.entries().await;
    assert_eq!(
        messages(&third),
        [
            "Failed password for invalid user admin from 203.0.113.9 port 40022 ssh2",
            "Connection closed by invalid user admin 203.0.113.9 port 40022",
        ]
    );
    assert_eq!(snapshot.details["after_cursor"], second[0]["__CURSOR"]);
}

#[tokio::test]
async fn the_content_is_journalctls_own_json_lines() {
    let mut journal = Journal::new("");
    journal.write("a", &[sshd(1, "one"), sshd(2, "two \"quoted\" ünïcode")]);
    let (taken, _) = journal.entries().await;
    let direct = Command::new("journalctl")
        .args(["--output=json", "--no-pager"])
        .arg(format!("--directory={}", journal.dir.path().display()))
        .output()
        .unwrap();
    assert!(direct.status.success());
    // The same entries with the same fields; journalctl orders the fields of an entry
    // differently from one invocation to the next (a hash table seeded per process), so the
    // bytes are only comparable line by line as JSON.
    assert_eq!(taken, parse_lines(&direct.stdout));
    assert_eq!(taken[1]["MESSAGE"], "two \"quoted\" ünïcode");
}

#[tokio::test]
async fn units_and_priority_select_entries() {
    let entries = [
        sshd(1, "ssh info"),
        Entry::new(2, "ssh.service", 3, "ssh error"),
        Entry::new(3, "cron.service", 2, "cron critical"),
        Entry::new(4, "nginx.service", 4, "nginx warning"),
        Entry::new(5, "nginx.service", 7, "nginx debug"),
    ];
    let mut by_unit = Journal::new("units = [\"ssh.service\", \"nginx.service\"]");
    by_unit.write("a", &entries);
    let (taken, snapshot) = by_unit.entries().await;
    assert_eq!(
        messages(&taken),
        ["ssh info", "ssh error", "nginx warning", "nginx debug"]
    );
    assert_eq!(
        snapshot.details["units"],
        serde_json::json!(["ssh.service", "nginx.service"])
    );

    let mut by_priority = Journal::new("priority = \"warning\"");
    by_priority.write("a", &entries);
    let (taken, snapshot) = by_priority.entries().await;
    assert_eq!(
        messages(&taken),
        ["ssh error", "cron critical", "nginx warning"]
    );
    assert_eq!(snapshot.details["priority"], "4");

    let mut both = Journal::new("units = [\"ssh.service\"]\npriority = \"3\"");
    both.write("a", &entries);
    let (taken, _) = both.entries().await;
    assert_eq!(messages(&taken), ["ssh error"]);
}

#[tokio::test]
async fn max_entries_splits_the_journal_across_runs() {
    let mut journal = Journal::new("max_entries = 2");
    let entries: Vec<Entry> = (1..=5).map(|i| sshd(i, &format!("line {i}"))).collect();
    journal.write("a", &entries);
    let mut taken = Vec::new();
    for (expected, pending) in [(2, true), (2, true), (1, false), (0, false)] {
        let (batch, snapshot) = journal.entries().await;
        assert_eq!(batch.len(), expected);
        assert_eq!(snapshot.details["more_pending"], pending);
        taken.extend(batch);
    }
    assert_eq!(
        messages(&taken),
        ["line 1", "line 2", "line 3", "line 4", "line 5"]
    );

    // The runs together hold what a single run would have taken.
    let whole = build(
        "journald",
        &format!("directory = {:?}", journal.dir.path().display().to_string()),
    );
    let single = collect(&*whole, journal.spool.path()).await.unwrap();
    assert_eq!(single.item_count, 5);
    assert_eq!(lines(&single), taken);
}

#[tokio::test]
async fn a_cursor_of_another_shape_restarts_from_the_start_with_a_warning() {
    let mut journal = Journal::new("");
    journal.write("a", &[sshd(1, "one"), sshd(2, "two")]);
    journal.cursor = Some(serde_json::json!({"offset": 17}));
    let (taken, snapshot) = journal.entries().await;
    assert_eq!(messages(&taken), ["one", "two"]);
    assert!(has_warning(&snapshot, &["stored cursor is not understood"]));
}

#[tokio::test]
async fn journalctl_failing_fails_the_run_with_its_stderr() {
    let missing = build("journald", "directory = \"/nonexistent/journal\"");
    assert_eq!(missing.check()[0].key.as_deref(), Some("directory"));
    let spool = tempfile::tempdir().unwrap();
    let err = collect(&*missing, spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("journalctl exited with status 1; stderr: ")
            && err.contains("/nonexistent/journal"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("journalctl");
    write_script(
        &fake,
        "#!/bin/sh\necho 'Failed to open journal: Permission denied' >&2\nexit 1\n",
    );
    let failing = build(
        "journald",
        &format!("journalctl = {:?}", fake.display().to_string()),
    );
    let err = collect(&*failing, spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{} exited with status 1; stderr: Failed to open journal: Permission denied",
            fake.display()
        )
    );
}

#[tokio::test]
async fn a_malformed_line_fails_the_run_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let good = r#"{"__CURSOR":"s=1;i=1","__REALTIME_TIMESTAMP":"1700000000000000","MESSAGE":"ok"}"#;
    for (name, second_line, why) in [
        (
            "not-json",
            "-- Logs begin at Tue 2023-11-14 --",
            "not a JSON object",
        ),
        (
            "no-cursor",
            r#"{"MESSAGE":"no cursor"}"#,
            "missing field `__CURSOR`",
        ),
    ] {
        let fake = dir.path().join(name);
        write_script(
            &fake,
            &format!("#!/bin/sh\necho '{good}'\necho '{second_line}'\n"),
        );
        let collector = build(
            "journald",
            &format!("journalctl = {:?}", fake.display().to_string()),
        );
        let cursor = Some(serde_json::json!({"cursor": "s=0;i=9"}));
        let err = collector
            .collect(ctx_with_cursor(spool.path(), cursor))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "{}: line 2 of its output is not usable",
                fake.display()
            )) && err.contains(why),
            "{err}"
        );
    }
    // A bad first line of an output without end: journalctl is stopped, and the line (not
    // the kill) is the reason given.
    let endless = dir.path().join("endless");
    write_script(
        &endless,
        &format!("#!/bin/sh\necho 'garbage'\nexec yes '{good}'\n"),
    );
    let collector = build(
        "journald",
        &format!("journalctl = {:?}", endless.display().to_string()),
    );
    let err = collect(&*collector, spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: line 1 of its output is not usable",
            endless.display()
        )),
        "{err}"
    );

    // A last line cut short (no newline) is not taken either.
    let cut = dir.path().join("cut");
    write_script(
        &cut,
        &format!("#!/bin/sh\nprintf '%s\\n%s' '{good}' '{good}'\n"),
    );
    let collector = build(
        "journald",
        &format!("journalctl = {:?}", cut.display().to_string()),
    );
    let err = collect(&*collector, spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2 of its output does not end with a newline"),
        "{err}"
    );
}

#[test]
fn settings_are_checked() {
    let refused = |text: &str| {
        collectors::registry::build("journald", &table(text))
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"))
    };
    let key = |text: &str| refused(text)[0].key.clone();
    assert_eq!(key("priority = \"verbose\"").as_deref(), Some("priority"));
    assert_eq!(key("priority = \"8\"").as_deref(), Some("priority"));
    assert_eq!(key("priority = 3").as_deref(), Some("priority"));
    assert_eq!(key("units = [\"\"]").as_deref(), Some("units"));
    assert_eq!(
        key("directory = \"var/log/journal\"").as_deref(),
        Some("directory")
    );
    assert_eq!(
        key("journalctl = \"bin/journalctl\"").as_deref(),
        Some("journalctl")
    );
    assert_eq!(key("max_entries = 0").as_deref(), Some("max_entries"));
    assert_eq!(key("since = \"yesterday\"").as_deref(), Some("since"));
    for accepted in [
        "priority = \"err\"",
        "priority = \"0\"",
        "units = [\"ssh*\"]",
        "",
    ] {
        assert!(collectors::registry::build("journald", &table(accepted)).is_ok());
    }
    let missing = build("journald", "journalctl = \"/nonexistent/journalctl\"");
    assert_eq!(missing.check()[0].key.as_deref(), Some("journalctl"));
}
