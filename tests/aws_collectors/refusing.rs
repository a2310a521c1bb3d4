//! [`RefusingProxy`]: an HTTP forwarder to moto that answers `403 AccessDenied` to the IAM
//! actions it is told to refuse, as IAM does for a principal without that permission (moto
//! itself checks permissions only with credentials it issued, which a test cannot choose).
//! One request per connection: moto answers `Connection: close`, and so does the refusal.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

const ACCESS_DENIED: &str = "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
    <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
    arn:aws:iam::123456789012:user/auditor is not authorized to perform this action</Message>\
    </Error><RequestId>REFUSINGPROXY</RequestId></ErrorResponse>";
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct RefusingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    acceptor: Option<JoinHandle<()>>,
}

impl RefusingProxy {
    /// Forwards to 127.0.0.1:`upstream`, refusing requests whose form body has
    /// `Action=<one of actions>`.
    pub fn start(upstream: u16, actions: &[&str]) -> RefusingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let needles: Arc<Vec<String>> =
            Arc::new(actions.iter().map(|a| format!("Action={a}&")).collect());
        let acceptor = {
            let (stop, refused) = (stop.clone(), refused.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let (needles, refused) = (needles.clone(), refused.clone());
                    thread::spawn(move || serve(client, upstream, &needles, &refused));
                }
            })
        };
        RefusingProxy {
            port,
            stop,
            refused,
            acceptor: Some(acceptor),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor from its blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Reads one request (head and `Content-Length` body), refuses it or forwards it and copies
/// the answer back until moto closes.
fn serve(mut client: TcpStream, upstream: u16, needles: &[String], refused: &AtomicU64) {
    let _ = client.set_read_timeout(Some(TIMEOUT));
    let Some(request) = read_request(&mut client) else {
        return;
    };
    let text = String::from_utf8_lossy(&request);
    // Form bodies end without `&`: add one so the last parameter matches too.
    let body = format!("{}&", text.split_once("\r\n\r\n").map_or("", |(_, b)| b));
    if needles.iter().any(|n| body.contains(n.as_str())) {
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{ACCESS_DENIED}",
            ACCESS_DENIED.len()
        );
        if client.write_all(response.as_bytes()).is_ok() {
            refused.fetch_add(1, Ordering::SeqCst);
        }
    } else if let Ok(mut moto) =
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], upstream)), TIMEOUT)
    {
        let _ = moto.set_read_timeout(Some(TIMEOUT));
        if moto.write_all(&request).is_ok() {
            let mut answer = Vec::new();
            let _ = moto.read_to_end(&mut answer);
            let _ = client.write_all(&answer);
        }
    }
    let _ = client.shutdown(Shutdown::Write);
    // Let the client read the answer before the socket closes.
    let mut rest = [0u8; 1024];
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = client.read(&mut rest);
}

fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(buf);
            }
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
