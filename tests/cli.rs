//! The command line, end to end: the real binary on real files. Configuration errors with
//! file:line:col, key handling, collect → log → show → diff → verify on a fixture host tree,
//! tamper detection through `verify`'s exit code, and `--data-dir` with every command.

mod common;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SHADOW_HASH: &str = "$6$saltsalt$Wq7HkzJ0Ei3bqE1nUo2Kq0sJbYyXh3Zl1qgq9XvYkzW3o0vXq";
const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_evidence-agent")
}

fn agent(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run evidence-agent")
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

/// A small host tree: accounts with shadow hashes, a sudoers file and an authorized key.
fn host_tree(root: &Path, extra_user: bool) {
    let etc = root.join("etc");
    std::fs::create_dir_all(etc.join("sudoers.d")).unwrap();
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
    );
    let mut shadow = format!("root:*:19000:0:99999:7:::\nalice:{SHADOW_HASH}:19500:0:99999:7:::\n");
    let mut group = String::from("root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n");
    if extra_user {
        passwd.push_str("bob:x:1001:1001:Bob:/home/bob:/bin/sh\n");
        shadow.push_str("bob:!:19600:0:99999:7:::\n");
        group = group.replace("sudo:x:27:alice", "sudo:x:27:alice,bob");
        group.push_str("bob:x:1001:\n");
    }
    std::fs::write(etc.join("passwd"), passwd).unwrap();
    std::fs::write(etc.join("shadow"), shadow).unwrap();
    std::fs::write(etc.join("group"), group).unwrap();
    std::fs::write(
        etc.join("sudoers"),
        "Defaults env_reset\n%sudo ALL=(ALL:ALL) ALL\n#includedir /etc/sudoers.d\n",
    )
    .unwrap();
    let ssh = root.join("home/alice/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("authorized_keys"), format!("{ALICE_KEY}\n")).unwrap();
}

fn write_config(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    host_tree(&root, false);
    std::fs::write(dir.join("app.log"), "line 1\nline 2\n").unwrap();
    let config = format!(
        r#"host_id = "cli-host"
data_dir = "{data}"

[[collectors]]
id = "accounts"
kind = "linux_accounts"
schedule = "@daily"
root = "{root}"

[[collectors]]
id = "app-log"
kind = "log_file"
schedule = "*/5 * * * *"
path = "{log}"

[[collectors]]
id = "failing"
kind = "command"
schedule = "@hourly"
enabled = false
argv = ["false"]
"#,
        data = dir.join("data").display(),
        root = root.display(),
        log = dir.join("app.log").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn check_config_names_every_problem_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"data_dir = "/tmp/x"
colour = "blue"

[[collectors]]
id = "a"
kind = "command"
schedule = "61 * * * *"
argv = ["true"]

[[collectors]]
id = "a"
kind = "log_file"
schedule = "@daily"
path = "/nonexistent/dir/app.log"
pathz = "typo"
"#,
    )
    .unwrap();
    let out = agent(&["check-config", path.to_str().unwrap()]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    let file = path.display().to_string();
    assert!(
        t.contains(&format!("{file}:2:1:")) && t.contains("colour"),
        "unknown top-level key: {t}"
    );
    assert!(
        t.contains(&format!("{file}:7:")) && t.contains("minute"),
        "bad cron: {t}"
    );
    assert!(
        t.contains(&format!("{file}:11:")) && t.contains("duplicate"),
        "duplicate id: {t}"
    );
    assert!(
        t.contains(&format!("{file}:15:1:")) && t.contains("pathz"),
        "unknown collector key: {t}"
    );

    // The same file with only the environment wrong: the missing log path is named.
    let text_ok = std::fs::read_to_string(&path)
        .unwrap()
        .replace("colour = \"blue\"\n", "")
        .replace("61 * * * *", "1 * * * *")
        .replacen(
            "id = \"a\"\nkind = \"log_file\"",
            "id = \"b\"\nkind = \"log_file\"",
            1,
        )
        .replace("pathz = \"typo\"\n", "");
    std::fs::write(&path, text_ok).unwrap();
    let out = agent(&["check-config", path.to_str().unwrap()]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("/nonexistent/dir/app.log"), "missing path: {t}");
}

#[test]
fn keygen_makes_a_private_key_refuses_to_overwrite_and_key_prints_the_vkey() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let c = config.to_str().unwrap();
    let out = agent(&["--config", c, "keygen"]);
    assert!(out.status.success(), "{}", text(&out));
    let key = dir.path().join("data/keys/host.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let before = std::fs::read(&key).unwrap();

    let again = agent(&["--config", c, "keygen"]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("refusing to overwrite"),
        "{}",
        text(&again)
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key must be untouched"
    );

    let out = agent(&["--config", c, "key"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let vkey = t.lines().next().unwrap();
    assert!(vkey.starts_with("evidence-agent/cli-host+"), "{t}");
    assert!(
        !t.contains("PRIVATE"),
        "key must print only the public part: {t}"
    );
    assert!(
        t.lines().nth(1).unwrap().starts_with("fingerprint SHA256:"),
        "{t}"
    );
}

#[test]
fn the_agent_refuses_a_key_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let c = config.to_str().unwrap();
    assert!(agent(&["--config", c, "keygen"]).status.success());
    let key = dir.path().join("data/keys/host.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for cmd in ["collect", "run"] {
        let out = agent(&["--config", c, cmd]);
        let t = text(&out);
        assert!(!out.status.success(), "{cmd} started with a 0644 key: {t}");
        assert!(t.contains("0644") && t.contains("chmod 600"), "{cmd}: {t}");
    }
}

#[test]
fn collect_log_show_diff_and_verify_on_a_host_tree() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let c = config.to_str().unwrap();
    let out = agent(&["--config", c, "collect"]);
    assert!(out.status.success(), "{}", text(&out));

    // The access review question: what changed between two snapshots?
    host_tree(&dir.path().join("root"), true);
    std::fs::write(dir.path().join("app.log"), "line 1\nline 2\nline 3\n").unwrap();
    let out = agent(&[
        "--config",
        c,
        "collect",
        "--collector",
        "accounts",
        "--collector",
        "app-log",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let log = agent(&["--config", c, "log", "--json", "--collector", "accounts"]);
    assert!(log.status.success());
    let entries: Vec<serde_json::Value> = String::from_utf8(log.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2);
    let (first, second) = (
        entries[0]["index"].as_u64().unwrap(),
        entries[1]["index"].as_u64().unwrap(),
    );
    assert_eq!(entries[0]["statement"]["predicate"]["trigger"], "manual");

    let show = agent(&["--config", c, "show", &first.to_string()]);
    assert!(show.status.success());
    let content = String::from_utf8(show.stdout).unwrap();
    assert!(content.contains("\"alice\""), "{content}");
    assert!(
        !content.contains(SHADOW_HASH) && !content.contains("saltsalt"),
        "shadow hash leaked"
    );

    let diff = agent(&[
        "--config",
        c,
        "diff",
        &first.to_string(),
        &second.to_string(),
    ]);
    let d = text(&diff);
    assert!(diff.status.success(), "{d}");
    assert!(d.contains("+ user bob"), "{d}");
    assert!(d.contains("bob"), "{d}");

    // The second log segment holds only the new line.
    let log = agent(&["--config", c, "log", "--json", "--collector", "app-log"]);
    let last: serde_json::Value = serde_json::from_str(
        String::from_utf8(log.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let show = agent(&["--config", c, "show", &last["index"].to_string()]);
    assert_eq!(String::from_utf8(show.stdout).unwrap(), "line 3\n");

    let out = agent(&["--config", c, "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("pinned by the host key"),
        "{}",
        text(&out)
    );
    let status = agent(&["--config", c, "status"]);
    let s = text(&status);
    assert!(
        s.contains("entries     4") && s.contains("failing") && s.contains("never run"),
        "{s}"
    );
}

#[test]
fn verify_exits_non_zero_and_names_a_tampered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let c = config.to_str().unwrap();
    assert!(agent(&["--config", c, "collect"]).status.success());
    assert!(agent(&["--config", c, "collect"]).status.success());
    let conn = common::attacker(&dir.path().join("data/ledger.sqlite"));
    conn.execute_batch(
        "UPDATE entries SET envelope = CAST(replace(CAST(envelope AS TEXT), '\"sig\":\"', '\"sig\":\"B') AS BLOB) WHERE idx = 2;",
    )
    .unwrap();
    drop(conn);
    let out = agent(&["--config", c, "verify"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL entry 2:"), "{t}");
    let json = agent(&["--config", c, "verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["report"]["findings"][0]["entry"], 2);
}

#[test]
fn data_dir_overrides_the_config_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let c = config.to_str().unwrap();
    let other = dir.path().join("elsewhere");
    let o = other.to_str().unwrap();
    assert!(agent(&["--config", c, "--data-dir", o, "keygen"])
        .status
        .success());
    assert!(other.join("keys/host.key").exists());
    let out = agent(&[
        "--config",
        c,
        "--data-dir",
        o,
        "collect",
        "--collector",
        "accounts",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(other.join("ledger.sqlite").exists());
    assert!(
        !dir.path().join("data").exists(),
        "the configured data_dir must not be touched"
    );

    // Reading commands work from --data-dir alone, with no configuration file at all.
    let none = dir.path().join("no-such-config.toml");
    let n = none.to_str().unwrap();
    for args in [
        vec!["status"],
        vec!["log"],
        vec!["show", "0"],
        vec!["verify"],
        vec!["key"],
        vec!["diff", "0", "0"],
    ] {
        let mut full = vec!["--config", n, "--data-dir", o];
        full.extend(args.iter().copied());
        let out = agent(&full);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    let out = agent(&["--config", c, "--data-dir", o, "check-config"]);
    assert!(out.status.success(), "{}", text(&out));

    // keygen too: with no configuration, the host id is the hostname.
    let fresh = dir.path().join("fresh");
    let out = agent(&[
        "--config",
        n,
        "--data-dir",
        fresh.to_str().unwrap(),
        "keygen",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(fresh.join("keys/host.key").exists() && fresh.join("keys/host.vkey").exists());
}

#[test]
fn bad_arguments_and_missing_entries_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let c = config.to_str().unwrap();
    assert!(
        agent(&["--config", c, "collect", "--collector", "accounts"])
            .status
            .success()
    );
    let out = agent(&["--config", c, "show", "99"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no entry 99"), "{}", text(&out));
    let out = agent(&["--config", c, "collect", "--collector", "nope"]);
    assert!(
        text(&out).contains("no collector with id \"nope\""),
        "{}",
        text(&out)
    );
    let out = agent(&["--config", c, "log", "--since", "yesterday"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("yesterday"), "{}", text(&out));
    let out = agent(&["--config", c, "collect", "--collector", "failing"]);
    assert!(
        !out.status.success(),
        "a failed run must make collect exit non-zero"
    );
    assert!(text(&out).contains("failing: failed"), "{}", text(&out));
}
