//! What the benchmarks share: an `ok` entry around given content, numbers from the environment,
//! medians, file counts and sizes below a directory, measured child processes (`process`), a
//! moto S3 server (`moto`), the Ed25519 floor of a verifier (`sigs`) and the results table
//! every benchmark feeds (`table`). Each benchmark uses part of it.
#![allow(dead_code)]

pub mod moto;
pub mod process;
pub mod sigs;
pub mod table;

use chrono::Utc;
use collectors::{Content, Snapshot};
use evidence_agent::ledger::{NewEntry, Outcome};
use evidence_agent::statement::Trigger;
use std::fs;
use std::path::{Path, PathBuf};

/// Entry `i`, a successful run of `kind` with `content` as its JSON snapshot, timed now.
pub fn ok_entry(i: u64, kind: &str, content: Vec<u8>) -> NewEntry {
    let now = Utc::now();
    NewEntry {
        collector_id: format!("c{}", i % 10),
        kind: kind.into(),
        trigger: Trigger::Schedule,
        scheduled_for: now,
        started_at: now,
        finished_at: now,
        config_sha256: [0; 32],
        schedule: None,
        outcome: Outcome::Ok(Snapshot {
            content: Content::from_bytes(content),
            media_type: collectors::MEDIA_TYPE_JSON,
            item_count: 1,
            cursor: None,
            details: serde_json::Value::Null,
        }),
    }
}

/// The `evidence-agent` binary to measure: `EVIDENCE_AGENT_BIN` when set (a copy taken right
/// after the build, or a packaged binary), else the one cargo built for this benchmark.
pub fn agent_bin() -> std::path::PathBuf {
    std::env::var_os("EVIDENCE_AGENT_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_evidence-agent").into())
}

/// The number in environment variable `name`, or `default` when it is unset.
pub fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The median of `xs` (the mean of the middle two for an even count).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// (files, bytes) below `dir`, per top-level entry name and in total.
pub fn dir_sizes(dir: &Path) -> (Vec<(String, u64, u64)>, u64, u64) {
    fn walk(path: &Path, acc: &mut (u64, u64)) {
        for item in fs::read_dir(path).expect("read_dir") {
            let item = item.expect("dir entry");
            let meta = item.metadata().expect("metadata");
            if meta.is_dir() {
                walk(&item.path(), acc);
            } else {
                acc.0 += 1;
                acc.1 += meta.len();
            }
        }
    }
    let mut parts = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read bundle dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    names.sort();
    for path in names {
        let mut acc = (0, 0);
        if path.is_dir() {
            walk(&path, &mut acc);
        } else {
            acc = (1, fs::metadata(&path).expect("metadata").len());
        }
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        parts.push((name, acc.0, acc.1));
    }
    let files = parts.iter().map(|p| p.1).sum();
    let bytes = parts.iter().map(|p| p.2).sum();
    (parts, files, bytes)
}
