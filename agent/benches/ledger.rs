//! Ledger benchmark: durable appends per second and verification rate, each beside a reference
//! measured in the same process on the same machine, reported as a ratio.
//!
//! - append: `Ledger::append` of one snapshot per transaction (content blob, signed envelope,
//!   tree nodes, signed checkpoint, fsync) vs. the same number of single-row transactions into a
//!   bare SQLite table under the same pragmas (WAL, synchronous=FULL).
//! - verify: `ledger::verify::verify` over the whole ledger vs. Ed25519 verification alone of
//!   the same envelopes' signatures (the floor any verifier pays).
//!
//! Run: `cargo bench -p evidence-agent --bench ledger` (N via `BENCH_APPENDS`, default 2000).

mod common;

use ed25519_dalek::{Signature, SigningKey, Verifier};
use evidence_agent::ledger::{verify::verify, Ledger, NewEntry};
use evidence_agent::statement;
use evidence_agent::tlog::note::NoteSigner;
use std::time::Instant;

fn entry(i: u64) -> NewEntry {
    let body = format!("{{\"items\":[{{\"id\":\"user-{i}\",\"type\":\"user\",\"uid\":{i}}}]}}");
    common::ok_entry(i, "linux_accounts", body.into_bytes())
}

fn main() {
    let n: u64 = std::env::var("BENCH_APPENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let signer =
        NoteSigner::new("evidence-agent/bench", SigningKey::from_bytes(&[5; 32])).expect("signer");

    // Reference: bare SQLite, one row per transaction, same pragmas.
    let bare = rusqlite::Connection::open(dir.path().join("bare.sqlite")).expect("open bare");
    bare.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);").expect("bare schema");
    let row = vec![7u8; 700]; // about an envelope's size
    let t = Instant::now();
    for i in 0..n {
        bare.execute(
            "INSERT INTO t (id, body) VALUES (?1, ?2)",
            rusqlite::params![i as i64, row],
        )
        .expect("bare insert");
    }
    let bare_rate = n as f64 / t.elapsed().as_secs_f64();

    let mut ledger = Ledger::open(&dir.path().join("ledger.sqlite"), "bench", signer.clone())
        .expect("open ledger");
    let t = Instant::now();
    for i in 0..n {
        ledger.append(vec![entry(i)]).expect("append");
    }
    let append_rate = n as f64 / t.elapsed().as_secs_f64();

    for batch in [16u64, 256] {
        let t = Instant::now();
        let mut done = 0;
        while done < n {
            ledger
                .append((done..done + batch).map(entry).collect())
                .expect("append batch");
            done += batch;
        }
        let rate = done as f64 / t.elapsed().as_secs_f64();
        println!("append batch {batch:>3}: {rate:>9.0} entries/s");
    }
    drop(ledger);

    let ledger = Ledger::open_read_only(&dir.path().join("ledger.sqlite")).expect("reopen");
    let size = ledger.size().expect("size");
    let envelopes: Vec<Vec<u8>> = ledger
        .entries(0, size)
        .expect("entries")
        .into_iter()
        .map(|e| e.envelope)
        .collect();

    // Reference: Ed25519 verification alone of the same signatures.
    let public = signer.verifier().public_key().to_owned();
    let prepared: Vec<(Vec<u8>, Signature)> = envelopes
        .iter()
        .map(|bytes| {
            let env: statement::Envelope = serde_json::from_slice(bytes).expect("envelope");
            let payload =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &env.payload)
                    .expect("payload");
            let sig = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                &env.signatures[0].sig,
            )
            .expect("sig");
            (
                statement::pae(statement::PAYLOAD_TYPE, &payload),
                Signature::from_slice(&sig).expect("sig bytes"),
            )
        })
        .collect();
    let t = Instant::now();
    for (msg, sig) in &prepared {
        public.verify(msg, sig).expect("reference verify");
    }
    let ed_rate = prepared.len() as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let report = verify(&ledger, &signer.verifier()).expect("verify");
    let verify_rate = report.entries as f64 / t.elapsed().as_secs_f64();
    assert!(report.ok(), "{:?}", report.findings);

    println!("append batch   1: {append_rate:>9.0} entries/s  (bare SQLite {bare_rate:.0} rows/s, ratio {:.2})", append_rate / bare_rate);
    println!("verify          : {verify_rate:>9.0} entries/s  (Ed25519 alone {ed_rate:.0}/s, ratio {:.2}) over {size} entries", verify_rate / ed_rate);
}
