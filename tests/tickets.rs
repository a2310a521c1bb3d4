//! Change tickets end to end with the real binary: a `gitlab_merge_requests` collector against a
//! fake GitLab on 127.0.0.1 (the collectors' own test double, answering in GitLab's documented
//! shapes), run by `evidence-agent collect` three times - complete, failed behind a broken
//! proxy, incremental - then exported as a bundle whose ticket population counts each merge
//! request once, with its latest state, and verified.

// serde_json's json! recurses once per field; GitLab's merge request object has many.
#![recursion_limit = "256"]

mod common;

#[path = "../collectors/tests/common/api_server.rs"]
mod api_server;
#[path = "../collectors/tests/gitlab_merge_requests/fake.rs"]
mod fake;

use api_server::{ApiServer, Fault};
use chrono::{Duration, Utc};
use fake::{merged, Project, State, TOKEN};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

fn agent(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run evidence-agent")
}

/// Every entry of the `mrs` collector as `log --json` prints it.
fn entries(config: &Path) -> Vec<Value> {
    let out = agent(config, &["log", "--json", "--collector", "mrs"]);
    assert!(out.status.success(), "{}", common::output_text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// population.csv as one map per row, keyed by column name.
fn population(bundle: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(bundle.join("population.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            header
                .iter()
                .zip(row.iter())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[test]
fn merge_requests_are_collected_incrementally_and_exported_once_each() {
    let project = Project {
        id: 11,
        path: "acme/payments/api".to_owned(),
    };
    let state = Arc::new(Mutex::new(State {
        projects: vec![project.clone()],
        mrs: (1..=12).map(|n| merged(&project, n)).collect(),
        ..State::default()
    }));
    let server = ApiServer::start(fake::router(Arc::clone(&state), ""));

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("gitlab-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("agent.toml");
    // A yearly schedule: the manual runs of this test leave no scheduled run missing, so the
    // bundle has no coverage gap to report.
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nhost_id = \"ci-runner\"\n\n[[collectors]]\nid = \"mrs\"\n\
             kind = \"gitlab_merge_requests\"\nschedule = \"0 0 1 1 *\"\ntimeout = \"2m\"\n\
             base_url = {base:?}\nprojects = [\"acme/payments/api\"]\ntoken_file = {token:?}\n\
             page_size = 5\n",
            data = dir.path().join("data"),
            base = server.base,
            token = token_file,
        ),
    )
    .unwrap();

    // 1. Everything: 12 merge requests over three pages.
    let out = agent(&config, &["collect"]);
    assert!(out.status.success(), "{}", common::output_text(&out));

    // 2. Two merge requests change and one is added, but a proxy in front of GitLab answers
    //    with its error page for good: a failed entry, and the cursor stays where it was.
    {
        let mut s = state.lock().unwrap();
        let later = Utc::now() - Duration::minutes(5);
        for mr in s.mrs.iter_mut().filter(|mr| mr.iid == 3 || mr.iid == 8) {
            mr.title = format!("{} (reverted and redone)", mr.title);
            mr.updated_at = later;
        }
        let mut added = merged(&project, 13);
        added.updated_at = later;
        s.mrs.push(added);
    }
    for _ in 0..5 {
        server.inject(Fault::html(502, "502 Bad Gateway"));
    }
    let _ = agent(&config, &["collect"]);

    // 3. The proxy is mended: exactly the three changed merge requests.
    let out = agent(&config, &["collect"]);
    assert!(out.status.success(), "{}", common::output_text(&out));

    let runs = entries(&config);
    let predicate = |i: usize| &runs[i]["statement"]["predicate"];
    let statuses: Vec<&str> = (0..3)
        .map(|i| predicate(i)["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "failed", "ok"]);
    assert_eq!(predicate(0)["item_count"], 12);
    assert_eq!(predicate(2)["item_count"], 3);
    let error = predicate(1)["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 502 Bad Gateway: an HTML page titled \"502 Bad Gateway\""),
        "{error}"
    );
    assert!(!error.contains(TOKEN), "{error}");

    // The bundle of today: thirteen tickets, the edited ones with their new title and seen by
    // two entries; and it verifies.
    let bundle = dir.path().join("bundle");
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let out = agent(
        &config,
        &[
            "export",
            "--from",
            &today,
            "--to",
            &today,
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", common::output_text(&out));
    let rows = population(&bundle);
    assert_eq!(rows.len(), 13, "{rows:#?}");
    assert!(rows.iter().all(|r| r["population"] == "tickets"));
    let row = |ticket: &str| {
        rows.iter()
            .find(|r| r["ticket"] == ticket)
            .unwrap_or_else(|| panic!("{ticket} in the population"))
    };
    let redone = row("gitlab:acme/payments/api!3");
    assert!(
        redone["title"].ends_with("(reverted and redone)"),
        "{redone:?}"
    );
    assert_ne!(redone["first_entry"], redone["last_entry"]);
    assert_eq!(redone["approvers"], "alice");
    let untouched = row("gitlab:acme/payments/api!4");
    assert_eq!(untouched["first_entry"], untouched["last_entry"]);
    assert_eq!(untouched["approvers"], "alice;bob");
    assert!(!untouched["closed_at"].is_empty());

    let vkey = dir.path().join("data/keys/host.vkey");
    let out = agent(
        &config,
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--vkey",
            vkey.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", common::output_text(&out));
}
