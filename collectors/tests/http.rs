//! The shared HTTPS client of the remote-API collectors against a real local server: Link
//! pagination, rate-limit waits, retries of 5xx, and the errors of bodies that are not JSON.

mod common;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use collectors::http::{Api, Auth, HttpClient, SecretSource};
use common::api_server::{epoch_now, ApiServer, Fault};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use url::Url;

const TOKEN: &str = "ghp_test_token_0123456789";

/// Three pages of items, linked as GitHub does; `/secure` wants the bearer token.
fn router() -> Router {
    Router::new()
        .route(
            "/items",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let mut headers = HeaderMap::new();
                if page < 3 {
                    let next = format!("</items?page={}>; rel=\"next\"", page + 1);
                    headers.insert("link", next.parse().unwrap());
                }
                (headers, Json(json!([{ "page": page }])))
            }),
        )
        .route(
            "/secure",
            get(|headers: HeaderMap| async move {
                let expected = format!("Bearer {TOKEN}");
                if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&expected) {
                    (StatusCode::OK, Json(json!({"ok": true}))).into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"message": "Bad credentials",
                                    "documentation_url": "https://docs.github.com/rest"})),
                    )
                        .into_response()
                }
            }),
        )
}

fn url(server: &ApiServer, path: &str) -> Url {
    Url::parse(&server.base).unwrap().join(path).unwrap()
}

async fn all_pages(api: &Api, first: Url) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next {
        let response = api.get(&url).await.expect("page");
        pages.push(response.body.clone());
        next = response.next_link();
    }
    pages
}

#[tokio::test]
async fn link_pagination_is_followed_to_the_last_page() {
    let server = ApiServer::start(router());
    let client = HttpClient::new(None).unwrap();
    let api = Api::new(&client, None, None);
    let pages = all_pages(&api, url(&server, "items")).await;
    assert_eq!(
        pages,
        vec![
            json!([{"page": 1}]),
            json!([{"page": 2}]),
            json!([{"page": 3}])
        ]
    );
    assert_eq!(server.requests_to("/items").len(), 3);
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_the_headers_say() {
    let server = ApiServer::start(router());
    // GitHub's primary limit (403, remaining 0, reset in epoch seconds), then a 429 with
    // Retry-After, on the second page.
    server.inject(
        Fault::json(
            403,
            r#"{"message":"API rate limit exceeded for user ID 1."}"#,
        )
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", &epoch_now().to_string())
        .on("/items"),
    );
    server.inject(
        Fault::json(429, "{}")
            .header("retry-after", "1")
            .on("/items"),
    );
    let client = HttpClient::new(None).unwrap();
    let api = Api::new(&client, None, None);
    let pages = all_pages(&api, url(&server, "items")).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(server.faults_left(), 0);
    assert_eq!(api.stats().to_json()["rate_limit_waits"], 2);
    assert_eq!(server.requests_to("/items").len(), 5);
}

#[tokio::test]
async fn a_rate_limit_past_the_deadline_fails_at_once_saying_until_when() {
    let server = ApiServer::start(router());
    let reset = epoch_now() + 3600;
    server.inject(
        Fault::json(403, r#"{"message":"API rate limit exceeded"}"#)
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", &reset.to_string()),
    );
    let client = HttpClient::new(None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let api = Api::new(&client, None, Some(deadline));
    let err = api
        .get(&url(&server, "items"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("403 Forbidden"), "{err}");
    assert!(err.contains("API rate limit exceeded"), "{err}");
    assert!(err.contains("after this run's timeout"), "{err}");
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_page_title() {
    let server = ApiServer::start(router());
    server.inject(Fault::html(502, "502 Bad Gateway"));
    server.inject(Fault::html(503, "503 Service Temporarily Unavailable"));
    let client = HttpClient::new(None).unwrap();
    let api = Api::new(&client, None, None);
    let ok = api.get(&url(&server, "items")).await.unwrap();
    assert_eq!(ok.body, json!([{"page": 1}]));
    assert_eq!(api.stats().to_json()["retries"], 2);

    for _ in 0..5 {
        server.inject(Fault::html(502, "502 Bad Gateway"));
    }
    let err = api
        .get(&url(&server, "items"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GET http://127.0.0.1:")
            && err.contains("/items: HTTP 502 Bad Gateway: an HTML page titled \"502 Bad Gateway\" (5 attempts)"),
        "{err}"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_fail_clearly() {
    let server = ApiServer::start(router());
    let client = HttpClient::new(None).unwrap();
    let api = Api::new(&client, None, None);
    server.inject(Fault::truncated_json());
    let err = api
        .get(&url(&server, "items"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 200, but the body is not valid JSON"),
        "{err}"
    );

    // A captive portal or SSO login page answering 200.
    server.inject(Fault {
        status: 200,
        ..Fault::html(200, "Sign in - Example SSO")
    });
    let err = api
        .get(&url(&server, "items"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the body is an HTML page titled \"Sign in - Example SSO\", not JSON"),
        "{err}"
    );
}

#[tokio::test]
async fn the_token_is_sent_from_a_file_and_never_shown() {
    let server = ApiServer::start(router());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = SecretSource::File(path).load().await.unwrap();
    let client = HttpClient::new(None).unwrap();

    let api = Api::new(&client, Some(Auth::Bearer(token)), None);
    let ok = api.get(&url(&server, "secure")).await.unwrap();
    assert_eq!(ok.body, json!({"ok": true}));

    let wrong = SecretSource::Env("PATH".into()).load().await.unwrap();
    let api = Api::new(&client, Some(Auth::Bearer(wrong)), None);
    let err = api
        .get(&url(&server, "secure"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("/secure: HTTP 401 Unauthorized: \"Bad credentials\""),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
    assert_eq!(server.requests_to("/secure").len(), 2, "401 is not retried");
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let err = HttpClient::new(Some(&path)).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("ca_file"));
    let missing = HttpClient::new(Some(&dir.path().join("none.pem"))).unwrap_err();
    assert!(missing.message.contains("none.pem"), "{missing}");
}
