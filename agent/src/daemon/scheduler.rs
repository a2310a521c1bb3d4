//! Runs each enabled collector on its cron schedule (UTC) with at most `max_concurrent` runs at
//! once, never two runs of the same collector at once, and every fire time accounted for:
//!
//! - a fire time that finds the previous run still going records a `skipped` entry;
//! - fire times that passed while the agent was down (or asleep, or the clock jumped) record
//!   `skipped` entries with trigger `missed`, one per fire time up to [`MISSED_ONE_BY_ONE`],
//!   beyond that one entry that counts them;
//! - a wall clock that goes back behind fire times already run does not pause the schedule:
//!   it goes on from the new time (the ledger records the step in the entries' details);
//! - on shutdown no new run starts; running ones get a grace period, then record a failure.

use super::runner::{run_once, RunContext, RunSettings};
use crate::config::{CollectorConfig, Config};
use crate::ledger::{timestamp, NewEntry, Outcome};
use crate::statement::Trigger;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Missed fire times recorded as one entry each; more than this are summarized in one entry.
pub const MISSED_ONE_BY_ONE: usize = 1000;
/// The scheduler re-reads the wall clock at least this often, so a clock change is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// A wall clock behind the last fire time accounted for by more than this went back.
const CLOCK_STEP_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// What the scheduler runs: one configuration's collectors, its run settings and its limit on
/// concurrent runs. A reload replaces the whole plan.
pub struct Plan {
    pub collectors: Vec<Arc<CollectorConfig>>,
    pub settings: RunSettings,
    /// `max_concurrent` permits, shared by the runs started under this plan.
    pub permits: Arc<Semaphore>,
    max_concurrent: usize,
}

impl Plan {
    /// The plan of `config`. The permits of `previous` are kept when the limit is unchanged,
    /// so that runs in flight still count against it after a reload; a new limit takes a
    /// fresh semaphore, and runs in flight finish under the old one.
    pub fn new(config: &Config, previous: Option<&Plan>) -> Plan {
        let collectors = config.collectors.iter().cloned().map(Arc::new).collect();
        let mut plan = Plan::with(collectors, RunSettings::of(config), config.max_concurrent);
        if let Some(p) = previous.filter(|p| p.max_concurrent == config.max_concurrent) {
            plan.permits = p.permits.clone();
        }
        plan
    }

    pub fn with(
        collectors: Vec<Arc<CollectorConfig>>,
        settings: RunSettings,
        max_concurrent: usize,
    ) -> Plan {
        Plan {
            collectors,
            settings,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
        }
    }

    /// The collectors that are scheduled (enabled), in the file's order.
    pub fn enabled(&self) -> impl Iterator<Item = &Arc<CollectorConfig>> {
        self.collectors.iter().filter(|c| c.enabled)
    }

    /// The enabled collector with this id.
    fn enabled_by_id(&self, id: &str) -> Option<&Arc<CollectorConfig>> {
        self.enabled().find(|c| c.id == id)
    }
}

pub struct Scheduler {
    pub ctx: Arc<RunContext>,
    /// The current plan; a new value is a reload.
    pub plan: watch::Receiver<Arc<Plan>>,
}

impl Scheduler {
    /// Account for the time the agent was down: runs that started and never got an entry (the
    /// agent died during them) become `failed` entries, and the fire times each collector
    /// missed between its last accounted run and `now` become `skipped` ones.
    pub async fn record_missed(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let plan = self.plan.borrow().clone();
        let pending = self.ctx.ledger.call(|l| l.pending_runs()).await??;
        let interrupted: Vec<NewEntry> = pending
            .into_iter()
            // A run of a live process (a `collect` beside the daemon) is not ours to close.
            .filter(|p| p.pid == std::process::id() || !process_alive(p.pid))
            .map(|p| {
                tracing::warn!(collector = %p.collector_id, scheduled_for = %timestamp(p.scheduled_for), "run interrupted by the agent's stop");
                let schedule = plan
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
                    config_sha256: plan.settings.config_sha256,
                    schedule,
                    outcome: Outcome::Failed(
                        "the agent stopped before the run finished (crash or kill)".into(),
                    ),
                }
            })
            .collect();
        if !interrupted.is_empty() {
            self.ctx.append(interrupted).await?;
        }
        for c in plan.enabled() {
            let id = c.id.clone();
            let last = self
                .ctx
                .ledger
                .call(move |l| l.last_scheduled(&id))
                .await??;
            if let Some(last) = last {
                let why = "the agent was not running";
                record_missed_between(&self.ctx, &plan, c, last, now, why).await?;
            }
        }
        Ok(())
    }

    /// Run every enabled collector of the current plan on its fire times after `from` (the
    /// instant up to which [`Scheduler::record_missed`] accounted) until `shutdown` is
    /// cancelled, then wait for runs in flight (which stop at `ctx.hard_stop`).
    ///
    /// Each collector has one loop. A new plan reaches the loops of the collectors it keeps,
    /// which go on with their new settings; the loop of a collector it drops or disables
    /// schedules nothing more, lets its run in flight finish and ends (if the collector comes
    /// back meanwhile, the same loop takes it up again from then); a collector it adds gets a
    /// loop from the moment the plan arrived. A collector never has two loops, so never two
    /// runs at once.
    pub async fn run(mut self, from: DateTime<Utc>, shutdown: CancellationToken) {
        let mut loops = JoinSet::new();
        let mut looping: HashMap<tokio::task::Id, String> = HashMap::new();
        // When the newest plan arrived: a collector it has and that has no loop is owed every
        // fire time since then.
        let mut plan_since = from;
        let mut watching = true;
        loop {
            let plan = self.plan.borrow_and_update().clone();
            for c in plan.enabled() {
                if !looping.values().any(|id| *id == c.id) {
                    let task = loops.spawn(collector_loop(
                        plan_since,
                        c.id.clone(),
                        self.plan.clone(),
                        self.ctx.clone(),
                        shutdown.clone(),
                    ));
                    looping.insert(task.id(), c.id.clone());
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = self.plan.changed(), if watching => {
                    watching = changed.is_ok();
                    plan_since = Utc::now();
                }
                Some(joined) = loops.join_next_with_id() => {
                    let task = match joined {
                        Ok((task, ())) => task,
                        Err(e) => {
                            // A bug: the loop is started again from now; what it had not
                            // accounted for shows as a gap.
                            tracing::error!("a scheduling loop ended abnormally: {e}");
                            plan_since = plan_since.max(Utc::now());
                            e.id()
                        }
                    };
                    looping.remove(&task);
                }
            }
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
    plan: &Plan,
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
    let skipped = |at, reason| skipped_entry(plan, c, Trigger::Missed, at, reason);
    let batch: Vec<NewEntry> = if missed.len() > MISSED_ONE_BY_ONE {
        let reason = format!(
            "{count} runs missed from {} to {}: {why}",
            timestamp(first),
            timestamp(last)
        );
        vec![skipped(last, reason)]
    } else {
        missed
            .into_iter()
            .map(|at| skipped(at, format!("missed: {why}")))
            .collect()
    };
    ctx.append(batch).await?;
    Ok(Some(last))
}

fn skipped_entry(
    plan: &Plan,
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
        config_sha256: plan.settings.config_sha256,
        schedule: Some(c.schedule.source().to_owned()),
        outcome: Outcome::Skipped(reason),
    }
}

/// Schedule collector `id` on the fire times after `from` for as long as the plan has it
/// enabled, then let its run in flight finish.
async fn collector_loop(
    from: DateTime<Utc>,
    id: String,
    mut plan_rx: watch::Receiver<Arc<Plan>>,
    ctx: Arc<RunContext>,
    shutdown: CancellationToken,
) {
    let mut runs: JoinSet<()> = JoinSet::new();
    // The scheduled time of the run in flight, if any.
    let in_flight: Arc<std::sync::Mutex<Option<DateTime<Utc>>>> = Arc::default();
    // Every fire time up to `accounted` has been run, skipped or recorded as missed.
    let mut accounted = from;
    let mut schedule: Option<String> = None;
    let mut watching = true;
    // Set while the plan does not have the collector: its loop only waits for its run.
    let mut dropped = false;
    loop {
        let plan = plan_rx.borrow_and_update().clone();
        let Some(c) = plan.enabled_by_id(&id).cloned() else {
            if runs.is_empty() {
                break;
            }
            dropped = true;
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = plan_rx.changed(), if watching => watching = changed.is_ok(),
                Some(_) = runs.join_next() => {}
            }
            continue;
        };
        // Fire times while the collector was not in the plan were never due.
        if std::mem::take(&mut dropped) {
            accounted = accounted.max(Utc::now());
        }
        // A new schedule starts from now: its fire times before the reload were never due.
        if schedule
            .as_deref()
            .is_some_and(|s| s != c.schedule.source())
        {
            accounted = accounted.max(Utc::now());
        }
        schedule = Some(c.schedule.source().to_owned());
        let now = Utc::now();
        // The wall clock went back past fire times already run: waiting for it to reach them
        // again would stop collection for as long as the step. The schedule goes on from the
        // new time instead (fire times may then be run twice; the ledger notes the step).
        let behind = accounted - now;
        if behind > CLOCK_STEP_TOLERANCE {
            tracing::warn!(
                collector = %c.id,
                behind_ms = behind.num_milliseconds(),
                "the wall clock went back; the schedule goes on from the new time"
            );
            accounted = now;
        }
        let due = c.schedule.next_after(accounted).filter(|fire| *fire <= now);
        let Some(fire) = due else {
            // Not due yet, or never again under this schedule: sleep until it is (re-reading
            // the clock now and then), a run ends, or a new plan arrives.
            let wait = c
                .schedule
                .next_after(accounted)
                .map(|fire| (fire - now).to_std().unwrap_or_default().min(MAX_SLEEP));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait.unwrap_or(MAX_SLEEP)) => {}
                changed = plan_rx.changed(), if watching => watching = changed.is_ok(),
                Some(_) = runs.join_next(), if !runs.is_empty() => {}
            }
            continue;
        };
        if shutdown.is_cancelled() {
            break;
        }
        // Fire times that passed while this loop was not looking are missed, not silently lost.
        accounted = fire;
        if c.schedule.next_after(fire).is_some_and(|n| n < now) {
            let why =
                "the agent could not start it on time (suspended, overloaded, or the clock jumped)";
            match record_missed_between(&ctx, &plan, &c, fire, now, why).await {
                // Go on after the last fire time accounted for, so none is counted twice.
                Ok(last) => accounted = last.unwrap_or(fire),
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
            let entry = skipped_entry(&plan, &c, Trigger::Schedule, fire, reason);
            if let Err(e) = ctx.append(vec![entry]).await {
                tracing::error!(collector = %c.id, "cannot record a skipped run: {e:#}");
                ctx.fatal.cancel();
                break;
            }
            continue;
        }
        *in_flight.lock().unwrap_or_else(|p| p.into_inner()) = Some(fire);
        let (ctx2, flag) = (ctx.clone(), in_flight.clone());
        runs.spawn(async move {
            // Waiting for a permit still counts as running: the next fire time is skipped.
            let permit = tokio::select! {
                p = plan.permits.clone().acquire_owned() => p.ok(),
                () = ctx2.hard_stop.cancelled() => None,
            };
            // An error was logged and has stopped the daemon (ctx.fatal).
            let _ = run_once(&ctx2, plan.settings, &c, Trigger::Schedule, fire).await;
            drop(permit);
            *flag.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
    }
    while runs.join_next().await.is_some() {}
}
