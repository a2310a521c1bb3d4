//! C2SP signed notes (Ed25519, signature type 0x01) and C2SP tlog checkpoints.
//!
//! A note is a text ending in a newline, a blank line, then signature lines
//! `— <key name> <base64(4-byte key hash ‖ signature)>`. The key hash is the first four bytes of
//! SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key). A checkpoint is a note whose text is the origin,
//! the tree size, the base64 root hash, then optional extension lines.

use super::Hash;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature algorithm byte of Ed25519 in C2SP signed-note.
const ALG_ED25519: u8 = 0x01;
/// The em dash and space that open every signature line.
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("malformed verifier key: {0}")]
    BadKey(String),
    #[error("no signature by {0} on the note")]
    NotSigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(String),
}

/// First four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
pub fn key_hash(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Key names may not be empty nor contain spaces or `+` (they end the name in a vkey).
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A named Ed25519 key that signs notes.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    hash: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish()
    }
}

impl NoteSigner {
    pub fn new(name: &str, key: SigningKey) -> Result<NoteSigner, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadKey(format!("invalid key name {name:?}")));
        }
        let hash = key_hash(name, &key.verifying_key());
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            hash,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_hash(&self) -> [u8; 4] {
        self.hash
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            hash: self.hash,
            key: self.key.verifying_key(),
        }
    }

    /// Sign `text` (which must end in a newline) and return the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::Malformed(
                "note text must end in a newline".into(),
            ));
        }
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.hash);
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// Split a signed note into its text (ending in a newline) and its signature lines, without
/// checking any signature.
pub fn split(note: &str) -> Result<(&str, &str), NoteError> {
    let at = note
        .rfind("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (text, sigs) = (&note[..at + 1], &note[at + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature block must end in a newline".into(),
        ));
    }
    Ok((text, sigs))
}

/// A note verifier key: `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    hash: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let vkey = vkey.trim_end_matches(['\n', '\r']);
        // Names cannot contain '+', base64 can: split from the left.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(key_b64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::BadKey("expected <name>+<hash>+<key>".into()));
        };
        if !valid_key_name(name) {
            return Err(NoteError::BadKey(format!("invalid key name {name:?}")));
        }
        let hash: [u8; 4] = hex::decode(hash_hex)
            .ok()
            .filter(|_| hash_hex.len() == 8)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                NoteError::BadKey(format!("key hash {hash_hex:?} is not 8 hex digits"))
            })?;
        let raw = B64
            .decode(key_b64)
            .map_err(|e| NoteError::BadKey(format!("key is not base64: {e}")))?;
        let [ALG_ED25519, key @ ..] = raw.as_slice() else {
            return Err(NoteError::BadKey("key is not an Ed25519 (0x01) key".into()));
        };
        let key: [u8; 32] = key.try_into().map_err(|_| {
            NoteError::BadKey(format!("Ed25519 key has {} bytes, not 32", key.len()))
        })?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|e| NoteError::BadKey(format!("not an Ed25519 point: {e}")))?;
        if key_hash(name, &key) != hash {
            return Err(NoteError::BadKey(
                "key hash does not match name and key".into(),
            ));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_hash(&self) -> [u8; 4] {
        self.hash
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verify a raw Ed25519 signature by this key over `message`.
    pub fn verify_bytes(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify(message, &sig).is_ok()
    }

    /// Open a signed note: check this key's signature and return the note's text.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, sigs) = split(note)?;
        let mut found = false;
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| NoteError::Malformed(format!("not a signature line: {line:?}")))?;
            let (name, sig_b64) = rest
                .split_once(' ')
                .ok_or_else(|| NoteError::Malformed(format!("not a signature line: {line:?}")))?;
            let blob = B64
                .decode(sig_b64)
                .map_err(|_| NoteError::Malformed(format!("signature of {name} is not base64")))?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.hash {
                continue; // another key's signature: allowed, and not ours to check
            }
            if !self.verify_bytes(text.as_bytes(), &blob[4..]) {
                return Err(NoteError::BadSignature(self.name.clone()));
            }
            found = true;
        }
        if found {
            Ok(text)
        } else {
            Err(NoteError::NotSigned(self.name.clone()))
        }
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            B64.encode(raw)
        )
    }
}

/// A C2SP tlog checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Extension lines, without their newlines (e.g. `time 2026-11-23T18:00:00Z`).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, extension lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for ext in &self.extensions {
            text.push_str(ext);
            text.push('\n');
        }
        text
    }

    /// Parse a checkpoint's note text (as returned by [`NoteVerifier::open`]).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |m: &str| NoteError::BadCheckpoint(m.to_owned());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("text must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size_line = lines.next().ok_or_else(|| bad("no tree size line"))?;
        // Decimal with no sign and no leading zeros, as the spec asks.
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad(&format!(
                "tree size {size_line:?} is not a decimal number"
            )));
        }
        let size = size_line
            .parse()
            .map_err(|_| bad(&format!("tree size {size_line:?} is out of range")))?;
        let root_line = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: Hash = B64
            .decode(root_line)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("root hash is not 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// The value of the `time` extension, if present.
    pub fn time(&self) -> Option<&str> {
        self.extensions.iter().find_map(|e| e.strip_prefix("time "))
    }
}
