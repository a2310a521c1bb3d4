//! The `exec_plugin` collector: evidence from an external program that speaks the
//! `evidence-agent-plugin/v1` protocol (docs/plugins.md), for sources no built-in kind reads.
//!
//! Settings:
//! - `path` (absolute path of the plugin executable; required; run directly, never by a shell);
//! - `args` (arguments, default none);
//! - `env` (variables for the plugin, non-secret values only: a name that looks secret, such
//!   as `*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*_KEY`, is refused);
//! - `secret_env` (`{PLUGIN_VAR = "AGENT_VAR"}`: the plugin's variable gets the value of the
//!   agent's environment variable, read at each run; the value is never in the configuration);
//! - `max_output_bytes` (bytes of stdout, default 256 MiB);
//! - `config` (a table handed to the plugin as JSON; part of agent.toml, so no secrets).
//!
//! Protocol: the agent writes one line to the plugin's stdin, the canonical JSON object
//! `{"collector_id": "<id>", "config": {...}, "cursor": <last committed cursor or null>,
//! "protocol": "evidence-agent-plugin/v1"}`, then closes it. The plugin writes JSON lines to
//! stdout: zero or more `{"item": {...}}`, then exactly one `{"done": {"cursor": <any JSON,
//! default null>, "details": {...}}}` (both keys optional), and nothing after it; then exits 0.
//! stderr is free text (logs). Stdin is written while stdout and stderr are read, so a plugin
//! may write its output before reading its input.
//!
//! Environment: the plugin starts from an empty environment with `PATH` =
//! `/usr/local/bin:/usr/bin:/bin`, `LANG` = `C.UTF-8`, the agent's `HOME` (if set), then `env`,
//! then `secret_env`. Its working directory is the agent's.
//!
//! Content: canonical JSON `{"items": [...]}` (`application/json`), items sorted by
//! `(type, id)` so that the digest does not depend on the order they were printed in; an item
//! without `type` gets `"item"`, one without `id` gets `"sha256:<hex>"` of its canonical JSON;
//! `type` and `id` must be non-empty strings, and two items with the same pair fail the run.
//! `item_count` = items. Cursor: the done record's `cursor`, stored as given (`null` included:
//! the next run then gets `null`). Details: `path`, `args` (redacted as the `command` kind's
//! argv), `exit_status`, `items`, `lines`, `stdout_bytes`, `stderr_bytes`, and `plugin` (the
//! done record's `details`, or `null`).
//!
//! Guarantees: the run fails, recording nothing and keeping the cursor, on a non-zero exit or
//! a signal (the error gives the status and the last 2 KiB of stderr, redacted, in valid
//! UTF-8), on a line that is not JSON or not one of the two records, a line after the done
//! record, output ending without it, stdout over `max_output_bytes` (each names the line), and
//! on a line holding the value of a `secret_env` variable (values of 8 bytes or more; such
//! values are also cut out of the stderr tail). The plugin runs in a process group of its own,
//! killed with `SIGKILL` (and reaped) when the run's deadline passes, when its output is
//! refused, and when the run is dropped.

mod protocol;

use crate::child::{
    failure, find_program, read_line, read_tail, stderr_text, within, Group, Line, DEFAULT_PATH,
};
use crate::files::redact::Redactor;
use crate::registry::parse_settings;
use crate::MEDIA_TYPE_JSON;
use crate::{canonical, CollectContext, CollectError, Collector, SettingError, Snapshot};
#[doc(hidden)]
pub use protocol::parse_stdout;
use protocol::{Output, ProtocolError, Secret};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// The protocol this agent speaks, sent as `protocol` on stdin.
pub const PROTOCOL: &str = "evidence-agent-plugin/v1";
const DEFAULT_MAX_OUTPUT_BYTES: u64 = 256 << 20;
/// How much of stderr the error message keeps; twice as much is read back for redaction.
const STDERR_TAIL: usize = 2048;
/// Secret values shorter than this are not looked for in the output (too many false hits).
const MIN_SECRET_LEN: usize = 8;
/// Lines are handed to the parser in batches of about this size.
const BATCH: usize = 64 * 1024;
/// Words in an `env` name that say it holds a secret.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "APIKEY",
    "API_KEY",
    "PRIVATE_KEY",
];

fn default_max_output_bytes() -> u64 {
    DEFAULT_MAX_OUTPUT_BYTES
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    path: PathBuf,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secret_env: BTreeMap<String, String>,
    #[serde(default = "default_max_output_bytes")]
    max_output_bytes: u64,
    #[serde(default)]
    config: toml::Table,
}

/// A built `exec_plugin` collector.
#[derive(Debug)]
pub struct ExecPluginCollector {
    settings: Settings,
    /// `config` as JSON.
    config: Value,
}

/// Build an `exec_plugin` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    let mut error = |key: &str, message: String| errors.push(SettingError::new(Some(key), message));
    if !settings.path.is_absolute() {
        error(
            "path",
            format!("{} is not an absolute path", settings.path.display()),
        );
    }
    if settings.args.iter().any(|a| a.contains('\0')) {
        error("args", "an argument contains a NUL byte".into());
    }
    for (name, value) in &settings.env {
        if !valid_name(name) || value.contains('\0') {
            error(
                "env",
                format!("{name:?} is not a valid environment variable"),
            );
        } else if looks_secret(name) {
            error(
                "env",
                format!(
                    "{name} looks like a secret: give it with secret_env = {{ {name} = \"AGENT_VAR\" }} \
                     and set AGENT_VAR in the agent's environment"
                ),
            );
        }
    }
    for (name, agent_var) in &settings.secret_env {
        if !valid_name(name) {
            error(
                "secret_env",
                format!("{name:?} is not a valid environment variable"),
            );
        } else if settings.env.contains_key(name) {
            error(
                "secret_env",
                format!("{name} is also set by env; give it once"),
            );
        }
        if !valid_name(agent_var) {
            error(
                "secret_env",
                format!("{name}: {agent_var:?} is not the name of an environment variable"),
            );
        }
    }
    if settings.max_output_bytes == 0 {
        error("max_output_bytes", "must be at least 1".into());
    }
    let config = match toml_to_json(&toml::Value::Table(settings.config.clone())) {
        Ok(config) => config,
        Err(why) => {
            error("config", why);
            Value::Null
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(ExecPluginCollector { settings, config }))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w)) || upper.ends_with("_KEY")
}

/// A TOML value as JSON: datetimes become their TOML text; floats JSON cannot hold are refused.
fn toml_to_json(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} cannot be given to a plugin in JSON"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[async_trait::async_trait]
impl Collector for ExecPluginCollector {
    fn kind(&self) -> &'static str {
        "exec_plugin"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        ctx.check_deadline()?;
        run(self, &ctx).await
    }

    fn check(&self) -> Vec<SettingError> {
        let mut problems = Vec::new();
        let path = self.settings.path.display().to_string();
        if find_program(&path, None, None).is_none() {
            problems.push(SettingError::new(
                Some("path"),
                format!("{path}: not found, or not an executable file"),
            ));
        }
        for (name, agent_var) in &self.settings.secret_env {
            if std::env::var_os(agent_var).is_none_or(|v| v.is_empty()) {
                problems.push(SettingError::new(
                    Some("secret_env"),
                    format!("{name}: the agent's environment variable {agent_var} is not set"),
                ));
            }
        }
        problems
    }
}

/// Why the agent stopped reading the plugin's stdout before its end.
enum Stopped {
    /// Stdout went over `max_output_bytes` in this line.
    TooMuch { line: u64 },
    /// The parser refused a line (it says which).
    Refused,
}

async fn run(plugin: &ExecPluginCollector, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
    let settings = &plugin.settings;
    let path = settings.path.display().to_string();
    let mut secrets = Vec::new();
    let mut secret_env = Vec::new();
    for (name, agent_var) in &settings.secret_env {
        let value = std::env::var_os(agent_var)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                CollectError::Other(format!(
                    "{path}: secret_env {name}: the agent's environment variable {agent_var} is not set"
                ))
            })?;
        if value.len() >= MIN_SECRET_LEN {
            secrets.push(Secret {
                var: name.clone(),
                value: value.as_encoded_bytes().to_vec(),
            });
        }
        secret_env.push((name, value));
    }
    let input = canonical::to_vec(&json!({
        "protocol": PROTOCOL,
        "collector_id": ctx.collector_id,
        "config": plugin.config,
        "cursor": ctx.cursor.clone().unwrap_or(Value::Null),
    }))
    .map_err(|e| CollectError::Other(format!("{path}: cannot encode the plugin's input: {e}")))?;

    let mut command = tokio::process::Command::new(&settings.path);
    command
        .args(&settings.args)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("LANG", "C.UTF-8");
    if let Some(home) = std::env::var_os("HOME") {
        command.env("HOME", home);
    }
    command
        .envs(&settings.env)
        .envs(secret_env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| CollectError::io("start", &settings.path, e))?;
    let mut group = Group::new(child);
    let child = &mut group.child;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(CollectError::Other(format!(
            "{path}: its pipes were not opened"
        )));
    };

    let (batches, received) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let spool_dir = ctx.spool_dir.clone();
    let parser = tokio::task::spawn_blocking(move || {
        (protocol::take(received, spool_dir, &secrets), secrets)
    });
    let work = async {
        tokio::join!(
            write_input(stdin, input),
            read_output(&mut group, stdout, batches, settings.max_output_bytes),
            read_tail(stderr, 2 * STDERR_TAIL)
        )
    };
    let finished = within(ctx.deadline, work).await;
    let Some(((), read, (tail, stderr_bytes))) = finished else {
        group.kill_and_reap().await;
        return Err(CollectError::Other(format!(
            "stopped: the run's timeout passed; {path} was killed"
        )));
    };
    let status = group
        .child
        .wait()
        .await
        .map_err(|e| CollectError::io("wait for", &settings.path, e))?;
    let (parsed, secrets) = parser
        .await
        .map_err(|e| CollectError::Other(format!("{path}: the output reader stopped: {e}")))?;
    let (stdout_bytes, stopped) =
        read.map_err(|e| CollectError::io("read the output of", &settings.path, e))?;
    let line_error = |line: u64, why: String| {
        CollectError::Other(format!("{path}: line {line} of its output: {why}"))
    };
    if let Some(Stopped::TooMuch { line }) = stopped {
        return Err(line_error(
            line,
            format!(
                "the output is over max_output_bytes ({} bytes); the plugin was killed",
                settings.max_output_bytes
            ),
        ));
    }
    // Killed by the agent only when the parser refused a line: then the line is the reason.
    if stopped.is_none() {
        if let Some(failure) = failure(status) {
            let redactor = Redactor::new(Vec::new(), ctx.redaction_salt);
            let tail = scrub(tail, &secrets);
            return Err(CollectError::Other(format!(
                "{path} {failure}; stderr: {}",
                stderr_text(&redactor, &tail, STDERR_TAIL)
            )));
        }
    }
    let output = match parsed {
        Ok(output) => output,
        Err(ProtocolError::Line { line, why }) => return Err(line_error(line, why)),
        Err(ProtocolError::NoDone { lines }) => {
            return Err(CollectError::Other(format!(
                "{path}: its output ended after {lines} lines without the final \
                 {{\"done\": ...}} record"
            )))
        }
        Err(ProtocolError::Spool(dir, e)) => {
            return Err(CollectError::io("write spool file in", dir, e))
        }
    };
    Ok(snapshot(plugin, ctx, output, stdout_bytes, stderr_bytes))
}

fn snapshot(
    plugin: &ExecPluginCollector,
    ctx: &CollectContext,
    output: Output,
    stdout_bytes: u64,
    stderr_bytes: u64,
) -> Snapshot {
    let settings = &plugin.settings;
    let redactor = Redactor::new(Vec::new(), ctx.redaction_salt);
    let mut argv = vec![settings.path.display().to_string()];
    argv.extend(settings.args.iter().cloned());
    let args: Vec<String> = redactor.redact_argv(&argv).into_iter().skip(1).collect();
    Snapshot {
        content: output.content,
        media_type: MEDIA_TYPE_JSON,
        item_count: output.items,
        cursor: Some(output.cursor),
        details: json!({
            "path": settings.path.display().to_string(),
            "args": args,
            "exit_status": 0,
            "items": output.items,
            "lines": output.lines,
            "stdout_bytes": stdout_bytes,
            "stderr_bytes": stderr_bytes,
            "plugin": output.details,
        }),
    }
}

/// Write the input and close stdin. A plugin that exits or closes its stdin without reading
/// it is its own business (its exit status and output decide the run), so a broken pipe is
/// not an error.
async fn write_input(mut stdin: tokio::process::ChildStdin, mut input: Vec<u8>) {
    input.push(b'\n');
    let _ = stdin.write_all(&input).await;
    let _ = stdin.shutdown().await;
}

/// Read the plugin's stdout line by line, within `max_output_bytes`, into batches for the
/// parser. Kills the plugin when it stops before the end of the output, so that its stderr
/// closes and the run can end. Returns the bytes read and why it stopped early, if it did.
async fn read_output(
    group: &mut Group,
    stdout: tokio::process::ChildStdout,
    batches: tokio::sync::mpsc::Sender<Vec<u8>>,
    max_output_bytes: u64,
) -> std::io::Result<(u64, Option<Stopped>)> {
    let mut reader = tokio::io::BufReader::with_capacity(BATCH, stdout);
    let mut line = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let (mut bytes, mut lines) = (0u64, 0u64);
    loop {
        let found = match read_line(&mut reader, &mut line, max_output_bytes - bytes).await {
            Ok(found) => found,
            Err(e) => {
                group.kill();
                return Err(e);
            }
        };
        bytes += line.len() as u64;
        match found {
            Line::End => break,
            Line::TooLong => {
                group.kill();
                return Ok((bytes, Some(Stopped::TooMuch { line: lines + 1 })));
            }
            Line::Complete => batch.extend_from_slice(&line),
            Line::Unterminated => {
                // A last record without its newline is still a record.
                batch.extend_from_slice(&line);
                batch.push(b'\n');
            }
        }
        lines += 1;
        if batch.len() >= BATCH && batches.send(std::mem::take(&mut batch)).await.is_err() {
            group.kill();
            return Ok((bytes, Some(Stopped::Refused)));
        }
    }
    if !batch.is_empty() && batches.send(batch).await.is_err() {
        // The parser refused a line of an earlier batch; the plugin has ended already.
        return Ok((bytes, Some(Stopped::Refused)));
    }
    Ok((bytes, None))
}

/// `tail` with every secret value replaced by a marker naming its variable.
fn scrub(mut tail: Vec<u8>, secrets: &[Secret]) -> Vec<u8> {
    for secret in secrets {
        let marker = format!("[REDACTED secret_env {}]", secret.var).into_bytes();
        let mut out = Vec::with_capacity(tail.len());
        let mut rest = tail.as_slice();
        while let Some(at) = rest
            .windows(secret.value.len())
            .position(|w| w == secret.value.as_slice())
        {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(&marker);
            rest = &rest[at + secret.value.len()..];
        }
        out.extend_from_slice(rest);
        tail = out;
    }
    tail
}
