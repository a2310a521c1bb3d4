//! The optional HTTP listener (`metrics_listen`, loopback only): `/healthz` for liveness checks
//! and `/metrics` for Prometheus.
//!
//! `/healthz` answers 200 when the ledger thread answers within [`LEDGER_ANSWER`] and the daemon
//! has not hit a fatal error, 503 with the reason otherwise. `/metrics` adds to the in-memory
//! counters what the ledger says at the moment of the scrape (its files' size, the sync backlog
//! and outcome), read on the ledger thread.

use super::metrics::{self, LedgerGauges, SyncGauges};
use super::runner::RunContext;
use super::scheduler::Plan;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long `/healthz` and `/metrics` wait for the ledger thread.
const LEDGER_ANSWER: Duration = Duration::from_secs(5);

/// What the handlers read.
#[derive(Clone)]
pub struct Health {
    pub ctx: Arc<RunContext>,
    pub plan: watch::Receiver<Arc<Plan>>,
    /// The S3 location synced to, if sync is on.
    pub sync_location: Option<String>,
}

/// Serve on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, health: Health, shutdown: CancellationToken) {
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics_page))
        .with_state(health);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!("the metrics listener stopped: {e}");
    }
}

async fn healthz(State(health): State<Health>) -> impl IntoResponse {
    if health.ctx.fatal.is_cancelled() {
        let why = "unhealthy: the ledger could not record a run; the agent is stopping\n";
        return (StatusCode::SERVICE_UNAVAILABLE, why);
    }
    let answered = tokio::time::timeout(LEDGER_ANSWER, health.ctx.ledger.call(|_| ())).await;
    match answered {
        Ok(Ok(())) => (StatusCode::OK, "ok\n"),
        Ok(Err(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: the ledger thread has stopped\n",
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: the ledger thread did not answer within 5 s\n",
        ),
    }
}

async fn metrics_page(State(health): State<Health>) -> impl IntoResponse {
    let location = health.sync_location.clone();
    let read = health.ctx.ledger.call(move |l| -> anyhow::Result<_> {
        let path = l.path();
        let ledger_bytes = file_size(path) + file_size(&wal_path(path));
        let Some(location) = location else {
            return Ok(LedgerGauges {
                ledger_bytes,
                sync: None,
            });
        };
        let backlog = l.size()?.saturating_sub(l.synced_size(&location)?);
        let status = l.sync_status(&location)?;
        let sync = SyncGauges {
            backlog_entries: backlog,
            last_success_at: parse_time(status.last_success_at.as_deref()),
            last_error_at: parse_time(status.last_error_at.as_deref()),
        };
        Ok(LedgerGauges {
            ledger_bytes,
            sync: Some(sync),
        })
    });
    let gauges = match tokio::time::timeout(LEDGER_ANSWER, read).await {
        Ok(Ok(Ok(gauges))) => gauges,
        Ok(Ok(Err(e))) => return unavailable(format!("cannot read the ledger: {e:#}")),
        Ok(Err(e)) => return unavailable(format!("cannot read the ledger: {e}")),
        Err(_) => return unavailable("the ledger thread did not answer within 5 s".into()),
    };
    let collectors: Vec<String> = health
        .plan
        .borrow()
        .collectors
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.id.clone())
        .collect();
    let page = metrics::render(&health.ctx.metrics.counts(), &gauges, &collectors);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
    )
        .into_response()
}

fn unavailable(why: String) -> axum::response::Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}

fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn wal_path(ledger: &std::path::Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
