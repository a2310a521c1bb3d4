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
    // Entries are read in chunks; while the cores check one chunk's signatures and leaves
    // (`opened`), this thread reads the next chunk and records the previous one's findings in
    // order, so the findings are those a single pass would give.
    let mut walk = Walk {
        ledger,
        origin_host: ledger.host_id(),
        tree: TreeBuilder::new(),
        blob_ok: HashMap::new(),
        expected_index: 0,
        last_good_checkpoint: 0,
        roots: &roots,
        report: &mut report,
    };
    std::thread::scope(|scope| -> Result<(), LedgerError> {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut running: Option<std::thread::ScopedJoinHandle<'_, Checked>> = None;
        ledger.for_each_entry(|e| {
            chunk.push(e);
            if chunk.len() == CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                let previous = running.replace(scope.spawn(move || open_all(full, verifier)));
                if let Some(previous) = previous {
                    walk.chunk(join(previous))?;
                }
            }
            Ok(())
        })?;
        if let Some(previous) = running.take() {
            walk.chunk(join(previous))?;
        }
        walk.chunk(open_all(chunk, verifier))
    })?;
    let Walk { tree, blob_ok, .. } = walk;

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

/// Entries read in one chunk, verified together.
const CHUNK: usize = 4096;

/// A chunk of entries and, for each, its opened statement (or why it could not be opened) and
/// its leaf hash recomputed from the stored envelope.
type Checked = (
    Vec<super::EntryRecord>,
    Vec<(Result<Statement, String>, [u8; 32])>,
);

/// The work per entry that needs no database: the signature, the statement, the leaf hash.
/// Spread over every core: this is most of the time verification takes.
fn open_all(entries: Vec<super::EntryRecord>, verifier: &NoteVerifier) -> Checked {
    let opened = crate::par::par_map(&entries, |e| {
        let statement = statement::open(&e.envelope, verifier)
            .map_err(|err| err.to_string())
            .and_then(|payload| Statement::from_payload(&payload).map_err(|err| err.to_string()));
        (statement, merkle::leaf_hash(&e.envelope))
    });
    (entries, opened)
}

/// The in-order part of the entry walk: what needs the database or the previous entries.
struct Walk<'a> {
    ledger: &'a Ledger,
    origin_host: &'a str,
    tree: TreeBuilder,
    blob_ok: HashMap<[u8; 32], bool>,
    expected_index: u64,
    last_good_checkpoint: u64,
    roots: &'a BTreeMap<u64, [u8; 32]>,
    report: &'a mut Report,
}

/// The checks of a chunk from the thread that ran them.
fn join(handle: std::thread::ScopedJoinHandle<'_, Checked>) -> Checked {
    // Only panics if the checks do; let that surface as it would on one thread.
    handle
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Walk<'_> {
    fn chunk(&mut self, (entries, opened): Checked) -> Result<(), LedgerError> {
        for (e, opened) in entries.iter().zip(opened) {
            self.entry(e, opened)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        e: &super::EntryRecord,
        (statement, leaf): (Result<Statement, String>, [u8; 32]),
    ) -> Result<(), LedgerError> {
        if e.index != self.expected_index {
            self.report.entry(
                self.expected_index,
                format!(
                    "missing: entries {}..{} are absent (deleted?)",
                    self.expected_index,
                    e.index.saturating_sub(1)
                ),
            );
        }
        self.expected_index = e.index.saturating_add(1);
        self.report.entries += 1;
        match statement {
            Ok(st) => self.check_statement(e, &st)?,
            Err(message) => self.report.entry(e.index, message),
        }
        if leaf != e.leaf_hash {
            self.report.entry(
                e.index,
                "stored leaf hash is not the hash of the stored envelope",
            );
        }
        // The tree is over positions: a missing entry leaves the rest of the tree unmatchable,
        // which the checkpoint comparison below reports.
        let tree = &mut self.tree;
        tree.push(leaf);
        if let Some(root) = self.roots.get(&tree.size()) {
            if *root == tree.root() {
                self.last_good_checkpoint = tree.size();
            } else {
                self.report.checkpoint(
                    tree.size(),
                    format!(
                        "signed root does not match the entries: an entry in {}..{} was altered, \
                         removed or reordered",
                        self.last_good_checkpoint,
                        tree.size() - 1
                    ),
                );
            }
        }
        Ok(())
    }

    /// The signed statement against the entry's columns and its content blob.
    fn check_statement(
        &mut self,
        e: &super::EntryRecord,
        st: &Statement,
    ) -> Result<(), LedgerError> {
        let report = &mut *self.report;
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
        if p.host != self.origin_host {
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
        let ok = match self.blob_ok.get(&e.content_digest) {
            Some(ok) => *ok,
            None => {
                let mut w = HashWriter(Sha256::new(), 0);
                let ok = match self.ledger.copy_blob(&e.content_digest, &mut w)? {
                    None => false,
                    Some(_) => <[u8; 32]>::from(w.0.finalize()) == e.content_digest,
                };
                self.blob_ok.insert(e.content_digest, ok);
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
