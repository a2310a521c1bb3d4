//! The long-running agent: opens the ledger on its own thread, accounts for runs missed while it
//! was down, schedules the collectors, tells the service manager it is ready, and then:
//!
//! - on SIGHUP re-reads the configuration and hands the new plan to the scheduler, or, if the
//!   file is invalid or changes what only a restart can change, keeps the running one and logs
//!   why;
//! - on SIGTERM or SIGINT stops scheduling, lets running collections finish within
//!   [`SHUTDOWN_GRACE`], records the rest as failed, and exits with everything committed.

mod health;
mod ledger_thread;
pub mod metrics;
pub mod notify;
pub mod runner;
pub mod scheduler;

pub use ledger_thread::LedgerHandle;

use crate::config::{Config, ConfigErrors};
use crate::ledger::{Ledger, LEDGER_FILE};
use crate::sync::{self, SyncError};
use crate::tlog::note::NoteSigner;
use anyhow::Context;
use metrics::Metrics;
use notify::Notifier;
use runner::RunContext;
use scheduler::{Plan, Scheduler};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
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
        let (ledger, metrics) = tokio::task::spawn_blocking(move || {
            let ledger = Ledger::open(&path, &host_id, signer)?;
            let metrics = Metrics::new(ledger.last_successes()?, ledger.size()?);
            anyhow::Ok((ledger, metrics))
        })
        .await
        .context("ledger open task")??;
        let (handle, ledger_thread) = LedgerHandle::spawn(ledger).context("start ledger thread")?;
        let ctx = Arc::new(RunContext {
            ledger: handle,
            spool_dir,
            redaction_salt: salt,
            protected_paths: vec![config.data_dir.clone(), config.key_path.clone()],
            hard_stop: CancellationToken::new(),
            fatal: CancellationToken::new(),
            data_dir: config.data_dir.clone(),
            appended: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::new(metrics),
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

/// Reads the configuration again (from the same file, with the same `--data-dir`) at SIGHUP.
pub type ConfigLoader = Arc<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>;

/// Run the daemon until SIGTERM or SIGINT.
pub async fn run(
    config: Config,
    signer: NoteSigner,
    loader: ConfigLoader,
    notifier: Notifier,
) -> anyhow::Result<()> {
    warn_about_environment(&config).await;
    // Bound before anything is opened, so that a taken port fails the start cleanly.
    let listener = match config.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listen on {address} (metrics_listen)"))?,
        ),
        None => None,
    };
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
    // SIGHUP's default action is to end the process: from here on it waits to be handled.
    // SIGTERM and SIGINT keep theirs until start-up is done, so a stop during a slow start
    // (anchoring with S3, accounting for missed runs) ends the process at once; every append is
    // one transaction, so nothing committed is lost.
    let hangup = Signals::hangup()?;
    let agent = Agent::start(config, signer).await?;
    if let Some(syncer) = &syncer {
        if let Err(e) = anchor_at_start(syncer).await {
            agent.close().await?;
            return Err(e);
        }
    }
    let (plan_tx, plan_rx) = watch::channel(Arc::new(Plan::new(&agent.config, None)));
    let scheduler = Scheduler {
        ctx: agent.ctx.clone(),
        plan: plan_rx.clone(),
    };
    let now = chrono::Utc::now();
    scheduler
        .record_missed(now)
        .await
        .context("record runs missed while the agent was down")?;
    let enabled = plan_rx.borrow().enabled().count();
    tracing::info!(
        host = %agent.config.host_id,
        collectors = enabled,
        data_dir = %agent.config.data_dir.display(),
        "evidence-agent running"
    );

    let shutdown = CancellationToken::new();
    let mut scheduling = tokio::spawn(scheduler.run(now, shutdown.clone()));
    if let Some(listener) = listener {
        match listener.local_addr() {
            Ok(address) => tracing::info!("serving /healthz and /metrics on http://{address}"),
            Err(e) => tracing::warn!("the metrics listener has no address: {e}"),
        }
        let health = health::Health {
            ctx: agent.ctx.clone(),
            plan: plan_rx.clone(),
            sync_location: syncer.as_ref().map(|s| s.location().to_owned()),
        };
        tokio::spawn(health::serve(listener, health, shutdown.clone()));
    }
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
    let mut signals = Signals::install(hangup)?;
    let notifier = Arc::new(notifier);
    notifier.notify("READY=1");
    tokio::spawn(keep_alive(
        notifier.clone(),
        agent.ctx.clone(),
        plan_rx,
        shutdown.clone(),
    ));

    let fatal = agent.ctx.fatal.clone();
    let mut running = agent.config.clone();
    let stopped_by = loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop(name) => break Ok(name),
                Signal::Reload => {
                    notifier.reloading();
                    match reload(&loader, &running).await {
                        Ok(config) => {
                            let plan = Plan::new(&config, Some(&plan_tx.borrow()));
                            plan_tx.send_replace(Arc::new(plan));
                            running = config;
                        }
                        Err(why) => tracing::error!(
                            "reload refused, still running the configuration read before: {why}"
                        ),
                    }
                    notifier.notify("READY=1");
                }
            },
            () = fatal.cancelled() => break Err(anyhow::anyhow!(
                "stopping: the ledger could not record a run (see the error above); \
                 the run stays pending and is recorded as failed at the next start"
            )),
            Some(e) = refused.recv() => break Err(anyhow::Error::new(e).context("stopping")),
        }
    };
    notifier.notify("STOPPING=1");
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

/// Read the configuration again. It is refused if it is invalid or changes a setting that
/// only a restart applies (where the ledger, key and S3 copy are, the listener); the
/// returned configuration is the one to run from now on.
async fn reload(loader: &ConfigLoader, running: &Config) -> Result<Config, String> {
    let loader = loader.clone();
    let path = running.path.display().to_string();
    let loaded = tokio::task::spawn_blocking(move || loader())
        .await
        .map_err(|e| format!("reading {path} stopped: {e}"))?;
    let config = loaded.map_err(|errors| format!("{path} is invalid:\n{errors}"))?;
    let fixed = [
        ("host_id", config.host_id != running.host_id),
        ("data_dir", config.data_dir != running.data_dir),
        ("key_path", config.key_path != running.key_path),
        ("[s3]", config.s3 != running.s3),
        (
            "metrics_listen",
            config.metrics_listen != running.metrics_listen,
        ),
    ];
    let changed: Vec<&str> = fixed.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect();
    if !changed.is_empty() {
        return Err(format!(
            "{path} changes {}, which only a restart applies (systemctl restart evidence-agent)",
            changed.join(", ")
        ));
    }
    warn_about_environment(&config).await;
    crate::logging::apply_config_filter(&config.log_filter);
    let ids = |c: &Config| -> Vec<String> {
        let enabled = c.collectors.iter().filter(|c| c.enabled);
        enabled.map(|c| c.id.clone()).collect()
    };
    let (before, after) = (ids(running), ids(&config));
    let added: Vec<&String> = after.iter().filter(|id| !before.contains(id)).collect();
    let removed: Vec<&String> = before.iter().filter(|id| !after.contains(id)).collect();
    tracing::info!(
        config = %path,
        config_sha256 = %hex::encode(config.sha256),
        collectors = after.len(),
        ?added,
        ?removed,
        "configuration reloaded"
    );
    Ok(config)
}

/// Log what the collectors find missing on this host (paths, programs), as warnings: the
/// checks read the file system, so they run on the blocking pool.
async fn warn_about_environment(config: &Config) {
    let config = config.clone();
    let checked = tokio::task::spawn_blocking(move || config.check_environment()).await;
    match checked {
        Ok(problems) => problems.iter().for_each(|p| tracing::warn!("{p}")),
        Err(e) => tracing::warn!("the collectors' checks of this host stopped: {e}"),
    }
}

/// Tell the service manager every so often that the agent is alive — only if the ledger thread
/// still answers, so that a hung ledger gets the service restarted — and how it is doing.
async fn keep_alive(
    notifier: Arc<Notifier>,
    ctx: Arc<RunContext>,
    plan: watch::Receiver<Arc<Plan>>,
    shutdown: CancellationToken,
) {
    if !notifier.enabled() {
        return;
    }
    const STATUS_EVERY: Duration = Duration::from_secs(30);
    let watchdog = notifier.watchdog_interval();
    let mut ticks = tokio::time::interval(watchdog.unwrap_or(STATUS_EVERY).min(STATUS_EVERY));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let collectors = plan.borrow().enabled().count();
        notifier.status(&ctx.metrics.counts().status_line(collectors));
        let Some(within) = watchdog else { continue };
        match tokio::time::timeout(within, ctx.ledger.call(|_| ())).await {
            Ok(Ok(())) if !ctx.fatal.is_cancelled() => notifier.notify("WATCHDOG=1"),
            _ => tracing::warn!("the ledger thread is not answering; not telling the watchdog"),
        }
    }
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

/// The signals the daemon acts on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

enum Signal {
    Stop(&'static str),
    Reload,
}

impl Signals {
    fn hangup() -> anyhow::Result<tokio::signal::unix::Signal> {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup()).context("install SIGHUP handler")
    }

    fn install(hup: tokio::signal::unix::Signal) -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("install SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("install SIGINT handler")?,
            hup,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

#[cfg(test)]
mod tests;
