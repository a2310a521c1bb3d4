//! Crash safety: `evidence-agent run` is killed with SIGKILL at random moments while it collects
//! hard, over and over. After every kill, `verify` must pass and every entry that was committed
//! before the kill (read from the database by a separate connection) must still be there,
//! byte for byte. A final graceful stop (SIGTERM) must exit 0 with the ledger still verifying.

mod common;

use common::{assert_verifies, committed};
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 50;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_evidence-agent")
}

fn write_config(dir: &Path) -> PathBuf {
    let fixtures = dir.join("etc");
    std::fs::create_dir_all(&fixtures).unwrap();
    for i in 0..20 {
        std::fs::write(
            fixtures.join(format!("backup-{i}.conf")),
            format!("repository = /srv/backup/{i}\npassword = secret-{i}\nkeep-daily = 7\n"),
        )
        .unwrap();
    }
    let config = format!(
        r#"
host_id = "crash-host"
data_dir = "{data}"
max_concurrent = 4

[[collectors]]
id = "random-blob"
kind = "command"
schedule = "*/2 * * * * *"
timeout = "20s"
argv = ["head", "-c", "1500000", "/dev/urandom"]

[[collectors]]
id = "backup-configs"
kind = "files"
schedule = "* * * * * *"
timeout = "20s"
paths = ["{etc}/*.conf"]

# In flight half of every second, so that kills land inside runs.
[[collectors]]
id = "slow-export"
kind = "command"
schedule = "* * * * * *"
timeout = "20s"
argv = ["sh", "-c", "head -c 200000 /dev/urandom; sleep 0.5"]

[[collectors]]
id = "clock-a"
kind = "command"
schedule = "* * * * * *"
argv = ["date", "+%s%N"]

[[collectors]]
id = "clock-b"
kind = "command"
schedule = "* * * * * *"
argv = ["date", "-u"]
"#,
        data = dir.join("data").display(),
        etc = fixtures.display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn start(config: &Path) -> Child {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start evidence-agent run")
}

#[test]
fn sigkill_at_random_moments_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    let ledger = data.join("ledger.sqlite");
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut before_total = 0usize;
    let mut grew = 0usize;

    for kill in 0..KILLS {
        let mut child = start(&config);
        // A random moment: anywhere from start-up to a couple of seconds of collecting.
        let delay = Duration::from_millis(rng.gen_range(50..2500));
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("agent exited by itself ({status}) before kill {kill}");
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        let before = committed(&ledger);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let after = committed(&ledger);
        assert!(
            after.len() >= before.len(),
            "kill {kill}: {} entries before, {} after",
            before.len(),
            after.len()
        );
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b, a, "kill {kill}: entry {} changed or vanished", b.0);
        }
        if after.len() > before_total {
            grew += 1;
        }
        before_total = after.len();
        assert_verifies(&data, "after a kill");
    }
    assert!(
        before_total > 100,
        "only {before_total} entries after {KILLS} kills: not heavy collection"
    );
    assert!(
        grew > KILLS / 2,
        "the ledger grew in only {grew} of {KILLS} rounds"
    );

    // Every collector kept its schedule accounted for: runs that fell in the dead time between a
    // kill and the next start are recorded as missed.
    let conn = Connection::open_with_flags(&ledger, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let missed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM entries WHERE trigger = 'missed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        missed > 0,
        "no missed runs recorded across {KILLS} restarts"
    );
    drop(conn);
    eprintln!("{KILLS} kills (seed {seed}): {before_total} entries committed, ledger grew in {grew} rounds, {missed} missed runs recorded");

    // A graceful stop commits and exits 0.
    let mut child = start(&config);
    let start_len = committed(&ledger).len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&ledger).len() < start_len + 8 && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(50));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM exit: {status}");
    assert_verifies(&data, "after the SIGTERM stop");

    // Runs cut short by a kill were recorded as failed at the next start; none is left pending.
    let conn = Connection::open_with_flags(&ledger, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let pending: i64 = conn
        .query_row("SELECT COUNT(*) FROM pending_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0, "runs left pending after a graceful stop");
    let interrupted = conn
        .prepare("SELECT envelope FROM entries WHERE status = 'failed'")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|e| {
            let envelope: serde_json::Value = serde_json::from_slice(&e.unwrap()).unwrap();
            let payload = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                envelope["payload"].as_str().unwrap(),
            )
            .unwrap();
            String::from_utf8(payload).unwrap()
        })
        .filter(|p| p.contains("stopped before the run finished"))
        .count();
    assert!(
        interrupted > 0,
        "no run was ever interrupted by {KILLS} kills during heavy collection"
    );
    eprintln!("{interrupted} interrupted runs recorded as failed at the next start");
    // Spool files of killed processes are removed at the next start; our own at stop.
    let spool = data.join("spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "spool not cleaned: {left:?}");
}
