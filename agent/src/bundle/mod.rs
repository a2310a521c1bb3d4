//! Evidence bundles (DESIGN.md §3): exporting a period of one or more hosts' logs into a
//! self-contained directory or `.tar.gz`, and verifying such a bundle offline.
//!
//! # Layout (`evidence-bundle/v1`)
//!
//! ```text
//! manifest.json                      what the bundle is (below); SHA256SUMS covers it
//! SHA256SUMS                         `<hex>  <path>` per line, sorted by path, every other file
//! keys/<host>.vkey                   the host's note verifier key, one line + "\n"
//! checkpoints/<host>/<size>          signed checkpoints exactly as stored (start and end)
//! entries/<host>/<index>.json        DSSE envelopes, byte-identical to the log's leaves
//! proofs/<host>/<index>.json         {"hashes":[b64…],"leaf_index":i,"tree_size":end}
//! proofs/<host>/consistency-<m>-<n>.json  {"hashes":[b64…],"new_size":n,"old_size":m}
//! blobs/sha256/<hex>                 evidence content, uncompressed
//! population.csv, sample.csv, report.html
//! ```
//!
//! JSON files are canonical (keys sorted, no whitespace). Every host's part covers a
//! contiguous range of its log, `[start, end)`, where `end` is the size of a signed checkpoint
//! and `start` the size of an earlier one (or 0): *every* entry in that range is in the bundle,
//! whatever the collector filter or sample, so that the verifier can prove nothing was left out
//! and can check schedule coverage. Envelopes are small; content is what filters and samples
//! save. The range is the smallest checkpointed one holding every entry scheduled in the period.
//!
//! # Populations, samples, coverage
//!
//! See [`population`], [`sample`] and [`coverage`]. population.csv, sample.csv and report.html
//! are pure functions of the signed entries, the blobs and the manifest's parameters, so
//! `verify` re-derives them and compares bytes: an edited CSV or report is named, not trusted.

pub mod archive;
pub mod coverage;
pub mod derive;
pub mod export;
pub mod fleet;
pub mod hostlog;
pub mod layout;
pub mod population;
pub mod report;
pub mod sample;
pub mod staging;
pub mod verify;

/// The `format` of a bundle's manifest.
pub const FORMAT: &str = "evidence-bundle/v1";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
}

impl BundleError {
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> BundleError {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }
}
