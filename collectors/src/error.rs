//! Errors of collectors: one for a run that failed, one for settings that cannot be accepted.

use std::path::PathBuf;

/// Why a run failed. The `Display` text is what the `failed` entry records as its `error`, so it
/// names the path or command and never includes file contents.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CollectError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// A problem with a collector's settings, found when the collector is built from its table.
/// `key` names the offending key of the `[[collectors]]` table (so the config layer can point at
/// its line and column); `None` means the table as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", key.as_deref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
pub struct SettingError {
    pub key: Option<String>,
    pub message: String,
}

impl SettingError {
    pub fn new(key: Option<&str>, message: impl Into<String>) -> Self {
        SettingError {
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
}
