//! Fuzz target `bundle`: `evidence-agent verify` on an untrusted bundle `.tar.gz`.
//! The body is `evidence_agent::fuzzing::bundle`, which tests/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Err is a refused input, as expected of most; only a panic is a finding.
    let _ = evidence_agent::fuzzing::bundle(data);
});
