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
use crate::ledger::{Ledger, LedgerError};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
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

async fn healthz(State(health): State<Health>) -> axum::response::Response {
    if health.ctx.fatal.is_cancelled() {
        return unavailable(
            "unhealthy: the ledger could not record a run; the agent is stopping".into(),
        );
    }
    let answered = tokio::time::timeout(LEDGER_ANSWER, health.ctx.ledger.call(|_| ())).await;
    match answered {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => unavailable(format!("unhealthy: {e}")),
        Err(_) => unavailable(format!("unhealthy: {}", not_answering())),
    }
}

async fn metrics_page(State(health): State<Health>) -> impl IntoResponse {
    let location = health.sync_location.clone();
    let read = health.ctx.ledger.call(move |l| {
        ledger_gauges(l, location.as_deref())
            .map_err(|e| format!("cannot read the ledger {}: {e}", l.path().display()))
    });
    let gauges = match tokio::time::timeout(LEDGER_ANSWER, read).await {
        Ok(Ok(Ok(gauges))) => gauges,
        Ok(Ok(Err(e))) => return unavailable(e),
        Ok(Err(e)) => return unavailable(e.to_string()),
        Err(_) => return unavailable(not_answering()),
    };
    let collectors: Vec<String> = health
        .plan
        .borrow()
        .enabled()
        .map(|c| c.id.clone())
        .collect();
    let page = metrics::render(&health.ctx.metrics.counts(), &gauges, &collectors);
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], page).into_response()
}

/// What the ledger says now: its files' size and, with sync on, the backlog and last outcome.
fn ledger_gauges(l: &Ledger, location: Option<&str>) -> Result<LedgerGauges, LedgerError> {
    let ledger_bytes = l.file_bytes();
    let Some(location) = location else {
        return Ok(LedgerGauges {
            ledger_bytes,
            sync: None,
        });
    };
    let status = l.sync_status(location)?;
    let sync = SyncGauges {
        backlog_entries: l.size()?.saturating_sub(l.synced_size(location)?),
        last_success_at: parse_time(status.last_success_at.as_deref()),
        last_error_at: parse_time(status.last_error_at.as_deref()),
    };
    Ok(LedgerGauges {
        ledger_bytes,
        sync: Some(sync),
    })
}

fn not_answering() -> String {
    format!(
        "the ledger thread did not answer within {} s",
        LEDGER_ANSWER.as_secs()
    )
}

fn unavailable(why: String) -> axum::response::Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}

fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}
