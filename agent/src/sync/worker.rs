//! The daemon's sync loop: a pass after every append and on a timer, backoff after failures.
//!
//! Collection never waits on it: appends only wake it. While S3 is unreachable the backlog stays
//! in the ledger (bounded by the disk-space floor, not by memory) and drains once S3 answers.

use super::backoff::Backoff;
use super::{SyncError, Syncer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A pass runs at least this often, even without appends, so S3 is compared with the ledger
/// while the host is idle too.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// The first delay after a failed pass; it doubles up to [`BACKOFF_CAP`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(120);

/// Run sync passes until `shutdown`. Returns an error only when S3 shows the local ledger was
/// rolled back or replaced ([`SyncError::Refused`]): the daemon must then stop.
pub async fn run_worker(
    syncer: Arc<Syncer>,
    appended: Arc<Notify>,
    shutdown: CancellationToken,
) -> Result<(), SyncError> {
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_CAP);
    loop {
        let result = tokio::select! {
            r = syncer.sync_once() => r,
            () = shutdown.cancelled() => return Ok(()),
        };
        let error = result.as_ref().err().map(ToString::to_string);
        let location = syncer.location().to_owned();
        if let Err(e) = syncer
            .with_ledger(move |l| l.record_sync_attempt(&location, error.as_deref()))
            .await
        {
            tracing::warn!("cannot record the sync outcome: {e}");
        }
        let delay = match result {
            Ok(report) => {
                if backoff.failures() > 0 {
                    tracing::info!(
                        failed_attempts = backoff.failures(),
                        "sync to {} works again",
                        syncer.location()
                    );
                }
                backoff.reset();
                if report.uploaded > 0 {
                    tracing::info!(
                        objects = report.uploaded,
                        bytes = report.uploaded_bytes,
                        tree_size = report.size,
                        "synced to {}",
                        syncer.location()
                    );
                }
                None
            }
            Err(e @ SyncError::Refused(_)) => {
                tracing::error!("{e}");
                return Err(e);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                let log = format!(
                    "sync to {} failed (attempt {}), next try in {:.1}s: {e}",
                    syncer.location(),
                    backoff.failures(),
                    delay.as_secs_f64()
                );
                if matches!(e, SyncError::Conflicts { .. }) {
                    tracing::error!("{log}");
                } else {
                    tracing::warn!("{log}");
                }
                Some(delay)
            }
        };
        match delay {
            None => tokio::select! {
                () = appended.notified() => {}
                () = tokio::time::sleep(SYNC_INTERVAL) => {}
                () = shutdown.cancelled() => return Ok(()),
            },
            Some(delay) => tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return Ok(()),
            },
        }
    }
}
