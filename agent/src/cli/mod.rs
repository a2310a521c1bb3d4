//! The command line (DESIGN.md §4): argument definitions and what each command needs loaded.
//!
//! Commands that write (run, collect, keygen) need a valid configuration. Commands that only
//! read (status, log, show, diff, verify, key) also work with `--data-dir` alone when there is
//! no configuration file, so an auditor can inspect a copied data directory.

mod bundle;
mod generate;
mod inspect;
mod manage;

use crate::config::{self, Config};
use crate::ledger::{Ledger, LEDGER_FILE};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/evidence-agent/agent.toml";

#[derive(Debug, Parser)]
#[command(
    name = "evidence-agent",
    version,
    about = "Collects SOC 2 evidence into a signed, append-only, verifiable ledger"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "EVIDENCE_AGENT_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Overrides the configuration's data_dir (ledger, cursors; the key too unless key_path is set).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log lines on stderr as text or as one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "EVIDENCE_AGENT_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground until SIGTERM or SIGINT; SIGHUP re-reads the
    /// configuration.
    Run,
    /// Run collectors once now and exit (all enabled ones, or those named).
    Collect {
        /// Collector id to run; repeat for several.
        #[arg(long = "collector", value_name = "ID")]
        collectors: Vec<String>,
    },
    /// Validate a configuration; every problem is printed as file:line:col.
    CheckConfig {
        /// The file to check (default: --config).
        path: Option<PathBuf>,
    },
    /// Create the host key (mode 0600; refuses to overwrite).
    Keygen,
    /// Print the host's verifier key (vkey) and fingerprint.
    Key,
    /// Ledger size, last checkpoint, last run per collector, sync state.
    Status,
    /// Push everything pending to S3 now; exit non-zero if anything is left pending.
    Sync,
    /// List entries.
    Log {
        #[arg(long = "collector", value_name = "ID")]
        collectors: Vec<String>,
        /// Entries scheduled at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Entries scheduled before this time (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        until: Option<String>,
        /// One JSON object per line (the index columns plus the signed statement).
        #[arg(long)]
        json: bool,
    },
    /// Print a snapshot's content to stdout.
    Show { index: u64 },
    /// What changed between two structured snapshots (e.g. two access reviews).
    Diff {
        old: u64,
        new: u64,
        #[arg(long)]
        json: bool,
    },
    /// Export a period as an evidence bundle (a directory, or a .tar.gz when PATH ends so).
    Export {
        /// First day (YYYY-MM-DD, UTC) or RFC 3339 time of the period.
        #[arg(long)]
        from: String,
        /// Last day of the period, included (YYYY-MM-DD), or an RFC 3339 time, excluded.
        #[arg(long)]
        to: String,
        /// The bundle to write (must not exist).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Limit populations, samples and content to this collector; repeatable.
        #[arg(long = "collector", value_name = "ID")]
        collectors: Vec<String>,
        /// Sample N rows of each population, or size each by its control frequency (auto).
        #[arg(long, value_name = "N|auto")]
        sample: Option<String>,
        /// The sample's seed (default: a fresh random one, recorded in the bundle).
        #[arg(long, value_name = "S")]
        seed: Option<String>,
        /// Export every host's log from S3 (the agents' sync target) instead of the local
        /// ledger; endpoint and region come from the configuration's [s3] table if there is
        /// one, else from the AWS environment.
        #[arg(long, value_name = "s3://BUCKET/PREFIX")]
        source: Option<String>,
        /// With --source: only this host; repeatable.
        #[arg(long = "host", value_name = "HOST", requires = "source")]
        hosts: Vec<String>,
    },
    /// Verify the local ledger, a ledger file or data directory, or a bundle (directory or
    /// .tar.gz) at PATH; exit 0 only if all holds.
    Verify {
        path: Option<PathBuf>,
        /// Pin the verifier key (a file holding a vkey line); repeatable.
        #[arg(long = "vkey", value_name = "FILE")]
        vkeys: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write the man page or a shell completion script to stdout (packaging/build.sh).
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        kind: generate::Kind,
    },
}

/// Exit status of a command that ran but found a problem (verify failed, a run failed).
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir.as_deref();
    match cli.command {
        Command::Run => manage::run(load_config(&cli.config, data_dir)?, data_dir),
        Command::Collect { ref collectors } => {
            manage::collect(load_config(&cli.config, data_dir)?, collectors)
        }
        Command::CheckConfig { ref path } => {
            manage::check_config(path.as_deref().unwrap_or(&cli.config), data_dir)
        }
        Command::Keygen => manage::keygen(&config_or_defaults(&cli.config, data_dir)?),
        Command::Key => manage::key(&Paths::resolve(&cli.config, data_dir)?),
        Command::Status => inspect::status(&Paths::resolve(&cli.config, data_dir)?),
        Command::Sync => manage::sync(load_config(&cli.config, data_dir)?),
        Command::Log {
            ref collectors,
            ref since,
            ref until,
            json,
        } => inspect::log(
            &Paths::resolve(&cli.config, data_dir)?,
            collectors,
            since.as_deref(),
            until.as_deref(),
            json,
        ),
        Command::Show { index } => inspect::show(&Paths::resolve(&cli.config, data_dir)?, index),
        Command::Diff { old, new, json } => {
            inspect::diff(&Paths::resolve(&cli.config, data_dir)?, old, new, json)
        }
        Command::Export {
            ref from,
            ref to,
            ref out,
            ref collectors,
            ref sample,
            ref seed,
            ref source,
            ref hosts,
        } => bundle::export(
            &Paths::resolve(&cli.config, data_dir)?,
            &bundle::ExportArgs {
                from,
                to,
                out,
                collectors,
                sample: sample.as_deref(),
                seed: seed.as_deref(),
                source: source.as_deref(),
                hosts,
            },
        ),
        Command::Verify {
            ref path,
            ref vkeys,
            json,
        } => {
            if let Some(p) = path.as_deref().filter(|p| bundle::is_bundle(p)) {
                return bundle::verify_bundle(p, vkeys, json);
            }
            let paths = match path {
                Some(p) => Paths::of_ledger_path(p)?,
                None => Paths::resolve(&cli.config, data_dir)?,
            };
            manage::verify(&paths, vkeys, json)
        }
        Command::Generate { kind } => generate::write(kind, &mut std::io::stdout().lock()),
    }
}

/// The configuration, or — when there is no configuration file and `--data-dir` is given — the
/// defaults for that data directory (host id from the hostname, key in `<dir>/keys/`).
fn config_or_defaults(path: &Path, data_dir: Option<&Path>) -> anyhow::Result<Config> {
    if !path.exists() && data_dir.is_some() {
        return config::parse(path, "", data_dir)
            .map_err(|errors| anyhow::anyhow!("invalid defaults:\n{errors}"));
    }
    load_config(path, data_dir)
}

/// The configuration for a command that writes; its `log_filter` takes effect from here on.
fn load_config(path: &Path, data_dir: Option<&Path>) -> anyhow::Result<Config> {
    let config = config::load(path, data_dir)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    crate::logging::apply_config_filter(&config.log_filter);
    Ok(config)
}

/// Where the ledger and key of the host are, for commands that only read.
pub struct Paths {
    pub ledger: PathBuf,
    pub key: Option<PathBuf>,
    /// The configuration, when one was found.
    pub config: Option<Config>,
}

impl Paths {
    fn resolve(config_path: &Path, data_dir: Option<&Path>) -> anyhow::Result<Paths> {
        match config::load(config_path, data_dir) {
            Ok(config) => Ok(Paths {
                ledger: config.data_dir.join(LEDGER_FILE),
                key: Some(config.key_path.clone()),
                config: Some(config),
            }),
            Err(_) if !config_path.exists() && data_dir.is_some() => {
                let dir = data_dir.unwrap_or(Path::new("."));
                Ok(Paths {
                    ledger: dir.join(LEDGER_FILE),
                    key: Some(dir.join("keys/host.key")),
                    config: None,
                })
            }
            Err(errors) => Err(anyhow::anyhow!(
                "invalid configuration:\n{errors}\n(commands that only read also work with --data-dir DIR and no configuration file)"
            )),
        }
    }

    /// A ledger file, or a data directory holding one.
    fn of_ledger_path(path: &Path) -> anyhow::Result<Paths> {
        let ledger = if path.is_dir() {
            path.join(LEDGER_FILE)
        } else {
            path.to_owned()
        };
        if !ledger.is_file() {
            anyhow::bail!(
                "{}: not a ledger file, a data directory holding {LEDGER_FILE}, \
                 nor a bundle (a directory holding manifest.json, or a .tar.gz)",
                path.display()
            );
        }
        Ok(Paths {
            ledger,
            key: None,
            config: None,
        })
    }

    fn open_ledger(&self) -> anyhow::Result<Ledger> {
        Ledger::open_read_only(&self.ledger)
            .with_context(|| format!("open ledger {}", self.ledger.display()))
    }
}
