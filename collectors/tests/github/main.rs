//! The `github_pull_requests` collector against a local GitHub double (`server.rs`): paging,
//! the recorded item, incremental runs, an organization on GitHub Enterprise Server, rate
//! limits, retries, broken answers, authentication and settings.

#[path = "../common/mod.rs"]
mod common;
mod server;

mod faults;
mod incremental;
mod pages;
mod settings;

use collectors::{CollectContext, CollectError, Collector, Snapshot};
use common::api_server::ApiServer;
use serde_json::Value;
use server::{GitHub, TOKEN};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

/// The repository most tests use, and its id in GitHub's `/repositories/{id}` links.
pub const REPO: &str = "hello-world";
pub const REPO_ID: u64 = 1_296_269;

/// A GitHub double with its server and a token file the collector may read.
pub struct Fixture {
    pub gh: Arc<GitHub>,
    pub server: ApiServer,
    /// The API root the collector is given (`<server>/` or `<server>/api/v3/`).
    pub base_url: String,
    pub token_file: PathBuf,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// `prefix`: "" (api.github.com) or "/api/v3" (GitHub Enterprise Server).
    pub fn start(gh: Arc<GitHub>, prefix: &str) -> Fixture {
        let server = gh.start();
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("github-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let base_url = format!("{}{}", server.base, prefix.trim_start_matches('/'));
        Fixture {
            gh,
            server,
            base_url,
            token_file,
            dir,
        }
    }

    /// The usual double: `octo-org/hello-world` with merged pull requests 1..=n.
    pub fn with_merged(n: u64) -> Fixture {
        let gh = GitHub::new("");
        gh.add_repo(REPO, false, (1..=n).map(server::merged_pull).collect());
        Fixture::start(gh, "")
    }

    /// A collector of this double's API with the token file and `extra` settings.
    pub fn collector(&self, extra: &str) -> Box<dyn Collector> {
        let settings = format!(
            "base_url = {:?}\ntoken_file = {:?}\n{extra}",
            self.base_url,
            self.token_file.display().to_string()
        );
        common::build("github_pull_requests", &settings)
    }

    pub async fn run(
        &self,
        collector: &dyn Collector,
        cursor: Option<Value>,
    ) -> Result<Snapshot, CollectError> {
        let ctx: CollectContext = common::ctx_with_cursor(self.dir.path(), cursor);
        collector.collect(ctx).await
    }

    /// The numbers of the pull requests whose reviews were asked for, sorted.
    pub fn reviewed_numbers(&self) -> Vec<u64> {
        let mut numbers: Vec<u64> = self
            .server
            .requests()
            .iter()
            .filter_map(|r| {
                let rest = r.path.strip_suffix("/reviews")?;
                rest.rsplit('/').next()?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        numbers
    }
}

/// The ids of a snapshot's items, in content order.
pub fn ids(snapshot: &Snapshot) -> Vec<String> {
    common::items(snapshot)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `github:octo-org/hello-world#<n>`.
pub fn id(n: u64) -> String {
    format!("github:octo-org/{REPO}#{n}")
}
