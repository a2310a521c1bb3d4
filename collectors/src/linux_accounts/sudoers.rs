//! The sudo policy: `/etc/sudoers` and what it includes, as normalized rules.
//!
//! Includes follow sudo's rules: `@include`/`#include` name a file, `@includedir`/`#includedir`
//! a directory whose files are read in lexical order, skipping names that end in `~` or contain
//! a `.`; a relative path is relative to the including file's directory; `%h` is the short host
//! name (from the root's `/etc/hostname`).
//!
//! Guarantees: a rule is a logical line (continuations joined) without its comment, whitespace
//! collapsed outside quotes, so the same rule gives the same text (and id) wherever it moves;
//! include loops, include depth and the number of files read are bounded; anything unreadable
//! is a warning, never a failed run (sudoers is root-only, and the quickstart runs unprivileged).

use super::Host;
use crate::files::read::ReadError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

/// Deeper includes are not followed (sudo itself allows 128).
const MAX_DEPTH: usize = 8;
/// At most this many sudoers files are read in one run.
const MAX_FILES: usize = 256;

/// One rule (a `Defaults` line, an alias definition or a user specification) and where it is.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) text: String,
    pub(super) source: String,
}

/// Read `/etc/sudoers` and its includes.
pub(super) fn read_all(host: &mut Host) -> Vec<Rule> {
    let mut reader = Reader {
        host,
        stack: Vec::new(),
        files: 0,
        rules: Vec::new(),
    };
    reader.read_file("/etc/sudoers", 0);
    reader.rules
}

/// The `sudo_rule` items: one per distinct rule text, listing every place it appears.
pub(super) fn items(rules: &[Rule]) -> Vec<Value> {
    let mut by_text: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rule in rules {
        by_text.entry(&rule.text).or_default().push(&rule.source);
    }
    by_text
        .into_iter()
        .map(|(text, sources)| {
            json!({
                "type": "sudo_rule",
                "id": rule_id(text),
                "rule": text,
                "kind": rule_kind(text),
                "sources": sources,
            })
        })
        .collect()
}

/// The first 16 hex digits of the SHA-256 of the normalized rule: stable while the rule is.
fn rule_id(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn rule_kind(text: &str) -> &'static str {
    let word = text.split([' ', '\t']).next().unwrap_or_default();
    if word == "Defaults"
        || (word.starts_with("Defaults") && word[8..].starts_with([':', '@', '!', '>']))
    {
        "defaults"
    } else if matches!(
        word,
        "User_Alias" | "Runas_Alias" | "Host_Alias" | "Cmnd_Alias" | "Cmd_Alias"
    ) {
        "alias"
    } else {
        "user_spec"
    }
}

struct Reader<'h, 'r> {
    host: &'h mut Host<'r>,
    /// (device, inode) of the files being read, outermost first: an include of one is a loop.
    stack: Vec<(u64, u64)>,
    files: usize,
    rules: Vec<Rule>,
}

enum Directive {
    Include(String),
    IncludeDir(String),
}

impl Reader<'_, '_> {
    fn read_file(&mut self, path: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.host.warnings.push(format!(
                "{path}: not read, includes nest deeper than {MAX_DEPTH}"
            ));
            return;
        }
        if self.files >= MAX_FILES {
            self.host
                .warnings
                .push(format!("{path}: not read, over {MAX_FILES} sudoers files"));
            return;
        }
        let (text, meta) = match self.host.read(path) {
            Ok(read) => read,
            Err(ReadError::NotFound) if depth == 0 => {
                self.host
                    .warnings
                    .push(format!("{path}: not found (is sudo installed?)"));
                return;
            }
            Err(err) => {
                self.host.warnings.push(format!("{path}: {}", err.reason()));
                return;
            }
        };
        let id = (meta.dev(), meta.ino());
        if self.stack.contains(&id) {
            self.host.warnings.push(format!(
                "{path}: includes itself (an include loop); not read again"
            ));
            return;
        }
        self.files += 1;
        self.stack.push(id);
        for (number, line) in logical_lines(&text) {
            match directive(&line) {
                Some(Ok(Directive::Include(target))) => {
                    if let Some(target) = self.resolve(path, number, &target) {
                        self.read_file(&target, depth + 1);
                    }
                }
                Some(Ok(Directive::IncludeDir(target))) => {
                    if let Some(target) = self.resolve(path, number, &target) {
                        self.read_dir(&target, depth + 1);
                    }
                }
                Some(Err(())) => self.host.warnings.push(format!(
                    "{path}:{number}: include directive without a path; skipped"
                )),
                None => {
                    let rule = normalize(&strip_comment(&line));
                    if !rule.is_empty() {
                        self.rules.push(Rule {
                            text: rule,
                            source: format!("{path}:{number}"),
                        });
                    }
                }
            }
        }
        self.stack.pop();
    }

    fn read_dir(&mut self, dir: &str, depth: usize) {
        let real = self.host.real(dir);
        let entries = match std::fs::read_dir(&real) {
            Ok(entries) => entries,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return
            }
            Err(e) => {
                self.host
                    .warnings
                    .push(format!("{dir}: cannot list the include directory: {e}"));
                return;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        continue;
                    }
                    match entry.file_name().into_string() {
                        // sudo's rule: skip editor backups and names with a dot (.rpmsave …).
                        Ok(name) if name.ends_with('~') || name.contains('.') => {}
                        Ok(name) => names.push(name),
                        Err(name) => self.host.warnings.push(format!(
                            "{dir}/{}: name is not valid UTF-8; not read",
                            name.to_string_lossy()
                        )),
                    }
                }
                Err(e) => {
                    self.host
                        .warnings
                        .push(format!("{dir}: cannot list the include directory: {e}"));
                    return;
                }
            }
        }
        names.sort();
        for name in names {
            self.read_file(&format!("{}/{name}", dir.trim_end_matches('/')), depth);
        }
    }

    /// The host path an include names: `%h` expanded, relative to the including file's dir.
    fn resolve(&mut self, including: &str, number: usize, target: &str) -> Option<String> {
        let mut expanded = String::new();
        let mut chars = target.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                expanded.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => expanded.push('%'),
                Some('h') => match self.host.short_hostname() {
                    Some(name) => expanded.push_str(&name),
                    None => {
                        self.host.warnings.push(format!(
                            "{including}:{number}: include uses %h but the host name is unknown; skipped"
                        ));
                        return None;
                    }
                },
                other => {
                    expanded.push('%');
                    expanded.extend(other);
                }
            }
        }
        if expanded.starts_with('/') {
            return Some(expanded);
        }
        let dir = including.rsplit_once('/').map_or("", |(dir, _)| dir);
        Some(format!("{dir}/{expanded}"))
    }
}

/// Lines joined across trailing-backslash continuations, with the number of their first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trailing = line.len() - line.trim_end_matches('\\').len();
        let continues = trailing % 2 == 1;
        let body = if continues {
            &line[..line.len() - 1]
        } else {
            line
        };
        let (start, mut joined) = current.take().unwrap_or((index + 1, String::new()));
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(body);
        if continues {
            current = Some((start, joined));
        } else {
            out.push((start, joined));
        }
    }
    out.extend(current);
    out
}

/// `Some` when the line is an include directive (`Err` when it names no path).
fn directive(line: &str) -> Option<Result<Directive, ()>> {
    let trimmed = line.trim_start();
    for (word, dir) in [
        ("@includedir", true),
        ("#includedir", true),
        ("@include", false),
        ("#include", false),
    ] {
        if let Some(rest) = trimmed.strip_prefix(word) {
            if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
                continue;
            }
            let path = include_path(rest.trim());
            if path.is_empty() {
                return Some(Err(()));
            }
            return Some(Ok(if dir {
                Directive::IncludeDir(path)
            } else {
                Directive::Include(path)
            }));
        }
    }
    None
}

/// An include's path: double-quoted with backslash escapes, or bare with `\ ` for a space.
fn include_path(rest: &str) -> String {
    let mut out = String::new();
    let mut chars = rest.chars();
    let quoted = rest.starts_with('"');
    if quoted {
        chars.next();
    }
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' if quoted => break,
            c if !quoted && c.is_whitespace() => break,
            c => out.push(c),
        }
    }
    out
}

/// The line without its comment: a `#` outside quotes starts one unless a digit follows (a
/// uid or gid such as `#1000` or `%#1000`).
fn strip_comment(line: &str) -> String {
    let mut out = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                out.extend(chars.next());
            }
            '"' => {
                in_quotes = !in_quotes;
                out.push(c);
            }
            '#' if !in_quotes && !chars.peek().is_some_and(|n| n.is_ascii_digit()) => break,
            c => out.push(c),
        }
    }
    out
}

/// Whitespace runs outside quotes collapsed to one space, ends trimmed.
fn normalize(line: &str) -> String {
    let mut out = String::new();
    let mut in_quotes = false;
    let mut pending_space = false;
    let mut escaped = false;
    for c in line.chars() {
        if !in_quotes && !escaped && c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_continuations() {
        let text = "# comment\nDefaults   env_reset # trailing\n%admin ALL=(ALL) \\\n   ALL\n#1000 ALL=(ALL) ALL\nDefaults secure_path=\"/usr/bin # not a comment\"\n";
        let rules: Vec<(usize, String)> = logical_lines(text)
            .into_iter()
            .map(|(n, l)| (n, normalize(&strip_comment(&l))))
            .filter(|(_, l)| !l.is_empty())
            .collect();
        assert_eq!(
            rules,
            vec![
                (2, "Defaults env_reset".to_owned()),
                (3, "%admin ALL=(ALL) ALL".to_owned()),
                (5, "#1000 ALL=(ALL) ALL".to_owned()),
                (
                    6,
                    "Defaults secure_path=\"/usr/bin # not a comment\"".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn directives_and_kinds() {
        assert!(
            matches!(directive("#includedir /etc/sudoers.d"), Some(Ok(Directive::IncludeDir(p))) if p == "/etc/sudoers.d")
        );
        assert!(
            matches!(directive("@include \"my file\""), Some(Ok(Directive::Include(p))) if p == "my file")
        );
        assert!(
            matches!(directive("@include sudoers\\ local"), Some(Ok(Directive::Include(p))) if p == "sudoers local")
        );
        assert!(matches!(directive("@include"), Some(Err(()))));
        assert!(directive("#includes are comments").is_none());
        assert_eq!(rule_kind("Defaults:alice !requiretty"), "defaults");
        assert_eq!(rule_kind("Cmnd_Alias BACKUP = /usr/bin/restic"), "alias");
        assert_eq!(rule_kind("alice ALL=(ALL) NOPASSWD: ALL"), "user_spec");
    }
}
