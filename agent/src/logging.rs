//! Log lines go to stderr, where journald (or the terminal) picks them up, as text or as one
//! JSON object per line (`--log-format`).
//!
//! Which lines are written is an `EnvFilter`: `RUST_LOG` when it is set (so an operator can turn
//! on debugging for one start without editing the file), otherwise the configuration's
//! `log_filter`, applied once the file is read and again at every reload.

use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// The filter's reload handle, when the configuration may set it (`RUST_LOG` is not set).
static CONFIG_FILTER: OnceLock<FilterHandle> = OnceLock::new();

/// Install the process's logger. Until a configuration is applied, lines at `info` and above
/// are written (or what `RUST_LOG` says).
pub fn init(format: LogFormat) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, bad_env) = match from_env.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (EnvFilter::new("info"), Some(e)),
        None => (EnvFilter::new("info"), None),
    };
    let (filter, handle) = reload::Layer::new(filter);
    type Base = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
    let lines: Box<dyn Layer<Base> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A second init (tests calling into the CLI twice) keeps the first logger.
    if tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init()
        .is_err()
    {
        return;
    }
    if let (Some(value), Some(e)) = (&from_env, &bad_env) {
        tracing::warn!("RUST_LOG={value:?} is not a log filter ({e}); the configuration decides");
    }
    if from_env.is_none() || bad_env.is_some() {
        let _ = CONFIG_FILTER.set(handle);
    }
}

/// Apply a configuration's `log_filter` (already validated by the configuration parser).
/// Nothing changes when `RUST_LOG` decides.
pub fn apply_config_filter(filter: &str) {
    let Some(handle) = CONFIG_FILTER.get() else {
        return;
    };
    match EnvFilter::try_new(filter) {
        Ok(filter) => {
            if let Err(e) = handle.reload(filter) {
                tracing::warn!("cannot change the log filter: {e}");
            }
        }
        Err(e) => tracing::warn!("log_filter {filter:?} is not a log filter: {e}"),
    }
}
