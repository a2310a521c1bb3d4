//! The SQLite schema of the ledger and the pragmas it runs under.
//!
//! Append-only tables carry triggers that abort any UPDATE or DELETE: the API never issues one,
//! and the triggers are a second guard against other code or a stray `sqlite3` session.

use rusqlite::Connection;

pub const SCHEMA_VERSION: i64 = 1;

/// WAL so readers never block the writer; `synchronous=FULL` so a commit is on disk (WAL and its
/// fsync) before `append` returns.
pub const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
";

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Content, addressed by the SHA-256 of its uncompressed bytes, in chunks so that no read or
-- write needs a whole large blob in memory.
CREATE TABLE IF NOT EXISTS blobs (
    digest BLOB PRIMARY KEY,
    size   INTEGER NOT NULL,
    chunks INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_chunks (
    digest BLOB NOT NULL REFERENCES blobs(digest),
    seq    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (digest, seq)
) WITHOUT ROWID;
-- One row per log leaf. `envelope` is the leaf's exact bytes; the other columns are copies of
-- statement fields for queries, and `verify` checks they agree with the signed statement.
CREATE TABLE IF NOT EXISTS entries (
    idx            INTEGER PRIMARY KEY,
    collector_id   TEXT NOT NULL,
    status         TEXT NOT NULL,
    trigger        TEXT NOT NULL,
    scheduled_for  TEXT NOT NULL,
    finished_at    TEXT NOT NULL,
    content_digest BLOB NOT NULL REFERENCES blobs(digest),
    envelope       BLOB NOT NULL,
    leaf_hash      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_collector ON entries (collector_id, scheduled_for);
-- Perfect-subtree hashes: level 0 are leaf hashes; (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Proofs read O(log n) of these.
CREATE TABLE IF NOT EXISTS tree_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size       INTEGER PRIMARY KEY,
    note       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- Runs that started and have no entry yet. A row is written when a run starts and deleted in the
-- transaction that appends the run's entry, so after a crash the leftovers name exactly the runs
-- that must be recorded as failed: no started run is ever without an entry.
CREATE TABLE IF NOT EXISTS pending_runs (
    collector_id  TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    kind          TEXT NOT NULL,
    trigger       TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    PRIMARY KEY (collector_id, scheduled_for)
);
-- Where each collector resumes; written in the same transaction as the entry that moved it.
CREATE TABLE IF NOT EXISTS cursors (
    collector_id TEXT PRIMARY KEY,
    cursor       TEXT NOT NULL,
    entry_idx    INTEGER NOT NULL
);
-- Sync bookkeeping (see sync_state.rs). `location` is `s3://<bucket>/<prefix>/<host-id>/`, so a
-- new bucket or prefix starts from nothing. A row in sync_uploads means S3 confirmed that
-- object; a row in sync_pointers means S3's `checkpoint` object showed that tree size.
CREATE TABLE IF NOT EXISTS sync_uploads (
    location    TEXT NOT NULL,
    key         TEXT NOT NULL,
    sha256      BLOB NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_at TEXT NOT NULL,
    PRIMARY KEY (location, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_pointers (
    location  TEXT NOT NULL,
    size      INTEGER NOT NULL,
    synced_at TEXT NOT NULL,
    PRIMARY KEY (location, size)
) WITHOUT ROWID;
-- Objects S3 holds with other bytes than ours: never overwritten, kept here for `status`.
CREATE TABLE IF NOT EXISTS sync_alarms (
    location    TEXT NOT NULL,
    key         TEXT NOT NULL,
    message     TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    PRIMARY KEY (location, key)
) WITHOUT ROWID;
-- The one mutable sync row: the outcome of the last attempt, for `status`.
CREATE TABLE IF NOT EXISTS sync_status (
    location        TEXT PRIMARY KEY,
    last_attempt_at TEXT NOT NULL,
    last_success_at TEXT,
    last_error      TEXT,
    last_error_at   TEXT
);
";

pub const APPEND_ONLY: &[&str] = &[
    "blobs",
    "blob_chunks",
    "entries",
    "tree_nodes",
    "checkpoints",
    "sync_uploads",
    "sync_pointers",
    "sync_alarms",
];

pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLES)?;
    for table in APPEND_ONLY {
        conn.execute_batch(&format!(
            "CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
               BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be updated'); END;
             CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
               BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be deleted'); END;"
        ))?;
    }
    Ok(())
}
