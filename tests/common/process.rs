//! Child processes in tests: the agent's command line, a daemon started with its stderr
//! followed line by line (tests wait on log lines, not on time), a wait for an exit with a
//! deadline, SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a wait may take before the test is declared hung.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// `evidence-agent --config CONFIG ARGS...` with the S3 test credentials, `RUST_LOG=info`
/// and no stdin.
pub fn agent_command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evidence-agent"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .envs(super::s3::aws_env())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

/// Starts `cmd` (an `evidence-agent run`) with its stderr followed.
pub fn start(mut cmd: Command) -> (Child, Log) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let log = Log::follow(child.stderr.take().expect("piped stderr"));
    (child, log)
}

/// Wait for `child` to exit and collect its output; the wait runs on a thread so that a hung
/// process fails the test after [`DEADLINE`] instead of hanging it.
pub fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("collect the output"),
        Err(_) => {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{what} did not exit");
        }
    }
}

/// A running process's stderr, line by line as it is written, kept whole for the end.
pub struct Log {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Log {
    pub fn follow(stderr: ChildStderr) -> Log {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Log {
            lines,
            seen: Vec::new(),
        }
    }

    /// Block until `n` lines written so far match `pred` (earlier lines count); the last
    /// matching line.
    pub fn wait_count(&mut self, what: &str, n: usize, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let matching: Vec<&String> = self.seen.iter().filter(|l| pred(l)).collect();
            if matching.len() >= n {
                return matching[n - 1].clone();
            }
            let left = DEADLINE.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "timed out (or the process ended) waiting for {what}; its log:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// How many lines read so far match `pred`.
    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.seen.iter().filter(|l| pred(l)).count()
    }

    /// Everything the process wrote, once it has exited.
    pub fn rest(mut self) -> String {
        self.seen.extend(self.lines.iter());
        self.seen.join("\n")
    }
}

pub fn sigterm(child: &Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}
