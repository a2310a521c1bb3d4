//! The agent's configuration: one TOML file (DESIGN.md §3 "Configuration shape", "S3 settings").
//!
//! This module owns reading that file into a [`Config`] and saying precisely what is wrong with
//! it. It guarantees:
//!
//! - **every problem is reported, each at `file:line:col`** (1-based; columns count characters)
//!   of the offending key or value, or of the table header for a missing key: syntax errors
//!   (then nothing else, since a broken file cannot be read reliably), unknown keys (never
//!   ignored), wrong types, bad schedules, durations and ids, duplicate collector ids, and the
//!   collectors' own complaints about their settings (located at the key they name);
//! - a `Config` only exists if there were none: every collector is built and ready to run;
//! - no input makes it panic (nesting depth is bounded by the TOML parser, the file size here).
//!
//! Defaults: `host_id` is the machine's hostname; `key_path` is `<data_dir>/keys/host.key`, with
//! the `--data-dir` override applied first; `max_concurrent` is 4; a collector's `timeout` is
//! 5 minutes and `enabled` is true. Relative paths are resolved against the current directory
//! when the file is read, so the daemon's paths are absolute from then on.
//!
//! Problems with the *environment* (a configured log file that does not exist) are not errors
//! of the file: [`Config::check_environment`] asks each enabled collector for them.

mod collector;
#[cfg(test)]
mod example_tests;
mod s3;
pub(crate) mod source;
#[cfg(test)]
mod tests;

pub use s3::{ObjectLock, ObjectLockMode, S3Config};

use collector::{Builder, KeyLocations};
use sha2::{Digest, Sha256};
use source::{check_id, Location, Source};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

/// A configuration file that was read and found valid.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes (`config_sha256` in every signed statement).
    pub sha256: [u8; 32],
    /// Names this host in the log's origin line and S3 keys: `[A-Za-z0-9._-]`, 1–253 characters.
    pub host_id: String,
    /// Ledger, cursors, spool (and the key, by default). Absolute.
    pub data_dir: PathBuf,
    /// The host's Ed25519 key. Absolute.
    pub key_path: PathBuf,
    /// At most this many collector runs at once (1–1024).
    pub max_concurrent: usize,
    /// Collection pauses (each run is recorded as failed, without content) while the data
    /// directory's filesystem has less than this many bytes free. 0: no floor.
    pub min_free_disk: u64,
    /// In the order of the file.
    pub collectors: Vec<CollectorConfig>,
    /// `None`: sync is off.
    pub s3: Option<S3Config>,
    /// Which log lines to write, in `RUST_LOG` syntax (`info`, `warn,collectors=debug`). The
    /// `RUST_LOG` environment variable, when set, wins.
    pub log_filter: String,
    /// Where `/healthz` and `/metrics` are served; `None`: no listener. Always a loopback address.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where each collector's keys are, by collector id, for [`Config::check_environment`].
    locations: HashMap<String, KeyLocations>,
}

/// One `[[collectors]]` table.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Unique on this host, `[A-Za-z0-9._-]+` (used in file names and statement subjects).
    pub id: String,
    pub kind: String,
    /// When it runs (UTC).
    pub schedule: crate::schedule::Schedule,
    /// A run still going after this long is stopped and recorded as failed.
    pub timeout: Duration,
    /// Disabled collectors are validated but never run.
    pub enabled: bool,
    pub collector: Arc<dyn collectors::Collector>,
}

/// One thing wrong with a configuration, at a place in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 means the file as a whole (it could not be read).
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `file:line:col: message`, or `file: message` for the file as a whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            let (file, line, col) = (self.file.display(), self.line, self.col);
            write!(f, "{file}:{line}:{col}: {}", self.message)
        }
    }
}

/// Every problem found in a configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<Problem>);

fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Configuration files larger than this are refused (they are a few kilobytes).
const MAX_FILE_SIZE: u64 = 1 << 20;
const DEFAULT_MAX_CONCURRENT: usize = 4;
const MAX_CONCURRENT: u64 = 1024;
/// Default disk-space floor, in MiB: enough for SQLite to finish a transaction and for the
/// small `failed` entries recorded while collection is paused.
const DEFAULT_MIN_FREE_DISK_MIB: u64 = 256;
/// The longest host id (the longest DNS name).
pub(crate) const MAX_HOST_ID_LEN: usize = 253;
const DEFAULT_LOG_FILTER: &str = "info";
pub(crate) const KNOWN_TOP_LEVEL: [&str; 9] = [
    "host_id",
    "data_dir",
    "key_path",
    "max_concurrent",
    "min_free_disk_mib",
    "log_filter",
    "metrics_listen",
    "collectors",
    "s3",
];
const TOP_LEVEL_KEYS: &str = "host_id, data_dir, key_path, max_concurrent, min_free_disk_mib, \
    log_filter, metrics_listen, [[collectors]], [s3]";

/// Read and validate the configuration file at `path`. `data_dir_override` (`--data-dir`)
/// replaces the file's `data_dir`, and with it the default `key_path`.
pub fn load(path: &Path, data_dir_override: Option<&Path>) -> Result<Config, ConfigErrors> {
    let whole = |message: String| {
        ConfigErrors(vec![Problem {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            message,
        }])
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_SIZE {
        return Err(whole(format!(
            "is {size} bytes; a configuration file may have at most {MAX_FILE_SIZE}"
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|e| whole(format!("cannot read the configuration: {e}")))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(path, text, data_dir_override),
        Err(e) => {
            let valid = String::from_utf8_lossy(&bytes[..e.valid_up_to()]);
            let src = Source::new(path, &valid);
            let at = src.locate(valid.len());
            Err(ConfigErrors(vec![
                src.problem_at(at, "the file is not valid UTF-8")
            ]))
        }
    }
}

/// Validate configuration `text` as if read from `path` (which is only used in messages and
/// as [`Config::path`]).
pub fn parse(
    path: &Path,
    text: &str,
    data_dir_override: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    parse_with(path, text, data_dir_override, &collectors::registry::build)
}

impl Config {
    /// Ask every enabled collector whether its environment is in order (configured paths exist,
    /// programs are installed), each problem located at the key the collector names.
    pub fn check_environment(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for c in self.collectors.iter().filter(|c| c.enabled) {
            for error in c.collector.check() {
                let at = match self.locations.get(&c.id) {
                    Some(locations) => locations.of(error.key.as_deref()),
                    None => Location::START,
                };
                problems.push(Problem {
                    file: self.path.clone(),
                    line: at.line,
                    col: at.col,
                    message: format!(
                        "collector {:?}: {}",
                        c.id,
                        collector::setting_message(&c.kind, &error)
                    ),
                });
            }
        }
        problems
    }
}

/// [`parse`] with the collector constructor as a parameter, so tests can stand in for kinds.
fn parse_with(
    path: &Path,
    text: &str,
    data_dir_override: Option<&Path>,
    build: Builder,
) -> Result<Config, ConfigErrors> {
    let mut src = Source::new(path, text);
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The parser recovers and goes on, but what follows one mistake is often more noise
        // than news: keep the first error of each line.
        let mut lines = std::collections::HashSet::new();
        for error in syntax_errors {
            let at = src.locate(error.span().map_or(0, |s| s.start));
            if lines.insert(at.line) {
                src.error_at(at, error.message().trim_end());
            }
        }
        return Err(finish(src));
    }
    let document = document.into_inner();

    let mut host_id = None;
    let mut data_dir = None;
    let mut key_path = None;
    let mut max_concurrent = Some(DEFAULT_MAX_CONCURRENT);
    let mut min_free_disk_mib = Some(DEFAULT_MIN_FREE_DISK_MIB);
    let mut collectors = Some(Vec::new());
    let mut locations = HashMap::new();
    let mut s3 = None;
    let mut log_filter = Some(DEFAULT_LOG_FILTER.to_owned());
    let mut metrics_listen = None;
    for (key, value) in document.iter() {
        let name = key.get_ref().as_ref();
        match name {
            "host_id" => {
                host_id =
                    src.string(name, value)
                        .and_then(|h| match check_id(h, MAX_HOST_ID_LEN) {
                            Ok(()) => Some(h.to_owned()),
                            Err(why) => {
                                src.error(value.span(), format!("`host_id` {h:?} {why}"));
                                None
                            }
                        });
            }
            "data_dir" => data_dir = src.non_empty(name, value).map(PathBuf::from),
            "key_path" => key_path = src.non_empty(name, value).map(PathBuf::from),
            "max_concurrent" => {
                max_concurrent = src
                    .integer(name, value, 1, MAX_CONCURRENT)
                    .and_then(|n| usize::try_from(n).ok());
            }
            "min_free_disk_mib" => {
                min_free_disk_mib = src.integer(name, value, 0, 1 << 30);
            }
            "log_filter" => {
                log_filter = src.non_empty(name, value).and_then(|filter| {
                    match tracing_subscriber::EnvFilter::builder().parse(filter) {
                        Ok(_) => Some(filter.to_owned()),
                        Err(e) => {
                            let message = format!("`log_filter` {filter:?} is not a log filter (e.g. \"info\" or \"warn,collectors=debug\"): {e}");
                            src.error(value.span(), message);
                            None
                        }
                    }
                });
            }
            "metrics_listen" => {
                metrics_listen =
                    src.non_empty(name, value)
                        .and_then(|text| match loopback_address(text) {
                            Ok(address) => Some(address),
                            Err(why) => {
                                src.error(value.span(), format!("`metrics_listen` {text:?} {why}"));
                                None
                            }
                        });
            }
            "collectors" => collectors = collector_tables(&mut src, value, build, &mut locations),
            "s3" => {
                if let Some(table) = src.table(name, value) {
                    s3 = s3::s3(&mut src, value.span(), table);
                }
            }
            other => {
                let hint = source::did_you_mean(other, &KNOWN_TOP_LEVEL);
                let message =
                    format!("unknown key `{other}` (expected one of {TOP_LEVEL_KEYS}){hint}");
                src.error(key.span(), message);
            }
        }
    }

    if document.get("host_id").is_none() {
        match hostname() {
            Some(h) if check_id(&h, MAX_HOST_ID_LEN).is_ok() => host_id = Some(h),
            Some(h) => src.error_at(
                Location::START,
                format!("`host_id` is not set and this machine's hostname {h:?} cannot be used as one; set host_id"),
            ),
            None => src.error_at(
                Location::START,
                "`host_id` is not set and this machine's hostname cannot be read; set host_id",
            ),
        }
    }
    let data_dir = match (data_dir_override, data_dir) {
        (Some(dir), _) => Some(absolute(dir)),
        (None, Some(dir)) => Some(absolute(&dir)),
        (None, None) => {
            if document.get("data_dir").is_none() {
                src.error_at(
                    Location::START,
                    "missing required key `data_dir` (or pass --data-dir)",
                );
            }
            None
        }
    };
    if !src.problems.is_empty() {
        return Err(finish(src));
    }
    let (
        Some(host_id),
        Some(data_dir),
        Some(max_concurrent),
        Some(min_free_disk_mib),
        Some(collectors),
        Some(log_filter),
    ) = (
        host_id,
        data_dir,
        max_concurrent,
        min_free_disk_mib,
        collectors,
        log_filter,
    )
    else {
        // Unreachable in practice: every `None` above recorded a problem.
        src.error_at(Location::START, "the configuration is incomplete");
        return Err(finish(src));
    };
    let key_path = match key_path {
        Some(key) => absolute(&key),
        None => data_dir.join("keys").join("host.key"),
    };
    Ok(Config {
        path: path.to_path_buf(),
        sha256: Sha256::digest(text.as_bytes()).into(),
        host_id,
        data_dir,
        key_path,
        max_concurrent,
        min_free_disk: min_free_disk_mib << 20,
        collectors,
        s3,
        log_filter,
        metrics_listen,
        locations,
    })
}

/// `127.0.0.1:9187` or `[::1]:9187`: the metrics say what runs on the host and when it last
/// succeeded, which is for the host's own monitoring agent, not for the network.
fn loopback_address(text: &str) -> Result<std::net::SocketAddr, String> {
    let address: std::net::SocketAddr = text
        .parse()
        .map_err(|_| "is not an address and port such as \"127.0.0.1:9187\"".to_owned())?;
    if !address.ip().is_loopback() {
        return Err(format!(
            "is not a loopback address; the listener only serves this host (127.0.0.1 or [::1]), \
             so use a local scraper or a reverse proxy to expose {}",
            address.ip()
        ));
    }
    Ok(address)
}

/// Every `[[collectors]]` table (all are checked); the collectors if all of them are good.
fn collector_tables(
    src: &mut Source,
    value: &toml::Spanned<DeValue>,
    build: Builder,
    locations: &mut HashMap<String, KeyLocations>,
) -> Option<Vec<CollectorConfig>> {
    let DeValue::Array(items) = value.get_ref() else {
        let found = source::describe(value.get_ref());
        let message =
            format!("`collectors` must be an array of tables ([[collectors]]), found {found}");
        src.error(value.span(), message);
        return None;
    };
    let mut ids = HashMap::new();
    let mut all = Some(Vec::new());
    for item in items.iter() {
        let parsed = match item.get_ref() {
            DeValue::Table(table) => collector::collector(src, item.span(), table, &mut ids, build),
            other => {
                let found = source::describe(other);
                src.error(
                    item.span(),
                    format!("each collector must be a table, found {found}"),
                );
                None
            }
        };
        match (parsed, all.as_mut()) {
            (Some((config, at)), Some(list)) => {
                locations.insert(config.id.clone(), at);
                list.push(config);
            }
            _ => all = None,
        }
    }
    all
}

/// The problems in file order.
fn finish(src: Source) -> ConfigErrors {
    let mut problems = src.problems;
    problems.sort_by_key(|p| (p.line, p.col));
    ConfigErrors(problems)
}

/// `path` made absolute against the current directory (unchanged if that cannot be read).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The machine's hostname (`gethostname(2)`), if it is readable UTF-8.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, which is what gethostname is told;
    // it writes at most that many and we look for the terminator within the buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}
