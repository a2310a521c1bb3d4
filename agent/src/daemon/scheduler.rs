//! Runs each enabled collector on its cron schedule (UTC) with at most `max_concurrent` runs at
//! once, never two runs of the same collector at once, and every fire time accounted for:
//!
//! - a fire time that finds the previous run still going records a `skipped` entry;
//! - fire times that passed while the agent was down (or asleep, or the clock jumped) record
//!   `skipped` entries with trigger `missed`, one per fire time up to [`MISSED_ONE_BY_ONE`],
//!   beyond that one entry that counts them;
//! - on shutdown no new run starts; running ones get a grace period, then record a failure.

use super::runner::{run_once, RunContext};
use crate::config::CollectorConfig;
use crate::ledger::{timestamp, NewEntry, Outcome};
use crate::statement::Trigger;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Missed fire times recorded as one entry each; more than this are summarized in one entry.
pub const MISSED_ONE_BY_ONE: usize = 1000;
/// The scheduler re-reads the wall clock at least this often, so a clock change is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct Scheduler {
    pub collectors: Vec<Arc<CollectorConfig>>,
    pub ctx: Arc<RunContext>,
    pub permits: Arc<Semaphore>,
}

impl Scheduler {
    /// Account for the time the agent was down: runs that started and never got an entry (the
    /// agent died during them) become `failed` entries, and the fire times each collector
    /// missed between its last accounted run and `now` become `skipped` ones.
    pub async fn record_missed(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let pending = self.ctx.ledger.call(|l| l.pending_runs()).await??;
        let interrupted: Vec<NewEntry> = pending
            .into_iter()
            // A run of a live process (a `collect` beside the daemon) is not ours to close.
            .filter(|p| p.pid == std::process::id() || !process_alive(p.pid))
            .map(|p| {
                tracing::warn!(collector = %p.collector_id, scheduled_for = %timestamp(p.scheduled_for), "run interrupted by the agent's stop");
                let schedule = self
                    .collectors
                    .iter()
                    .find(|c| c.id == p.collector_id)
                    .map(|c| c.schedule.source().to_owned());
                NewEntry {
                    collector_id: p.collector_id,
                    kind: p.kind,
                    trigger: p.trigger,
                    scheduled_for: p.scheduled_for,
                    started_at: p.started_at,
                    finished_at: Utc::now(),
                    config_sha256: self.ctx.config_sha256,
                    schedule,
                    outcome: Outcome::Failed(
                        "the agent stopped before the run finished (crash or kill)".into(),
                    ),
                }
            })
            .collect();
        if !interrupted.is_empty() {
            self.ctx
                .ledger
                .call(move |l| l.append(interrupted))
                .await??;
        }
        for c in self.collectors.iter().filter(|c| c.enabled) {
            let id = c.id.clone();
            let last = self
                .ctx
                .ledger
                .call(move |l| l.last_scheduled(&id))
                .await??;
            if let Some(last) = last {
                record_missed_between(&self.ctx, c, last, now, "the agent was not running").await?;
            }
        }
        Ok(())
    }

    /// Run every enabled collector on the fire times after `from` (the instant up to which
    /// [`Scheduler::record_missed`] accounted) until `shutdown` is cancelled, then wait for runs
    /// in flight (which stop at `ctx.hard_stop`).
    pub async fn run(self, from: DateTime<Utc>, shutdown: CancellationToken) {
        let mut loops = JoinSet::new();
        for c in self.collectors.iter().filter(|c| c.enabled) {
            loops.spawn(collector_loop(
                from,
                c.clone(),
                self.ctx.clone(),
                self.permits.clone(),
                shutdown.clone(),
            ));
        }
        while let Some(joined) = loops.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a scheduling loop ended abnormally: {e}");
            }
        }
    }
}

/// Whether a process with this pid exists (signal 0 probes without sending anything).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Record the fire times in `(after, until)` as missed; returns the last one recorded.
async fn record_missed_between(
    ctx: &RunContext,
    c: &CollectorConfig,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    why: &str,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    // One pass over the fire times: keep them while they may still be recorded one by one,
    // and count them all.
    let (mut missed, mut count, mut last) = (Vec::new(), 0u64, after);
    while let Some(next) = c.schedule.next_after(last).filter(|n| *n < until) {
        if missed.len() <= MISSED_ONE_BY_ONE {
            missed.push(next);
        }
        count += 1;
        last = next;
    }
    let Some(&first) = missed.first() else {
        return Ok(None);
    };
    tracing::warn!(collector = %c.id, count, "runs missed ({why})");
    let batch: Vec<NewEntry> = if missed.len() > MISSED_ONE_BY_ONE {
        let reason = format!(
            "{count} runs missed from {} to {}: {why}",
            timestamp(first),
            timestamp(last)
        );
        vec![skipped_entry(ctx, c, Trigger::Missed, last, reason)]
    } else {
        missed
            .into_iter()
            .map(|at| skipped_entry(ctx, c, Trigger::Missed, at, format!("missed: {why}")))
            .collect()
    };
    ctx.ledger.call(move |l| l.append(batch)).await??;
    Ok(Some(last))
}

fn skipped_entry(
    ctx: &RunContext,
    c: &CollectorConfig,
    trigger: Trigger,
    at: DateTime<Utc>,
    reason: String,
) -> NewEntry {
    let now = Utc::now();
    NewEntry {
        collector_id: c.id.clone(),
        kind: c.kind.clone(),
        trigger,
        scheduled_for: at,
        started_at: now,
        finished_at: now,
        config_sha256: ctx.config_sha256,
        schedule: Some(c.schedule.source().to_owned()),
        outcome: Outcome::Skipped(reason),
    }
}

async fn collector_loop(
    from: DateTime<Utc>,
    c: Arc<CollectorConfig>,
    ctx: Arc<RunContext>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let mut runs: JoinSet<()> = JoinSet::new();
    // The scheduled time of the run in flight, if any.
    let in_flight: Arc<std::sync::Mutex<Option<DateTime<Utc>>>> = Arc::default();
    let mut next = c.schedule.next_after(from);
    while let Some(fire) = next {
        if shutdown.is_cancelled() {
            break;
        }
        let now = Utc::now();
        if now < fire {
            let wait = (fire - now).to_std().unwrap_or_default().min(MAX_SLEEP);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => continue,
                Some(_) = runs.join_next(), if !runs.is_empty() => continue,
            }
        }
        // Fire times that passed while this loop was not looking are missed, not silently lost.
        next = c.schedule.next_after(fire);
        if next.is_some_and(|n| n < now) {
            let why =
                "the agent could not start it on time (suspended, overloaded, or the clock jumped)";
            match record_missed_between(&ctx, &c, fire, now, why).await {
                // Continue after the last fire time accounted for, so none is counted twice.
                Ok(last) => next = c.schedule.next_after(last.unwrap_or(fire)),
                Err(e) => {
                    tracing::error!(collector = %c.id, "cannot record missed runs: {e:#}");
                    ctx.fatal.cancel();
                    break;
                }
            }
        }
        let busy = *in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = busy {
            let reason = format!(
                "the previous run (scheduled for {}) was still running",
                timestamp(running)
            );
            let entry = skipped_entry(&ctx, &c, Trigger::Schedule, fire, reason);
            let recorded = match ctx.ledger.call(move |l| l.append(vec![entry])).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = recorded {
                tracing::error!(collector = %c.id, "cannot record a skipped run: {e}");
                ctx.fatal.cancel();
                break;
            }
            continue;
        }
        *in_flight.lock().unwrap_or_else(|p| p.into_inner()) = Some(fire);
        let (c2, ctx2, permits2, flag) =
            (c.clone(), ctx.clone(), permits.clone(), in_flight.clone());
        runs.spawn(async move {
            // Waiting for a permit still counts as running: the next fire time is skipped.
            let permit = tokio::select! {
                p = permits2.acquire_owned() => p.ok(),
                () = ctx2.hard_stop.cancelled() => None,
            };
            // An error was logged and has stopped the daemon (ctx.fatal).
            let _ = run_once(&ctx2, &c2, Trigger::Schedule, fire).await;
            drop(permit);
            *flag.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
    }
    while runs.join_next().await.is_some() {}
}
