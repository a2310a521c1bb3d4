//! Where things are in the configuration text: byte offsets to 1-based line:column, and the
//! typed reading of TOML values that reports a [`Problem`] at the value when the type is wrong.

use super::Problem;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub line: usize,
    pub col: usize,
}

impl Location {
    /// The start of the file, for problems that belong to no particular key.
    pub const START: Location = Location { line: 1, col: 1 };
}

/// The text being parsed, the problems found so far, and how to locate a byte offset.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
    pub problems: Vec<Problem>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            path,
            text,
            line_starts,
            problems: Vec::new(),
        }
    }

    /// The line and column of a byte offset (clamped to the text).
    pub fn locate(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let index = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[index.saturating_sub(1)];
        let col = match self.text.get(line_start..offset) {
            Some(prefix) => prefix.chars().count(),
            None => offset - line_start,
        };
        Location {
            line: index.max(1),
            col: col + 1,
        }
    }

    pub fn problem_at(&self, at: Location, message: impl Into<String>) -> Problem {
        Problem {
            file: self.path.to_path_buf(),
            line: at.line,
            col: at.col,
            message: message.into(),
        }
    }

    /// Record a problem at the start of `span`.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let problem = self.problem_at(self.locate(span.start), message);
        self.problems.push(problem);
    }

    /// Record a problem at a location already computed.
    pub fn error_at(&mut self, at: Location, message: impl Into<String>) {
        let problem = self.problem_at(at, message);
        self.problems.push(problem);
    }

    /// The value as a string, or a problem at the value.
    pub fn string<'v>(&mut self, key: &str, value: &'v Spanned<DeValue<'_>>) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.wrong_type(key, value.span(), "a string", other);
                None
            }
        }
    }

    /// The value as a non-empty string, or a problem at the value.
    pub fn non_empty<'v>(&mut self, key: &str, value: &'v Spanned<DeValue<'_>>) -> Option<&'v str> {
        let s = self.string(key, value)?;
        if s.trim().is_empty() {
            self.error(value.span(), format!("`{key}` must not be empty"));
            return None;
        }
        Some(s)
    }

    pub fn boolean(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(key, value.span(), "true or false", other);
                None
            }
        }
    }

    /// The value as an integer in `min..=max`, or a problem at the value.
    pub fn integer(
        &mut self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let DeValue::Integer(int) = value.get_ref() else {
            self.wrong_type(key, value.span(), "an integer", value.get_ref());
            return None;
        };
        match i128::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) if n >= i128::from(min) && n <= i128::from(max) => u64::try_from(n).ok(),
            _ => {
                let message = format!("`{key}` must be between {min} and {max}, found {int}");
                self.error(value.span(), message);
                None
            }
        }
    }

    /// The value as a table (standard or inline), or a problem at the value.
    pub fn table<'v, 'i>(
        &mut self,
        key: &str,
        value: &'v Spanned<DeValue<'i>>,
    ) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.wrong_type(key, value.span(), "a table", other);
                None
            }
        }
    }

    fn wrong_type(&mut self, key: &str, span: Range<usize>, expected: &str, found: &DeValue) {
        let message = format!("`{key}` must be {expected}, found {}", describe(found));
        self.error(span, message);
    }
}

/// "a string", "an integer", … for messages.
pub(crate) fn describe(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Whether `s` is usable as a host or collector id: 1 to `max` characters of
/// `[A-Za-z0-9._-]`, and not `.` or `..` (ids become file names and S3 key segments).
pub(crate) fn check_id(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if s == "." || s == ".." {
        return Err(format!("{s:?} is not allowed (it names a directory)"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "contains {c:?}; only letters A-Z a-z, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// "; did you mean `x`?" when `name` is within two edits of one of `known`, else "".
pub(crate) fn did_you_mean(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance over characters (names are short; inputs longer than 64 are "far").
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets_as_one_based_line_and_character_column() {
        let source = Source::new(Path::new("x.toml"), "ab\né = 1\n\nx");
        let at = |o| {
            let l = source.locate(o);
            (l.line, l.col)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(6), (2, 3)); // after "é " (é is 2 bytes, 1 column)
        assert_eq!(at(10), (3, 1));
        assert_eq!(at(11), (4, 1));
        assert_eq!(at(12), (4, 2));
        assert_eq!(at(999), (4, 2));
        assert_eq!(at(4), (2, 2)); // inside a character: byte column
    }

    #[test]
    fn suggestions() {
        let known = ["data_dir", "max_concurrent", "host_id"];
        assert_eq!(
            did_you_mean("max_concurent", &known),
            "; did you mean `max_concurrent`?"
        );
        assert_eq!(
            did_you_mean("datadir", &known),
            "; did you mean `data_dir`?"
        );
        assert_eq!(did_you_mean("colour", &known), "");
        assert_eq!(did_you_mean(&"x".repeat(1000), &known), "");
    }

    #[test]
    fn ids() {
        assert!(check_id("web-01.example_com", 64).is_ok());
        assert!(check_id("", 64).is_err());
        assert!(check_id("..", 64).is_err());
        assert!(check_id("a/b", 64).is_err());
        assert!(check_id("a b", 64).is_err());
        assert!(check_id("é", 64).is_err());
        assert!(check_id(&"a".repeat(65), 64).is_err());
    }
}
