//! Signed statements: DSSE v1 envelopes carrying in-toto Statement v1 payloads whose predicate
//! describes one collector run (`https://evidence-agent.dev/snapshot/v1`).
//!
//! Envelopes are serialized as canonical JSON, and those exact bytes are the Merkle leaf: never
//! re-serialize a stored envelope, compare and hash the bytes as stored.

use crate::tlog::note::{NoteSigner, NoteVerifier};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://evidence-agent.dev/snapshot/v1";

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid DSSE JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("envelope payloadType is {0:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("envelope {0} is not valid base64")]
    Base64(&'static str),
    #[error("envelope has no signature by key {0}")]
    NotSigned(String),
    #[error("envelope signature by key {0} does not verify")]
    BadSignature(String),
    #[error("statement is malformed: {0}")]
    Statement(String),
}

/// DSSE's pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// Sign a statement payload; returns the envelope's canonical JSON bytes (the ledger leaf).
pub fn sign(payload: &[u8], signer: &NoteSigner) -> Vec<u8> {
    let sig = signer.signing_key().sign(&pae(PAYLOAD_TYPE, payload));
    let envelope = Envelope {
        payload: B64.encode(payload),
        payload_type: PAYLOAD_TYPE.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: hex::encode(signer.key_hash()),
            sig: B64.encode(sig.to_bytes()),
        }],
    };
    // Serializing a struct of strings cannot fail.
    collectors::canonical::to_vec(&envelope).unwrap_or_default()
}

/// Check an envelope's signature by `verifier` and return its payload bytes.
pub fn open(envelope_bytes: &[u8], verifier: &NoteVerifier) -> Result<Vec<u8>, EnvelopeError> {
    let envelope: Envelope = serde_json::from_slice(envelope_bytes)?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(EnvelopeError::PayloadType(envelope.payload_type));
    }
    let payload = B64
        .decode(&envelope.payload)
        .map_err(|_| EnvelopeError::Base64("payload"))?;
    let keyid = hex::encode(verifier.key_hash());
    let mut found = false;
    for s in envelope.signatures.iter().filter(|s| s.keyid == keyid) {
        let sig = B64
            .decode(&s.sig)
            .map_err(|_| EnvelopeError::Base64("sig"))?;
        if !verifier.verify_bytes(&pae(PAYLOAD_TYPE, &payload), &sig) {
            return Err(EnvelopeError::BadSignature(keyid));
        }
        found = true;
    }
    if !found {
        return Err(EnvelopeError::NotSigned(keyid));
    }
    Ok(payload)
}

/// The statement inside an envelope *without* checking its signature: for listing entries
/// that `verify` checks separately, never for deciding whether to trust them.
pub fn read_unverified(envelope_bytes: &[u8]) -> Result<Statement, EnvelopeError> {
    let envelope: Envelope = serde_json::from_slice(envelope_bytes)?;
    let payload = B64
        .decode(&envelope.payload)
        .map_err(|_| EnvelopeError::Base64("payload"))?;
    Statement::from_payload(&payload)
}

/// An in-toto Statement v1 about one snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: SnapshotPredicate,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subject {
    pub name: String,
    pub digest: SubjectDigest,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubjectDigest {
    pub sha256: String,
}

/// Outcome of a run, as recorded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// What caused a run: its schedule, an operator's `collect`, or the start-up accounting of runs
/// missed while the agent was down.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
    Missed,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Missed => "missed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectorRef {
    pub id: String,
    pub kind: String,
}

/// The `https://evidence-agent.dev/snapshot/v1` predicate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPredicate {
    pub host: String,
    pub collector: CollectorRef,
    /// Position of this entry in the host's log; binds the statement to its place so that a
    /// reordered or deleted entry is named by the verifier.
    pub log_index: u64,
    pub trigger: Trigger,
    pub scheduled_for: String,
    pub started_at: String,
    pub finished_at: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub content_size: u64,
    pub media_type: String,
    pub item_count: u64,
    pub agent_version: String,
    pub config_sha256: String,
    /// The collector's schedule expression in force for this run (DESIGN.md §3 `schedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl Statement {
    pub fn new(subject_name: &str, content_sha256_hex: &str, predicate: SnapshotPredicate) -> Self {
        Statement {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: vec![Subject {
                name: subject_name.to_owned(),
                digest: SubjectDigest {
                    sha256: content_sha256_hex.to_owned(),
                },
            }],
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate,
        }
    }

    /// Canonical JSON bytes: the DSSE payload.
    pub fn to_payload(&self) -> Vec<u8> {
        collectors::canonical::to_vec(self).unwrap_or_default()
    }

    pub fn from_payload(payload: &[u8]) -> Result<Statement, EnvelopeError> {
        let st: Statement =
            serde_json::from_slice(payload).map_err(|e| EnvelopeError::Statement(e.to_string()))?;
        if st.statement_type != STATEMENT_TYPE {
            return Err(EnvelopeError::Statement(format!(
                "_type is {:?}",
                st.statement_type
            )));
        }
        if st.predicate_type != PREDICATE_TYPE {
            return Err(EnvelopeError::Statement(format!(
                "predicateType is {:?}",
                st.predicate_type
            )));
        }
        if st.subject.len() != 1 {
            return Err(EnvelopeError::Statement(format!(
                "{} subjects, expected 1",
                st.subject.len()
            )));
        }
        Ok(st)
    }

    /// The content digest the statement vouches for, hex.
    pub fn content_sha256(&self) -> &str {
        &self.subject[0].digest.sha256
    }
}
