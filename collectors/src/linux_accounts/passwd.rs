//! The account databases: `/etc/passwd`, `/etc/group` and the metadata of `/etc/shadow`.
//!
//! Guarantees: nothing of a shadow password field is kept but three booleans (locked, set,
//! empty); warnings name `file:line` and never quote a line. A malformed line is skipped with a
//! warning; a name seen twice keeps its first entry, as the C library's lookups do.

use crate::files::read::Warnings;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};

/// One `/etc/passwd` entry.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) gecos: String,
    pub(super) home: String,
    pub(super) shell: String,
}

/// One `/etc/group` entry.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) name: String,
    pub(super) gid: u32,
    pub(super) members: BTreeSet<String>,
}

/// The metadata of one `/etc/shadow` entry. The password field itself is never stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Shadow {
    locked: bool,
    password_set: bool,
    password_empty: bool,
    last_change: Option<i64>,
    min_days: Option<i64>,
    max_days: Option<i64>,
    warn_days: Option<i64>,
    inactive_days: Option<i64>,
    expire: Option<i64>,
}

/// The lines of `text` that hold an entry, with their 1-based numbers.
fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
}

/// NIS compat lines (`+`, `-`, `+@netgroup`) pull entries from elsewhere; they are not accounts.
fn is_nis_compat(line: &str) -> bool {
    line.starts_with('+') || line.starts_with('-')
}

pub(super) fn parse_passwd(text: &str, shown: &str, warnings: &mut Warnings) -> Vec<User> {
    let mut users = Vec::new();
    let mut seen = HashSet::new();
    for (number, line) in entries(text) {
        if is_nis_compat(line) {
            warnings.push(format!(
                "{shown}:{number}: NIS compat entry skipped (its accounts come from NIS)"
            ));
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let parsed = match fields.as_slice() {
            [name, _password, uid, gid, gecos, home, shell] if !name.is_empty() => {
                match (uid.parse::<u32>(), gid.parse::<u32>()) {
                    (Ok(uid), Ok(gid)) => Some(User {
                        name: (*name).to_owned(),
                        uid,
                        gid,
                        gecos: (*gecos).to_owned(),
                        home: (*home).to_owned(),
                        shell: (*shell).to_owned(),
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(user) = parsed else {
            warnings.push(format!(
                "{shown}:{number}: malformed entry skipped (expected name:password:uid:gid:gecos:home:shell)"
            ));
            continue;
        };
        if !seen.insert(user.name.clone()) {
            warnings.push(format!(
                "{shown}:{number}: user {:?} is listed again; the first entry is kept",
                user.name
            ));
            continue;
        }
        users.push(user);
    }
    users
}

pub(super) fn parse_group(text: &str, shown: &str, warnings: &mut Warnings) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for (number, line) in entries(text) {
        if is_nis_compat(line) {
            warnings.push(format!(
                "{shown}:{number}: NIS compat entry skipped (its groups come from NIS)"
            ));
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let parsed = match fields.as_slice() {
            [name, _password, gid, members] if !name.is_empty() => {
                gid.parse::<u32>().ok().map(|gid| Group {
                    name: (*name).to_owned(),
                    gid,
                    members: members
                        .split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect(),
                })
            }
            _ => None,
        };
        let Some(group) = parsed else {
            warnings.push(format!(
                "{shown}:{number}: malformed entry skipped (expected name:password:gid:members)"
            ));
            continue;
        };
        if !seen.insert(group.name.clone()) {
            warnings.push(format!(
                "{shown}:{number}: group {:?} is listed again; the first entry is kept",
                group.name
            ));
            continue;
        }
        groups.push(group);
    }
    groups
}

/// Parse `/etc/shadow` into metadata by user name. The password field is looked at for its
/// first character and emptiness only, and dropped.
pub(super) fn parse_shadow(
    text: &str,
    shown: &str,
    warnings: &mut Warnings,
) -> HashMap<String, Shadow> {
    let mut entries_by_name = HashMap::new();
    for (number, line) in entries(text) {
        if is_nis_compat(line) {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        if !(8..=9).contains(&fields.len()) || fields[0].is_empty() {
            warnings.push(format!(
                "{shown}:{number}: malformed entry skipped (expected 9 fields)"
            ));
            continue;
        }
        let password = fields[1];
        let unlocked = password.trim_start_matches('!');
        let mut bad_fields = Vec::new();
        let mut number_field = |index: usize, name: &'static str| -> Option<i64> {
            let text = fields[index].trim();
            if text.is_empty() {
                return None;
            }
            match text.parse::<i64>() {
                Ok(value) if value >= 0 => Some(value),
                _ => {
                    bad_fields.push(name);
                    None
                }
            }
        };
        let shadow = Shadow {
            locked: password.starts_with('!') || password.starts_with('*'),
            password_set: !unlocked.is_empty() && !unlocked.starts_with('*'),
            password_empty: password.is_empty(),
            last_change: number_field(2, "last change"),
            min_days: number_field(3, "minimum age"),
            max_days: number_field(4, "maximum age"),
            warn_days: number_field(5, "warning period"),
            inactive_days: number_field(6, "inactivity period"),
            expire: number_field(7, "expiration date"),
        };
        if !bad_fields.is_empty() {
            warnings.push(format!(
                "{shown}:{number}: not a number of days, taken as empty: {}",
                bad_fields.join(", ")
            ));
        }
        let name = fields[0].to_owned();
        if entries_by_name.contains_key(&name) {
            warnings.push(format!(
                "{shown}:{number}: user {name:?} is listed again; the first entry is kept"
            ));
            continue;
        }
        entries_by_name.insert(name, shadow);
    }
    entries_by_name
}

/// `days` since 1970-01-01 as a date, `YYYY-MM-DD`.
fn date(days: Option<i64>) -> Value {
    days.and_then(|days| u64::try_from(days).ok())
        .and_then(|days| {
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_days(chrono::Days::new(days))
        })
        .map_or(Value::Null, |d| {
            Value::from(d.format("%Y-%m-%d").to_string())
        })
}

/// The `user` item. `shadow` is `None` when the shadow file could not be read or has no entry
/// for the user; its fields are then `null`.
pub(super) fn user_item(
    user: &User,
    primary_group: Option<&str>,
    shadow: Option<&Shadow>,
) -> Value {
    let s = shadow.cloned().unwrap_or_default();
    let known = |v: Value| if shadow.is_some() { v } else { Value::Null };
    json!({
        "type": "user",
        "id": user.name,
        "name": user.name,
        "uid": user.uid,
        "gid": user.gid,
        "primary_group": primary_group,
        "gecos": user.gecos,
        "home": user.home,
        "shell": user.shell,
        "locked": known(Value::from(s.locked)),
        "password_set": known(Value::from(s.password_set)),
        "password_empty": known(Value::from(s.password_empty)),
        // 0 means "must change the password at next login", not a date.
        "must_change_password": known(Value::from(s.last_change == Some(0))),
        "last_change": date(s.last_change.filter(|d| *d > 0)),
        "min_days": s.min_days,
        "max_days": s.max_days,
        "warn_days": s.warn_days,
        "inactive_days": s.inactive_days,
        "expire": date(s.expire),
    })
}

pub(super) fn group_item(group: &Group) -> Value {
    json!({
        "type": "group",
        "id": group.name,
        "name": group.name,
        "gid": group.gid,
        "members": group.members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_keeps_metadata_and_drops_the_hash() {
        let mut warnings = Warnings::default();
        let text = "alice:$6$salt$hash:19700:0:99999:7:::\n\
                    bob:!$y$j9T$x$y:19000::::::\n\
                    svc:*:19000:0:99999:7:::\n\
                    open::0:0:99999:7:::\n";
        let parsed = parse_shadow(text, "/etc/shadow", &mut warnings);
        let alice = &parsed["alice"];
        assert!(!alice.locked && alice.password_set && !alice.password_empty);
        assert_eq!(
            (alice.last_change, alice.max_days, alice.warn_days),
            (Some(19700), Some(99999), Some(7))
        );
        assert!(parsed["bob"].locked && parsed["bob"].password_set);
        assert!(parsed["svc"].locked && !parsed["svc"].password_set);
        assert!(parsed["open"].password_empty && !parsed["open"].locked);
        assert_eq!(format!("{parsed:?}").find('$'), None);
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        assert_eq!(date(Some(19700)), "2023-12-09");
        assert_eq!(date(Some(i64::MAX)), Value::Null);
        assert_eq!(date(None), Value::Null);
    }

    #[test]
    fn malformed_lines_are_skipped_with_their_number() {
        let mut warnings = Warnings::default();
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbroken:x:notanumber:0::/:/bin/sh\n+@admins\nroot:x:5:5::/:/bin/sh\n",
            "/etc/passwd",
            &mut warnings,
        );
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].uid, 0);
        let warnings = warnings.into_json().to_string();
        assert!(warnings.contains("/etc/passwd:2: malformed"), "{warnings}");
        assert!(warnings.contains("/etc/passwd:3: NIS"), "{warnings}");
        assert!(
            warnings.contains("/etc/passwd:4: user \\\"root\\\" is listed again"),
            "{warnings}"
        );
    }
}
