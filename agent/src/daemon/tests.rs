//! Scheduler and runner behaviour on a real ledger file, with test collectors whose progress the
//! test controls (a gate), so that no assertion depends on how fast the machine is.

use super::metrics::Metrics;
use super::runner::{run_once, RunContext, RunSettings};
use super::scheduler::{Plan, Scheduler, MISSED_ONE_BY_ONE};
use super::LedgerHandle;
use crate::config::CollectorConfig;
use crate::ledger::{Ledger, NewEntry, Outcome};
use crate::schedule::Schedule;
use crate::statement::{self, Status, Trigger};
use crate::tlog::note::NoteSigner;
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use collectors::{CollectContext, CollectError, Collector, Content, Snapshot};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Waits for the gate to open, then returns a tiny snapshot; or panics / fails on request.
#[derive(Debug, Default)]
struct Gated {
    gate: Arc<Notify>,
    started: Arc<Notify>,
    panic: bool,
}

#[async_trait::async_trait]
impl Collector for Gated {
    fn kind(&self) -> &'static str {
        "gated"
    }
    async fn collect(&self, _ctx: CollectContext) -> Result<Snapshot, CollectError> {
        self.started.notify_one();
        self.gate.notified().await;
        if self.panic {
            panic!("collector bug");
        }
        Ok(empty_snapshot())
    }
}

fn empty_snapshot() -> Snapshot {
    Snapshot {
        content: Content::from_bytes(b"{\"items\":[]}".to_vec()),
        media_type: collectors::MEDIA_TYPE_JSON,
        item_count: 0,
        cursor: None,
        details: serde_json::Value::Null,
    }
}

fn collector(id: &str, schedule: &str, timeout: Duration, c: Gated) -> Arc<CollectorConfig> {
    collector_of(id, schedule, timeout, Arc::new(c))
}

fn collector_of(
    id: &str,
    schedule: &str,
    timeout: Duration,
    collector: Arc<dyn Collector>,
) -> Arc<CollectorConfig> {
    Arc::new(CollectorConfig {
        id: id.into(),
        kind: collector.kind().into(),
        schedule: Schedule::parse(schedule).unwrap(),
        timeout,
        enabled: true,
        collector,
    })
}

/// Returns an empty snapshot at once.
#[derive(Debug)]
struct Quick;

#[async_trait::async_trait]
impl Collector for Quick {
    fn kind(&self) -> &'static str {
        "quick"
    }
    async fn collect(&self, _ctx: CollectContext) -> Result<Snapshot, CollectError> {
        Ok(empty_snapshot())
    }
}

/// Wait until `done` holds for the ledger's statements, looking again after every append
/// (`RunContext::append` wakes `appended`); a minute without it holding fails the test.
async fn wait_for(ctx: &RunContext, what: &str, done: impl Fn(&[statement::Statement]) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while !done(&statements(ctx).await) {
            ctx.appended.notified().await;
        }
    })
    .await;
    if waited.is_err() {
        panic!("timed out waiting for {what}: {:#?}", statements(ctx).await);
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: Arc<RunContext>,
    settings: RunSettings,
    _thread: std::thread::JoinHandle<()>,
}

fn fixture() -> Fixture {
    fixture_with_disk_floor(0)
}

fn fixture_with_disk_floor(min_free_disk: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::new(
        "evidence-agent/sched-host",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite"), "sched-host", signer).unwrap();
    let (handle, thread) = LedgerHandle::spawn(ledger).unwrap();
    let ctx = Arc::new(RunContext {
        ledger: handle,
        spool_dir: dir.path().join("spool"),
        redaction_salt: [0; 32],
        protected_paths: vec![dir.path().to_owned()],
        hard_stop: CancellationToken::new(),
        fatal: CancellationToken::new(),
        data_dir: dir.path().to_owned(),
        appended: Arc::new(tokio::sync::Notify::new()),
        metrics: Arc::new(Metrics::default()),
    });
    Fixture {
        _dir: dir,
        ctx,
        settings: RunSettings {
            config_sha256: [0; 32],
            min_free_disk,
        },
        _thread: thread,
    }
}

/// A scheduler of `collectors` over the fixture's ledger, with `permits` concurrent runs, and
/// the sender that reloads it.
fn scheduler_of(
    f: &Fixture,
    collectors: Vec<Arc<CollectorConfig>>,
    permits: usize,
) -> (Scheduler, watch::Sender<Arc<Plan>>) {
    let (tx, rx) = watch::channel(Arc::new(Plan::with(collectors, f.settings, permits)));
    let s = Scheduler {
        ctx: f.ctx.clone(),
        plan: rx,
    };
    (s, tx)
}

/// A scheduler of one collector over the fixture's ledger, with `permits` concurrent runs.
fn scheduler(f: &Fixture, c: Arc<CollectorConfig>, permits: usize) -> Scheduler {
    scheduler_of(f, vec![c], permits).0
}

async fn statements(ctx: &RunContext) -> Vec<statement::Statement> {
    ctx.ledger
        .call(|l| {
            l.entries(0, u64::MAX)
                .unwrap()
                .iter()
                .map(|e| statement::read_unverified(&e.envelope).unwrap())
                .collect()
        })
        .await
        .unwrap()
}

async fn seed_scheduled_run(ctx: &RunContext, id: &str, at: chrono::DateTime<Utc>) {
    let entry = NewEntry {
        collector_id: id.into(),
        kind: "gated".into(),
        trigger: Trigger::Schedule,
        scheduled_for: at,
        started_at: at,
        finished_at: at,
        config_sha256: [0; 32],
        schedule: None,
        outcome: Outcome::Failed("seed".into()),
    };
    ctx.ledger
        .call(move |l| l.append(vec![entry]))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn runs_missed_while_down_are_recorded_as_skipped() {
    let f = fixture();
    let last = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
    seed_scheduled_run(&f.ctx, "every15", last).await;
    let s = scheduler(
        &f,
        collector(
            "every15",
            "*/15 * * * *",
            Duration::from_secs(5),
            Gated::default(),
        ),
        1,
    );
    s.record_missed(last + ChronoDuration::minutes(61))
        .await
        .unwrap();
    let st = statements(&f.ctx).await;
    let missed: Vec<_> = st
        .iter()
        .filter(|s| s.predicate.trigger == Trigger::Missed)
        .collect();
    let times: Vec<_> = missed
        .iter()
        .map(|s| s.predicate.scheduled_for.as_str())
        .collect();
    assert_eq!(
        times,
        [
            "2026-03-01T10:15:00Z",
            "2026-03-01T10:30:00Z",
            "2026-03-01T10:45:00Z",
            "2026-03-01T11:00:00Z"
        ]
    );
    assert!(missed.iter().all(|s| s.predicate.status == Status::Skipped
        && s.predicate
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not running"))));

    // Starting again right away finds nothing more to record.
    s.record_missed(last + ChronoDuration::minutes(61))
        .await
        .unwrap();
    assert_eq!(statements(&f.ctx).await.len(), st.len());
}

#[tokio::test]
async fn a_long_outage_is_summarized_in_one_entry() {
    let f = fixture();
    let last = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    seed_scheduled_run(&f.ctx, "minutely", last).await;
    let s = scheduler(
        &f,
        collector(
            "minutely",
            "* * * * *",
            Duration::from_secs(5),
            Gated::default(),
        ),
        1,
    );
    // Three days down: 4319 missed minutes, more than are recorded one by one.
    const _: () = assert!(4319 > MISSED_ONE_BY_ONE);
    s.record_missed(last + ChronoDuration::days(3))
        .await
        .unwrap();
    let st = statements(&f.ctx).await;
    assert_eq!(st.len(), 2);
    let summary = &st[1].predicate;
    assert_eq!(summary.trigger, Trigger::Missed);
    assert!(
        summary
            .error
            .as_deref()
            .unwrap()
            .starts_with("4319 runs missed"),
        "{:?}",
        summary.error
    );
    assert_eq!(summary.scheduled_for, "2026-03-03T23:59:00Z");
}

#[tokio::test]
async fn a_run_over_its_timeout_is_a_failed_entry() {
    let f = fixture();
    let c = collector(
        "slow",
        "@daily",
        Duration::from_millis(50),
        Gated::default(),
    );
    let r = run_once(&f.ctx, f.settings, &c, Trigger::Manual, Utc::now())
        .await
        .unwrap();
    assert_eq!(r.status, "failed");
    assert_eq!(r.error.as_deref(), Some("timed out after 50ms"));
    let st = statements(&f.ctx).await;
    assert_eq!(st[0].predicate.status, Status::Failed);
    assert_eq!(st[0].predicate.trigger, Trigger::Manual);
}

#[tokio::test]
async fn below_the_disk_floor_runs_are_failed_entries_and_the_collector_is_not_called() {
    let f = fixture_with_disk_floor(u64::MAX);
    let gated = Gated::default();
    let started = gated.started.clone();
    let c = collector("paused", "@daily", Duration::from_secs(30), gated);
    let r = run_once(&f.ctx, f.settings, &c, Trigger::Manual, Utc::now())
        .await
        .unwrap();
    assert_eq!(r.status, "failed");
    let error = r.error.unwrap();
    assert!(error.starts_with("collection paused: "), "{error}");
    assert!(error.contains("below min_free_disk_mib"), "{error}");
    let st = statements(&f.ctx).await;
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].predicate.status, Status::Failed);
    // The collector never started: its `started` signal holds no permit.
    assert!(
        tokio::time::timeout(Duration::from_millis(10), started.notified())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_panicking_collector_is_a_failed_entry() {
    let f = fixture();
    let gated = Gated {
        panic: true,
        ..Gated::default()
    };
    let gate = gated.gate.clone();
    gate.notify_one();
    let c = collector("buggy", "@daily", Duration::from_secs(30), gated);
    let r = run_once(&f.ctx, f.settings, &c, Trigger::Manual, Utc::now())
        .await
        .unwrap();
    assert_eq!(r.status, "failed");
    assert!(r.error.unwrap().contains("panicked"));
}

#[tokio::test]
async fn a_fire_time_during_a_run_is_skipped_and_shutdown_records_the_unfinished_run() {
    let f = fixture();
    let gated = Gated::default();
    let started = gated.started.clone();
    // Every second; the first run blocks on its gate until the end of the test.
    let c = collector("busy", "* * * * * *", Duration::from_secs(600), gated);
    let s = scheduler(&f, c, 2);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(s.run(Utc::now(), shutdown.clone()));
    started.notified().await;
    wait_for(&f.ctx, "a skip of the busy collector", |st| {
        st.iter().any(|s| s.predicate.status == Status::Skipped)
    })
    .await;
    shutdown.cancel();
    f.ctx.hard_stop.cancel();
    task.await.unwrap();
    let st = statements(&f.ctx).await;
    let skip = st
        .iter()
        .find(|s| s.predicate.status == Status::Skipped)
        .unwrap();
    assert!(skip
        .predicate
        .error
        .as_deref()
        .unwrap()
        .contains("still running"));
    assert_eq!(skip.predicate.trigger, Trigger::Schedule);
    let last = st.last().unwrap();
    assert_eq!(last.predicate.status, Status::Failed);
    assert!(last
        .predicate
        .error
        .as_deref()
        .unwrap()
        .contains("shut down"));
}

#[tokio::test]
async fn a_run_interrupted_by_a_crash_is_recorded_as_failed_at_the_next_start() {
    let f = fixture();
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
    // The run at 10:00 started; a skip for 10:10 was committed while it ran; then the agent died.
    f.ctx
        .ledger
        .call(move |l| l.begin_run("slow", "gated", Trigger::Schedule, at))
        .await
        .unwrap()
        .unwrap();
    seed_scheduled_run(&f.ctx, "slow", at + ChronoDuration::minutes(10)).await;
    let s = scheduler(
        &f,
        collector(
            "slow",
            "*/10 * * * *",
            Duration::from_secs(5),
            Gated::default(),
        ),
        1,
    );
    s.record_missed(at + ChronoDuration::minutes(15))
        .await
        .unwrap();
    let st = statements(&f.ctx).await;
    let interrupted: Vec<_> = st
        .iter()
        .filter(|s| s.predicate.scheduled_for == "2026-03-01T10:00:00Z")
        .collect();
    assert_eq!(interrupted.len(), 1, "{st:?}");
    assert_eq!(interrupted[0].predicate.status, Status::Failed);
    assert!(interrupted[0]
        .predicate
        .error
        .as_deref()
        .unwrap()
        .contains("stopped before the run finished"));
    assert!(f
        .ctx
        .ledger
        .call(|l| l.pending_runs())
        .await
        .unwrap()
        .unwrap()
        .is_empty());
    // A second start records nothing more.
    s.record_missed(at + ChronoDuration::minutes(15))
        .await
        .unwrap();
    assert_eq!(statements(&f.ctx).await.len(), st.len());
}

#[tokio::test]
async fn a_completed_run_leaves_nothing_pending() {
    let f = fixture();
    let gated = Gated::default();
    gated.gate.notify_one();
    let c = collector("quick", "@daily", Duration::from_secs(30), gated);
    let r = run_once(&f.ctx, f.settings, &c, Trigger::Manual, Utc::now())
        .await
        .unwrap();
    assert_eq!(r.status, "ok");
    assert!(f
        .ctx
        .ledger
        .call(|l| l.pending_runs())
        .await
        .unwrap()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_new_plan_starts_added_collectors_and_retires_dropped_ones_without_overlapping_runs() {
    let f = fixture();
    let gated = Gated::default();
    let (gate, started) = (gated.gate.clone(), gated.started.clone());
    let slow = collector("slow", "* * * * * *", Duration::from_secs(600), gated);
    let quick = collector_of(
        "quick",
        "* * * * * *",
        Duration::from_secs(5),
        Arc::new(Quick),
    );
    let (s, plans) = scheduler_of(&f, vec![slow.clone()], 4);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(s.run(Utc::now(), shutdown.clone()));
    started.notified().await;

    // Reload: `slow` dropped while its run is going, `quick` added under a new configuration.
    let reloaded = RunSettings {
        config_sha256: [7; 32],
        ..f.settings
    };
    let plan = |collectors| Arc::new(Plan::with(collectors, reloaded, 4));
    plans.send_replace(plan(vec![quick.clone()]));
    let of = |st: &[statement::Statement], id: &str| -> Vec<statement::Statement> {
        st.iter()
            .filter(|s| s.predicate.collector.id == id)
            .cloned()
            .collect()
    };
    wait_for(&f.ctx, "two runs of the added collector", |st| {
        of(st, "quick").len() >= 2
    })
    .await;
    // While dropped, `slow` is owed nothing: its run goes on, no entry of it is made.
    assert!(of(&statements(&f.ctx).await, "slow").is_empty());
    // It comes back while that run still goes: from then on its fire times are skipped (never a
    // second run at once), under the new configuration.
    plans.send_replace(plan(vec![quick.clone(), slow.clone()]));
    let still_running = |s: &statement::Statement| {
        s.predicate.status == Status::Skipped
            && s.predicate
                .error
                .as_deref()
                .is_some_and(|e| e.contains("still running"))
    };
    wait_for(&f.ctx, "skips of slow's fire times", |st| {
        of(st, "slow").iter().filter(|s| still_running(s)).count() >= 2
    })
    .await;
    gate.notify_one();
    started.notified().await;
    let st = statements(&f.ctx).await;
    let slow_runs = of(&st, "slow");
    let ok: Vec<_> = slow_runs
        .iter()
        .filter(|s| s.predicate.status == Status::Ok)
        .collect();
    assert_eq!(ok.len(), 1, "{slow_runs:#?}");
    assert!(slow_runs
        .iter()
        .all(|s| s.predicate.status == Status::Ok || still_running(s)));
    // The run started before the reload records the configuration it started under.
    assert_eq!(ok[0].predicate.config_sha256, hex::encode([0u8; 32]));
    let new_config = |s: &statement::Statement| s.predicate.config_sha256 == hex::encode([7u8; 32]);
    assert!(slow_runs
        .iter()
        .filter(|s| still_running(s))
        .all(new_config));
    assert!(of(&st, "quick").iter().all(new_config));

    // Dropped for good: its loop ends with its run, and nothing more of it is recorded.
    plans.send_replace(plan(vec![quick.clone()]));
    gate.notify_one();
    let ok_runs = |st: &[statement::Statement]| {
        of(st, "slow")
            .iter()
            .filter(|s| s.predicate.status == Status::Ok)
            .count()
    };
    wait_for(&f.ctx, "the second run of slow", |st| ok_runs(st) == 2).await;
    let st = statements(&f.ctx).await;
    let (slow_before, quick_before) = (of(&st, "slow").len(), of(&st, "quick").len());
    wait_for(&f.ctx, "quick to go on", |st| {
        of(st, "quick").len() >= quick_before + 2
    })
    .await;
    assert_eq!(of(&statements(&f.ctx).await, "slow").len(), slow_before);
    shutdown.cancel();
    task.await.unwrap();
}
