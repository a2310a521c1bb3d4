//! One host's slice of its log, as a bundle holds it: the entries of a checkpointed range with
//! their inclusion proofs, the checkpoints at both ends and the consistency proof between them.
//! Export builds it from a source (the local ledger, S3); verify builds it from a bundle's
//! files after checking each; everything derived (populations, samples, coverage, the report)
//! is computed from it and nothing else.

use super::BundleError;
use crate::statement::Statement;
use crate::tlog::note::Checkpoint;
use crate::tlog::Hash;

/// A signed checkpoint: the note as stored and what it says.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    pub note: String,
    pub checkpoint: Checkpoint,
}

impl SignedCheckpoint {
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }
}

/// One log entry with its statement and its inclusion proof against the end checkpoint.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub index: u64,
    /// The envelope bytes exactly as logged (the Merkle leaf).
    pub envelope: Vec<u8>,
    pub statement: Statement,
    pub proof: Vec<Hash>,
}

impl LogEntry {
    pub fn collector(&self) -> &str {
        &self.statement.predicate.collector.id
    }
}

/// A host's part of a bundle.
#[derive(Debug, Clone)]
pub struct HostLog {
    pub host: String,
    /// `ledger` or the `s3://…/<host>/` directory it came from.
    pub source: String,
    /// The note verifier key line.
    pub vkey: String,
    /// The checkpoint at the range's start; `None` when the range starts at 0.
    pub start: Option<SignedCheckpoint>,
    pub end: SignedCheckpoint,
    /// Every entry of `[start, end)`, in index order.
    pub entries: Vec<LogEntry>,
    /// Consistency proof from the start checkpoint to the end one (empty without a start).
    pub consistency: Vec<Hash>,
}

impl HostLog {
    pub fn start_size(&self) -> u64 {
        self.start.as_ref().map_or(0, SignedCheckpoint::size)
    }

    /// Frees every entry's envelope and inclusion proof, keeping the statements. Export calls
    /// it once a host's `entries/` and `proofs/` files are written, verify once they are
    /// checked: everything derived (populations, samples, coverage, the report) reads
    /// statements only, and envelopes and proofs are ~1.7 KB of the ~3 KB an entry holds.
    pub fn release_leaves(&mut self) {
        for e in &mut self.entries {
            e.envelope = Vec::new();
            e.proof = Vec::new();
        }
    }
}

/// Where content comes from, by SHA-256 hex: the ledger, S3, or a bundle's `blobs/`.
pub trait BlobSource {
    /// Stream the content with this digest into `out`; `Ok(None)`, having written nothing, if
    /// the source lacks it.
    fn copy_to(
        &self,
        digest_hex: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, BundleError>;

    /// The content with this digest in memory, or `None` if the source lacks it.
    fn read(&self, digest_hex: &str) -> Result<Option<Vec<u8>>, BundleError> {
        let mut bytes = Vec::new();
        Ok(self.copy_to(digest_hex, &mut bytes)?.map(|_| bytes))
    }
}
