//! The evidence collectors of evidence-agent.
//!
//! A collector turns one source of evidence (account databases, configuration files, a log, the
//! output of a command) into a [`Snapshot`]: the content bytes, how many items they hold, and
//! the metadata that goes into the signed statement. Collectors know nothing of the daemon: they
//! never touch the ledger, never sign, never schedule. The agent owns all of that.
//!
//! Every kind lives in its own module with its settings struct, its collect function and its
//! tests, and is registered once in [`registry`]. A collector is configured by the `kind` key of
//! a `[[collectors]]` table; the rest of the table (minus the keys the agent owns: `id`, `kind`,
//! `schedule`, `timeout`, `enabled`) is handed to the kind's constructor.
//!
//! Collectors that read files do their blocking work on tokio's blocking pool, never on an async
//! worker. Content that may be large is written to a spool file while it is hashed
//! ([`ContentWriter`]), so no collector holds a big file in memory.

pub mod canonical;
pub mod change;

mod child;
mod concurrent;
mod content;
pub mod diff;
mod error;
pub mod http;
pub mod registry;

pub mod aws;
pub mod command;
pub mod exec_plugin;
pub mod files;
pub mod github;
pub mod gitlab;
pub mod jira;
pub mod journald;
pub mod linux_accounts;
pub mod log_file;
pub mod servicenow;

pub use content::{Content, ContentWriter};
pub use error::{CollectError, SettingError};

use std::path::PathBuf;

/// Media type of canonical JSON evidence (`{"items": [...]}` and friends).
pub const MEDIA_TYPE_JSON: &str = "application/json";
/// Media type of raw log segments and command output.
pub const MEDIA_TYPE_OCTETS: &str = "application/octet-stream";

/// What a collector gets for one run.
#[derive(Debug, Clone)]
pub struct CollectContext {
    /// The collector's configured id (unique per host).
    pub collector_id: String,
    /// The cursor returned by this collector's last *committed* run, if any. It only advances
    /// when the agent commits the snapshot that carried it, so a failed run is retried from the
    /// same place.
    pub cursor: Option<serde_json::Value>,
    /// A directory on the same filesystem as the ledger for spooling large content.
    pub spool_dir: PathBuf,
    /// A per-host secret used to salt the hashes that stand in for redacted secrets, so the same
    /// secret gives the same marker on this host (changes stay visible) but cannot be guessed
    /// from the marker by anyone without the host key.
    pub redaction_salt: [u8; 32],
    /// Paths no collector may read, whatever a pattern, symlink or include leads to: the
    /// agent's own data directory and key. Compared after resolving symlinks.
    pub protected_paths: Vec<PathBuf>,
    /// When the agent gives up on this run (its `timeout`). Blocking work checks it between
    /// files and blocks ([`CollectContext::check_deadline`]) so that a run abandoned at its
    /// timeout also stops using a thread soon after, instead of piling up behind a slow mount.
    pub deadline: Option<std::time::Instant>,
}

impl CollectContext {
    /// An error once the run's deadline has passed.
    pub fn check_deadline(&self) -> Result<(), CollectError> {
        check_deadline(self.deadline)
    }
}

/// An error once `deadline` has passed; for blocking loops that hold only the deadline.
pub fn check_deadline(deadline: Option<std::time::Instant>) -> Result<(), CollectError> {
    match deadline {
        Some(d) if std::time::Instant::now() >= d => Err(CollectError::Other(
            "stopped: the run's timeout passed".into(),
        )),
        _ => Ok(()),
    }
}

/// The result of one successful run.
#[derive(Debug)]
pub struct Snapshot {
    /// The evidence bytes, with their SHA-256 and size.
    pub content: Content,
    /// [`MEDIA_TYPE_JSON`] for structured evidence, [`MEDIA_TYPE_OCTETS`] for raw bytes.
    pub media_type: &'static str,
    /// Number of items (accounts, files, log lines …) in the content.
    pub item_count: u64,
    /// The cursor to hand to the next run, stored atomically with this snapshot's entry.
    pub cursor: Option<serde_json::Value>,
    /// Kind-specific facts for the signed statement (e.g. a log segment's offsets, a command's
    /// exit status). Must be a JSON object or `Null`.
    pub details: serde_json::Value,
}

/// A source of evidence. Implementations are registered in [`registry`].
#[async_trait::async_trait]
pub trait Collector: Send + Sync + std::fmt::Debug {
    /// The `kind` this collector was built from.
    fn kind(&self) -> &'static str;

    /// Take one snapshot. Errors become `failed` entries in the ledger; they must say what failed
    /// and where (path, command), and never contain secrets.
    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError>;

    /// Problems with the environment rather than the settings (a configured path that does not
    /// exist, a program that is not installed). `check-config` reports them as errors; the daemon
    /// only warns, since a log file may appear after the agent starts.
    fn check(&self) -> Vec<SettingError> {
        Vec::new()
    }
}
