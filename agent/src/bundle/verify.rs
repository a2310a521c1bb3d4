//! Verifying a bundle offline: every file against SHA256SUMS and the manifest, every checkpoint
//! and envelope signature, every inclusion proof against the end checkpoint, the consistency
//! of the start and end checkpoints, every blob against its digest, completeness of each
//! host's range, then the derived files (populations, sample, report) recomputed from the
//! checked entries and compared byte for byte, and the schedule coverage, whose gaps are
//! findings.
//!
//! A bundle comes from outside: an archive is extracted by [`super::archive`] (no traversal,
//! no links, bounded sizes), a directory is walked without following links, and every parse
//! error is a finding naming the file, never a panic.

use super::archive;
use super::derive::{self, Params};
use super::export::{open_checkpoint, open_entry};
use super::hostlog::{BlobSource, HostLog, LogEntry};
use super::layout::{self, ConsistencyDoc, InclusionDoc, Manifest};
use super::sample::METHOD;
use super::BundleError;
use crate::par::par_map;
use crate::tlog::merkle;
use crate::tlog::note::NoteVerifier;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest manifest.json or SHA256SUMS read (a 1M-entry bundle's manifest is ~150 MB).
const MAX_INDEX_FILE: u64 = 1 << 30;
/// The largest entry, proof or checkpoint file read: entries are at most 64 KiB.
const MAX_SMALL_FILE: u64 = 1 << 20;

/// One problem, with the bundle file it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub file: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// How a host's key was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    pub vkey: String,
    pub pinned: bool,
    pub start_size: u64,
    pub end_size: u64,
    pub entries: u64,
}

/// The outcome of verifying a bundle.
#[derive(Debug, Default, Serialize)]
pub struct BundleReport {
    pub format: String,
    pub period: Option<layout::Period>,
    pub hosts: Vec<HostResult>,
    pub files_checked: u64,
    pub blobs_checked: u64,
    pub gaps: u64,
    pub sampled: u64,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

impl BundleReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    fn find(&mut self, file: Option<&str>, message: impl Into<String>) {
        self.findings.push(Finding {
            file: file.map(str::to_owned),
            message: message.into(),
        });
    }
}

/// A bundle directory's files and their SHA-256. Entry and proof files (two per entry, most
/// of a bundle) are hashed when the entry check reads them, so each is read once and the bytes
/// checked are the bytes hashed; every other file is hashed up front.
struct Files {
    dir: PathBuf,
    /// Relative path → SHA-256 hex, for every regular file (`None` until read, for entry and
    /// proof files).
    sha256: BTreeMap<String, Option<String>>,
    /// Hashes of the files [`Files::read`] read.
    read: std::sync::Mutex<HashMap<String, String>>,
}

impl Files {
    /// The file's bytes, refusing more than `limit`; its hash is remembered.
    fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, String> {
        if !self.sha256.contains_key(rel) {
            return Err("missing".into());
        }
        let too_big = || format!("larger than the {limit} bytes such a file may have");
        let path = self.dir.join(rel);
        let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len > limit {
            return Err(too_big());
        }
        let mut bytes = Vec::with_capacity(len as usize);
        // The limit holds even if the file grows after its size was read.
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > limit {
            return Err(too_big());
        }
        if let Ok(mut read) = self.read.lock() {
            read.insert(rel.to_owned(), hex::encode(Sha256::digest(&bytes)));
        }
        Ok(bytes)
    }

    /// Give every file its hash: from the reads since, else (files no check read) by hashing.
    fn settle(&mut self) -> Result<(), BundleError> {
        let mut read = std::mem::take(self.read.get_mut().unwrap_or_else(|e| e.into_inner()));
        let mut unread = Vec::new();
        for (rel, hash) in self.sha256.iter_mut().filter(|(_, h)| h.is_none()) {
            match read.remove(rel) {
                Some(h) => *hash = Some(h),
                None => unread.push(rel.clone()),
            }
        }
        let dir = self.dir.clone();
        let hashes = par_map(&unread, |rel| hash_file(&dir, rel));
        for (rel, hash) in unread.into_iter().zip(hashes) {
            self.sha256.insert(rel, Some(hash?));
        }
        Ok(())
    }

    /// Every file with its hash, once [`Files::settle`]d.
    fn hashes(&self) -> impl Iterator<Item = (&String, &str)> {
        self.sha256
            .iter()
            .map(|(rel, h)| (rel, h.as_deref().unwrap_or("")))
    }
}

/// Blobs of the bundle whose name matched their content.
struct BundleBlobs<'a> {
    files: &'a Files,
    good: BTreeSet<String>,
}

impl BlobSource for BundleBlobs<'_> {
    fn copy_to(
        &self,
        digest_hex: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, BundleError> {
        if !self.good.contains(digest_hex) {
            return Ok(None);
        }
        let path = self.files.dir.join(layout::blob_path(digest_hex));
        let mut file = std::fs::File::open(&path).map_err(|e| BundleError::io(&path, e))?;
        let n = std::io::copy(&mut file, out).map_err(|e| BundleError::io(&path, e))?;
        Ok(Some(n))
    }
}

/// Verify the bundle at `path` (a directory or a `.tar.gz`). `pinned` are the keys the auditor
/// trusts; a host without one is checked with the key in the bundle and reported not pinned.
pub fn verify(path: &Path, pinned: &[NoteVerifier]) -> Result<BundleReport, BundleError> {
    let extracted;
    let dir = if archive::is_archive(path) {
        let parent = std::env::temp_dir();
        extracted = tempfile::Builder::new()
            .prefix("evidence-verify-")
            .tempdir_in(&parent)
            .map_err(|e| BundleError::io(&parent, e))?;
        archive::extract(path, extracted.path())?;
        extracted.path().to_owned()
    } else if path.is_dir() {
        path.to_owned()
    } else {
        return Err(BundleError::Invalid(format!(
            "{}: not a bundle directory nor a .tar.gz",
            path.display()
        )));
    };
    let mut report = BundleReport::default();
    let mut files = hash_files(&dir)?;
    report.files_checked = files.sha256.len() as u64;
    let manifest = read_manifest(&files)?;
    report.format = manifest.format.clone();
    report.period = Some(manifest.period);

    // Blobs: the name is the digest.
    let mut good_blobs = BTreeSet::new();
    for (rel, sha) in files.sha256.range("blobs/".to_owned()..) {
        let sha = sha.clone().unwrap_or_default();
        let Some(name) = rel.strip_prefix("blobs/sha256/") else {
            if !rel.starts_with("blobs/") {
                break;
            }
            report.find(Some(rel), "unexpected file under blobs/");
            continue;
        };
        if name == sha {
            good_blobs.insert(sha);
        } else {
            report.find(
                Some(rel),
                format!("content does not match its name: its SHA-256 is {sha}"),
            );
        }
    }
    report.blobs_checked = good_blobs.len() as u64;

    let mut logs = Vec::new();
    let mut fingerprints = Vec::new();
    for part in &manifest.hosts {
        if let Some((mut log, verifier)) = check_host(&files, part, pinned, &mut report)? {
            fingerprints.push(crate::keys::fingerprint(&verifier));
            // Checked; what follows reads statements only.
            log.release_leaves();
            logs.push(log);
        }
    }
    files.settle()?;
    check_sums(&files, &manifest, &mut report);
    if logs.len() < manifest.hosts.len() {
        // Derived files are only meaningful over entries that all hold.
        report.notes.push(
            "populations, sample and report were not recomputed: a host's entries do not hold"
                .into(),
        );
        return Ok(report);
    }

    let blobs = BundleBlobs {
        files: &files,
        good: good_blobs,
    };
    let params = Params {
        period: manifest.period,
        created_at: manifest.created_at,
        agent_version: manifest.agent_version.clone(),
        filters: manifest.filters.clone(),
        sample: manifest.sample.clone(),
    };
    if let Some(s) = &manifest.sample {
        if s.method != METHOD {
            report.find(
                Some(layout::MANIFEST),
                format!("sample method {:?} is not {METHOD:?}", s.method),
            );
            return Ok(report);
        }
    }
    let derived = match derive::derive(&logs, &fingerprints, &blobs, &params) {
        Ok(d) => d,
        Err(e) => {
            report.find(None, format!("cannot recompute the populations: {e}"));
            return Ok(report);
        }
    };
    for digest in &derived.blobs {
        if !blobs.good.contains(digest) {
            report.find(
                Some(&layout::blob_path(digest)),
                "missing: the entries the bundle exports name this content",
            );
        }
    }
    compare(
        &files,
        layout::POPULATION,
        &derived.population_csv,
        "the populations the entries give",
        &mut report,
    );
    compare(
        &files,
        layout::SAMPLE,
        &derived.sample_csv,
        "the sample the seed selects from the populations",
        &mut report,
    );
    if manifest.agent_version == env!("CARGO_PKG_VERSION") {
        compare(
            &files,
            layout::REPORT,
            derived.report_html.as_bytes(),
            "the report of the bundle's entries",
            &mut report,
        );
    } else {
        report.notes.push(format!(
            "report.html was made by evidence-agent {} and this is {}: not re-rendered",
            manifest.agent_version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    for h in &derived.hosts {
        report.sampled += h.samples.iter().map(|d| d.rows.len() as u64).sum::<u64>();
        for c in &h.coverage {
            if let Some(why) = &c.unchecked {
                report.notes.push(format!(
                    "{}/{}: schedule coverage not checked: {why}",
                    c.host, c.collector
                ));
            }
            for g in &c.gaps {
                report.gaps += 1;
                report.find(
                    None,
                    format!(
                        "{}/{}: gap: {} scheduled run(s) from {} to {} left no entry",
                        c.host,
                        c.collector,
                        g.runs,
                        crate::ledger::timestamp(g.first),
                        crate::ledger::timestamp(g.last)
                    ),
                );
            }
        }
    }
    Ok(report)
}

fn compare(files: &Files, rel: &str, expected: &[u8], what: &str, report: &mut BundleReport) {
    match files.read(rel, u64::MAX / 2) {
        Ok(bytes) if bytes == expected => {}
        Ok(_) => report.find(Some(rel), format!("differs from {what}")),
        Err(e) => report.find(Some(rel), e),
    }
}

fn hash_file(dir: &Path, rel: &str) -> Result<String, BundleError> {
    let path = dir.join(rel);
    let mut file = std::fs::File::open(&path).map_err(|e| BundleError::io(&path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(|e| BundleError::io(&path, e))?;
    Ok(hex::encode(h.finalize()))
}

/// `entries/<host>/<n>.json` or `proofs/<host>/<n>.json`: hashed when read.
fn hashed_on_read(rel: &str) -> bool {
    let mut parts = rel.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("entries" | "proofs"), Some(_), Some(name), None) => name
            .strip_suffix(".json")
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        _ => false,
    }
}

/// Walk the bundle (no links followed) and hash every file but entries and proofs.
fn hash_files(dir: &Path) -> Result<Files, BundleError> {
    let names = archive::list_files(dir)?;
    let hashes = par_map(&names, |rel| {
        if hashed_on_read(rel) {
            Ok(None)
        } else {
            hash_file(dir, rel).map(Some)
        }
    });
    let mut sha256 = BTreeMap::new();
    for (rel, hash) in names.into_iter().zip(hashes) {
        sha256.insert(rel, hash?);
    }
    Ok(Files {
        dir: dir.to_owned(),
        sha256,
        read: Default::default(),
    })
}

fn read_manifest(files: &Files) -> Result<Manifest, BundleError> {
    let bad = |why: String| BundleError::Invalid(format!("{}: {why}", layout::MANIFEST));
    let bytes = files.read(layout::MANIFEST, MAX_INDEX_FILE).map_err(bad)?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a bundle manifest: {e}")))?;
    if manifest.format != super::FORMAT {
        return Err(bad(format!(
            "format is {:?}; this verifier reads {:?}",
            manifest.format,
            super::FORMAT
        )));
    }
    let mut hosts = BTreeSet::new();
    for part in &manifest.hosts {
        layout::check_host_id(&part.host)?;
        if !hosts.insert(&part.host) {
            return Err(bad(format!("host {} is listed twice", part.host)));
        }
        if part.start_size >= part.end_size {
            return Err(bad(format!(
                "host {}: range {}..{} is empty",
                part.host, part.start_size, part.end_size
            )));
        }
    }
    Ok(manifest)
}

/// SHA256SUMS and the manifest's file list against the files as found.
fn check_sums(files: &Files, manifest: &Manifest, report: &mut BundleReport) {
    let sums_file = Some(layout::SHA256SUMS);
    let mut listed: HashMap<String, String> = HashMap::new();
    match files.read(layout::SHA256SUMS, MAX_INDEX_FILE) {
        Err(e) => report.find(sums_file, e),
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            for (n, line) in text.lines().enumerate() {
                match line.split_once("  ") {
                    Some((sha, rel)) if sha.len() == 64 && !rel.is_empty() => {
                        listed.insert(rel.to_owned(), sha.to_owned());
                    }
                    _ => report.find(sums_file, format!("line {}: not `<sha256>  <path>`", n + 1)),
                }
            }
        }
    }
    for (rel, sha) in files.hashes() {
        if rel == layout::SHA256SUMS {
            continue;
        }
        match listed.remove(rel) {
            None => report.find(Some(rel), "not listed in SHA256SUMS (added?)"),
            Some(want) if want != sha => {
                report.find(Some(rel), "content does not match SHA256SUMS (altered?)")
            }
            Some(_) => {}
        }
    }
    for rel in listed.keys() {
        report.find(Some(rel), "listed in SHA256SUMS but missing (removed?)");
    }
    let mut in_manifest = BTreeSet::new();
    for f in &manifest.files {
        in_manifest.insert(f.path.as_str());
        match files.sha256.get(&f.path) {
            None => report.find(Some(&f.path), "listed in manifest.json but missing"),
            Some(sha) if sha.as_deref() != Some(f.sha256.as_str()) => {
                report.find(Some(&f.path), "content does not match manifest.json")
            }
            Some(_) => {}
        }
    }
    for rel in files.sha256.keys() {
        if rel != layout::MANIFEST
            && rel != layout::SHA256SUMS
            && !in_manifest.contains(rel.as_str())
        {
            report.find(Some(rel), "not listed in manifest.json");
        }
    }
}

/// Check one host's part and rebuild its log from the files; `None` if it cannot be used.
fn check_host(
    files: &Files,
    part: &layout::HostPart,
    pinned: &[NoteVerifier],
    report: &mut BundleReport,
) -> Result<Option<(HostLog, NoteVerifier)>, BundleError> {
    let host = &part.host;
    let origin = crate::keys::key_name(host);
    let vkey_rel = layout::vkey_path(host);
    let bundled = files
        .read(&vkey_rel, MAX_SMALL_FILE)
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".to_owned()))
        .and_then(|t| NoteVerifier::parse(t.trim_end_matches('\n')).map_err(|e| e.to_string()));
    let verifier = match (pinned.iter().find(|v| v.name() == origin), bundled) {
        (Some(pin), Ok(b)) => {
            if b.to_string() != pin.to_string() {
                report.find(
                    Some(&vkey_rel),
                    format!("is not the pinned key for {origin} ({pin})"),
                );
            }
            pin.clone()
        }
        (Some(pin), Err(e)) => {
            report.find(Some(&vkey_rel), e);
            pin.clone()
        }
        (None, Ok(b)) => {
            report.notes.push(format!(
                "{host}: key taken from the bundle itself ({vkey_rel}), NOT pinned: pass --vkey with the key obtained from the host's owner"
            ));
            b
        }
        (None, Err(e)) => {
            report.find(Some(&vkey_rel), e);
            return Ok(None);
        }
    };
    report.hosts.push(HostResult {
        host: host.clone(),
        vkey: verifier.to_string(),
        pinned: pinned.iter().any(|v| v.name() == origin),
        start_size: part.start_size,
        end_size: part.end_size,
        entries: part.end_size - part.start_size,
    });
    let findings_before = report.findings.len();
    let mut checkpoint = |size: u64| {
        let rel = layout::checkpoint_path(host, size);
        let cp = files
            .read(&rel, MAX_SMALL_FILE)
            .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".to_owned()))
            .and_then(|note| open_checkpoint(&verifier, &origin, &note))
            .and_then(|cp| {
                if cp.size() == size {
                    Ok(cp)
                } else {
                    Err(format!("signed tree size is {}, not {size}", cp.size()))
                }
            });
        cp.map_err(|e| report.find(Some(&rel), e)).ok()
    };
    let end = checkpoint(part.end_size);
    let start = if part.start_size > 0 {
        checkpoint(part.start_size)
    } else {
        None
    };
    let Some(end) = end else { return Ok(None) };
    let root = end.checkpoint.root;

    let mut consistency = Vec::new();
    if let Some(start) = &start {
        let rel = layout::consistency_path(host, part.start_size, part.end_size);
        let checked = files
            .read(&rel, MAX_SMALL_FILE)
            .and_then(|b| serde_json::from_slice::<ConsistencyDoc>(&b).map_err(|e| e.to_string()))
            .and_then(|doc| {
                if doc.old_size != part.start_size || doc.new_size != part.end_size {
                    return Err(format!("is for {}..{}", doc.old_size, doc.new_size));
                }
                let hashes = layout::decode_hashes(&doc.hashes)?;
                if merkle::verify_consistency(
                    doc.old_size,
                    doc.new_size,
                    &start.checkpoint.root,
                    &root,
                    &hashes,
                ) {
                    Ok(hashes)
                } else {
                    Err("does not prove the end checkpoint extends the start one".into())
                }
            });
        match checked {
            Ok(h) => consistency = h,
            Err(e) => report.find(Some(&rel), e),
        }
    }

    let mut entries = Vec::with_capacity((part.end_size - part.start_size) as usize);
    let indexes: Vec<u64> = (part.start_size..part.end_size).collect();
    let checked = par_map(&indexes, |i| {
        check_entry(files, &verifier, host, *i, part.end_size, &root)
    });
    for result in checked {
        match result {
            Ok(e) => entries.push(e),
            Err((rel, why)) => report.find(Some(&rel), why),
        }
    }
    // Entry and proof files outside the range are not part of what the checkpoints vouch for.
    for prefix in [format!("entries/{host}/"), format!("proofs/{host}/")] {
        for rel in files.sha256.range(prefix.clone()..).map(|(k, _)| k) {
            let Some(name) = rel.strip_prefix(&prefix) else {
                break;
            };
            let index = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<u64>().ok());
            let in_range = index.is_some_and(|i| (part.start_size..part.end_size).contains(&i))
                || (start.is_some()
                    && *name == format!("consistency-{}-{}.json", part.start_size, part.end_size));
            if !in_range {
                report.find(Some(rel), "not part of the host's exported range");
            }
        }
    }
    if report.findings.len() > findings_before {
        return Ok(None);
    }
    Ok(Some((
        HostLog {
            host: host.clone(),
            source: part.source.clone(),
            vkey: verifier.to_string(),
            start,
            end,
            entries,
            consistency,
        },
        verifier,
    )))
}

/// One entry: its envelope's signature and statement, and its inclusion proof.
fn check_entry(
    files: &Files,
    verifier: &NoteVerifier,
    host: &str,
    index: u64,
    tree_size: u64,
    root: &crate::tlog::Hash,
) -> Result<LogEntry, (String, String)> {
    let entry_rel = layout::entry_path(host, index);
    let envelope = files
        .read(&entry_rel, MAX_SMALL_FILE)
        .map_err(|e| (entry_rel.clone(), e))?;
    let statement =
        open_entry(verifier, host, index, &envelope).map_err(|e| (entry_rel.clone(), e))?;
    let proof_rel = layout::inclusion_path(host, index);
    let doc: InclusionDoc = files
        .read(&proof_rel, MAX_SMALL_FILE)
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("not an inclusion proof: {e}"))
        })
        .map_err(|e| (proof_rel.clone(), e))?;
    if doc.leaf_index != index || doc.tree_size != tree_size {
        return Err((
            proof_rel,
            format!(
                "is for leaf {} of tree {}, expected leaf {index} of {tree_size}",
                doc.leaf_index, doc.tree_size
            ),
        ));
    }
    let proof = layout::decode_hashes(&doc.hashes).map_err(|e| (proof_rel.clone(), e))?;
    if !merkle::verify_inclusion(
        &merkle::leaf_hash(&envelope),
        index,
        tree_size,
        &proof,
        root,
    ) {
        return Err((
            proof_rel,
            format!("does not prove {entry_rel} is in the tree of checkpoint {tree_size}"),
        ));
    }
    Ok(LogEntry {
        index,
        envelope,
        statement,
        proof,
    })
}
