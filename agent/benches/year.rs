//! Year-scale benchmark: `export` + `verify` of a simulated year of one host from its local
//! ledger, then of a fleet of such hosts from a local S3 server, each timed beside a reference
//! measured in the same run and reported as a ratio.
//!
//! # The simulated year
//!
//! Each host runs 10 collectors on `0 * * * *` (hourly, so the schedule is fully covered) for
//! `YEAR_BENCH_DAYS` days (default 365) from 2025-01-01: 365 × 24 × 10 = 87,600 entries, built
//! through the library (`Ledger::append`), one batch (and signed checkpoint) per 6 hours, as a
//! daemon that checkpoints a few times a day would. Content changes at the rate its kind does:
//! three access lists (`linux_accounts`, `aws_iam`, authorized keys via `files`) daily, three
//! backup configs (`files` ×2, `s3_bucket_backup_config`) weekly, two logs (`log_file`) every
//! run as small raw segments, two ticket collectors (`github_pull_requests`, `jira_issues`)
//! every run, most runs finding nothing new (`{"items":[]}`), a merged change every 8 or 12
//! hours. Log lines repeat with the hour of the week, so a host stores ~3,400 distinct blobs
//! rather than 17,000+: content is deduplicated per digest, which keeps moto's object count
//! sane without changing how many entries, proofs and envelopes are exported and verified.
//!
//! # Local year (one host)
//!
//! - Ours: `evidence-agent --data-dir D export --from <start> --to <end> --out B` (every entry,
//!   no sample), then `evidence-agent verify B --vkey D/keys/host.vkey` (must exit 0).
//! - Export's reference: `cp -r B B2`, which writes the very same files from the page cache.
//!   Any exporter of this layout must at least create these ~175,000 files; `cp` does that
//!   without reading SQLite, checking signatures and proofs or deriving populations, so the
//!   ratio is what all of that costs on top of the file system.
//! - Verify's reference: `sha256sum -c --quiet SHA256SUMS` in the bundle, reading and hashing
//!   every file once (the floor of any verifier), after one untimed pass so both start warm.
//!
//! # Fleet
//!
//! `YEAR_BENCH_HOSTS` hosts (default 50, host-001 on; host-000 is the local year's) with their
//! own ids and keys, built on two threads, each synced to moto (`common::moto`) under
//! `s3://evidence-year/fleet/<host>/` with the library's `Syncer` (set-up, timed separately).
//! The fleet's period is its first `YEAR_BENCH_FLEET_DAYS` days (default 7, at most the year):
//! 50 full years are 4.4 million entries, whose bundle (~50 GB in ~8.8 million files), moto
//! store and export memory (~12 KB an entry) do not fit the 2-core, 24 GiB machine the
//! figures are published for. Every host runs the same schedule, so the fleet figures are
//! per entry and scale with the period.
//! - Ours: `evidence-agent --config C export --source s3://evidence-year/fleet --from --to
//!   --out F` (C's `[s3]` names moto's endpoint), then `verify F --vkey <each host's vkey>`.
//! - Export's reference: `aws s3 sync s3://evidence-year/fleet DIR`, downloading every object
//!   of the prefix (export downloads fewer, every tile and the content but not the
//!   `checkpoints/` history, then checks and writes the bundle).
//! - Verify's reference: `sha256sum -c` over the fleet bundle, as above.
//!
//! Wall time, CPU (user + system) and peak RSS are the child's (`wait4`). Each timed command
//! runs once: at this scale one run is minutes and the medians of `bundle` cover run-to-run
//! noise. The fleet bundle holds every entry of every host (2 files per entry); its size is
//! estimated from the local bundle before export and the run stops if the temporary
//! directory's file system cannot hold it. `YEAR_BENCH_KEEP=1` keeps the temporary directory.
//!
//! Run: `cargo bench -p evidence-agent --bench year` (needs `sha256sum`, `cp`, python3 with
//! moto, `aws`); `YEAR_BENCH_DAYS=7 YEAR_BENCH_HOSTS=3` for a quick pass,
//! `YEAR_BENCH_FLEET_DAYS=365` for the full fleet on a machine that can hold it.

mod common;

use common::moto::{Moto, AWS_ENV};
use common::process::{check, run, Run};
use common::table::{self, Row};
use common::{dir_sizes, env_num};

use chrono::{DateTime, Duration, TimeZone, Utc};
use collectors::{Content, Snapshot};
use evidence_agent::ledger::{Ledger, NewEntry, Outcome, LEDGER_FILE};
use evidence_agent::statement::Trigger;
use evidence_agent::{config, keys, sync};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const BUCKET: &str = "evidence-year";
const PREFIX: &str = "fleet";
const SCHEDULE: &str = "0 * * * *";
/// Hours per append batch (one signed checkpoint each): 4 batches a day.
const BATCH_HOURS: u64 = 6;
/// Threads that build the fleet's ledgers (the machine's two cores).
const BUILDERS: usize = 2;
/// (collector id, kind) of the 10 collectors every host runs.
const COLLECTORS: [(&str, &str); 10] = [
    ("accounts", "linux_accounts"),
    ("iam", "aws_iam"),
    ("authorized-keys", "files"),
    ("sshd-config", "files"),
    ("backup-config", "files"),
    ("backup-bucket", "s3_bucket_backup_config"),
    ("auth-log", "log_file"),
    ("audit-log", "log_file"),
    ("pull-requests", "github_pull_requests"),
    ("jira-changes", "jira_issues"),
];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn to_vec(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("JSON")
}

/// An access list of `n` principals, one of which changes with `version`.
fn access_list(kind: &str, n: u64, version: u64) -> Vec<u8> {
    let items: Vec<_> = (0..n)
        .map(|i| {
            let name = if i == n - 1 {
                format!("contractor-{version}")
            } else {
                format!("user{i:02}")
            };
            json!({"id": format!("{kind}:{name}"), "type": kind, "name": name,
                   "uid": 1000 + i, "groups": ["staff", if i % 3 == 0 { "sudo" } else { "dev" }],
                   "shell": "/bin/bash", "mfa": i % 4 != 0,
                   "last_used": format!("2025-day-{version}")})
        })
        .collect();
    to_vec(json!({ "items": items }))
}

/// A configuration file's snapshot at `version`.
fn config_file(path: &str, lines: u64, version: u64) -> Vec<u8> {
    let text: String = (0..lines)
        .map(|i| format!("Setting{i} value-{}\n", if i == 0 { version } else { i }))
        .collect();
    to_vec(
        json!({"items": [{"id": path, "type": "file", "mode": "0644", "owner": "root",
                             "text": text}]}),
    )
}

/// A raw log segment of `lines` lines; the same for the same hour of the week.
fn log_segment(host: &str, program: &str, lines: u64, hour: u64) -> Vec<u8> {
    let how = hour % (24 * 7);
    (0..lines)
        .map(|i| {
            format!(
                "{host} {program}[{}]: session {how}-{i} opened for user deploy from 10.0.{}.{} \
                 port {} ssh2\n",
                1000 + how,
                how % 256,
                i % 256,
                20000 + i
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// The changes a ticket collector finds in `hour`: one merged change every `every` hours.
fn tickets(source: &str, every: u64, hour: u64) -> Vec<u8> {
    if hour % every != every - 1 {
        return to_vec(json!({ "items": [] }));
    }
    let n = hour / every;
    let at = timestamp(base() + Duration::hours(hour as i64));
    to_vec(json!({"items": [{
        "type": "change", "id": format!("{source}:OPS-{n}"), "source": source,
        "title": format!("Rotate credentials for service {n}"),
        "url": format!("https://{source}.example.com/OPS-{n}"), "author": "bob",
        "state": "merged", "created_at": at, "updated_at": at, "merged_at": at,
        "closed_at": null, "approvals": [{"by": "alice", "at": at, "state": "approved"}],
        "approvers": ["alice"], "approved_at": at, "approved_before_merge": true,
        "linked_tickets": [format!("OPS-{n}")], "target": "main", "details": {}
    }]}))
}

fn timestamp(t: DateTime<Utc>) -> String {
    evidence_agent::ledger::timestamp(t)
}

/// Collector `c`'s run at `hour` on `host`.
fn entry(host: &str, c: usize, hour: u64) -> NewEntry {
    let (day, week) = (hour / 24, hour / (24 * 7));
    let (id, kind) = COLLECTORS[c];
    let json = |content| {
        (
            content,
            collectors::MEDIA_TYPE_JSON,
            serde_json::Value::Null,
        )
    };
    let (content, media_type, details) = match c {
        0 => json(access_list("user", 25, day)),
        1 => json(access_list("iam-user", 15, day)),
        2 => json(access_list("ssh-key", 10, day)),
        3 => json(config_file("/etc/ssh/sshd_config", 60, week)),
        4 => json(config_file("/etc/restic/env", 15, week)),
        5 => json(config_file("s3://backups", 20, week)),
        6 | 7 => {
            let (path, program, lines) = if c == 6 {
                ("/var/log/auth.log", "sshd", 12)
            } else {
                ("/var/log/audit/audit.log", "auditd", 30)
            };
            let bytes = log_segment(host, program, lines, hour);
            // Offsets in a file rotated daily.
            let start = (hour % 24) * bytes.len() as u64;
            let details = json!({"path": path, "start_offset": start,
                                 "end_offset": start + bytes.len() as u64});
            (bytes, collectors::MEDIA_TYPE_OCTETS, details)
        }
        8 => json(tickets("github", 8, hour)),
        _ => json(tickets("jira", 12, hour)),
    };
    let at = base() + Duration::hours(hour as i64);
    let started = at + Duration::milliseconds(15 + 10 * c as i64);
    NewEntry {
        collector_id: id.to_owned(),
        kind: kind.to_owned(),
        trigger: Trigger::Schedule,
        scheduled_for: at,
        started_at: started,
        finished_at: started + Duration::milliseconds(180),
        config_sha256: [7; 32],
        schedule: Some(SCHEDULE.to_owned()),
        outcome: Outcome::Ok(Snapshot {
            content: Content::from_bytes(content),
            media_type,
            item_count: 1,
            cursor: None,
            details,
        }),
    }
}

/// One simulated host: its id and data directory (ledger and key).
struct Host {
    id: String,
    data_dir: PathBuf,
}

impl Host {
    fn new(root: &Path, i: usize) -> Host {
        let id = format!("host-{i:03}");
        let data_dir = root.join(&id);
        Host { id, data_dir }
    }
    fn key_path(&self) -> PathBuf {
        self.data_dir.join("keys").join("host.key")
    }
    fn vkey_path(&self) -> PathBuf {
        keys::vkey_path(&self.key_path())
    }
    fn signer(&self) -> evidence_agent::tlog::note::NoteSigner {
        keys::load(&self.key_path(), Some(&keys::key_name(&self.id))).expect("load host key")
    }

    /// A key and a ledger of `days` days, appended `BATCH_HOURS` hours per batch.
    fn build(&self, days: u64) {
        keys::generate(&self.key_path(), &keys::key_name(&self.id)).expect("generate key");
        let path = self.data_dir.join(LEDGER_FILE);
        let mut ledger = Ledger::open(&path, &self.id, self.signer()).expect("open ledger");
        let hours = days * 24;
        let mut hour = 0;
        while hour < hours {
            let end = (hour + BATCH_HOURS).min(hours);
            let batch = (hour..end)
                .flat_map(|h| (0..COLLECTORS.len()).map(move |c| (h, c)))
                .map(|(h, c)| entry(&self.id, c, h))
                .collect();
            ledger.append(batch).expect("append");
            hour = end;
        }
    }

    /// A configuration whose `[s3]` table is moto's `s3://BUCKET/PREFIX`.
    fn config(&self, moto: &Moto) -> (String, config::Config) {
        let text = format!(
            "host_id = \"{}\"\ndata_dir = \"{}\"\n\n[s3]\nbucket = \"{BUCKET}\"\n\
             prefix = \"{PREFIX}\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\
             force_path_style = true\n",
            self.id,
            self.data_dir.display(),
            moto.url()
        );
        let parsed = config::parse(&self.data_dir.join("agent.toml"), &text, None)
            .unwrap_or_else(|e| panic!("bench config:\n{e}\n{text}"));
        (text, parsed)
    }
}

/// One timed command beside its reference.
struct Pair {
    what: String,
    ours: Run,
    reference: Run,
    reference_name: &'static str,
}

impl Pair {
    fn print(&self, entries: u64) {
        println!("  side        seconds   entries/s   CPU s   peak RSS MiB");
        for (side, x) in [("ours", &self.ours), (self.reference_name, &self.reference)] {
            println!(
                "  {side:<10} {:>8.2} {:>11.0} {:>7.2} {:>14.0}",
                x.seconds,
                entries as f64 / x.seconds,
                x.cpu,
                x.max_rss_mib
            );
        }
        println!(
            "  ratio ours/{}: {:.2}x its time, {:.2}x its CPU",
            self.reference_name,
            self.ours.seconds / self.reference.seconds,
            self.ours.cpu / self.reference.cpu.max(0.001)
        );
    }

    fn record(&self, entries: u64) {
        self.print(entries);
        table::record(Row {
            benchmark: self.what.clone(),
            ours: format!(
                "{:.0} entries/s ({:.1} s, {:.0} MiB peak RSS)",
                entries as f64 / self.ours.seconds,
                self.ours.seconds,
                self.ours.max_rss_mib
            ),
            reference: format!("{}: {:.1} s", self.reference_name, self.reference.seconds),
            ratio: format!(
                "{:.2}x its time",
                self.ours.seconds / self.reference.seconds
            ),
            target: "-".into(),
            met: None,
        });
    }
}

/// `sha256sum -c --quiet SHA256SUMS` in `bundle`.
fn sha256sum(bundle: &Path, scratch: &Path) -> Run {
    let mut cmd = Command::new("sha256sum");
    cmd.args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(bundle);
    let r = run(cmd, scratch);
    check("sha256sum -c", &r);
    r
}

/// `evidence-agent verify bundle --vkey ...` (must exit 0 with every host's key pinned) beside
/// `sha256sum -c`, after an untimed `sha256sum` pass so both start from the same page cache.
fn verify(bundle: &Path, vkeys: &[PathBuf], entries: u64, scratch: &Path) {
    sha256sum(bundle, scratch);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evidence-agent"));
    cmd.arg("verify").arg(bundle);
    for v in vkeys {
        cmd.arg("--vkey").arg(v);
    }
    let r = run(cmd, scratch);
    check("verify", &r);
    let pinned = r.stdout.matches(": pinned").count();
    let checked: u64 = r
        .stdout
        .lines()
        .filter_map(|l| l.split_once(" (")?.1.split_once(')')?.0.parse::<u64>().ok())
        .sum();
    assert!(
        r.stdout.contains("OK:") && pinned == vkeys.len() && checked == entries,
        "verify did not check {entries} entries of {} pinned hosts:\n{}",
        vkeys.len(),
        common::process::tail(&r.stdout)
    );
    Pair {
        what: format!("year verify, {} host(s), {entries} entries", vkeys.len()),
        ours: r,
        reference: sha256sum(bundle, scratch),
        reference_name: "sha256sum",
    }
    .record(entries);
}

/// Prints a bundle's size and returns (files, bytes).
fn show_bundle(bundle: &Path) -> (u64, u64) {
    let (parts, files, bytes) = dir_sizes(bundle);
    println!("bundle: {files} files, {:.1} MB", bytes as f64 / 1e6);
    for (name, n, b) in &parts {
        println!("  {name:<16} {n:>9} files {b:>13} bytes");
    }
    (files, bytes)
}

/// Free bytes of the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.to_str().expect("UTF-8 path")).expect("path");
    // SAFETY: statvfs only writes the struct it is given.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0, "statvfs");
    s.f_bavail as u64 * s.f_frsize as u64
}

/// The period's bounds as `--from`/`--to` arguments: exactly the simulated days.
fn period(days: u64) -> (String, String) {
    (
        timestamp(base()),
        timestamp(base() + Duration::days(days as i64)),
    )
}

/// Export and verify the local year of `host`; returns (bundle files, bytes) for the estimate.
fn local_year(host: &Host, days: u64, entries: u64, scratch: &Path) -> (u64, u64) {
    let (from, to) = period(days);
    let bundle = scratch.join("year-bundle");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evidence-agent"));
    cmd.arg("--config")
        .arg(scratch.join("no-such-agent.toml"))
        .arg("--data-dir")
        .arg(&host.data_dir)
        .args(["export", "--from", &from, "--to", &to, "--out"])
        .arg(&bundle);
    let exported = run(cmd, scratch);
    check("export", &exported);
    println!("  {}", exported.stdout.trim().replace('\n', "\n  "));
    let copy = scratch.join("year-bundle-copy");
    let mut cp = Command::new("cp");
    cp.arg("-r").arg(&bundle).arg(&copy);
    let copied = run(cp, scratch);
    check("cp -r", &copied);
    std::fs::remove_dir_all(&copy).expect("remove the copy");
    let size = show_bundle(&bundle);
    let ledger_bytes = std::fs::metadata(host.data_dir.join(LEDGER_FILE))
        .expect("ledger")
        .len();
    println!("ledger file: {:.1} MB", ledger_bytes as f64 / 1e6);
    let export = Pair {
        what: format!("year export, 1 host, {entries} entries (ledger)"),
        ours: exported,
        reference: copied,
        reference_name: "cp -r",
    };
    println!("export of one host's {days} days:");
    export.record(entries);

    println!("verify of that bundle:");
    verify(&bundle, &[host.vkey_path()], entries, scratch);
    std::fs::remove_dir_all(&bundle).expect("remove the local bundle");
    size
}

/// Build every host's ledger on [`BUILDERS`] threads.
fn build_fleet(hosts: &[Host], days: u64) {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..BUILDERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(host) = hosts.get(i) else { break };
                host.build(days);
                let mut done = done.lock().expect("progress lock");
                *done += 1;
                if *done % 10 == 0 {
                    println!("  {} of {} ledgers built", *done, hosts.len());
                }
            });
        }
    });
}

/// Sync every host's ledger to moto with the library's `Syncer`; returns the objects put.
fn sync_fleet(hosts: &[Host], moto: &Moto) -> u64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut objects = 0;
    for host in hosts {
        let (_, cfg) = host.config(moto);
        let s3 = cfg.s3.clone().expect("[s3]");
        let report = runtime.block_on(async {
            let syncer = sync::open(&cfg, &s3, host.signer())
                .await
                .expect("sync::open");
            syncer
                .sync_once()
                .await
                .unwrap_or_else(|e| panic!("sync {}: {e}\n--- moto\n{}", host.id, moto.log()))
        });
        objects += report.uploaded as u64;
    }
    objects
}

fn main() {
    let days = env_num("YEAR_BENCH_DAYS", 365).max(1);
    let n_hosts = env_num("YEAR_BENCH_HOSTS", 50).max(1) as usize;
    let fleet_days = env_num("YEAR_BENCH_FLEET_DAYS", 7).clamp(1, days);
    let per_host = days * 24 * COLLECTORS.len() as u64;
    let per_fleet_host = fleet_days * 24 * COLLECTORS.len() as u64;
    // Before any thread exists: the SDK reads credentials and region from the environment.
    for (k, v) in AWS_ENV {
        std::env::set_var(k, v);
    }
    let dir = tempfile::Builder::new()
        .prefix("year-bench-")
        .tempdir()
        .expect("tempdir");
    let scratch = dir.path();
    let year_host = Host::new(scratch, 0);
    let hosts: Vec<Host> = (1..=n_hosts).map(|i| Host::new(scratch, i)).collect();
    println!(
        "year: {days} days x 24 runs x {} collectors = {per_host} entries; fleet: {n_hosts} hosts \
         x {fleet_days} days = {per_fleet_host} entries each",
        COLLECTORS.len()
    );

    let t = Instant::now();
    year_host.build(days);
    let build_one = t.elapsed().as_secs_f64();
    println!(
        "set-up: host-000's ledger built in {build_one:.1} s ({:.0} entries/s)",
        per_host as f64 / build_one
    );
    let (files, bytes) = local_year(&year_host, days, per_host, scratch);
    std::fs::remove_dir_all(&year_host.data_dir).expect("remove the year's data directory");

    let t = Instant::now();
    build_fleet(&hosts, fleet_days);
    let build_rest = t.elapsed().as_secs_f64();
    println!("set-up: {n_hosts} fleet ledgers built on {BUILDERS} threads in {build_rest:.1} s");

    let moto = Moto::start(&scratch.join("moto.log"));
    moto.aws(&["s3api", "create-bucket", "--bucket", BUCKET]);
    let (_, cfg) = hosts[0].config(&moto);
    let plan = {
        let ledger = Ledger::open(
            &hosts[0].data_dir.join(LEDGER_FILE),
            &hosts[0].id,
            hosts[0].signer(),
        )
        .expect("open ledger");
        ledger
            .sync_plan(&sync::location(
                cfg.s3.as_ref().expect("[s3]"),
                &hosts[0].id,
            ))
            .expect("sync plan")
    };
    println!(
        "S3 objects per fleet host: {} ({:.1} MB); fleet total about {} objects",
        plan.objects(),
        plan.bytes() as f64 / 1e6,
        plan.objects() * n_hosts
    );
    let t = Instant::now();
    let objects = sync_fleet(&hosts, &moto);
    let sync_s = t.elapsed().as_secs_f64();
    println!(
        "set-up: {n_hosts} hosts synced to moto in {sync_s:.1} s ({objects} objects, {:.0} objects/s)",
        objects as f64 / sync_s
    );

    // The fleet bundle holds every entry: estimate it from the local one before writing it.
    let fleet_entries = per_fleet_host * n_hosts as u64;
    let estimate = (bytes + files * 4096) / per_host * fleet_entries;
    let free = free_bytes(scratch);
    assert!(
        estimate < free / 10 * 8,
        "the fleet bundle would take about {:.1} GB (bytes plus a 4 KiB block per file) but {} \
         has {:.1} GB free; lower YEAR_BENCH_HOSTS or YEAR_BENCH_DAYS",
        estimate as f64 / 1e9,
        scratch.display(),
        free as f64 / 1e9
    );
    let (from, to) = period(fleet_days);
    let fleet_bundle = scratch.join("fleet-bundle");
    let auditor = Host::new(scratch, 999);
    std::fs::create_dir_all(&auditor.data_dir).expect("auditor dir");
    let (text, _) = auditor.config(&moto);
    let auditor_config = auditor.data_dir.join("agent.toml");
    std::fs::write(&auditor_config, text).expect("write auditor config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evidence-agent"));
    cmd.arg("--config")
        .arg(&auditor_config)
        .args(["export", "--source", &format!("s3://{BUCKET}/{PREFIX}")])
        .args(["--from", &from, "--to", &to, "--out"])
        .arg(&fleet_bundle)
        .envs(AWS_ENV)
        .env("RUST_LOG", "warn");
    let exported = run(cmd, scratch);
    check("fleet export", &exported);
    println!(
        "  {}",
        common::process::tail(&exported.stdout).replace('\n', "\n  ")
    );
    let download = scratch.join("fleet-download");
    let mut cmd = moto.aws_command();
    cmd.args(["s3", "sync", "--only-show-errors"])
        .arg(format!("s3://{BUCKET}/{PREFIX}"))
        .arg(&download);
    let downloaded = run(cmd, scratch);
    check("aws s3 sync (download)", &downloaded);
    let (_, dl_files, dl_bytes) = dir_sizes(&download);
    std::fs::remove_dir_all(&download).expect("remove the download");
    println!(
        "aws s3 sync downloaded {dl_files} objects, {:.1} MB",
        dl_bytes as f64 / 1e6
    );
    let (requests, not_ok) = moto.statuses();
    println!("moto logged {requests} requests; not 2xx: {not_ok:?}");
    show_bundle(&fleet_bundle);
    println!("export of {n_hosts} hosts' {fleet_days} days from S3:");
    Pair {
        what: format!("year export, {n_hosts} hosts, {fleet_entries} entries (S3)"),
        ours: exported,
        reference: downloaded,
        reference_name: "aws s3 sync",
    }
    .record(fleet_entries);
    drop(moto);

    println!("verify of the fleet bundle:");
    let vkeys: Vec<PathBuf> = hosts.iter().map(Host::vkey_path).collect();
    verify(&fleet_bundle, &vkeys, fleet_entries, scratch);

    if std::env::var_os("YEAR_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
}
