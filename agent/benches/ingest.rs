//! Log ingest benchmark: a `log_file` snapshot of a large log (1 GiB by default) taken by the
//! real binary, beside `openssl dgst -sha256` reading and hashing the very same file in the same
//! run, reported as a ratio of wall times; and the agent's peak RSS, which must stay small
//! because content is streamed, never held whole.
//!
//! - The log is generated once in a temporary directory: syslog-like lines (timestamp, host,
//!   program[pid], message with users, addresses and ports), `INGEST_BENCH_BYTES` bytes (default
//!   1 GiB, cut at the last whole line).
//! - Ours: `evidence-agent --config C --data-dir D collect --collector ingest`, a configuration
//!   with one `log_file` collector on that file (`max_segment_bytes` set to the file's size so
//!   the first run takes all of it; its 1 GiB default would too for the default size). Each
//!   round starts from an empty data directory, so every run ingests the whole file: read,
//!   hash, spool, copy into the ledger, sign, commit with fsync. Wall time, CPU and peak RSS
//!   are the child's (wait4).
//! - Reference: `openssl dgst -sha256 FILE` (hardware SHA where the CPU has it).
//! - One untimed `openssl` pass first warms the page cache, so both read the log from memory;
//!   then `INGEST_BENCH_RUNS` (default 3) rounds alternating ours/reference; medians decide.
//! - To say where the time goes, the same work is also timed in this process in phases: the
//!   collector's `collect()` alone (read, hash, spool), then `Ledger::append` of that snapshot
//!   (copy into SQLite, commit), then closing the ledger (WAL checkpoint into the database).
//!
//! Run: `cargo bench -p evidence-agent --bench ingest` (needs `openssl`).

mod common;

use common::process::{check, run, rusage_seconds};
use common::table::{self, Row};
use common::{env_num, median};

use evidence_agent::keys;
use evidence_agent::ledger::{Ledger, LEDGER_FILE};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const HOST: &str = "ingest-bench";
const ID: &str = "ingest";
const RSS_TARGET_MIB: f64 = 64.0;
const TIME_TARGET: f64 = 1.25;

/// Write about `bytes` bytes of syslog-like lines to `path`; returns (bytes, lines) written.
fn generate(path: &Path, bytes: u64) -> (u64, u64) {
    const PROGRAMS: [&str; 6] = ["sshd", "sudo", "cron", "systemd", "kernel", "nginx"];
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path).expect("create log"));
    let (mut written, mut lines) = (0u64, 0u64);
    // A small xorshift generator: varied, reproducible lines without a dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut line = String::with_capacity(256);
    loop {
        let r = next();
        let second = lines / 50;
        let program = PROGRAMS[(r % 6) as usize];
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(
            line,
            "Nov {:2} {:02}:{:02}:{:02} host-{} {program}[{}]: ",
            1 + (second / 86_400) % 30,
            (second / 3600) % 24,
            (second / 60) % 60,
            second % 60,
            r >> 60,
            1000 + (r >> 8) % 60_000,
        );
        let _ = match r % 4 {
            0 => write!(
                line,
                "Accepted publickey for user{} from 10.{}.{}.{} port {} ssh2: ED25519 SHA256:{:016x}",
                (r >> 12) % 500,
                (r >> 20) % 256,
                (r >> 28) % 256,
                (r >> 36) % 256,
                1024 + (r >> 40) % 60_000,
                next()
            ),
            1 => write!(
                line,
                "user{} : TTY=pts/{} ; PWD=/home/user{} ; USER=root ; COMMAND=/usr/bin/systemctl restart app{}",
                (r >> 12) % 500,
                (r >> 20) % 10,
                (r >> 12) % 500,
                (r >> 30) % 40
            ),
            2 => write!(
                line,
                "10.{}.{}.{} - - \"GET /api/v1/items/{} HTTP/1.1\" {} {} \"-\" \"curl/8.{}\"",
                (r >> 20) % 256,
                (r >> 28) % 256,
                (r >> 36) % 256,
                (r >> 12) % 100_000,
                [200, 200, 304, 404, 500][((r >> 44) % 5) as usize],
                (r >> 48) % 20_000,
                (r >> 56) % 10
            ),
            _ => write!(
                line,
                "Started session {} of user user{}.",
                (r >> 12) % 1_000_000,
                (r >> 32) % 500
            ),
        };
        line.push('\n');
        if written + line.len() as u64 > bytes {
            break;
        }
        out.write_all(line.as_bytes()).expect("write log");
        written += line.len() as u64;
        lines += 1;
    }
    out.flush().expect("flush log");
    (written, lines)
}

fn config_text(data_dir: &Path, key: &Path, log: &Path, max_bytes: u64) -> String {
    format!(
        "host_id = \"{HOST}\"\ndata_dir = \"{}\"\nkey_path = \"{}\"\n\n[[collectors]]\nid = \"{ID}\"\n\
         kind = \"log_file\"\nschedule = \"@daily\"\ntimeout = \"1h\"\npath = \"{}\"\n\
         max_segment_bytes = {max_bytes}\n",
        data_dir.display(),
        key.display(),
        log.display()
    )
}

/// The phases of one ingest done in this process: (collect s, collect CPU s, append s, close s).
fn in_process(dir: &Path, key: &Path, log: &Path, max_bytes: u64) -> (f64, f64, f64, f64) {
    let data_dir = dir.join("in-process");
    let spool = data_dir.join("spool");
    fs::create_dir_all(&spool).expect("create spool dir");
    let mut settings = toml::Table::new();
    settings.insert("path".into(), log.display().to_string().into());
    settings.insert("max_segment_bytes".into(), (max_bytes as i64).into());
    let collector = collectors::registry::build("log_file", &settings).expect("build log_file");
    let ctx = collectors::CollectContext {
        collector_id: ID.into(),
        cursor: None,
        spool_dir: spool,
        redaction_salt: [0; 32],
        protected_paths: vec![data_dir.clone()],
        deadline: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cpu0 = rusage_seconds(libc::RUSAGE_SELF);
    let t = Instant::now();
    let snapshot = rt.block_on(collector.collect(ctx)).expect("collect");
    let collect_s = t.elapsed().as_secs_f64();
    let collect_cpu = rusage_seconds(libc::RUSAGE_SELF) - cpu0;

    let signer = keys::load(key, Some(&keys::key_name(HOST))).expect("load key");
    let mut ledger = Ledger::open(&data_dir.join(LEDGER_FILE), HOST, signer).expect("open ledger");
    let mut entry = common::ok_entry(0, "log_file", Vec::new());
    entry.collector_id = ID.into();
    entry.outcome = evidence_agent::ledger::Outcome::Ok(snapshot);
    let t = Instant::now();
    ledger.append(vec![entry]).expect("append");
    let append_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drop(ledger);
    let close_s = t.elapsed().as_secs_f64();
    fs::remove_dir_all(&data_dir).expect("remove in-process data dir");
    (collect_s, collect_cpu, append_s, close_s)
}

fn main() {
    let want = env_num("INGEST_BENCH_BYTES", 1 << 30);
    let runs = env_num("INGEST_BENCH_RUNS", 3).max(1);
    let bin = common::agent_bin();
    let dir = tempfile::Builder::new()
        .prefix("ingest-bench-")
        .tempdir()
        .expect("tempdir");
    let log = dir.path().join("app.log");
    let t = Instant::now();
    let (bytes, lines) = generate(&log, want);
    println!(
        "log: {bytes} bytes ({:.2} GiB), {lines} lines, generated in {:.1} s",
        bytes as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );
    let key = dir.path().join("key").join("host.key");
    keys::generate(&key, &keys::key_name(HOST)).expect("generate key");

    let reference = || {
        let mut cmd = Command::new("openssl");
        cmd.args(["dgst", "-sha256"]).arg(&log);
        let r = run(cmd, dir.path());
        check("openssl dgst", &r);
        r
    };
    let ours = |round: u64| {
        let data_dir = dir.path().join(format!("data-{round}"));
        let config = dir.path().join(format!("agent-{round}.toml"));
        fs::write(&config, config_text(&data_dir, &key, &log, bytes)).expect("write config");
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["collect", "--collector", ID]);
        let r = run(cmd, dir.path());
        check("evidence-agent collect", &r);
        assert!(
            r.stdout.contains(&format!("{ID}: ok, {lines} items")),
            "collect did not take all {lines} lines:\n{}",
            r.stdout
        );
        let ledger_bytes = fs::metadata(data_dir.join(LEDGER_FILE)).map_or(0, |m| m.len());
        // Each round's ledger holds the whole log; keep only one on disk at a time.
        fs::remove_dir_all(&data_dir).expect("remove data dir");
        (r, ledger_bytes)
    };

    let warm = reference();
    let digest = warm
        .stdout
        .split_whitespace()
        .last()
        .unwrap_or("")
        .to_owned();
    let mut results = Vec::new();
    let mut ledger_bytes = 0;
    for round in 0..runs {
        let (o, size) = ours(round);
        ledger_bytes = size;
        let r = reference();
        results.push((o, r));
    }
    let phases = in_process(dir.path(), &key, &log, bytes);

    let mib_s = |s: f64| bytes as f64 / s / (1u64 << 20) as f64;
    println!("openssl sha256 of the log: {digest}; ledger file after a run: {ledger_bytes} bytes");
    println!("run  side        seconds     MiB/s   CPU s   peak RSS MiB");
    for (i, (o, r)) in results.iter().enumerate() {
        for (side, x) in [("collect", o), ("openssl", r)] {
            println!(
                "{:>3}  {side:<10} {:>8.3} {:>9.0} {:>7.2} {:>14.1}",
                i + 1,
                x.seconds,
                mib_s(x.seconds),
                x.cpu,
                x.max_rss_mib
            );
        }
    }
    let ours_s = median(results.iter().map(|(o, _)| o.seconds).collect());
    let ref_s = median(results.iter().map(|(_, r)| r.seconds).collect());
    let ours_cpu = median(results.iter().map(|(o, _)| o.cpu).collect());
    let ours_rss = results
        .iter()
        .map(|(o, _)| o.max_rss_mib)
        .fold(0.0, f64::max);
    let (collect_s, collect_cpu, append_s, close_s) = phases;
    println!(
        "in process: collect() {collect_s:.3} s ({collect_cpu:.2} s CPU), append {append_s:.3} s, \
         close {close_s:.3} s"
    );
    let size = format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64);
    table::record(Row {
        benchmark: format!("log ingest, {size}: evidence-agent collect"),
        ours: format!(
            "{ours_s:.2} s ({:.0} MiB/s, {ours_cpu:.2} s CPU)",
            mib_s(ours_s)
        ),
        reference: format!(
            "openssl dgst -sha256: {ref_s:.2} s ({:.0} MiB/s)",
            mib_s(ref_s)
        ),
        ratio: format!("{:.2}x its time", ours_s / ref_s),
        target: format!("≤ {TIME_TARGET}x"),
        met: Some(ours_s / ref_s <= TIME_TARGET),
    });
    table::record(Row {
        benchmark: format!("log ingest, {size}: peak RSS of collect"),
        ours: format!("{ours_rss:.1} MiB (highest of {runs} runs)"),
        reference: "-".into(),
        ratio: "-".into(),
        target: format!("< {RSS_TARGET_MIB} MiB"),
        met: Some(ours_rss < RSS_TARGET_MIB),
    });
    table::record(Row {
        benchmark: format!("log ingest, {size}: collect() alone, in process"),
        ours: format!("{collect_s:.2} s ({:.0} MiB/s)", mib_s(collect_s)),
        reference: format!("openssl dgst -sha256: {ref_s:.2} s"),
        ratio: format!("{:.2}x its time", collect_s / ref_s),
        target: "-".into(),
        met: None,
    });
    table::record(Row {
        benchmark: format!("log ingest, {size}: Ledger::append + close, in process"),
        ours: format!("{append_s:.2} s + {close_s:.2} s"),
        reference: format!("openssl dgst -sha256: {ref_s:.2} s"),
        ratio: format!("{:.2}x its time", (append_s + close_s) / ref_s),
        target: "-".into(),
        met: None,
    });
}
