//! Path patterns of the `files` kind: absolute glob patterns expanded by a walk that cannot loop.
//!
//! Syntax is the `glob` crate's per path component (`*`, `?`, `[abc]`, `[!abc]`), plus `**` as a
//! whole component for "any number of directories" (a trailing `**` means every file below).
//! As in a shell, a wildcard does not match a leading `.`, and `**` does not descend into
//! directories whose name starts with `.`; name them literally to include them.
//!
//! Guarantees: symlinked directories are followed, but each directory is entered at most once
//! per pattern position (by device and inode), so a symlink loop ends with a warning instead of
//! an endless or exponential walk; the number of directories listed and of paths matched is
//! capped. A directory that exists but cannot be listed fails the run, naming it: evidence that
//! silently lacks files is worse than a failed run.

use crate::files::read::Warnings;
use crate::CollectError;
use glob::{MatchOptions, Pattern};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// More matches than this fail the run: the patterns are almost certainly wrong.
pub(crate) const MAX_MATCHES: usize = 10_000;
/// More directory listings than this fail the run.
const MAX_LISTINGS: usize = 100_000;

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

#[derive(Debug)]
enum Component {
    Literal(OsString),
    Wild(Pattern),
    AnyDirs,
}

/// One parsed pattern from the `paths` setting.
#[derive(Debug)]
pub(crate) struct PathPattern {
    text: String,
    components: Vec<Component>,
}

impl PathPattern {
    /// Parse an absolute pattern; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} is not an absolute path"));
        }
        let mut components = Vec::new();
        for part in text.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let component = if part == "**" {
                if matches!(components.last(), Some(Component::AnyDirs)) {
                    continue;
                }
                Component::AnyDirs
            } else if part.contains(['*', '?', '[']) {
                Component::Wild(Pattern::new(part).map_err(|e| format!("{text:?}: {}", e.msg))?)
            } else {
                Component::Literal(OsString::from(part))
            };
            components.push(component);
        }
        if components.is_empty() {
            return Err(format!("{text:?} names no file"));
        }
        Ok(PathPattern {
            text: text.to_owned(),
            components,
        })
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The directory made of the components before the first wildcard (for a pattern without
    /// wildcards, the directory holding the file).
    pub(crate) fn fixed_dir(&self) -> PathBuf {
        let mut dir = PathBuf::from("/");
        let fixed = self
            .components
            .iter()
            .position(|c| !matches!(c, Component::Literal(_)))
            .unwrap_or(self.components.len().saturating_sub(1));
        for component in &self.components[..fixed] {
            if let Component::Literal(name) = component {
                dir.push(name);
            }
        }
        dir
    }

    /// Add every path matching this pattern to `found`, keyed by its text (the item id).
    pub(crate) fn expand(
        &self,
        found: &mut BTreeMap<String, PathBuf>,
        walk: &mut Walk,
    ) -> Result<(), CollectError> {
        let mut visited = HashSet::new();
        self.walk_from(Path::new("/"), 0, found, walk, &mut visited)
    }

    fn walk_from(
        &self,
        dir: &Path,
        index: usize,
        found: &mut BTreeMap<String, PathBuf>,
        walk: &mut Walk,
        visited: &mut HashSet<(u64, u64, usize)>,
    ) -> Result<(), CollectError> {
        let last = index + 1 == self.components.len();
        match &self.components[index] {
            Component::Literal(name) => {
                let path = dir.join(name);
                if last {
                    if std::fs::symlink_metadata(&path).is_ok() {
                        walk.add(path, found)?;
                    }
                } else if is_dir(&path) {
                    self.walk_from(&path, index + 1, found, walk, visited)?;
                }
            }
            Component::Wild(pattern) => {
                for (name, path) in walk.list(dir)? {
                    if !pattern.matches_with(&name.to_string_lossy(), OPTIONS) {
                        continue;
                    }
                    if last {
                        walk.add(path, found)?;
                    } else if is_dir(&path) {
                        self.walk_from(&path, index + 1, found, walk, visited)?;
                    }
                }
            }
            Component::AnyDirs => {
                let Ok(meta) = std::fs::metadata(dir) else {
                    return Ok(());
                };
                if !visited.insert((meta.dev(), meta.ino(), index)) {
                    walk.warnings.push(format!(
                        "{}: directory already walked for pattern {:?} (a symlink loop or a \
                         second link to it); not entered again",
                        dir.display(),
                        self.text
                    ));
                    return Ok(());
                }
                if !last {
                    // `**` matching no directory at all.
                    self.walk_from(dir, index + 1, found, walk, visited)?;
                }
                for (name, path) in walk.list(dir)? {
                    let hidden = name.as_encoded_bytes().first() == Some(&b'.');
                    if is_dir(&path) {
                        if !hidden {
                            self.walk_from(&path, index, found, walk, visited)?;
                        }
                    } else if last && !hidden {
                        walk.add(path, found)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

/// The state of one run's expansion of all patterns: limits and warnings.
pub(crate) struct Walk<'w> {
    listings: usize,
    pub(crate) warnings: &'w mut Warnings,
}

impl<'w> Walk<'w> {
    pub(crate) fn new(warnings: &'w mut Warnings) -> Walk<'w> {
        Walk {
            listings: 0,
            warnings,
        }
    }

    /// The entries of `dir`, sorted by name; nothing if it vanished or is not a directory.
    fn list(&mut self, dir: &Path) -> Result<Vec<(OsString, PathBuf)>, CollectError> {
        self.listings += 1;
        if self.listings > MAX_LISTINGS {
            return Err(CollectError::Other(format!(
                "the patterns lead to more than {MAX_LISTINGS} directories (at {}); narrow them",
                dir.display()
            )));
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(CollectError::io("list directory", dir, e)),
        };
        let mut list = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CollectError::io("list directory", dir, e))?;
            list.push((entry.file_name(), entry.path()));
        }
        list.sort();
        Ok(list)
    }

    fn add(
        &mut self,
        path: PathBuf,
        found: &mut BTreeMap<String, PathBuf>,
    ) -> Result<(), CollectError> {
        let id = match path.to_str() {
            Some(text) => text.to_owned(),
            None => {
                let lossy = path.to_string_lossy().into_owned();
                self.warnings.push(format!(
                    "{lossy}: the path is not valid UTF-8; its id shows invalid bytes as U+FFFD"
                ));
                lossy
            }
        };
        if found.len() >= MAX_MATCHES && !found.contains_key(&id) {
            return Err(CollectError::Other(format!(
                "the patterns match more than {MAX_MATCHES} paths; narrow them"
            )));
        }
        found.entry(id).or_insert(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(pattern: &str) -> (Vec<String>, Vec<String>) {
        let mut warnings = Warnings::default();
        let mut found = BTreeMap::new();
        let mut walk = Walk::new(&mut warnings);
        PathPattern::parse(pattern)
            .unwrap()
            .expand(&mut found, &mut walk)
            .unwrap();
        let warnings = warnings.into_json();
        let warnings = warnings
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect();
        (found.into_keys().collect(), warnings)
    }

    #[test]
    fn patterns_are_checked_when_parsed() {
        assert!(PathPattern::parse("etc/*.conf").is_err());
        assert!(PathPattern::parse("/etc/a**").is_err());
        assert!(PathPattern::parse("/etc/[").is_err());
        assert!(PathPattern::parse("/").is_err());
        let p = PathPattern::parse("/etc/ssh/sshd_config.d/*.conf").unwrap();
        assert_eq!(p.fixed_dir(), Path::new("/etc/ssh/sshd_config.d"));
        let p = PathPattern::parse("/etc/ssh/sshd_config").unwrap();
        assert_eq!(p.fixed_dir(), Path::new("/etc/ssh"));
        let p = PathPattern::parse("/srv/**/backup.yml").unwrap();
        assert_eq!(p.fixed_dir(), Path::new("/srv"));
    }

    #[test]
    fn double_star_walks_through_a_symlink_loop_once() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::fs::write(base.join("top.conf"), "x").unwrap();
        std::fs::write(base.join("a/b/deep.conf"), "x").unwrap();
        std::fs::write(base.join("a/.hidden.conf"), "x").unwrap();
        // Two loops: a naive walk would visit 2^depth paths.
        std::os::unix::fs::symlink("..", base.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink(".", base.join("a/self")).unwrap();
        let (found, warnings) = expand(&format!("{}/**/*.conf", base.display()));
        let base = base.display();
        assert_eq!(
            found,
            vec![format!("{base}/a/b/deep.conf"), format!("{base}/top.conf")]
        );
        assert!(
            warnings.iter().any(|w| w.contains("already walked")),
            "{warnings:?}"
        );
    }

    #[test]
    fn trailing_double_star_takes_every_file_below() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("x/y")).unwrap();
        std::fs::write(base.join("x/one"), "1").unwrap();
        std::fs::write(base.join("x/y/two"), "2").unwrap();
        let (found, _) = expand(&format!("{}/x/**", base.display()));
        let base = base.display();
        assert_eq!(
            found,
            vec![format!("{base}/x/one"), format!("{base}/x/y/two")]
        );
    }
}
