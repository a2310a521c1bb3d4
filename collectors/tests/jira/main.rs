//! The `jira_issues` collector against a local Jira that answers in the documented shapes of
//! Jira Cloud (enhanced JQL search, changelog pages) and Jira Data Center (offset search):
//! paging, incremental runs over `updated`, rate limits, retries, broken answers, auth.

#[path = "../common/mod.rs"]
mod common;
mod server;
mod site;

mod cloud;
mod data_center;

use collectors::{CollectError, Collector, Snapshot};
use common::api_server::ApiServer;
use serde_json::Value;
use server::{Jira, BASE_JQL, EMAIL, TOKEN};
use site::Flavor;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A running test Jira with a token file for it.
pub struct Env {
    pub server: ApiServer,
    pub jira: Jira,
    pub token_file: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn start(flavor: Flavor, issues: u32) -> Env {
        let jira = Jira::new(flavor, issues);
        let server = ApiServer::start(jira.router());
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("jira-token");
        write_secret(&token_file, TOKEN, 0o600);
        Env {
            server,
            jira,
            token_file,
            dir,
        }
    }

    /// The settings of a collector of this site, plus `extra` lines.
    pub fn settings(&self, extra: &str) -> String {
        let flavor = self.jira.with(|site| site.flavor);
        let (base, identity) = match flavor {
            Flavor::Cloud => (self.server.base.clone(), format!("email = \"{EMAIL}\"\n")),
            // Without the trailing slash, as people write it.
            Flavor::DataCenter => (
                format!("{}jira", self.server.base),
                "deployment = \"data_center\"\n".to_owned(),
            ),
        };
        format!(
            "base_url = \"{base}\"\n{identity}jql = \"{BASE_JQL}\"\ntoken_file = \"{}\"\n{extra}",
            self.token_file.display()
        )
    }

    pub fn collector(&self, extra: &str) -> Box<dyn Collector> {
        common::build("jira_issues", &self.settings(extra))
    }

    pub async fn run(
        &self,
        collector: &dyn Collector,
        cursor: Option<Value>,
    ) -> Result<Snapshot, CollectError> {
        collector
            .collect(common::ctx_with_cursor(self.dir.path(), cursor))
            .await
    }
}

pub fn write_secret(path: &std::path::Path, value: &str, mode: u32) {
    std::fs::write(path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The ids of a snapshot's items, in order.
pub fn ids(snapshot: &Snapshot) -> Vec<String> {
    common::items(snapshot)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The JQL of each recorded search request (POST body on Cloud, `jql` parameter on Data
/// Center).
pub fn searched_jql(server: &ApiServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/search/jql") || r.path.ends_with("/api/2/search"))
        .map(|r| match r.method.as_str() {
            "POST" => {
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                body["jql"].as_str().unwrap().to_owned()
            }
            _ => r.param("jql").unwrap(),
        })
        .collect()
}
