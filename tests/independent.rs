//! Independent verification: a ledger built through the public library API is checked by
//! `tests/independent_verify.py`, a Python verifier written from the standards alone (RFC 6962 /
//! 9162, C2SP signed-note + tlog-checkpoint, DSSE v1, in-toto Statement v1) that shares no code
//! with the Rust implementation. It needs Python 3 with the `cryptography` package, which
//! `tests/run.sh` installs; without it these tests fail (they never pass silently).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{TimeZone, Utc};
use collectors::{Content, Snapshot};
use ed25519_dalek::SigningKey;
use evidence_agent::ledger::{Ledger, NewEntry, Outcome};
use evidence_agent::statement::Trigger;
use evidence_agent::tlog::note::NoteSigner;
use rusqlite::{params, Connection};
use std::collections::BTreeSet;

mod common;
use common::bundle::{copy_dir, files_under, reseal};
use std::path::{Path, PathBuf};
use std::process::Command;

const HOST: &str = "indep-host";
const KEY_NAME: &str = "evidence-agent/indep-host";
/// Batch sizes: one checkpoint per batch.
const BATCHES: [u64; 7] = [1, 4, 7, 2, 9, 5, 8];
/// The entry whose content is larger than one 1 MiB blob chunk.
const LARGE: u64 = 10;

fn verifier_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/independent_verify.py")
}

fn vectors_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/vectors.json")
}

fn signer() -> NoteSigner {
    NoteSigner::new(KEY_NAME, SigningKey::from_bytes(&[23; 32])).expect("valid key name")
}

/// Fail loudly (never skip) when the independent verifier cannot run here.
fn require_python() {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the independent verifier needs `python3` with the `cryptography` package; \
         run tests/run.sh (it installs it), or `python3 -m pip install cryptography`"
    );
}

struct Run {
    code: i32,
    stdout: String,
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn summary(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

fn run_verifier(args: &[&Path]) -> Run {
    require_python();
    let mut cmd = Command::new("python3");
    cmd.arg(verifier_script()).args(args);
    run(cmd)
}

fn run(mut cmd: Command) -> Run {
    let out = cmd.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Traceback"),
        "the verifier crashed instead of reporting:\n{stdout}\n{stderr}"
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: format!("{stdout}{stderr}"),
    }
}

/// Canonical JSON content of an ok run (keys sorted, no whitespace).
fn content_of(i: u64) -> Vec<u8> {
    if i == LARGE {
        // About 1.9 MiB: two blob chunks.
        let note = "x".repeat(600);
        let items: Vec<String> = (0..3000)
            .map(|k| format!("{{\"id\":\"user-{k}\",\"note\":\"{note}\"}}"))
            .collect();
        return format!("{{\"items\":[{}]}}", items.join(",")).into_bytes();
    }
    // Entry 20 repeats entry 0's content: one blob serves two entries.
    let i = if i == 20 { 0 } else { i };
    format!(
        "{{\"index\":{i},\"items\":[{{\"id\":\"user-{}\",\"shell\":\"/bin/sh\"}}]}}",
        i % 5
    )
    .into_bytes()
}

fn new_entry(i: u64, blobs: &mut BTreeSet<[u8; 32]>) -> NewEntry {
    let t = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("valid time")
        + chrono::Duration::minutes(i as i64 * 15);
    let outcome = match i % 9 {
        4 => Outcome::Failed(format!("command exited with status 2 (run {i})")),
        7 => Outcome::Skipped("previous run still going".into()),
        _ => {
            let content = Content::from_bytes(content_of(i));
            blobs.insert(content.sha256());
            Outcome::Ok(Snapshot {
                content,
                media_type: collectors::MEDIA_TYPE_JSON,
                item_count: 1,
                cursor: None,
                details: serde_json::Value::Null,
            })
        }
    };
    if !matches!(outcome, Outcome::Ok(_)) {
        blobs.insert(Content::from_bytes(Vec::new()).sha256());
    }
    NewEntry {
        collector_id: format!("collector-{}", i % 4),
        kind: "command".into(),
        trigger: if i % 6 == 5 {
            Trigger::Manual
        } else {
            Trigger::Schedule
        },
        scheduled_for: t,
        started_at: t + chrono::Duration::seconds(1),
        finished_at: t + chrono::Duration::seconds(3),
        config_sha256: [0x5a; 32],
        schedule: Some("* * * * *".into()),
        outcome,
    }
}

/// What the ledger fixture holds, and where its files are.
struct Fixture {
    _dir: tempfile::TempDir,
    ledger: PathBuf,
    vkey: PathBuf,
    proofs: PathBuf,
    entries: u64,
    checkpoint_sizes: Vec<u64>,
    blobs: usize,
    inclusion: usize,
    consistency: usize,
}

/// A ledger on a real SQLite file, appended in several batches, with its verifier key and a
/// JSON file of inclusion and consistency proofs taken from the ledger.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger_path = dir.path().join("ledger.sqlite");
    let mut ledger = Ledger::open(&ledger_path, HOST, signer()).expect("open ledger");
    let mut blobs = BTreeSet::new();
    let mut checkpoint_sizes = Vec::new();
    let mut next = 0u64;
    for batch in BATCHES {
        let entries: Vec<NewEntry> = (next..next + batch)
            .map(|i| new_entry(i, &mut blobs))
            .collect();
        next += batch;
        let appended = ledger.append(entries).expect("append");
        assert_eq!(appended.checkpoint.size, next);
        checkpoint_sizes.push(next);
    }
    let size = ledger.size().expect("size");
    assert_eq!(size, next);

    let b64 = |hashes: Vec<_>| -> Vec<String> { hashes.iter().map(|h| B64.encode(h)).collect() };
    let mut inclusion = Vec::new();
    for &s in &checkpoint_sizes {
        for i in BTreeSet::from([0, s / 2, s - 1, LARGE.min(s - 1)]) {
            let hashes = ledger.inclusion_proof(i, s).expect("inclusion proof");
            inclusion.push(serde_json::json!({"index": i, "size": s, "hashes": b64(hashes)}));
        }
    }
    let mut consistency = Vec::new();
    for (k, &m) in checkpoint_sizes.iter().enumerate() {
        for &n in &checkpoint_sizes[k..] {
            let hashes = ledger.consistency_proof(m, n).expect("consistency proof");
            consistency.push(serde_json::json!({"old": m, "new": n, "hashes": b64(hashes)}));
        }
    }
    let (n_inclusion, n_consistency) = (inclusion.len(), consistency.len());
    drop(ledger);

    let vkey = dir.path().join("host.vkey");
    std::fs::write(&vkey, format!("{}\n", signer().verifier())).expect("write vkey");
    let proofs = dir.path().join("proofs.json");
    let json = serde_json::json!({"inclusion": inclusion, "consistency": consistency});
    std::fs::write(&proofs, serde_json::to_vec_pretty(&json).expect("json")).expect("write proofs");

    Fixture {
        _dir: dir,
        ledger: ledger_path,
        vkey,
        proofs,
        entries: size,
        checkpoint_sizes,
        blobs: blobs.len(),
        inclusion: n_inclusion,
        consistency: n_consistency,
    }
}

#[test]
fn python_verifier_accepts_the_ledger_and_its_proofs() {
    let f = fixture();
    // The large blob really spans more than one chunk.
    let conn = Connection::open(&f.ledger).expect("open sqlite");
    let max_chunks: i64 = conn
        .query_row(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM blob_chunks GROUP BY digest)",
            [],
            |r| r.get(0),
        )
        .expect("count chunks");
    assert!(max_chunks >= 2, "no blob spans two chunks");
    drop(conn);

    let run = run_verifier(&[&f.ledger, &f.vkey, &f.proofs]);
    let expected = format!(
        "independent-verify: OK entries={} checkpoints={} blobs={} inclusion={} consistency={} key={}+{}",
        f.entries,
        f.checkpoint_sizes.len(),
        f.blobs,
        f.inclusion,
        f.consistency,
        KEY_NAME,
        hex::encode(signer().key_hash()),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.lines(), vec![expected.as_str()], "{}", run.stdout);
    assert_eq!(f.entries, 36);
    assert_eq!(f.checkpoint_sizes.len(), 7);
}

#[test]
fn python_verifier_names_an_entry_with_one_changed_envelope_byte() {
    let f = fixture();
    let target = 13i64;
    let conn = common::attacker(&f.ledger);
    let mut envelope: Vec<u8> = conn
        .query_row(
            "SELECT envelope FROM entries WHERE idx = ?1",
            [target],
            |r| r.get(0),
        )
        .expect("read envelope");
    let key = b"\"payload\":\"";
    let at = envelope
        .windows(key.len())
        .position(|w| w == key)
        .expect("payload field")
        + key.len()
        + 40;
    envelope[at] = if envelope[at] == b'A' { b'B' } else { b'A' };
    conn.execute(
        "UPDATE entries SET envelope = ?1 WHERE idx = ?2",
        params![envelope, target],
    )
    .expect("tamper");
    drop(conn);

    let run = run_verifier(&[&f.ledger, &f.vkey, &f.proofs]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let lines = run.lines();
    assert!(
        lines.iter().any(|l| l.starts_with("entry 13: ")),
        "{}",
        run.stdout
    );
    // Only that entry is named among the entries; every checkpoint over it no longer matches.
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("entry "))
            .all(|l| l.starts_with("entry 13: ")),
        "{}",
        run.stdout
    );
    for s in f.checkpoint_sizes.iter().filter(|&&s| s > 13) {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("checkpoint {s}: "))),
            "checkpoint {s} not named:\n{}",
            run.stdout
        );
    }
    assert!(
        run.summary().starts_with("independent-verify: FAILED"),
        "{}",
        run.stdout
    );
}

#[test]
fn python_verifier_names_an_entry_whose_large_blob_chunk_changed() {
    let f = fixture();
    let conn = common::attacker(&f.ledger);
    let digest: Vec<u8> = conn
        .query_row(
            "SELECT content_digest FROM entries WHERE idx = ?1",
            [LARGE as i64],
            |r| r.get(0),
        )
        .expect("digest");
    let mut chunk: Vec<u8> = conn
        .query_row(
            "SELECT data FROM blob_chunks WHERE digest = ?1 AND seq = 1",
            [&digest],
            |r| r.get(0),
        )
        .expect("second chunk");
    chunk[100] ^= 0x01;
    conn.execute(
        "UPDATE blob_chunks SET data = ?1 WHERE digest = ?2 AND seq = 1",
        params![chunk, digest],
    )
    .expect("tamper");
    drop(conn);

    let run = run_verifier(&[&f.ledger, &f.vkey]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let named = format!("entry {LARGE}: content SHA-256");
    assert!(
        run.lines().iter().any(|l| l.starts_with(&named)),
        "{}",
        run.stdout
    );
    assert_eq!(run.lines().len(), 2, "{}", run.stdout);
}

#[test]
fn python_verifier_rejects_a_forged_proof() {
    let f = fixture();
    let mut proofs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&f.proofs).expect("read proofs")).expect("json");
    let forged = serde_json::Value::from(B64.encode([7u8; 32]));
    let pick = |kind: &str, a: &str, av: u64, b: &str, bv: u64| {
        proofs[kind]
            .as_array()
            .and_then(|ps| ps.iter().position(|p| p[a] == av && p[b] == bv))
            .unwrap_or_else(|| panic!("no {kind} proof {av} {bv}"))
    };
    let (inc_at, cons_at) = (
        pick("inclusion", "index", LARGE, "size", 14),
        pick("consistency", "old", 5, "new", 36),
    );
    proofs["inclusion"][inc_at]["hashes"][0] = forged.clone();
    proofs["consistency"][cons_at]["hashes"][0] = forged;
    std::fs::write(&f.proofs, proofs.to_string()).expect("write proofs");

    let run = run_verifier(&[&f.ledger, &f.vkey, &f.proofs]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let inc = format!("inclusion proof {LARGE}@14: ");
    let cons = "consistency proof 5->36: ";
    let lines = run.lines();
    assert!(lines.iter().any(|l| l.starts_with(&inc)), "{}", run.stdout);
    assert!(lines.iter().any(|l| l.starts_with(cons)), "{}", run.stdout);
    assert_eq!(lines.len(), 3, "{}", run.stdout);
}

#[test]
fn python_verifier_passes_its_known_answer_self_test() {
    let run = run_verifier(&[Path::new("--vectors"), &vectors_file()]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.summary()
            .starts_with("independent-verify vectors: OK trees=8 "),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Evidence bundles, checked by `tests/independent_bundle.py` (same standards, plus the bundle
// rules of agent/src/bundle/*.rs docs), made by the real binary's `export`.

const BUNDLE_DAYS: u32 = 10;
const TICKETS: &str = "changes";
const ACCESS: &str = "access-review";
const AUTH_LOG: &str = "auth-log";

fn bundle_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/independent_bundle.py")
}

/// Day `day`'s run of one of three collectors (one per population class), at midnight UTC.
fn bundle_entry(day: u32, collector: &str) -> NewEntry {
    let t = Utc
        .with_ymd_and_hms(2026, 3, day, 0, 0, 0)
        .single()
        .expect("valid time");
    let (kind, outcome) = match collector {
        ACCESS => (
            "command",
            match day % 4 {
                1 => Outcome::Failed(format!("exit status 1 on day {day}")),
                2 => Outcome::Skipped("previous run still going".into()),
                _ => ok_snapshot(
                    format!("{{\"items\":[{{\"id\":\"user-{}\"}}]}}", day % 3),
                    serde_json::Value::Null,
                ),
            },
        ),
        AUTH_LOG => (
            "log_file",
            if day % 5 == 3 {
                Outcome::Failed("auth.log is not readable".into())
            } else {
                let start = u64::from(day) * 1000;
                ok_snapshot(
                    format!("day {day}: sshd accepted publickey\n"),
                    serde_json::json!({
                        "path": "/var/log/auth.log",
                        "start_offset": start,
                        "end_offset": start + 37,
                    }),
                )
            },
        ),
        _ => {
            // Tickets stay open for three days; one title looks like a spreadsheet formula,
            // one id is a number.
            let items: Vec<String> = (day.saturating_sub(2)..=day)
                .map(|d| {
                    let id = if d % 4 == 0 {
                        format!("{}", 9000 + d)
                    } else {
                        format!("\"PR-{d}\"")
                    };
                    let title = if d == 6 { "=HYPERLINK(1)" } else { "Bump deps" };
                    format!(
                        "{{\"approvers\":[\"bob\",\"carol-{d}\"],\"author\":\"alice\",\
                         \"id\":{id},\"merged_at\":\"2026-03-{d:02}T12:00:00Z\",\
                         \"title\":\"{title}\",\"type\":\"change\"}}"
                    )
                })
                .collect();
            (
                "github_pull_requests",
                ok_snapshot(
                    format!("{{\"items\":[{}]}}", items.join(",")),
                    serde_json::Value::Null,
                ),
            )
        }
    };
    NewEntry {
        collector_id: collector.into(),
        kind: kind.into(),
        trigger: Trigger::Schedule,
        scheduled_for: t,
        started_at: t + chrono::Duration::seconds(1),
        finished_at: t + chrono::Duration::seconds(2),
        config_sha256: [0x33; 32],
        schedule: Some("0 0 * * *".into()),
        outcome,
    }
}

fn ok_snapshot(content: String, details: serde_json::Value) -> Outcome {
    Outcome::Ok(Snapshot {
        content: Content::from_bytes(content.into_bytes()),
        media_type: collectors::MEDIA_TYPE_JSON,
        item_count: 1,
        cursor: None,
        details,
    })
}

/// A data directory whose ledger holds one checkpoint per day (three entries each), for
/// 2026-03-01..10, and the bundle the binary exports of 2026-03-04..08 (entries 9..24: the
/// range starts at checkpoint 9, so it carries a consistency proof from 9 to 24).
struct BundleFixture {
    dir: tempfile::TempDir,
    vkey: PathBuf,
    out: PathBuf,
    /// What `export` printed.
    stdout: String,
}

fn bundle_fixture() -> BundleFixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("keys")).expect("mkdir");
    let mut ledger =
        Ledger::open(&data.join("ledger.sqlite"), HOST, signer()).expect("open ledger");
    for day in 1..=BUNDLE_DAYS {
        let batch: Vec<NewEntry> = [ACCESS, AUTH_LOG, TICKETS]
            .iter()
            .map(|c| bundle_entry(day, c))
            .collect();
        ledger.append(batch).expect("append");
    }
    drop(ledger);
    let vkey = data.join("keys/host.vkey");
    std::fs::write(&vkey, format!("{}\n", signer().verifier())).expect("write vkey");
    let out = dir.path().join("bundle");
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
        .arg("--config")
        .arg(dir.path().join("absent.toml"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "export",
            "--from",
            "2026-03-04",
            "--to",
            "2026-03-08",
            "--out",
        ])
        .arg(&out)
        .args(["--sample", "3", "--seed", "fixed"])
        .output()
        .expect("run evidence-agent export");
    let stdout = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(
        export.status.success(),
        "export failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&export.stderr)
    );
    BundleFixture {
        dir,
        vkey,
        out,
        stdout,
    }
}

fn run_bundle_verifier(bundle: &Path, vkey: &Path) -> Run {
    require_python();
    let mut cmd = Command::new("python3");
    cmd.arg(bundle_script()).arg(bundle).arg("--vkey").arg(vkey);
    run(cmd)
}

/// The number before `word` in `text` ("… 15 entries, …").
fn count_before(text: &str, word: &str) -> u64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.trim_end_matches(',') == word)
        .unwrap_or_else(|| panic!("no {word:?} in {text}"));
    words[at - 1]
        .parse()
        .unwrap_or_else(|_| panic!("no count before {word:?} in {text}"))
}

#[test]
fn bundle_is_verified_by_an_independent_implementation() {
    let f = bundle_fixture();
    // The bundle covers 2026-03-04..08: entries 9..24, after checkpoints 3, 6 and 9.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.out.join("manifest.json")).expect("read manifest"))
            .expect("manifest json");
    assert_eq!(manifest["hosts"][0]["start_size"], 9, "{manifest}");
    assert_eq!(manifest["hosts"][0]["end_size"], 24, "{manifest}");
    assert!(f
        .out
        .join(format!("proofs/{HOST}/consistency-9-24.json"))
        .is_file());

    // Our own verifier agrees, so a failure below is a disagreement between the two.
    let own = Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
        .arg("verify")
        .arg(&f.out)
        .arg("--vkey")
        .arg(&f.vkey)
        .output()
        .expect("run evidence-agent verify");
    assert!(
        own.status.success(),
        "evidence-agent verify:\n{}",
        String::from_utf8_lossy(&own.stdout)
    );

    let run = run_bundle_verifier(&f.out, &f.vkey);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.lines().len(), 1, "{}", run.stdout);
    let summary: serde_json::Value = serde_json::from_str(run.summary()).expect("summary json");
    assert_eq!(summary["ok"], true, "{summary}");
    let host = &summary["hosts"][HOST];
    assert_eq!(host["pinned"], true, "{summary}");
    assert_eq!(host["start_size"], 9, "{summary}");
    assert_eq!(host["end_size"], 24, "{summary}");
    assert_eq!(host["vkey"], signer().verifier().to_string(), "{summary}");

    let entries = count_before(&f.stdout, "entries");
    let blobs = count_before(&f.stdout, "blobs");
    let sampled = count_before(&f.stdout, "rows");
    assert_eq!(entries, 15);
    assert_eq!(summary["entries"], entries, "{summary}\n{}", f.stdout);
    assert_eq!(summary["blobs"], blobs, "{summary}\n{}", f.stdout);
    assert_eq!(summary["sample_rows"], sampled, "{summary}\n{}", f.stdout);
    // Three populations of at least three rows each: three sampled rows each.
    assert_eq!(sampled, 9, "{}", f.stdout);
    let on_disk = files_under(&f.out.join("blobs/sha256")).len() as u64;
    assert_eq!(on_disk, blobs);
}

#[test]
fn independent_bundle_verifier_names_each_deep_tampering() {
    let f = bundle_fixture();
    let blob = files_under(&f.out.join("blobs/sha256"))
        .into_iter()
        .next()
        .expect("a blob");
    let blob_rel = format!("blobs/sha256/{blob}");
    let proof_rel = format!("proofs/{HOST}/17.json");
    let consistency_rel = format!("proofs/{HOST}/consistency-9-24.json");
    let forged = B64.encode([7u8; 32]);
    type Edit<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Edit, String)> = vec![
        (
            "one flipped byte of a blob",
            Box::new(|b: &Path| {
                let path = b.join(&blob_rel);
                let mut bytes = std::fs::read(&path).expect("read blob");
                bytes[0] ^= 0x01;
                std::fs::write(&path, bytes).expect("write blob");
            }),
            format!("{blob_rel}: content does not match its name"),
        ),
        (
            "a forged inclusion proof hash",
            Box::new(|b: &Path| {
                let path = b.join(&proof_rel);
                let mut doc: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
                doc["hashes"][0] = forged.clone().into();
                std::fs::write(&path, doc.to_string()).expect("write proof");
            }),
            format!("{proof_rel}: does not prove"),
        ),
        (
            "a forged consistency proof hash",
            Box::new(|b: &Path| {
                let path = b.join(&consistency_rel);
                let mut doc: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
                doc["hashes"][0] = forged.clone().into();
                std::fs::write(&path, doc.to_string()).expect("write proof");
            }),
            format!("{consistency_rel}: does not prove"),
        ),
        (
            "a failed run shown as ok in population.csv",
            Box::new(|b: &Path| {
                let path = b.join("population.csv");
                let text = std::fs::read_to_string(&path).expect("read population");
                assert!(text.contains(",failed,"), "{text}");
                std::fs::write(&path, text.replacen(",failed,", ",ok,", 1)).expect("write");
            }),
            "population.csv: row ".to_owned(),
        ),
    ];
    for (what, edit, named) in cases {
        let copy = f.dir.path().join(what.replace(' ', "-"));
        copy_dir(&f.out, &copy);
        edit(&copy);
        reseal(&copy);
        let run = run_bundle_verifier(&copy, &f.vkey);
        assert_eq!(run.code, 1, "{what}:\n{}", run.stdout);
        let lines = run.lines();
        assert!(
            lines.iter().any(|l| l.starts_with(&named)),
            "{what}: no line starts with {named:?}:\n{}",
            run.stdout
        );
        // Resealing worked: nothing but the deep check complains about the edited file.
        assert!(
            !run.stdout.contains("SHA256SUMS") && !run.stdout.contains("manifest.json"),
            "{what}:\n{}",
            run.stdout
        );
        let summary: serde_json::Value = serde_json::from_str(run.summary()).expect("summary json");
        assert_eq!(summary["ok"], false, "{what}: {summary}");
    }
}
