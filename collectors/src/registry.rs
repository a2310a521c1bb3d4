//! The one place that maps a `kind` to the constructor of its collector.
//!
//! Adding a kind: write its module, then add one line to [`KINDS`].

use crate::{Collector, SettingError};

/// Builds a collector of one kind from its settings: the `[[collectors]]` table less the keys the
/// agent owns (`id`, `kind`, `schedule`, `timeout`, `enabled`). Returns every problem found.
pub type Constructor = fn(&toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>>;

/// Every built-in kind, by the name used in `kind = "..."`.
pub const KINDS: &[(&str, Constructor)] = &[
    ("command", crate::command::build),
    ("files", crate::files::build),
    ("linux_accounts", crate::linux_accounts::build),
    ("log_file", crate::log_file::build),
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
/// [`SettingError`] that names the key when serde does (unknown field, wrong type).
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &toml::Table,
) -> Result<T, Vec<SettingError>> {
    T::deserialize(toml::Value::Table(settings.clone())).map_err(|err| {
        let message = err.message().to_owned();
        let key = key_named_in(&message, settings);
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
