//! A moto S3 server (`python3 -m moto.server`, pip `moto[server]==5.2.1`) on a free 127.0.0.1
//! port for the benchmarks that talk to S3, the environment their S3 clients use, and awscli
//! (`aws`) pointed at it.

use super::process::pid_cpu_seconds;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

/// How long moto may take to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment every S3 client here uses: static test credentials, the region, no IMDS
/// probing and no profile files from the user's home.
pub const AWS_ENV: [(&str, &str); 7] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    (
        "AWS_CONFIG_FILE",
        "/nonexistent/evidence-agent-bench/aws-config",
    ),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/evidence-agent-bench/aws-credentials",
    ),
];

/// The moto server; killed when dropped (a panic included).
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Moto {
    pub fn start(log: &Path) -> Moto {
        // Pick a free port, then release it for moto.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a free port")
            .port();
        let out = fs::File::create(log).expect("create moto log");
        let err = out.try_clone().expect("clone moto log");
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .envs(AWS_ENV)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start python3 -m moto.server (pip install 'moto[server]==5.2.1')");
        let mut moto = Moto {
            child,
            port,
            log: log.to_owned(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited ({status}) before it listened:\n{}", moto.log());
            }
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {port} within {READY_TIMEOUT:?}:\n{}",
                moto.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// How many requests moto logged, and how many of them per status other than 2xx.
    pub fn statuses(&self) -> (u64, std::collections::BTreeMap<String, u64>) {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let (mut total, mut other) = (0, std::collections::BTreeMap::new());
        // werkzeug: `127.0.0.1 - - [date] "PUT /key HTTP/1.1" 200 -`
        for status in text
            .lines()
            .filter_map(|l| l.rsplit_once("\" ").map(|(_, s)| s))
            .filter_map(|s| s.split_whitespace().next())
            .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        {
            total += 1;
            if !status.starts_with('2') {
                *other.entry(status.to_owned()).or_insert(0) += 1;
            }
        }
        (total, other)
    }

    /// `aws --endpoint-url <moto>` with [`AWS_ENV`], ready for its arguments.
    pub fn aws_command(&self) -> Command {
        let mut cmd = Command::new("aws");
        cmd.arg("--endpoint-url").arg(self.url()).envs(AWS_ENV);
        cmd
    }

    /// `aws --endpoint-url <moto> ARGS...`'s stdout; panics with its output unless it exits 0.
    pub fn aws(&self, args: &[&str]) -> String {
        let out = self
            .aws_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run aws (awscli)");
        assert!(
            out.status.success(),
            "aws {args:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n--- moto\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (objects, bytes) below `s3://bucket/prefix`, as `aws s3 ls --summarize` counts them.
    pub fn count(&self, bucket: &str, prefix: &str) -> (u64, u64) {
        let listing = self.aws(&[
            "s3",
            "ls",
            "--recursive",
            "--summarize",
            &format!("s3://{bucket}/{prefix}"),
        ]);
        let total = |label: &str| -> u64 {
            listing
                .lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {label:?} in `aws s3 ls --summarize`:\n{listing}"))
        };
        (total("Total Objects:"), total("Total Size:"))
    }

    /// CPU seconds (user + system, all threads) moto has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        pid_cpu_seconds(self.child.id())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
