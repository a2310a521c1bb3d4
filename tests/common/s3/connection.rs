//! One proxied connection: the faults (a drop mid-request, a `503 Slow Down`, a canned answer),
//! the plain pipe to the upstream with its request-boundary tracking, and the HTTP head parsing
//! they need.
//! Every wait here is a blocking read with a timeout.

use super::proxy::{
    ProxyShared, Registered, BYTES_PER_CONNECTION, IDLE_CLOSE, REQUESTS_PER_CONNECTION,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const SLOWDOWN_BODY: &str =
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
/// The read timeout of piped sockets: how often a pipe looks at its idle and recycle state.
const TICK: Duration = Duration::from_millis(25);

/// Reads a first part of the request, then closes without a word. Unread request bytes make
/// the kernel answer with a reset, as when a server or load balancer dies mid-request.
pub(super) fn drop_mid_request(client: &TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 16];
    let _ = (&*client).read(&mut buf);
    let _ = client.shutdown(Shutdown::Both);
}

/// Reads the request head (and its body, briefly), answers S3's `503 SlowDown` and closes.
/// Counts it once the answer is written (before the lingering close).
pub(super) fn slow_down(shared: &ProxyShared, client: &TcpStream) {
    answer(
        client,
        "503 Slow Down",
        "application/xml",
        SLOWDOWN_BODY,
        || {
            shared.slowdowns.fetch_add(1, Ordering::SeqCst);
        },
    );
}

/// Answers the request with a canned response (see [`Canned`]) and closes. Counts it once the
/// answer is written.
pub(super) fn canned(shared: &ProxyShared, client: &TcpStream, canned: Canned) {
    let (status, content_type, body) = canned.response();
    answer(client, status, content_type, body, || {
        shared.canned.fetch_add(1, Ordering::SeqCst);
    });
}

/// A response the proxy can give instead of the upstream's (see `FaultProxy::set_canned`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canned {
    /// `400 Bad Request` with IAM's (AWS query protocol) `Throttling` error document, as IAM
    /// answers when an account exceeds its request rate.
    IamThrottling,
    /// `502 Bad Gateway` with an HTML page, as a load balancer in front of a dead backend.
    HtmlBadGateway,
    /// `200 OK` with an HTML page (a captive portal, a misrouted endpoint): a malformed body.
    HtmlOk,
}

const IAM_THROTTLING_BODY: &str =
    "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
    <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>\
    <RequestId>FAULTPROXY</RequestId></ErrorResponse>";
const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
    <body><h1>Bad Gateway</h1><p>The proxy could not reach the service.</p></body></html>\n";

impl Canned {
    fn response(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Canned::IamThrottling => ("400 Bad Request", "text/xml", IAM_THROTTLING_BODY),
            Canned::HtmlBadGateway => ("502 Bad Gateway", "text/html", HTML_PAGE),
            Canned::HtmlOk => ("200 OK", "text/html", HTML_PAGE),
        }
    }
}

/// Reads the request head (and its body, briefly), writes `status` with `body` and closes;
/// `written` runs once the answer is written (before the lingering close).
fn answer(
    client: &TcpStream,
    status: &str,
    content_type: &str,
    full_body: &str,
    written: impl FnOnce(),
) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break Some(i + 4);
        }
        if Instant::now() > deadline {
            break None;
        }
        match (&*client).read(&mut chunk) {
            Ok(0) => break None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => break None,
        }
    };
    let Some(head_end) = head_end else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let head = parse_head(&buf[..head_end]);
    // A client waiting for `100 Continue` gets the final status instead (RFC 9110 §10.1.1).
    if !head.expect_continue {
        let mut body_read = (buf.len() - head_end) as u64;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut tail_bytes = buf[head_end..].to_vec();
        loop {
            let done = match head.body {
                Body::Length(n) => body_read >= n,
                // The last chunk and the trailer section end with an empty line.
                Body::Chunked => tail_bytes.ends_with(b"\r\n\r\n"),
                Body::None => true,
            };
            if done || Instant::now() > deadline {
                break;
            }
            match (&*client).read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => {
                    body_read += k as u64;
                    if matches!(head.body, Body::Chunked) {
                        tail_bytes.extend_from_slice(&chunk[..k]);
                        let keep = tail_bytes.len().saturating_sub(16);
                        tail_bytes.drain(..keep);
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
    }
    let body = if head.method == "HEAD" { "" } else { full_body };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         x-amz-request-id: FAULTPROXY\r\nConnection: close\r\n\r\n{body}",
        full_body.len()
    );
    let _ = client.set_write_timeout(Some(Duration::from_secs(2)));
    if (&*client).write_all(response.as_bytes()).is_ok() {
        written();
    }
    linger_close(client);
}

/// Closes our side, then reads what the client still sends for a moment: closing a socket
/// with unread input sends a reset, which can destroy the answer before the client reads it.
fn linger_close(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match (&*s).read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
}

enum Body {
    None,
    Length(u64),
    Chunked,
}

struct Head {
    method: String,
    body: Body,
    expect_continue: bool,
}

fn parse_head(head: &[u8]) -> Head {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let method = lines
        .next()
        .and_then(|l| l.split(' ').next())
        .unwrap_or("")
        .to_string();
    let mut body = Body::None;
    let mut expect_continue = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (
            name.trim().to_ascii_lowercase(),
            value.trim().to_ascii_lowercase(),
        );
        match name.as_str() {
            "content-length" if !matches!(body, Body::Chunked) => {
                body = value.parse().map(Body::Length).unwrap_or(Body::Chunked);
            }
            "transfer-encoding" if value.contains("chunked") => body = Body::Chunked,
            "expect" if value == "100-continue" => expect_continue = true,
            _ => {}
        }
    }
    Head {
        method,
        body,
        expect_continue,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Where the client→upstream direction is in the request stream.
enum ReqState {
    /// Between requests.
    Boundary,
    /// Reading a request head (the bytes so far).
    Head(Vec<u8>),
    /// Forwarding a body of known length (bytes left).
    Body(u64),
    /// A chunked body: request boundaries are no longer tracked on this connection.
    Opaque,
}

struct PipeState {
    client: TcpStream,
    upstream: TcpStream,
    start: Instant,
    /// Milliseconds since `start` of the last byte in either direction.
    last_activity: AtomicU64,
    /// Milliseconds since `start` of the last byte from the upstream.
    last_upstream: AtomicU64,
    /// A request was forwarded and no byte of its answer has come back yet.
    awaiting: AtomicBool,
    closed: AtomicBool,
}

impl PipeState {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

pub(super) fn pipe(shared: &Arc<ProxyShared>, reg: &Registered, client: TcpStream, recycle: bool) {
    let upstream = match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) {
        Ok(u) => u,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    reg.add(&upstream);
    shared.piped.fetch_add(1, Ordering::SeqCst);
    let state = Arc::new(PipeState {
        client,
        upstream,
        start: Instant::now(),
        last_activity: AtomicU64::new(0),
        last_upstream: AtomicU64::new(0),
        awaiting: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    let _ = state.client.set_read_timeout(Some(TICK));
    let _ = state.upstream.set_read_timeout(Some(TICK));

    // upstream → client: a plain copy.
    let down = {
        let st = state.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !st.closed.load(Ordering::SeqCst) {
                match (&st.upstream).read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => {
                        st.awaiting.store(false, Ordering::SeqCst);
                        let now = st.now();
                        st.last_activity.store(now, Ordering::SeqCst);
                        st.last_upstream.store(now, Ordering::SeqCst);
                        if (&st.client).write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            st.close();
        })
    };

    // client → upstream, tracking request boundaries.
    let mut req = ReqState::Boundary;
    let mut requests = 0u64;
    let mut from_client = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let over_limit = |requests: u64, bytes: u64| {
        recycle && (requests >= REQUESTS_PER_CONNECTION || bytes >= BYTES_PER_CONNECTION)
    };
    loop {
        if state.closed.load(Ordering::SeqCst) {
            break;
        }
        let k = match (&state.client).read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if is_timeout(&e) => {
                let at_boundary = matches!(req, ReqState::Boundary | ReqState::Opaque);
                let waiting = state.awaiting.load(Ordering::SeqCst);
                let now = state.now();
                let idle = now.saturating_sub(state.last_activity.load(Ordering::SeqCst));
                let quiet = now.saturating_sub(state.last_upstream.load(Ordering::SeqCst));
                if at_boundary && !waiting && idle >= IDLE_CLOSE.as_millis() as u64 {
                    break;
                }
                if matches!(req, ReqState::Boundary)
                    && !waiting
                    && quiet >= 100
                    && over_limit(requests, from_client)
                {
                    shared.recycled.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        state.last_activity.store(state.now(), Ordering::SeqCst);
        let data = &buf[..k];
        if matches!(req, ReqState::Boundary) && over_limit(requests, from_client) {
            // The client starts another request on a connection due to be recycled: cut it.
            shared.recycled.fetch_add(1, Ordering::SeqCst);
            break;
        }
        from_client += k as u64;
        // Advance the request tracker over `data`.
        let mut i = 0;
        while i < data.len() {
            match &mut req {
                ReqState::Opaque => break,
                ReqState::Boundary => req = ReqState::Head(Vec::new()),
                ReqState::Head(h) => {
                    let before = h.len();
                    h.extend_from_slice(&data[i..]);
                    match find(h, b"\r\n\r\n") {
                        Some(end) => {
                            let end = end + 4;
                            i += end - before;
                            let head = parse_head(&h[..end]);
                            state.awaiting.store(true, Ordering::SeqCst);
                            req = match head.body {
                                Body::None | Body::Length(0) => {
                                    requests += 1;
                                    ReqState::Boundary
                                }
                                Body::Length(n) => ReqState::Body(n),
                                Body::Chunked => ReqState::Opaque,
                            };
                        }
                        None => i = data.len(),
                    }
                }
                ReqState::Body(left) => {
                    let take = (*left).min((data.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        requests += 1;
                        req = ReqState::Boundary;
                    }
                }
            }
        }
        if (&state.upstream).write_all(data).is_err() {
            break;
        }
    }
    state.close();
    let _ = down.join();
}
