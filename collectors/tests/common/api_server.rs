//! [`ApiServer`]: a real HTTP server on 127.0.0.1 for the tests of the remote-API collectors.
//!
//! Each test file gives it an axum `Router` that answers in the vendor's documented shape
//! (fields, pagination, headers). In front of that router the server records every request
//! ([`Seen`]) and can be told to answer the next matching requests with a [`Fault`] instead: a
//! rate limit with its headers, a 5xx HTML page, a body that is not JSON, an auth failure.
//!
//! The server runs on its own thread and runtime, so it keeps answering whatever the test's
//! runtime is doing, and stops when the `ApiServer` is dropped.
#![allow(dead_code)] // each test crate uses a different subset

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    /// Every header, names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// An answer given instead of the router's, to the next request whose path starts with
/// `path_prefix` (any request when `None`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub path_prefix: Option<String>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Fault {
    /// A JSON answer with `status`.
    pub fn json(status: u16, body: &str) -> Fault {
        Fault {
            path_prefix: None,
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_owned(),
        }
    }

    /// An HTML error page, as a proxy or load balancer in front of the API serves.
    pub fn html(status: u16, title: &str) -> Fault {
        Fault {
            path_prefix: None,
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: format!(
                "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\
                 <body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>\n"
            ),
        }
    }

    /// A 200 whose body is cut off in the middle of the JSON.
    pub fn truncated_json() -> Fault {
        Fault::json(200, "{\"items\": [{\"id\": 1, \"title\": \"tr")
    }

    /// Also send this header.
    pub fn header(mut self, name: &str, value: &str) -> Fault {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Only for requests whose path starts with `prefix`.
    pub fn on(mut self, prefix: &str) -> Fault {
        self.path_prefix = Some(prefix.to_owned());
        self
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Seen>>,
    faults: Mutex<VecDeque<Fault>>,
}

/// A running server; see the module docs.
pub struct ApiServer {
    /// `http://127.0.0.1:<port>/`
    pub base: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Serve `router` (with fault injection and recording in front) on a free local port.
    pub fn start(router: Router) -> ApiServer {
        let shared = Arc::new(Shared::default());
        let in_front = Arc::clone(&shared);
        let app = router.layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let shared = Arc::clone(&in_front);
                async move { intercept(shared, request, next).await }
            },
        ));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        ApiServer {
            base: format!("http://127.0.0.1:{port}/"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Answer a coming request with `fault` (faults are used in the order given).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push_back(fault);
    }

    /// Faults injected but not yet used.
    pub fn faults_left(&self) -> usize {
        self.shared.faults.lock().unwrap().len()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Forget the requests recorded so far (between two runs of a test).
    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn intercept(shared: Arc<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    shared.requests.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: bytes.to_vec(),
    });
    let fault = {
        let mut faults = shared.faults.lock().unwrap();
        let at = faults.iter().position(|f| {
            f.path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
        });
        at.and_then(|i| faults.remove(i))
    };
    match fault {
        Some(fault) => fault_response(&fault),
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

fn fault_response(fault: &Fault) -> Response {
    let mut response = Response::new(Body::from(fault.body.clone()));
    *response.status_mut() = StatusCode::from_u16(fault.status).expect("a valid status");
    for (name, value) in &fault.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
            HeaderValue::from_str(value).expect("a valid header value"),
        );
    }
    response
}

/// Seconds since the Unix epoch, for rate-limit reset headers.
pub fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
