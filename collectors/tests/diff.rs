//! `diff` between two real `linux_accounts` snapshots of a host whose access changed.

mod common;

use collectors::diff::diff;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

async fn snapshot_of(root: &Path) -> Value {
    let spool = tempfile::tempdir().unwrap();
    let collector = build(
        "linux_accounts",
        &format!("root = {:?}", root.display().to_string()),
    );
    let snapshot = collect(&*collector, spool.path())
        .await
        .expect("the run succeeds");
    serde_json::from_slice(&bytes(&snapshot)).unwrap()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test]
async fn an_access_review_sees_what_changed_between_two_dates() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    copy_tree(&fixture("linux_root"), r);
    let before = snapshot_of(r).await;

    // Between the two dates: carol joins (and the sudo group, with a rule of her own), alice's
    // shell changes, and deploy's CI key is revoked.
    edit(
        &r.join("etc/passwd"),
        "deploy:x:1002",
        "carol:x:1003:1003:Carol Diaz,,,:/home/carol:/bin/zsh\ndeploy:x:1002",
    );
    edit(
        &r.join("etc/passwd"),
        "alice:x:1000:1000:Alice Martin,,,:/home/alice:/bin/bash",
        "alice:x:1000:1000:Alice Martin,,,:/home/alice:/bin/zsh",
    );
    edit(
        &r.join("etc/group"),
        "sudo:x:27:alice",
        "sudo:x:27:alice,carol",
    );
    edit(
        &r.join("etc/group"),
        "deploy:x:1002:",
        "deploy:x:1002:\ncarol:x:1003:",
    );
    std::fs::write(r.join("home/deploy/.ssh/authorized_keys"), "").unwrap();
    std::fs::write(
        r.join("etc/sudoers.d/50-carol"),
        "carol ALL=(postgres) NOPASSWD: /usr/bin/psql\n",
    )
    .unwrap();
    let after = snapshot_of(r).await;

    let changes = diff(&before, &after).unwrap();
    let text = changes.to_string();
    let expected = "\
group: 1 added, 1 changed
  + group carol (gid 1003)
  ~ group sudo (gid 27): members +carol
ssh_key: 1 removed
  - ssh_key deploy SHA256:Ew54lDRET8aHg+XO0YyCB+dVegggE5rj6+yT+ORjopU (ecdsa-sha2-nistp256, deploy@ci)
sudo_rule: 1 added
  + sudo_rule \"carol ALL=(postgres) NOPASSWD: /usr/bin/psql\"
user: 1 added, 1 changed
  + user carol (uid 1003)
  ~ user alice (uid 1000): shell /bin/bash -> /bin/zsh
";
    assert_eq!(text, expected);

    let as_json = serde_json::to_value(&changes).unwrap();
    assert_eq!(as_json["added"].as_array().unwrap().len(), 3);
    assert_eq!(as_json["removed"][0]["user"], "deploy");
    assert_eq!(
        as_json["changed"][1],
        json!({"type": "user", "id": "alice", "changes": [{"field": "shell", "old": "/bin/bash", "new": "/bin/zsh"}]})
    );
    // No change reads as no change, and the reverse diff mirrors the forward one.
    assert_eq!(diff(&after, &after).unwrap().to_string(), "no changes\n");
    let back = diff(&after, &before).unwrap();
    assert_eq!(
        (back.added.len(), back.removed.len(), back.changed.len()),
        (1, 3, 2)
    );
}

#[test]
fn raw_bytes_are_not_comparable() {
    let err = diff(&json!("Jan  2 03:04:05 sshd: line"), &json!({"items": []})).unwrap_err();
    assert_eq!(err.side, "old");
    assert!(err.to_string().contains("\"items\" array"));
}
