//! Redaction of secrets in configuration files (and in a command's arguments and errors),
//! before they become evidence.
//!
//! What is replaced, line by line (bytes, so it works on any encoding):
//! - the value of a line `key = value`, `key: value`, `key value`, `"key": "value",`,
//!   `export KEY=value` (also when commented out) whose key looks secret;
//! - the indented lines of a YAML block scalar under a secret key (`password: |`, `key: >-`);
//! - inline `key=value` / `key: value` pairs anywhere in a line (`--token=…`, `Password=…;`,
//!   XML attributes, compact JSON `{"db":{"password":"…"}}`) whose key looks secret, and
//!   `<key>value</key>` elements;
//! - the password of a URL (`scheme://user:password@host`);
//! - crypt(3) password hashes anywhere (`$6$salt$…`, `$y$…`, `$2b$12$…`), so that a shadow-format
//!   file (or an `htpasswd`) collected by mistake does not publish them;
//! - the body of a PEM private key block, and the whole of any line that starts with
//!   `PRIVATE+KEY+` (an evidence-agent signing key; the token alone when it is mid-line);
//! - in a file named `.pgpass` or `*.pgpass`, the password field of every
//!   `host:port:database:user:password` line.
//!
//! A key looks secret when it contains `password`, `passwd`, `passphrase`, `secret`, `token`,
//! `api_key`, `private_key` or `credential` (any case; `_`/`-` optional where it makes sense),
//! ends with `pass` as a word of its own (`pass`, `DB_PASS`, `repo1-cipher-pass`, but not
//! `PASS_MAX_DAYS`, `bypass` or nginx's `proxy_pass`), has `key` as a word of its own
//! (`ssh_key`, `encryptionKey`, `Key`, but not `PubkeyAuthentication` or `AuthorizedKeysFile`),
//! or matches one of the user's `redact_patterns`. Values that cannot be secrets are kept so the
//! evidence stays useful: booleans (`yes`, `no`, `true`, `off` …), and absolute file paths, but
//! only under keys that name a file (`HostKey /etc/ssh/ssh_host_ed25519_key`,
//! `PasswordFile /etc/app/pw`): `password=/Passw0rd` is redacted.
//!
//! A value is replaced by `[REDACTED sha256:<hex of SHA-256(salt ‖ value)>]`: the same secret
//! always gives the same marker on one host, so a changed secret is visible in a diff, but the
//! marker cannot be reversed or guessed without the host's salt.

mod argv;
mod keys;
#[cfg(test)]
mod tests;

use keys::{classify, is_harmless, Secrecy};
use regex::bytes::{Captures, Regex};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::LazyLock;

/// A whole line `key <sep> value` (the key possibly quoted, commented out or exported).
static LEADING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^(\s*(?:(?:#|;|//|--|-)\s*)?(?:export\s+)?["']?)([^\s=:"'<>]+)(["']?(?:\s*(?:=>|:=|=|:)\s*|\s+))(.*?)(\s*)$"#,
    )
    .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// `key=`, `key: `, `"key":` or `key =>` anywhere in a line; group 2 is the key's closing quote
/// (JSON); the value after it is found by [`value_len`].
static INLINE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([A-Za-z0-9_.\-]+)(["']?)\s*(?:=>|:=|=|:)\s*"#)
        .unwrap_or_else(|_| unreachable!("constant regex"))
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

/// An evidence-agent private key (`PRIVATE+KEY+<name>+<hash>+<key>`) inside a line.
static AGENT_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"PRIVATE\+KEY\+\S*").unwrap_or_else(|_| unreachable!("constant regex"))
});

/// The value of a YAML block scalar header: `|`, `>-`, `|2+`, with an optional comment.
static BLOCK_SCALAR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[|>][0-9+\-]*(?:\s+#.*)?$").unwrap_or_else(|_| unreachable!("constant regex"))
});

static PEM_BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

static PEM_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// Whether a file with this path is a PostgreSQL password file (`.pgpass`, `*.pgpass`).
pub(crate) fn is_pgpass(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.as_encoded_bytes().ends_with(b".pgpass"))
}

/// Replaces secret values by salted-hash markers.
#[derive(Debug)]
pub(crate) struct Redactor {
    extra: Vec<regex::Regex>,
    salt: [u8; 32],
}

/// The lines of a YAML block scalar under a secret key, being collected.
struct Block<'a> {
    /// The column of the key: lines indented further belong to the block.
    column: usize,
    lines: Vec<&'a [u8]>,
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

    fn secrecy(&self, key: &[u8]) -> Option<Secrecy> {
        classify(key, &self.extra)
    }

    #[cfg(test)]
    fn key_is_secret(&self, key: &[u8]) -> bool {
        self.secrecy(key).is_some()
    }

    /// The redacted text and how many values were replaced.
    pub(crate) fn redact(&self, input: &[u8]) -> (Vec<u8>, usize) {
        self.redact_as(input, false)
    }

    /// [`Redactor::redact`] for the file at `path`, which may have a format of its own
    /// (`.pgpass`).
    pub(crate) fn redact_file(&self, input: &[u8], path: &Path) -> (Vec<u8>, usize) {
        self.redact_as(input, is_pgpass(path))
    }

    fn redact_as(&self, input: &[u8], pgpass: bool) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(input.len());
        let mut count = 0;
        let mut pem_body: Option<Vec<u8>> = None;
        let mut block: Option<Block> = None;
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
            if let Some(open) = block.as_mut() {
                if body.trim_ascii().is_empty() || indent(body) > open.column {
                    open.lines.push(line);
                    continue;
                }
                if let Some(done) = block.take() {
                    count += self.flush_block(done, &mut out);
                }
            }
            if PEM_BEGIN.is_match(body) {
                out.extend_from_slice(line);
                pem_body = Some(Vec::new());
                continue;
            }
            if body.trim_ascii_start().starts_with(b"PRIVATE+KEY+") {
                out.extend_from_slice(&self.marker(body));
                out.extend_from_slice(ending);
                count += 1;
                continue;
            }
            if pgpass {
                if let Some(redacted) = self.redact_pgpass_line(body) {
                    out.extend_from_slice(&redacted);
                    out.extend_from_slice(ending);
                    count += 1;
                    continue;
                }
            }
            if let Some(column) = self.block_start(body) {
                out.extend_from_slice(line);
                block = Some(Block {
                    column,
                    lines: Vec::new(),
                });
                continue;
            }
            let (redacted, n) = self.redact_line(body);
            out.extend_from_slice(&redacted);
            out.extend_from_slice(ending);
            count += n;
        }
        if let Some(done) = block {
            count += self.flush_block(done, &mut out);
        }
        if let Some(collected) = pem_body {
            // A private key block without its END line: still never publish it.
            out.extend_from_slice(&self.marker(&collected));
            out.push(b'\n');
            count += 1;
        }
        (out, count)
    }

    /// The key's column when `line` opens a YAML block scalar under a secret key.
    fn block_start(&self, line: &[u8]) -> Option<usize> {
        let caps = LEADING.captures(line)?;
        let prefix = &caps[1];
        let commented = prefix.contains(&b'#') || prefix.contains(&b';') || prefix.contains(&b'/');
        let key = caps.get(2)?;
        let separator = caps[3].trim_ascii();
        let is_block = !commented
            && separator.ends_with(b":")
            && BLOCK_SCALAR.is_match(&caps[4])
            && self.secrecy(key.as_bytes()).is_some();
        is_block.then_some(key.start())
    }

    /// Write a YAML block scalar's lines as one marker line (at the indentation of its first
    /// line), keeping the blank lines that end it. Returns the number of values replaced.
    fn flush_block(&self, block: Block, out: &mut Vec<u8>) -> usize {
        let content_len = block
            .lines
            .iter()
            .rposition(|l| !l.trim_ascii().is_empty())
            .map_or(0, |i| i + 1);
        let (content, trailing) = block.lines.split_at(content_len);
        let (Some(first), Some(last)) = (content.first(), content.last()) else {
            trailing.iter().for_each(|l| out.extend_from_slice(l));
            return 0;
        };
        let value = content.concat();
        out.extend_from_slice(&first[..indent(first)]);
        out.extend_from_slice(&self.marker(&value));
        out.extend_from_slice(split_ending(last).1);
        trailing.iter().for_each(|l| out.extend_from_slice(l));
        1
    }

    /// A `.pgpass` line with its fifth field (everything after the fourth unescaped `:`)
    /// replaced; `None` for comments and lines with fewer fields.
    fn redact_pgpass_line(&self, line: &[u8]) -> Option<Vec<u8>> {
        if line.trim_ascii_start().starts_with(b"#") {
            return None;
        }
        let mut colons = 0;
        let mut escaped = false;
        for (index, byte) in line.iter().enumerate() {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b':' => {
                    colons += 1;
                    if colons == 4 {
                        let password = &line[index + 1..];
                        if password.is_empty() {
                            return None;
                        }
                        return Some([&line[..=index], &self.marker(password)[..]].concat());
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn redact_line(&self, line: &[u8]) -> (Vec<u8>, usize) {
        if let Some(caps) = LEADING.captures(line) {
            let key = &caps[2];
            let value = &caps[4];
            if let Some(secrecy) = self.secrecy(key) {
                if let Some(redacted) = self.redact_value(value, secrecy) {
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
            let secrecy = match self.secrecy(&caps[1]) {
                Some(secrecy) if caps[1] == caps[3] => secrecy,
                _ => return whole,
            };
            match self.redact_value(&caps[2], secrecy) {
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
        let line = AGENT_KEY.replace_all(&line, |caps: &Captures| {
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
            let Some(secrecy) = self.secrecy(key.as_bytes()) else {
                continue;
            };
            let quoted_key = caps.get(2).is_some_and(|q| !q.is_empty());
            let value_end = at + value_len(&line[at..], quoted_key);
            if let Some(redacted) = self.redact_value(&line[at..value_end], secrecy) {
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
    fn redact_value(&self, value: &[u8], secrecy: Secrecy) -> Option<Vec<u8>> {
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
        if is_harmless(inner, secrecy.paths_ok) {
            return None;
        }
        Some([open, &self.marker(inner)[..], close, trailer].concat())
    }
}

/// The length of the inline value at the start of `rest`: a quoted string, or up to whitespace
/// or a delimiter (`&`, `;`, `,`, quotes, angle brackets). After a quoted key (JSON), an object
/// or array is no value of its own (its keys are looked at in turn) and a bare value also ends
/// at `}` or `]`.
fn value_len(rest: &[u8], json: bool) -> usize {
    match rest.first() {
        Some(q @ (b'"' | b'\'')) => rest[1..]
            .iter()
            .position(|b| b == q)
            .map_or(rest.len(), |end| end + 2),
        Some(b'{' | b'[') if json => 0,
        _ => rest
            .iter()
            .position(|b| {
                b.is_ascii_whitespace() || b"\"'&;,<>".contains(b) || (json && b"}]".contains(b))
            })
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

/// The number of leading spaces and tabs.
fn indent(line: &[u8]) -> usize {
    line.iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()
}
