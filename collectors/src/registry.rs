//! The one place that maps a `kind` to the constructor of its collector.
//!
//! Adding a kind: write its module, then add one line to [`KINDS`].

use crate::{Collector, SettingError};

/// Builds a collector of one kind from its settings: the `[[collectors]]` table less the keys the
/// agent owns (`id`, `kind`, `schedule`, `timeout`, `enabled`). Returns every problem found.
pub type Constructor = fn(&toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>>;

/// Every built-in kind, by the name used in `kind = "..."`.
pub const KINDS: &[(&str, Constructor)] = &[
    ("aws_iam", crate::aws::iam::build),
    ("command", crate::command::build),
    ("exec_plugin", crate::exec_plugin::build),
    ("files", crate::files::build),
    ("github_pull_requests", crate::github::build),
    ("gitlab_merge_requests", crate::gitlab::build),
    ("jira_issues", crate::jira::build),
    ("journald", crate::journald::build),
    ("linux_accounts", crate::linux_accounts::build),
    ("log_file", crate::log_file::build),
    ("s3_bucket_backup_config", crate::aws::s3_backup::build),
    ("servicenow_changes", crate::servicenow::build),
];

/// Build a collector of `kind` from `settings`.
pub fn build(kind: &str, settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    match KINDS.iter().find(|(name, _)| *name == kind) {
        Some((_, constructor)) => constructor(settings),
        None => Err(vec![SettingError::new(
            Some("kind"),
            format!(
                "unknown collector kind {kind:?}; known kinds: {}",
                KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        )]),
    }
}

/// Deserialize a kind's settings struct from its table, turning serde's error into a
/// [`SettingError`] that names the key whenever one key is to blame: an unknown field, or a
/// value of the wrong type (`argv = "ls -l"`, `root = 5`). A missing field names none.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &toml::Table,
) -> Result<T, Vec<SettingError>> {
    T::deserialize(toml::Value::Table(settings.clone())).map_err(|err| {
        let message = err.message().to_owned();
        let key =
            key_named_in(&message, settings).or_else(|| key_to_blame::<T>(&message, settings));
        vec![SettingError { key, message }]
    })
}

/// serde names the field in backquotes ("unknown field `pathz`", "missing field `path`").
fn key_named_in(message: &str, settings: &toml::Table) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    let key = &message[start..start + len];
    settings.contains_key(key).then(|| key.to_owned())
}

/// The key whose value caused `message`: the one whose removal makes the error go away or
/// change. Removing any other key leaves the same error, since serde reports the first bad
/// value it meets and checks for missing fields only at the end. Only run on the error path.
fn key_to_blame<T: serde::de::DeserializeOwned>(
    message: &str,
    settings: &toml::Table,
) -> Option<String> {
    settings
        .keys()
        .find(|key| {
            let mut without = settings.clone();
            without.remove(key.as_str());
            match T::deserialize(toml::Value::Table(without)) {
                Ok(_) => true,
                Err(err) => err.message() != message,
            }
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialized
    struct Example {
        argv: Vec<String>,
        root: Option<std::path::PathBuf>,
        #[serde(default)]
        env: std::collections::BTreeMap<String, String>,
    }

    fn error_key(text: &str) -> Option<String> {
        let table: toml::Table = text.parse().unwrap();
        let errors = parse_settings::<Example>(&table).unwrap_err();
        assert_eq!(errors.len(), 1);
        errors[0].key.clone()
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        assert_eq!(error_key("argv = \"ls -l\"").as_deref(), Some("argv"));
        assert_eq!(
            error_key("argv = [\"ls\"]\nroot = 5").as_deref(),
            Some("root")
        );
        assert_eq!(error_key("root = 5").as_deref(), Some("root"));
        assert_eq!(
            error_key("argv = [\"ls\"]\n[env]\nPATH = 5").as_deref(),
            Some("env")
        );
        assert_eq!(error_key("argv = [1]").as_deref(), Some("argv"));
        assert_eq!(
            error_key("argv = [\"ls\"]\nshell = 1").as_deref(),
            Some("shell")
        );
        assert_eq!(error_key("root = \"/\"").as_deref(), None, "missing field");
    }
}
