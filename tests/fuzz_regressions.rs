//! Replays the fuzz targets' committed inputs (fuzz/corpus/<target>/ and every crash the fuzzer
//! found, fuzz/regressions/<target>/) through the same functions the cargo-fuzz targets call
//! (`evidence_agent::fuzzing`), as a normal `cargo test`: no input may panic, and an input
//! whose file name starts with `ok-` must be accepted, one starting with `err-` refused. Other
//! names (inputs the fuzzer added to the corpus) only have to not panic.

use evidence_agent::fuzzing;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(listing) => listing
            .map(|e| e.expect("read fuzz input directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    files.sort();
    files
}

/// Run every input of `target`; returns how many there were.
fn replay(target: &str) -> usize {
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).expect("read fuzz input");
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let outcome = fuzzing::run(target, &data);
            if name.starts_with("ok-") {
                assert!(outcome.is_ok(), "{}: refused: {outcome:?}", path.display());
            } else if name.starts_with("err-") {
                let message = outcome.expect_err(&format!("{}: accepted", path.display()));
                assert!(!message.is_empty(), "{}: empty error", path.display());
            }
            count += 1;
        }
    }
    count
}

#[test]
fn every_target_has_a_seed_corpus_with_accepted_inputs() {
    for target in fuzzing::TARGETS {
        let seeds = inputs("corpus", target);
        let ok = seeds
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("ok-"))
            })
            .count();
        assert!(ok > 0, "fuzz/corpus/{target}/ has no ok- seed");
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{target}.rs is missing"
        );
    }
}

/// One test for all targets: a failure names the input file, which names the target.
#[test]
fn every_committed_input_replays() {
    for target in fuzzing::TARGETS {
        assert!(replay(target) > 0, "no input for {target}");
    }
}
