//! Measuring processes: a child run to completion with its wall time, CPU and peak RSS
//! (`wait4`), and this process's or a running process's CPU and memory read from the kernel.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One finished child process, measured by `wait4`.
pub struct Run {
    pub seconds: f64,
    pub cpu: f64,
    pub max_rss_mib: f64,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` with stdout and stderr to files in `scratch`, timing it and reading its rusage.
pub fn run(mut cmd: Command, scratch: &Path) -> Run {
    let (out_path, err_path) = (scratch.join("stdout"), scratch.join("stderr"));
    let out = fs::File::create(&out_path).expect("create stdout file");
    let err = fs::File::create(&err_path).expect("create stderr file");
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut status = 0;
    // SAFETY: wait4 only writes the status and the struct it is given; the child is ours and
    // not waited for elsewhere (std's Child is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = t.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 {cmd:?}");
    drop(child);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Run {
        seconds,
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

pub fn check(what: &str, r: &Run) {
    assert!(
        r.code == 0,
        "{what} exited {}:\n--- stdout\n{}\n--- stderr\n{}",
        r.code,
        tail(&r.stdout),
        tail(&r.stderr)
    );
}

pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// CPU seconds (user + system) of this process, or of its waited-for children.
pub fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(who, &mut usage) }, 0, "getrusage");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds (user + system, all threads) process `pid` has used so far, from
/// `/proc/<pid>/stat`.
pub fn pid_cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / clock_ticks()
}

/// (resident now, peak resident) of process `pid` in MiB, from `VmRSS`/`VmHWM` in
/// `/proc/<pid>/status`.
pub fn pid_rss_mib(pid: u32) -> (f64, f64) {
    let status = pid_status(pid);
    (
        status_kib(&status, pid, "VmRSS:") / 1024.0,
        status_kib(&status, pid, "VmHWM:") / 1024.0,
    )
}

/// The text of `/proc/<pid>/status`, for [`status_kib`].
pub fn pid_status(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"))
}

/// The value of `field` (e.g. `"RssAnon:"`) in a `/proc/<pid>/status` text, in KiB.
pub fn status_kib(status: &str, pid: u32, field: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
