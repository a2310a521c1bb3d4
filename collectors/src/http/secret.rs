//! API tokens and passwords: named in the settings by where they live (an environment variable
//! or a file), read at the start of each run, and never shown.
//!
//! Reading at each run rather than at start-up lets ops rotate a token file without a restart.
//! A token file must be a regular file that neither group nor others can read or write: a token
//! readable by every local user is a leaked token, so the run fails and says so.

use crate::{CollectError, SettingError};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Where a secret is read from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The named environment variable of the agent's process.
    Env(String),
    /// A file holding the secret (surrounding whitespace and a final newline are trimmed).
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl SecretSource {
    /// The source named by a pair of settings such as `token_env` / `token_file`: exactly one
    /// must be set. `what` names the secret in messages ("the API token").
    pub fn from_settings(
        env_key: &str,
        env: Option<&str>,
        file_key: &str,
        file: Option<&std::path::Path>,
        what: &str,
    ) -> Result<SecretSource, SettingError> {
        match (env, file) {
            (Some(_), Some(_)) => Err(SettingError::new(
                Some(file_key),
                format!("set either `{env_key}` or `{file_key}` for {what}, not both"),
            )),
            (None, None) => Err(SettingError::new(
                None,
                format!(
                    "{what} is required: set `{env_key}` (an environment variable name) or \
                     `{file_key}` (a file readable only by the agent)"
                ),
            )),
            (Some(name), None) if name.is_empty() || name.contains('=') => Err(SettingError::new(
                Some(env_key),
                format!("{name:?} is not an environment variable name"),
            )),
            (Some(name), None) => Ok(SecretSource::Env(name.to_owned())),
            (None, Some(path)) if !path.is_absolute() => Err(SettingError::new(
                Some(file_key),
                format!("{} is not an absolute path", path.display()),
            )),
            (None, Some(path)) => Ok(SecretSource::File(path.to_path_buf())),
        }
    }

    /// Read the secret now. Errors name the variable or file, never its content.
    pub async fn load(&self) -> Result<Secret, CollectError> {
        let value = match self {
            SecretSource::Env(name) => std::env::var(name).map_err(|err| {
                let why = match err {
                    std::env::VarError::NotPresent => "is not set in the agent's environment",
                    std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                };
                CollectError::Other(format!(
                    "environment variable {name} {why}; set it where the service gets its \
                     environment (e.g. /etc/default/evidence-agent) or use a token file"
                ))
            })?,
            SecretSource::File(path) => {
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| CollectError::io("read secret file", path, e))?;
                if !meta.is_file() {
                    return Err(CollectError::Other(format!(
                        "secret file {}: not a regular file",
                        path.display()
                    )));
                }
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(CollectError::Other(format!(
                        "secret file {}: mode {mode:04o} lets group or others read or write it; \
                         refused (chmod 600 it)",
                        path.display()
                    )));
                }
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| CollectError::io("read secret file", path, e))?;
                String::from_utf8(bytes).map_err(|_| {
                    CollectError::Other(format!("secret file {}: not UTF-8", path.display()))
                })?
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(CollectError::Other(format!("{self:?} is empty")));
        }
        Ok(Secret(value.to_owned()))
    }
}

/// A secret value. Its `Debug` hides it, so it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that puts it in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn source(env: Option<&str>, file: Option<&Path>) -> Result<SecretSource, SettingError> {
        SecretSource::from_settings("token_env", env, "token_file", file, "the API token")
    }

    #[test]
    fn exactly_one_place_is_named() {
        assert_eq!(
            source(Some("GITHUB_TOKEN"), None),
            Ok(SecretSource::Env("GITHUB_TOKEN".into()))
        );
        let both = source(Some("A"), Some(Path::new("/etc/t"))).unwrap_err();
        assert_eq!(both.key.as_deref(), Some("token_file"));
        let none = source(None, None).unwrap_err();
        assert!(none.message.contains("`token_env`"), "{none}");
        let relative = source(None, Some(Path::new("token"))).unwrap_err();
        assert_eq!(relative.key.as_deref(), Some("token_file"));
        assert!(source(Some("A=B"), None).is_err());
    }

    #[tokio::test]
    async fn a_file_others_can_read_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t-value\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let src = SecretSource::File(path.clone());
        let err = src.load().await.unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("refused"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = src.load().await.unwrap();
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
    }

    #[tokio::test]
    async fn a_missing_variable_or_empty_file_names_it() {
        let err = SecretSource::Env("EVIDENCE_AGENT_TEST_UNSET_TOKEN".into())
            .load()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("EVIDENCE_AGENT_TEST_UNSET_TOKEN"), "{err}");
        assert!(
            err.contains("is not set") && err.contains("token file"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = SecretSource::File(path.clone()).load().await.unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
