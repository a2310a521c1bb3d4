//! evidence-agent: collects SOC 2 evidence into a signed, append-only, verifiable ledger.
//!
//! The binary (`main.rs`) is a thin shell over this library. Data flows one way:
//! `config` → `scheduler` runs `collectors` → `ledger` signs (`statement`, `tlog`) and commits →
//! `verify` re-checks what was committed. See ARCHITECTURE.md for the map and the invariants.

pub mod bundle;
pub mod cli;
pub mod config;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod ledger;
pub mod logging;
pub mod par;
pub mod schedule;
pub mod statement;
pub mod sync;
pub mod tlog;
