//! Schedule coverage: did each collector run every time its schedule said it would?
//!
//! Every entry carries the schedule in force when it ran (signed). A collector's expected runs
//! are its schedule's fire times from its first run in the period up to the cutoff (the end
//! of the period, or the export time if that is earlier), each schedule applying from the run
//! that recorded it to the next run. Before its first run a collector did not exist yet: a
//! restarted agent records every fire time it missed as a `skipped` entry (trigger `missed`),
//! so downtime shows as entries, and only runs that left no entry at all are **gaps**.
//! Manual runs are shown but neither fill nor create expected slots.

use super::hostlog::HostLog;
use super::layout::Period;
use super::population::in_period;
use crate::schedule::Schedule;
use crate::statement::{Status, Trigger};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// Expected runs checked at most per collector; a schedule firing more often over the period
/// is reported as not checked rather than using unbounded memory.
pub const MAX_EXPECTED: usize = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStatus {
    Ok,
    Failed,
    Skipped,
    Missing,
}

/// One expected run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub at: DateTime<Utc>,
    pub status: SlotStatus,
}

/// Consecutive expected runs with no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub runs: u64,
}

/// The coverage of one collector.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub host: String,
    pub collector: String,
    /// The schedules seen, in the order they applied.
    pub schedules: Vec<String>,
    /// Expected runs are counted in `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub slots: Vec<Slot>,
    pub gaps: Vec<Gap>,
    /// Manual runs in the period (not part of the schedule).
    pub manual: Vec<(DateTime<Utc>, Status)>,
    /// Why coverage could not be checked, when it could not.
    pub unchecked: Option<String>,
}

impl Coverage {
    pub fn count(&self, status: SlotStatus) -> usize {
        self.slots.iter().filter(|s| s.status == status).count()
    }
}

/// The coverage of every collector of `log` in `period` (collectors in `filter`, or all), up
/// to `cutoff`, ordered by collector id.
pub fn compute(
    log: &HostLog,
    period: &Period,
    filter: &[String],
    cutoff: DateTime<Utc>,
) -> Vec<Coverage> {
    let end = cutoff.min(period.to);
    let mut runs: std::collections::BTreeMap<&str, Vec<(DateTime<Utc>, &_)>> = Default::default();
    for (e, t) in in_period(log, period, filter) {
        runs.entry(e.collector())
            .or_default()
            .push((t, &e.statement.predicate));
    }
    runs.into_iter()
        .map(|(collector, mut runs)| {
            runs.sort_by_key(|(t, _)| *t);
            let mut c = Coverage {
                host: log.host.clone(),
                collector: collector.to_owned(),
                schedules: Vec::new(),
                from: runs[0].0,
                to: end.max(runs[0].0),
                slots: Vec::new(),
                gaps: Vec::new(),
                manual: Vec::new(),
                unchecked: None,
            };
            let mut seen: HashMap<DateTime<Utc>, Status> = HashMap::new();
            for (t, p) in &runs {
                if p.trigger == Trigger::Manual {
                    c.manual.push((*t, p.status));
                    continue;
                }
                // Of two entries for one fire time (a retry after a crash), the best counts.
                let rank = |s: Status| match s {
                    Status::Ok => 2,
                    Status::Failed => 1,
                    Status::Skipped => 0,
                };
                seen.entry(*t)
                    .and_modify(|s| {
                        if rank(p.status) > rank(*s) {
                            *s = p.status
                        }
                    })
                    .or_insert(p.status);
            }
            // Each schedule applies from the run that recorded it until the next run.
            let mut spans: Vec<(DateTime<Utc>, &str)> = Vec::new();
            for (t, p) in &runs {
                if let Some(s) = p.schedule.as_deref() {
                    if spans.last().map(|(_, last)| *last) != Some(s) {
                        spans.push((*t, s));
                        c.schedules.push(s.to_owned());
                    }
                }
            }
            if spans.is_empty() {
                c.unchecked = Some("its runs record no schedule".into());
                return c;
            }
            for (i, (start, expr)) in spans.iter().enumerate() {
                let stop = spans.get(i + 1).map_or(c.to, |(t, _)| *t).min(c.to);
                let schedule = match Schedule::parse(expr) {
                    Ok(s) => s,
                    Err(e) => {
                        c.unchecked = Some(format!("schedule {expr:?} is not understood: {e}"));
                        c.slots.clear();
                        return c;
                    }
                };
                for at in schedule
                    .between(*start - Duration::milliseconds(1), stop)
                    .take_while(|t| *t < stop)
                {
                    if c.slots.len() >= MAX_EXPECTED {
                        c.unchecked = Some(format!(
                            "more than {MAX_EXPECTED} runs were expected in the period"
                        ));
                        c.slots.clear();
                        return c;
                    }
                    let status = match seen.get(&at) {
                        Some(Status::Ok) => SlotStatus::Ok,
                        Some(Status::Failed) => SlotStatus::Failed,
                        Some(Status::Skipped) => SlotStatus::Skipped,
                        None => SlotStatus::Missing,
                    };
                    c.slots.push(Slot { at, status });
                }
            }
            c.gaps = gaps(&c.slots);
            c
        })
        .collect()
}

fn gaps(slots: &[Slot]) -> Vec<Gap> {
    let mut out: Vec<Gap> = Vec::new();
    let mut open = false;
    for s in slots {
        match (s.status == SlotStatus::Missing, open, out.last_mut()) {
            (true, true, Some(g)) => {
                g.last = s.at;
                g.runs += 1;
            }
            (true, _, _) => {
                out.push(Gap {
                    first: s.at,
                    last: s.at,
                    runs: 1,
                });
                open = true;
            }
            (false, _, _) => open = false,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::hostlog::{LogEntry, SignedCheckpoint};
    use crate::statement::{CollectorRef, SnapshotPredicate, Statement};
    use crate::tlog::note::Checkpoint;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::hours(h)
    }

    fn entry(index: u64, at: DateTime<Utc>, schedule: &str, trigger: Trigger) -> LogEntry {
        let predicate = SnapshotPredicate {
            host: "h".into(),
            collector: CollectorRef {
                id: "c".into(),
                kind: "files".into(),
            },
            log_index: index,
            trigger,
            scheduled_for: crate::ledger::timestamp(at),
            started_at: crate::ledger::timestamp(at),
            finished_at: crate::ledger::timestamp(at),
            status: Status::Ok,
            error: None,
            content_size: 0,
            media_type: "application/json".into(),
            item_count: 0,
            agent_version: "0".into(),
            config_sha256: String::new(),
            schedule: Some(schedule.into()),
            details: serde_json::Value::Null,
        };
        LogEntry {
            index,
            envelope: Vec::new(),
            statement: Statement::new("c", "00", predicate),
            proof: Vec::new(),
        }
    }

    fn log(entries: Vec<LogEntry>) -> HostLog {
        let checkpoint = Checkpoint {
            origin: "evidence-agent/h".into(),
            size: entries.len() as u64,
            root: [0; 32],
            extensions: Vec::new(),
        };
        HostLog {
            host: "h".into(),
            source: "ledger".into(),
            vkey: String::new(),
            start: None,
            end: SignedCheckpoint {
                note: String::new(),
                checkpoint,
            },
            entries,
            consistency: Vec::new(),
        }
    }

    #[test]
    fn a_schedule_change_applies_from_the_run_that_recorded_it() {
        // Hourly for hours 0-3, then every 2 hours from hour 4; hour 2 and hour 8 are missing,
        // and a manual run at hour 8 does not fill the scheduled slot.
        let entries = vec![
            entry(0, t(0), "0 * * * *", Trigger::Schedule),
            entry(1, t(1), "0 * * * *", Trigger::Schedule),
            entry(2, t(3), "0 * * * *", Trigger::Schedule),
            entry(3, t(4), "0 */2 * * *", Trigger::Schedule),
            entry(4, t(6), "0 */2 * * *", Trigger::Missed),
            entry(5, t(8), "0 */2 * * *", Trigger::Manual),
            entry(6, t(10), "0 */2 * * *", Trigger::Schedule),
        ];
        let period = Period {
            from: t(0),
            to: t(11),
        };
        let c = &compute(&log(entries), &period, &[], t(100))[0];
        assert_eq!(c.schedules, vec!["0 * * * *", "0 */2 * * *"]);
        let expected: Vec<DateTime<Utc>> = [0, 1, 2, 3, 4, 6, 8, 10].map(t).to_vec();
        assert_eq!(c.slots.iter().map(|s| s.at).collect::<Vec<_>>(), expected);
        assert_eq!(
            c.gaps,
            vec![
                Gap {
                    first: t(2),
                    last: t(2),
                    runs: 1
                },
                Gap {
                    first: t(8),
                    last: t(8),
                    runs: 1
                }
            ]
        );
        assert_eq!(c.manual.len(), 1);
        // The cutoff (export time) ends the expected runs.
        let early = &compute(
            &log(vec![entry(0, t(0), "0 * * * *", Trigger::Schedule)]),
            &period,
            &[],
            t(3),
        )[0];
        assert_eq!(early.slots.len(), 3);
        assert_eq!(early.gaps[0].runs, 2);
    }
}
