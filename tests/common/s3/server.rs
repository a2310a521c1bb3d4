//! [`S3Server`]: moto's S3 server as a child process (start, kill, restart with replay,
//! freeze, thaw) and how to tell that it serves.

use super::client::{aws_env, require_moto};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a moto server may take to start (or restart and replay) before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restart keeps trying while the old process's port is still taken.
const RESTART_RETRY: Duration = Duration::from_secs(10);
/// Seed for moto's random generator (version ids), recorded so a replay reproduces it.
const MOTO_SEED: u32 = 6962;
/// What werkzeug prints (on stderr) once its socket listens: ` * Running on http://HOST:PORT`.
const LISTENING_LINE: &str = "Running on http";

/// Starts moto with its recorder guarded by a lock (see the module docs), then runs its CLI.
const MOTO_MAIN: &str = r#"
import sys, threading
from moto.moto_api._internal.recorder.models import Recorder
_lock = threading.Lock()
_record = Recorder._record_request
def _locked(self, *args, **kwargs):
    with _lock:
        return _record(self, *args, **kwargs)
Recorder._record_request = _locked
from moto.server import main
main(sys.argv[1:])
"#;

/// A temporary directory of our own (std only).
pub(super) fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "evidence-{what}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// A minimal HTTP/1.1 request to 127.0.0.1:`port`; returns (status, body).
fn http(port: u16, method: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidData, format!("not HTTP: {text:.200}"))
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// What a reader thread reports about one of moto's output streams.
enum OutputEvent {
    Line(String),
    /// The stream reached its end (the process exited, or closed it).
    Closed,
}

/// Copies one of moto's output streams line by line into the log file and over `tx` (for as
/// long as someone listens; the log gets every line regardless).
fn forward(stream: impl Read, mut log: File, tx: Sender<OutputEvent>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                let _ = log.write_all(&line);
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                let _ = tx.send(OutputEvent::Line(text));
            }
        }
    }
    let _ = tx.send(OutputEvent::Closed);
}

/// moto's S3 server as a child process; state survives [`S3Server::kill`] + [`S3Server::restart`].
/// Dropping it kills the process and removes its temp directory (kept when a test panics, and
/// its path printed, to look at `moto.log`).
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    recording: PathBuf,
    log: PathBuf,
    /// Lines of the running process's stdout + stderr, until it is ready.
    output: Option<Receiver<OutputEvent>>,
    /// The threads copying the running process's stdout and stderr (see [`forward`]).
    readers: Vec<JoinHandle<()>>,
    /// Set on moto's environment after [`aws_env`].
    extra_env: Vec<(String, String)>,
}

impl S3Server {
    /// Starts a fresh, empty server on a free port and waits until it serves requests.
    pub fn start() -> S3Server {
        S3Server::start_with_env(&[])
    }

    /// [`S3Server::start`] with extra environment variables for moto (kept for restarts), e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0` to make it check credentials.
    pub fn start_with_env(extra_env: &[(&str, &str)]) -> S3Server {
        require_moto();
        let dir = temp_dir("s3");
        let mut last_err = String::new();
        // The port is free when chosen but another process may take it before moto binds it.
        for _ in 0..5 {
            let mut server = S3Server {
                child: None,
                port: free_port(),
                recording: dir.join("recording.jsonl"),
                log: dir.join("moto.log"),
                dir: dir.clone(),
                output: None,
                readers: Vec::new(),
                extra_env: extra_env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            let _ = fs::remove_file(&server.recording);
            server.spawn();
            match server.wait_ready() {
                Ok(()) => {
                    let path = format!("/moto-api/seed?a={MOTO_SEED}");
                    server.post_ok(&path, "seed moto's random generator");
                    server.post_ok(
                        "/moto-api/recorder/start-recording",
                        "start moto's recorder",
                    );
                    return server;
                }
                Err(e) => {
                    let in_use = tail(&server.log, 50).contains("Address already in use");
                    server.kill();
                    server.dir = PathBuf::new(); // keep the directory (and log) for the next try
                    last_err = e;
                    if !in_use {
                        break;
                    }
                }
            }
        }
        panic!("S3Server::start: {last_err}");
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid (None once killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The server's stdout + stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// SIGKILL (works while frozen too) and reap. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.output = None;
        // The process is gone, so its pipes are at their end: the readers finish their copy.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    /// Starts the server again on the same port (killing a running one first) and replays every
    /// request recorded so far, so the buckets and objects are back; returns once it serves.
    pub fn restart(&mut self) {
        self.kill();
        // A SIGKILL can land in the middle of writing a record: drop the incomplete last line.
        if let Ok(mut bytes) = fs::read(&self.recording) {
            if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                bytes.truncate(keep);
                fs::write(&self.recording, &bytes).expect("repair moto's recording");
            }
        }
        let deadline = Instant::now() + RESTART_RETRY;
        loop {
            self.spawn();
            match self.wait_ready() {
                Ok(()) => break,
                // The old socket can linger for a moment after the kill: the next attempt (a
                // new process, which takes its own while to start) is the wait.
                Err(_)
                    if Instant::now() < deadline
                        && tail(&self.log, 50).contains("Address already in use") =>
                {
                    self.kill();
                }
                Err(e) => {
                    self.kill();
                    panic!("S3Server::restart: {e}");
                }
            }
        }
        self.post_ok(
            "/moto-api/recorder/replay-recording",
            "replay moto's recording",
        );
        self.post_ok(
            "/moto-api/recorder/start-recording",
            "start moto's recorder",
        );
    }

    /// SIGSTOP: the server keeps its port and connections but answers nothing (a hung server).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`S3Server::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("the S3 server is not running") as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid, which is not reaped while `self.child` holds it.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let _ = writeln!(
            &log,
            "=== evidence tests: starting moto on port {}",
            self.port
        );
        let mut child = Command::new("python3")
            .args([
                "-c",
                MOTO_MAIN,
                "-H",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .current_dir(&self.dir)
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", &self.recording)
            .env("PYTHONUNBUFFERED", "1")
            .envs(aws_env())
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("S3Server: cannot run python3 -m moto.server: {e}"));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("moto's stdout pipe");
        let stderr = child.stderr.take().expect("moto's stderr pipe");
        let streams: [(&str, Box<dyn Read + Send>); 2] =
            [("stdout", Box::new(stdout)), ("stderr", Box::new(stderr))];
        for (name, stream) in streams {
            let log = log.try_clone().expect("clone log handle");
            let tx = tx.clone();
            let reader = thread::Builder::new()
                .name(format!("moto-{}-{name}", self.port))
                .spawn(move || forward(stream, log, tx))
                .expect("S3Server: spawn an output reader thread");
            self.readers.push(reader);
        }
        self.child = Some(child);
        self.output = Some(rx);
    }

    /// Waits (for at most [`READY_TIMEOUT`]) for werkzeug's "Running on" line, by then the
    /// socket listens, then checks that the server answers HTTP; or explains why not.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let output = self.output.take().expect("wait_ready after spawn");
        let mut open_streams = 2;
        let listening = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match output.recv_timeout(left) {
                Ok(OutputEvent::Line(line)) if line.contains(LISTENING_LINE) => break true,
                Ok(OutputEvent::Line(_)) => {}
                Ok(OutputEvent::Closed) => {
                    open_streams -= 1;
                    if open_streams == 0 {
                        break false;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break false,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "moto on port {} was not ready after {READY_TIMEOUT:?} (no \"{LISTENING_LINE}\" \
                         line); tail of {}:\n{}",
                        self.port,
                        self.log.display(),
                        tail(&self.log, 30)
                    ))
                }
            }
        };
        if !listening {
            // Both output streams ended: the process exits (or has). SIGKILL does not change
            // the status of a process already exiting, and bounds the wait otherwise.
            let status = self.child.take().map(|mut c| {
                let _ = c.kill();
                c.wait()
            });
            self.kill(); // joins the readers, so the log is complete
            let status = match status {
                Some(Ok(s)) => s.to_string(),
                Some(Err(e)) => format!("status unknown: {e}"),
                None => "not running".to_string(),
            };
            return Err(format!(
                "moto on port {} exited ({status}) before it was ready; tail of {}:\n{}",
                self.port,
                self.log.display(),
                tail(&self.log, 30)
            ));
        }
        // The recorder's own paths are never recorded: a safe probe.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2));
        let probe = match http(
            self.port,
            "POST",
            "/moto-api/recorder/start-recording",
            left,
        ) {
            Ok((200, _)) => return Ok(()),
            Ok((code, body)) => format!("HTTP {code}: {body:.200}"),
            Err(e) => e.to_string(),
        };
        Err(format!(
            "moto on port {} listens but its first request failed ({probe}); tail of {}:\n{}",
            self.port,
            self.log.display(),
            tail(&self.log, 30)
        ))
    }

    fn post_ok(&self, path: &str, what: &str) {
        match http(self.port, "POST", path, Duration::from_secs(120)) {
            Ok((200, _)) => {}
            Ok((code, body)) => panic!(
                "S3Server: {what} (POST {path}) answered HTTP {code}: {body:.300}; tail of {}:\n{}",
                self.log.display(),
                tail(&self.log, 30)
            ),
            Err(e) => panic!(
                "S3Server: {what} (POST {path}) failed: {e}; tail of {}:\n{}",
                self.log.display(),
                tail(&self.log, 30)
            ),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
        if self.dir.as_os_str().is_empty() {
            return;
        }
        if thread::panicking() {
            eprintln!(
                "S3Server: kept {} (moto.log, recording.jsonl)",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
