//! Fuzz target `note`: vkeys, signed checkpoints, DSSE envelopes, entry bundles, proofs.
//! The body is `evidence_agent::fuzzing::note`, which tests/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Err is a refused input, as expected of most; only a panic is a finding.
    let _ = evidence_agent::fuzzing::note(data);
});
