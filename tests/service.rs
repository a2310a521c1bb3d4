//! The daemon as systemd runs it, with the real binary: readiness, status and watchdog
//! notifications on a `NOTIFY_SOCKET`, SIGHUP reloads (a new collector is scheduled; a broken
//! file is refused and the running configuration kept), JSON log lines, the `/healthz` and
//! `/metrics` listener, and a clean stop on SIGTERM.

use rusqlite::{Connection, OpenFlags};
use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any awaited event may take before the test fails (not a speed assertion).
const PATIENCE: Duration = Duration::from_secs(60);

fn config(data: &Path, collectors: &[&str], extra: &str) -> String {
    let mut text = format!(
        "host_id = \"service-host\"\ndata_dir = \"{}\"\nmin_free_disk_mib = 0\n{extra}\n",
        data.display()
    );
    for id in collectors {
        text.push_str(&format!(
            "\n[[collectors]]\nid = \"{id}\"\nkind = \"command\"\nschedule = \"* * * * * *\"\nargv = [\"echo\", \"{id}\"]\n"
        ));
    }
    text
}

/// What the agent says: a line on stderr or a datagram on its notify socket.
enum Event {
    Line(String),
    Note(String),
}

/// The agent, with its stderr lines and notify datagrams read as they come by two threads (an
/// unread socket would fill and the agent drop what it sends) and handed over as events, so
/// the test waits for what it expects rather than for time to pass.
struct Daemon {
    child: Child,
    events: mpsc::Receiver<Event>,
    /// Every stderr line so far.
    lines: Vec<String>,
    /// Notifications not yet taken by [`Daemon::notified`].
    notes: Vec<String>,
}

impl Daemon {
    fn start(dir: &Path, config: &Path) -> Daemon {
        let socket = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&socket).unwrap();
        let (tx, events) = mpsc::channel();
        let notes = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = notify.recv(&mut buf) {
                let note = String::from_utf8_lossy(&buf[..n]).into_owned();
                if notes.send(Event::Note(note)).is_err() {
                    break;
                }
            }
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
            .args(["--log-format", "json", "--config"])
            .arg(config)
            .arg("run")
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::Line(line)).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            events,
            lines: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Take in events until `found` returns something; failing after [`PATIENCE`].
    fn until<T>(&mut self, what: &str, mut found: impl FnMut(&mut Daemon) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(it) = found(self) {
                return it;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Line(line)) => self.lines.push(line),
                Ok(Event::Note(note)) => self.notes.push(note),
                Err(e) => panic!(
                    "no {what} ({e}); notifications {:?}; stderr:\n{}",
                    self.notes,
                    self.stderr()
                ),
            }
        }
    }

    /// Wait until a notification satisfies `want` and take it (with those before it).
    fn notified(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        self.until(&format!("{what} notification"), |d| {
            let at = d.notes.iter().position(|n| want(n))?;
            d.notes.drain(..=at).next_back()
        })
    }

    /// Wait until a stderr line satisfies `want`; returns it.
    fn logged(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        self.until(&format!("log line {what}"), |d| {
            d.lines.iter().find(|l| want(l)).cloned()
        })
    }

    /// Runs of `collector` recorded `ok` so far, by the agent's "run recorded" log lines.
    fn ok_runs(&self, collector: &str) -> usize {
        self.lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["message"] == "run recorded"
                    && v["collector"] == collector
                    && v["level"] == "INFO"
            })
            .count()
    }

    /// Wait until `collector` has `at_least` ok runs, then check the ledger holds them.
    fn wait_for_runs(&mut self, data: &Path, collector: &str, at_least: usize) {
        let what = format!("{at_least} ok runs of {collector}");
        self.until(&what, |d| (d.ok_runs(collector) >= at_least).then_some(()));
        let stored = entries(data, collector);
        assert!(
            stored >= at_least,
            "the log says {at_least} runs of {collector}, the ledger has {stored}"
        );
    }

    fn stderr(&self) -> String {
        self.lines.join("\n")
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Entries per collector, read through a separate read-only connection.
fn entries(data: &Path, collector: &str) -> usize {
    let db =
        Connection::open_with_flags(data.join("ledger.sqlite"), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM entries WHERE collector_id = ?1 AND status = 'ok'",
            [collector],
            |r| r.get(0),
        )
        .unwrap();
    usize::try_from(n).unwrap()
}

/// One HTTP/1.0 GET on loopback: status code and body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn write(path: &PathBuf, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_service_notifies_reloads_on_sighup_refuses_a_broken_file_serves_metrics_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = dir.path().join("agent.toml");
    let listen = "metrics_listen = \"127.0.0.1:0\"";
    write(&path, &config(&data, &["first"], listen));
    let mut d = Daemon::start(dir.path(), &path);

    // Ready only once the ledger is open and the schedule loaded; then status and watchdog.
    d.notified("READY", |n| n == "READY=1");
    assert!(data.join("ledger.sqlite").exists());
    let status = d.notified("STATUS", |n| n.starts_with("STATUS="));
    assert!(status.contains("1 collectors scheduled"), "{status}");
    d.notified("WATCHDOG", |n| n == "WATCHDOG=1");
    d.wait_for_runs(&data, "first", 2);

    // Every log line is a JSON object; the listener says where it is.
    let line = d.logged("naming the metrics address", |l| {
        l.contains("/metrics on http://")
    });
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    for line in d.stderr().lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON log line: {line}"
        );
    }
    assert_eq!(get(&address, "/healthz"), (200, "ok\n".into()));
    let (code, page) = get(&address, "/metrics");
    assert_eq!(code, 200);
    let ok_runs = page
        .lines()
        .find_map(|l| {
            l.strip_prefix("evidence_agent_runs_total{collector=\"first\",status=\"ok\"} ")
        })
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no ok count for `first` in\n{page}"));
    assert!(ok_runs >= 2, "{page}");
    assert!(
        page.contains("evidence_agent_last_success_timestamp_seconds{collector=\"first\"}"),
        "{page}"
    );
    assert!(page.contains("\nevidence_agent_ledger_entries "), "{page}");
    assert!(get(&address, "/nothing").0 == 404);

    // SIGHUP with a second collector: it is scheduled, the first goes on.
    write(&path, &config(&data, &["first", "second"], listen));
    d.signal(libc::SIGHUP);
    d.notified("RELOADING", |n| {
        n.starts_with("RELOADING=1\nMONOTONIC_USEC=")
    });
    d.notified("READY after the reload", |n| n == "READY=1");
    d.logged("confirming the reload", |l| {
        l.contains("configuration reloaded") && l.contains("second")
    });
    d.wait_for_runs(&data, "second", 2);

    // SIGHUP with a broken file: refused, named at file:line:col, the running plan kept.
    write(
        &path,
        &(config(&data, &["first", "second"], listen) + "\nschedule_typo = 1\n"),
    );
    d.signal(libc::SIGHUP);
    let refused = d.logged("refusing the broken file", |l| l.contains("reload refused"));
    let at = format!("{}:18:1: `schedule_typo`: unknown field", path.display());
    assert!(refused.contains(&at), "{refused}");
    let before = d.ok_runs("second");
    d.wait_for_runs(&data, "second", before + 2);

    // A change only a restart applies is refused too.
    write(
        &path,
        &config(&data, &["first"], "metrics_listen = \"127.0.0.1:1\""),
    );
    d.signal(libc::SIGHUP);
    let refused = d.logged("refusing a listener change", |l| {
        l.contains("reload refused") && l.contains("metrics_listen")
    });
    assert!(refused.contains("restart"), "{refused}");
    let before = d.ok_runs("second");
    d.wait_for_runs(&data, "second", before + 2);

    // SIGTERM: STOPPING, then exit 0 with the ledger verifying.
    d.signal(libc::SIGTERM);
    d.notified("STOPPING", |n| n == "STOPPING=1");
    // Its last words come right before it exits.
    d.logged("saying the ledger is committed", |l| {
        l.contains("stopped; ledger committed")
    });
    let status = d.child.wait().unwrap();
    assert!(status.success(), "exit {status:?}; stderr:\n{}", d.stderr());
    let verify = Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
        .arg("--data-dir")
        .arg(&data)
        .arg("verify")
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
