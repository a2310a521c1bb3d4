//! The bodies of the cargo-fuzz targets (fuzz/fuzz_targets/), kept here so that the targets
//! and the regression test that replays their corpus and crashes (tests/fuzz_regressions.rs)
//! run the very same code. Each function feeds untrusted bytes to one parser the way the
//! agent does and returns `Ok` when the input was accepted, `Err` with the error the agent
//! would report when it was refused. A panic is the bug a fuzzer looks for; where a parse has
//! an inverse, the round trip is asserted too, so a silently wrong parse panics as well.
//!
//! Not a stable API: hidden from the docs, used only by fuzz/ and the tests.

use crate::bundle::layout::{decode_hashes, ConsistencyDoc, InclusionDoc};
use crate::statement;
use crate::tlog::merkle;
use crate::tlog::note::{self, Checkpoint, NoteVerifier};
use crate::tlog::tiles;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The names of the targets, as in fuzz/fuzz_targets/ and the folders of fuzz/corpus/.
pub const TARGETS: [&str; 4] = ["bundle", "config", "note", "plugin"];

/// Run the target named `target` on `data`.
pub fn run(target: &str, data: &[u8]) -> Result<(), String> {
    match target {
        "bundle" => bundle(data),
        "config" => config(data),
        "note" => note(data),
        "plugin" => plugin(data),
        other => Err(format!("no fuzz target {other:?}")),
    }
}

/// A scratch directory for the life of the process (a fuzzer runs millions of inputs; making
/// a directory for each would measure the filesystem).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("evidence-fuzz-")
            .tempdir()
            .expect("a scratch directory for the fuzz target");
        // Kept for the process' life: the fuzzer exits without running destructors anyway.
        dir.keep()
    })
}

/// `evidence-agent verify BUNDLE.tar.gz`: `data` is the tar stream of a bundle, gzipped here
/// so that mutations reach the tar headers and the files rather than break the CRC; input
/// that already starts with the gzip magic is taken as the `.tar.gz` itself, so the gzip
/// reader is fuzzed as well. `Ok` only when the bundle verifies with no finding.
pub fn bundle(data: &[u8]) -> Result<(), String> {
    let path = scratch().join(format!("bundle-{}.tar.gz", std::process::id()));
    let bytes = if data.starts_with(&[0x1f, 0x8b]) {
        data.to_vec()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("gzip into memory");
        gz.finish().expect("gzip into memory")
    };
    std::fs::write(&path, bytes).expect("write the fuzz input to the scratch directory");
    let report = crate::bundle::verify::verify(&path, &[]).map_err(|e| e.to_string())?;
    if report.ok() {
        Ok(())
    } else {
        let findings: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
        Err(findings.join("; "))
    }
}

/// `evidence-agent check-config`: `data` is the configuration file, parsed with the real
/// collector registry. Non-UTF-8 is refused as `config::load` refuses it.
pub fn config(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let path = Path::new("/etc/evidence-agent/agent.toml");
    match crate::config::parse(path, text, None) {
        Ok(config) => {
            assert!(!config.host_id.is_empty(), "a valid config has a host id");
            Ok(())
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refused config names a problem");
            Err(errors.to_string())
        }
    }
}

/// The verifier key of tests/vectors/ (`evidence-agent/vector-host`), which signed the
/// checkpoints of the seed corpus.
const VECTOR_VKEY: &str =
    "evidence-agent/vector-host+292d627f+AWfYHVBZ+kTcbkzhDAFxEGGG7s1oT2q8PZ9UNtudTn24";

/// Signed notes and checkpoints: the first line of `data` is a vkey (the vectors' key is used
/// when it is none), the rest a signed checkpoint, opened and parsed as `verify` does. The
/// whole input is also tried as an unsigned checkpoint text, a DSSE envelope, an entry bundle
/// (tlog-tiles) and an inclusion or consistency proof document. `Ok` when the note opens to a
/// valid checkpoint.
pub fn note(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let (vkey, signed) = text.split_once('\n').unwrap_or((text, ""));
    let verifier = match NoteVerifier::parse(vkey) {
        Ok(verifier) => {
            let again = NoteVerifier::parse(&verifier.to_string());
            assert_eq!(again.as_ref(), Ok(&verifier), "vkey round trip of {vkey:?}");
            verifier
        }
        Err(_) => NoteVerifier::parse(VECTOR_VKEY).expect("the vectors' vkey parses"),
    };
    if let Ok(checkpoint) = Checkpoint::parse(signed) {
        let again = Checkpoint::parse(&checkpoint.to_text());
        assert_eq!(again.as_ref(), Ok(&checkpoint), "checkpoint round trip");
    }
    let _ = note::split(signed);
    let _ = statement::open(data, &verifier);
    let _ = statement::read_unverified(data);
    if let Ok(entries) = tiles::parse_entry_bundle(data) {
        let again = tiles::entry_bundle(0, entries.iter().copied());
        assert_eq!(again.as_deref(), Ok(data), "entry bundle round trip");
    }
    proofs(data);
    let opened = verifier.open(signed).map_err(|e| e.to_string())?;
    let checkpoint = Checkpoint::parse(opened).map_err(|e| e.to_string())?;
    assert!(
        opened.starts_with(&checkpoint.origin),
        "origin is the first line"
    );
    Ok(())
}

/// An inclusion or consistency proof document checked against zero hashes: only the walk over
/// hostile sizes, indexes and path lengths is of interest.
fn proofs(data: &[u8]) {
    let zero = [0u8; 32];
    if let Ok(doc) = serde_json::from_slice::<InclusionDoc>(data) {
        if let Ok(hashes) = decode_hashes(&doc.hashes) {
            merkle::verify_inclusion(&zero, doc.leaf_index, doc.tree_size, &hashes, &zero);
        }
    }
    if let Ok(doc) = serde_json::from_slice::<ConsistencyDoc>(data) {
        if let Ok(hashes) = decode_hashes(&doc.hashes) {
            merkle::verify_consistency(doc.old_size, doc.new_size, &zero, &zero, &hashes);
        }
    }
}

/// The `exec_plugin` protocol: `data` is a plugin's stdout, checked line by line as the
/// collector checks it. `Ok` when the output is a complete run; the content is then the
/// canonical `{"items": [...]}` with as many items as reported.
pub fn plugin(data: &[u8]) -> Result<(), String> {
    let (content, items) = collectors::exec_plugin::parse_stdout(data, scratch())?;
    let mut bytes = Vec::new();
    content
        .reader()
        .and_then(|mut r| r.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the content back: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).expect("the plugin's content is JSON");
    let listed = value["items"].as_array().map(Vec::len);
    assert_eq!(listed, Some(items as usize), "item count of {value}");
    Ok(())
}
