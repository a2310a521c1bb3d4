//! The `linux_accounts` collector: who can log in to this host and with what privileges.
//!
//! Sources, all under the `root` setting (default `/`; a fixture tree in tests, a container's
//! root filesystem in production): `/etc/passwd` and `/etc/group` (required: the run fails
//! without them), the metadata of `/etc/shadow`, the sudo policy (`/etc/sudoers` and its
//! includes) and every user's `authorized_keys` files (setting `authorized_keys_files`, sshd's
//! `AuthorizedKeysFile` syntax, default `.ssh/authorized_keys` and `.ssh/authorized_keys2`).
//! Home directories and include paths are resolved under `root` too; symlinks inside the tree
//! are followed by the kernel (an absolute link target points outside a non-`/` root).
//!
//! Items, sorted by (type, id): `user` (id: name), `group` (id: name), `sudo_rule` (id: the
//! first 16 hex digits of the rule's SHA-256), `ssh_key` (id: `<user> SHA256:<fingerprint>`).
//!
//! Guarantees: no password hash, nor any part of one, is read into anything but a local
//! variable; shadow, sudoers and keys that cannot be read (the quickstart runs unprivileged) are
//! warnings in `details.warnings`, not failures; malformed lines are skipped with a `file:line`
//! warning; invalid UTF-8 is decoded lossily with a warning; each file is capped at 16 MiB; a
//! file inside the agent's protected data (`CollectContext::protected_paths`), whatever symlink
//! or include leads there, is never read: it is a warning ("refused: inside the agent's protected
//! data"), or a failed run for `/etc/passwd` and `/etc/group`.

mod passwd;
mod ssh_keys;
mod sudoers;

use crate::files::protect::Protected;
use crate::files::read::{self, ReadError, Warnings};
use crate::registry::parse_settings;
use crate::{canonical, CollectContext, CollectError, Collector, Content, SettingError};
use crate::{Snapshot, MEDIA_TYPE_JSON};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// No account file, sudoers file or key file is read beyond this size.
const MAX_FILE_SIZE: u64 = 16 << 20;

fn default_root() -> PathBuf {
    PathBuf::from("/")
}

fn default_authorized_keys_files() -> Vec<String> {
    vec![
        ".ssh/authorized_keys".to_owned(),
        ".ssh/authorized_keys2".to_owned(),
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_root")]
    root: PathBuf,
    #[serde(default = "default_authorized_keys_files")]
    authorized_keys_files: Vec<String>,
}

/// A built `linux_accounts` collector.
#[derive(Debug)]
pub struct LinuxAccountsCollector {
    settings: Arc<Settings>,
}

/// Build a `linux_accounts` collector from its settings.
pub fn build(settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    let settings: Settings = parse_settings(settings)?;
    let mut errors = Vec::new();
    if !settings.root.is_absolute() {
        errors.push(SettingError::new(
            Some("root"),
            format!("{} is not an absolute path", settings.root.display()),
        ));
    }
    if settings
        .authorized_keys_files
        .iter()
        .any(|f| f.trim().is_empty())
    {
        errors.push(SettingError::new(
            Some("authorized_keys_files"),
            "an entry is empty",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(LinuxAccountsCollector {
        settings: Arc::new(settings),
    }))
}

#[async_trait::async_trait]
impl Collector for LinuxAccountsCollector {
    fn kind(&self) -> &'static str {
        "linux_accounts"
    }

    async fn collect(&self, ctx: CollectContext) -> Result<Snapshot, CollectError> {
        let settings = Arc::clone(&self.settings);
        tokio::task::spawn_blocking(move || {
            collect_blocking(
                &settings,
                Protected::new(&ctx.protected_paths),
                ctx.deadline,
            )
        })
        .await
        .map_err(|e| CollectError::Other(format!("the linux_accounts collector stopped: {e}")))?
    }

    fn check(&self) -> Vec<SettingError> {
        let passwd = Host::new(&self.settings.root, Protected::default()).real("/etc/passwd");
        if passwd.is_file() {
            Vec::new()
        } else {
            vec![SettingError::new(
                Some("root"),
                format!("{} does not exist", passwd.display()),
            )]
        }
    }
}

/// The files of one run, read under the root. Paths given to and shown by it are host paths
/// (as seen from inside the root).
pub(super) struct Host<'r> {
    root: &'r Path,
    protected: Protected,
    pub(super) warnings: Warnings,
    /// Host paths read successfully, in the order read.
    sources: Vec<String>,
    hostname: Option<Option<String>>,
}

impl<'r> Host<'r> {
    fn new(root: &'r Path, protected: Protected) -> Host<'r> {
        Host {
            root,
            protected,
            warnings: Warnings::default(),
            sources: Vec::new(),
            hostname: None,
        }
    }

    /// The real path of a host path: `..` cannot climb above the root.
    pub(super) fn real(&self, host_path: &str) -> PathBuf {
        let mut parts: Vec<&str> = Vec::new();
        for part in host_path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                part => parts.push(part),
            }
        }
        self.root.join(parts.join("/"))
    }

    /// Read a host file as text (lossily, with a warning) within the size cap.
    pub(super) fn read(&mut self, host_path: &str) -> Result<(String, Metadata), ReadError> {
        let (bytes, meta) =
            read::read_capped(&self.real(host_path), MAX_FILE_SIZE, &self.protected)?;
        self.sources.push(host_path.to_owned());
        Ok((
            read::decode_lossy(bytes, host_path, &mut self.warnings),
            meta,
        ))
    }

    /// The short host name from the root's `/etc/hostname`, for sudo's `%h`.
    pub(super) fn short_hostname(&mut self) -> Option<String> {
        if self.hostname.is_none() {
            let name = read::read_capped(&self.real("/etc/hostname"), 4096, &self.protected)
                .ok()
                .and_then(|(bytes, _)| String::from_utf8(bytes).ok())
                .and_then(|text| {
                    let name = text.lines().next()?.trim().split('.').next()?.to_owned();
                    (!name.is_empty()).then_some(name)
                });
            self.hostname = Some(name);
        }
        self.hostname.clone().flatten()
    }
}

fn collect_blocking(
    settings: &Settings,
    protected: Protected,
    deadline: Option<std::time::Instant>,
) -> Result<Snapshot, CollectError> {
    let mut host = Host::new(&settings.root, protected);
    let required = |host: &mut Host, path: &str| {
        host.read(path)
            .map(|(text, _)| text)
            .map_err(|e| e.into_collect_error(&host.real(path)))
    };
    let passwd_text = required(&mut host, "/etc/passwd")?;
    let users = passwd::parse_passwd(&passwd_text, "/etc/passwd", &mut host.warnings);
    let group_text = required(&mut host, "/etc/group")?;
    let groups = passwd::parse_group(&group_text, "/etc/group", &mut host.warnings);

    let shadow = match host.read("/etc/shadow") {
        Ok((text, _)) => Some(passwd::parse_shadow(
            &text,
            "/etc/shadow",
            &mut host.warnings,
        )),
        Err(err) => {
            host.warnings.push(format!(
                "/etc/shadow: {}; password ageing and lock state are unknown (null)",
                err.reason()
            ));
            None
        }
    };
    if let Some(shadow) = &shadow {
        for name in shadow.keys() {
            if !users.iter().any(|u| &u.name == name) {
                host.warnings.push(format!(
                    "/etc/shadow: user {name:?} has no /etc/passwd entry; ignored"
                ));
            }
        }
    }

    let group_names: HashMap<u32, &str> = groups
        .iter()
        .rev()
        .map(|g| (g.gid, g.name.as_str()))
        .collect();
    let mut items: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut add = |host: &mut Host, item: Value| {
        let key = (
            item["type"].as_str().unwrap_or_default().to_owned(),
            item["id"].as_str().unwrap_or_default().to_owned(),
        );
        match items.entry(key) {
            std::collections::btree_map::Entry::Occupied(seen) => {
                let (kind, id) = seen.key();
                host.warnings
                    .push(format!("{kind} {id} appears twice; the first is kept"));
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(item);
            }
        }
    };
    for user in &users {
        let entry = shadow.as_ref().and_then(|s| s.get(&user.name));
        let item = passwd::user_item(user, group_names.get(&user.gid).copied(), entry);
        add(&mut host, item);
    }
    for group in &groups {
        add(&mut host, passwd::group_item(group));
    }
    crate::check_deadline(deadline)?;
    let rules = sudoers::read_all(&mut host);
    for item in sudoers::items(&rules) {
        add(&mut host, item);
    }
    crate::check_deadline(deadline)?;
    for item in ssh_keys::read_all(&mut host, &users, &settings.authorized_keys_files) {
        add(&mut host, item);
    }

    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (kind, _) in items.keys() {
        *counts.entry(kind.as_str()).or_default() += 1;
    }
    let counts = json!(counts);
    let item_count = items.len() as u64;
    let items: Vec<Value> = items.into_values().collect();
    let bytes = canonical::to_vec(&json!({ "items": items }))
        .map_err(|e| CollectError::Other(format!("cannot encode the accounts: {e}")))?;
    Ok(Snapshot {
        content: Content::from_bytes(bytes),
        media_type: MEDIA_TYPE_JSON,
        item_count,
        cursor: None,
        details: json!({
            "root": settings.root,
            "counts": counts,
            "shadow_read": shadow.is_some(),
            "sources": host.sources,
            "warnings": host.warnings.into_json(),
        }),
    })
}
