//! Bundle benchmark: how fast `evidence-agent verify <bundle>` checks an exported bundle, beside
//! `sha256sum -c --quiet SHA256SUMS` over the very same files in the same run, reported as a
//! ratio.
//!
//! - The data is a ledger built through the library: `BUNDLE_BENCH_ENTRIES` entries (default
//!   1,000,000 as issue 7 asks: ~2 million files, ~10 GB with their blocks; rounded up to a multiple of the 4 collectors), appended 1000 per `append` (one
//!   checkpoint per batch). Entry k is a run of collector k % 4 scheduled at minute k / 4 from
//!   2025-01-01T00:00:00Z, each signing the schedule `* * * * *`, so every collector has a run
//!   at every minute of the period and coverage has no gap. The collectors are an access list
//!   (`linux_accounts`), a config file (`files`), a log (`log_file`) and change tickets
//!   (`github_pull_requests`, whose population verify computes from every run's content), each
//!   with small JSON content that changes every hour (so ~4 distinct blobs per hour).
//! - The bundle is written by the real binary, `evidence-agent --data-dir DIR export --from …
//!   --to …` over exactly the ledger's minutes (all entries, no sample), timed once.
//! - Ours: `evidence-agent verify DIR/bundle --vkey DIR/keys/host.vkey` (must exit 0): every file
//!   hashed against SHA256SUMS and the manifest, every envelope signature and inclusion proof,
//!   the checkpoints, the populations/sample/report recomputed, coverage.
//! - Reference: `sha256sum -c --quiet SHA256SUMS` in the bundle directory: reading and hashing
//!   every file once, the floor of any verifier of this layout.
//! - `BUNDLE_BENCH_RUNS` (default 1: one run of a million entries is minutes) runs of each,
//!   alternating ours/reference, after one untimed `sha256sum` pass that makes both start from
//!   the same page cache. The medians decide.
//!   Wall time, CPU (user + system) and peak RSS are those of the child process (wait4).
//! - Also the bound of any verifier: Ed25519 verification alone of the same entries' signatures
//!   on all cores (`common::sigs`, from the ledger the bundle was exported from), after the runs;
//!   verify's entries/s is reported as a share of it.
//! - `BUNDLE_BENCH_KEEP=1` keeps the temporary directory (its path is printed) for profiling.
//!
//! Run: `cargo bench -p evidence-agent --bench bundle` (needs `sha256sum`, GNU coreutils).

mod common;

use common::process::{check, run};
use common::table::{self, Row};
use common::{env_num, median};

use chrono::{DateTime, Duration, TimeZone, Utc};
use evidence_agent::keys;
use evidence_agent::ledger::{Ledger, NewEntry, LEDGER_FILE};
use std::process::Command;
use std::time::Instant;

const HOST: &str = "bench-host";
const BATCH: u64 = 1000;
const SCHEDULE: &str = "* * * * *";
/// (collector id, kind).
const COLLECTORS: [(&str, &str); 4] = [
    ("accounts", "linux_accounts"),
    ("sshd-config", "files"),
    ("auth-log", "log_file"),
    ("changes", "github_pull_requests"),
];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

/// The content of `collector` in `hour`: small JSON of the items shape, one version per hour.
fn content(collector: usize, hour: u64) -> Vec<u8> {
    let body = match collector {
        0 => format!(
            "{{\"items\":[{{\"id\":\"root\",\"type\":\"user\",\"uid\":0}},\
             {{\"id\":\"user-{hour}\",\"type\":\"user\",\"uid\":{}}}]}}",
            1000 + hour
        ),
        1 => format!(
            "{{\"items\":[{{\"id\":\"/etc/ssh/sshd_config\",\"type\":\"file\",\
             \"text\":\"PermitRootLogin no\\nMaxAuthTries {}\\n\"}}]}}",
            3 + hour % 5
        ),
        2 => format!(
            "{{\"items\":[{{\"id\":\"line-{hour}\",\"type\":\"line\",\
             \"text\":\"sshd[{hour}]: Accepted publickey for deploy\"}}]}}"
        ),
        _ => format!(
            "{{\"items\":[{{\"approvers\":[\"alice\"],\"author\":\"bob\",\"id\":\"PR-{hour}\",\
             \"merged_at\":\"2025-01-01T00:00:00Z\",\"title\":\"Change {hour}\",\"type\":\"change\"}}]}}"
        ),
    };
    body.into_bytes()
}

/// Entry `k`: collector k % 4's run at minute k / 4.
fn entry(k: u64) -> NewEntry {
    let c = (k % COLLECTORS.len() as u64) as usize;
    let minute = k / COLLECTORS.len() as u64;
    let (id, kind) = COLLECTORS[c];
    let mut e = common::ok_entry(k, kind, content(c, minute / 60));
    let at = base() + Duration::minutes(minute as i64);
    e.collector_id = id.to_owned();
    e.scheduled_for = at;
    e.started_at = at + Duration::milliseconds(20);
    e.finished_at = at + Duration::milliseconds(250);
    e.schedule = Some(SCHEDULE.to_owned());
    e
}

fn main() {
    let per_minute = COLLECTORS.len() as u64;
    let entries = env_num("BUNDLE_BENCH_ENTRIES", 1_000_000).div_ceil(per_minute) * per_minute;
    let runs = env_num("BUNDLE_BENCH_RUNS", 1).max(1);
    assert!(entries > 0, "BUNDLE_BENCH_ENTRIES must be positive");
    let bin = env!("CARGO_BIN_EXE_evidence-agent");

    let dir = tempfile::Builder::new()
        .prefix("bundle-bench-")
        .tempdir()
        .expect("tempdir");
    let data_dir = dir.path().join("data");
    let key_path = data_dir.join("keys").join("host.key");
    let vkey_path = keys::vkey_path(&key_path);
    let name = keys::key_name(HOST);
    keys::generate(&key_path, &name).expect("generate key");
    let signer = keys::load(&key_path, Some(&name)).expect("load key");
    let public = *signer.verifier().public_key();

    let t = Instant::now();
    let mut ledger = Ledger::open(&data_dir.join(LEDGER_FILE), HOST, signer).expect("open ledger");
    let mut k = 0;
    while k < entries {
        let end = (k + BATCH).min(entries);
        ledger
            .append((k..end).map(entry).collect())
            .expect("append");
        k = end;
    }
    drop(ledger);
    let build_seconds = t.elapsed().as_secs_f64();

    // Exactly the ledger's minutes: [base, base + minutes).
    let minutes = entries / per_minute;
    let from = evidence_agent::ledger::timestamp(base());
    let to = evidence_agent::ledger::timestamp(base() + Duration::minutes(minutes as i64));
    let bundle = data_dir.join("bundle");
    let mut export = Command::new(bin);
    export
        // No configuration file: the read-only commands then work from --data-dir alone.
        .arg("--config")
        .arg(dir.path().join("no-such-agent.toml"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["export", "--from", &from, "--to", &to, "--out"])
        .arg(&bundle);
    let exported = run(export, dir.path());
    check("export", &exported);
    let (parts, files, bytes) = common::dir_sizes(&bundle);

    let ours = || {
        let mut cmd = Command::new(bin);
        cmd.arg("verify").arg(&bundle).arg("--vkey").arg(&vkey_path);
        let r = run(cmd, dir.path());
        check("verify", &r);
        assert!(
            r.stdout.contains("OK:") && r.stdout.contains("key evidence-agent/"),
            "verify printed no OK:\n{}",
            r.stdout
        );
        assert!(
            r.stdout.contains(&format!("({entries})")) && r.stdout.contains(": pinned"),
            "verify did not check all {entries} entries with the pinned key:\n{}",
            r.stdout
        );
        r
    };
    let reference = || {
        let mut cmd = Command::new("sha256sum");
        cmd.args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(&bundle);
        let r = run(cmd, dir.path());
        check("sha256sum -c", &r);
        r
    };
    check("sha256sum warm-up", &reference());
    let mut results = Vec::new();
    for _ in 0..runs {
        let o = ours();
        let r = reference();
        results.push((o, r));
    }

    let rate = |s: f64| entries as f64 / s;
    println!(
        "bundle verify: {entries} entries ({} collectors, one run each per minute over {minutes} min); \
         ledger built in {build_seconds:.1} s ({:.0} entries/s)",
        COLLECTORS.len(),
        rate(build_seconds)
    );
    println!(
        "export: {:.2} s wall, {:.2} s CPU, {:.0} MiB peak RSS ({:.0} entries/s)",
        exported.seconds,
        exported.cpu,
        exported.max_rss_mib,
        rate(exported.seconds)
    );
    println!("  {}", exported.stdout.trim().replace('\n', "\n  "));
    println!(
        "bundle: {files} files, {bytes} bytes ({:.1} MB)",
        bytes as f64 / 1e6
    );
    for (name, n, b) in &parts {
        println!("  {name:<16} {n:>8} files {b:>12} bytes");
    }
    println!("run  side        seconds   entries/s   CPU s   peak RSS MiB");
    for (i, (o, r)) in results.iter().enumerate() {
        for (side, x) in [("verify", o), ("sha256sum", r)] {
            println!(
                "{:>3}  {side:<10} {:>8.3} {:>11.0} {:>7.2} {:>14.0}",
                i + 1,
                x.seconds,
                rate(x.seconds),
                x.cpu,
                x.max_rss_mib
            );
        }
    }
    let ours_s = median(results.iter().map(|(o, _)| o.seconds).collect());
    let ref_s = median(results.iter().map(|(_, r)| r.seconds).collect());
    let ours_cpu = median(results.iter().map(|(o, _)| o.cpu).collect());
    let ref_cpu = median(results.iter().map(|(_, r)| r.cpu).collect());
    println!(
        "median: verify {ours_s:.3} s ({:.0} entries/s, {ours_cpu:.2} s CPU), \
         sha256sum {ref_s:.3} s ({:.0} entries/s, {ref_cpu:.2} s CPU)",
        rate(ours_s),
        rate(ref_s)
    );
    println!(
        "ratio: time verify/sha256sum {:.2}, rate verify/sha256sum {:.2}",
        ours_s / ref_s,
        ref_s / ours_s
    );

    table::record(Row {
        benchmark: format!("bundle verify, {entries} entries"),
        ours: format!("{:.0} entries/s ({ours_s:.2} s)", rate(ours_s)),
        reference: format!("sha256sum -c: {ref_s:.2} s"),
        ratio: format!("{:.2}x its time", ours_s / ref_s),
        target: "-".into(),
        met: None,
    });

    let bound = common::sigs::ed25519_bound(&data_dir.join(LEDGER_FILE), &public, 0);
    let ratio = rate(ours_s) / bound.all_cores_rate();
    println!(
        "Ed25519 alone on {} cores: {:.0} signatures/s; verify/bound {ratio:.2}",
        bound.cores,
        bound.all_cores_rate()
    );
    table::record(Row {
        benchmark: format!("bundle verify, {entries} entries ({} cores)", bound.cores),
        ours: format!("{:.0} entries/s", rate(ours_s)),
        reference: format!(
            "Ed25519 alone on {} cores: {:.0}/s",
            bound.cores,
            bound.all_cores_rate()
        ),
        ratio: format!("{ratio:.2} of its rate"),
        target: "≥ 0.70 of the bound".into(),
        met: Some(ratio >= 0.7),
    });

    if std::env::var_os("BUNDLE_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
}
