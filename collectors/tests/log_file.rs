//! The `log_file` collector: segments carried between runs by the cursor, through logrotate's
//! rename and copytruncate, and on hostile files.

mod common;

use collectors::{CollectContext, CollectError, Snapshot};
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

struct Log {
    _dir: tempfile::TempDir,
    spool: tempfile::TempDir,
    path: PathBuf,
    collector: Box<dyn collectors::Collector>,
    cursor: Option<Value>,
}

impl Log {
    fn new(extra_settings: &str) -> Log {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        let collector = build(
            "log_file",
            &format!("path = {:?}\n{extra_settings}", path.display().to_string()),
        );
        Log {
            _dir: dir,
            spool: tempfile::tempdir().unwrap(),
            path,
            collector,
            cursor: None,
        }
    }

    fn rotated(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".1");
        name.into()
    }

    fn append(&self, text: &str) {
        append(&self.path, text);
    }

    /// One run as the agent does it: the cursor of the last committed run goes in, and the
    /// new cursor is kept (committed) when the run succeeds.
    async fn run(&mut self) -> Result<Snapshot, CollectError> {
        let snapshot = self
            .collector
            .collect(ctx_with_cursor(self.spool.path(), self.cursor.clone()))
            .await?;
        assert_eq!(snapshot.media_type, collectors::MEDIA_TYPE_OCTETS);
        self.cursor = snapshot.cursor.clone();
        Ok(snapshot)
    }

    async fn text(&mut self) -> (String, Snapshot) {
        let snapshot = self.run().await.expect("the run succeeds");
        let text = String::from_utf8(bytes(&snapshot)).unwrap();
        (text, snapshot)
    }
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn line(n: u32) -> String {
    format!(
        "Jan  2 03:04:{:02} web-01 sshd[{}]: Accepted publickey for alice from 10.0.0.{} port 52{:03} ssh2: ED25519 SHA256:TBOoryaboSrltnxYGvNKHNNJWyaDscsdN0Z8clkLxRg\n",
        n % 60,
        1000 + n,
        n % 250,
        n % 1000
    )
}

fn lines(range: std::ops::Range<u32>) -> String {
    range.map(line).collect()
}

#[tokio::test]
async fn runs_take_the_complete_lines_appended_since_the_cursor() {
    let mut log = Log::new("");
    log.append(&lines(0..3));
    log.append("Jan  2 03:05:00 web-01 sshd[77]: partial li");
    let (text, first) = log.text().await;
    assert_eq!(text, lines(0..3), "the partial last line waits");
    assert_eq!(first.item_count, 3);
    assert_eq!(first.details["start_offset"], 0);
    assert_eq!(first.details["end_offset"], text.len());
    assert_eq!(first.cursor.as_ref().unwrap()["offset"], text.len());

    log.append("ne\n");
    log.append(&lines(3..5));
    let (text, second) = log.text().await;
    assert_eq!(
        text,
        format!(
            "Jan  2 03:05:00 web-01 sshd[77]: partial line\n{}",
            lines(3..5)
        )
    );
    assert_eq!(second.item_count, 3);
    assert_eq!(second.details["rotated"], false);
    assert_eq!(second.details["truncated"], false);

    let (text, third) = log.text().await;
    assert_eq!(text, "", "nothing new");
    assert_eq!(third.item_count, 0);
    assert_eq!(third.cursor, second.cursor);
}

#[tokio::test]
async fn an_uncommitted_run_is_taken_again() {
    let mut log = Log::new("");
    log.append(&lines(0..4));
    let (first, _) = log.text().await;
    log.append(&lines(4..6));
    let committed = log.cursor.clone();
    let (second, _) = log.text().await;
    // The agent failed to commit the second run: it hands the older cursor back.
    log.cursor = committed;
    let (retried, _) = log.text().await;
    assert_eq!(retried, second);
    assert_eq!(format!("{first}{second}"), lines(0..6));
}

#[tokio::test]
async fn rotation_by_rename_finishes_the_old_file_then_reads_the_new_one() {
    let mut log = Log::new("");
    log.append(&lines(0..10));
    let (first, _) = log.text().await;
    log.append(&lines(10..15));
    log.append("unterminated last line of the old file");
    std::fs::rename(&log.path, log.rotated()).unwrap();
    log.append(&lines(100..103));
    let (text, snapshot) = log.text().await;
    assert_eq!(
        text,
        format!(
            "{}unterminated last line of the old file{}",
            lines(10..15),
            lines(100..103)
        ),
        "a rotated-away file is read to its end"
    );
    assert_eq!(snapshot.item_count, 9);
    assert_eq!(snapshot.details["rotated"], true);
    let segments = snapshot.details["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[0]["path"], log.rotated().display().to_string());
    assert_eq!(segments[0]["start"], first.len());
    assert_eq!(segments[1]["start"], 0);
    assert_eq!(segments[1]["lines"], 3);

    log.append(&lines(103..104));
    let (text, snapshot) = log.text().await;
    assert_eq!(text, lines(103..104));
    assert_eq!(snapshot.details["rotated"], false);
}

#[tokio::test]
async fn copytruncate_is_detected_and_the_copy_is_finished() {
    let mut log = Log::new("");
    log.append(&lines(0..10));
    log.text().await;
    log.append(&lines(10..12));
    // logrotate copytruncate: copy, then truncate in place (same inode).
    std::fs::copy(&log.path, log.rotated()).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log.path)
        .unwrap()
        .set_len(0)
        .unwrap();
    log.append(&lines(200..202));
    let (text, snapshot) = log.text().await;
    assert_eq!(text, format!("{}{}", lines(10..12), lines(200..202)));
    assert_eq!(snapshot.details["truncated"], true);
    assert_eq!(snapshot.details["rotated"], false);
    assert!(warnings(&snapshot).is_empty(), "{:?}", warnings(&snapshot));
}

#[tokio::test]
async fn a_truncated_file_that_grew_past_the_cursor_is_read_from_the_start() {
    let mut log = Log::new("");
    log.append(&lines(0..2));
    log.text().await;
    // Truncated and rewritten, longer than before, with no copy kept: the head tells.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log.path)
        .unwrap()
        .set_len(0)
        .unwrap();
    log.append(&lines(300..306));
    let (text, snapshot) = log.text().await;
    assert_eq!(text, lines(300..306));
    assert_eq!(snapshot.details["truncated"], true);
    assert!(has_warning(
        &snapshot,
        &["rotated away", "auth.log.1", "not found"]
    ));
}

#[tokio::test]
async fn a_rotated_file_that_cannot_be_found_is_a_warning() {
    let mut log = Log::new("");
    log.append(&lines(0..3));
    log.text().await;
    std::fs::remove_file(&log.path).unwrap();
    log.append(&lines(3..4));
    let (text, snapshot) = log.text().await;
    assert_eq!(text, lines(3..4));
    // The new file may even reuse the old inode number; then it is seen as truncated.
    assert!(snapshot.details["rotated"] == true || snapshot.details["truncated"] == true);
    assert!(has_warning(&snapshot, &["could not be read"]));
}

#[tokio::test]
async fn max_segment_bytes_spreads_a_backlog_over_runs() {
    let one = line(0).len();
    let mut log = Log::new(&format!("max_segment_bytes = {}", one * 3 + one / 2));
    log.append(&lines(0..8));
    let mut taken = String::new();
    let mut runs = 0;
    loop {
        let (text, snapshot) = log.text().await;
        runs += 1;
        if text.is_empty() {
            break;
        }
        assert_eq!(snapshot.item_count, 3.min(8 - taken.lines().count() as u64));
        taken.push_str(&text);
        assert!(runs < 10);
    }
    assert_eq!(taken, lines(0..8));
    assert_eq!(runs, 4);

    // The budget also applies while finishing a rotated file.
    log.append(&lines(8..16));
    std::fs::rename(&log.path, log.rotated()).unwrap();
    log.append(&lines(16..18));
    let mut taken = String::new();
    for _ in 0..5 {
        taken.push_str(&log.text().await.0);
    }
    assert_eq!(taken, lines(8..18));
}

#[tokio::test]
async fn a_huge_line_without_newline_is_split_by_the_budget() {
    let mut log = Log::new("max_segment_bytes = 1048576");
    std::fs::File::create(&log.path)
        .unwrap()
        .set_len(3 << 30)
        .unwrap(); // sparse, 3 GiB
    let snapshot = log.run().await.unwrap();
    assert_eq!(snapshot.content.size(), 1 << 20);
    assert!(has_warning(&snapshot, &["longer than max_segment_bytes"]));
    assert_eq!(snapshot.details["more_pending"], true);
    assert_eq!(log.cursor.as_ref().unwrap()["offset"], 1 << 20);
}

#[tokio::test]
async fn bytes_are_kept_raw_and_big_segments_are_spooled() {
    let mut log = Log::new("");
    let mut raw = b"Jan  2 03:04:05 web-01 app: caf\xe9 \x00\x1b[31m\n".to_vec();
    let filler = lines(0..30_000); // about 4 MiB
    raw.extend_from_slice(filler.as_bytes());
    std::fs::write(&log.path, &raw).unwrap();
    let snapshot = log.run().await.unwrap();
    assert!(
        snapshot.content.as_bytes().is_none(),
        "over 1 MiB is spooled"
    );
    assert_eq!(bytes(&snapshot), raw);
    assert_eq!(snapshot.item_count, 30_001);
}

#[tokio::test]
async fn missing_or_odd_paths_and_cursors() {
    let mut log = Log::new("");
    let err = log.run().await.unwrap_err().to_string();
    assert!(
        err.contains(&log.path.display().to_string()) && err.contains("not found"),
        "{err}"
    );
    assert_eq!(log.collector.check().len(), 1);

    std::fs::create_dir(&log.path).unwrap();
    let err = log.run().await.unwrap_err().to_string();
    assert!(err.contains("a directory"), "{err}");
    std::fs::remove_dir(&log.path).unwrap();

    log.append(&lines(0..2));
    assert!(log.collector.check().is_empty());
    log.cursor = Some(serde_json::json!({"offset": "nonsense"}));
    let (text, snapshot) = log.text().await;
    assert_eq!(text, lines(0..2));
    assert!(has_warning(&snapshot, &["cursor is not understood"]));
}

#[test]
fn settings_are_checked() {
    let refused = |text: &str| {
        collectors::registry::build("log_file", &table(text))
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"))
    };
    assert_eq!(refused("")[0].message, "missing field `path`");
    assert_eq!(
        refused("path = \"var/log/x\"")[0].key.as_deref(),
        Some("path")
    );
    assert_eq!(
        refused("path = \"/var/log/x\"\nmax_segment_bytes = 0")[0]
            .key
            .as_deref(),
        Some("max_segment_bytes")
    );
    assert!(refused("path = \"/var/log/x\"\nmax_segment_bytes = -1")[0]
        .message
        .contains("-1"));
}

#[tokio::test]
async fn a_log_path_or_rotated_file_leading_into_protected_data_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let (data, key) = agent_data(&base);
    let path = base.join("app.log");
    std::os::unix::fs::symlink(&key, &path).unwrap();
    let collector = build(
        "log_file",
        &format!("path = {:?}", path.display().to_string()),
    );
    let spool = tempfile::tempdir().unwrap();
    let err = collector
        .collect(ctx_protecting(spool.path(), std::slice::from_ref(&data)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains(REFUSED),
        "{err}"
    );
    assert!(!err.contains(AGENT_KEY_SECRET));

    // The live file is fine, but the rotated-away one it is recognised by leads to the key.
    std::fs::remove_file(&path).unwrap();
    append(&path, &lines(0..2));
    let first = collector
        .collect(ctx_protecting(spool.path(), std::slice::from_ref(&data)))
        .await
        .expect("an ordinary log is read");
    let mut rotated = path.clone().into_os_string();
    rotated.push(".1");
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&key, &rotated).unwrap();
    append(&path, &lines(2..3));
    let err = collector
        .collect(CollectContext {
            cursor: first.cursor,
            ..ctx_protecting(spool.path(), std::slice::from_ref(&data))
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("app.log.1") && err.contains(REFUSED), "{err}");
}
