//! One collector run, start to finish: fetch the cursor, collect under the timeout, turn the
//! outcome (snapshot, error, timeout, panic, shutdown) into an entry, and append it.
//!
//! Every run that starts ends in exactly one entry: there is no path that returns without
//! recording, so a failure is a `failed` entry, never a gap.

use super::ledger_thread::LedgerHandle;
use crate::config::CollectorConfig;
use crate::ledger::{NewEntry, Outcome};
use crate::statement::Trigger;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// What every run needs besides its collector.
pub struct RunContext {
    pub ledger: LedgerHandle,
    pub spool_dir: PathBuf,
    pub redaction_salt: [u8; 32],
    pub config_sha256: [u8; 32],
    /// The data directory and key: never read by any collector.
    pub protected_paths: Vec<PathBuf>,
    /// Cancelled when the shutdown grace period is over: runs still going record a failure.
    pub hard_stop: CancellationToken,
    /// Cancelled when a run could not be recorded at all (the ledger refuses writes): the daemon
    /// stops rather than run on without recording; the run stays pending and is recorded as
    /// failed at the next start.
    pub fatal: CancellationToken,
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
    collector: &CollectorConfig,
    trigger: Trigger,
    scheduled_for: DateTime<Utc>,
) -> anyhow::Result<RunResult> {
    let result = record_run(ctx, collector, trigger, scheduled_for).await;
    if let Err(e) = &result {
        tracing::error!(collector = %collector.id, "cannot record the run: {e:#}");
        ctx.fatal.cancel();
    }
    result
}

async fn record_run(
    ctx: &RunContext,
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
    let outcome = collect(ctx, collector, cursor).await;
    let finished_at = Utc::now();
    let entry = |outcome| NewEntry {
        collector_id: id.clone(),
        kind: kind.clone(),
        trigger,
        scheduled_for,
        started_at,
        finished_at,
        config_sha256: ctx.config_sha256,
        outcome,
    };
    let (mut status, item_count, mut error) = match &outcome {
        Outcome::Ok(s) => ("ok", s.item_count, None),
        Outcome::Failed(e) => ("failed", 0, Some(e.clone())),
        Outcome::Skipped(r) => ("skipped", 0, Some(r.clone())),
    };
    let first = entry(outcome);
    let appended = match ctx.ledger.call(move |l| l.append(vec![first])).await? {
        Ok(appended) => appended,
        // The snapshot could not be stored (its spool file vanished, the disk is full …):
        // record the run as failed, without content, rather than not at all.
        Err(e) => {
            let reason = format!("the snapshot could not be stored: {e}");
            tracing::error!(collector = %id, "{reason}");
            let fallback = entry(Outcome::Failed(reason.clone()));
            status = "failed";
            error = Some(reason);
            ctx.ledger.call(move |l| l.append(vec![fallback])).await??
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
    collector: &CollectorConfig,
    cursor: Option<serde_json::Value>,
) -> Outcome {
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
