//! Re-checking a whole local ledger: every envelope signature, every blob digest, every leaf,
//! the tree against every stored checkpoint, and the stored proof nodes against the latest one.
//!
//! Verification reports problems instead of stopping at the first, each naming the entry index
//! or checkpoint size it concerns, so an operator learns what was altered and where.

use super::{Ledger, LedgerError};
use crate::statement::{self, Statement};
use crate::tlog::merkle::{self, TreeBuilder};
use crate::tlog::note::{Checkpoint, NoteVerifier};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The entry concerned, when the problem is an entry's.
    pub entry: Option<u64>,
    /// The checkpoint (by tree size) concerned, when it is a checkpoint's.
    pub checkpoint: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.entry, self.checkpoint) {
            (Some(e), _) => write!(f, "entry {e}: {}", self.message),
            (None, Some(c)) => write!(f, "checkpoint {c}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub entries: u64,
    pub blobs_checked: u64,
    pub checkpoints: u64,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    fn entry(&mut self, index: u64, message: impl Into<String>) {
        self.findings.push(Finding {
            entry: Some(index),
            checkpoint: None,
            message: message.into(),
        });
    }

    fn checkpoint(&mut self, size: u64, message: impl Into<String>) {
        self.findings.push(Finding {
            entry: None,
            checkpoint: Some(size),
            message: message.into(),
        });
    }
}

/// Hashes everything written to it.
struct HashWriter(Sha256, u64);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Verify `ledger` with `verifier` (the pinned host key).
pub fn verify(ledger: &Ledger, verifier: &NoteVerifier) -> Result<Report, LedgerError> {
    // One read transaction: a daemon appending meanwhile must not make checkpoints and entries
    // come from different moments.
    let _snapshot = ledger.conn.unchecked_transaction()?;
    let mut report = Report::default();
    let origin = ledger.origin();

    // Checkpoints first: each must be signed by the key and name this log.
    let mut roots: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for stored in ledger.checkpoints()? {
        report.checkpoints += 1;
        let text = match verifier.open(&stored.note) {
            Ok(text) => text,
            Err(e) => {
                report.checkpoint(stored.size, e.to_string());
                continue;
            }
        };
        match Checkpoint::parse(text) {
            Err(e) => report.checkpoint(stored.size, e.to_string()),
            Ok(cp) if cp.origin != origin => report.checkpoint(
                stored.size,
                format!("origin is {:?}, expected {origin:?}", cp.origin),
            ),
            Ok(cp) if cp.size != stored.size => report.checkpoint(
                stored.size,
                format!(
                    "signed tree size is {}, stored under {}",
                    cp.size, stored.size
                ),
            ),
            Ok(cp) => {
                roots.insert(cp.size, cp.root);
            }
        }
    }

    // Then every entry in order, rebuilding the tree and checking each checkpoint on the way.
    let mut tree = TreeBuilder::new();
    let mut blob_ok: HashMap<[u8; 32], bool> = HashMap::new();
    let mut expected_index = 0u64;
    let mut last_good_checkpoint = 0u64;
    ledger.for_each_entry(|e| {
        if e.index != expected_index {
            report.entry(
                expected_index,
                format!(
                    "missing: entries {expected_index}..{} are absent (deleted?)",
                    e.index.saturating_sub(1)
                ),
            );
        }
        expected_index = e.index.saturating_add(1);
        report.entries += 1;
        check_entry(ledger, verifier, &e, &mut blob_ok, &mut report)?;
        let leaf = merkle::leaf_hash(&e.envelope);
        if leaf != e.leaf_hash {
            report.entry(
                e.index,
                "stored leaf hash is not the hash of the stored envelope",
            );
        }
        // The tree is over positions: a missing entry leaves the rest of the tree unmatchable,
        // which the checkpoint comparison below reports.
        tree.push(leaf);
        if let Some(root) = roots.get(&tree.size()) {
            if *root == tree.root() {
                last_good_checkpoint = tree.size();
            } else {
                report.checkpoint(
                    tree.size(),
                    format!(
                        "signed root does not match the entries: an entry in {}..{} was altered, \
                         removed or reordered",
                        last_good_checkpoint,
                        tree.size() - 1
                    ),
                );
            }
        }
        Ok(())
    })?;

    let size = tree.size();
    if let Some((&latest, root)) = roots.iter().next_back() {
        if latest > size {
            report.checkpoint(
                latest,
                format!(
                    "signed for {latest} entries but the ledger holds {size}: entries {size}..{} \
                     are missing (truncated)",
                    latest - 1
                ),
            );
        } else {
            // Proofs are served from stored nodes: they must give the signed root too.
            match ledger.root(latest) {
                Ok(r) if r == *root => {}
                Ok(_) => report.checkpoint(latest, "stored tree nodes do not give the signed root"),
                Err(e) => report.checkpoint(latest, format!("stored tree nodes: {e}")),
            }
            check_consistency_chain(ledger, &roots, size, &mut report);
        }
    } else if size > 0 {
        report.findings.push(Finding {
            entry: None,
            checkpoint: None,
            message: format!("no signed checkpoint covers the ledger's {size} entries"),
        });
    }
    if let Some((&latest, _)) = roots.iter().next_back() {
        if latest < size {
            report.entry(
                latest,
                format!(
                    "entries {latest}..{} are not covered by any signed checkpoint",
                    size - 1
                ),
            );
        }
    }
    report.blobs_checked = blob_ok.len() as u64;
    Ok(report)
}

fn check_entry(
    ledger: &Ledger,
    verifier: &NoteVerifier,
    e: &super::EntryRecord,
    blob_ok: &mut HashMap<[u8; 32], bool>,
    report: &mut Report,
) -> Result<(), LedgerError> {
    let payload = match statement::open(&e.envelope, verifier) {
        Ok(p) => p,
        Err(err) => {
            report.entry(e.index, err.to_string());
            return Ok(());
        }
    };
    let st = match Statement::from_payload(&payload) {
        Ok(st) => st,
        Err(err) => {
            report.entry(e.index, err.to_string());
            return Ok(());
        }
    };
    let p = &st.predicate;
    if p.log_index != e.index {
        report.entry(
            e.index,
            format!(
                "statement was signed for log index {}, found at {} (entries reordered or removed)",
                p.log_index, e.index
            ),
        );
    }
    if p.host != ledger.host_id() {
        report.entry(e.index, format!("statement is for host {:?}", p.host));
    }
    let digest_hex = hex::encode(e.content_digest);
    if st.content_sha256() != digest_hex
        || p.collector.id != e.collector_id
        || p.status.as_str() != e.status
        || p.trigger.as_str() != e.trigger
        || p.scheduled_for != e.scheduled_for
    {
        report.entry(e.index, "index columns disagree with the signed statement");
    }
    let ok = match blob_ok.get(&e.content_digest) {
        Some(ok) => *ok,
        None => {
            let mut w = HashWriter(Sha256::new(), 0);
            let ok = match ledger.copy_blob(&e.content_digest, &mut w)? {
                None => false,
                Some(_) => <[u8; 32]>::from(w.0.finalize()) == e.content_digest,
            };
            blob_ok.insert(e.content_digest, ok);
            if ok && w.1 != p.content_size {
                report.entry(
                    e.index,
                    format!(
                        "content has {} bytes, statement says {}",
                        w.1, p.content_size
                    ),
                );
            }
            ok
        }
    };
    if !ok {
        report.entry(
            e.index,
            format!("content sha256:{digest_hex} is missing or does not match its digest"),
        );
    }
    Ok(())
}

/// Consecutive stored checkpoints must be consistent, by proofs from the stored nodes.
fn check_consistency_chain(
    ledger: &Ledger,
    roots: &BTreeMap<u64, [u8; 32]>,
    size: u64,
    report: &mut Report,
) {
    let mut previous: Option<(u64, [u8; 32])> = None;
    for (&n, root) in roots.range(..=size) {
        if let Some((m, old_root)) = previous {
            let consistent = ledger
                .consistency_proof(m, n)
                .map(|proof| merkle::verify_consistency(m, n, &old_root, root, &proof))
                .unwrap_or(false);
            if !consistent {
                report.checkpoint(n, format!("not consistent with checkpoint {m}"));
            }
        }
        previous = Some((n, *root));
    }
}
