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
use crate::sync::{self, SyncError};
use crate::tlog::note::NoteSigner;
use anyhow::Context;
use runner::RunContext;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long running collections may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Create the data directory, mode 0700: it holds the key and evidence that may be sensitive.
pub fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .with_context(|| format!("create data directory {}", data_dir.display()))?;
    }
    Ok(())
}

/// This process's spool directory, `spool/<pid>`. Spool files of processes that no longer run
/// (killed mid-run) are removed first, so crashes do not leak disk.
fn prepare_spool(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let spool = data_dir.join("spool");
    std::fs::create_dir_all(&spool).with_context(|| format!("create {}", spool.display()))?;
    let entries = std::fs::read_dir(&spool).with_context(|| format!("list {}", spool.display()))?;
    for entry in entries.flatten() {
        let live = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(scheduler::process_alive);
        if !live {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!("cannot remove stale spool {}: {e}", path.display());
            }
        }
    }
    let own = spool.join(std::process::id().to_string());
    std::fs::create_dir_all(&own).with_context(|| format!("create {}", own.display()))?;
    Ok(own)
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
        let spool_dir = prepare_spool(&config.data_dir)?;
        let path = config.data_dir.join(LEDGER_FILE);
        let host_id = config.host_id.clone();
        let salt = crate::keys::redaction_salt(&signer);
        let ledger = tokio::task::spawn_blocking(move || Ledger::open(&path, &host_id, signer))
            .await
            .context("ledger open task")??;
        let (handle, ledger_thread) = LedgerHandle::spawn(ledger).context("start ledger thread")?;
        let ctx = Arc::new(RunContext {
            ledger: handle,
            spool_dir,
            redaction_salt: salt,
            config_sha256: config.sha256,
            protected_paths: vec![config.data_dir.clone(), config.key_path.clone()],
            hard_stop: CancellationToken::new(),
            fatal: CancellationToken::new(),
            data_dir: config.data_dir.clone(),
            min_free_disk: config.min_free_disk,
            appended: Arc::new(tokio::sync::Notify::new()),
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
        let spool_dir = ctx.spool_dir.clone();
        drop(ctx);
        if let Err(e) = std::fs::remove_dir_all(&spool_dir) {
            tracing::warn!("cannot remove spool {}: {e}", spool_dir.display());
        }
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
    let (syncer, _sync_lock) = match config.s3.clone() {
        Some(s3) => {
            let lock = sync::lock(&config.data_dir)?;
            let syncer = sync::open(&config, &s3, signer.clone())
                .await
                .context("open the ledger for sync")?;
            (Some(Arc::new(syncer)), Some(lock))
        }
        None => (None, None),
    };
    let agent = Agent::start(config, signer).await?;
    if let Some(syncer) = &syncer {
        if let Err(e) = anchor_at_start(syncer).await {
            agent.close().await?;
            return Err(e);
        }
    }
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
    let (refused_tx, mut refused) = tokio::sync::mpsc::channel::<SyncError>(1);
    if let Some(syncer) = syncer {
        let worker = sync::worker::run_worker(syncer, agent.ctx.appended.clone(), shutdown.clone());
        let worker = tokio::spawn(worker);
        tokio::spawn(async move {
            let stopped = match worker.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                // A bug in sync must not leave the daemon collecting with sync silently gone.
                Err(e) => SyncError::Task(format!("the sync worker died: {e}")),
            };
            let _ = refused_tx.send(stopped).await;
        });
    }
    let fatal = agent.ctx.fatal.clone();
    let stopped_by = tokio::select! {
        signal = wait_for_stop_signal() => Ok(signal?),
        () = fatal.cancelled() => Err(anyhow::anyhow!(
            "stopping: the ledger could not record a run (see the error above); \
             the run stays pending and is recorded as failed at the next start"
        )),
        Some(e) = refused.recv() => Err(anyhow::Error::new(e).context("stopping")),
    };
    match &stopped_by {
        Ok(signal) => tracing::info!(
            "{signal}: no new runs; waiting up to {}s for running ones",
            SHUTDOWN_GRACE.as_secs()
        ),
        Err(e) => tracing::error!("{e}"),
    }
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
    stopped_by?;
    tracing::info!("stopped; ledger committed");
    Ok(())
}

/// How long start-up waits to compare with S3 before collecting anyway.
const ANCHOR_AT_START: Duration = Duration::from_secs(15);

/// Compare with S3's checkpoint before appending anything: a rolled-back or replaced ledger must
/// not collect. If S3 cannot be reached, collection starts and the sync worker checks later.
pub async fn anchor_at_start(syncer: &sync::Syncer) -> anyhow::Result<()> {
    match tokio::time::timeout(ANCHOR_AT_START, syncer.anchor()).await {
        Ok(Ok(size)) => tracing::info!(
            "{} shows {size} entries, consistent with the local ledger",
            syncer.location()
        ),
        Ok(Err(e @ SyncError::Refused(_))) => {
            // Kept for `status`, which is where an operator looks when the agent will not start.
            let (location, message) = (syncer.location().to_owned(), e.to_string());
            let recorded = syncer
                .with_ledger(move |l| l.record_sync_attempt(&location, Some(&message)))
                .await;
            if let Err(r) = recorded {
                tracing::warn!("cannot record the refusal: {r}");
            }
            return Err(anyhow::Error::new(e));
        }
        Ok(Err(e)) => tracing::warn!(
            "cannot compare with S3 at start-up (collecting anyway; sync checks before uploading): {e}"
        ),
        Err(_) => tracing::warn!(
            "no answer from {} within {}s at start-up (collecting anyway; sync checks before uploading)",
            syncer.location(),
            ANCHOR_AT_START.as_secs()
        ),
    }
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    // SIGHUP must not kill the daemon (its default action); reloading is not supported yet.
    let mut hup = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok("SIGTERM"),
            _ = int.recv() => return Ok("SIGINT"),
            _ = hup.recv() => tracing::warn!(
                "SIGHUP: this version does not reload its configuration; restart it to apply changes"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
