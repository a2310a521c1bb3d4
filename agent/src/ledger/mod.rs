//! The append-only ledger: one SQLite file per host holding content blobs, signed statements
//! (DSSE envelopes), the RFC 6962 tree over them, signed checkpoints and collector cursors.
//!
//! Guarantees:
//! - Only this module writes the database, and only by appending. One [`Ledger::append`] is one
//!   transaction: blobs, envelopes, leaves, tree nodes, cursors and the new signed checkpoint
//!   commit together or not at all (`synchronous=FULL`, so a returned append survives a crash).
//! - Entry `i` is leaf `i`; its statement carries `log_index = i`, so position is signed.
//! - Proofs are computed from stored perfect-subtree hashes in O(log n) reads.
//!
//! All calls block: the daemon runs the ledger on its own thread, never on an async worker.

mod append;
mod blobs;
mod clock;
mod schema;
pub mod sync_state;
pub mod verify;

use crate::statement::Trigger;
use crate::tlog::merkle::{self, NodeSource, ProofError};
use crate::tlog::note::{Checkpoint, NoteSigner, NoteVerifier};
use crate::tlog::tiles::{self, Tile};
use crate::tlog::Hash;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use verify::{Finding, Report};

/// The tables that are append-only (guarded by triggers against UPDATE and DELETE).
pub const APPEND_ONLY_TABLES: &[&str] = schema::APPEND_ONLY;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Not a `#[source]`: SQLite's own message is already in the text, and an error chain
    /// printed with its sources would repeat it.
    #[error("ledger database: {0}")]
    Sql(rusqlite::Error),
    #[error(
        "the filesystem holding the ledger is full; free space there and run again \
         (min_free_disk_mib pauses collection before this point)"
    )]
    DiskFull,
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("ledger was opened read-only")]
    ReadOnly,
    #[error("{0}")]
    Range(String),
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => LedgerError::DiskFull,
            _ => LedgerError::Sql(e),
        }
    }
}

impl From<ProofError<LedgerError>> for LedgerError {
    fn from(e: ProofError<LedgerError>) -> Self {
        match e {
            ProofError::Source(e) => e,
            ProofError::Range(m) => LedgerError::Range(m),
        }
    }
}

/// RFC 3339 UTC to the millisecond, with the fraction only when there is one.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.trunc_subsecs(3)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// What happened in one run, as handed to [`Ledger::append`].
#[derive(Debug)]
pub enum Outcome {
    Ok(collectors::Snapshot),
    Failed(String),
    Skipped(String),
}

impl Outcome {
    /// The status the entry is recorded with.
    pub fn status(&self) -> crate::statement::Status {
        use crate::statement::Status;
        match self {
            Outcome::Ok(_) => Status::Ok,
            Outcome::Failed(_) => Status::Failed,
            Outcome::Skipped(_) => Status::Skipped,
        }
    }
}

/// One run to record.
#[derive(Debug)]
pub struct NewEntry {
    pub collector_id: String,
    pub kind: String,
    pub trigger: Trigger,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub config_sha256: [u8; 32],
    /// The collector's schedule expression when it ran (signed, so that a bundle's verifier can
    /// check coverage without the configuration); `None` for runs of unscheduled collectors.
    pub schedule: Option<String>,
    pub outcome: Outcome,
}

/// A stored entry as read back.
#[derive(Debug, Clone)]
pub struct EntryRecord {
    pub index: u64,
    pub collector_id: String,
    pub status: String,
    pub trigger: String,
    pub scheduled_for: String,
    pub finished_at: String,
    pub content_digest: [u8; 32],
    pub envelope: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

/// A run that started but has no entry (yet).
#[derive(Debug, Clone)]
pub struct PendingRun {
    pub collector_id: String,
    pub kind: String,
    pub trigger: Trigger,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// The process that started it.
    pub pid: u32,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub note: String,
    pub created_at: String,
}

/// What one append committed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Log indexes of the new entries, in order.
    pub indexes: Vec<u64>,
    /// The checkpoint written for the new tree.
    pub checkpoint: StoredCheckpoint,
}

/// The ledger database of one host.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    host_id: String,
    signer: Option<NoteSigner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

/// File name of the ledger inside the data directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

impl Ledger {
    /// Open (creating if needed) the ledger for writing as `host_id` with `signer`. Refuses a
    /// ledger that was created for another host or key.
    pub fn open(path: &Path, host_id: &str, signer: NoteSigner) -> Result<Ledger, LedgerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch(schema::PRAGMAS)?;
        schema::create(&conn)?;
        let ledger = Ledger {
            conn,
            path: path.to_owned(),
            host_id: host_id.to_owned(),
            signer: Some(signer),
        };
        ledger.claim_identity()?;
        Ok(ledger)
    }

    /// Open an existing ledger for reading only (no key needed).
    pub fn open_read_only(path: &Path) -> Result<Ledger, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::Io {
                op: "open ledger",
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} does not exist (nothing collected yet?)", path.display()),
                ),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let host_id = meta_get(&conn, "host_id")?.unwrap_or_default();
        Ok(Ledger {
            conn,
            path: path.to_owned(),
            host_id,
            signer: None,
        })
    }

    /// Record host id, origin and verifier key on first use; afterwards insist they match.
    fn claim_identity(&self) -> Result<(), LedgerError> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        let vkey = signer.verifier().to_string();
        let tx = self.conn.unchecked_transaction()?;
        for (key, want) in [
            ("schema_version", schema::SCHEMA_VERSION.to_string()),
            ("host_id", self.host_id.clone()),
            ("vkey", vkey),
        ] {
            match meta_get(&tx, key)? {
                None => {
                    tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", [key, &want])?;
                }
                Some(have) if have == want => {}
                Some(have) => {
                    return Err(LedgerError::Mismatch(format!(
                        "{}: this ledger's {key} is {have:?} but the agent is configured with {want:?}; \
                         a ledger belongs to one host and one key",
                        self.path.display()
                    )))
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Bytes of the ledger's files on disk: the database and its write-ahead log.
    pub fn file_bytes(&self) -> u64 {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let mut wal = self.path().as_os_str().to_owned();
        wal.push("-wal");
        size(self.path()) + size(Path::new(&wal))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// The log origin, which is also the key name: `evidence-agent/<host-id>`.
    pub fn origin(&self) -> String {
        crate::keys::key_name(&self.host_id)
    }

    /// The verifier key recorded in the ledger when it was created (not a trust anchor: whoever
    /// can write the file can change it; pin the key from the key file or a `--vkey`).
    pub fn recorded_vkey(&self) -> Result<Option<String>, LedgerError> {
        meta_get(&self.conn, "vkey")
    }

    /// Append a batch of runs as one transaction, then sign and store the new checkpoint.
    pub fn append(&mut self, batch: Vec<NewEntry>) -> Result<Appended, LedgerError> {
        let signer = self.signer.clone().ok_or(LedgerError::ReadOnly)?;
        let host_id = self.host_id.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut size = tree_size(&tx)?;
        let clock_anomaly = clock::went_back(&tx, Utc::now())?;
        let mut indexes = Vec::with_capacity(batch.len());
        for entry in batch {
            append::append_one(&tx, &signer, &host_id, size, entry, clock_anomaly.as_ref())?;
            indexes.push(size);
            size += 1;
        }
        let root = merkle::root(&SqlNodes(&tx), size)?;
        let now = Utc::now();
        let checkpoint = Checkpoint {
            origin: crate::keys::key_name(&host_id),
            size,
            root,
            extensions: vec![format!("time {}", timestamp(now))],
        };
        let note = signer
            .sign(&checkpoint.to_text())
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let created_at = timestamp(now);
        // A batch of nothing leaves the tree as it was: keep its first checkpoint.
        tx.execute(
            "INSERT OR IGNORE INTO checkpoints (size, note, created_at) VALUES (?1, ?2, ?3)",
            params![size as i64, note, created_at],
        )?;
        tx.commit()?;
        let checkpoint = self.checkpoint(size)?.ok_or_else(|| {
            LedgerError::Corrupt(format!("checkpoint {size} missing right after commit"))
        })?;
        Ok(Appended {
            indexes,
            checkpoint,
        })
    }

    /// Note that a run has started, so that a crash before its entry is appended is recorded
    /// (as `failed`) at the next start instead of leaving a silent gap.
    pub fn begin_run(
        &self,
        collector_id: &str,
        kind: &str,
        trigger: Trigger,
        scheduled_for: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO pending_runs
                   (collector_id, scheduled_for, kind, trigger, started_at, pid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                collector_id,
                timestamp(scheduled_for),
                kind,
                trigger.as_str(),
                timestamp(Utc::now()),
                std::process::id()
            ])?;
        Ok(())
    }

    /// Runs that started and have no entry.
    pub fn pending_runs(&self) -> Result<Vec<PendingRun>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT collector_id, kind, trigger, scheduled_for, started_at, pid
             FROM pending_runs ORDER BY scheduled_for",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut runs = Vec::new();
        for row in rows {
            let (collector_id, kind, trigger, scheduled_for, started_at, pid) = row?;
            let trigger = match trigger.as_str() {
                "schedule" => Trigger::Schedule,
                "manual" => Trigger::Manual,
                "missed" => Trigger::Missed,
                other => {
                    return Err(LedgerError::Corrupt(format!(
                        "pending run of {collector_id}: unknown trigger {other:?}"
                    )))
                }
            };
            runs.push(PendingRun {
                collector_id,
                kind,
                trigger,
                scheduled_for: parse_time(&scheduled_for)?,
                started_at: parse_time(&started_at)?,
                pid: u32::try_from(pid).unwrap_or(0),
            });
        }
        Ok(runs)
    }

    /// Number of entries (the tree size).
    pub fn size(&self) -> Result<u64, LedgerError> {
        tree_size(&self.conn)
    }

    pub fn entry(&self, index: u64) -> Result<Option<EntryRecord>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(&format!("{ENTRY_SELECT} WHERE idx = ?1"))?
            .query_row([index as i64], entry_from_row)
            .optional()?)
    }

    /// Entries in index order, from `start`, at most `limit`.
    pub fn entries(&self, start: u64, limit: u64) -> Result<Vec<EntryRecord>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{ENTRY_SELECT} WHERE idx >= ?1 ORDER BY idx LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![start as i64, limit.min(i64::MAX as u64) as i64],
            entry_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Call `f` on every entry in index order without loading them all.
    pub fn for_each_entry(
        &self,
        mut f: impl FnMut(EntryRecord) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut stmt = self.conn.prepare(&format!("{ENTRY_SELECT} ORDER BY idx"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            f(entry_from_row(row)?)?;
        }
        Ok(())
    }

    /// Stream a blob into `out`; `None` if it is not stored.
    pub fn copy_blob(
        &self,
        digest: &[u8; 32],
        out: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, LedgerError> {
        blobs::copy_to(&self.conn, digest, out)
    }

    pub fn blob_size(&self, digest: &[u8; 32]) -> Result<Option<u64>, LedgerError> {
        blobs::size(&self.conn, digest)
    }

    pub fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached("SELECT size, note, created_at FROM checkpoints WHERE size = ?1")?
            .query_row([size as i64], checkpoint_from_row)
            .optional()?)
    }

    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT size, note, created_at FROM checkpoints ORDER BY size DESC LIMIT 1",
            )?
            .query_row([], checkpoint_from_row)
            .optional()?)
    }

    pub fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT size, note, created_at FROM checkpoints ORDER BY size")?;
        let rows = stmt.query_map([], checkpoint_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Root of the tree of the first `size` entries, from stored nodes.
    pub fn root(&self, size: u64) -> Result<Hash, LedgerError> {
        self.check_size(size)?;
        Ok(merkle::root(&SqlNodes(&self.conn), size)?)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(size)?;
        Ok(merkle::inclusion_proof(&SqlNodes(&self.conn), index, size)?)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(new)?;
        Ok(merkle::consistency_proof(&SqlNodes(&self.conn), old, new)?)
    }

    fn check_size(&self, size: u64) -> Result<(), LedgerError> {
        let have = self.size()?;
        if size > have {
            return Err(LedgerError::Range(format!(
                "tree size {size} is beyond the ledger's {have} entries"
            )));
        }
        Ok(())
    }

    /// The bytes of a C2SP hash tile, from stored nodes. The tile must lie within the tree.
    pub fn tile(&self, tile: Tile) -> Result<Vec<u8>, LedgerError> {
        self.check_size(tile.leaf_range().1)?;
        tiles::read_tile(&SqlNodes(&self.conn), tile)
    }

    /// The C2SP entry bundle of a level-0 tile: the stored envelopes of the leaves it covers.
    pub fn entry_bundle(&self, tile: Tile) -> Result<Vec<u8>, LedgerError> {
        let (first, end) = tile.leaf_range();
        if tile.level != 0 {
            return Err(LedgerError::Range(format!(
                "{} is not a level-0 tile",
                tile.path()
            )));
        }
        self.check_size(end)?;
        let entries = self.entries(first, end - first)?;
        tiles::entry_bundle(first, entries.iter().map(|e| e.envelope.as_slice()))
            .map_err(|e| LedgerError::Corrupt(e.to_string()))
    }

    /// The cursor stored by `collector_id`'s last committed run that returned one.
    pub fn cursor(&self, collector_id: &str) -> Result<Option<serde_json::Value>, LedgerError> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT cursor FROM cursors WHERE collector_id = ?1")?
            .query_row([collector_id], |r| r.get(0))
            .optional()?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                LedgerError::Corrupt(format!("cursor of collector {collector_id}: {e}"))
            })
        })
        .transpose()
    }

    /// The latest `scheduled_for` among `collector_id`'s scheduled (or missed) runs: where the
    /// schedule was last accounted for.
    pub fn last_scheduled(&self, collector_id: &str) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let text: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT MAX(scheduled_for) FROM entries
                 WHERE collector_id = ?1 AND trigger IN ('schedule', 'missed')",
            )?
            .query_row([collector_id], |r| r.get(0))?;
        text.map(|t| parse_time(&t)).transpose()
    }

    /// When each collector's last successful run finished, by collector id.
    pub fn last_successes(&self) -> Result<BTreeMap<String, DateTime<Utc>>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT collector_id, MAX(finished_at) FROM entries WHERE status = 'ok'
             GROUP BY collector_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut last = BTreeMap::new();
        for row in rows {
            let (collector, finished_at) = row?;
            last.insert(collector, parse_time(&finished_at)?);
        }
        Ok(last)
    }

    /// The last entry of each collector that has any, by collector id.
    pub fn last_entries(&self) -> Result<Vec<EntryRecord>, LedgerError> {
        let mut stmt = self.conn.prepare(&format!(
            "{ENTRY_SELECT} WHERE idx IN (SELECT MAX(idx) FROM entries GROUP BY collector_id)
             ORDER BY collector_id"
        ))?;
        let rows = stmt.query_map([], entry_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The verifier to check this ledger with when no key is pinned.
    pub fn verifier_from_meta(&self) -> Result<NoteVerifier, LedgerError> {
        let vkey = self
            .recorded_vkey()?
            .ok_or_else(|| LedgerError::Corrupt("no verifier key recorded in the ledger".into()))?;
        NoteVerifier::parse(&vkey).map_err(|e| LedgerError::Corrupt(e.to_string()))
    }
}

const ENTRY_SELECT: &str = "SELECT idx, collector_id, status, trigger, scheduled_for, finished_at,
    content_digest, envelope, leaf_hash FROM entries";

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRecord> {
    let idx: i64 = row.get(0)?;
    let index = u64::try_from(idx).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("entry index {idx} is negative").into(),
        )
    })?;
    Ok(EntryRecord {
        index,
        collector_id: row.get(1)?,
        status: row.get(2)?,
        trigger: row.get(3)?,
        scheduled_for: row.get(4)?,
        finished_at: row.get(5)?,
        content_digest: hash_column(row, 6)?,
        envelope: row.get(7)?,
        leaf_hash: hash_column(row, 8)?,
    })
}

fn hash_column(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<[u8; 32]> {
    let v: Vec<u8> = row.get(i)?;
    v.try_into().map_err(|v: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            format!("expected a 32-byte hash, found {} bytes", v.len()).into(),
        )
    })
}

fn checkpoint_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: row.get::<_, i64>(0)? as u64,
        note: row.get(1)?,
        created_at: row.get(2)?,
    })
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, LedgerError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| LedgerError::Corrupt(format!("time {text:?}: {e}")))
}

fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, LedgerError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn tree_size(conn: &Connection) -> Result<u64, LedgerError> {
    let n: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}

/// Stored perfect-subtree hashes as a [`NodeSource`].
struct SqlNodes<'a>(pub(super) &'a Connection);

impl NodeSource for SqlNodes<'_> {
    type Error = LedgerError;
    fn node(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let v: Option<Vec<u8>> = self
            .0
            .prepare_cached("SELECT hash FROM tree_nodes WHERE level = ?1 AND idx = ?2")?
            .query_row(params![level, index as i64], |r| r.get(0))
            .optional()?;
        v.and_then(|v| v.try_into().ok()).ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "tree node at level {level} index {index} is missing"
            ))
        })
    }
}
