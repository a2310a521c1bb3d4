//! Helpers shared by the end-to-end test crates.
#![allow(dead_code)] // each test crate uses a subset

pub mod s3;

use rusqlite::Connection;
use std::path::Path;

/// Open a ledger file with plain SQLite, as an attacker with write access would, and drop the
/// triggers that guard the append-only tables so that rows can be changed or deleted.
pub fn attacker(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open the ledger with plain SQLite");
    for t in evidence_agent::ledger::APPEND_ONLY_TABLES {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {t}_no_update; DROP TRIGGER IF EXISTS {t}_no_delete;"
        ))
        .expect("drop the append-only triggers");
    }
    conn
}
