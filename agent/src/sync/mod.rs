//! Sync: the ledger copied to S3 as C2SP tlog-tiles (DESIGN.md §3 "S3 layout"), write-once.
//!
//! One pass ([`Syncer::sync_once`]) first anchors: it reads S3's `checkpoint` and refuses to go
//! on ([`SyncError::Refused`]) if S3's tree is larger than the local one or not consistent with
//! it, because then the local ledger was rolled back or replaced. It then uploads the ledger's
//! [`SyncPlan`] stage by stage — key and blobs, tiles and entry bundles, `checkpoints/<size>` —
//! with bounded concurrency, records every object S3 confirmed, and moves the mutable
//! `checkpoint` last. So S3 never shows a checkpoint whose tiles or content it lacks, and an
//! interrupted pass resumes where it stopped.
//!
//! The daemon runs passes in [`worker::run_worker`] (after each append, on a timer, with backoff
//! after failures); `evidence-agent sync` runs one in the foreground. SQLite calls run on the
//! blocking pool through a connection of the syncer's own, so collection never waits on S3.

pub mod backoff;
pub mod store;
pub mod worker;

use crate::config::{Config, S3Config};
use crate::ledger::sync_state::{ObjectSource, PendingObject, SyncPlan, Upload, POINTER_KEY};
use crate::ledger::{Ledger, LedgerError};
use crate::tlog::merkle;
use crate::tlog::note::{Checkpoint, NoteSigner, NoteVerifier};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
pub use store::{HostStore, PutOutcome, StoreError};
use tokio::task::JoinSet;

/// Uploads in flight at once.
pub const UPLOAD_CONCURRENCY: usize = 8;
/// Confirmed uploads are recorded in the ledger in batches of this many (and at every stage's
/// end): an upload confirmed but not yet recorded is only put again, and found identical.
const RECORD_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The local ledger is behind S3 or forked from it: nothing may be uploaded or collected.
    #[error("{0}")]
    Refused(String),
    /// S3's `checkpoint` is not a checkpoint of this host's log (not text, not signed by the
    /// host key, another origin): an alarm; sync waits for someone to look, collection goes on.
    #[error("{0}")]
    Untrusted(String),
    /// Another process syncs this ledger already.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{count} object(s) in S3 hold other bytes than the ledger (first: {first}); S3's checkpoint is not moved past them")]
    Conflicts { count: usize, first: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("sync task failed: {0}")]
    Task(String),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Objects S3 stored in this pass (the `checkpoint` pointer included).
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// Write-once objects S3 already held with the same bytes (an earlier, unrecorded upload).
    pub already_there: usize,
    /// The tree size S3's `checkpoint` now shows.
    pub size: u64,
}

/// `s3://<bucket>/<prefix>/<host-id>/`: where `host_id`'s log lives under `config`.
pub fn location(config: &S3Config, host_id: &str) -> String {
    format!(
        "s3://{}/{}",
        config.bucket,
        store::host_base(config, host_id)
    )
}

/// Held while a process syncs a data directory: the daemon and `evidence-agent sync` must not
/// both move S3's `checkpoint` (an older pass finishing last would set it back).
#[derive(Debug)]
pub struct SyncLock {
    _file: std::fs::File,
}

/// Take the sync lock of `data_dir` (`sync.lock`, an advisory `flock` the kernel releases when
/// the process dies), or say who holds it.
pub fn lock(data_dir: &std::path::Path) -> Result<SyncLock, SyncError> {
    use std::os::unix::io::AsRawFd;
    let path = data_dir.join("sync.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SyncError::Busy(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        let why = if e.kind() == std::io::ErrorKind::WouldBlock {
            "another evidence-agent process (the daemon?) is syncing this data directory; \
             the daemon syncs after every run by itself"
                .to_owned()
        } else {
            e.to_string()
        };
        return Err(SyncError::Busy(format!("{}: {why}", path.display())));
    }
    Ok(SyncLock { _file: file })
}

/// A syncer for `config`'s ledger, over a connection of its own, to the host directory of `s3`.
pub async fn open(config: &Config, s3: &S3Config, signer: NoteSigner) -> Result<Syncer, SyncError> {
    let store = HostStore::connect(s3, &config.host_id).await;
    let path = config.data_dir.join(crate::ledger::LEDGER_FILE);
    let host_id = config.host_id.clone();
    let verifier = signer.verifier();
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(&path, &host_id, signer))
        .await
        .map_err(|e| SyncError::Task(e.to_string()))??;
    Ok(Syncer::new(store, ledger, verifier))
}

/// Syncs one ledger to one host directory in S3.
pub struct Syncer {
    store: HostStore,
    ledger: Arc<Mutex<Ledger>>,
    verifier: NoteVerifier,
    location: String,
}

impl Syncer {
    /// `ledger` should be a connection of the syncer's own (SQLite allows one writer at a time,
    /// and the syncer's writes are small); `verifier` is the host's key, which S3's checkpoint
    /// must be signed with.
    pub fn new(store: HostStore, ledger: Ledger, verifier: NoteVerifier) -> Syncer {
        Syncer {
            location: store.location(),
            store,
            ledger: Arc::new(Mutex::new(ledger)),
            verifier,
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// Run `f` on the ledger on the blocking pool.
    pub async fn with_ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, SyncError> {
        with_ledger(&self.ledger, f).await
    }

    /// Compare S3's `checkpoint` with the local tree. Returns the size S3 shows (0 if it has
    /// none yet); [`SyncError::Refused`] if S3 is ahead of or forked from the local ledger.
    pub async fn anchor(&self) -> Result<u64, SyncError> {
        let url = format!("{}{POINTER_KEY}", self.location);
        let remote = self.store.get(POINTER_KEY).await?;
        let location = self.location.clone();
        let (local_size, synced) = self
            .with_ledger(move |l| Ok((l.size()?, l.synced_size(&location)?)))
            .await?;
        let Some(bytes) = remote else {
            if synced > 0 {
                let message = format!(
                    "{url} is missing although S3 confirmed a tree of {synced} entries before; \
                     what is missing is put again"
                );
                self.alarm(POINTER_KEY, &message).await?;
            }
            return Ok(0);
        };
        let remote = match self.parse_pointer(bytes) {
            Ok(remote) => remote,
            Err(why) => {
                let message = format!("{url} {why}; not syncing until it is looked at");
                self.alarm(POINTER_KEY, &message).await?;
                return Err(SyncError::Untrusted(message));
            }
        };
        let refuse = |why: String| SyncError::Refused(format!("refusing to sync: {url} {why}"));
        if remote.size > local_size {
            return Err(refuse(format!(
                "shows a tree of {} entries but the local ledger has only {local_size}: \
                 the local ledger was rolled back or replaced. Collection stops; restore the \
                 ledger that was synced (or investigate) before starting the agent again",
                remote.size
            )));
        }
        let remote_size = remote.size;
        let consistent = self
            .with_ledger(move |l| {
                let proof = l.consistency_proof(remote_size, local_size)?;
                let local_root = l.root(local_size)?;
                Ok(merkle::verify_consistency(
                    remote_size,
                    local_size,
                    &remote.root,
                    &local_root,
                    &proof,
                ))
            })
            .await?;
        if !consistent {
            return Err(refuse(format!(
                "shows a tree of {remote_size} entries that is not consistent with the local \
                 tree of {local_size}: the local ledger was replaced or rewritten. Collection \
                 stops; investigate before starting the agent again"
            )));
        }
        if remote_size < synced {
            let message = format!(
                "{url} shows a tree of {remote_size} entries although S3 confirmed {synced} \
                 before (set back there); what is missing is put again"
            );
            self.alarm(POINTER_KEY, &message).await?;
        }
        Ok(remote_size)
    }

    /// S3's `checkpoint` bytes as a checkpoint of this host's log, or why they are not one.
    fn parse_pointer(&self, bytes: Vec<u8>) -> Result<Checkpoint, String> {
        // A checkpoint is a few hundred bytes; anything much larger is not one.
        if bytes.len() > 64 * 1024 {
            return Err(format!("is {} bytes, not a checkpoint", bytes.len()));
        }
        let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())?;
        let body = self.verifier.open(&text).map_err(|e| {
            format!(
                "is not a checkpoint signed by this host's key {}: {e}",
                self.verifier.name()
            )
        })?;
        let remote = Checkpoint::parse(body).map_err(|e| e.to_string())?;
        if remote.origin != self.verifier.name() {
            return Err(format!(
                "has origin {:?}, not {:?}",
                remote.origin,
                self.verifier.name()
            ));
        }
        Ok(remote)
    }

    /// Log an alarm as an error and record it for `status`.
    async fn alarm(&self, key: &str, message: &str) -> Result<(), SyncError> {
        tracing::error!("sync alarm: {message}");
        let (location, key, message) = (self.location.clone(), key.to_owned(), message.to_owned());
        self.with_ledger(move |l| l.record_sync_alarm(&location, &key, &message))
            .await
    }

    /// What S3 still lacks.
    pub async fn plan(&self) -> Result<SyncPlan, SyncError> {
        let location = self.location.clone();
        self.with_ledger(move |l| l.sync_plan(&location)).await
    }

    /// One pass: anchor, upload everything pending, move `checkpoint`.
    pub async fn sync_once(&self) -> Result<SyncReport, SyncError> {
        let remote_size = self.anchor().await?;
        let location = self.location.clone();
        let plan = self
            .with_ledger(move |l| {
                if remote_size < l.synced_size(&location)? {
                    // S3 lost what it had confirmed: the records cannot be trusted there.
                    l.sync_plan_from(&location, remote_size)
                } else {
                    l.sync_plan(&location)
                }
            })
            .await?;
        let mut report = SyncReport {
            size: plan.synced_size,
            ..SyncReport::default()
        };
        for stage in plan.stages {
            self.upload_stage(stage, &mut report).await?;
        }
        if let Some(checkpoint) = plan.pointer {
            let bytes = checkpoint.note.into_bytes();
            report.uploaded_bytes += bytes.len() as u64;
            self.store.put_pointer(POINTER_KEY, bytes).await?;
            report.uploaded += 1;
            let (location, size) = (self.location.clone(), checkpoint.size);
            self.with_ledger(move |l| l.record_pointer(&location, size))
                .await?;
            report.size = size;
        }
        Ok(report)
    }

    /// Upload one stage, at most [`UPLOAD_CONCURRENCY`] at a time. On the first failure no new
    /// upload starts; those in flight finish and everything confirmed is recorded before the
    /// error is returned.
    async fn upload_stage(
        &self,
        stage: Vec<PendingObject>,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let mut queue = stage.into_iter();
        let mut running = JoinSet::new();
        let mut confirmed = Vec::new();
        let mut failure: Option<SyncError> = None;
        let mut conflicts = Vec::new();
        loop {
            while failure.is_none() && running.len() < UPLOAD_CONCURRENCY {
                let Some(object) = queue.next() else { break };
                let (store, ledger) = (self.store.clone(), self.ledger.clone());
                running.spawn(async move { upload(&store, &ledger, object).await });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok(Ok((upload, outcome))) => {
                    match outcome {
                        PutOutcome::Created => {
                            report.uploaded += 1;
                            report.uploaded_bytes += upload.size;
                        }
                        PutOutcome::AlreadyThere => report.already_there += 1,
                    }
                    confirmed.push(upload);
                }
                Ok(Err(SyncError::Store(e))) if e.conflict_key().is_some() => {
                    let key = e.conflict_key().unwrap_or_default().to_owned();
                    let message = e.to_string();
                    tracing::error!("sync alarm: {message}");
                    if let Err(e) = self.alarm(&key, &message).await {
                        failure.get_or_insert(e);
                    }
                    conflicts.push(key);
                }
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(e) => {
                    failure.get_or_insert(SyncError::Task(e.to_string()));
                }
            }
            if confirmed.len() >= RECORD_BATCH {
                if let Err(e) = self.record(std::mem::take(&mut confirmed)).await {
                    failure.get_or_insert(e);
                }
            }
        }
        self.record(confirmed).await?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(first) = conflicts.first() {
            return Err(SyncError::Conflicts {
                count: conflicts.len(),
                first: format!("{}{first}", self.location),
            });
        }
        Ok(())
    }

    async fn record(&self, uploads: Vec<Upload>) -> Result<(), SyncError> {
        if uploads.is_empty() {
            return Ok(());
        }
        let location = self.location.clone();
        self.with_ledger(move |l| l.record_uploads(&location, &uploads))
            .await
    }
}

/// Read one object's bytes from the ledger and put it.
async fn upload(
    store: &HostStore,
    ledger: &Arc<Mutex<Ledger>>,
    object: PendingObject,
) -> Result<(Upload, PutOutcome), SyncError> {
    let source = object.source.clone();
    // Reading and hashing a large blob is blocking work: both happen on the blocking pool.
    let (bytes, sha256) = with_ledger(ledger, move |l| {
        let bytes = l.object_bytes(&source)?;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        Ok((bytes, sha256))
    })
    .await?;
    if let ObjectSource::Blob(digest) = object.source {
        if digest != sha256 {
            return Err(LedgerError::Corrupt(format!(
                "blob {} does not hash to its digest",
                hex::encode(digest)
            ))
            .into());
        }
    }
    let size = bytes.len() as u64;
    let outcome = store.put_once(&object.key, bytes, sha256).await?;
    Ok((
        Upload {
            key: object.key,
            sha256,
            size,
        },
        outcome,
    ))
}

async fn with_ledger<T: Send + 'static>(
    ledger: &Arc<Mutex<Ledger>>,
    f: impl FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, SyncError> {
    let ledger = ledger.clone();
    tokio::task::spawn_blocking(move || {
        let guard = ledger
            .lock()
            .map_err(|_| SyncError::Task("the sync ledger lock is poisoned".into()))?;
        f(&guard).map_err(SyncError::from)
    })
    .await
    .map_err(|e| SyncError::Task(e.to_string()))?
}
