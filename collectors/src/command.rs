//! The `command` collector: the standard output of a program as evidence (a backup tool's
//! `snapshots --json`, `systemctl list-timers`, a vendor CLI).
//!
//! Settings: `argv` (program and arguments, no shell; required), `max_output` (bytes of stdout,
//! default 16 MiB), `env` (extra environment variables, added to the agent's), `cwd`.
//!
//! Guarantees: the program runs with stdin on `/dev/null`, its stdout streamed into the spool
//! (`application/octet-stream`, `item_count` = lines) and hashed as it arrives, its stderr read
//! at the same time (so neither pipe can stall it) keeping only the last 4 KiB for the error;
//! the program runs in a process group of its own, and the whole group (the program and
//! whatever it started, such as the `sleep` of `sh -c 'sleep 100 | cat'`) is killed with
//! `SIGKILL` when the run ends, however it ends: the run's future dropped (the agent's timeout),
//! stdout over `max_output`, or the program done; a non-zero exit or a signal fails the run with
//! `"<argv[0]> exited with status N; stderr: <tail>"`. The `argv` published in the details and
//! the stderr tail in the error go through the same redaction as the `files` kind's content
//! (`--password=x`, `--token x`, `-pSECRET`, `token=x` become markers salted per host).

use crate::child::{failure, find_program, stderr_text, Group};
use crate::files::redact::Redactor;
use crate::registry::parse_settings;
use crate::MEDIA_TYPE_OCTETS;
use crate::{CollectContext, CollectError, Collector, ContentWriter, SettingError, Snapshot};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncReadExt;

const DEFAULT_MAX_OUTPUT: u64 = 16 << 20;
/// How much of stderr is kept for the error message.
const STDERR_TAIL: usize = 4096;
/// How much of stderr is read back before the kept tail is cut, so that a secret is redacted
/// with the key before it even when the tail starts between the two.
const STDERR_CONTEXT: usize = 2 * STDERR_TAIL;
const CHUNK: usize = 64 * 1024;

fn default_max_output() -> u64 {
    DEFAULT_MAX_OUTPUT
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    argv: Vec<String>,
    #[serde(default = "default_max_output")]
    max_output: u64,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
}

/// A built `command` collector.
#[derive(Debug)]
pub struct CommandCollector {
    settings: Settings,
}

/// Build a `command` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    match settings.argv.first() {
        None => errors.push(SettingError::new(
            Some("argv"),
            "must name the program to run",
        )),
        Some(program) if program.is_empty() => errors.push(SettingError::new(
            Some("argv"),
            "the program (first element) is empty",
        )),
        Some(_) => {}
    }
    if settings.argv.iter().any(|a| a.contains('\0')) {
        errors.push(SettingError::new(Some("argv"), "contains a NUL byte"));
    }
    for (name, value) in &settings.env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            errors.push(SettingError::new(
                Some("env"),
                format!("{name:?} is not a valid environment variable"),
            ));
        }
    }
    if settings.max_output == 0 {
        errors.push(SettingError::new(Some("max_output"), "must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(CommandCollector { settings }))
}

#[async_trait::async_trait]
impl Collector for CommandCollector {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        run(&self.settings, &ctx).await
    }

    fn check(&self) -> Vec<SettingError> {
        let mut problems = Vec::new();
        if let Some(cwd) = &self.settings.cwd {
            if !cwd.is_dir() {
                problems.push(SettingError::new(
                    Some("cwd"),
                    format!("{} is not a directory", cwd.display()),
                ));
            }
        }
        let program = self.settings.argv.first().map(String::as_str).unwrap_or("");
        let search = self.settings.env.get("PATH").map(std::ffi::OsString::from);
        if find_program(program, search, self.settings.cwd.as_deref()).is_none() {
            problems.push(SettingError::new(
                Some("argv"),
                format!("{program}: not found on PATH, or not an executable file"),
            ));
        }
        problems
    }
}

async fn run(settings: &Settings, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
    let program = settings.argv.first().map(String::as_str).unwrap_or("");
    let mut command = tokio::process::Command::new(program);
    command
        .args(settings.argv.iter().skip(1))
        .envs(&settings.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &settings.cwd {
        command.current_dir(cwd);
    }
    let child = command
        .spawn()
        .map_err(|e| CollectError::io("start", program, e))?;
    let mut group = Group::new(child);
    let redactor = Redactor::new(Vec::new(), ctx.redaction_salt);
    let child = &mut group.child;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CollectError::Other(format!(
            "{program}: its output pipes were not opened"
        )));
    };

    // The spool is a file: it is written on the blocking pool, fed through a bounded channel.
    let (chunks, mut received) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let spool_dir = ctx.spool_dir.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut writer = ContentWriter::new(&spool_dir);
        while let Some(chunk) = received.blocking_recv() {
            writer.write_all(&chunk)?;
        }
        writer.finish()
    });

    let mut out_buf = vec![0u8; CHUNK];
    let mut err_buf = vec![0u8; CHUNK];
    let mut tail: Vec<u8> = Vec::new();
    let (mut stdout_bytes, mut stderr_bytes, mut lines) = (0u64, 0u64, 0u64);
    let mut last_byte = b'\n';
    let (mut stdout_open, mut stderr_open) = (true, true);
    let mut writer_gone = false;
    while stdout_open || stderr_open {
        tokio::select! {
            read = stdout.read(&mut out_buf), if stdout_open => {
                let n = read.map_err(|e| CollectError::io("read the output of", program, e))?;
                if n == 0 {
                    stdout_open = false;
                    continue;
                }
                stdout_bytes += n as u64;
                if stdout_bytes > settings.max_output {
                    group.kill();
                    let _ = group.child.wait().await;
                    return Err(CollectError::Other(format!(
                        "{program}: output is over max_output ({} bytes); the command was killed",
                        settings.max_output
                    )));
                }
                let chunk = &out_buf[..n];
                lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                last_byte = chunk[n - 1];
                if chunks.send(chunk.to_vec()).await.is_err() {
                    writer_gone = true;
                    break;
                }
            }
            read = stderr.read(&mut err_buf), if stderr_open => {
                let n = read.map_err(|e| CollectError::io("read the errors of", program, e))?;
                if n == 0 {
                    stderr_open = false;
                    continue;
                }
                stderr_bytes += n as u64;
                tail.extend_from_slice(&err_buf[..n]);
                if tail.len() > STDERR_CONTEXT {
                    tail.drain(..tail.len() - STDERR_CONTEXT);
                }
            }
        }
    }
    drop(chunks);
    if writer_gone {
        group.kill();
        let _ = group.child.wait().await;
    }
    let content = writer
        .await
        .map_err(|e| CollectError::Other(format!("{program}: the output writer stopped: {e}")))?
        .map_err(|e| CollectError::io("write spool file in", &ctx.spool_dir, e))?;
    let status = group
        .child
        .wait()
        .await
        .map_err(|e| CollectError::io("wait for", program, e))?;
    if let Some(failure) = failure(status) {
        return Err(CollectError::Other(format!(
            "{program} {failure}; stderr: {}",
            stderr_text(&redactor, &tail, STDERR_TAIL)
        )));
    }
    if stdout_bytes > 0 && last_byte != b'\n' {
        lines += 1;
    }
    Ok(Snapshot {
        content,
        media_type: MEDIA_TYPE_OCTETS,
        item_count: lines,
        cursor: None,
        details: json!({
            "argv": redactor.redact_argv(&settings.argv),
            "exit_status": 0,
            "stdout_bytes": stdout_bytes,
            "stderr_bytes": stderr_bytes,
        }),
    })
}
