//! Ledger benchmark: durable appends per second and verification rate, each beside a reference
//! measured in the same run on the same machine, reported as a ratio.
//!
//! - durable append, batches of 1, 16 and 256: `Ledger::append` of that many snapshots per
//!   call (content blob, signed envelope, tree nodes, signed checkpoint, one transaction with
//!   fsync) into a fresh ledger, vs. the same number of rows, each as large as one entry's
//!   envelope plus its content, inserted into a bare SQLite table under the same pragmas (WAL,
//!   synchronous=FULL, as the ledger's schema.rs sets) with the same batching: one transaction
//!   per batch. Rows per batch size: `LEDGER_BENCH_APPENDS` (default 2000) or 40 batches,
//!   whichever is more.
//! - verify: `evidence-agent verify LEDGER --vkey KEY` (the real binary, wall time, CPU and peak
//!   RSS by wait4) over a ledger of `LEDGER_BENCH_ENTRIES` entries (default 1 000 000, built
//!   through the library in appends of 1000), vs. Ed25519 verification alone of the same
//!   signatures on all cores (`common::sigs`): the bound no verifier can beat. Also printed: the
//!   one-core Ed25519 rate times the cores. `LEDGER_BENCH_RUNS` (default 3) rounds alternate
//!   ours and the reference; medians decide.
//!
//! Run: `cargo bench -p evidence-agent --bench ledger`. The 1M-entry ledger takes about 1 GB in
//! a temporary directory, removed at the end.

mod common;

use common::process::{check, run};
use common::table::{self, Row};
use common::{env_num, median};

use evidence_agent::keys;
use evidence_agent::ledger::{Ledger, NewEntry};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const HOST: &str = "ledger-bench";
const BUILD_BATCH: u64 = 1000;
const SINGLE_TARGET: f64 = 2000.0;
const BATCH_TARGET: f64 = 0.5;
const VERIFY_TARGET: f64 = 0.7;

/// Entry `i`: a small access-list snapshot, different for every entry.
fn entry(i: u64) -> NewEntry {
    let body = format!("{{\"items\":[{{\"id\":\"user-{i}\",\"type\":\"user\",\"uid\":{i}}}]}}");
    common::ok_entry(i, "linux_accounts", body.into_bytes())
}

/// Rows per second into a bare table at `path`, `batch` rows of `row_bytes` per transaction.
fn bare_rate(path: &Path, rows: u64, batch: u64, row_bytes: usize) -> f64 {
    let mut conn = rusqlite::Connection::open(path).expect("open bare SQLite");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    )
    .expect("bare schema");
    let mut body = vec![0u8; row_bytes];
    let t = Instant::now();
    let mut i = 0u64;
    while i < rows {
        let tx = conn.transaction().expect("bare begin");
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO t (id, body) VALUES (?1, ?2)")
                .expect("bare prepare");
            for _ in 0..batch {
                // Distinct bytes per row, as every entry's are.
                body[..8].copy_from_slice(&i.to_le_bytes());
                insert
                    .execute(rusqlite::params![i as i64, body])
                    .expect("bare insert");
                i += 1;
            }
        }
        tx.commit().expect("bare commit");
    }
    rows as f64 / t.elapsed().as_secs_f64()
}

/// Entries per second appended `batch` per call into a fresh ledger at `path`, and the bytes
/// of one entry (envelope and content).
fn append_rate(path: &Path, key: &Path, rows: u64, batch: u64) -> (f64, usize) {
    let signer = keys::load(key, Some(&keys::key_name(HOST))).expect("load key");
    let mut ledger = Ledger::open(path, HOST, signer).expect("open ledger");
    let t = Instant::now();
    let mut i = 0;
    while i < rows {
        ledger
            .append((i..i + batch).map(entry).collect())
            .expect("append");
        i += batch;
    }
    let rate = rows as f64 / t.elapsed().as_secs_f64();
    let first = ledger.entry(0).expect("read entry").expect("entry 0");
    let content = ledger
        .blob_size(&first.content_digest)
        .expect("blob size")
        .expect("blob of entry 0");
    (rate, first.envelope.len() + content as usize)
}

fn appends(dir: &Path, key: &Path) {
    let appends = env_num("LEDGER_BENCH_APPENDS", 2000).max(1);
    for batch in [1u64, 16, 256] {
        let rows = appends.max(40 * batch).div_ceil(batch) * batch;
        let (ours, row_bytes) = append_rate(
            &dir.join(format!("append-{batch}.sqlite")),
            key,
            rows,
            batch,
        );
        let bare = bare_rate(
            &dir.join(format!("bare-{batch}.sqlite")),
            rows,
            batch,
            row_bytes,
        );
        let ratio = ours / bare;
        println!(
            "append batch {batch:>3}: {ours:>8.0} entries/s, bare SQLite {bare:>8.0} rows/s of \
             {row_bytes} bytes, ratio {ratio:.2} ({rows} rows)"
        );
        let (target, met) = if batch == 1 {
            (
                format!("≥ {SINGLE_TARGET:.0} appends/s"),
                ours >= SINGLE_TARGET,
            )
        } else {
            (
                format!("≥ {BATCH_TARGET:.2} of the bare rate"),
                ratio >= BATCH_TARGET,
            )
        };
        table::record(Row {
            benchmark: format!("durable append, batch {batch}"),
            ours: format!("{ours:.0} entries/s"),
            reference: format!(
                "bare SQLite, {batch} rows of {row_bytes} B per commit: {bare:.0} rows/s"
            ),
            ratio: format!("{ratio:.2} of its rate"),
            target,
            met: Some(met),
        });
    }
}

fn verify(dir: &Path, key: &Path) {
    let entries = env_num("LEDGER_BENCH_ENTRIES", 1_000_000).max(1);
    let runs = env_num("LEDGER_BENCH_RUNS", 3).max(1);
    let bin = common::agent_bin();
    let path = dir.join("verify.sqlite");
    let signer = keys::load(key, Some(&keys::key_name(HOST))).expect("load key");
    let public = *signer.verifier().public_key();
    let t = Instant::now();
    let mut ledger = Ledger::open(&path, HOST, signer).expect("open ledger");
    let mut k = 0;
    while k < entries {
        let end = (k + BUILD_BATCH).min(entries);
        ledger
            .append((k..end).map(entry).collect())
            .expect("append");
        k = end;
    }
    drop(ledger);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "verify: ledger of {entries} entries ({:.0} MB) built in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let vkey = keys::vkey_path(key);
    let ours = || {
        let mut cmd = Command::new(&bin);
        cmd.arg("verify").arg(&path).arg("--vkey").arg(&vkey);
        let r = run(cmd, dir);
        check("evidence-agent verify", &r);
        assert!(
            r.stdout.contains(&format!("{entries} entries")) && r.stdout.contains("OK:"),
            "verify did not check all {entries} entries:\n{}",
            r.stdout
        );
        r
    };
    let mut results = Vec::new();
    for _ in 0..runs {
        let o = ours();
        let b = common::sigs::ed25519_bound(&path, &public, 100_000);
        results.push((o, b));
    }
    println!("run  verify s   entries/s  CPU s  peak RSS MiB | Ed25519 all cores s  sigs/s  one core sigs/s");
    for (i, (o, b)) in results.iter().enumerate() {
        println!(
            "{:>3} {:>9.2} {:>11.0} {:>6.1} {:>13.1} | {:>19.2} {:>7.0} {:>16.0}",
            i + 1,
            o.seconds,
            entries as f64 / o.seconds,
            o.cpu,
            o.max_rss_mib,
            b.all_cores_seconds,
            b.all_cores_rate(),
            b.one_core_rate
        );
    }
    let ours_s = median(results.iter().map(|(o, _)| o.seconds).collect());
    let ours_cpu = median(results.iter().map(|(o, _)| o.cpu).collect());
    let rss = results
        .iter()
        .map(|(o, _)| o.max_rss_mib)
        .fold(0.0, f64::max);
    let bound = median(results.iter().map(|(_, b)| b.all_cores_rate()).collect());
    let one_core = median(results.iter().map(|(_, b)| b.one_core_rate).collect());
    let cores = results[0].1.cores;
    let rate = entries as f64 / ours_s;
    let ratio = rate / bound;
    println!(
        "median: verify {rate:.0} entries/s ({ours_s:.2} s, {ours_cpu:.1} s CPU, peak RSS \
         {rss:.1} MiB); Ed25519 alone on {cores} cores {bound:.0}/s (one core {one_core:.0}/s, \
         x{cores} = {:.0}/s); ratio {ratio:.2}",
        one_core * cores as f64
    );
    table::record(Row {
        benchmark: format!("ledger verify, {entries} entries ({cores} cores)"),
        ours: format!("{rate:.0} entries/s ({ours_s:.1} s, {rss:.0} MiB peak RSS)"),
        reference: format!(
            "Ed25519 alone on {cores} cores: {bound:.0}/s (one core {one_core:.0}/s)"
        ),
        ratio: format!("{ratio:.2} of its rate"),
        target: format!("≥ {VERIFY_TARGET:.2} of the bound"),
        met: Some(ratio >= VERIFY_TARGET),
    });
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("ledger-bench-")
        .tempdir()
        .expect("tempdir");
    let key = dir.path().join("keys").join("host.key");
    keys::generate(&key, &keys::key_name(HOST)).expect("generate key");
    appends(dir.path(), &key);
    verify(dir.path(), &key);
}
