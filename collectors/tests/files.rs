//! The `files` collector on realistic backup and SSH configuration, and on hostile trees.

mod common;

use base64::Engine as _;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

const RESTIC_PASSWORD: &str = "correct-horse-battery-staple";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A small /etc with a restic env file, a borgmatic config, sshd_config and a binary keyring.
fn backup_host(base: &Path) {
    let etc = base.join("etc");
    for dir in ["restic", "borgmatic", "ssh"] {
        std::fs::create_dir_all(etc.join(dir)).unwrap();
    }
    std::fs::write(
        etc.join("restic/env"),
        format!(
            "# restic environment for the nightly backup\n\
             RESTIC_REPOSITORY=s3:https://s3.eu-west-1.amazonaws.com/acme-backups/web-01\n\
             RESTIC_PASSWORD={RESTIC_PASSWORD}\n\
             AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n\
             AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("borgmatic/config.yaml"),
        format!(
            "location:\n    source_directories:\n        - /home\n        - /etc\n    \
             repositories:\n        - ssh://backup@backup.internal/./web-01\n\
             storage:\n    encryption_passphrase: \"{RESTIC_PASSWORD}\"\n\
             retention:\n    keep_daily: 7\n    keep_weekly: 4\n"
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("ssh/sshd_config"),
        "Port 22\nPermitRootLogin no\nPasswordAuthentication no\nPubkeyAuthentication yes\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\nAuthorizedKeysFile .ssh/authorized_keys\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("borgmatic/keyring.bin"),
        b"\x00\x01\xff\xfeBORG\x80",
    )
    .unwrap();
}

fn files_collector(toml_text: &str) -> Box<dyn collectors::Collector> {
    build("files", toml_text)
}

fn patterns(base: &Path, globs: &[&str]) -> String {
    let list: Vec<String> = globs
        .iter()
        .map(|g| format!("{:?}", format!("{}/{g}", base.display())))
        .collect();
    format!("paths = [{}]", list.join(", "))
}

fn content_of(item: &Value) -> Vec<u8> {
    match item["encoding"].as_str() {
        Some("utf-8") => item["content"].as_str().unwrap().as_bytes().to_vec(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(item["content"].as_str().unwrap())
            .unwrap(),
        other => panic!("unknown encoding {other:?}"),
    }
}

#[tokio::test]
async fn config_files_become_items_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    backup_host(base);
    let env = base.join("etc/restic/env");
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).unwrap();
    let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645); // 2024-01-02T03:04:05Z
    std::fs::File::options()
        .write(true)
        .open(&env)
        .unwrap()
        .set_modified(stamp)
        .unwrap();

    let collector = files_collector(&patterns(
        base,
        &[
            "etc/restic/*",
            "etc/borgmatic/*",
            "etc/ssh/sshd_config",
            "etc/nothing-here/*.conf",
        ],
    ));
    assert!(collector
        .check()
        .iter()
        .any(|p| p.message.contains("nothing-here")));
    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(&*collector, spool.path())
        .await
        .expect("the run succeeds");
    let items = items(&snapshot);
    let all = bytes(&snapshot);
    assert_eq!(items.len(), 4);
    assert!(has_warning(&snapshot, &["nothing-here", "matched no file"]));

    // No secret, and no hash of the raw secret-bearing file, is published.
    for secret in [RESTIC_PASSWORD, AWS_SECRET, "AKIAIOSFODNN7EXAMPLE"] {
        assert!(!contains(&all, secret.as_bytes()), "{secret} leaked");
    }
    let raw_sha = hex::encode(Sha256::digest(std::fs::read(&env).unwrap()));
    assert!(!contains(&all, raw_sha.as_bytes()));

    let env_id = env.display().to_string();
    let item = find(&items, "file", &env_id);
    assert_eq!(item["path"], env_id.as_str());
    assert_eq!(item["mode"], "0640");
    assert_eq!(item["mtime"], "2024-01-02T03:04:05Z");
    assert_eq!(item["encoding"], "utf-8");
    assert_eq!(item["redactions"], 3);
    assert_eq!(item["size"], std::fs::metadata(&env).unwrap().len());
    assert_eq!(item["link_target"], Value::Null);
    let uid = std::fs::metadata(&env).unwrap().uid();
    assert_eq!(item["uid"], uid);
    if uid == 0 {
        assert_eq!(item["owner"], "root");
    }
    let text = item["content"].as_str().unwrap();
    assert!(text
        .contains("RESTIC_REPOSITORY=s3:https://s3.eu-west-1.amazonaws.com/acme-backups/web-01\n"));
    assert!(text.contains("RESTIC_PASSWORD=[REDACTED sha256:"));
    assert_eq!(
        item["sha256"],
        hex::encode(Sha256::digest(text.as_bytes())),
        "the hash is of the published, redacted text"
    );

    // The same secret gives the same marker in another file, so a change stays visible.
    let marker_of = |text: &str, key: &str| {
        let start = text.find(key).unwrap() + key.len();
        text[start..].split(']').next().unwrap().to_owned()
    };
    let borg = find(
        &items,
        "file",
        &format!("{}/etc/borgmatic/config.yaml", base.display()),
    );
    let borg_text = borg["content"].as_str().unwrap();
    assert_eq!(
        marker_of(text, "RESTIC_PASSWORD="),
        marker_of(borg_text, "encryption_passphrase: \"")
    );
    assert!(borg_text.contains("keep_daily: 7"));

    // Settings that carry no secret stay readable.
    let sshd = find(
        &items,
        "file",
        &format!("{}/etc/ssh/sshd_config", base.display()),
    );
    assert_eq!(sshd["redactions"], 0);
    assert_eq!(
        sshd["content"].as_str().unwrap(),
        std::fs::read_to_string(base.join("etc/ssh/sshd_config")).unwrap()
    );

    // A binary file is base64 of its bytes.
    let keyring = find(
        &items,
        "file",
        &format!("{}/etc/borgmatic/keyring.bin", base.display()),
    );
    assert_eq!(keyring["encoding"], "base64");
    assert_eq!(content_of(keyring), b"\x00\x01\xff\xfeBORG\x80");
    assert_eq!(
        keyring["sha256"],
        hex::encode(Sha256::digest(content_of(keyring)))
    );
}

#[tokio::test]
async fn markers_depend_on_the_host_salt_and_redaction_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    backup_host(dir.path());
    let spool = tempfile::tempdir().unwrap();
    let settings = patterns(dir.path(), &["etc/restic/env"]);
    let collector = files_collector(&settings);
    let first = bytes(&collector.collect(ctx(spool.path())).await.unwrap());
    let again = bytes(&collector.collect(ctx(spool.path())).await.unwrap());
    assert_eq!(first, again, "same file, same salt: same evidence");
    let mut other_host = ctx(spool.path());
    other_host.redaction_salt = [7; 32];
    let other = bytes(&collector.collect(other_host).await.unwrap());
    assert_ne!(first, other, "the marker is salted per host");

    let plain = files_collector(&format!("{settings}\nredact = false"));
    let snapshot = collect(&*plain, spool.path()).await.unwrap();
    let unredacted = items(&snapshot);
    let raw = std::fs::read(dir.path().join("etc/restic/env")).unwrap();
    assert_eq!(content_of(&unredacted[0]), raw);
    assert_eq!(unredacted[0]["sha256"], hex::encode(Sha256::digest(&raw)));
    assert_eq!(snapshot.details["redact"], false);

    let extra = files_collector(&format!(
        "{settings}\nredact_patterns = [\"(?i)repository\"]"
    ));
    let with_extra = items(&collect(&*extra, spool.path()).await.unwrap());
    let text = with_extra[0]["content"].as_str().unwrap();
    assert!(!text.contains("acme-backups"), "{text}");
    assert_eq!(with_extra[0]["redactions"], 4);
}

#[tokio::test]
async fn a_file_over_the_limit_fails_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    backup_host(dir.path());
    let big = dir.path().join("etc/restic/huge.log");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(11 << 20)
        .unwrap(); // sparse
    let spool = tempfile::tempdir().unwrap();
    let err = collect(
        &*files_collector(&patterns(dir.path(), &["etc/restic/*"])),
        spool.path(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, collectors::CollectError::TooLarge { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(&big.display().to_string()), "{message}");
    assert!(
        message.contains("11534336 bytes") && message.contains("10485760"),
        "{message}"
    );

    let small_limit = format!(
        "{}\nmax_file_size = 64",
        patterns(dir.path(), &["etc/ssh/*"])
    );
    let err = collect(&*files_collector(&small_limit), spool.path())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("over the limit of 64 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn loops_fifos_directories_and_dangling_links_are_skipped_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.d");
    std::fs::create_dir_all(conf.join("subdir")).unwrap();
    std::fs::write(conf.join("app.conf"), "listen = 8080\n").unwrap();
    std::os::unix::fs::symlink("loop-b", conf.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", conf.join("loop-b")).unwrap();
    std::os::unix::fs::symlink("missing", conf.join("dangling")).unwrap();
    std::os::unix::fs::symlink("app.conf", conf.join("linked.conf")).unwrap();
    let fifo =
        std::ffi::CString::new(conf.join("pipe").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(
        &*files_collector(&patterns(dir.path(), &["conf.d/*"])),
        spool.path(),
    )
    .await
    .expect("the run succeeds");
    let items = items(&snapshot);
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let c = conf.display();
    assert_eq!(
        ids,
        vec![format!("{c}/app.conf"), format!("{c}/linked.conf")]
    );
    assert_eq!(items[1]["link_target"], "app.conf");
    assert_eq!(items[0]["content"], items[1]["content"]);
    assert!(has_warning(&snapshot, &["loop-a", "symlink loop"]));
    assert!(has_warning(&snapshot, &["loop-b", "symlink loop"]));
    assert!(has_warning(&snapshot, &["dangling", "dangling symlink"]));
    assert!(has_warning(&snapshot, &["pipe", "FIFO"]));
    assert!(has_warning(&snapshot, &["subdir", "a directory"]));
}

#[tokio::test]
async fn a_matched_file_that_cannot_be_read_fails_the_run() {
    // /proc/self/mem is a regular file whose read at offset 0 fails (EIO), as root or not.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.conf"), "ok\n").unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", dir.path().join("b.conf")).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let err = collect(
        &*files_collector(&patterns(dir.path(), &["*.conf"])),
        spool.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!("{}/b.conf", dir.path().display())),
        "{err}"
    );
    assert!(err.starts_with("read "), "{err}");
}

#[tokio::test]
async fn nothing_matched_is_an_empty_snapshot_and_odd_names_survive() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(
        &*files_collector(&patterns(dir.path(), &["*.yml"])),
        spool.path(),
    )
    .await
    .unwrap();
    assert!(items(&snapshot).is_empty());
    assert_eq!(bytes(&snapshot), b"{\"items\":[]}");
    assert!(has_warning(&snapshot, &["*.yml", "matched no file"]));

    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.yml");
    std::fs::write(dir.path().join(name), "k: v\n").unwrap();
    let snapshot = collect(
        &*files_collector(&patterns(dir.path(), &["*.yml"])),
        spool.path(),
    )
    .await
    .unwrap();
    let items = items(&snapshot);
    assert_eq!(
        items[0]["id"],
        format!("{}/caf\u{fffd}.yml", dir.path().display())
    );
    assert_eq!(items[0]["content"], "k: v\n");
    assert!(has_warning(&snapshot, &["not valid UTF-8"]));
}

#[tokio::test]
async fn double_star_collects_a_tree_in_path_order() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    for (path, text) in [
        ("timers/backup.timer", "[Timer]\nOnCalendar=daily\n"),
        (
            "timers/nested/db-dump.timer",
            "[Timer]\nOnCalendar=*-*-* 02:00\n",
        ),
        ("timers/.hidden/skip.timer", "x"),
        ("timers/nested/notes.txt", "x"),
    ] {
        std::fs::create_dir_all(base.join(path).parent().unwrap()).unwrap();
        std::fs::write(base.join(path), text).unwrap();
    }
    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(
        &*files_collector(&patterns(base, &["timers/**/*.timer"])),
        spool.path(),
    )
    .await
    .unwrap();
    let ids: Vec<String> = items(&snapshot)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let b = base.display();
    assert_eq!(
        ids,
        vec![
            format!("{b}/timers/backup.timer"),
            format!("{b}/timers/nested/db-dump.timer")
        ]
    );
}

#[test]
fn settings_are_checked() {
    let refused = |text: &str| {
        collectors::registry::build("files", &table(text))
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"))
    };
    assert_eq!(refused("paths = []")[0].key.as_deref(), Some("paths"));
    assert!(refused("paths = [\"etc/*.conf\"]")[0]
        .message
        .contains("not an absolute path"));
    assert_eq!(refused("")[0].message, "missing field `paths`");
    assert_eq!(refused("")[0].key, None);
    assert_eq!(
        refused("paths = [\"/etc/x\"]\nmax_file_size = \"10M\"")[0]
            .key
            .as_deref(),
        Some("max_file_size")
    );
    assert_eq!(
        refused("paths = [\"/etc/x\"]\nredact_patterns = [\"(unclosed\"]")[0]
            .key
            .as_deref(),
        Some("redact_patterns")
    );
    assert_eq!(
        refused("paths = [\"/etc/x\"]\nmax_file_size = 0")[0]
            .key
            .as_deref(),
        Some("max_file_size")
    );
    assert_eq!(
        refused("paths = [\"/etc/x\"]\npath = \"/x\"")[0]
            .key
            .as_deref(),
        Some("path")
    );
    assert!(files_collector("paths = [\"/etc/*\"]").check().is_empty());
}

#[tokio::test]
async fn symlinks_into_the_agents_protected_data_are_refused_others_followed() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let (data, key) = agent_data(&base);
    let etc = base.join("etc");
    std::fs::create_dir_all(etc.join("backup")).unwrap();
    std::fs::create_dir_all(base.join("usr/lib")).unwrap();
    std::fs::write(etc.join("backup/app.conf"), "listen = 8080\n").unwrap();
    // The reviewer's exfiltration: an absolute symlink to the key.
    std::os::unix::fs::symlink(&key, etc.join("backup/backup.conf")).unwrap();
    // Not only the key: anything in the data directory (the ledger …).
    std::fs::write(data.join("ledger.db"), "ledger-internals").unwrap();
    std::os::unix::fs::symlink(data.join("ledger.db"), etc.join("backup/ledger.conf")).unwrap();
    // A relative one, and one through another name of the data directory.
    std::os::unix::fs::symlink(
        "../../var/lib/evidence-agent/keys/host.key",
        etc.join("backup/relative.conf"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&data, base.join("alias")).unwrap();
    std::os::unix::fs::symlink(
        base.join("alias/keys/host.key"),
        etc.join("backup/via-alias.conf"),
    )
    .unwrap();
    // An ordinary symlink, as /etc/os-release -> ../usr/lib/os-release, is still followed.
    std::fs::write(base.join("usr/lib/os-release"), "ID=debian\n").unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", etc.join("os-release")).unwrap();

    // Protected paths given by another name, and one that does not exist yet.
    let protected = [base.join("alias"), key, base.join("alias/spool/not-yet")];
    let settings = patterns(&base, &["etc/backup/*", "etc/os-release", "var/lib/**"]);
    let spool = tempfile::tempdir().unwrap();
    // Redaction off: the protection does not depend on it.
    for settings in [settings.clone(), format!("{settings}\nredact = false")] {
        let snapshot = files_collector(&settings)
            .collect(ctx_protecting(spool.path(), &protected))
            .await
            .expect("the run succeeds");
        let all = bytes(&snapshot);
        assert!(
            !contains(&all, AGENT_KEY_SECRET.as_bytes()),
            "the key leaked"
        );
        assert!(!contains(&all, b"PRIVATE+KEY"), "the key leaked");
        assert!(!contains(&all, b"ledger-internals"), "the ledger leaked");
        assert!(!snapshot.details.to_string().contains(AGENT_KEY_SECRET));
        let items = items(&snapshot);
        let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
        let b = base.display();
        assert_eq!(
            ids,
            vec![
                format!("{b}/etc/backup/app.conf"),
                format!("{b}/etc/os-release")
            ]
        );
        let os_release = find(&items, "file", &format!("{b}/etc/os-release"));
        assert_eq!(os_release["content"], "ID=debian\n");
        assert_eq!(os_release["link_target"], "../usr/lib/os-release");
        for refused in [
            "etc/backup/backup.conf",
            "etc/backup/ledger.conf",
            "etc/backup/relative.conf",
            "etc/backup/via-alias.conf",
            "var/lib/evidence-agent/keys/host.key",
            "var/lib/evidence-agent/ledger.db",
        ] {
            assert!(
                has_warning(&snapshot, &[&format!("{b}/{refused}"), REFUSED]),
                "{refused}: {:?}",
                warnings(&snapshot)
            );
        }
    }
}

#[tokio::test]
async fn secrets_in_json_yaml_blocks_pgbackrest_pgpass_and_key_copies_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let secrets = [
        "hunter2",
        "tok-abc123",
        "blockSecret1",
        "blockSecret2",
        "zWaf6XtpjIVZC5444yXB",
        "rcl0neObscured",
        "PgPassw0rd",
        "Passw0rd",
        AGENT_KEY_SECRET,
    ];
    for (name, text) in [
        (
            "app.json",
            r#"{"db":{"password":"hunter2"},"api":{"token":"tok-abc123"}}"#.to_owned(),
        ),
        (
            "app.yaml",
            "db:\n  password: |\n    blockSecret1\n    blockSecret2\n  user: app\n".to_owned(),
        ),
        (
            "pgbackrest.conf",
            "[global]\nrepo1-cipher-pass=zWaf6XtpjIVZC5444yXB\nrepo1-cipher-type=aes-256-cbc\n"
                .to_owned(),
        ),
        (
            "rclone.conf",
            "[r]\ntype = sftp\npass = rcl0neObscured\n".to_owned(),
        ),
        (
            ".pgpass",
            "db.internal:5432:*:backup:PgPassw0rd\n".to_owned(),
        ),
        ("env", "password=/Passw0rd\n".to_owned()),
        ("key-copy.txt", format!("{AGENT_KEY}\n")),
    ] {
        std::fs::write(base.join(name), text).unwrap();
    }
    let spool = tempfile::tempdir().unwrap();
    let snapshot = collect(
        &*files_collector(&patterns(base, &["*", ".pgpass"])),
        spool.path(),
    )
    .await
    .unwrap();
    let all = bytes(&snapshot);
    for secret in secrets {
        assert!(
            !contains(&all, secret.as_bytes()),
            "{secret} leaked: {}",
            String::from_utf8_lossy(&all)
        );
    }
    let items = items(&snapshot);
    assert_eq!(items.len(), 7);
    for item in &items {
        assert!(
            item["content"]
                .as_str()
                .unwrap()
                .contains("[REDACTED sha256:"),
            "{item}"
        );
    }
    let b = base.display();
    assert_eq!(
        find(&items, "file", &format!("{b}/app.json"))["redactions"],
        2
    );
    assert_eq!(
        find(&items, "file", &format!("{b}/app.yaml"))["redactions"],
        1
    );
    let pgpass = find(&items, "file", &format!("{b}/.pgpass"));
    assert!(pgpass["content"]
        .as_str()
        .unwrap()
        .starts_with("db.internal:5432:*:backup:[REDACTED sha256:"));
}
