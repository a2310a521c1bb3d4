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
