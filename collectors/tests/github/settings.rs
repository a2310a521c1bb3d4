//! Settings that cannot work are refused when the collector is built, naming the key.

use crate::common::table;

fn errors(settings: &str) -> Vec<(Option<String>, String)> {
    match collectors::registry::build("github_pull_requests", &table(settings)) {
        Ok(_) => panic!("accepted: {settings}"),
        Err(errors) => errors.into_iter().map(|e| (e.key, e.message)).collect(),
    }
}

fn keys(settings: &str) -> Vec<String> {
    errors(settings)
        .into_iter()
        .map(|(key, message)| key.unwrap_or_else(|| format!("(none: {message})")))
        .collect()
}

#[test]
fn each_unworkable_setting_is_named() {
    let token = "token_env = \"GITHUB_TOKEN\"\n";
    // No scope at all.
    assert_eq!(keys(token), ["repos"]);
    // Both places for the token.
    assert_eq!(
        keys("repos = [\"o/r\"]\ntoken_env = \"T\"\ntoken_file = \"/etc/t\""),
        ["token_file"]
    );
    // Neither: the message names both keys.
    let none = errors("repos = [\"o/r\"]");
    assert!(
        none[0].1.contains("`token_env`") && none[0].1.contains("`token_file`"),
        "{none:?}"
    );
    for (bad, key) in [
        ("base_url = \"api.github.com\"", "base_url"),
        ("base_url = \"ftp://github.example.com/\"", "base_url"),
        (
            "base_url = \"https://user:pw@github.example.com/\"",
            "base_url",
        ),
        ("page_size = 0", "page_size"),
        ("page_size = 101", "page_size"),
        ("since = \"last tuesday\"", "since"),
        ("since = 5", "since"),
        ("ticket_pattern = \"([A-Z\"", "ticket_pattern"),
        ("base_branches = [\"\"]", "base_branches"),
        ("org = \"octo org\"", "org"),
        ("ca_file = \"/nonexistent/ca.pem\"", "ca_file"),
        ("colour = \"blue\"", "colour"),
    ] {
        assert_eq!(
            keys(&format!("repos = [\"o/r\"]\n{token}{bad}")),
            [key],
            "{bad}"
        );
    }
    for repo in ["octo", "o/r/x", "o/..", "o/r?x=1"] {
        assert_eq!(
            keys(&format!("repos = [{repo:?}]\n{token}")),
            ["repos"],
            "{repo}"
        );
    }
    assert_eq!(
        keys(&format!("repos = [\"o/r\", \"O/R\"]\n{token}")),
        ["repos"],
        "the same repository twice"
    );
}

#[test]
fn a_minimal_configuration_is_accepted() {
    for settings in [
        "org = \"octo-org\"\ntoken_env = \"GITHUB_TOKEN\"",
        "repos = [\"octo-org/hello-world\"]\ntoken_file = \"/etc/evidence-agent/github-token\"\n\
         base_url = \"https://github.example.com/api/v3\"\nsince = \"2026-01-01\"",
    ] {
        let collector = collectors::registry::build("github_pull_requests", &table(settings))
            .unwrap_or_else(|e| panic!("{settings}: {e:?}"));
        assert_eq!(collector.kind(), "github_pull_requests");
    }
}
