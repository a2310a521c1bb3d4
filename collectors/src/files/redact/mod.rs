//! Redaction of secrets in configuration files, before they become evidence.
//!
//! What is replaced, line by line (bytes, so it works on any encoding):
//! - the value of a line `key = value`, `key: value`, `key value`, `"key": "value",`,
//!   `export KEY=value` (also when commented out) whose key looks secret;
//! - inline `key=value` / `key: value` pairs anywhere in a line (`--token=…`, `Password=…;`,
//!   XML attributes) whose key looks secret, and `<key>value</key>` elements;
//! - the password of a URL (`scheme://user:password@host`);
//! - crypt(3) password hashes anywhere (`$6$salt$…`, `$y$…`, `$2b$12$…`), so that a shadow-format
//!   file (or an `htpasswd`) collected by mistake does not publish them;
//! - the body of a PEM private key block.
//!
//! A key looks secret when it contains `password`, `passwd`, `passphrase`, `secret`, `token`, `api_key`,
//! `private_key` or `credential` (any case; `_`/`-` optional where it makes sense), has `key`
//! as a word of its own (`ssh_key`, `encryptionKey`, `Key`, but not `PubkeyAuthentication` or
//! `AuthorizedKeysFile`), or matches one of the user's `redact_patterns`. Values that cannot be
//! secrets are kept so the evidence stays useful: booleans (`yes`, `no`, `true`, `off` …) and
//! absolute file paths (`HostKey /etc/ssh/ssh_host_ed25519_key`).
//!
//! A value is replaced by `[REDACTED sha256:<hex of SHA-256(salt ‖ value)>]`: the same secret
//! always gives the same marker on one host, so a changed secret is visible in a diff, but the
//! marker cannot be reversed or guessed without the host's salt.

use regex::bytes::{Captures, Regex};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

static SECRET_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key|credential",
    )
    .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// A whole line `key <sep> value` (the key possibly quoted, commented out or exported).
static LEADING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^(\s*(?:(?:#|;|//|--|-)\s*)?(?:export\s+)?["']?)([^\s=:"'<>]+)(["']?(?:\s*(?:=>|:=|=|:)\s*|\s+))(.*?)(\s*)$"#,
    )
    .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// `key=` or `key: ` anywhere in a line; the value after it is found by [`value_len`].
static INLINE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([A-Za-z0-9_.\-]+)\s*[=:]\s*").unwrap_or_else(|_| unreachable!("constant regex"))
});

/// `<key>value</key>`.
static ELEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<([A-Za-z0-9_.:\-]+)>([^<]+)</([A-Za-z0-9_.:\-]+)>")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// `scheme://user:password@`.
static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)([^\s/@]+)@")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// A crypt(3) hash: `$id$[params$]salt$hash`, with a hash part long enough not to be `$1$2`.
static CRYPT_HASH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$(?:1|2[abxy]|5|6|7|y|gy|sha1|md5)\$[./A-Za-z0-9=,$]*\$[./A-Za-z0-9]{16,}")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

static PEM_BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

static PEM_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// Replaces secret values by salted-hash markers.
#[derive(Debug)]
pub(crate) struct Redactor {
    extra: Vec<regex::Regex>,
    salt: [u8; 32],
}

impl Redactor {
    pub(crate) fn new(extra: Vec<regex::Regex>, salt: [u8; 32]) -> Redactor {
        Redactor { extra, salt }
    }

    fn marker(&self, value: &[u8]) -> Vec<u8> {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(value);
        format!("[REDACTED sha256:{}]", hex::encode(hasher.finalize())).into_bytes()
    }

    fn key_is_secret(&self, key: &[u8]) -> bool {
        if SECRET_WORDS.is_match(key) || has_key_word(key) {
            return true;
        }
        let key = String::from_utf8_lossy(key);
        self.extra.iter().any(|re| re.is_match(&key))
    }

    /// The redacted text and how many values were replaced.
    pub(crate) fn redact(&self, input: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(input.len());
        let mut count = 0;
        let mut pem_body: Option<Vec<u8>> = None;
        for line in input.split_inclusive(|b| *b == b'\n') {
            let (body, ending) = split_ending(line);
            if let Some(collected) = pem_body.as_mut() {
                if PEM_END.is_match(line) {
                    out.extend_from_slice(&self.marker(collected));
                    out.push(b'\n');
                    out.extend_from_slice(line);
                    count += 1;
                    pem_body = None;
                } else {
                    collected.extend_from_slice(line);
                }
                continue;
            }
            if PEM_BEGIN.is_match(body) {
                out.extend_from_slice(line);
                pem_body = Some(Vec::new());
                continue;
            }
            let (redacted, n) = self.redact_line(body);
            out.extend_from_slice(&redacted);
            out.extend_from_slice(ending);
            count += n;
        }
        if let Some(collected) = pem_body {
            // A private key block without its END line: still never publish it.
            out.extend_from_slice(&self.marker(&collected));
            out.push(b'\n');
            count += 1;
        }
        (out, count)
    }

    fn redact_line(&self, line: &[u8]) -> (Vec<u8>, usize) {
        if let Some(caps) = LEADING.captures(line) {
            let key = &caps[2];
            let value = &caps[4];
            if self.key_is_secret(key) {
                if let Some(redacted) = self.redact_value(value) {
                    let mut out = Vec::with_capacity(line.len());
                    out.extend_from_slice(&caps[1]);
                    out.extend_from_slice(key);
                    out.extend_from_slice(&caps[3]);
                    out.extend_from_slice(&redacted);
                    out.extend_from_slice(&caps[5]);
                    return (out, 1);
                }
            }
        }
        let (line, mut count) = self.redact_inline(line);
        let line = ELEMENT.replace_all(&line, |caps: &Captures| {
            let whole = caps[0].to_vec();
            if caps[1] != caps[3] || !self.key_is_secret(&caps[1]) {
                return whole;
            }
            match self.redact_value(&caps[2]) {
                Some(redacted) => {
                    count += 1;
                    [b"<", &caps[1], b">", &redacted[..], b"</", &caps[3], b">"].concat()
                }
                None => whole,
            }
        });
        let line = URL_PASSWORD.replace_all(&line, |caps: &Captures| {
            count += 1;
            [&caps[1], &self.marker(&caps[2])[..], b"@"].concat()
        });
        let line = CRYPT_HASH.replace_all(&line, |caps: &Captures| {
            count += 1;
            self.marker(&caps[0])
        });
        (line.into_owned(), count)
    }

    /// Inline pairs: a value is only skipped over once redacted, so in `dsn=Password=x` the
    /// inner pair is still found.
    fn redact_inline(&self, line: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(line.len());
        let mut count = 0;
        let mut copied = 0;
        let mut at = 0;
        while let Some(caps) = INLINE_KEY.captures_at(line, at) {
            let (Some(whole), Some(key)) = (caps.get(0), caps.get(1)) else {
                break;
            };
            at = whole.end();
            if !self.key_is_secret(key.as_bytes()) {
                continue;
            }
            let value_end = at + value_len(&line[at..]);
            if let Some(redacted) = self.redact_value(&line[at..value_end]) {
                out.extend_from_slice(&line[copied..at]);
                out.extend_from_slice(&redacted);
                copied = value_end;
                count += 1;
            }
            at = value_end.max(at);
        }
        out.extend_from_slice(&line[copied..]);
        (out, count)
    }

    /// The replacement for `value` (keeping its quotes and a trailing `,`/`;`), or `None` when
    /// there is nothing secret in it.
    fn redact_value(&self, value: &[u8]) -> Option<Vec<u8>> {
        let (value, trailer) = match value.last() {
            Some(b',') | Some(b';') => value.split_at(value.len() - 1),
            _ => (value, &b""[..]),
        };
        let (open, inner, close) = match (value.first(), value.last()) {
            (Some(q @ (b'"' | b'\'')), Some(l)) if value.len() >= 2 && q == l => (
                &value[..1],
                &value[1..value.len() - 1],
                &value[value.len() - 1..],
            ),
            _ => (&b""[..], value, &b""[..]),
        };
        if is_harmless(inner) {
            return None;
        }
        Some([open, &self.marker(inner)[..], close, trailer].concat())
    }
}

/// The length of the inline value at the start of `rest`: a quoted string, or up to whitespace
/// or a delimiter (`&`, `;`, `,`, quotes, angle brackets).
fn value_len(rest: &[u8]) -> usize {
    match rest.first() {
        Some(q @ (b'"' | b'\'')) => rest[1..]
            .iter()
            .position(|b| b == q)
            .map_or(rest.len(), |end| end + 2),
        _ => rest
            .iter()
            .position(|b| b.is_ascii_whitespace() || b"\"'&;,<>".contains(b))
            .unwrap_or(rest.len()),
    }
}

fn split_ending(line: &[u8]) -> (&[u8], &[u8]) {
    let body_len = line
        .iter()
        .rposition(|b| *b != b'\n' && *b != b'\r')
        .map_or(0, |i| i + 1);
    line.split_at(body_len)
}

/// Empty values, booleans and absolute file paths cannot be secrets worth hiding.
fn is_harmless(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    if value.is_empty() {
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
    value.len() > 1
        && value[0] == b'/'
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+@%".contains(b))
}

/// Whether `key` has `key` as a word: delimited by non-letters or a camel-case boundary.
fn has_key_word(key: &[u8]) -> bool {
    let lower = key.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].windows(3).position(|w| w == b"key") {
        let start = from + pos;
        let end = start + 3;
        let before_ok = start == 0 || {
            let prev = key[start - 1];
            !prev.is_ascii_alphabetic() || (prev.is_ascii_lowercase() && key[start] == b'K')
        };
        let after_ok = end == key.len() || {
            let next = key[end];
            !next.is_ascii_alphabetic() || (next.is_ascii_uppercase() && key[end - 1] == b'y')
        };
        if before_ok && after_ok {
            return true;
        }
        from = start + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(Vec::new(), [7; 32])
    }

    fn redacted(text: &str) -> String {
        String::from_utf8(redactor().redact(text.as_bytes()).0).unwrap()
    }

    #[test]
    fn key_words_are_recognised_without_catching_every_key_substring() {
        for key in [
            "ssh_key",
            "encryptionKey",
            "Key",
            "KEY",
            "key-file",
            "aws_secret",
            "DB_PASSWORD",
        ] {
            assert!(redactor().key_is_secret(key.as_bytes()), "{key}");
        }
        for key in [
            "PubkeyAuthentication",
            "AuthorizedKeysFile",
            "monkey",
            "KeyboardLayout",
            "user",
        ] {
            assert!(!redactor().key_is_secret(key.as_bytes()), "{key}");
        }
    }

    #[test]
    fn common_config_syntaxes_are_redacted() {
        let m = |v: &str| String::from_utf8(redactor().marker(v.as_bytes())).unwrap();
        assert_eq!(
            redacted("password = hunter2\n"),
            format!("password = {}\n", m("hunter2"))
        );
        assert_eq!(
            redacted("  \"api_key\": \"abc\",\n"),
            format!("  \"api_key\": \"{}\",\n", m("abc"))
        );
        assert_eq!(
            redacted("export AWS_SECRET_ACCESS_KEY='s3'"),
            format!("export AWS_SECRET_ACCESS_KEY='{}'", m("s3"))
        );
        assert_eq!(
            redacted("# token: old1\r\n"),
            format!("# token: {}\r\n", m("old1"))
        );
        assert_eq!(
            redacted("ExecStart=/bin/app --token=t0k serve"),
            format!("ExecStart=/bin/app --token={} serve", m("t0k"))
        );
        assert_eq!(
            redacted("dsn = Server=db;Password=pw1;"),
            format!("dsn = Server=db;Password={};", m("pw1"))
        );
        assert_eq!(
            redacted("dsn = Password=pw1"),
            format!("dsn = Password={}", m("pw1"))
        );
        assert_eq!(
            redacted("<user name=\"a\" password=\"p 3\"/>"),
            format!("<user name=\"a\" password=\"{}\"/>", m("p 3"))
        );
        assert_eq!(
            redacted("<password>x1</password>"),
            format!("<password>{}</password>", m("x1"))
        );
        assert_eq!(
            redacted("url: postgres://app:pw2@db/x"),
            format!("url: postgres://app:{}@db/x", m("pw2"))
        );
    }

    #[test]
    fn password_hashes_are_redacted_wherever_they_are() {
        let shadow = "alice:$6$rG8kTz1Q$Jd3nV0pXyC7aW2sLq9mE4uB6tR1hZ8fK5gN3oP7iY0xM2cV4bA9sD6fG1hJ3kL5zX7qW9eR2tY4uI6oP8aS0d.:19722:0:99999:7:::";
        let out = redacted(shadow);
        assert!(
            out.starts_with("alice:[REDACTED sha256:") && out.ends_with("]:19722:0:99999:7:::"),
            "{out}"
        );
        let yescrypt = redacted("root:$y$j9T$Qm7y5Yb0bKp2lQx1a9Xz1/$7cVv2rE9yq3lWm8ZfH0aJq4tYpN6sLkB2xRdU1oG5iC:19640::::::");
        assert!(!yescrypt.contains("7cVv2rE9"), "{yescrypt}");
        let htpasswd =
            redacted("admin:$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy");
        assert!(!htpasswd.contains("N9qo8uLO"), "{htpasswd}");
        assert_eq!(redacted("echo \"$1$2\" $6$x"), "echo \"$1$2\" $6$x");
    }

    #[test]
    fn harmless_values_stay_readable() {
        for line in [
            "PasswordAuthentication no",
            "HostKey /etc/ssh/ssh_host_ed25519_key",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PermitRootLogin prohibit-password",
            "password:",
        ] {
            assert_eq!(redacted(line), line);
        }
    }

    #[test]
    fn private_key_blocks_lose_their_body() {
        let pem = "a=1\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\nAAAA\n-----END OPENSSH PRIVATE KEY-----\nz=2\n";
        let (out, count) = redactor().redact(pem.as_bytes());
        let out = String::from_utf8(out).unwrap();
        assert_eq!(count, 1);
        assert!(!out.contains("b3BlbnNzaC1rZXktdjE"));
        assert!(out.starts_with("a=1\n-----BEGIN OPENSSH PRIVATE KEY-----\n[REDACTED sha256:"));
        assert!(out.ends_with("]\n-----END OPENSSH PRIVATE KEY-----\nz=2\n"));
    }

    #[test]
    fn user_patterns_extend_the_secret_keys() {
        let r = Redactor::new(vec![regex::Regex::new("(?i)^pin$").unwrap()], [0; 32]);
        let (out, count) = r.redact(b"pin 4321\n");
        assert_eq!(count, 1);
        assert!(!String::from_utf8(out).unwrap().contains("4321"));
    }
}
