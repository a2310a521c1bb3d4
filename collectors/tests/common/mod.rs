//! Helpers shared by the integration tests: building collectors from TOML the way the agent
//! does, running them, and reading what they produced.
#![allow(dead_code)] // each test crate uses a different subset

pub mod api_server;

use collectors::{CollectContext, CollectError, Collector, Snapshot};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The settings table of a `[[collectors]]` entry (without the agent's own keys).
pub fn table(toml_text: &str) -> toml::Table {
    toml_text.parse().expect("test settings are valid TOML")
}

pub fn build(kind: &str, toml_text: &str) -> Box<dyn Collector> {
    collectors::registry::build(kind, &table(toml_text))
        .unwrap_or_else(|errors| panic!("{kind} settings refused: {errors:?}"))
}

pub fn ctx(spool: &Path) -> CollectContext {
    CollectContext {
        collector_id: "test".to_owned(),
        cursor: None,
        spool_dir: spool.to_path_buf(),
        redaction_salt: [42; 32],
        protected_paths: Vec::new(),
        deadline: None,
    }
}

pub fn ctx_with_cursor(spool: &Path, cursor: Option<Value>) -> CollectContext {
    CollectContext {
        cursor,
        ..ctx(spool)
    }
}

/// A context whose protected paths (the agent's data directory and key) are `protected`.
pub fn ctx_protecting(spool: &Path, protected: &[PathBuf]) -> CollectContext {
    CollectContext {
        protected_paths: protected.to_vec(),
        ..ctx(spool)
    }
}

/// An evidence-agent private key line, as the agent writes its key file.
pub const AGENT_KEY: &str =
    "PRIVATE+KEY+web-01+5a3b9c1d+AQj0o5ZqKzXcYd8mNnW1Jg7bK3sPpQ8uT2vR6wE4yH9=";
/// A part of [`AGENT_KEY`] that must never show up in evidence.
pub const AGENT_KEY_SECRET: &str = "AQj0o5ZqKzXcYd8mNnW1Jg7bK3sPpQ8uT2vR6wE4yH9";

/// The agent's data directory under `base` with its key, as the daemon lays them out.
/// Returns (data directory, key path).
pub fn agent_data(base: &Path) -> (PathBuf, PathBuf) {
    let data = base.join("var/lib/evidence-agent");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    let key = data.join("keys/host.key");
    std::fs::write(&key, format!("{AGENT_KEY}\n")).unwrap();
    (data, key)
}

/// The message given for a file refused because it is the agent's own.
pub const REFUSED: &str = "refused: inside the agent's protected data";

pub async fn collect(collector: &dyn Collector, spool: &Path) -> Result<Snapshot, CollectError> {
    collector.collect(ctx(spool)).await
}

/// The content bytes, checking that they hash to the digest the snapshot carries.
pub fn bytes(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    snapshot
        .content
        .reader()
        .expect("content is readable")
        .read_to_end(&mut out)
        .expect("content reads to the end");
    assert_eq!(out.len() as u64, snapshot.content.size());
    assert_eq!(
        hex::encode(sha2_digest(&out)),
        snapshot.content.sha256_hex()
    );
    out
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Structured content, checked to be canonical JSON of `{"items": [...]}` with unique, sorted
/// `(type, id)` and `item_count` matching.
pub fn items(snapshot: &Snapshot) -> Vec<Value> {
    let raw = bytes(snapshot);
    let value: Value = serde_json::from_slice(&raw).expect("content is JSON");
    assert_eq!(
        collectors::canonical::to_vec(&value).unwrap(),
        raw,
        "content is canonical JSON"
    );
    assert_eq!(snapshot.media_type, collectors::MEDIA_TYPE_JSON);
    let items = value["items"].as_array().expect("an items array").clone();
    let keys: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["type"].as_str().expect("string type").to_owned(),
                i["id"].as_str().expect("string id").to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "items are sorted by (type, id) and unique");
    assert_eq!(snapshot.item_count, items.len() as u64);
    items
}

pub fn find<'a>(items: &'a [Value], kind: &str, id: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["type"] == kind && i["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} {id} in {items:#?}"))
}

pub fn warnings(snapshot: &Snapshot) -> Vec<String> {
    snapshot.details["warnings"]
        .as_array()
        .expect("details.warnings is a list")
        .iter()
        .map(|w| w.as_str().expect("warnings are strings").to_owned())
        .collect()
}

pub fn has_warning(snapshot: &Snapshot, parts: &[&str]) -> bool {
    warnings(snapshot)
        .iter()
        .any(|w| parts.iter().all(|p| w.contains(p)))
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copy a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Write an executable script at `path` through a `sh` child, so that this test process never
/// holds the file open for writing: a descriptor open for writing, inherited by a process that
/// another test thread is starting at that moment, would make running the script fail with
/// ETXTBSY ("Text file busy").
pub fn write_script(path: &Path, text: &str) {
    use std::io::Write;
    let mut writer = std::process::Command::new("sh")
        .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sh runs");
    writer
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("the script is written");
    assert!(
        writer.wait().expect("sh ends").success(),
        "{}",
        path.display()
    );
}

/// Whether process `pid` has exited (or was already reaped) within `timeout_ms`, watched
/// through a pidfd, which becomes readable when the process exits.
pub fn wait_for_exit(pid: u32, timeout_ms: i32) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let mut poll = libc::pollfd {
        fd: fd as libc::c_int,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; the descriptor is ours and closed right after.
    let ready = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
    // SAFETY: closing the descriptor pidfd_open gave us.
    unsafe { libc::close(fd as libc::c_int) };
    ready == 1
}
