//! SSH `authorized_keys` files: which keys can log in as which user, by fingerprint.
//!
//! The files are found as sshd's `AuthorizedKeysFile` does (`%h` home, `%u` user, `%%`; a
//! relative path is relative to the home directory), resolved under the collector's root.
//!
//! Guarantees: a key is identified by the SHA-256 fingerprint OpenSSH prints
//! (`SHA256:<base64 without padding>` of the decoded key blob), and a line is only taken as a key
//! when its blob decodes and names the same key type as the line; anything else is skipped with
//! a `file:line` warning. A missing file is normal (no keys); an unreadable one is a warning.

use super::passwd::User;
use super::Host;
use crate::files::read::ReadError;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One authorized key.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) key_type: String,
    pub(super) fingerprint: String,
    pub(super) options: Vec<String>,
    pub(super) comment: String,
}

/// The `ssh_key` items of every user, with their source `file:line`.
pub(super) fn read_all(host: &mut Host, users: &[User], files: &[String]) -> Vec<Value> {
    let mut items = Vec::new();
    for user in users {
        if user.home.is_empty() {
            continue;
        }
        for file in files {
            let path = expand(file, user);
            let text = match host.read(&path) {
                Ok((text, _)) => text,
                Err(ReadError::NotFound) => continue,
                Err(err) => {
                    host.warnings.push(format!(
                        "{path}: keys of {} not read: {}",
                        user.name,
                        err.reason()
                    ));
                    continue;
                }
            };
            for (index, line) in text.lines().enumerate() {
                let line = line.trim_end_matches('\r').trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some(key) = parse_line(line) else {
                    host.warnings.push(format!(
                        "{path}:{}: not a valid public key line; skipped",
                        index + 1
                    ));
                    continue;
                };
                items.push(json!({
                    "type": "ssh_key",
                    "id": format!("{} {}", user.name, key.fingerprint),
                    "user": user.name,
                    "key_type": key.key_type,
                    "fingerprint": key.fingerprint,
                    "options": key.options,
                    "comment": key.comment,
                    "source": format!("{path}:{}", index + 1),
                }));
            }
        }
    }
    items
}

/// An `AuthorizedKeysFile` entry for one user, as a host path.
fn expand(pattern: &str, user: &User) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&user.home),
            Some('u') => out.push_str(&user.name),
            Some('%') => out.push('%'),
            other => {
                out.push('%');
                out.extend(other);
            }
        }
    }
    if out.starts_with('/') {
        out
    } else {
        format!("{}/{out}", user.home.trim_end_matches('/'))
    }
}

/// Parse one non-comment line: `[options] type base64 [comment]`.
pub(super) fn parse_line(line: &str) -> Option<Key> {
    if let Some(key) = parse_key(line, Vec::new()) {
        return Some(key);
    }
    let (options, rest) = split_options(line)?;
    parse_key(rest, options)
}

fn parse_key(text: &str, options: Vec<String>) -> Option<Key> {
    let text = text.trim_start();
    let (key_type, rest) = text.split_once([' ', '\t'])?;
    let rest = rest.trim_start();
    let (encoded, comment) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let blob = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    if blob_key_type(&blob)? != key_type.as_bytes() {
        return None;
    }
    let digest = Sha256::digest(&blob);
    Some(Key {
        key_type: key_type.to_owned(),
        fingerprint: format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        ),
        options,
        comment: comment.trim().to_owned(),
    })
}

/// The key type named at the start of a key blob (an SSH `string`: u32 length, bytes).
fn blob_key_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?);
    blob.get(4..4 + usize::try_from(len).ok()?)
}

/// Split leading options (comma-separated, double quotes protect spaces and commas, `\"` inside
/// quotes) from the rest of the line.
fn split_options(line: &str) -> Option<(Vec<String>, &str)> {
    let mut options = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = line.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' if in_quotes => {
                current.push(c);
                if let Some((_, next)) = chars.next() {
                    current.push(next);
                }
            }
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            ',' if !in_quotes => options.push(std::mem::take(&mut current)),
            c if !in_quotes && c.is_whitespace() => {
                options.push(current);
                if options.iter().any(String::is_empty) {
                    return None;
                }
                return Some((options, &line[index..]));
            }
            c => current.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEJnwexWrXzFUtC2Fpc8VZWgTz+Vpy3tfWxMN/C1DNd1";

    #[test]
    fn options_with_quoted_commas_and_spaces() {
        let line = format!(
            "from=\"10.0.0.0/8,192.168.1.1\",command=\"/usr/bin/backup --to \\\"x y\\\"\",no-pty ssh-ed25519 {ED25519} backup@ci"
        );
        let key = parse_line(&line).unwrap();
        assert_eq!(key.key_type, "ssh-ed25519");
        assert_eq!(
            key.options,
            vec![
                "from=\"10.0.0.0/8,192.168.1.1\"".to_owned(),
                "command=\"/usr/bin/backup --to \\\"x y\\\"\"".to_owned(),
                "no-pty".to_owned(),
            ]
        );
        assert_eq!(key.comment, "backup@ci");
        // Known answer: `ssh-keygen -lf` on this key.
        assert_eq!(
            key.fingerprint,
            "SHA256:TBOoryaboSrltnxYGvNKHNNJWyaDscsdN0Z8clkLxRg"
        );
    }

    #[test]
    fn a_blob_of_another_type_or_garbage_is_refused() {
        assert!(parse_line(&format!("ssh-rsa {ED25519}")).is_none());
        assert!(parse_line("ssh-ed25519 !!!notbase64").is_none());
        assert!(parse_line("ssh-ed25519 AAAA").is_none());
        assert!(parse_line("no-pty").is_none());
    }

    #[test]
    fn relative_files_are_under_the_home() {
        let user = User {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            gecos: String::new(),
            home: "/home/alice/".into(),
            shell: "/bin/bash".into(),
        };
        assert_eq!(
            expand(".ssh/authorized_keys", &user),
            "/home/alice/.ssh/authorized_keys"
        );
        assert_eq!(expand("/etc/ssh/keys/%u", &user), "/etc/ssh/keys/alice");
        assert_eq!(expand("%h/.ssh/k%%", &user), "/home/alice//.ssh/k%");
    }
}
