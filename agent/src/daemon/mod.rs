//! The long-running agent: opens the ledger on its own thread, accounts for runs missed while it
//! was down, schedules the collectors, and on SIGTERM or SIGINT stops scheduling, lets running
//! collections finish within [`SHUTDOWN_GRACE`], records the rest as failed, and exits with
//! everything committed.

mod ledger_thread;
pub mod runner;
pub mod scheduler;

pub use ledger_thread::LedgerHandle;

use crate::config::Config;
use crate::ledger::{Ledger, LEDGER_FILE};
use crate::tlog::note::NoteSigner;
use anyhow::Context;
use runner::RunContext;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long running collections may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Create the data directory (0700) and its spool directory.
pub fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("create data directory {}", data_dir.display()))?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 700 {}", data_dir.display()))?;
    }
    let spool = data_dir.join("spool");
    std::fs::create_dir_all(&spool).with_context(|| format!("create {}", spool.display()))?;
    Ok(())
}

/// Everything a run needs, with the ledger running on its thread.
pub struct Agent {
    pub ctx: Arc<RunContext>,
    pub config: Config,
    ledger_thread: std::thread::JoinHandle<()>,
}

impl Agent {
    /// Open the ledger of `config` for writing with `signer` and start its thread.
    pub async fn start(config: Config, signer: NoteSigner) -> anyhow::Result<Agent> {
        prepare_data_dir(&config.data_dir)?;
        let path = config.data_dir.join(LEDGER_FILE);
        let host_id = config.host_id.clone();
        let salt = crate::keys::redaction_salt(&signer);
        let ledger = tokio::task::spawn_blocking(move || Ledger::open(&path, &host_id, signer))
            .await
            .context("ledger open task")??;
        let (handle, ledger_thread) = LedgerHandle::spawn(ledger).context("start ledger thread")?;
        let ctx = Arc::new(RunContext {
            ledger: handle,
            spool_dir: config.data_dir.join("spool"),
            redaction_salt: salt,
            config_sha256: config.sha256,
            protected_paths: vec![config.data_dir.clone(), config.key_path.clone()],
            hard_stop: CancellationToken::new(),
        });
        Ok(Agent {
            ctx,
            config,
            ledger_thread,
        })
    }

    /// Close the ledger: drop the last handle and wait for its thread to finish pending work.
    pub async fn close(self) -> anyhow::Result<()> {
        let Agent {
            ctx, ledger_thread, ..
        } = self;
        drop(ctx);
        tokio::task::spawn_blocking(move || ledger_thread.join())
            .await
            .context("ledger close task")?
            .map_err(|_| anyhow::anyhow!("the ledger thread panicked"))?;
        Ok(())
    }
}

/// Run the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config, signer: NoteSigner) -> anyhow::Result<()> {
    for problem in config.check_environment() {
        tracing::warn!("{problem}");
    }
    let agent = Agent::start(config, signer).await?;
    let collectors: Vec<_> = agent
        .config
        .collectors
        .iter()
        .cloned()
        .map(Arc::new)
        .collect();
    let scheduler = scheduler::Scheduler {
        collectors,
        ctx: agent.ctx.clone(),
        permits: Arc::new(Semaphore::new(agent.config.max_concurrent)),
    };
    let now = chrono::Utc::now();
    scheduler
        .record_missed(now)
        .await
        .context("record runs missed while the agent was down")?;
    let enabled = agent.config.collectors.iter().filter(|c| c.enabled).count();
    tracing::info!(
        host = %agent.config.host_id,
        collectors = enabled,
        data_dir = %agent.config.data_dir.display(),
        "evidence-agent running"
    );

    let shutdown = CancellationToken::new();
    let mut scheduling = tokio::spawn(scheduler.run(now, shutdown.clone()));
    let signal = wait_for_stop_signal().await?;
    tracing::info!(
        "{signal}: no new runs; waiting up to {}s for running ones",
        SHUTDOWN_GRACE.as_secs()
    );
    shutdown.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut scheduling)
        .await
        .is_err()
    {
        tracing::warn!("grace period over: runs still going are recorded as failed");
        agent.ctx.hard_stop.cancel();
        let _ = scheduling.await;
    }
    agent.close().await?;
    tracing::info!("stopped; ledger committed");
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(test)]
mod tests;
