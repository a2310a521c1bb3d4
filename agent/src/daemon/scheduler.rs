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
    /// Record the fire times each collector missed between its last accounted run and `now`.
    pub async fn record_missed(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
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

async fn record_missed_between(
    ctx: &RunContext,
    c: &CollectorConfig,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    why: &str,
) -> anyhow::Result<()> {
    let mut missed = Vec::new();
    let mut t = after;
    while let Some(next) = c.schedule.next_after(t) {
        if next >= until {
            break;
        }
        missed.push(next);
        t = next;
        if missed.len() > MISSED_ONE_BY_ONE {
            // Count the rest without keeping them.
            let mut count = missed.len() as u64;
            let first = missed[0];
            while let Some(next) = c.schedule.next_after(t) {
                if next >= until {
                    break;
                }
                count += 1;
                t = next;
            }
            tracing::warn!(collector = %c.id, count, "runs missed ({why})");
            let reason = format!(
                "{count} runs missed from {} to {}: {why}",
                timestamp(first),
                timestamp(t)
            );
            let entry = skipped_entry(ctx, c, Trigger::Missed, t, reason);
            ctx.ledger.call(move |l| l.append(vec![entry])).await??;
            return Ok(());
        }
    }
    if missed.is_empty() {
        return Ok(());
    }
    tracing::warn!(collector = %c.id, count = missed.len(), "runs missed ({why})");
    let batch: Vec<NewEntry> = missed
        .into_iter()
        .map(|at| skipped_entry(ctx, c, Trigger::Missed, at, format!("missed: {why}")))
        .collect();
    ctx.ledger.call(move |l| l.append(batch)).await??;
    Ok(())
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
            let why = "the agent could not start it on time (suspended, overloaded, or the clock jumped)";
            if let Err(e) = record_missed_between(&ctx, &c, fire, now, why).await {
                tracing::error!(collector = %c.id, "cannot record missed runs: {e:#}");
            }
            next = c
                .schedule
                .next_after(now - chrono::Duration::milliseconds(1));
        }
        let busy = *in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = busy {
            let reason = format!(
                "the previous run (scheduled for {}) was still running",
                timestamp(running)
            );
            let entry = skipped_entry(&ctx, &c, Trigger::Schedule, fire, reason);
            match ctx.ledger.call(move |l| l.append(vec![entry])).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(collector = %c.id, "cannot record skipped run: {e}"),
                Err(e) => tracing::error!(collector = %c.id, "cannot record skipped run: {e}"),
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
            let result = run_once(&ctx2, &c2, Trigger::Schedule, fire).await;
            drop(permit);
            if let Err(e) = result {
                tracing::error!(collector = %c2.id, "cannot record run: {e:#}");
            }
            *flag.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
    }
    while runs.join_next().await.is_some() {}
}
