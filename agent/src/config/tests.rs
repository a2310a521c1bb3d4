//! Tests of configuration loading. Most use a stand-in collector kind (`fake`) so that they
//! check this module's behaviour whatever the real kinds accept; the packaged files are loaded
//! with the real registry.

use super::*;
use collectors::{CollectContext, CollectError, Collector, SettingError, Snapshot};
use std::future::Future;
use std::pin::Pin;

/// A collector whose `check()` reports a missing `path` when its settings have `missing = true`.
#[derive(Debug)]
struct Fake {
    missing: bool,
}

impl Collector for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn collect<'life0, 'async_trait>(
        &'life0 self,
        _ctx: CollectContext,
    ) -> Pin<Box<dyn Future<Output = Result<Snapshot, CollectError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Err(CollectError::Other("fake".to_owned())) })
    }

    fn check(&self) -> Vec<SettingError> {
        if self.missing {
            vec![SettingError::new(Some("path"), "/nowhere does not exist")]
        } else {
            Vec::new()
        }
    }
}

/// `fake` takes `path` (a string, required), `missing` (bool); anything else is unknown.
fn fake_build(kind: &str, settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    if kind != "fake" {
        return Err(vec![SettingError::new(
            Some("kind"),
            format!("unknown collector kind {kind:?}"),
        )]);
    }
    let mut errors = Vec::new();
    for key in settings.keys() {
        if key != "path" && key != "missing" {
            errors.push(SettingError::new(
                Some(key),
                format!("unknown field `{key}`"),
            ));
        }
    }
    match settings.get("path") {
        Some(toml::Value::String(_)) => {}
        Some(_) => errors.push(SettingError::new(Some("path"), "expected a string")),
        None => errors.push(SettingError::new(None, "missing field `path`")),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let missing = settings
        .get("missing")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    Ok(Box::new(Fake { missing }))
}

fn parse_fake(text: &str, data_dir: Option<&Path>) -> Result<Config, ConfigErrors> {
    parse_with(Path::new("agent.toml"), text, data_dir, &fake_build)
}

fn ok(text: &str) -> Config {
    match parse_fake(text, None) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid configuration, got:\n{errors}"),
    }
}

/// The problems as "line:col: message".
fn problems(text: &str) -> Vec<String> {
    match parse_fake(text, None) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(errors) => errors
            .0
            .iter()
            .map(|p| format!("{}:{}: {}", p.line, p.col, p.message))
            .collect(),
    }
}

const MINIMAL: &str = r#"
host_id = "web-01"
data_dir = "/var/lib/ea"

[[collectors]]
id = "auth"
kind = "fake"
schedule = "*/15 * * * *"
path = "/var/log/auth.log"
"#;

#[test]
fn minimal_file_gets_the_defaults() {
    let config = ok(MINIMAL);
    assert_eq!(config.path, Path::new("agent.toml"));
    assert_eq!(
        config.sha256,
        <[u8; 32]>::from(Sha256::digest(MINIMAL.as_bytes()))
    );
    assert_eq!(config.host_id, "web-01");
    assert_eq!(config.data_dir, Path::new("/var/lib/ea"));
    assert_eq!(config.key_path, Path::new("/var/lib/ea/keys/host.key"));
    assert_eq!(config.max_concurrent, 4);
    assert_eq!(config.min_free_disk, 256 << 20);
    assert!(config.s3.is_none());
    let [c] = &config.collectors[..] else {
        panic!("one collector")
    };
    assert_eq!((c.id.as_str(), c.kind.as_str()), ("auth", "fake"));
    assert_eq!(c.schedule.source(), "*/15 * * * *");
    assert_eq!(c.timeout, Duration::from_secs(300));
    assert!(c.enabled);
    assert_eq!(c.collector.kind(), "fake");
}

#[test]
fn host_id_defaults_to_the_hostname() {
    let config = ok("data_dir = \"/d\"");
    assert_eq!(Some(config.host_id), hostname());
    assert!(config.collectors.is_empty());
}

#[test]
fn data_dir_override_applies_before_the_key_default() {
    let config = parse_fake(MINIMAL, Some(Path::new("/elsewhere"))).expect("valid");
    assert_eq!(config.data_dir, Path::new("/elsewhere"));
    assert_eq!(config.key_path, Path::new("/elsewhere/keys/host.key"));

    let text = "data_dir = \"/d\"\nkey_path = \"/etc/ea/host.key\"\n";
    let config = parse_fake(text, Some(Path::new("/elsewhere"))).expect("valid");
    assert_eq!(config.key_path, Path::new("/etc/ea/host.key"));

    // No data_dir in the file is fine when it is overridden.
    assert!(parse_fake("host_id = \"h\"", Some(Path::new("/x"))).is_ok());
}

#[test]
fn relative_paths_are_resolved_against_the_current_directory() {
    let config = ok("data_dir = \"./data\"\nkey_path = \"k/host.key\"");
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(config.data_dir, cwd.join("data"));
    assert_eq!(config.key_path, cwd.join("k/host.key"));
}

#[test]
fn every_setting_of_a_collector() {
    let config = ok(r#"
data_dir = "/d"
max_concurrent = 2
[[collectors]]
id = "a"
kind = "fake"
schedule = "@daily"
timeout = "1h30m"
enabled = false
path = "/x"
[[collectors]]
id = "b.2_x-y"
kind = "fake"
schedule = "0 9 * * 1-5"
path = "/y"
"#);
    assert_eq!(config.max_concurrent, 2);
    let ids: Vec<_> = config.collectors.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b.2_x-y"]);
    assert_eq!(config.collectors[0].timeout, Duration::from_secs(5400));
    assert!(!config.collectors[0].enabled);
    assert_eq!(config.collectors[1].schedule.to_string(), "0 9 * * 1-5");
}

#[test]
fn reports_every_problem_at_its_line_and_column() {
    let text = r#"host_id = "web 01"
data_dir = 7
max_concurrent = 0
colectors = []

[[collectors]]
id = "a"
kind = "fake"
schedule = "61 * * * *"
timeout = "5 minutes"
path = "/x"
pathz = "/y"

[[collectors]]
kind = "nope"
schedule = "@daily"

[[collectors]]
id = "a"
kind = "fake"
schedule = "* * * *"
enabled = "yes"

[s3]
bucket = "My_Bucket"
region = "eu-west-1"
object_lock_mode = "FOREVER"
max_concurrent = 3
"#;
    assert_eq!(
        problems(text),
        [
            "1:11: `host_id` \"web 01\" contains ' '; only letters A-Z a-z, digits, '.', '_' and '-' are allowed",
            "2:12: `data_dir` must be a string, found an integer",
            "3:18: `max_concurrent` must be between 1 and 1024, found 0",
            "4:1: unknown key `colectors` (expected one of host_id, data_dir, key_path, max_concurrent, min_free_disk_mib, log_filter, metrics_listen, [[collectors]], [s3]); did you mean `collectors`?",
            "9:12: `schedule`: minute field \"61\": 61 is out of range 0-59",
            "10:11: `timeout` \"5 minutes\": unexpected \" minutes\" after 5; use a number with a unit d, h, m, s or ms, e.g. \"30s\", \"5m\", \"1h30m\"",
            "12:1: `pathz`: unknown field `pathz`",
            "14:1: collector is missing required key `id`",
            "15:1: `kind`: unknown collector kind \"nope\"",
            "18:1: fake collector: missing field `path`",
            "19:6: duplicate collector id \"a\" (first used on line 7)",
            "21:12: `schedule`: 4 fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (seconds first), or one of @hourly, @daily, @weekly, @monthly, @yearly, @annually",
            "22:11: `enabled` must be true or false, found a string",
            "25:10: `bucket` \"My_Bucket\" may contain only lowercase letters, digits, '.' and '-'",
            "27:20: `object_lock_mode` must be \"GOVERNANCE\" or \"COMPLIANCE\", found \"FOREVER\"",
            "27:20: `object_lock_days` is required when `object_lock_mode` is set",
            "28:1: unknown key `max_concurrent` in [s3] (expected one of bucket, prefix, region, endpoint_url, force_path_style, object_lock_mode, object_lock_days); top-level keys must come before the first [table]",
        ]
    );
}

#[test]
fn display_names_the_file() {
    let errors = parse_fake("data_dir = 1\nbogus = 2\n", None).expect_err("invalid");
    assert_eq!(
        errors.to_string(),
        "agent.toml:1:12: `data_dir` must be a string, found an integer\n\
         agent.toml:2:1: unknown key `bogus` (expected one of host_id, data_dir, key_path, max_concurrent, min_free_disk_mib, log_filter, metrics_listen, [[collectors]], [s3])"
    );
}

#[test]
fn missing_keys_point_at_the_table_header() {
    let text = "data_dir = \"/d\"\n\n  [[collectors]]\npath = \"/x\"\n[s3]\nprefix = \"p\"\n";
    assert_eq!(
        problems(text),
        [
            "3:3: collector is missing required key `id`",
            "3:3: collector is missing required key `kind`",
            "3:3: collector is missing required key `schedule`",
            "5:1: [s3] is missing required key `bucket`",
        ]
    );
    assert_eq!(
        problems("host_id = \"h\"\n"),
        ["1:1: missing required key `data_dir` (or pass --data-dir)"]
    );
}

#[test]
fn collectors_written_inline_are_located_too() {
    let text = "data_dir = \"/d\"\ncollectors = [\n  { id = \"x\", kind = \"fake\", schedule = \"@hourly\", path = 3 },\n  5,\n]\n";
    assert_eq!(
        problems(text),
        [
            "3:52: `path`: expected a string",
            "4:3: each collector must be a table, found an integer"
        ]
    );
    assert_eq!(
        problems("data_dir = \"/d\"\n[collectors]\nid = \"x\"\n"),
        ["2:1: `collectors` must be an array of tables ([[collectors]]), found a table"]
    );
}

#[test]
fn syntax_errors_are_located_and_stop_the_checks() {
    let text = "data_dir = \"/d\"\nbogus = 1\nschedule = */5 * * * *\nx = \"unterminated\n";
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("3:12: "), "{found:?}");
    assert!(found[1].starts_with("4:18: "), "{found:?}");
    // A key given twice is a syntax error located at the second.
    let found = problems("data_dir = \"/d\"\ndata_dir = \"/e\"\n");
    assert_eq!(found, ["2:1: duplicate key"]);
}

#[test]
fn ids_and_host_ids_are_checked() {
    let found = problems("host_id = \"..\"\ndata_dir = \"/d\"\n[[collectors]]\nid = \"a/b\"\nkind = \"fake\"\nschedule = \"@daily\"\npath = \"/x\"\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("1:11: `host_id` \"..\" \"..\" is not allowed"),
        "{found:?}"
    );
    assert!(found[1].starts_with("4:6: `id` contains '/'"), "{found:?}");
    assert_eq!(
        problems("host_id = \"\"\ndata_dir = \"/d\"")[0],
        "1:11: `host_id` \"\" must not be empty"
    );
}

#[test]
fn timeouts() {
    let with = |t: &str| {
        format!("data_dir = \"/d\"\n[[collectors]]\nid = \"a\"\nkind = \"fake\"\nschedule = \"@daily\"\npath = \"/x\"\ntimeout = {t}\n")
    };
    assert_eq!(
        ok(&with("\"30s\"")).collectors[0].timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        problems(&with("\"0s\"")),
        ["7:11: `timeout` \"0s\": must be more than zero"]
    );
    assert_eq!(
        problems(&with("\"8d\"")),
        ["7:11: `timeout` \"8d\": must be at most 7d"]
    );
    assert_eq!(
        problems(&with("300")),
        ["7:11: `timeout` must be a string, found an integer"]
    );
}

#[test]
fn s3_settings() {
    let config = ok(r#"
data_dir = "/d"
[s3]
bucket = "evidence-prod"
prefix = "soc2/"
region = "eu-west-1"
endpoint_url = "https://s3.example.com:9000"
force_path_style = true
object_lock_mode = "COMPLIANCE"
object_lock_days = 400
"#);
    let s3 = config.s3.expect("s3");
    assert_eq!(s3.bucket, "evidence-prod");
    assert_eq!(s3.prefix, "soc2");
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        s3.endpoint_url.as_deref(),
        Some("https://s3.example.com:9000")
    );
    assert!(s3.force_path_style);
    let lock = s3.object_lock.expect("object lock");
    assert_eq!((lock.mode, lock.days), (ObjectLockMode::Compliance, 400));
    assert_eq!(lock.mode.as_str(), "COMPLIANCE");

    let s3 = ok("data_dir = \"/d\"\ns3 = { bucket = \"b12\" }")
        .s3
        .expect("s3");
    assert_eq!(
        (s3.prefix.as_str(), s3.region, s3.object_lock),
        ("", None, None)
    );

    let bad = "data_dir = \"/d\"\n[s3]\nbucket = \"ab\"\nprefix = \"/x//y\"\nendpoint_url = \"s3.example.com\"\nobject_lock_mode = \"GOVERNANCE\"\nforce_path_style = \"yes\"\n";
    assert_eq!(
        problems(bad),
        [
            "3:10: `bucket` \"ab\" must be 3 to 63 characters long",
            "4:10: `prefix` \"/x//y\" must be segments separated by single '/', without leading '/', '.' or '..'",
            "5:16: `endpoint_url` \"s3.example.com\" must start with https:// or http://",
            "6:20: `object_lock_days` is required when `object_lock_mode` is set",
            "7:20: `force_path_style` must be true or false, found a string",
        ]
    );
    assert_eq!(
        problems("data_dir = \"/d\"\n[s3]\nbucket = \"abc\"\nobject_lock_days = 0\n"),
        [
            "4:20: `object_lock_days` must be between 1 and 36500, found 0",
            "4:20: `object_lock_days` needs `object_lock_mode` (\"GOVERNANCE\" or \"COMPLIANCE\")",
        ]
    );
    let typo = problems("data_dir = \"/d\"\n[s3]\nbucket = \"abc\"\nregoin = \"x\"\n");
    assert!(typo[0].ends_with("did you mean `region`?"), "{typo:?}");
    assert_eq!(
        problems("data_dir = \"/d\"\ns3 = \"b\""),
        ["2:6: `s3` must be a table, found a string"]
    );
}

#[test]
fn check_environment_points_at_the_collectors_key() {
    let text = "data_dir = \"/d\"\n[[collectors]]\nid = \"a\"\nkind = \"fake\"\nschedule = \"@daily\"\n  path = \"/nowhere\"\nmissing = true\n[[collectors]]\nid = \"off\"\nkind = \"fake\"\nschedule = \"@daily\"\npath = \"/nowhere\"\nmissing = true\nenabled = false\n";
    let config = ok(text);
    let found: Vec<String> = config
        .check_environment()
        .iter()
        .map(Problem::to_string)
        .collect();
    assert_eq!(
        found,
        ["agent.toml:6:3: collector \"a\": `path`: /nowhere does not exist"]
    );
}

#[test]
fn files_that_cannot_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let errors = load(&missing, None).expect_err("missing file");
    let text = errors.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: cannot read the configuration: ",
            missing.display()
        )),
        "{text}"
    );

    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, b"data_dir = \"/d\"\nx = \"\xff\xfe\x00\"\n").expect("write");
    let errors = load(&binary, None).expect_err("binary file");
    assert_eq!(errors.0.len(), 1);
    assert_eq!((errors.0[0].line, errors.0[0].col), (2, 6));
    assert!(errors.0[0].message.contains("not valid UTF-8"));

    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 << 20]).expect("write");
    assert!(load(&big, None)
        .expect_err("big file")
        .to_string()
        .contains("at most"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, MINIMAL).expect("write");
    assert_eq!(parse_fake(MINIMAL, None).expect("valid").sha256, {
        let bytes = std::fs::read(&good).expect("read");
        <[u8; 32]>::from(Sha256::digest(&bytes))
    });
}

#[test]
fn garbage_never_panics() {
    let deep_arrays = format!("x = {}1{}", "[".repeat(5000), "]".repeat(5000));
    let deep_tables = format!("x = {}1{}", "{a = ".repeat(5000), "}".repeat(5000));
    let deep_dotted = format!(
        "data_dir = \"/d\"\n[[collectors]]\n{} = 1\n",
        vec!["a"; 5000].join(".")
    );
    let deep_headers = format!("[{}]\n", vec!["a"; 5000].join("."));
    let long_line = "a".repeat(100_000);
    let samples: Vec<String> = vec![
        deep_arrays,
        deep_tables,
        deep_dotted,
        deep_headers,
        long_line,
        "\u{0}\u{1}\u{2}".into(),
        "[[collectors]]\n[[collectors]]\n[collectors]\n".into(),
        "collectors = [[], {}, \"x\", 1.5, 1979-05-27]".into(),
        "data_dir = \"/d\"\n[[collectors]]\nid = 1\nkind = []\nschedule = {}\ntimeout = nan\nenabled = 1979-05-27T07:32:00Z\npath = inf\n".into(),
        "max_concurrent = 0x7fffffffffffffff\nx = 99999999999999999999999\n".into(),
        "max_concurrent = -9223372036854775808\ndata_dir = \"\"".into(),
        "[s3]\nobject_lock_days = 18446744073709551615\n".into(),
        "\u{feff}data_dir = \"/d\"".into(),
        "=\n==\n[\n]]\n\"\n'''\n".into(),
    ];
    for text in &samples {
        let _ = parse_fake(text, None);
        let _ = parse(Path::new("x.toml"), text, None);
    }
    // A deterministic stream of pseudo-random bytes, decoded lossily.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..256)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b"[]{}=\"'.,#\n abc1-_:\\"[(state % 20) as usize]
            })
            .collect();
        let _ = parse_fake(&String::from_utf8_lossy(&bytes), None);
    }
}

/// The packaged files, with the real collector kinds.
mod packaged {
    use super::*;

    const AGENT: &str = include_str!("../../../config/agent.toml");
    const LOCAL: &str = include_str!("../../../config/local.toml");

    fn summary(config: &Config) -> Vec<(&str, &str, &str, bool)> {
        config
            .collectors
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.kind.as_str(),
                    c.schedule.source(),
                    c.enabled,
                )
            })
            .collect()
    }

    #[test]
    fn agent_toml_is_valid() {
        let config = parse(Path::new("/etc/evidence-agent/agent.toml"), AGENT, None)
            .unwrap_or_else(|e| panic!("config/agent.toml:\n{e}"));
        assert_eq!(config.data_dir, Path::new("/var/lib/evidence-agent"));
        assert_eq!(
            config.key_path,
            Path::new("/var/lib/evidence-agent/keys/host.key")
        );
        assert_eq!(Some(config.host_id.clone()), hostname());
        assert_eq!(config.max_concurrent, 4);
        assert!(config.s3.is_none());
        assert_eq!(
            summary(&config),
            [
                ("accounts", "linux_accounts", "@daily", true),
                ("backup-config", "files", "0 * * * *", true),
                ("journal", "journald", "*/15 * * * *", true),
                ("auth-log", "log_file", "*/15 * * * *", false),
                ("timers", "command", "30 2 * * *", true),
            ]
        );
        let timeouts: Vec<_> = config
            .collectors
            .iter()
            .map(|c| c.timeout.as_secs())
            .collect();
        assert_eq!(timeouts, [300, 300, 300, 300, 60]);
    }

    #[test]
    fn local_toml_is_valid_and_its_paths_exist_here() {
        let config = parse(Path::new("config/local.toml"), LOCAL, None)
            .unwrap_or_else(|e| panic!("config/local.toml:\n{e}"));
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(config.data_dir, cwd.join("data"));
        assert_eq!(config.key_path, cwd.join("data/keys/host.key"));
        assert_eq!(config.max_concurrent, 4);
        assert!(config.s3.is_none());
        assert_eq!(
            summary(&config),
            [
                ("accounts", "linux_accounts", "* * * * *", true),
                ("system-files", "files", "* * * * *", true),
                ("dpkg-log", "log_file", "*/2 * * * *", true),
                ("uname", "command", "*/2 * * * *", true),
            ]
        );
        let problems = config.check_environment();
        assert!(problems.is_empty(), "{}", ConfigErrors(problems));
    }
}

/// The real kinds' complaints land on the key they name (or the table header).
#[test]
fn real_kinds_are_located_too() {
    let text = "data_dir = \"/d\"\n\n[[collectors]]\nid = \"f\"\nkind = \"files\"\nschedule = \"@daily\"\npaths = [\"/etc/hostname\"]\npathz = 1\n[[collectors]]\nid = \"l\"\nkind = \"log_file\"\nschedule = \"@daily\"\n";
    let errors = parse(Path::new("agent.toml"), text, None).expect_err("invalid");
    let found: Vec<_> = errors.0.iter().map(|p| (p.line, p.col)).collect();
    assert_eq!(found, [(8, 1), (9, 1)], "{errors}");
    assert!(
        errors.0[0]
            .message
            .starts_with("`pathz`: unknown field `pathz`"),
        "{errors}"
    );
    assert!(
        errors.0[1]
            .message
            .starts_with("log_file collector: missing field `path`"),
        "{errors}"
    );

    let text = "data_dir = \"/d\"\n[[collectors]]\nid = \"l\"\nkind = \"log_file\"\nschedule = \"@daily\"\npath = \"/nonexistent/x.log\"\n";
    let config = parse(Path::new("agent.toml"), text, None).expect("valid");
    let problems = config.check_environment();
    assert_eq!(problems.len(), 1, "{}", ConfigErrors(problems.clone()));
    assert_eq!((problems[0].line, problems[0].col), (6, 1));
    assert!(
        problems[0].message.starts_with("collector \"l\": `path`: "),
        "{}",
        problems[0]
    );
}

#[test]
fn the_disk_floor_is_in_mib_and_zero_turns_it_off() {
    let with = |line: &str| MINIMAL.replacen("\n", &format!("\n{line}\n"), 1);
    assert_eq!(ok(&with("min_free_disk_mib = 0")).min_free_disk, 0);
    assert_eq!(ok(&with("min_free_disk_mib = 1024")).min_free_disk, 1 << 30);
    let errors = problems(&with("min_free_disk_mib = -1"));
    assert!(
        errors[0].contains("`min_free_disk_mib` must be between 0 and"),
        "{errors:?}"
    );
    let errors = problems(&with("min_free_disk_mib = \"1GiB\""));
    assert!(
        errors[0].contains("`min_free_disk_mib` must be an integer"),
        "{errors:?}"
    );
}

#[test]
fn the_log_filter_defaults_to_info_and_a_bad_one_is_located() {
    let with = |line: &str| MINIMAL.replacen("\n", &format!("\n{line}\n"), 1);
    assert_eq!(ok(MINIMAL).log_filter, "info");
    let config = ok(&with("log_filter = \"warn,collectors=debug\""));
    assert_eq!(config.log_filter, "warn,collectors=debug");
    let errors = problems(&with("log_filter = \"collectors=loud\""));
    assert!(
        errors[0].contains("2:14: `log_filter` \"collectors=loud\" is not a log filter"),
        "{errors:?}"
    );
}

#[test]
fn the_metrics_listener_is_off_by_default_and_only_on_loopback() {
    let with = |line: &str| MINIMAL.replacen("\n", &format!("\n{line}\n"), 1);
    assert_eq!(ok(MINIMAL).metrics_listen, None);
    let config = ok(&with("metrics_listen = \"127.0.0.1:9187\""));
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9187".parse().unwrap())
    );
    assert!(ok(&with("metrics_listen = \"[::1]:9187\""))
        .metrics_listen
        .is_some());
    let errors = problems(&with("metrics_listen = \"0.0.0.0:9187\""));
    assert!(
        errors[0].contains("`metrics_listen` \"0.0.0.0:9187\" is not a loopback address"),
        "{errors:?}"
    );
    let errors = problems(&with("metrics_listen = \"9187\""));
    assert!(
        errors[0].contains("is not an address and port such as"),
        "{errors:?}"
    );
}
