//! The `files` collector: configuration files (backup tool configs, `sshd_config`, cron tables,
//! systemd timers …) as evidence, one item per file with its metadata and its content.
//!
//! Settings: `paths` (absolute glob patterns, required; see [`pattern`] for the syntax),
//! `max_file_size` (bytes, default 10 MiB), `redact` (default `true`), `redact_patterns` (extra
//! regexes matched against keys; see [`redact`]).
//!
//! Item: `{"type": "file", "id": <path>, "path", "mode" ("0644"), "uid", "gid", "owner",
//! "group" (names or null), "mtime" (RFC 3339 UTC), "size", "sha256", "content", "encoding"
//! ("utf-8" or "base64"), "redactions" (values replaced), "link_target" (or null)}`.
//!
//! Guarantees: the content is streamed item by item into the spool, in id order, so the run
//! holds one file in memory at a time; a file over `max_file_size`, or one that matched but
//! cannot be read, fails the run naming the path; patterns that match nothing, symlink loops and
//! non-regular files are skipped with a warning in `details.warnings`, and so is a file inside
//! the agent's protected data (`CollectContext::protected_paths`), whichever symlink leads there
//! ("refused: inside the agent's protected data"); with redaction on, neither a secret value nor
//! a hash of the secret-bearing bytes is ever published.

mod owner;
mod pattern;
pub(crate) mod protect;
pub(crate) mod read;
pub(crate) mod redact;

use crate::registry::parse_settings;
use crate::{canonical, CollectContext, CollectError, Collector, ContentWriter, SettingError};
use crate::{Snapshot, MEDIA_TYPE_JSON};
use base64::Engine as _;
use owner::Owners;
use pattern::{PathPattern, Walk};
use protect::Protected;
use read::{ReadError, Warnings};
use redact::Redactor;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DEFAULT_MAX_FILE_SIZE: u64 = 10 << 20;
/// A file is held in memory while it is redacted and encoded: this bounds `max_file_size`.
const HIGHEST_MAX_FILE_SIZE: u64 = 256 << 20;

fn default_max_file_size() -> u64 {
    DEFAULT_MAX_FILE_SIZE
}

fn default_redact() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    paths: Vec<String>,
    #[serde(default = "default_max_file_size")]
    max_file_size: u64,
    #[serde(default = "default_redact")]
    redact: bool,
    #[serde(default)]
    redact_patterns: Vec<String>,
}

#[derive(Debug)]
struct Config {
    patterns: Vec<PathPattern>,
    max_file_size: u64,
    redact: bool,
    redact_patterns: Vec<regex::Regex>,
}

/// A built `files` collector.
#[derive(Debug)]
pub struct FilesCollector {
    config: Arc<Config>,
}

/// Build a `files` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    if settings.paths.is_empty() {
        errors.push(SettingError::new(
            Some("paths"),
            "must list at least one path pattern",
        ));
    }
    let mut patterns = Vec::new();
    for text in &settings.paths {
        match PathPattern::parse(text) {
            Ok(pattern) => patterns.push(pattern),
            Err(message) => errors.push(SettingError::new(Some("paths"), message)),
        }
    }
    if settings.max_file_size == 0 || settings.max_file_size > HIGHEST_MAX_FILE_SIZE {
        errors.push(SettingError::new(
            Some("max_file_size"),
            format!("must be between 1 and {HIGHEST_MAX_FILE_SIZE} bytes"),
        ));
    }
    let mut redact_patterns = Vec::new();
    for text in &settings.redact_patterns {
        match regex::RegexBuilder::new(text).size_limit(1 << 20).build() {
            Ok(re) => redact_patterns.push(re),
            Err(e) => errors.push(SettingError::new(
                Some("redact_patterns"),
                format!("{text:?} is not a valid regex: {e}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(FilesCollector {
        config: Arc::new(Config {
            patterns,
            max_file_size: settings.max_file_size,
            redact: settings.redact,
            redact_patterns,
        }),
    }))
}

#[async_trait::async_trait]
impl Collector for FilesCollector {
    fn kind(&self) -> &'static str {
        "files"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let config = Arc::clone(&self.config);
        tokio::task::spawn_blocking(move || collect_blocking(&config, &ctx))
            .await
            .map_err(|e| CollectError::Other(format!("the files collector stopped: {e}")))?
    }

    fn check(&self) -> Vec<SettingError> {
        self.config
            .patterns
            .iter()
            .filter_map(|pattern| {
                let dir = pattern.fixed_dir();
                let is_dir = std::fs::metadata(&dir).map(|m| m.is_dir()).unwrap_or(false);
                (!is_dir).then(|| {
                    SettingError::new(
                        Some("paths"),
                        format!(
                            "{:?}: directory {} does not exist",
                            pattern.text(),
                            dir.display()
                        ),
                    )
                })
            })
            .collect()
    }
}

fn collect_blocking(config: &Config, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
    let mut warnings = Warnings::default();
    let protected = Protected::new(&ctx.protected_paths);
    let matches = expand_all(&config.patterns, &mut warnings)?;
    let redactor = config
        .redact
        .then(|| Redactor::new(config.redact_patterns.clone(), ctx.redaction_salt));
    let spool_error = |e| CollectError::io("write spool file in", &ctx.spool_dir, e);

    // Canonical JSON of {"items": [...]}, written item by item: "items" is the only key, and
    // each item is canonical on its own, so the whole is canonical.
    let mut writer = ContentWriter::new(&ctx.spool_dir);
    writer.write_all(b"{\"items\":[").map_err(spool_error)?;
    let mut owners = Owners::default();
    let mut item_count: u64 = 0;
    for (id, path) in &matches {
        ctx.check_deadline()?;
        let (bytes, meta) = match read::read_capped(path, config.max_file_size, &protected) {
            Ok(read) => read,
            Err(ReadError::NotFound) => {
                warnings.push(format!(
                    "{id}: skipped, it vanished or is a dangling symlink"
                ));
                continue;
            }
            Err(err @ (ReadError::Loop | ReadError::NotRegular(_))) => {
                warnings.push(format!("{id}: skipped, {}", err.reason()));
                continue;
            }
            Err(err @ ReadError::Protected) => {
                warnings.push(format!("{id}: {}", err.reason()));
                continue;
            }
            Err(err) => return Err(err.into_collect_error(path)),
        };
        let item = file_item(id, path, bytes, &meta, redactor.as_ref(), &mut owners);
        let encoded = canonical::to_vec(&item)
            .map_err(|e| CollectError::Other(format!("{id}: cannot encode the item: {e}")))?;
        if item_count > 0 {
            writer.write_all(b",").map_err(spool_error)?;
        }
        writer.write_all(&encoded).map_err(spool_error)?;
        item_count += 1;
    }
    writer.write_all(b"]}").map_err(spool_error)?;
    let content = writer.finish().map_err(spool_error)?;
    Ok(Snapshot {
        content,
        media_type: MEDIA_TYPE_JSON,
        item_count,
        cursor: None,
        details: json!({
            "patterns": config.patterns.iter().map(PathPattern::text).collect::<Vec<_>>(),
            "matched": matches.len(),
            "max_file_size": config.max_file_size,
            "redact": config.redact,
            "warnings": warnings.into_json(),
        }),
    })
}

/// Every path matched by any pattern, by id, warning about patterns that match nothing.
fn expand_all(
    patterns: &[PathPattern],
    warnings: &mut Warnings,
) -> Result<BTreeMap<String, PathBuf>, CollectError> {
    let mut all = BTreeMap::new();
    let mut walk = Walk::new(warnings);
    for pattern in patterns {
        let mut found = BTreeMap::new();
        pattern.expand(&mut found, &mut walk)?;
        if found.is_empty() {
            walk.warnings
                .push(format!("{:?} matched no file", pattern.text()));
        }
        all.append(&mut found);
        if all.len() > pattern::MAX_MATCHES {
            return Err(CollectError::Other(format!(
                "the patterns match more than {} paths; narrow them",
                pattern::MAX_MATCHES
            )));
        }
    }
    Ok(all)
}

fn file_item(
    id: &str,
    path: &Path,
    bytes: Vec<u8>,
    meta: &std::fs::Metadata,
    redactor: Option<&Redactor>,
    owners: &mut Owners,
) -> Value {
    let size = bytes.len();
    let link = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_symlink())
        .and_then(|_| std::fs::read_link(path).ok());
    // With redaction on, everything published, the hash included, is of the redacted bytes:
    // a hash of the raw file would let anyone holding the evidence confirm a guessed secret
    // offline, by hashing the file with the guess put in place of the marker.
    let (published, redactions) = match redactor {
        // A file's format (`.pgpass`) is known by its name, or by the name its symlink names.
        Some(redactor) => match link.as_deref().filter(|target| redact::is_pgpass(target)) {
            Some(target) => redactor.redact_file(&bytes, target),
            None => redactor.redact_file(&bytes, path),
        },
        None => (bytes, 0),
    };
    let sha256 = hex::encode(Sha256::digest(&published));
    let (content, encoding) = match String::from_utf8(published) {
        Ok(text) => (text, "utf-8"),
        Err(err) => (
            base64::engine::general_purpose::STANDARD.encode(err.as_bytes()),
            "base64",
        ),
    };
    let link_target = link.map(|target| target.to_string_lossy().into_owned());
    let mtime = chrono::DateTime::from_timestamp(
        meta.mtime(),
        u32::try_from(meta.mtime_nsec()).unwrap_or(0),
    )
    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    json!({
        "type": "file",
        "id": id,
        "path": id,
        "mode": format!("{:04o}", meta.mode() & 0o7777),
        "uid": meta.uid(),
        "gid": meta.gid(),
        "owner": owners.user(meta.uid()),
        "group": owners.group(meta.gid()),
        "mtime": mtime,
        "size": size,
        "sha256": sha256,
        "content": content,
        "encoding": encoding,
        "redactions": redactions,
        "link_target": link_target,
    })
}
