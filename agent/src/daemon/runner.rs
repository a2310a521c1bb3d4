//! One collector run, start to finish: fetch the cursor, collect under the timeout, turn the
//! outcome (snapshot, error, timeout, panic, shutdown) into an entry, and append it.
//!
//! Every run that starts ends in exactly one entry: there is no path that returns without
//! recording, so a failure is a `failed` entry, never a gap.

use super::ledger_thread::LedgerHandle;
use super::metrics::Metrics;
use crate::config::CollectorConfig;
use crate::ledger::{Appended, NewEntry, Outcome};
use crate::statement::Trigger;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What every run needs besides its collector and its configuration's [`RunSettings`], for
/// the whole life of the process.
pub struct RunContext {
    pub ledger: LedgerHandle,
    pub spool_dir: PathBuf,
    pub redaction_salt: [u8; 32],
    /// The data directory and key: never read by any collector.
    pub protected_paths: Vec<PathBuf>,
    /// Cancelled when the shutdown grace period is over: runs still going record a failure.
    pub hard_stop: CancellationToken,
    /// Cancelled when a run could not be recorded at all (the ledger refuses writes): the daemon
    /// stops rather than run on without recording; the run stays pending and is recorded as
    /// failed at the next start.
    pub fatal: CancellationToken,
    /// The data directory, whose filesystem must keep `min_free_disk` bytes free.
    pub data_dir: PathBuf,
    /// Woken after every append (the sync worker waits on it).
    pub appended: Arc<Notify>,
    /// Runs by collector and status, for `/metrics` and the service status line.
    pub metrics: Arc<Metrics>,
}

impl RunContext {
    /// Append `batch` on the ledger thread, then wake the sync worker and count the entries.
    pub async fn append(&self, batch: Vec<NewEntry>) -> anyhow::Result<Appended> {
        let counted: Vec<_> = batch
            .iter()
            .map(|e| (e.collector_id.clone(), e.outcome.status(), e.finished_at))
            .collect();
        let appended = self.ledger.call(move |l| l.append(batch)).await??;
        self.appended.notify_one();
        self.metrics.appended(&counted, appended.checkpoint.size);
        Ok(appended)
    }
}

/// What a configuration file says about every run, besides its collectors. Runs keep the
/// settings they started with when the configuration is reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSettings {
    /// SHA-256 of the configuration file (`config_sha256` in every statement).
    pub config_sha256: [u8; 32],
    /// Below this many free bytes, runs are recorded as failed without collecting (0: no floor).
    pub min_free_disk: u64,
}

impl RunSettings {
    pub fn of(config: &crate::config::Config) -> RunSettings {
        RunSettings {
            config_sha256: config.sha256,
            min_free_disk: config.min_free_disk,
        }
    }
}

/// What a run recorded.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub collector_id: String,
    pub index: u64,
    pub status: &'static str,
    pub item_count: u64,
    pub error: Option<String>,
}

/// Run `collector` once and append its entry. An error means not even a `failed` entry could
/// be appended; the run is then left pending in the ledger and `ctx.fatal` is cancelled.
pub async fn run_once(
    ctx: &RunContext,
    settings: RunSettings,
    collector: &CollectorConfig,
    trigger: Trigger,
    scheduled_for: DateTime<Utc>,
) -> anyhow::Result<RunResult> {
    let result = record_run(ctx, settings, collector, trigger, scheduled_for).await;
    if let Err(e) = &result {
        tracing::error!(collector = %collector.id, "cannot record the run: {e:#}");
        ctx.fatal.cancel();
    }
    result
}

async fn record_run(
    ctx: &RunContext,
    settings: RunSettings,
    collector: &CollectorConfig,
    trigger: Trigger,
    scheduled_for: DateTime<Utc>,
) -> anyhow::Result<RunResult> {
    let id = collector.id.clone();
    let kind = collector.kind.clone();
    let cursor = {
        let (id, kind) = (id.clone(), kind.clone());
        ctx.ledger
            .call(move |l| {
                l.begin_run(&id, &kind, trigger, scheduled_for)?;
                l.cursor(&id)
            })
            .await??
    };
    let started_at = Utc::now();
    let outcome = collect(ctx, settings.min_free_disk, collector, cursor).await;
    let finished_at = Utc::now();
    let entry = |outcome| NewEntry {
        collector_id: id.clone(),
        kind: kind.clone(),
        trigger,
        scheduled_for,
        started_at,
        finished_at,
        config_sha256: settings.config_sha256,
        schedule: Some(collector.schedule.source().to_owned()),
        outcome,
    };
    let (mut status, item_count, mut error) = match &outcome {
        Outcome::Ok(s) => ("ok", s.item_count, None),
        Outcome::Failed(e) => ("failed", 0, Some(e.clone())),
        Outcome::Skipped(r) => ("skipped", 0, Some(r.clone())),
    };
    let first = entry(outcome);
    let appended = match ctx.append(vec![first]).await {
        Ok(appended) => appended,
        // The snapshot could not be stored (its spool file vanished, the disk is full …):
        // record the run as failed, without content, rather than not at all.
        Err(e) => {
            let reason = format!("the snapshot could not be stored: {e}");
            tracing::error!(collector = %id, "{reason}");
            let fallback = entry(Outcome::Failed(reason.clone()));
            status = "failed";
            error = Some(reason);
            ctx.append(vec![fallback]).await?
        }
    };
    match &error {
        Some(e) => tracing::warn!(collector = %id, status, error = %e, "run recorded"),
        None => tracing::info!(collector = %id, items = item_count, "run recorded"),
    }
    Ok(RunResult {
        collector_id: id,
        index: appended.indexes[0],
        status,
        item_count: if status == "ok" { item_count } else { 0 },
        error,
    })
}

async fn collect(
    ctx: &RunContext,
    min_free_disk: u64,
    collector: &CollectorConfig,
    cursor: Option<serde_json::Value>,
) -> Outcome {
    if let Some(reason) = below_disk_floor(&ctx.data_dir, min_free_disk) {
        tracing::error!(collector = %collector.id, "{reason}");
        return Outcome::Failed(reason);
    }
    let cctx = collectors::CollectContext {
        collector_id: collector.id.clone(),
        cursor,
        spool_dir: ctx.spool_dir.clone(),
        redaction_salt: ctx.redaction_salt,
        protected_paths: ctx.protected_paths.clone(),
        deadline: std::time::Instant::now().checked_add(collector.timeout),
    };
    let plugin = collector.collector.clone();
    let timeout = collector.timeout;
    // Its own task, so that a panicking collector becomes a failed entry, not a dead daemon.
    let task =
        tokio::spawn(async move { tokio::time::timeout(timeout, plugin.collect(cctx)).await });
    let abort = task.abort_handle();
    tokio::select! {
        joined = task => match joined {
            Ok(Ok(Ok(snapshot))) => Outcome::Ok(snapshot),
            Ok(Ok(Err(e))) => Outcome::Failed(e.to_string()),
            Ok(Err(_elapsed)) => Outcome::Failed(format!(
                "timed out after {}", human_duration(timeout)
            )),
            Err(e) if e.is_panic() => Outcome::Failed("the collector panicked".into()),
            Err(_) => Outcome::Failed("the run was cancelled".into()),
        },
        () = ctx.hard_stop.cancelled() => {
            abort.abort();
            Outcome::Failed("the agent shut down before the run finished".into())
        }
    }
}

/// Why collection must pause, if the data directory's filesystem has less than `floor` bytes
/// free. Filling the disk would make SQLite fail mid-append; a short `failed` entry per run
/// keeps the gap visible while using next to no space.
fn below_disk_floor(data_dir: &Path, floor: u64) -> Option<String> {
    if floor == 0 {
        return None;
    }
    match free_disk(data_dir) {
        Ok(free) if free < floor => Some(format!(
            "collection paused: {} MiB free on the filesystem of {}, below min_free_disk_mib = {}",
            free >> 20,
            data_dir.display(),
            floor >> 20
        )),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("cannot read free disk space of {}: {e}", data_dir.display());
            None
        }
    }
}

/// Bytes available to this (unprivileged) process on the filesystem holding `path`.
pub fn free_disk(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable memory
    // of the right type, which statvfs fills when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialized `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types are 32-bit on some targets, 64-bit on others.
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    Ok(blocks.saturating_mul(block_size))
}

fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}
