//! Writing a bundle: a host's slice of the log read from the local ledger, checked on the way, then the files of DESIGN.md §3, then the manifest and
//! SHA256SUMS over them, packed into a `.tar.gz` when the output path asks for one.

use super::archive;
use super::derive::{self, Params};
use super::hostlog::{BlobSource, HostLog, LogEntry, SignedCheckpoint};
use super::layout::{self, FileEntry, HostPart, Manifest, Period};
use super::staging;
use super::BundleError;
use crate::ledger::Ledger;
use crate::statement::{self, Statement};
use crate::tlog::merkle;
use crate::tlog::note::{Checkpoint, NoteVerifier};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// A signed checkpoint checked against `verifier` and the log's origin.
pub fn open_checkpoint(
    verifier: &NoteVerifier,
    origin: &str,
    note: &str,
) -> Result<SignedCheckpoint, String> {
    let text = verifier.open(note).map_err(|e| e.to_string())?;
    let checkpoint = Checkpoint::parse(text).map_err(|e| e.to_string())?;
    if checkpoint.origin != origin {
        return Err(format!(
            "origin is {:?}, expected {origin:?}",
            checkpoint.origin
        ));
    }
    Ok(SignedCheckpoint {
        note: note.to_owned(),
        checkpoint,
    })
}

/// An envelope checked against `verifier`: signed, a snapshot statement, at `index` of `host`.
pub fn open_entry(
    verifier: &NoteVerifier,
    host: &str,
    index: u64,
    envelope: &[u8],
) -> Result<Statement, String> {
    let payload = statement::open(envelope, verifier).map_err(|e| e.to_string())?;
    let st = Statement::from_payload(&payload).map_err(|e| e.to_string())?;
    if st.predicate.log_index != index {
        return Err(format!(
            "statement was signed for log index {}, found at {index}",
            st.predicate.log_index
        ));
    }
    if st.predicate.host != host {
        return Err(format!(
            "statement is for host {:?}, not {host:?}",
            st.predicate.host
        ));
    }
    Ok(st)
}

/// The smallest range between checkpoints (of `sizes`) holding entries `first..=last`: from
/// the largest checkpoint at or before `first` (or 0) to the smallest one after `last`.
pub fn choose_range(first: u64, last: u64, sizes: &[u64]) -> Result<(u64, u64), String> {
    let start = sizes
        .iter()
        .copied()
        .filter(|s| *s <= first)
        .max()
        .unwrap_or(0);
    let end = sizes
        .iter()
        .copied()
        .filter(|s| *s > last)
        .min()
        .ok_or_else(|| format!("no signed checkpoint covers entry {last}"))?;
    Ok((start, end))
}

/// The slice of the local ledger that holds every entry scheduled in `period`, checked.
pub fn from_ledger(
    ledger: &Ledger,
    verifier: &NoteVerifier,
    period: &Period,
) -> Result<HostLog, BundleError> {
    let host = ledger.host_id().to_owned();
    layout::check_host_id(&host)?;
    let corrupt = |what: String| {
        BundleError::Invalid(format!(
            "{}: {what}; run `evidence-agent verify` on it",
            ledger.path().display()
        ))
    };
    let (mut first, mut last) = (u64::MAX, None);
    ledger.for_each_entry(|e| {
        let in_period = DateTime::parse_from_rfc3339(&e.scheduled_for)
            .map(|t| period.contains(t.with_timezone(&Utc)))
            .unwrap_or(false);
        if in_period {
            first = first.min(e.index);
            last = Some(e.index);
        }
        Ok(())
    })?;
    let Some(last) = last else {
        return Err(BundleError::Invalid(format!(
            "{}: no entry is scheduled in the period {} to {}",
            ledger.path().display(),
            crate::ledger::timestamp(period.from),
            crate::ledger::timestamp(period.to)
        )));
    };
    let sizes: Vec<u64> = ledger.checkpoints()?.iter().map(|c| c.size).collect();
    let (start, end) = choose_range(first, last, &sizes).map_err(corrupt)?;
    let origin = ledger.origin();
    let checkpoint = |size: u64| -> Result<SignedCheckpoint, BundleError> {
        let stored = ledger
            .checkpoint(size)?
            .ok_or_else(|| corrupt(format!("checkpoint {size} vanished")))?;
        open_checkpoint(verifier, &origin, &stored.note)
            .map_err(|e| corrupt(format!("checkpoint {size}: {e}")))
    };
    let end_cp = checkpoint(end)?;
    let start_cp = if start > 0 {
        Some(checkpoint(start)?)
    } else {
        None
    };
    let root = end_cp.checkpoint.root;
    let mut entries = Vec::with_capacity((end - start) as usize);
    for e in ledger.entries(start, end - start)? {
        let statement = open_entry(verifier, &host, e.index, &e.envelope)
            .map_err(|why| corrupt(format!("entry {}: {why}", e.index)))?;
        let proof = ledger.inclusion_proof(e.index, end)?;
        if !merkle::verify_inclusion(&merkle::leaf_hash(&e.envelope), e.index, end, &proof, &root) {
            return Err(corrupt(format!(
                "entry {} is not in the tree of checkpoint {end}",
                e.index
            )));
        }
        entries.push(LogEntry {
            index: e.index,
            envelope: e.envelope,
            statement,
            proof,
        });
    }
    if entries.len() as u64 != end - start {
        return Err(corrupt(format!(
            "entries {start}..{end} are not all present"
        )));
    }
    let consistency = match &start_cp {
        Some(s) => {
            let proof = ledger.consistency_proof(start, end)?;
            if !merkle::verify_consistency(start, end, &s.checkpoint.root, &root, &proof) {
                return Err(corrupt(format!(
                    "checkpoints {start} and {end} are not consistent"
                )));
            }
            proof
        }
        None => Vec::new(),
    };
    Ok(HostLog {
        host,
        source: "ledger".into(),
        vkey: verifier.to_string(),
        start: start_cp,
        end: end_cp,
        entries,
        consistency,
    })
}

impl BlobSource for Ledger {
    fn copy_to(&self, digest_hex: &str, out: &mut dyn Write) -> Result<Option<u64>, BundleError> {
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(digest_hex, &mut digest).is_err() {
            return Ok(None);
        }
        Ok(self.copy_blob(&digest, out)?)
    }
}

/// Writes bundle files under a directory, remembering each one's digest and size.
struct BundleWriter {
    dir: PathBuf,
    files: Vec<FileEntry>,
}

/// Hashes and counts what passes through to the inner writer.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl BundleWriter {
    /// Create `rel` and fill it with `fill`.
    fn write_with(
        &mut self,
        rel: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<(), BundleError>,
    ) -> Result<(), BundleError> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| BundleError::io(parent, e))?;
        }
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| BundleError::io(&path, e))?;
        let mut w = Hashing {
            inner: BufWriter::new(file),
            hasher: Sha256::new(),
            size: 0,
        };
        fill(&mut w)?;
        w.flush().map_err(|e| BundleError::io(&path, e))?;
        self.files.push(FileEntry {
            path: rel.to_owned(),
            sha256: hex::encode(w.hasher.finalize()),
            size: w.size,
        });
        Ok(())
    }

    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<(), BundleError> {
        let path = self.dir.join(rel);
        self.write_with(rel, |w| {
            w.write_all(bytes).map_err(|e| BundleError::io(&path, e))
        })
    }
}

/// What to export and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub params: Params,
}

/// Summary of a written bundle.
#[derive(Debug)]
pub struct Written {
    pub hosts: usize,
    pub files: usize,
    pub entries: usize,
    pub blobs: usize,
    pub gaps: usize,
    pub sampled: usize,
}

/// Write the bundle of `hosts` (each with the blob source it came from) to `options.out`.
///
/// The logs are taken, not borrowed: once a host's entries and proofs are written, their
/// bytes are released ([`HostLog::release_leaves`]), so a year of a fleet is held in memory
/// once, as statements, rather than as envelopes and proofs too.
pub fn write(
    hosts: Vec<(HostLog, &dyn BlobSource)>,
    options: &Options,
) -> Result<Written, BundleError> {
    let out = &options.out;
    if out.exists() {
        return Err(BundleError::Invalid(format!(
            "{}: already exists; a bundle is written to a new path",
            out.display()
        )));
    }
    let packed = archive::is_archive(out);
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // A .tar.gz is staged in a directory beside it; a directory is written in place under a
    // temporary name and renamed, so a failed export never leaves a half bundle at `out`. A
    // killed export leaves its staging behind, unlocked: the next export removes it.
    for left in staging::remove_stale(&parent) {
        tracing::info!("removed {}, left by an interrupted export", left.display());
    }
    let staging = tempfile::Builder::new()
        .prefix(staging::PREFIX)
        .tempdir_in(&parent)
        .map_err(|e| BundleError::io(&parent, e))?;
    let _held = staging::hold(staging.path()).map_err(|e| BundleError::io(staging.path(), e))?;
    let mut w = BundleWriter {
        dir: staging.path().to_owned(),
        files: Vec::new(),
    };
    let (mut logs, sources): (Vec<HostLog>, Vec<&dyn BlobSource>) = hosts.into_iter().unzip();
    let mut fingerprints = Vec::with_capacity(logs.len());
    for log in &mut logs {
        let verifier =
            NoteVerifier::parse(&log.vkey).map_err(|e| BundleError::Invalid(e.to_string()))?;
        fingerprints.push(crate::keys::fingerprint(&verifier));
        write_host_log(&mut w, log)?;
        log.release_leaves();
    }
    let blobs = Union(sources);
    let derived = derive::derive(&logs, &fingerprints, &blobs, &options.params)?;
    for digest in &derived.blobs {
        let rel = layout::blob_path(digest);
        let path = w.dir.join(&rel);
        let mut found = None;
        w.write_with(&rel, |out| {
            found = blobs.copy_to(digest, out)?;
            Ok(())
        })?;
        if found.is_none() {
            return Err(BundleError::Invalid(format!(
                "content sha256:{digest} is not stored ({}); the ledger lost a blob",
                path.display()
            )));
        }
    }
    w.write(layout::POPULATION, &derived.population_csv)?;
    w.write(layout::SAMPLE, &derived.sample_csv)?;
    w.write(layout::REPORT, derived.report_html.as_bytes())?;
    let p = &options.params;
    let mut files = std::mem::take(&mut w.files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        format: super::FORMAT.into(),
        agent_version: p.agent_version.clone(),
        created_at: p.created_at,
        period: p.period,
        filters: p.filters.clone(),
        sample: p.sample.clone(),
        hosts: logs
            .iter()
            .map(|l| HostPart {
                host: l.host.clone(),
                source: l.source.clone(),
                start_size: l.start_size(),
                end_size: l.end.size(),
            })
            .collect(),
        files: files.clone(),
    };
    w.write(layout::MANIFEST, &layout::to_json(&manifest))?;
    files.append(&mut w.files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let sums: String = files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    w.write(layout::SHA256SUMS, sums.as_bytes())?;

    let written = Written {
        hosts: logs.len(),
        files: files.len() + 1,
        entries: logs.iter().map(|l| l.entries.len()).sum(),
        blobs: derived.blobs.len(),
        gaps: derived
            .hosts
            .iter()
            .flat_map(|h| &h.coverage)
            .map(|c| c.gaps.len())
            .sum(),
        sampled: derived
            .hosts
            .iter()
            .flat_map(|h| &h.samples)
            .map(|d| d.rows.len())
            .sum(),
    };
    if packed {
        archive::pack(staging.path(), out)?;
    } else {
        let dir = staging.keep();
        fs::rename(&dir, out).map_err(|e| BundleError::io(out, e))?;
    }
    Ok(written)
}

fn write_host_log(w: &mut BundleWriter, log: &HostLog) -> Result<(), BundleError> {
    let host = &log.host;
    w.write(
        &layout::vkey_path(host),
        format!("{}\n", log.vkey).as_bytes(),
    )?;
    for cp in log.start.iter().chain(std::iter::once(&log.end)) {
        w.write(
            &layout::checkpoint_path(host, cp.size()),
            cp.note.as_bytes(),
        )?;
    }
    if let Some(start) = &log.start {
        let doc = layout::ConsistencyDoc {
            old_size: start.size(),
            new_size: log.end.size(),
            hashes: layout::encode_hashes(&log.consistency),
        };
        w.write(
            &layout::consistency_path(host, start.size(), log.end.size()),
            &layout::to_json(&doc),
        )?;
    }
    for e in &log.entries {
        w.write(&layout::entry_path(host, e.index), &e.envelope)?;
        let doc = layout::InclusionDoc {
            leaf_index: e.index,
            tree_size: log.end.size(),
            hashes: layout::encode_hashes(&e.proof),
        };
        w.write(
            &layout::inclusion_path(host, e.index),
            &layout::to_json(&doc),
        )?;
    }
    Ok(())
}

/// Several hosts' blob sources as one: content is addressed by digest, so any holder will do.
struct Union<'a>(Vec<&'a dyn BlobSource>);

impl BlobSource for Union<'_> {
    fn copy_to(&self, digest_hex: &str, out: &mut dyn Write) -> Result<Option<u64>, BundleError> {
        for source in &self.0 {
            if let Some(n) = source.copy_to(digest_hex, out)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }
}
