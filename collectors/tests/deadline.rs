//! A run abandoned at its timeout stops its blocking work too: every kind that reads files
//! checks the run's deadline between files or blocks and gives up once it has passed.

mod common;

use collectors::CollectContext;
use std::time::{Duration, Instant};

fn past(spool: &std::path::Path) -> CollectContext {
    CollectContext {
        deadline: Instant::now().checked_sub(Duration::from_secs(1)),
        ..common::ctx(spool)
    }
}

#[tokio::test]
async fn each_blocking_kind_stops_once_the_deadline_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/app.conf"), "keep = 7\n").unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "one\ntwo\n").unwrap();

    let kinds = [
        (
            "files",
            format!("paths = [\"{}/etc/*.conf\"]", root.display()),
        ),
        ("log_file", format!("path = \"{}\"", log.display())),
        ("linux_accounts", format!("root = \"{}\"", root.display())),
    ];
    for (kind, settings) in kinds {
        let collector = common::build(kind, &settings);
        // With time left, the run succeeds …
        let ok = collector.collect(common::ctx(&spool)).await;
        assert!(ok.is_ok(), "{kind}: {:?}", ok.err());
        // … and past its deadline it stops, saying why.
        let err = collector
            .collect(past(&spool))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout passed"), "{kind}: {err}");
    }
}
