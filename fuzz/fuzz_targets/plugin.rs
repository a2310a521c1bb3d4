//! Fuzz target `plugin`: the `exec_plugin` protocol, on a plugin's stdout.
//! The body is `evidence_agent::fuzzing::plugin`, which tests/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Err is a refused input, as expected of most; only a panic is a finding.
    let _ = evidence_agent::fuzzing::plugin(data);
});
