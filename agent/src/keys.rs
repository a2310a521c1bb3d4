//! The host's Ed25519 key: creation, loading with permission checks, and what derives from it.
//!
//! The key file holds one line in the signer-key form of signed notes,
//! `PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 ‖ seed)>`, so it carries the name it signs
//! as. It is created 0600 in a 0700 directory, never overwritten, and refused at load if group
//! or others may read it.

use crate::tlog::note::{key_hash, NoteSigner, NoteVerifier};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: a key already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path}: no host key; create one with `evidence-agent keygen`")]
    Missing { path: PathBuf },
    #[error("{path}: key file mode is {mode:04o}; it must not be readable by group or others (chmod 600)")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("{path}: key was made for {found:?} but this host signs as {expected:?}")]
    WrongName {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The key name (and log origin) of a host: `evidence-agent/<host-id>`.
pub fn key_name(host_id: &str) -> String {
    format!("evidence-agent/{host_id}")
}

/// Create a new key at `path` for `name`. The directory is created 0700 if missing.
pub fn generate(path: &Path, name: &str) -> Result<NoteVerifier, KeyError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        // Every directory created on the way is private too (the data directory among them).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create directory", dir))?;
    }
    if path.exists() {
        return Err(KeyError::Exists {
            path: path.to_owned(),
        });
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let signer = NoteSigner::new(name, key).map_err(|e| KeyError::Malformed {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut raw = vec![0x01u8];
    raw.extend_from_slice(signer.signing_key().as_bytes());
    let line = format!(
        "PRIVATE+KEY+{name}+{}+{}\n",
        hex::encode(signer.key_hash()),
        B64.encode(&raw)
    );
    // Write a temporary file, make it durable, then link it into place: the link fails if a key
    // appeared meanwhile, so an existing key is never replaced, and a crash never leaves half a
    // key under the real name.
    let temp = dir.join(format!(".host.key.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        f.write_all(line.as_bytes())?;
        f.sync_all()
    };
    let linked = write().and_then(|()| fs::hard_link(&temp, path));
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KeyError::Exists {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io_err("write key", path)(e)),
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    // The public half beside it, readable by all: `verify` and `key` need no private key.
    let vkey_path = vkey_path(path);
    fs::write(&vkey_path, format!("{}\n", signer.verifier()))
        .map_err(io_err("write", &vkey_path))?;
    fs::set_permissions(&vkey_path, fs::Permissions::from_mode(0o644))
        .map_err(io_err("chmod", &vkey_path))?;
    Ok(signer.verifier())
}

/// Where the public verifier key of the key at `key_path` is written: `<key>.vkey`
/// (`host.key` → `host.vkey`).
pub fn vkey_path(key_path: &Path) -> PathBuf {
    key_path.with_extension("vkey")
}

/// Read a verifier key file (one vkey line).
pub fn read_vkey(path: &Path) -> Result<NoteVerifier, KeyError> {
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    NoteVerifier::parse(text.trim()).map_err(|e| KeyError::Malformed {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Load the key at `path`, refusing it if others can read it or, when `expected_name` is given,
/// if it was made for another name.
pub fn load(path: &Path, expected_name: Option<&str>) -> Result<NoteSigner, KeyError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    let malformed = |message: &str| KeyError::Malformed {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    let rest = text
        .trim_end()
        .strip_prefix("PRIVATE+KEY+")
        .ok_or_else(|| malformed("not an evidence-agent key (no PRIVATE+KEY+ prefix)"))?;
    // Names cannot contain '+', base64 can: split from the left.
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(hash_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected PRIVATE+KEY+<name>+<hash>+<key>"));
    };
    let raw = B64
        .decode(key_b64)
        .map_err(|_| malformed("key is not base64"))?;
    let [0x01, seed @ ..] = raw.as_slice() else {
        return Err(malformed("not an Ed25519 key"));
    };
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| malformed("Ed25519 seed is not 32 bytes"))?;
    let key = SigningKey::from_bytes(&seed);
    if hex::encode(key_hash(name, &key.verifying_key())) != hash_hex {
        return Err(malformed("key hash does not match the key"));
    }
    if let Some(expected) = expected_name.filter(|e| *e != name) {
        return Err(KeyError::WrongName {
            path: path.to_owned(),
            found: name.to_owned(),
            expected: expected.to_owned(),
        });
    }
    NoteSigner::new(name, key).map_err(|e| malformed(&e.to_string()))
}

/// A fingerprint of the public key for humans: `SHA256:<hex of SHA-256(public key)>`.
pub fn fingerprint(verifier: &NoteVerifier) -> String {
    format!(
        "SHA256:{}",
        hex::encode(Sha256::digest(verifier.public_key().as_bytes()))
    )
}

/// The salt of redaction markers, derived from the host key so that it is secret and stable.
pub fn redaction_salt(signer: &NoteSigner) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"evidence-agent redaction salt v1\0");
    h.update(signer.signing_key().as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_load_round_trips_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/host.key");
        let v = generate(&path, "evidence-agent/h1").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let s = load(&path, Some("evidence-agent/h1")).unwrap();
        assert_eq!(s.verifier(), v);
        assert!(matches!(
            generate(&path, "evidence-agent/h1"),
            Err(KeyError::Exists { .. })
        ));
        assert!(matches!(
            load(&path, Some("evidence-agent/h2")),
            Err(KeyError::WrongName { .. })
        ));
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        generate(&path, "evidence-agent/h1").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = load(&path, Some("evidence-agent/h1")).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o640, .. }),
            "{err}"
        );
    }

    #[test]
    fn garbage_key_files_give_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        for text in [
            "",
            "PRIVATE+KEY+",
            "PRIVATE+KEY+a+b+c",
            "PRIVATE+KEY+n+00000000+AQ==\n",
            "\u{0}\u{ff}",
        ] {
            let _ = fs::remove_file(&path);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(load(&path, Some("n")).is_err(), "{text:?}");
        }
    }
}
