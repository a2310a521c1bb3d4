//! Idle footprint: the memory and CPU of `evidence-agent run` (the release binary, as a real
//! process) over `IDLE_BENCH_SECONDS` (default 600) with 10 light collectors on a one-minute
//! schedule (`* * * * *`) and the local ledger only (no `[s3]`). Issue 7's targets: RSS under
//! 20 MiB, CPU under 1 % of one core.
//!
//! - The collectors: two `linux_accounts` on a fixture root (a copy of this machine's
//!   `/etc/passwd` and `/etc/group`, a shadow file without hashes, a sudoers file), three
//!   `files` on a few config files (one with a secret to redact), two `log_file` on small logs,
//!   one of which this benchmark grows by a line every second, and three `command`s (`uname
//!   -a`, `id`, `df -P /`).
//! - The window starts when the agent logs "evidence-agent running" (ledger open, key loaded,
//!   schedule set) and lasts `IDLE_BENCH_SECONDS`. RSS (`VmRSS`) is sampled every second; the
//!   peak is `VmHWM` read at the end (which covers start-up and any moment between samples),
//!   the mean is over the samples. CPU is utime + stime of all the agent's threads over the
//!   window (`/proc/<pid>/stat`), as a percentage of one core.
//! - Reference, measured in the same run on the same data directory after the daemon stopped:
//!   the same work done the other way an operator could schedule it, `evidence-agent collect`
//!   of the same 10 collectors started once a minute (by cron or a systemd timer). One
//!   `collect` process is the floor for doing the same job: it runs the same collectors, signs
//!   and appends the same entries, and holds nothing between rounds. Its peak RSS (`wait4`, the
//!   largest of `REFERENCE_RUNS`) is set beside ours; its CPU per round (the median), times one
//!   round a minute, is the CPU share such a schedule takes. A daemon worth keeping resident
//!   should stay near that memory and below that CPU (it saves the process start, key load and
//!   ledger open every minute).
//! - The agent's binary is copied into the scratch directory first, so a rebuild of the shared
//!   target directory during the ten minutes cannot change what is measured. `IDLE_BENCH_AGENT`
//!   names another binary to measure instead (an older build, for a before/after comparison).
//!
//! Besides the table rows, the end of the window is printed broken down: anonymous (the
//! agent's own heap and stacks) against file-backed (program text mapped from the binary;
//! the kernel maps up to 64 KiB around each page fault, so it is larger than the code run),
//! and the thread count.
//!
//! Run: `cargo bench -p evidence-agent --bench idle` (`IDLE_BENCH_SECONDS=120` while developing).

mod common;

use common::env_num;
use common::process::{check, pid_cpu_seconds, pid_rss_mib, pid_status, run, status_kib};
use common::table::{self, Row};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TARGET_RSS_MIB: f64 = 20.0;
const TARGET_CPU_PERCENT: f64 = 1.0;
/// How many `collect` processes the reference is measured over.
const REFERENCE_RUNS: usize = 3;
/// How long start-up and the stop may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The fixture: account files, config files and logs under `dir`; returns the config text.
fn fixture(dir: &Path, data: &Path) -> String {
    let root = dir.join("root");
    let etc = root.join("etc");
    fs::create_dir_all(&etc).expect("create the fixture root");
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    fs::write(etc.join("passwd"), &passwd).expect("write passwd");
    fs::copy("/etc/group", etc.join("group")).expect("copy /etc/group");
    let shadow: String = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(|user| format!("{user}:!:19700:0:99999:7:::\n"))
        .collect();
    fs::write(etc.join("shadow"), shadow).expect("write shadow");
    fs::write(etc.join("hostname"), "idle-host\n").expect("write hostname");
    fs::write(
        etc.join("sudoers"),
        "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n",
    )
    .expect("write sudoers");
    let conf = dir.join("conf");
    fs::create_dir_all(&conf).expect("create the config files' directory");
    let files = [
        (
            "sshd_config",
            "Port 22\nPermitRootLogin no\nPasswordAuthentication no\n",
        ),
        (
            "backup.toml",
            "[repo]\nrepository = \"s3:bucket/restic\"\npassword = \"hunter2\"\nkeep_daily = 7\n",
        ),
        (
            "backup.cron",
            "15 3 * * * root /usr/local/bin/backup --quiet\n",
        ),
    ];
    for (name, text) in files {
        fs::write(conf.join(name), text).expect("write a config file");
    }
    let log_line = |i: usize| {
        format!(
            "Nov 24 09:00:{:02} host sshd[{i}]: Accepted publickey for u{i}\n",
            i % 60
        )
    };
    let log: String = (0..200).map(log_line).collect();
    fs::write(dir.join("auth.log"), &log).expect("write auth.log");
    fs::write(dir.join("app.log"), &log).expect("write app.log");

    let d = dir.display();
    let collectors = [
        (
            "accounts",
            "linux_accounts",
            format!("root = \"{}\"", root.display()),
        ),
        (
            "accounts-again",
            "linux_accounts",
            format!("root = \"{}\"", root.display()),
        ),
        (
            "sshd",
            "files",
            format!("paths = [\"{d}/conf/sshd_config\"]"),
        ),
        (
            "backup",
            "files",
            format!("paths = [\"{d}/conf/backup.*\"]"),
        ),
        (
            "account-files",
            "files",
            format!(
                "paths = [\"{}/passwd\", \"{}/group\"]",
                etc.display(),
                etc.display()
            ),
        ),
        ("auth-log", "log_file", format!("path = \"{d}/auth.log\"")),
        ("app-log", "log_file", format!("path = \"{d}/app.log\"")),
        ("uname", "command", "argv = [\"uname\", \"-a\"]".to_owned()),
        ("id", "command", "argv = [\"id\"]".to_owned()),
        ("df", "command", "argv = [\"df\", \"-P\", \"/\"]".to_owned()),
    ];
    let mut config = format!(
        "host_id = \"idle-host\"\ndata_dir = \"{}\"\nmin_free_disk_mib = 0\n",
        data.display()
    );
    for (id, kind, settings) in collectors {
        config.push_str(&format!(
            "\n[[collectors]]\nid = \"{id}\"\nkind = \"{kind}\"\nschedule = \"* * * * *\"\n{settings}\n"
        ));
    }
    config
}

/// Appends one line to the growing log.
fn grow(log: &Path, i: u64) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open auth.log");
    writeln!(
        f,
        "Nov 24 10:00:00 host sshd[{i}]: session opened for user u{i}"
    )
    .expect("append");
}

/// Waits for a stderr line containing `needle`; the lines seen so far are kept in `seen`.
fn wait_line(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no {needle:?} from the agent ({e}):\n{}", seen.join("\n")),
        }
    }
}

fn mib(x: f64) -> String {
    format!("{x:.2} MiB")
}

fn main() {
    let seconds = env_num("IDLE_BENCH_SECONDS", 600);
    let scratch = tempfile::tempdir().expect("scratch dir");
    let dir = scratch.path();
    let data = dir.join("data");
    let config_path = dir.join("agent.toml");
    fs::write(&config_path, fixture(dir, &data)).expect("write agent.toml");
    let binary: PathBuf = dir.join("evidence-agent");
    let source = std::env::var_os("IDLE_BENCH_AGENT").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_evidence-agent")),
        PathBuf::from,
    );
    fs::copy(&source, &binary)
        .unwrap_or_else(|e| panic!("copy the agent binary {}: {e}", source.display()));
    let agent = |args: &[&str]| {
        let mut cmd = Command::new(&binary);
        cmd.arg("--config").arg(&config_path).args(args);
        cmd.env("RUST_LOG", "info");
        cmd
    };
    println!(
        "idle: 10 collectors every minute, {seconds} s window, scratch {}",
        dir.display()
    );

    let mut child = agent(&["run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start evidence-agent run");
    let pid = child.id();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    wait_line(&lines, &mut seen, "evidence-agent running");

    let cpu_start = pid_cpu_seconds(pid);
    let start = Instant::now();
    let mut samples = Vec::new();
    for i in 1..=seconds {
        // Sleep to the i-th second of the window, so the samples do not drift.
        let at = start + Duration::from_secs(i);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        samples.push(pid_rss_mib(pid).0);
        grow(&dir.join("auth.log"), i);
    }
    let cpu = pid_cpu_seconds(pid) - cpu_start;
    let window = start.elapsed().as_secs_f64();
    let (_, peak) = pid_rss_mib(pid);
    let status = pid_status(pid);
    let (anon, file) = (
        status_kib(&status, pid, "RssAnon:") / 1024.0,
        status_kib(&status, pid, "RssFile:") / 1024.0,
    );
    let threads = status_kib(&status, pid, "Threads:");

    // SAFETY: kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) },
        0,
        "SIGTERM the agent"
    );
    let exit = child.wait().expect("wait for the agent");
    seen.extend(lines.try_iter());
    assert!(
        exit.success(),
        "the agent exited {exit}:\n{}",
        seen.join("\n")
    );
    let recorded = seen.iter().filter(|l| l.contains("run recorded")).count();
    let problems: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(problems.is_empty(), "the agent warned:\n{problems:#?}");
    assert!(recorded > 0, "no run was recorded:\n{}", seen.join("\n"));
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let cpu_percent = 100.0 * cpu / window;
    println!(
        "idle: {recorded} runs recorded; at the end RSS {} anonymous + {} file-backed, {threads} threads; CPU {cpu:.2} s in {window:.0} s",
        mib(anon),
        mib(file)
    );

    // Reference: `collect` of the same collectors, once a minute.
    let mut ref_cpu = Vec::new();
    let mut ref_rss: f64 = 0.0;
    for _ in 0..REFERENCE_RUNS {
        let r = run(agent(&["collect"]), dir);
        check("evidence-agent collect", &r);
        ref_cpu.push(r.cpu);
        ref_rss = ref_rss.max(r.max_rss_mib);
    }
    let ref_round = common::median(ref_cpu);
    let ref_percent = 100.0 * ref_round / 60.0;
    println!("idle: reference `collect` of the 10 collectors: {ref_round:.3} s CPU per round, peak RSS {}", mib(ref_rss));

    let rss_row = |what: &str, ours: f64| Row {
        benchmark: format!("idle footprint, RSS {what} (10 collectors, every minute, {seconds} s)"),
        ours: mib(ours),
        reference: format!(
            "{} peak of one `collect` of the same collectors",
            mib(ref_rss)
        ),
        ratio: format!("{:.2}× collect's", ours / ref_rss),
        target: format!("< {TARGET_RSS_MIB:.0} MiB"),
        met: Some(ours < TARGET_RSS_MIB),
    };
    table::record(rss_row("peak", peak));
    table::record(rss_row("mean", mean));
    table::record(Row {
        benchmark: format!("idle footprint, CPU (10 collectors, every minute, {seconds} s)"),
        ours: format!("{cpu_percent:.3} % of one core"),
        reference: format!("{ref_percent:.3} % (`collect` of the same collectors once a minute)"),
        ratio: format!("{:.2}× collect's", cpu_percent / ref_percent),
        target: format!("< {TARGET_CPU_PERCENT:.0} % of one core"),
        met: Some(cpu_percent < TARGET_CPU_PERCENT),
    });
}
