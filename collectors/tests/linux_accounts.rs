//! The `linux_accounts` collector on a realistic fixture tree and on hostile variations of it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;

/// Every hash and salt in the fixture's etc/shadow: none may appear anywhere in a snapshot.
const SHADOW_SECRETS: &[&str] = &[
    "$y$j9T$Qm7y5Yb0bKp2lQx1a9Xz1/$7cVv2rE9yq3lWm8ZfH0aJq4tYpN6sLkB2xRdU1oG5iC",
    "Qm7y5Yb0bKp2lQx1a9Xz1",
    "7cVv2rE9yq3lWm8ZfH0aJq4tYpN6sLkB2xRdU1oG5iC",
    "$6$rG8kTz1Q$",
    "rG8kTz1Q",
    "Jd3nV0pXyC7aW2sLq9mE4uB6tR1hZ8fK5gN3oP7iY0xM2cV4bA9sD6fG1hJ3kL5zX7qW9eR2tY4uI6oP8aS0d.",
    "Wc1mQ9pL",
    "Hn4bV7cX2zA5sD8fG1jK4lQ7wE0rT3yU6iO9pA2sD5fG8hJ1kL4zX7cV0bN3mQ6wE9rT2yU5iO8pA1sD4fG7h.",
];

fn accounts(root: &Path) -> Box<dyn collectors::Collector> {
    build(
        "linux_accounts",
        &format!("root = {:?}", root.display().to_string()),
    )
}

fn assert_no_shadow_secret(snapshot: &collectors::Snapshot) {
    let content = bytes(snapshot);
    let details = snapshot.details.to_string();
    for secret in SHADOW_SECRETS {
        assert!(
            !contains(&content, secret.as_bytes()),
            "{secret} is in the content"
        );
        assert!(!details.contains(secret), "{secret} is in the details");
    }
}

#[tokio::test]
async fn realistic_host_gives_users_groups_sudo_rules_and_keys() {
    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(&*accounts(&fixture("linux_root")), spool.path())
        .await
        .expect("the run succeeds");
    let items = items(&snapshot);
    assert_no_shadow_secret(&snapshot);

    let alice = find(&items, "user", "alice");
    assert_eq!(alice["uid"], 1000);
    assert_eq!(alice["gid"], 1000);
    assert_eq!(alice["primary_group"], "alice");
    assert_eq!(alice["gecos"], "Alice Martin,,,");
    assert_eq!(alice["home"], "/home/alice");
    assert_eq!(alice["shell"], "/bin/bash");
    assert_eq!(alice["password_set"], true);
    assert_eq!(alice["locked"], false);
    assert_eq!(alice["last_change"], "2023-12-31"); // day 19722
    assert_eq!(
        (
            &alice["min_days"],
            &alice["max_days"],
            &alice["warn_days"],
            &alice["inactive_days"]
        ),
        (&json!(1), &json!(90), &json!(14), &json!(30))
    );
    assert_eq!(alice["expire"], Value::Null);

    let bob = find(&items, "user", "bob");
    assert_eq!(
        (&bob["locked"], &bob["password_set"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(bob["expire"], "2024-03-18"); // day 19800
    let nobody = find(&items, "user", "nobody");
    assert_eq!(
        (&nobody["locked"], &nobody["password_set"]),
        (&json!(true), &json!(false))
    );
    let deploy = find(&items, "user", "deploy");
    assert_eq!(deploy["password_empty"], true);
    assert_eq!(deploy["must_change_password"], true);
    assert_eq!(deploy["last_change"], Value::Null);

    assert_eq!(
        find(&items, "group", "docker")["members"],
        json!(["alice", "deploy"])
    );
    assert_eq!(find(&items, "group", "sudo")["gid"], 27);

    let rules: Vec<&Value> = items.iter().filter(|i| i["type"] == "sudo_rule").collect();
    let texts: Vec<&str> = rules.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    for expected in [
        "Defaults env_reset",
        "Defaults secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"",
        "Cmnd_Alias BACKUP = /usr/bin/restic, /usr/bin/borg",
        "root ALL=(ALL:ALL) ALL",
        "%sudo ALL=(ALL:ALL) ALL",
        "backup ALL=(root) NOPASSWD: BACKUP",
        "deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app.service",
        "Defaults:deploy !requiretty",
    ] {
        assert!(
            texts.contains(&expected),
            "{expected:?} missing from {texts:#?}"
        );
    }
    assert_eq!(rules.len(), 10, "{texts:#?}");
    // Skipped by sudo's includedir rule: names with a dot or ending in ~.
    assert!(
        !texts.iter().any(|t| t.contains("NOPASSWD: ALL")),
        "{texts:#?}"
    );
    let sudo = rules
        .iter()
        .find(|r| r["rule"] == "%sudo ALL=(ALL:ALL) ALL")
        .unwrap();
    assert_eq!(sudo["sources"], json!(["/etc/sudoers:17"]));
    assert_eq!(sudo["kind"], "user_spec");
    let alias = rules.iter().find(|r| r["kind"] == "alias").unwrap();
    assert_eq!(alias["sources"], json!(["/etc/sudoers:10"]));

    // Fingerprints are the known answers of `ssh-keygen -lf` on the fixture keys.
    let laptop = find(
        &items,
        "ssh_key",
        "alice SHA256:TBOoryaboSrltnxYGvNKHNNJWyaDscsdN0Z8clkLxRg",
    );
    assert_eq!(laptop["key_type"], "ssh-ed25519");
    assert_eq!(laptop["comment"], "alice@laptop");
    assert_eq!(laptop["options"], json!([]));
    assert_eq!(laptop["source"], "/home/alice/.ssh/authorized_keys:2");
    let bastion = find(
        &items,
        "ssh_key",
        "alice SHA256:vM5Hjxs/hrXzGJRTlatTcqE9c6ipHdla0/3S55czEXM",
    );
    assert_eq!(
        bastion["options"],
        json!([
            "from=\"10.0.0.0/8\"",
            "no-port-forwarding",
            "no-agent-forwarding"
        ])
    );
    let ci = find(
        &items,
        "ssh_key",
        "deploy SHA256:Ew54lDRET8aHg+XO0YyCB+dVegggE5rj6+yT+ORjopU",
    );
    assert_eq!(ci["key_type"], "ecdsa-sha2-nistp256");
    assert_eq!(
        ci["options"],
        json!(["command=\"/usr/local/bin/deploy-hook\"", "restrict"])
    );
    find(
        &items,
        "ssh_key",
        "root SHA256:CPgJpUc3rGoU/90jiaM/4RQSeH/me6RJgwiX2anR6fc",
    );
    assert_eq!(items.iter().filter(|i| i["type"] == "ssh_key").count(), 4);

    assert!(has_warning(&snapshot, &["/etc/passwd:9", "malformed"]));
    assert!(has_warning(
        &snapshot,
        &[
            "/home/alice/.ssh/authorized_keys:5",
            "not a valid public key"
        ]
    ));
    assert_eq!(snapshot.details["shadow_read"], true);
    assert_eq!(
        snapshot.details["counts"],
        json!({"group": 11, "ssh_key": 4, "sudo_rule": 10, "user": 9})
    );
    assert_eq!(snapshot.cursor, None);
}

#[tokio::test]
async fn unreadable_shadow_sudoers_and_keys_are_warnings_not_failures() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&fixture("linux_root"), root.path());
    // A directory where a file is expected cannot be read, as root or not.
    for path in [
        "etc/shadow",
        "etc/sudoers",
        "home/alice/.ssh/authorized_keys",
    ] {
        std::fs::remove_file(root.path().join(path)).unwrap();
        std::fs::create_dir(root.path().join(path)).unwrap();
    }
    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(&*accounts(root.path()), spool.path())
        .await
        .expect("the run still succeeds");
    let items = items(&snapshot);
    assert_eq!(snapshot.details["shadow_read"], false);
    assert!(has_warning(
        &snapshot,
        &["/etc/shadow", "not a regular file"]
    ));
    assert!(has_warning(
        &snapshot,
        &["/etc/sudoers", "not a regular file"]
    ));
    assert!(has_warning(
        &snapshot,
        &["/home/alice/.ssh/authorized_keys", "alice"]
    ));
    let alice = find(&items, "user", "alice");
    assert_eq!(
        (&alice["locked"], &alice["password_set"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(alice["uid"], 1000);
    assert!(!items.iter().any(|i| i["type"] == "sudo_rule"));
    assert!(!items
        .iter()
        .any(|i| i["type"] == "ssh_key" && i["user"] == "alice"));
    find(
        &items,
        "ssh_key",
        "deploy SHA256:Ew54lDRET8aHg+XO0YyCB+dVegggE5rj6+yT+ORjopU",
    );
}

#[tokio::test]
async fn missing_or_unreadable_passwd_and_group_fail_the_run() {
    let spool = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let collector = accounts(empty.path());
    let err = collect(&*collector, spool.path())
        .await
        .unwrap_err()
        .to_string();
    let passwd = empty.path().join("etc/passwd");
    assert!(err.contains(&passwd.display().to_string()), "{err}");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(collector.check().len(), 1);

    let root = tempfile::tempdir().unwrap();
    copy_tree(&fixture("linux_root"), root.path());
    std::fs::remove_file(root.path().join("etc/group")).unwrap();
    std::fs::create_dir(root.path().join("etc/group")).unwrap();
    let err = collect(&*accounts(root.path()), spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("etc/group") && err.contains("directory"),
        "{err}"
    );
}

#[tokio::test]
async fn hostile_files_are_survived_with_warnings() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&fixture("linux_root"), root.path());
    let r = root.path();
    // Invalid UTF-8 in a GECOS field.
    let mut passwd = std::fs::read(r.join("etc/passwd")).unwrap();
    passwd.extend_from_slice(b"mallory:x:1003:1003:Mall\xff\xfeory:/home/../../../etc:/bin/sh\n");
    std::fs::write(r.join("etc/passwd"), passwd).unwrap();
    // A shadow file over the 16 MiB cap (sparse: fast to make).
    let shadow = std::fs::OpenOptions::new()
        .write(true)
        .open(r.join("etc/shadow"))
        .unwrap();
    shadow.set_len(17 << 20).unwrap();
    // An include loop, and a missing include.
    std::fs::write(
        r.join("etc/sudoers.d/loop"),
        "#include /etc/sudoers\n@include missing-file\nmallory ALL=(ALL) ALL\n",
    )
    .unwrap();
    // A symlink loop where bob's keys would be.
    std::fs::create_dir(r.join("home/bob/.ssh")).unwrap();
    std::os::unix::fs::symlink("authorized_keys", r.join("home/bob/.ssh/authorized_keys")).unwrap();

    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(&*accounts(r), spool.path())
        .await
        .expect("the run succeeds");
    let items = items(&snapshot);
    assert_no_shadow_secret(&snapshot);
    let mallory = find(&items, "user", "mallory");
    assert_eq!(mallory["gecos"], "Mall\u{fffd}\u{fffd}ory");
    assert!(has_warning(&snapshot, &["/etc/passwd", "not valid UTF-8"]));
    assert!(has_warning(&snapshot, &["/etc/shadow", "over the limit"]));
    assert!(has_warning(&snapshot, &["/etc/sudoers", "include loop"]));
    assert!(has_warning(
        &snapshot,
        &["/etc/sudoers.d/missing-file", "not found"]
    ));
    assert!(has_warning(
        &snapshot,
        &["/home/bob/.ssh/authorized_keys", "symlink loop"]
    ));
    // The rule after the loop is still read, once.
    let mallory_rules = items
        .iter()
        .filter(|i| i["type"] == "sudo_rule" && i["rule"] == "mallory ALL=(ALL) ALL")
        .count();
    assert_eq!(mallory_rules, 1);
    // The rules of /etc/sudoers were read once: no rule has two sources.
    assert!(items
        .iter()
        .filter(|i| i["type"] == "sudo_rule")
        .all(|i| i["sources"].as_array().unwrap().len() == 1));
}

#[tokio::test]
async fn settings_are_checked() {
    let refused = |text: &str| {
        collectors::registry::build("linux_accounts", &table(text))
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"))
    };
    assert_eq!(
        refused("root = \"relative/dir\"")[0].key.as_deref(),
        Some("root")
    );
    assert_eq!(refused("rooot = \"/\"")[0].key.as_deref(), Some("rooot"));
    assert!(refused("rooot = \"/\"")[0].message.contains("rooot"));
    // A value of the wrong type names its key, so check-config can point at it.
    assert_eq!(refused("root = 5")[0].key.as_deref(), Some("root"));
    assert_eq!(
        refused("authorized_keys_files = \".ssh/keys\"")[0]
            .key
            .as_deref(),
        Some("authorized_keys_files")
    );
    assert_eq!(
        refused("authorized_keys_files = [\"\"]")[0].key.as_deref(),
        Some("authorized_keys_files")
    );
    let collector = build("linux_accounts", "");
    assert_eq!(collector.kind(), "linux_accounts");
}

#[tokio::test]
async fn the_real_host_can_be_read_without_failing() {
    // The quickstart runs on this machine as whoever runs the tests.
    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(&*build("linux_accounts", ""), spool.path())
        .await
        .expect("the local host's accounts are readable");
    let items = items(&snapshot);
    assert!(items.iter().any(|i| i["type"] == "user" && i["uid"] == 0));
}

#[tokio::test]
async fn includes_and_key_files_leading_into_protected_data_are_refused() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&fixture("linux_root"), root.path());
    let agent = tempfile::tempdir().unwrap();
    let (data, key) = agent_data(agent.path());
    let r = root.path();
    // The key line would otherwise be read as a sudo rule, and the key file as a key list.
    std::os::unix::fs::symlink(&key, r.join("etc/sudoers.d/zz-agent")).unwrap();
    std::fs::remove_file(r.join("home/alice/.ssh/authorized_keys")).unwrap();
    std::os::unix::fs::symlink(&key, r.join("home/alice/.ssh/authorized_keys")).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let collector = accounts(r);
    let snapshot = collector
        .collect(ctx_protecting(spool.path(), std::slice::from_ref(&data)))
        .await
        .expect("the run succeeds");
    let items = items(&snapshot);
    let content = bytes(&snapshot);
    let details = snapshot.details.to_string();
    for leak in [AGENT_KEY_SECRET, "PRIVATE+KEY"] {
        assert!(
            !contains(&content, leak.as_bytes()),
            "{leak} in the content"
        );
        assert!(!details.contains(leak), "{leak} in the details");
    }
    assert!(has_warning(
        &snapshot,
        &["/etc/sudoers.d/zz-agent", REFUSED]
    ));
    assert!(has_warning(
        &snapshot,
        &["/home/alice/.ssh/authorized_keys", REFUSED]
    ));
    // Everything else is still read.
    assert!(items.iter().any(|i| i["type"] == "sudo_rule"));
    find(&items, "user", "alice");

    // A required file that leads there fails the run, naming it.
    std::fs::remove_file(r.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(&key, r.join("etc/passwd")).unwrap();
    let err = collector
        .collect(ctx_protecting(spool.path(), std::slice::from_ref(&data)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("etc/passwd") && err.contains(REFUSED), "{err}");
    assert!(!err.contains(AGENT_KEY_SECRET));
}
