//! Fuzz target `config`: the configuration parser with the real collector registry.
//! The body is `evidence_agent::fuzzing::config`, which tests/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Err is a refused input, as expected of most; only a panic is a finding.
    let _ = evidence_agent::fuzzing::config(data);
});
