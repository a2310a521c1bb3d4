//! What has reached S3, as the ledger records it, and the plan of what is left to upload.
//!
//! The sync module asks for a [`SyncPlan`], uploads it stage by stage and records each object S3
//! confirmed ([`Ledger::record_uploads`]), then the tree size the mutable `checkpoint` object now
//! shows ([`Ledger::record_pointer`]). A restart plans again from those records, so it resumes
//! where the last attempt stopped and never re-uploads what S3 confirmed. Every record names its
//! `location` (`s3://bucket/prefix/host/`): pointing the agent at another bucket starts afresh.

use super::{checkpoint_from_row, Ledger, LedgerError, StoredCheckpoint};
use crate::tlog::tiles::{self, Tile};
use rusqlite::{params, OptionalExtension};

/// Where an object's bytes come from in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectSource {
    /// `key.vkey`: the note verifier key, one line.
    Vkey(String),
    /// `blobs/sha256/<hex>`: snapshot content.
    Blob([u8; 32]),
    /// `tile/<L>/<N>[.p/<W>]`: hashes.
    HashTile(Tile),
    /// `tile/entries/<N>[.p/<W>]`: envelopes.
    Entries(Tile),
    /// `checkpoints/<size>`: a signed checkpoint, kept write-once.
    Checkpoint(u64),
}

/// One object to upload: its key below the host's directory, its source and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingObject {
    pub key: String,
    pub source: ObjectSource,
    pub size: u64,
}

/// Everything S3 lacks for the local tree, in the order it must arrive.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    /// The tree size S3's `checkpoint` was last confirmed to show (0: never).
    pub synced_size: u64,
    /// The local tree size this plan brings S3 to.
    pub size: u64,
    /// Upload stages; every object of a stage must be confirmed before the next starts, so S3
    /// never holds a checkpoint whose tiles, or an entry whose content, is missing:
    /// the key and blobs, then tiles and entry bundles, then `checkpoints/<size>`.
    pub stages: Vec<Vec<PendingObject>>,
    /// The checkpoint to put at the mutable `checkpoint` key last (when `size > synced_size`).
    pub pointer: Option<StoredCheckpoint>,
    /// `finished_at` of the oldest entry S3's checkpoint does not cover yet.
    pub oldest_pending: Option<String>,
}

impl SyncPlan {
    /// Objects left to upload, the pointer included.
    pub fn objects(&self) -> usize {
        self.stages.iter().map(Vec::len).sum::<usize>() + usize::from(self.pointer.is_some())
    }

    /// Bytes left to upload, the pointer included.
    pub fn bytes(&self) -> u64 {
        let objects: u64 = self.stages.iter().flatten().map(|o| o.size).sum();
        objects + self.pointer.as_ref().map_or(0, |c| c.note.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.objects() == 0
    }
}

/// An upload S3 confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub sha256: [u8; 32],
    pub size: u64,
}

/// An object S3 holds with bytes other than the ledger's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAlarm {
    pub key: String,
    pub message: String,
    pub detected_at: String,
}

/// The outcome of the last sync attempts to one location, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub last_attempt_at: Option<String>,
    pub last_success_at: Option<String>,
    /// The error of the last attempt, if it failed.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub alarms: Vec<SyncAlarm>,
}

/// The key of a blob below the host's directory.
pub fn blob_key(digest: &[u8; 32]) -> String {
    format!("blobs/sha256/{}", hex::encode(digest))
}

/// The key of a write-once checkpoint below the host's directory.
pub fn checkpoint_key(size: u64) -> String {
    format!("checkpoints/{size}")
}

/// The mutable pointer to the latest checkpoint.
pub const POINTER_KEY: &str = "checkpoint";
/// The verifier key.
pub const VKEY_KEY: &str = "key.vkey";

impl Ledger {
    /// The tree size S3's `checkpoint` at `location` was last confirmed to show.
    pub fn synced_size(&self, location: &str) -> Result<u64, LedgerError> {
        let size: Option<i64> = self.conn.query_row(
            "SELECT max(size) FROM sync_pointers WHERE location = ?1",
            [location],
            |r| r.get(0),
        )?;
        Ok(size.map_or(0, |s| s as u64))
    }

    /// What `location` lacks to hold the whole local tree, going by the upload records.
    pub fn sync_plan(&self, location: &str) -> Result<SyncPlan, LedgerError> {
        self.plan_from(location, None)
    }

    /// What to upload when S3 shows a tree of only `remote_size` although more was confirmed
    /// (objects deleted or a bucket recreated there): everything beyond `remote_size`,
    /// disregarding the upload records. Putting an object S3 still holds is harmless (412, then
    /// compared).
    pub fn sync_plan_from(
        &self,
        location: &str,
        remote_size: u64,
    ) -> Result<SyncPlan, LedgerError> {
        self.plan_from(location, Some(remote_size))
    }

    fn plan_from(
        &self,
        location: &str,
        rebuild_from: Option<u64>,
    ) -> Result<SyncPlan, LedgerError> {
        let tx = self.conn.unchecked_transaction()?;
        let synced_size = match rebuild_from {
            Some(remote) => remote,
            None => self.synced_size(location)?,
        };
        let size = self.size()?;
        let trust_records = rebuild_from.is_none();
        let uploaded = |key: &str| -> Result<bool, LedgerError> {
            if !trust_records {
                return Ok(false);
            }
            Ok(self
                .conn
                .prepare_cached("SELECT 1 FROM sync_uploads WHERE location = ?1 AND key = ?2")?
                .query_row([location, key], |_| Ok(()))
                .optional()?
                .is_some())
        };

        let mut first = Vec::new();
        if !uploaded(VKEY_KEY)? {
            let vkey = self
                .recorded_vkey()?
                .ok_or_else(|| LedgerError::Corrupt("the ledger records no verifier key".into()))?;
            let line = format!("{vkey}\n");
            first.push(PendingObject {
                key: VKEY_KEY.to_owned(),
                size: line.len() as u64,
                source: ObjectSource::Vkey(line),
            });
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT b.digest, b.size FROM entries e JOIN blobs b ON b.digest = e.content_digest
             WHERE e.idx >= ?1 AND e.idx < ?2 AND NOT EXISTS (
                SELECT 1 FROM sync_uploads u
                WHERE ?4 AND u.location = ?3 AND u.key = 'blobs/sha256/' || lower(hex(b.digest)))",
        )?;
        let bounds = params![synced_size as i64, size as i64, location, trust_records];
        let rows = stmt.query_map(bounds, |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (digest, blob_size) = row?;
            let digest: [u8; 32] = digest
                .try_into()
                .map_err(|_| LedgerError::Corrupt("a blob digest is not 32 bytes".into()))?;
            first.push(PendingObject {
                key: blob_key(&digest),
                source: ObjectSource::Blob(digest),
                size: blob_size as u64,
            });
        }

        let mut tiles = Vec::new();
        for tile in tiles::tiles_added(synced_size, size) {
            if tile.level == 0 && !uploaded(&tile.entries_path())? {
                let (lo, hi) = tile.leaf_range();
                let bytes: i64 = self.conn.query_row(
                    "SELECT coalesce(sum(length(envelope)), 0) + 2 * count(*) FROM entries
                     WHERE idx >= ?1 AND idx < ?2",
                    [lo as i64, hi as i64],
                    |r| r.get(0),
                )?;
                tiles.push(PendingObject {
                    key: tile.entries_path(),
                    source: ObjectSource::Entries(tile),
                    size: bytes as u64,
                });
            }
            if !uploaded(&tile.path())? {
                tiles.push(PendingObject {
                    key: tile.path(),
                    source: ObjectSource::HashTile(tile),
                    size: tile.width * 32,
                });
            }
        }

        let mut checkpoints = Vec::new();
        let mut pointer = None;
        let mut stmt = self.conn.prepare_cached(
            "SELECT size, note, created_at FROM checkpoints WHERE size > ?1 ORDER BY size",
        )?;
        for row in stmt.query_map([synced_size as i64], checkpoint_from_row)? {
            let checkpoint = row?;
            let key = checkpoint_key(checkpoint.size);
            if !uploaded(&key)? {
                checkpoints.push(PendingObject {
                    key,
                    source: ObjectSource::Checkpoint(checkpoint.size),
                    size: checkpoint.note.len() as u64,
                });
            }
            pointer = Some(checkpoint);
        }
        let oldest_pending = match self.entry(synced_size)? {
            Some(e) if synced_size < size => Some(e.finished_at),
            _ => None,
        };
        drop(tx);
        Ok(SyncPlan {
            synced_size,
            size,
            stages: vec![first, tiles, checkpoints]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            pointer,
            oldest_pending,
        })
    }

    /// The bytes of an object to upload.
    pub fn object_bytes(&self, source: &ObjectSource) -> Result<Vec<u8>, LedgerError> {
        match source {
            ObjectSource::Vkey(line) => Ok(line.clone().into_bytes()),
            ObjectSource::Blob(digest) => {
                let mut out = Vec::new();
                match self.copy_blob(digest, &mut out)? {
                    Some(_) => Ok(out),
                    None => Err(LedgerError::Corrupt(format!(
                        "blob {} is referenced but not stored",
                        hex::encode(digest)
                    ))),
                }
            }
            ObjectSource::HashTile(tile) => self.tile(*tile),
            ObjectSource::Entries(tile) => self.entry_bundle(*tile),
            ObjectSource::Checkpoint(size) => match self.checkpoint(*size)? {
                Some(c) => Ok(c.note.into_bytes()),
                None => Err(LedgerError::Range(format!("no checkpoint of size {size}"))),
            },
        }
    }

    /// Record uploads S3 confirmed (recording one twice is harmless).
    pub fn record_uploads(&self, location: &str, uploads: &[Upload]) -> Result<(), LedgerError> {
        let tx = self.conn.unchecked_transaction()?;
        let now = super::timestamp(chrono::Utc::now());
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO sync_uploads (location, key, sha256, size, uploaded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for u in uploads {
                stmt.execute(params![location, u.key, &u.sha256[..], u.size as i64, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record that S3's `checkpoint` at `location` now shows a tree of `size`.
    pub fn record_pointer(&self, location: &str, size: u64) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO sync_pointers (location, size, synced_at) VALUES (?1, ?2, ?3)",
            params![location, size as i64, super::timestamp(chrono::Utc::now())],
        )?;
        Ok(())
    }

    /// Record an object S3 holds with other bytes than ours (the first report of a key is kept).
    pub fn record_sync_alarm(
        &self,
        location: &str,
        key: &str,
        message: &str,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO sync_alarms (location, key, message, detected_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![location, key, message, super::timestamp(chrono::Utc::now())],
        )?;
        Ok(())
    }

    /// Record the outcome of a sync attempt: `None` for success, else its error.
    pub fn record_sync_attempt(
        &self,
        location: &str,
        error: Option<&str>,
    ) -> Result<(), LedgerError> {
        let now = super::timestamp(chrono::Utc::now());
        match error {
            None => self.conn.execute(
                "INSERT INTO sync_status (location, last_attempt_at, last_success_at)
                 VALUES (?1, ?2, ?2)
                 ON CONFLICT (location) DO UPDATE SET last_attempt_at = ?2, last_success_at = ?2,
                    last_error = NULL, last_error_at = NULL",
                params![location, now],
            )?,
            Some(error) => self.conn.execute(
                "INSERT INTO sync_status (location, last_attempt_at, last_error, last_error_at)
                 VALUES (?1, ?2, ?3, ?2)
                 ON CONFLICT (location) DO UPDATE SET last_attempt_at = ?2, last_error = ?3,
                    last_error_at = ?2",
                params![location, now, error],
            )?,
        };
        Ok(())
    }

    /// The last attempts' outcome and the alarms for `location`.
    pub fn sync_status(&self, location: &str) -> Result<SyncStatus, LedgerError> {
        let mut status = self
            .conn
            .query_row(
                "SELECT last_attempt_at, last_success_at, last_error, last_error_at
                 FROM sync_status WHERE location = ?1",
                [location],
                |r| {
                    Ok(SyncStatus {
                        last_attempt_at: r.get(0)?,
                        last_success_at: r.get(1)?,
                        last_error: r.get(2)?,
                        last_error_at: r.get(3)?,
                        alarms: Vec::new(),
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        let mut stmt = self.conn.prepare(
            "SELECT key, message, detected_at FROM sync_alarms WHERE location = ?1 ORDER BY detected_at",
        )?;
        let alarms = stmt.query_map([location], |r| {
            Ok(SyncAlarm {
                key: r.get(0)?,
                message: r.get(1)?,
                detected_at: r.get(2)?,
            })
        })?;
        status.alarms = alarms.collect::<Result<_, _>>()?;
        Ok(status)
    }
}
