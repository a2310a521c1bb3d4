//! S3 test infrastructure for the sync tests: a real S3 API (moto's server) that survives a
//! SIGKILL, a TCP proxy that injects faults in front of it, and a plain S3 client
//! (`tests/s3_client.py`, boto3) to look at the bucket from outside the agent.
//!
//! - [`S3Server`]: `python3 -m moto.server` on a free 127.0.0.1 port. moto keeps its state in
//!   memory only, so every request is recorded (moto's recorder, into a file in the server's temp
//!   directory) and [`S3Server::restart`] replays the recording into the new process. moto's
//!   random generator is seeded first (and the seed is part of the recording), so sequentially
//!   made objects get the same version ids after a restart; timestamps (LastModified) do not
//!   survive. The recorder is wrapped in a lock: moto's own writes one request as several
//!   `write`s, which concurrent uploads would interleave.
//! - [`FaultProxy`]: a TCP proxy with per-connection faults ([`Faults`]), an outage switch
//!   ([`FaultProxy::go_down`] / [`FaultProxy::come_up`]) and counters.
//! - [`s3_client`] and the typed helpers on [`S3Server`]: boto3 through `tests/s3_client.py`.
//!
//! Needs `python3` with `moto[server]` (brings boto3); `tests/run.sh` installs it. Without it
//! the tests that use this module fail with a message saying so; they never pass silently.
#![allow(dead_code)] // each test crate uses a subset

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The credentials, region and switches every client of the test server uses.
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

/// How long a moto server may take to start (or restart and replay) before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Seed for moto's random generator (version ids), recorded so a replay reproduces it.
const MOTO_SEED: u32 = 6962;

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

// ---------------------------------------------------------------------------------------------
// Paths, environment, the Python helpers

/// The repository's `tests/` directory (holding `s3_client.py`).
pub fn tests_dir() -> PathBuf {
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
    ];
    let here = Path::new(file!())
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let candidates: Vec<PathBuf> = candidates.into_iter().chain(here).collect();
    for c in &candidates {
        if c.join("s3_client.py").is_file() {
            return c.clone();
        }
    }
    panic!("cannot find tests/s3_client.py (looked in {candidates:?})");
}

/// The environment an AWS SDK client (the agent, boto3) needs to talk to the test server:
/// static credentials, the region, no IMDS probing, and no profile files from the user's home.
pub fn aws_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        (
            "AWS_CONFIG_FILE",
            "/nonexistent/evidence-agent-tests/aws-config",
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/evidence-agent-tests/aws-credentials",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Fail loudly (never skip) when moto or boto3 cannot be imported.
pub fn require_moto() {
    let out = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .output();
    let ok = matches!(&out, Ok(o) if o.status.success());
    assert!(
        ok,
        "the S3 tests need `python3` with `moto[server]` (and boto3); run tests/run.sh (it \
         installs them) or `python3 -m pip install 'moto[server]==5.2.1'`; import said: {}",
        match &out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        }
    );
}

/// Runs `tests/s3_client.py ARGS...` with [`aws_env`]; returns its output whatever the status.
pub fn s3_client(args: &[&str]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("s3_client.py")).args(args);
    cmd.envs(aws_env()).stdin(Stdio::null());
    cmd.output().expect("run python3 tests/s3_client.py")
}

/// Like [`s3_client`] but panics (with stdout and stderr) unless it exits 0; returns stdout.
pub fn s3_client_ok(args: &[&str]) -> String {
    let out = s3_client(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "s3_client.py {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One object version as `s3_client.py versions` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    /// Hex SHA-256 of the version's bytes (None for a delete marker).
    pub sha256: Option<String>,
    /// `GOVERNANCE` | `COMPLIANCE` | None.
    pub lock_mode: Option<String>,
    /// RFC 3339 (UTC, `Z`) or None.
    pub retain_until: Option<String>,
}

/// Parses the JSON `s3_client.py versions` prints.
pub fn parse_versions(json: &str) -> Vec<ObjectVersion> {
    let v: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("s3_client.py versions printed invalid JSON ({e}): {json}"));
    let text =
        |o: &serde_json::Value, k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
    v.as_array()
        .expect("versions prints a JSON list")
        .iter()
        .map(|o| ObjectVersion {
            key: text(o, "key").expect("version key"),
            version_id: text(o, "version_id").expect("version id"),
            is_latest: o["is_latest"].as_bool().unwrap_or(false),
            delete_marker: o["delete_marker"].as_bool().unwrap_or(false),
            size: o["size"].as_u64().unwrap_or(0),
            sha256: text(o, "sha256"),
            lock_mode: text(o, "lock_mode"),
            retain_until: text(o, "retain_until"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Temporary directories (std only)

fn temp_dir(what: &str) -> PathBuf {
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

// ---------------------------------------------------------------------------------------------
// The S3 server

/// moto's S3 server as a child process; state survives [`S3Server::kill`] + [`S3Server::restart`].
/// Dropping it kills the process and removes its temp directory (kept when a test panics, and
/// its path printed, to look at `moto.log`).
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    recording: PathBuf,
    log: PathBuf,
}

impl S3Server {
    /// Starts a fresh, empty server on a free port and waits until it serves requests.
    pub fn start() -> S3Server {
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

    /// See [`aws_env`].
    pub fn aws_env(&self) -> Vec<(String, String)> {
        aws_env()
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
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.spawn();
            match self.wait_ready() {
                Ok(()) => break,
                // The old socket can linger for a moment after the kill.
                Err(e)
                    if Instant::now() < deadline
                        && tail(&self.log, 50).contains("Address already in use") =>
                {
                    let _ = e;
                    self.kill();
                    thread::sleep(Duration::from_millis(200));
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

    /// Creates a bucket with versioning on, and Object Lock enabled when `object_lock`.
    pub fn create_bucket(&self, name: &str, object_lock: bool) {
        let endpoint = self.endpoint();
        let mut args = vec!["create-bucket", endpoint.as_str(), name];
        if object_lock {
            args.push("--object-lock");
        }
        s3_client_ok(&args);
    }

    /// Every version of every object under `prefix` (see `s3_client.py versions`).
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<ObjectVersion> {
        parse_versions(&s3_client_ok(&[
            "versions",
            &self.endpoint(),
            bucket,
            prefix,
        ]))
    }

    /// Downloads the latest version of every object under `prefix` into `dir`, prefix stripped.
    pub fn download(&self, bucket: &str, prefix: &str, dir: &Path) {
        s3_client_ok(&[
            "download",
            &self.endpoint(),
            bucket,
            prefix,
            &dir.to_string_lossy(),
        ]);
    }

    /// The latest version of `key`'s bytes, or None when there is no such object.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let file = temp_dir("s3-get").join("object");
        let out = s3_client(&[
            "get",
            &self.endpoint(),
            bucket,
            key,
            &file.to_string_lossy(),
        ]);
        let got = if out.status.success() {
            fs::read(&file).ok()
        } else {
            None
        };
        let _ = fs::remove_dir_all(file.parent().unwrap());
        got
    }

    /// A plain PutObject of `bytes` (no condition, no retention); returns the new version id.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> String {
        let dir = temp_dir("s3-put");
        let file = dir.join("object");
        fs::write(&file, bytes).expect("write the object to upload");
        let out = s3_client_ok(&[
            "put",
            &self.endpoint(),
            bucket,
            key,
            &file.to_string_lossy(),
        ]);
        let _ = fs::remove_dir_all(&dir);
        out.trim().to_string()
    }

    /// Tries to delete one version without any bypass: `"deleted"` or the S3 error code.
    pub fn delete_version(&self, bucket: &str, key: &str, version_id: &str) -> String {
        s3_client_ok(&["delete-version", &self.endpoint(), bucket, key, version_id])
            .trim()
            .to_string()
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
        let child = Command::new("python3")
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
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("S3Server: cannot run python3 -m moto.server: {e}"));
        self.child = Some(child);
    }

    /// Waits until the server accepts connections and answers HTTP, or explains why not.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no attempt yet");
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "moto on port {} exited ({status}) before it was ready; tail of {}:\n{}",
                    self.port,
                    self.log.display(),
                    tail(&self.log, 30)
                ));
            }
            // The recorder's own paths are never recorded: a safe probe.
            match http(
                self.port,
                "POST",
                "/moto-api/recorder/start-recording",
                Duration::from_secs(2),
            ) {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => last = format!("HTTP {code}: {body:.200}"),
                Err(e) => last = e.to_string(),
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "moto on port {} was not ready after {READY_TIMEOUT:?} (last probe: {last}); tail of {}:\n{}",
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

// ---------------------------------------------------------------------------------------------
// The fault-injecting proxy

/// Faults per new connection (connections are numbered from 1 over the proxy's life; a
/// connection whose number is a multiple of both is dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every n-th connection: read part of the request, then close without answering.
    pub drop_every: Option<u32>,
    /// Every m-th connection: read the request, answer `503 Slow Down` (S3's throttling error).
    pub slowdown_every: Option<u32>,
}

impl Faults {
    /// No faults: the proxy is a plain pipe.
    pub fn none() -> Faults {
        Faults::default()
    }

    fn any(&self) -> bool {
        self.drop_every.is_some() || self.slowdown_every.is_some()
    }
}

/// While faults are set, a piped connection is closed at a request boundary once it has carried
/// this many requests or bytes from the client, so clients that keep connections alive still
/// open new ones (and meet the faults) all through a long sync. Requests are never cut in half
/// by this; only a request the client starts on a connection being closed is lost (a dropped
/// connection, which clients retry).
///
/// (moto itself answers every request with `Connection: close`, so against moto each request is
/// a new connection anyway and this only matters for keep-alive upstreams.)
pub const REQUESTS_PER_CONNECTION: u64 = 4;
pub const BYTES_PER_CONNECTION: u64 = 64 * 1024;
/// A piped connection with no traffic for this long (and no request waiting for its response)
/// is closed, with or without faults.
pub const IDLE_CLOSE: Duration = Duration::from_secs(2);

const SLOWDOWN_BODY: &str =
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
const TICK: Duration = Duration::from_millis(25);

struct ProxyShared {
    upstream: SocketAddr,
    faults: Mutex<Faults>,
    listener: Mutex<Option<TcpListener>>,
    down: AtomicBool,
    stop: AtomicBool,
    /// Every open socket (both sides), to close them all in `go_down`.
    open: Mutex<HashMap<u64, Vec<TcpStream>>>,
    next_socket_set: AtomicU64,
    connections: AtomicU64,
    dropped: AtomicU64,
    slowdowns: AtomicU64,
    recycled: AtomicU64,
    piped: AtomicU64,
}

/// A TCP proxy on 127.0.0.1 in front of `127.0.0.1:upstream_port`, injecting [`Faults`].
/// Runs on its own threads (one acceptor, one or two per connection); dropping it closes all.
pub struct FaultProxy {
    shared: Arc<ProxyShared>,
    port: u16,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("FaultProxy: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("FaultProxy: nonblocking listener");
        let port = listener
            .local_addr()
            .expect("FaultProxy: local address")
            .port();
        let shared = Arc::new(ProxyShared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            faults: Mutex::new(faults),
            listener: Mutex::new(Some(listener)),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            next_socket_set: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            slowdowns: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            piped: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || accept_loop(s))
            .expect("FaultProxy: spawn the acceptor thread");
        FaultProxy {
            shared,
            port,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Applies to connections accepted from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn faults(&self) -> Faults {
        *self.shared.faults.lock().unwrap()
    }

    /// Closes the listening socket and every open connection: new connections are refused
    /// (ECONNREFUSED) until [`FaultProxy::come_up`]. Returns once that holds.
    pub fn go_down(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        drop(self.shared.listener.lock().unwrap().take());
        for socks in self.shared.open.lock().unwrap().values() {
            for s in socks {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Listens again on the same port.
    pub fn come_up(&self) {
        let mut slot = self.shared.listener.lock().unwrap();
        if slot.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("FaultProxy::come_up: bind 127.0.0.1:{}: {e}", self.port),
            }
        };
        listener
            .set_nonblocking(true)
            .expect("FaultProxy: nonblocking listener");
        *slot = Some(listener);
        self.shared.down.store(false, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections closed mid-request by `drop_every`.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// `503 Slow Down` answers sent by `slowdown_every`.
    pub fn slowdowns(&self) -> u64 {
        self.shared.slowdowns.load(Ordering::SeqCst)
    }

    /// Connections piped to the upstream.
    pub fn piped(&self) -> u64 {
        self.shared.piped.load(Ordering::SeqCst)
    }

    /// Piped connections the proxy closed at a request boundary (see [`REQUESTS_PER_CONNECTION`]).
    pub fn recycled(&self) -> u64 {
        self.shared.recycled.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.go_down();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: Arc<ProxyShared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let accepted = match shared.listener.lock().unwrap().as_ref() {
            Some(l) => l.accept().map(Some),
            None => Ok(None),
        };
        match accepted {
            Ok(Some((client, _))) => {
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let s = shared.clone();
                let spawned = thread::Builder::new()
                    .name(format!("fault-proxy-conn-{n}"))
                    .spawn(move || handle(s, client, n));
                if spawned.is_err() {
                    thread::sleep(TICK); // out of threads: the client sees a closed connection
                }
            }
            Ok(None) => thread::sleep(TICK),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(TICK),
        }
    }
}

/// Registers sockets for `go_down`; unregistered on drop.
struct Registered {
    shared: Arc<ProxyShared>,
    id: u64,
}

impl Registered {
    fn new(shared: &Arc<ProxyShared>, socks: &[&TcpStream]) -> Option<Registered> {
        let id = shared.next_socket_set.fetch_add(1, Ordering::SeqCst);
        let clones = socks.iter().filter_map(|s| s.try_clone().ok()).collect();
        shared.open.lock().unwrap().insert(id, clones);
        let reg = Registered {
            shared: shared.clone(),
            id,
        };
        // `go_down` sets `down` before closing what is registered: whoever registers after the
        // sweep sees it here.
        if shared.down.load(Ordering::SeqCst) {
            for s in socks {
                let _ = s.shutdown(Shutdown::Both);
            }
            return None;
        }
        Some(reg)
    }

    fn add(&self, sock: &TcpStream) {
        if let Ok(c) = sock.try_clone() {
            if let Some(v) = self.shared.open.lock().unwrap().get_mut(&self.id) {
                v.push(c);
            }
        }
        if self.shared.down.load(Ordering::SeqCst) {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.open.lock().unwrap().remove(&self.id);
    }
}

fn handle(shared: Arc<ProxyShared>, client: TcpStream, n: u64) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let Some(reg) = Registered::new(&shared, &[&client]) else {
        return;
    };
    let faults = *shared.faults.lock().unwrap();
    let every = |k: Option<u32>| matches!(k, Some(k) if k > 0 && n % u64::from(k) == 0);
    if every(faults.drop_every) {
        drop_mid_request(&client);
        shared.dropped.fetch_add(1, Ordering::SeqCst);
    } else if every(faults.slowdown_every) {
        slow_down(&shared, &client);
    } else {
        pipe(&shared, &reg, client, faults.any());
    }
}

/// Reads a first part of the request, then closes without a word. Unread request bytes make
/// the kernel answer with a reset, as when a server or load balancer dies mid-request.
fn drop_mid_request(client: &TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 16];
    let _ = (&*client).read(&mut buf);
    let _ = client.shutdown(Shutdown::Both);
}

/// Reads the request head (and its body, briefly), answers S3's `503 SlowDown` and closes.
/// Counts it once the answer is written (before the lingering close).
fn slow_down(shared: &ProxyShared, client: &TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break Some(i + 4);
        }
        if Instant::now() > deadline {
            break None;
        }
        match (&*client).read(&mut chunk) {
            Ok(0) => break None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => break None,
        }
    };
    let Some(head_end) = head_end else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let head = parse_head(&buf[..head_end]);
    // A client waiting for `100 Continue` gets the final status instead (RFC 9110 §10.1.1).
    if !head.expect_continue {
        let mut body_read = (buf.len() - head_end) as u64;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut tail_bytes = buf[head_end..].to_vec();
        loop {
            let done = match head.body {
                Body::Length(n) => body_read >= n,
                // The last chunk and the trailer section end with an empty line.
                Body::Chunked => tail_bytes.ends_with(b"\r\n\r\n"),
                Body::None => true,
            };
            if done || Instant::now() > deadline {
                break;
            }
            match (&*client).read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => {
                    body_read += k as u64;
                    if matches!(head.body, Body::Chunked) {
                        tail_bytes.extend_from_slice(&chunk[..k]);
                        let keep = tail_bytes.len().saturating_sub(16);
                        tail_bytes.drain(..keep);
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
    }
    let body = if head.method == "HEAD" {
        ""
    } else {
        SLOWDOWN_BODY
    };
    let response = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         x-amz-request-id: FAULTPROXY\r\nConnection: close\r\n\r\n{body}",
        SLOWDOWN_BODY.len()
    );
    let _ = client.set_write_timeout(Some(Duration::from_secs(2)));
    if (&*client).write_all(response.as_bytes()).is_ok() {
        shared.slowdowns.fetch_add(1, Ordering::SeqCst);
    }
    linger_close(client);
}

/// Closes our side, then reads what the client still sends for a moment: closing a socket
/// with unread input sends a reset, which can destroy the answer before the client reads it.
fn linger_close(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match (&*s).read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
}

enum Body {
    None,
    Length(u64),
    Chunked,
}

struct Head {
    method: String,
    body: Body,
    expect_continue: bool,
}

fn parse_head(head: &[u8]) -> Head {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let method = lines
        .next()
        .and_then(|l| l.split(' ').next())
        .unwrap_or("")
        .to_string();
    let mut body = Body::None;
    let mut expect_continue = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (
            name.trim().to_ascii_lowercase(),
            value.trim().to_ascii_lowercase(),
        );
        match name.as_str() {
            "content-length" if !matches!(body, Body::Chunked) => {
                body = value.parse().map(Body::Length).unwrap_or(Body::Chunked);
            }
            "transfer-encoding" if value.contains("chunked") => body = Body::Chunked,
            "expect" if value == "100-continue" => expect_continue = true,
            _ => {}
        }
    }
    Head {
        method,
        body,
        expect_continue,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Where the client→upstream direction is in the request stream.
enum ReqState {
    /// Between requests.
    Boundary,
    /// Reading a request head (the bytes so far).
    Head(Vec<u8>),
    /// Forwarding a body of known length (bytes left).
    Body(u64),
    /// A chunked body: request boundaries are no longer tracked on this connection.
    Opaque,
}

struct PipeState {
    client: TcpStream,
    upstream: TcpStream,
    start: Instant,
    /// Milliseconds since `start` of the last byte in either direction.
    last_activity: AtomicU64,
    /// Milliseconds since `start` of the last byte from the upstream.
    last_upstream: AtomicU64,
    /// A request was forwarded and no byte of its answer has come back yet.
    awaiting: AtomicBool,
    closed: AtomicBool,
}

impl PipeState {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

fn pipe(shared: &Arc<ProxyShared>, reg: &Registered, client: TcpStream, recycle: bool) {
    let upstream = match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) {
        Ok(u) => u,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    reg.add(&upstream);
    shared.piped.fetch_add(1, Ordering::SeqCst);
    let state = Arc::new(PipeState {
        client,
        upstream,
        start: Instant::now(),
        last_activity: AtomicU64::new(0),
        last_upstream: AtomicU64::new(0),
        awaiting: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    let _ = state.client.set_read_timeout(Some(TICK));
    let _ = state.upstream.set_read_timeout(Some(TICK));

    // upstream → client: a plain copy.
    let down = {
        let st = state.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !st.closed.load(Ordering::SeqCst) {
                match (&st.upstream).read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => {
                        st.awaiting.store(false, Ordering::SeqCst);
                        let now = st.now();
                        st.last_activity.store(now, Ordering::SeqCst);
                        st.last_upstream.store(now, Ordering::SeqCst);
                        if (&st.client).write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            st.close();
        })
    };

    // client → upstream, tracking request boundaries.
    let mut req = ReqState::Boundary;
    let mut requests = 0u64;
    let mut from_client = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let over_limit = |requests: u64, bytes: u64| {
        recycle && (requests >= REQUESTS_PER_CONNECTION || bytes >= BYTES_PER_CONNECTION)
    };
    loop {
        if state.closed.load(Ordering::SeqCst) {
            break;
        }
        let k = match (&state.client).read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if is_timeout(&e) => {
                let at_boundary = matches!(req, ReqState::Boundary | ReqState::Opaque);
                let waiting = state.awaiting.load(Ordering::SeqCst);
                let now = state.now();
                let idle = now.saturating_sub(state.last_activity.load(Ordering::SeqCst));
                let quiet = now.saturating_sub(state.last_upstream.load(Ordering::SeqCst));
                if at_boundary && !waiting && idle >= IDLE_CLOSE.as_millis() as u64 {
                    break;
                }
                if matches!(req, ReqState::Boundary)
                    && !waiting
                    && quiet >= 100
                    && over_limit(requests, from_client)
                {
                    shared.recycled.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        state.last_activity.store(state.now(), Ordering::SeqCst);
        let data = &buf[..k];
        if matches!(req, ReqState::Boundary) && over_limit(requests, from_client) {
            // The client starts another request on a connection due to be recycled: cut it.
            shared.recycled.fetch_add(1, Ordering::SeqCst);
            break;
        }
        from_client += k as u64;
        // Advance the request tracker over `data`.
        let mut i = 0;
        while i < data.len() {
            match &mut req {
                ReqState::Opaque => break,
                ReqState::Boundary => req = ReqState::Head(Vec::new()),
                ReqState::Head(h) => {
                    let before = h.len();
                    h.extend_from_slice(&data[i..]);
                    match find(h, b"\r\n\r\n") {
                        Some(end) => {
                            let end = end + 4;
                            i += end - before;
                            let head = parse_head(&h[..end]);
                            state.awaiting.store(true, Ordering::SeqCst);
                            req = match head.body {
                                Body::None | Body::Length(0) => {
                                    requests += 1;
                                    ReqState::Boundary
                                }
                                Body::Length(n) => ReqState::Body(n),
                                Body::Chunked => ReqState::Opaque,
                            };
                        }
                        None => i = data.len(),
                    }
                }
                ReqState::Body(left) => {
                    let take = (*left).min((data.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        requests += 1;
                        req = ReqState::Boundary;
                    }
                }
            }
        }
        if (&state.upstream).write_all(data).is_err() {
            break;
        }
    }
    state.close();
    let _ = down.join();
}
