//! Redaction of a command line (the `command` collector's `argv`, published in its details).
//!
//! On top of the rules for text (so `--password=x`, `token=x`, URLs with a password are
//! covered), words are looked at as a shell would split them (inside an argument too, for
//! `sh -c '…'`): the word after a flag naming a secret (`--password x`, `-token x`, but not
//! `--password-file f`, `--password-stdin` or `--no-password`) is replaced, and so is the value
//! glued to a `-p` flag (`mysql -pSECRET`; this also hides harmless clusters such as `-pv`,
//! and the name of single-dash flags such as `-password`, whose next word is hidden too).

use super::keys::{classify, Secrecy};
use super::Redactor;

/// Single-dash flags starting with `-p` that take the next word as a secret.
const P_FLAGS: &[&[u8]] = &[b"-password", b"-passwd", b"-pass", b"-passphrase"];

/// How deep quoted words are looked into.
const MAX_DEPTH: usize = 4;

/// Flags whose next word is not a secret although their name looks secret.
const NOT_VALUE_FLAG_WORDS: &[&str] = &["file", "path", "dir", "stdin", "prompt", "env"];

impl Redactor {
    /// `argv` with secret values replaced by markers; the program (`argv[0]`) is kept.
    pub(crate) fn redact_argv(&self, argv: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(argv.len());
        let mut pending: Option<Secrecy> = None;
        for (index, arg) in argv.iter().enumerate() {
            let bytes = arg.as_bytes();
            let redacted = if index == 0 {
                bytes.to_vec()
            } else if let Some(secrecy) = pending.take() {
                self.redact_value(bytes, secrecy)
                    .unwrap_or_else(|| bytes.to_vec())
            } else {
                let (redacted, next) = self.redact_words(bytes);
                pending = next;
                redacted
            };
            out.push(String::from_utf8_lossy(&redacted).into_owned());
        }
        out
    }

    /// A command's output (its stderr) with the same rules as an argument.
    pub(crate) fn redact_command_text(&self, text: &[u8]) -> Vec<u8> {
        self.redact_words(text).0
    }

    /// One argument, word by word, then as text. Also returns whether its last word is a flag
    /// whose value is the next word.
    fn redact_words(&self, text: &[u8]) -> (Vec<u8>, Option<Secrecy>) {
        let (out, pending) = self.redact_words_in(text, 0);
        (self.redact(&out).0, pending)
    }

    /// The word rules on `text`; a quoted word (`sh -c "mysql -pX"` inside an argument) is
    /// looked into in turn, up to a few levels.
    fn redact_words_in(&self, text: &[u8], depth: usize) -> (Vec<u8>, Option<Secrecy>) {
        let mut out = Vec::with_capacity(text.len());
        let mut copied = 0;
        let mut pending: Option<Secrecy> = None;
        for (start, end) in words(text) {
            let word = &text[start..end];
            let replaced = if let Some(secrecy) = pending.take() {
                self.redact_value(word, secrecy)
            } else if let Some(value) = glued_p_value(word) {
                // `-password x` is both: what follows `-p` is hidden, and so is `x`.
                if P_FLAGS.iter().any(|f| word.eq_ignore_ascii_case(f)) {
                    pending = Some(Secrecy { paths_ok: false });
                }
                let secrecy = Secrecy { paths_ok: false };
                self.redact_value(value, secrecy)
                    .map(|redacted| [&b"-p"[..], &redacted].concat())
            } else if let Some(inner) = quoted(word).filter(|_| depth < MAX_DEPTH) {
                let (redacted, _) = self.redact_words_in(inner, depth + 1);
                (redacted != inner).then(|| {
                    let quote = &word[..1];
                    [quote, &redacted, quote].concat()
                })
            } else {
                pending = value_flag(word, &self.extra);
                None
            };
            if let Some(replaced) = replaced {
                out.extend_from_slice(&text[copied..start]);
                out.extend_from_slice(&replaced);
                copied = end;
            }
        }
        out.extend_from_slice(&text[copied..]);
        (out, pending)
    }
}

/// The inside of a word wholly in one pair of quotes.
fn quoted(word: &[u8]) -> Option<&[u8]> {
    match (word.first(), word.last()) {
        (Some(q @ (b'"' | b'\'')), Some(l)) if word.len() >= 2 && q == l => {
            Some(&word[1..word.len() - 1])
        }
        _ => None,
    }
}

/// The value of a word `-p<value>` (not `--…`, not `-p` alone).
fn glued_p_value(word: &[u8]) -> Option<&[u8]> {
    word.strip_prefix(b"-p").filter(|value| !value.is_empty())
}

/// The secrecy of the next word when `word` is a flag naming a secret, without a value of its
/// own (`--password`, `-token`).
fn value_flag(word: &[u8], extra: &[regex::Regex]) -> Option<Secrecy> {
    let name = word
        .strip_prefix(b"--")
        .or_else(|| word.strip_prefix(b"-"))?;
    let plain = !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(b));
    if !plain {
        return None;
    }
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    if lower.starts_with("no-")
        || lower.starts_with("no_")
        || NOT_VALUE_FLAG_WORDS.iter().any(|w| lower.contains(w))
    {
        return None;
    }
    classify(name, extra)
}

/// The words of `text`, split at blanks as a shell would, except that a quote only groups
/// (`'a b'`, `"a b"`) when it opens a word, follows `=` or a leading `-p`, and is closed later:
/// the apostrophe of `can't` in a message is a letter. A backslash keeps the next byte in the
/// word. Returns (start, end) byte offsets.
fn words(text: &[u8]) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut at = 0;
    while at < text.len() {
        let byte = text[at];
        if byte.is_ascii_whitespace() {
            if let Some(from) = start.take() {
                words.push((from, at));
            }
            at += 1;
            continue;
        }
        let from = *start.get_or_insert(at);
        let opens = matches!(byte, b'\'' | b'"')
            && (at == from || text[at - 1] == b'=' || &text[from..at] == b"-p");
        if let Some(close) = opens
            .then(|| closing_quote(&text[at + 1..], byte))
            .flatten()
        {
            at += close + 2;
            continue;
        }
        at += if byte == b'\\' { 2 } else { 1 };
    }
    if let Some(from) = start {
        words.push((from, text.len()));
    }
    words
}

/// Where the quote `quote` closes in `rest` (a backslash escapes inside `"…"`).
fn closing_quote(rest: &[u8], quote: u8) -> Option<usize> {
    let mut escaped = false;
    for (index, &byte) in rest.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if byte == b'\\' && quote == b'"' {
            escaped = true;
        } else if byte == quote {
            return Some(index);
        }
    }
    None
}
