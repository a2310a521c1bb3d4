//! The floor of any verifier of a ledger or bundle: Ed25519 verification alone of every stored
//! envelope's signature (DSSE pre-authentication encoding of the payload, as `statement::open`
//! checks it), nothing else. The envelopes are decoded beforehand, untimed, a chunk at a time so
//! a million of them are never in memory at once.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use evidence_agent::ledger::Ledger;
use evidence_agent::statement;
use std::path::Path;
use std::time::Instant;

const CHUNK: u64 = 4096;

/// The verification rates measured over one ledger's signatures.
pub struct Bound {
    pub signatures: u64,
    /// Seconds to verify all of them on every core (`evidence_agent::par::par_map`, the helper
    /// the verifiers use): the bound the verifiers are compared with.
    pub all_cores_seconds: f64,
    pub cores: usize,
    /// Signatures per second on one core, over the first `one_core_signatures` of them (0 when
    /// none were asked for).
    pub one_core_rate: f64,
    pub one_core_signatures: u64,
}

impl Bound {
    pub fn all_cores_rate(&self) -> f64 {
        self.signatures as f64 / self.all_cores_seconds
    }
}

fn prepare(envelope: &[u8]) -> (Vec<u8>, Signature) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let env: statement::Envelope = serde_json::from_slice(envelope).expect("envelope JSON");
    let payload = base64::Engine::decode(&b64, &env.payload).expect("payload base64");
    let sig = base64::Engine::decode(&b64, &env.signatures[0].sig).expect("signature base64");
    (
        statement::pae(statement::PAYLOAD_TYPE, &payload),
        Signature::from_slice(&sig).expect("signature bytes"),
    )
}

/// Verify every signature of the ledger at `path` by `key`: on all cores, then the first
/// `one_core` of them again on one core.
pub fn ed25519_bound(path: &Path, key: &VerifyingKey, one_core: u64) -> Bound {
    let ledger = Ledger::open_read_only(path).expect("open ledger for the Ed25519 reference");
    let size = ledger.size().expect("ledger size");
    let (mut all_cores_seconds, mut one_core_seconds, mut one_core_signatures) = (0.0, 0.0, 0);
    let mut start = 0;
    while start < size {
        let prepared: Vec<(Vec<u8>, Signature)> = ledger
            .entries(start, CHUNK)
            .expect("read entries")
            .iter()
            .map(|e| prepare(&e.envelope))
            .collect();
        let t = Instant::now();
        let ok = evidence_agent::par::par_map(&prepared, |(msg, sig)| key.verify(msg, sig).is_ok());
        all_cores_seconds += t.elapsed().as_secs_f64();
        assert!(
            ok.iter().all(|ok| *ok),
            "a reference signature did not verify"
        );
        if one_core_signatures < one_core {
            let t = Instant::now();
            for (msg, sig) in &prepared {
                key.verify(msg, sig).expect("reference verify");
            }
            one_core_seconds += t.elapsed().as_secs_f64();
            one_core_signatures += prepared.len() as u64;
        }
        start += CHUNK;
    }
    Bound {
        signatures: size,
        all_cores_seconds,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        one_core_rate: if one_core_signatures == 0 {
            0.0
        } else {
            one_core_signatures as f64 / one_core_seconds
        },
        one_core_signatures,
    }
}
