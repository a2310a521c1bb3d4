//! Fleet export: the bundle of every host (or the `--host`s asked for) read straight from S3's
//! tlog-tiles layout (DESIGN.md §3), checked on the way.
//!
//! For each host: `key.vkey`, then the signed `checkpoint`, then every entry bundle of the
//! tree, whose leaves must give the checkpoint's root; every hash tile must match the tree the
//! entries give; the period's start and end checkpoints come from `checkpoints/<size>` and
//! must be signed and match the same tree; the period's content is downloaded and checked
//! against its digest. Downloads run at most [`CONCURRENCY`] at a time per host. S3 is not
//! trusted for anything a signature or a digest does not vouch for: the bundle records the key
//! found there, and the auditor pins it with `verify --vkey`.

use super::export::{choose_range, open_checkpoint, open_entry};
use super::hostlog::{BlobSource, HostLog, LogEntry, SignedCheckpoint};
use super::layout::{self, Period};
use super::population::in_period;
use super::BundleError;
use crate::config::S3Config;
use crate::statement::Status;
use crate::sync::store::HostStore;
use crate::tlog::merkle::{self, MemoryNodes};
use crate::tlog::note::NoteVerifier;
use crate::tlog::tiles;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Objects downloaded at once per host.
pub const CONCURRENCY: usize = 8;

/// `s3://BUCKET/PREFIX` of `--source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    pub fn parse(url: &str) -> Result<S3Url, BundleError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            BundleError::Invalid(format!("--source {url:?}: expected s3://BUCKET/PREFIX"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BundleError::Invalid(format!(
                "--source {url:?}: no bucket named"
            )));
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

fn s3_error(e: crate::sync::store::StoreError) -> BundleError {
    BundleError::Invalid(e.to_string())
}

/// The host ids with a directory under the source.
pub async fn hosts(config: &S3Config) -> Result<Vec<String>, BundleError> {
    let fleet = HostStore::connect_fleet(config).await;
    let mut hosts: Vec<String> = fleet
        .list("", true)
        .await
        .map_err(s3_error)?
        .into_iter()
        .filter_map(|d| d.strip_suffix('/').map(str::to_owned))
        .filter(|h| layout::check_host_id(h).is_ok())
        .collect();
    hosts.sort();
    Ok(hosts)
}

/// Content downloaded from S3 into a private temporary directory, each file checked against
/// its digest.
pub struct DownloadedBlobs {
    dir: tempfile::TempDir,
}

impl BlobSource for DownloadedBlobs {
    fn copy_to(&self, digest_hex: &str, out: &mut dyn Write) -> Result<Option<u64>, BundleError> {
        let path = self.path(digest_hex);
        match std::fs::File::open(&path) {
            Ok(mut f) => Ok(Some(
                std::io::copy(&mut f, out).map_err(|e| BundleError::io(&path, e))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BundleError::io(&path, e)),
        }
    }
}

impl DownloadedBlobs {
    fn path(&self, digest_hex: &str) -> PathBuf {
        self.dir.path().join(digest_hex)
    }
}

/// Fetch `keys` concurrently (at most [`CONCURRENCY`]), in the order given; a missing object
/// is an error naming it.
async fn get_all(store: &HostStore, keys: Vec<String>) -> Result<Vec<Vec<u8>>, BundleError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, key) in keys.into_iter().enumerate() {
        let (store, permits) = (store.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let got = store.get(&key).await;
            (i, key, got)
        });
    }
    let mut out = vec![Vec::new(); tasks.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, key, got) =
            joined.map_err(|e| BundleError::Invalid(format!("download task: {e}")))?;
        out[i] = got
            .map_err(s3_error)?
            .ok_or_else(|| BundleError::Invalid(format!("{}{key} is missing", store.location())))?;
    }
    Ok(out)
}

/// Read and check one host's slice for `period` from S3; content of the `ok` entries of the
/// collectors in `filter` (all if empty) is downloaded.
///
/// Only the downloads run as tasks; the checking (hashing, signatures) runs in this future,
/// which the CLI drives with `block_on` on its own thread, not on a runtime worker.
pub async fn read_host(
    config: &S3Config,
    host: &str,
    period: &Period,
    filter: &[String],
) -> Result<(HostLog, DownloadedBlobs), BundleError> {
    layout::check_host_id(host)?;
    let store = HostStore::connect(config, host).await;
    let at = store.location();
    let bad = |what: String| BundleError::Invalid(format!("{at}: {what}"));
    let origin = crate::keys::key_name(host);

    let vkey_bytes = get_all(&store, vec!["key.vkey".into()]).await?.remove(0);
    let verifier = std::str::from_utf8(&vkey_bytes)
        .map_err(|_| "is not UTF-8".to_owned())
        .and_then(|t| NoteVerifier::parse(t.trim_end()).map_err(|e| e.to_string()))
        .map_err(|e| bad(format!("key.vkey {e}")))?;
    if verifier.name() != origin {
        return Err(bad(format!(
            "key.vkey is for {:?}, not {origin:?}",
            verifier.name()
        )));
    }
    let note = get_all(&store, vec!["checkpoint".into()]).await?.remove(0);
    let latest = String::from_utf8(note)
        .map_err(|_| "is not UTF-8".to_owned())
        .and_then(|n| open_checkpoint(&verifier, &origin, &n))
        .map_err(|e| bad(format!("checkpoint {e}")))?;
    let size = latest.size();

    // Every entry of the tree: the period's range is found by scheduled time.
    let all_tiles = tiles::tiles_for_size(size);
    let bundles: Vec<tiles::Tile> = all_tiles.iter().copied().filter(|t| t.level == 0).collect();
    let fetched = get_all(&store, bundles.iter().map(|t| t.entries_path()).collect()).await?;
    let mut envelopes: Vec<Vec<u8>> = Vec::with_capacity(size as usize);
    // Consumed: each entry bundle is freed once its envelopes are copied out.
    for (tile, bytes) in bundles.iter().zip(fetched) {
        let entries = tiles::parse_entry_bundle(&bytes)
            .map_err(|e| bad(format!("{}: {e}", tile.entries_path())))?;
        if entries.len() as u64 != tile.width {
            return Err(bad(format!(
                "{} holds {} entries, expected {}",
                tile.entries_path(),
                entries.len(),
                tile.width
            )));
        }
        envelopes.extend(entries.into_iter().map(<[u8]>::to_vec));
    }
    let leaves: Vec<_> = envelopes.iter().map(|e| merkle::leaf_hash(e)).collect();
    let nodes = MemoryNodes::new(leaves);
    let root = |n: u64| merkle::root(&nodes, n).map_err(|e| bad(format!("tree of {n}: {e:?}")));
    if root(size)? != latest.checkpoint.root {
        return Err(bad(format!(
            "the entries in tile/entries/ do not give the root signed in checkpoint ({size})"
        )));
    }
    let hash_tiles: Vec<tiles::Tile> = all_tiles.clone();
    let fetched = get_all(&store, hash_tiles.iter().map(|t| t.path()).collect()).await?;
    for (tile, bytes) in hash_tiles.iter().zip(&fetched) {
        let expected =
            tiles::read_tile(&nodes, *tile).map_err(|e| bad(format!("{}: {e:?}", tile.path())))?;
        if *bytes != expected {
            return Err(bad(format!(
                "{} does not match the tree of the entries",
                tile.path()
            )));
        }
    }

    // The period's range and its checkpoints.
    let mut scheduled = Vec::new();
    for (i, envelope) in envelopes.iter().enumerate() {
        let st = crate::statement::read_unverified(envelope)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let t = DateTime::parse_from_rfc3339(&st.predicate.scheduled_for)
            .map(|t| t.with_timezone(&Utc))
            .ok();
        if t.is_some_and(|t| period.contains(t)) {
            scheduled.push(i as u64);
        }
    }
    let (Some(&first), Some(&last)) = (scheduled.first(), scheduled.last()) else {
        return Err(bad(format!(
            "no entry is scheduled in the period {} to {}",
            crate::ledger::timestamp(period.from),
            crate::ledger::timestamp(period.to)
        )));
    };
    let sizes: Vec<u64> = store
        .list("checkpoints/", false)
        .await
        .map_err(s3_error)?
        .iter()
        .filter_map(|k| k.strip_prefix("checkpoints/")?.parse().ok())
        .filter(|s| *s <= size)
        .collect();
    let (start, end) = choose_range(first, last, &sizes).map_err(bad)?;
    let mut wanted = vec![end];
    if start > 0 {
        wanted.insert(0, start);
    }
    let notes = get_all(
        &store,
        wanted.iter().map(|s| format!("checkpoints/{s}")).collect(),
    )
    .await?;
    let mut checkpoints = Vec::new();
    for (n, note) in wanted.iter().zip(notes) {
        let cp: SignedCheckpoint = String::from_utf8(note)
            .map_err(|_| "is not UTF-8".to_owned())
            .and_then(|note| open_checkpoint(&verifier, &origin, &note))
            .map_err(|e| bad(format!("checkpoints/{n}: {e}")))?;
        if cp.size() != *n || cp.checkpoint.root != root(*n)? {
            return Err(bad(format!(
                "checkpoints/{n} does not sign the tree the entries give (S3 was altered?)"
            )));
        }
        checkpoints.push(cp);
    }
    let end_cp = checkpoints
        .pop()
        .ok_or_else(|| bad("no end checkpoint".into()))?;
    let start_cp = checkpoints.pop();

    let mut entries = Vec::with_capacity((end - start) as usize);
    for index in start..end {
        // Taken, not copied: the tree's other envelopes are dropped on return.
        let envelope = std::mem::take(&mut envelopes[index as usize]);
        let statement = open_entry(&verifier, host, index, &envelope)
            .map_err(|e| bad(format!("entry {index}: {e}")))?;
        let proof = merkle::inclusion_proof(&nodes, index, end)
            .map_err(|e| bad(format!("entry {index}: {e:?}")))?;
        entries.push(LogEntry {
            index,
            envelope,
            statement,
            proof,
        });
    }
    let consistency = if start > 0 {
        merkle::consistency_proof(&nodes, start, end).map_err(|e| bad(format!("{e:?}")))?
    } else {
        Vec::new()
    };
    let log = HostLog {
        host: host.to_owned(),
        source: at.clone(),
        vkey: verifier.to_string(),
        start: start_cp,
        end: end_cp,
        entries,
        consistency,
    };

    // The period's content, each object checked against its digest.
    let digests: BTreeSet<String> = in_period(&log, period, filter)
        .filter(|(e, _)| e.statement.predicate.status == Status::Ok)
        .map(|(e, _)| e.statement.content_sha256().to_owned())
        .collect();
    let digests: Vec<String> = digests.into_iter().collect();
    let dir = tempfile::Builder::new()
        .prefix("evidence-fleet-")
        .tempdir()
        .map_err(|e| BundleError::io(std::env::temp_dir(), e))?;
    let blobs = DownloadedBlobs { dir };
    for chunk in digests.chunks(CONCURRENCY * 4) {
        let keys = chunk.iter().map(|d| format!("blobs/sha256/{d}")).collect();
        for (digest, bytes) in chunk.iter().zip(get_all(&store, keys).await?) {
            if hex::encode(Sha256::digest(&bytes)) != *digest {
                return Err(bad(format!(
                    "blobs/sha256/{digest} does not match its digest (S3 was altered?)"
                )));
            }
            let path = blobs.path(digest);
            std::fs::write(&path, &bytes).map_err(|e| BundleError::io(&path, e))?;
        }
    }
    Ok((log, blobs))
}
