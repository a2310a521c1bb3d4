//! Which keys name a secret, and which values cannot be one.

use regex::bytes::Regex;
use std::sync::LazyLock;

static SECRET_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key|credential",
    )
    .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// Words that make a key name a file rather than hold a secret (`PasswordFile`, `token_path`).
static FILE_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)file|path|dir").unwrap_or_else(|_| unreachable!("constant regex"))
});

/// Keys ending in `pass` that are not secrets: nginx's `proxy_pass` and friends, Apache's
/// `ProxyPass` (compared lowercase, without `_`, `-` and `.`).
const NOT_SECRET_PASS: &[&[u8]] = &[
    b"proxypass",
    b"fastcgipass",
    b"uwsgipass",
    b"scgipass",
    b"grpcpass",
    b"memcachedpass",
];

/// How a secret key's value is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Secrecy {
    /// Whether an absolute file path is kept as harmless: only for keys that name a file
    /// (`PasswordFile`, `HostKey`, `ssh_key`), never for `password`, `token`, `pass` ….
    pub(super) paths_ok: bool,
}

/// Whether `key` names a secret, and how; `extra` are the user's `redact_patterns`.
pub(super) fn classify(key: &[u8], extra: &[regex::Regex]) -> Option<Secrecy> {
    let names_file = FILE_WORDS.is_match(key);
    if SECRET_WORDS.is_match(key) || has_pass_word(key) {
        return Some(Secrecy {
            paths_ok: names_file,
        });
    }
    if has_key_word(key) {
        return Some(Secrecy { paths_ok: true });
    }
    let text = String::from_utf8_lossy(key);
    extra
        .iter()
        .any(|re| re.is_match(&text))
        .then_some(Secrecy {
            paths_ok: names_file,
        })
}

/// Whether the letters at `start..end` of `key` form a word: delimited by non-letters or a
/// camel-case boundary.
fn is_word_at(key: &[u8], start: usize, end: usize) -> (bool, bool) {
    let before_ok = start == 0 || {
        let prev = key[start - 1];
        !prev.is_ascii_alphabetic()
            || (prev.is_ascii_lowercase() && key[start].is_ascii_uppercase())
    };
    let after_ok = end == key.len() || {
        let next = key[end];
        !next.is_ascii_alphabetic()
            || (next.is_ascii_uppercase() && key[end - 1].is_ascii_lowercase())
    };
    (before_ok, after_ok)
}

/// Whether `key` has `key` as a word (`ssh_key`, `encryptionKey`, `Key`, but not
/// `PubkeyAuthentication`, `monkey` or `KeyboardLayout`).
pub(super) fn has_key_word(key: &[u8]) -> bool {
    let lower = key.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].windows(3).position(|w| w == b"key") {
        let start = from + pos;
        if is_word_at(key, start, start + 3) == (true, true) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Whether `key` ends with the word `pass` (only digits or punctuation after it): `pass`,
/// `DB_PASS`, pgBackRest's `repo1-cipher-pass`, rclone's `pass`; but not `PASS_MAX_DAYS`
/// (login.defs), `bypass`, `passive` or nginx's `proxy_pass`.
pub(super) fn has_pass_word(key: &[u8]) -> bool {
    let lower = key.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].windows(4).position(|w| w == b"pass") {
        let start = from + pos;
        let end = start + 4;
        let (before_ok, _) = is_word_at(key, start, end);
        let last_word = !key[end..].iter().any(u8::is_ascii_alphabetic);
        if before_ok && last_word {
            let squeezed: Vec<u8> = lower[..end]
                .iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric())
                .collect();
            return !NOT_SECRET_PASS.iter().any(|name| squeezed.ends_with(name));
        }
        from = start + 1;
    }
    false
}

/// Values that cannot be secrets worth hiding: empty ones, booleans, a marker already put in,
/// and, when `paths_ok`, absolute file paths (`HostKey /etc/ssh/ssh_host_ed25519_key`).
pub(super) fn is_harmless(value: &[u8], paths_ok: bool) -> bool {
    let value = value.trim_ascii();
    if value.is_empty() || is_marker(value) {
        return true;
    }
    const WORDS: &[&str] = &[
        "yes", "no", "true", "false", "on", "off", "enabled", "disabled", "none", "null",
    ];
    if WORDS
        .iter()
        .any(|w| value.eq_ignore_ascii_case(w.as_bytes()))
    {
        return true;
    }
    paths_ok && is_path(value)
}

/// An absolute path whose first directory is a plain lowercase name (`/etc/…`, `/var/lib/…`),
/// which a base64 secret that happens to start with `/` rarely is.
fn is_path(value: &[u8]) -> bool {
    let Some(rest) = value.strip_prefix(b"/") else {
        return false;
    };
    let first = rest.split(|b| *b == b'/').next().unwrap_or_default();
    !first.is_empty()
        && first
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+@%".contains(b))
}

/// `[REDACTED sha256:<64 hex digits>]`.
pub(super) fn is_marker(value: &[u8]) -> bool {
    value
        .strip_prefix(b"[REDACTED sha256:")
        .and_then(|rest| rest.strip_suffix(b"]"))
        .is_some_and(|hex| hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit))
}
