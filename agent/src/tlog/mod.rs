//! The transparency-log formats, with no I/O: RFC 6962 / RFC 9162 §2 Merkle trees and proofs
//! ([`merkle`]), C2SP signed notes and tlog checkpoints ([`note`]).
//!
//! Everything here is pure computation over bytes so that the ledger, the exporter and the
//! offline verifier share one implementation of each rule, tested against the known-answer
//! vectors in `shared/vectors/`. [`tiles`] lays the log out as C2SP tlog-tiles.

pub mod merkle;
pub mod note;
pub mod tiles;

/// A SHA-256 hash: leaf, node or root.
pub type Hash = [u8; 32];
