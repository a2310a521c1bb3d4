//! The `exec_plugin` collector: the shipped example plugin, and small plugins written by the
//! tests for each way the protocol (docs/plugins.md) can be broken.

mod common;

use collectors::{CollectError, Snapshot};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The example plugin shipped in config/plugins/.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/plugins/example-mounts.py")
}

/// A plugin at `dir/name` with the shell script `body`, and a collector running it.
fn plugin(
    dir: &Path,
    name: &str,
    body: &str,
    extra_settings: &str,
) -> (PathBuf, Box<dyn collectors::Collector>) {
    let path = dir.join(name);
    write_script(&path, &format!("#!/bin/sh\n{body}"));
    let collector = build(
        "exec_plugin",
        &format!("path = {:?}\n{extra_settings}", path.display().to_string()),
    );
    (path, collector)
}

async fn run(
    collector: &dyn collectors::Collector,
    spool: &Path,
    cursor: Option<Value>,
) -> Result<Snapshot, CollectError> {
    collector.collect(ctx_with_cursor(spool, cursor)).await
}

async fn error(collector: &dyn collectors::Collector) -> String {
    let spool = tempfile::tempdir().unwrap();
    run(collector, spool.path(), None)
        .await
        .expect_err("the run fails")
        .to_string()
}

const MOUNTS: &str = "\
/dev/mapper/vg0-root / ext4 rw,relatime,errors=remount-ro 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/sda1 /boot ext4 rw,relatime 0 0
tmpfs /srv/backup\\040area tmpfs rw,size=1024k 0 0
";

#[tokio::test]
async fn the_example_plugin_lists_mounts_and_carries_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mounts = dir.path().join("mounts");
    std::fs::write(&mounts, MOUNTS).unwrap();
    let collector = build(
        "exec_plugin",
        &format!(
            "path = {:?}\n[config]\nmounts_file = {:?}\nskip_fstypes = [\"proc\"]\n",
            example().display().to_string(),
            mounts.display().to_string()
        ),
    );
    assert!(collector.check().is_empty(), "{:?}", collector.check());
    let first = run(&*collector, spool.path(), None).await.unwrap();
    let listed = items(&first);
    let ids: Vec<&str> = listed.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["/", "/boot", "/srv/backup area"],
        "sorted by id, proc skipped"
    );
    assert_eq!(
        find(&listed, "mount", "/"),
        &json!({"type": "mount", "id": "/", "source": "/dev/mapper/vg0-root", "fstype": "ext4",
                "options": ["rw", "relatime", "errors=remount-ro"]})
    );
    assert_eq!(first.details["plugin"]["run"], 1);
    assert_eq!(first.details["plugin"]["changed"], Value::Null);
    assert_eq!(first.details["exit_status"], 0);
    assert_eq!(first.details["lines"], 4);
    let cursor = first.cursor.clone().expect("the done record's cursor");
    assert_eq!(cursor["run"], 1);
    assert_eq!(cursor["ids"], json!(["/", "/boot", "/srv/backup area"]));

    // The next run gets the committed cursor on stdin and reports what changed since.
    std::fs::write(
        &mounts,
        MOUNTS.replace(
            "/dev/sda1 /boot ext4 rw,relatime 0 0\n",
            "nfs:/exports /mnt/nfs nfs4 ro 0 0\n",
        ),
    )
    .unwrap();
    let second = run(&*collector, spool.path(), Some(cursor)).await.unwrap();
    let plugin = &second.details["plugin"];
    assert_eq!(plugin["run"], 2);
    assert_eq!(plugin["changed"], true);
    assert_eq!(plugin["added"], json!(["/mnt/nfs"]));
    assert_eq!(plugin["removed"], json!(["/boot"]));
    assert_eq!(second.cursor.as_ref().unwrap()["run"], 2);
}

#[tokio::test]
async fn the_plugin_gets_the_protocol_input_and_a_clean_environment() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    // Prints its stdin and environment as items, and echoes the cursor back, one larger.
    let (_, collector) = plugin(
        dir.path(),
        "echo-input",
        r#"input=$(cat)
printf '{"item":{"type":"input","id":"stdin","text":%s}}\n' "$(printf '%s' "$input" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')"
env | sort | while IFS= read -r line; do
  printf '{"item":{"type":"env","id":"%s"}}\n' "${line%%=*}"
done
printf '{"done":{"cursor":{"n":2},"details":{"lang":"%s","path":"%s","region":"%s","token_bytes":%s}}}' "$LANG" "$PATH" "$REGION" "${#CRM_TOKEN}"
"#,
        "args = [\"--verbose\"]\nenv = { REGION = \"eu-west-1\" }\n\
         secret_env = { CRM_TOKEN = \"CARGO_MANIFEST_DIR\" }\n\
         [config]\ngroup = \"admins\"\nsince = 2024-01-01\n",
    );
    let snapshot = run(&*collector, spool.path(), Some(json!({"n": 1})))
        .await
        .unwrap();
    let listed = items(&snapshot);
    let stdin = find(&listed, "input", "stdin")["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        stdin,
        r#"{"collector_id":"test","config":{"group":"admins","since":"2024-01-01"},"cursor":{"n":1},"protocol":"evidence-agent-plugin/v1"}"#
    );
    let env: Vec<&str> = listed
        .iter()
        .filter(|i| i["type"] == "env")
        .map(|i| i["id"].as_str().unwrap())
        // What the shell sets for itself.
        .filter(|name| !["PWD", "OLDPWD", "SHLVL", "_"].contains(name))
        .collect();
    let expected: Vec<&str> = ["CRM_TOKEN", "HOME", "LANG", "PATH", "REGION"]
        .into_iter()
        .filter(|v| *v != "HOME" || std::env::var_os("HOME").is_some())
        .collect();
    assert_eq!(env, expected, "a clean environment");
    let details = &snapshot.details["plugin"];
    assert_eq!(details["lang"], "C.UTF-8");
    assert_eq!(details["path"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(details["region"], "eu-west-1");
    // The agent's CARGO_MANIFEST_DIR (set by cargo for the test process; setting a variable
    // here would race with the other tests starting processes) is the plugin's CRM_TOKEN.
    assert_eq!(details["token_bytes"], env!("CARGO_MANIFEST_DIR").len());
    assert_eq!(snapshot.cursor, Some(json!({"n": 2})));
    assert_eq!(snapshot.details["args"], json!(["--verbose"]));
}

#[tokio::test]
async fn items_without_type_or_id_get_them_and_order_does_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let (_, forward) = plugin(
        dir.path(),
        "forward",
        "echo '{\"item\":{\"type\":\"user\",\"id\":\"bob\",\"admin\":false}}'\n\
         echo '{\"item\":{\"b\":2,\"a\":1}}'\n\
         echo '{\"item\":{\"type\":\"user\",\"id\":\"alice\",\"admin\":true}}'\n\
         echo '{\"done\":{}}'\n",
        "",
    );
    let (_, backward) = plugin(
        dir.path(),
        "backward",
        "echo '{\"item\":{\"type\":\"user\",\"admin\":true,\"id\":\"alice\"}}'\n\
         echo '{\"item\":{\"a\":1,\"b\":2}}'\n\
         echo '{\"item\":{\"admin\":false,\"id\":\"bob\",\"type\":\"user\"}}'\n\
         printf '{\"done\":{\"cursor\":null}}'\n",
        "",
    );
    let one = run(&*forward, spool.path(), None).await.unwrap();
    let two = run(&*backward, spool.path(), None).await.unwrap();
    assert_eq!(
        one.content.sha256(),
        two.content.sha256(),
        "same items, same digest"
    );
    let listed = items(&one);
    assert_eq!(listed.len(), 3);
    let anonymous = &listed[0];
    assert_eq!(anonymous["type"], "item");
    let id = anonymous["id"].as_str().unwrap();
    assert_eq!(id.len(), "sha256:".len() + 64, "{id}");
    assert_eq!(listed[1]["id"], "alice");
    assert_eq!(one.cursor, Some(Value::Null));
    assert_eq!(one.details["plugin"], Value::Null);
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_the_status_and_the_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (path, collector) = plugin(
        dir.path(),
        "failing",
        "echo '{\"item\":{\"id\":\"a\"}}'\n\
         echo \"connecting as $CRM_TOKEN\" >&2\n\
         echo 'HTTP 401 from https://crm.example.com/api/users' >&2\n\
         exit 3\n",
        "secret_env = { CRM_TOKEN = \"CARGO_MANIFEST_DIR\" }",
    );
    let err = error(&*collector).await;
    assert_eq!(
        err,
        format!(
            "{} exited with status 3; stderr: connecting as [REDACTED secret_env CRM_TOKEN] \
             HTTP 401 from https://crm.example.com/api/users",
            path.display()
        )
    );

    let (path, long) = plugin(
        dir.path(),
        "chatty",
        "head -c 100000 /dev/zero | tr '\\0' x >&2\nprintf '\\377END' >&2\nkill -TERM $$\n",
        "",
    );
    let err = error(&*long).await;
    let prefix = format!("{} was killed by signal 15; stderr: ", path.display());
    assert!(err.starts_with(&prefix), "{err}");
    assert!(
        err.ends_with("x\u{fffd}END"),
        "made valid UTF-8: {}",
        &err[err.len() - 20..]
    );
    assert!(
        err.len() - prefix.len() <= 2048,
        "the last 2 KiB: {}",
        err.len()
    );
}

#[tokio::test]
async fn output_that_breaks_the_protocol_fails_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let item = "echo '{\"item\":{\"id\":\"a\"}}'\n";
    let cases = [
        (
            "no-done",
            format!("{item}echo '{{\"item\":{{\"id\":\"b\"}}}}'\n"),
            "its output ended after 2 lines without the final {\"done\": ...} record",
        ),
        (
            "not-json",
            format!("{item}echo 'users: 3'\necho '{{\"done\":{{}}}}'\n"),
            "line 2 of its output: it is not JSON",
        ),
        (
            "other-record",
            format!("{item}echo '{{\"items\":[]}}'\n"),
            "line 2 of its output: it is neither an item nor the done record",
        ),
        (
            "after-done",
            format!("echo '{{\"done\":{{}}}}'\n{item}"),
            "line 2 of its output: it comes after the final done record (line 1)",
        ),
        (
            "repeated",
            format!("{item}{item}echo '{{\"done\":{{}}}}'\n"),
            "line 2 of its output: it repeats the item of type \"item\" and id \"a\" of line 1",
        ),
        (
            // Refused at once although the plugin would print for ever: it is killed, and the
            // line (not the kill) is the reason given.
            "endless",
            "echo 'users: 3'\nexec yes '{\"item\":{}}'\n".to_owned(),
            "line 1 of its output: it is not JSON",
        ),
        (
            "numeric-id",
            "echo '{\"item\":{\"id\":7}}'\n".to_owned(),
            "line 1 of its output: its item's \"id\" is not a non-empty string",
        ),
    ];
    for (name, body, expected) in cases {
        let (path, collector) = plugin(dir.path(), name, &body, "");
        let err = error(&*collector).await;
        assert!(
            err.starts_with(&format!("{}: {expected}", path.display())),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn a_secret_in_the_output_fails_the_run_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, collector) = plugin(
        dir.path(),
        "leaky",
        "echo '{\"item\":{\"id\":\"ok\"}}'\n\
         printf '{\"item\":{\"id\":\"key\",\"value\":\"%s\"}}\\n' \"$CRM_TOKEN\"\n\
         echo '{\"done\":{}}'\n",
        "secret_env = { CRM_TOKEN = \"CARGO_MANIFEST_DIR\" }",
    );
    let err = error(&*collector).await;
    assert_eq!(
        err,
        format!(
            "{}: line 2 of its output: it holds the value of secret_env CRM_TOKEN, which is never recorded",
            path.display()
        )
    );
    let missing = build(
        "exec_plugin",
        &format!(
            "path = {:?}\nsecret_env = {{ CRM_TOKEN = \"EVIDENCE_AGENT_TEST_UNSET\" }}",
            path.display().to_string()
        ),
    );
    assert_eq!(missing.check()[0].key.as_deref(), Some("secret_env"));
    let err = error(&*missing).await;
    assert!(
        err.ends_with("secret_env CRM_TOKEN: the agent's environment variable EVIDENCE_AGENT_TEST_UNSET is not set"),
        "{err}"
    );
}

#[tokio::test]
async fn output_over_max_output_bytes_kills_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    // Never ends by itself: only the limit stops it. Lines 1 to 5 are 20 bytes each.
    let (path, collector) = plugin(
        dir.path(),
        "endless",
        "i=0\nwhile :; do i=$((i + 1)); echo \"{\\\"item\\\":{\\\"id\\\":\\\"$i\\\"}}\"; done\n",
        "max_output_bytes = 100",
    );
    let err = error(&*collector).await;
    assert_eq!(
        err,
        format!(
            "{}: line 6 of its output: the output is over max_output_bytes (100 bytes); the plugin was killed",
            path.display()
        )
    );
}

#[tokio::test]
async fn the_deadline_kills_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let (path, collector) = plugin(
        dir.path(),
        "stuck",
        &format!(
            "echo $$ > {:?}\nexec sleep 1000\n",
            pid_file.display().to_string()
        ),
        "",
    );
    let ctx = collectors::CollectContext {
        deadline: std::time::Instant::now().checked_add(std::time::Duration::from_secs(2)),
        ..ctx(spool.path())
    };
    let err = collector.collect(ctx).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "stopped: the run's timeout passed; {} was killed",
            path.display()
        )
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the plugin started within 2 s")
        .trim()
        .parse()
        .unwrap();
    // Killed and reaped before the run returned: no such process any more.
    assert!(wait_for_exit(pid, 0), "pid {pid} is still running");
}

#[tokio::test]
async fn a_big_output_written_before_the_input_is_read_does_not_stall() {
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    // 50,000 items (about 1.5 MiB) before reading a 1 MiB input: writing the input first, or
    // reading stdout only after, would leave both sides blocked on full pipes.
    let (_, collector) = plugin(
        dir.path(),
        "big",
        "awk 'BEGIN { for (i = 0; i < 50000; i++) printf \"{\\\"item\\\":{\\\"id\\\":\\\"%06d\\\",\\\"n\\\":%d}}\\n\", i, i }'\n\
         size=$(wc -c)\n\
         printf '{\"done\":{\"details\":{\"input_bytes\":%s}}}\\n' \"$size\"\n",
        &format!("[config]\nblob = \"{}\"\n", "x".repeat(1 << 20)),
    );
    let snapshot = run(&*collector, spool.path(), None).await.unwrap();
    assert_eq!(snapshot.item_count, 50_000);
    assert!(snapshot.content.as_bytes().is_none(), "spooled past 1 MiB");
    let listed = items(&snapshot);
    assert_eq!(
        listed[49_999],
        json!({"type": "item", "id": "049999", "n": 49999})
    );
    let input_bytes = snapshot.details["plugin"]["input_bytes"].as_u64().unwrap();
    assert!(
        input_bytes > 1 << 20,
        "the whole input was read: {input_bytes}"
    );
}

#[test]
fn settings_are_checked() {
    let refused = |text: &str| {
        collectors::registry::build("exec_plugin", &table(text))
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"))
    };
    let key = |text: &str| refused(text)[0].key.clone();
    assert_eq!(key("path = \"plugins/users.py\"").as_deref(), Some("path"));
    assert_eq!(key("args = [\"-v\"]").as_deref(), None, "path is required");
    let secret = &refused("path = \"/p\"\nenv = { GITHUB_TOKEN = \"ghp_x\" }")[0];
    assert_eq!(secret.key.as_deref(), Some("env"));
    assert!(secret.message.contains("secret_env"), "{}", secret.message);
    assert_eq!(
        key("path = \"/p\"\nenv = { DB_PASSWORD = \"x\" }").as_deref(),
        Some("env")
    );
    assert_eq!(
        key("path = \"/p\"\nenv = { SIGNING_KEY = \"x\" }").as_deref(),
        Some("env")
    );
    assert_eq!(
        key("path = \"/p\"\nenv = { \"A=B\" = \"x\" }").as_deref(),
        Some("env")
    );
    assert_eq!(
        key("path = \"/p\"\nenv = { T = \"x\" }\nsecret_env = { T = \"AGENT_T\" }").as_deref(),
        Some("secret_env")
    );
    assert_eq!(
        key("path = \"/p\"\nsecret_env = { T = \"\" }").as_deref(),
        Some("secret_env")
    );
    assert_eq!(
        key("path = \"/p\"\nmax_output_bytes = 0").as_deref(),
        Some("max_output_bytes")
    );
    assert_eq!(
        key("path = \"/p\"\n[config]\nratio = nan").as_deref(),
        Some("config")
    );
    assert_eq!(key("path = \"/p\"\nshell = true").as_deref(), Some("shell"));
    let missing = build("exec_plugin", "path = \"/nonexistent/plugin\"");
    assert_eq!(missing.check()[0].key.as_deref(), Some("path"));
}
