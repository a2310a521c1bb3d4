//! The ledger's own thread. SQLite calls block, so the daemon never makes them on an async
//! worker: it sends closures to this thread and awaits their results. One thread also means one
//! writer, so appends are serialized without locks in the async code.

use crate::ledger::Ledger;
use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Ledger) + Send>;

/// A cloneable handle to the ledger thread. The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct LedgerHandle {
    jobs: mpsc::Sender<Job>,
}

#[derive(Debug, thiserror::Error)]
#[error("the ledger thread has stopped")]
pub struct LedgerGone;

impl LedgerHandle {
    /// Move `ledger` onto a new thread and return a handle plus the thread to join at shutdown.
    pub fn spawn(
        mut ledger: Ledger,
    ) -> std::io::Result<(LedgerHandle, std::thread::JoinHandle<()>)> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                for job in rx {
                    job(&mut ledger);
                }
            })?;
        Ok((LedgerHandle { jobs }, thread))
    }

    /// Run `f` on the ledger thread and await its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ledger) -> T + Send + 'static,
    ) -> Result<T, LedgerGone> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |ledger| {
                let _ = tx.send(f(ledger));
            }))
            .map_err(|_| LedgerGone)?;
        rx.await.map_err(|_| LedgerGone)
    }
}
