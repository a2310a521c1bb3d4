//! What the daemon counts about itself, for `/metrics` (the Prometheus text exposition format,
//! version 0.0.4) and for the status line systemd shows: runs by collector and status since the
//! agent started, each collector's last successful run, the ledger's size, and the sync gauges
//! read from the ledger at each scrape.
//!
//! Counts live in memory and start at zero with the process, as Prometheus counters do; the last
//! success times are read from the ledger at start, so a restart does not make a collector look
//! as if it never succeeded.

use crate::statement::Status;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const STATUSES: [Status; 3] = [Status::Ok, Status::Failed, Status::Skipped];

/// The daemon's counters, updated after every append.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<Counts>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Runs recorded by this process, by collector and status.
    pub runs: BTreeMap<(String, &'static str), u64>,
    /// When each collector's last `ok` run finished (from the ledger, then from this process).
    pub last_success: BTreeMap<String, DateTime<Utc>>,
    /// Entries in the ledger.
    pub ledger_entries: u64,
}

/// What `/metrics` reads from the ledger at each scrape.
#[derive(Debug, Clone, Default)]
pub struct LedgerGauges {
    /// Bytes of the ledger's files (the database and its write-ahead log).
    pub ledger_bytes: u64,
    /// `None` when sync is off.
    pub sync: Option<SyncGauges>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncGauges {
    /// Entries in the ledger that S3's published checkpoint does not cover yet.
    pub backlog_entries: u64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
}

impl Metrics {
    /// Counters starting from what the ledger holds.
    pub fn new(last_success: BTreeMap<String, DateTime<Utc>>, ledger_entries: u64) -> Metrics {
        Metrics {
            state: Mutex::new(Counts {
                runs: BTreeMap::new(),
                last_success,
                ledger_entries,
            }),
        }
    }

    /// Count appended entries (collector, status, finished at); the tree now has `size` entries.
    pub fn appended(&self, entries: &[(String, Status, DateTime<Utc>)], size: u64) {
        let mut state = self.lock();
        for (collector, status, finished_at) in entries {
            *state
                .runs
                .entry((collector.clone(), status.as_str()))
                .or_default() += 1;
            if *status == Status::Ok {
                let last = state.last_success.entry(collector.clone()).or_default();
                *last = (*last).max(*finished_at);
            }
        }
        state.ledger_entries = state.ledger_entries.max(size);
    }

    pub fn counts(&self) -> Counts {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counters stay usable even if a thread panicked while holding them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Counts {
    /// One line for `systemctl status`: how much has run and failed since the start.
    pub fn status_line(&self, collectors: usize) -> String {
        let total: u64 = self.runs.values().sum();
        let failed: u64 = self
            .runs
            .iter()
            .filter(|((_, status), _)| *status == Status::Failed.as_str())
            .map(|(_, n)| n)
            .sum();
        format!(
            "{collectors} collectors scheduled; {total} runs recorded since start ({failed} failed); ledger {} entries",
            self.ledger_entries
        )
    }
}

/// The `/metrics` page. `collectors` are the configured ids: each gets a zero count for every
/// status it has not had yet, so that rates and alerts work from the first scrape.
pub fn render(counts: &Counts, gauges: &LedgerGauges, collectors: &[String]) -> String {
    let mut out = String::new();
    let mut runs = counts.runs.clone();
    for id in collectors {
        for status in STATUSES {
            runs.entry((id.clone(), status.as_str())).or_default();
        }
    }
    family(
        &mut out,
        "evidence_agent_runs_total",
        "counter",
        "Collector runs recorded since the agent started, by collector and status.",
    );
    for ((collector, status), n) in &runs {
        let labels = format!("collector=\"{}\",status=\"{status}\"", escape(collector));
        sample(&mut out, "evidence_agent_runs_total", &labels, *n as f64);
    }
    family(
        &mut out,
        "evidence_agent_last_success_timestamp_seconds",
        "gauge",
        "When the collector's last successful run finished, in Unix seconds.",
    );
    for (collector, at) in &counts.last_success {
        let labels = format!("collector=\"{}\"", escape(collector));
        let name = "evidence_agent_last_success_timestamp_seconds";
        sample(&mut out, name, &labels, unix_seconds(*at));
    }
    gauge(
        &mut out,
        "evidence_agent_ledger_entries",
        "Entries in the local ledger.",
        counts.ledger_entries as f64,
    );
    gauge(
        &mut out,
        "evidence_agent_ledger_bytes",
        "Size of the local ledger's files in bytes.",
        gauges.ledger_bytes as f64,
    );
    if let Some(sync) = &gauges.sync {
        gauge(
            &mut out,
            "evidence_agent_sync_backlog_entries",
            "Ledger entries not yet covered by the checkpoint published to S3.",
            sync.backlog_entries as f64,
        );
        if let Some(at) = sync.last_success_at {
            gauge(
                &mut out,
                "evidence_agent_sync_last_success_timestamp_seconds",
                "When the last sync to S3 succeeded, in Unix seconds.",
                unix_seconds(at),
            );
        }
        if let Some(at) = sync.last_error_at {
            gauge(
                &mut out,
                "evidence_agent_sync_last_error_timestamp_seconds",
                "When the last sync to S3 failed, in Unix seconds.",
                unix_seconds(at),
            );
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn unix_seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// A label value as the exposition format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().into()
    }

    #[test]
    fn counts_runs_and_keeps_the_latest_success() {
        let seeded = BTreeMap::from([("accounts".to_owned(), at("2026-11-20T00:00:00Z"))]);
        let metrics = Metrics::new(seeded, 10);
        metrics.appended(
            &[
                ("accounts".into(), Status::Ok, at("2026-11-24T01:00:00Z")),
                (
                    "accounts".into(),
                    Status::Failed,
                    at("2026-11-24T02:00:00Z"),
                ),
                ("logs".into(), Status::Skipped, at("2026-11-24T02:00:00Z")),
            ],
            13,
        );
        let counts = metrics.counts();
        assert_eq!(counts.runs[&("accounts".to_owned(), "ok")], 1);
        assert_eq!(counts.runs[&("accounts".to_owned(), "failed")], 1);
        assert_eq!(counts.last_success["accounts"], at("2026-11-24T01:00:00Z"));
        assert!(!counts.last_success.contains_key("logs"));
        assert_eq!(counts.ledger_entries, 13);
        assert_eq!(
            counts.status_line(2),
            "2 collectors scheduled; 3 runs recorded since start (1 failed); ledger 13 entries"
        );
    }

    #[test]
    fn renders_the_exposition_format_with_zeroes_for_configured_collectors() {
        let metrics = Metrics::new(BTreeMap::new(), 0);
        metrics.appended(
            &[("a\"b".into(), Status::Ok, at("2026-11-24T00:00:01.5Z"))],
            1,
        );
        let gauges = LedgerGauges {
            ledger_bytes: 4096,
            sync: Some(SyncGauges {
                backlog_entries: 1,
                last_success_at: None,
                last_error_at: Some(at("2026-11-24T00:00:00Z")),
            }),
        };
        let page = render(&metrics.counts(), &gauges, &["idle".to_owned()]);
        for line in [
            "# TYPE evidence_agent_runs_total counter",
            "evidence_agent_runs_total{collector=\"a\\\"b\",status=\"ok\"} 1",
            "evidence_agent_runs_total{collector=\"idle\",status=\"failed\"} 0",
            "evidence_agent_last_success_timestamp_seconds{collector=\"a\\\"b\"} 1795478401.5",
            "evidence_agent_ledger_entries 1",
            "evidence_agent_ledger_bytes 4096",
            "evidence_agent_sync_backlog_entries 1",
            "evidence_agent_sync_last_error_timestamp_seconds 1795478400",
        ] {
            assert!(page.lines().any(|l| l == line), "{line:?} not in\n{page}");
        }
        assert!(!page.contains("sync_last_success"), "{page}");
    }
}
