//! Soak: the real daemon with 20 collectors firing every second (6-field cron) syncing to moto
//! through the fault proxy, which drops some connections, answers others `503 Slow Down` and
//! others a load balancer's `502` page. It runs until every collector has about
//! [`RUNS_EACH`] recorded runs, then is stopped with SIGTERM, and then:
//!
//! - its memory did not grow once warm: RSS is read at each step of the run (every
//!   [`COLLECTORS`] recorded runs, so by progress, not by time) and the largest reading of the
//!   last third of the run may exceed the largest of the middle third by [`RSS_SLACK_MIB`] at
//!   most (the first third is warm-up: code paged in, caches filling);
//! - every fire time is accounted for: per collector, the scheduled entries (`ok`, `failed` or
//!   `skipped`, trigger `schedule` or `missed`) are exactly one per second from the first fire
//!   after start-up to the last, and every collector was kept up to the end;
//! - `verify` passes on the local ledger;
//! - after one clean `evidence-agent sync` (faults off), S3's `checkpoint` is byte for byte the
//!   ledger's latest, and a fleet export read from S3 alone (every tile, checkpoint and blob
//!   checked on the way) holds every entry and verifies.
//!
//! Every wait is for an event (a log line, a process exit), bounded only against a hang.

mod common;

#[allow(dead_code)] // the benchmarks' helpers; this test reads RSS with one of them
#[path = "../agent/benches/common/process.rs"]
mod process;

use chrono::{DateTime, Duration, Utc};
use common::process::{agent_command, finish, sigterm, start};
use common::s3::{Canned, FaultProxy, Faults, S3Server};
use evidence_agent::ledger::Ledger;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

const BUCKET: &str = "evidence-soak";
const HOST: &str = "soak-host";
const COLLECTORS: usize = 20;
/// Recorded runs per collector (on average) before the daemon is stopped.
const RUNS_EACH: usize = 90;
/// How much the last third's peak RSS may exceed the middle third's.
const RSS_SLACK_MIB: f64 = 4.0;
/// How far behind the latest fire time any collector's last accounted one may be at the stop
/// (a loop woken just as SIGTERM arrives stops without recording that second).
const STOP_SLACK_SECONDS: i64 = 5;

/// The data directory, the config and its fixture files under one temporary directory.
struct Soak {
    dir: tempfile::TempDir,
}

impl Soak {
    fn new(endpoint: &str) -> Soak {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        fs::create_dir_all(d.join("root/etc")).expect("create the accounts root");
        fs::write(
            d.join("root/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nops:x:1000:1000:Ops:/home/ops:/bin/sh\n",
        )
        .expect("write passwd");
        fs::write(d.join("root/etc/group"), "root:x:0:\nops:x:1000:ops\n").expect("write group");
        fs::write(d.join("app.conf"), "listen = 8080\ntoken = \"s3cr3t\"\n").expect("write conf");
        fs::write(d.join("app.log"), "started\n").expect("write app.log");
        let mut config = format!(
            "host_id = \"{HOST}\"\ndata_dir = \"{}\"\nmin_free_disk_mib = 0\nmax_concurrent = 8\n",
            d.join("data").display()
        );
        for i in 0..COLLECTORS {
            // Constant output (one blob for all runs), changing output (a blob per run), a
            // config file, a growing log, account files.
            let (kind, settings) = match i % 5 {
                0 => ("command", format!("argv = [\"echo\", \"soak {i}\"]")),
                1 => (
                    "command",
                    "argv = [\"date\", \"-u\", \"+%s.%N\"]".to_owned(),
                ),
                2 => ("files", format!("paths = [\"{}/app.conf\"]", d.display())),
                3 => ("log_file", format!("path = \"{}/app.log\"", d.display())),
                _ => ("linux_accounts", format!("root = \"{}/root\"", d.display())),
            };
            config.push_str(&format!(
                "\n[[collectors]]\nid = \"c{i:02}\"\nkind = \"{kind}\"\nschedule = \"* * * * * *\"\ntimeout = \"30s\"\n{settings}\n"
            ));
        }
        config.push_str(&format!(
            "\n[s3]\nbucket = \"{BUCKET}\"\nprefix = \"soak\"\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nforce_path_style = true\n"
        ));
        fs::write(d.join("agent.toml"), config).expect("write agent.toml");
        Soak { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, args: &[&str]) -> Command {
        agent_command(&self.dir.path().join("agent.toml"), args)
    }

    fn agent(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run evidence-agent")
    }

    fn grow_log(&self, step: usize) {
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("app.log"))
            .expect("open app.log");
        writeln!(log, "step {step}: request served").expect("append to app.log");
    }
}

/// The time at the start of a text-format log line.
fn logged_at(line: &str) -> DateTime<Utc> {
    let stamp = line.split_whitespace().next().unwrap_or_default();
    DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("no time at the start of {line:?}: {e}"))
        .with_timezone(&Utc)
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

/// Scheduled fire times per collector from `evidence-agent log --json` (manual runs have none).
fn fire_times(soak: &Soak) -> BTreeMap<String, Vec<DateTime<Utc>>> {
    let out = soak.agent(&["log", "--json"]);
    assert!(out.status.success(), "log: {}", text(&out));
    let mut fires: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        let trigger = v["trigger"].as_str().expect("trigger");
        assert!(
            trigger == "schedule" || trigger == "missed",
            "unexpected trigger: {line}"
        );
        let status = v["status"].as_str().expect("status");
        assert!(["ok", "failed", "skipped"].contains(&status), "{line}");
        let at = v["scheduled_for"].as_str().expect("scheduled_for");
        let at = DateTime::parse_from_rfc3339(at).expect("an RFC 3339 time");
        let id = v["collector"].as_str().expect("collector").to_owned();
        fires.entry(id).or_default().push(at.with_timezone(&Utc));
    }
    fires
}

/// Every collector's fire times are one a second, none twice, from the first fire after
/// `started` to within [`STOP_SLACK_SECONDS`] of the latest.
fn assert_every_fire_accounted(
    fires: &BTreeMap<String, Vec<DateTime<Utc>>>,
    started: DateTime<Utc>,
) {
    assert_eq!(
        fires.len(),
        COLLECTORS,
        "collectors with entries: {:?}",
        fires.keys()
    );
    let latest = fires
        .values()
        .filter_map(|f| f.iter().max())
        .max()
        .expect("entries");
    // The first fire is the first whole second after the scheduler read the clock, which it
    // did before logging that it runs.
    let first_due = started + Duration::seconds(1);
    for (id, times) in fires {
        let mut times = times.clone();
        times.sort();
        assert!(
            times[0] <= first_due,
            "{id}: first fire {} after {first_due}",
            times[0]
        );
        for pair in times.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                Duration::seconds(1),
                "{id}: fire times {} then {}: a second lost or counted twice",
                pair[0],
                pair[1]
            );
        }
        let last = *times.last().expect("entries");
        assert!(
            *latest - last <= Duration::seconds(STOP_SLACK_SECONDS),
            "{id}: last fire {last}, latest of all {latest}"
        );
    }
}

/// The daemon's RSS after each step must not keep growing once warm.
fn assert_rss_bounded(samples: &[f64]) {
    let third = samples.len() / 3;
    let peak = |s: &[f64]| s.iter().copied().fold(0.0, f64::max);
    let (middle, last) = (
        peak(&samples[third..2 * third]),
        peak(&samples[2 * third..]),
    );
    println!(
        "soak: RSS peaks by third {:.1} / {middle:.1} / {last:.1} MiB",
        peak(&samples[..third])
    );
    assert!(
        last <= middle + RSS_SLACK_MIB,
        "RSS grew from {middle:.1} MiB (middle third's peak) to {last:.1} MiB (last third's): {samples:?}"
    );
}

#[test]
fn twenty_collectors_every_second_through_a_flaky_s3_leak_nothing_and_lose_nothing() {
    let server = S3Server::start();
    server.create_bucket(BUCKET, false);
    let proxy = FaultProxy::start(
        server.port(),
        Faults {
            drop_every: Some(10),
            slowdown_every: Some(15),
        },
    );
    proxy.set_canned(Some((23, Canned::HtmlBadGateway)));
    let soak = Soak::new(&proxy.endpoint());
    let (daemon, mut log) = start(soak.command(&["run"]));
    let pid = daemon.id();
    let started =
        logged_at(&log.wait_count("start-up", 1, |l| l.contains("evidence-agent running")));

    let recorded = |l: &str| l.contains("run recorded");
    let mut rss = Vec::new();
    for step in 1..=RUNS_EACH {
        log.wait_count("runs recorded", step * COLLECTORS, recorded);
        rss.push(process::pid_rss_mib(pid).0);
        soak.grow_log(step);
    }
    log.wait_count("a sync pass through the faults", 1, |l| {
        l.contains("synced to")
    });
    sigterm(&daemon);
    let out = finish(daemon, "the daemon after SIGTERM");
    let stderr = log.rest();
    assert!(out.status.success(), "daemon: {}\n{stderr}", text(&out));
    assert!(
        proxy.dropped() > 0 && proxy.slowdowns() > 0 && proxy.canned() > 0,
        "faults injected: {} dropped, {} slowed down, {} 502",
        proxy.dropped(),
        proxy.slowdowns(),
        proxy.canned()
    );
    let stopped = stderr
        .lines()
        .find(|l| l.contains("SIGTERM: no new runs"))
        .map(logged_at)
        .expect("the stop is logged");
    println!(
        "soak: {} entries from {started} to {stopped}; proxy: {} dropped, {} 503, {} 502",
        Ledger::open_read_only(&soak.data().join("ledger.sqlite"))
            .and_then(|l| l.size())
            .expect("ledger size"),
        proxy.dropped(),
        proxy.slowdowns(),
        proxy.canned()
    );

    assert_rss_bounded(&rss);
    let fires = fire_times(&soak);
    assert_every_fire_accounted(&fires, started);
    common::assert_verifies(&soak.data(), "after the soak");

    // A clean sync brings S3 up to the ledger: the same checkpoint, every entry readable.
    proxy.set_faults(Faults::none());
    proxy.set_canned(None);
    let out = soak.agent(&["sync"]);
    assert!(out.status.success(), "sync: {}", text(&out));
    let ledger = Ledger::open_read_only(&soak.data().join("ledger.sqlite")).expect("open ledger");
    let local = ledger
        .latest_checkpoint()
        .expect("read checkpoint")
        .expect("a checkpoint");
    let remote = server
        .get(BUCKET, &format!("soak/{HOST}/checkpoint"))
        .expect("S3 has a checkpoint");
    assert_eq!(
        String::from_utf8_lossy(&remote),
        local.note,
        "S3's checkpoint is the ledger's"
    );

    // The period ends after the last second every collector accounted for: later ones are
    // the daemon's downtime, which its next start records (as `missed`), not this run.
    let first = fires.values().flatten().min().expect("entries");
    let end = *fires
        .values()
        .filter_map(|f| f.iter().max())
        .min()
        .expect("entries")
        + Duration::seconds(1);
    let in_period = fires.values().flatten().filter(|t| **t < end).count();
    let bundle = soak.dir.path().join("fleet");
    let out = soak.agent(&[
        "export",
        "--source",
        &format!("s3://{BUCKET}/soak"),
        "--from",
        &first.to_rfc3339(),
        "--to",
        &end.to_rfc3339(),
        "--out",
        bundle.to_str().expect("UTF-8 path"),
    ]);
    assert!(out.status.success(), "export from S3: {}", text(&out));
    assert!(
        text(&out).contains(&format!("1 host(s), {in_period} entries")),
        "the export from S3 holds all {in_period} entries of the period: {}",
        text(&out)
    );
    let vkey = soak.data().join("keys/host.vkey");
    let out = soak.agent(&[
        "verify",
        bundle.to_str().expect("UTF-8 path"),
        "--vkey",
        vkey.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "the bundle from S3 verifies: {}",
        text(&out)
    );
}
