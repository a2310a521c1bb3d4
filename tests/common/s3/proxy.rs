//! [`FaultProxy`]: a TCP proxy in front of the S3 server, with [`Faults`], an outage switch and
//! counters. What happens on one connection is in `connection.rs`.

use super::connection::{canned, drop_mid_request, pipe, slow_down, Canned};
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Faults per new connection (connections are numbered from 1 over the proxy's life; a
/// connection whose number is a multiple of both is dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every n-th connection: read part of the request, then close without answering.
    pub drop_every: Option<u32>,
    /// Every m-th connection: read the request, answer `503 Slow Down` (S3's throttling error).
    pub slowdown_every: Option<u32>,
}

impl Faults {
    /// No faults: the proxy is a plain pipe.
    pub fn none() -> Faults {
        Faults::default()
    }

    fn any(&self) -> bool {
        self.drop_every.is_some() || self.slowdown_every.is_some()
    }
}

/// While faults are set, a piped connection is closed at a request boundary once it has carried
/// this many requests or bytes from the client, so clients that keep connections alive still
/// open new ones (and meet the faults) all through a long sync. Requests are never cut in half
/// by this; only a request the client starts on a connection being closed is lost (a dropped
/// connection, which clients retry).
///
/// (moto itself answers every request with `Connection: close`, so against moto each request is
/// a new connection anyway and this only matters for keep-alive upstreams.)
pub const REQUESTS_PER_CONNECTION: u64 = 4;
pub const BYTES_PER_CONNECTION: u64 = 64 * 1024;
/// A piped connection with no traffic for this long (and no request waiting for its response)
/// is closed, with or without faults.
pub const IDLE_CLOSE: Duration = Duration::from_secs(2);

/// How long `go_down` may take to connect to its own listener to wake the acceptor.
const WAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct ProxyShared {
    pub(super) upstream: SocketAddr,
    faults: Mutex<Faults>,
    pub(super) down: AtomicBool,
    /// Every open socket (both sides), to close them all in `go_down`.
    open: Mutex<HashMap<u64, Vec<TcpStream>>>,
    next_socket_set: AtomicU64,
    /// Connections accepted so far; `connected` is notified at each increment.
    connections: Mutex<u64>,
    connected: Condvar,
    pub(super) dropped: AtomicU64,
    pub(super) slowdowns: AtomicU64,
    /// Every n-th connection answered with a canned response instead (`set_canned`).
    canned_every: Mutex<Option<(u32, Canned)>>,
    pub(super) canned: AtomicU64,
    pub(super) recycled: AtomicU64,
    pub(super) piped: AtomicU64,
    /// Connections numbered from this one on are held (see `hold_from`); `released` is
    /// notified when the hold is lifted.
    hold_from: Mutex<Option<u64>>,
    released: Condvar,
}

/// A TCP proxy on 127.0.0.1 in front of `127.0.0.1:upstream_port`, injecting [`Faults`].
/// Runs on its own threads (one acceptor, one or two per connection); dropping it closes all.
pub struct FaultProxy {
    shared: Arc<ProxyShared>,
    port: u16,
    /// The thread owning the listening socket and blocked in `accept`; None while down.
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("FaultProxy: bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("FaultProxy: local address")
            .port();
        let shared = Arc::new(ProxyShared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            faults: Mutex::new(faults),
            down: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            next_socket_set: AtomicU64::new(0),
            connections: Mutex::new(0),
            connected: Condvar::new(),
            dropped: AtomicU64::new(0),
            slowdowns: AtomicU64::new(0),
            canned_every: Mutex::new(None),
            canned: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            piped: AtomicU64::new(0),
            hold_from: Mutex::new(None),
            released: Condvar::new(),
        });
        let acceptor = spawn_acceptor(shared.clone(), listener, port);
        FaultProxy {
            shared,
            port,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Applies to connections accepted from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn faults(&self) -> Faults {
        *self.shared.faults.lock().unwrap()
    }

    /// Closes the listening socket and every open connection: new connections are refused
    /// (ECONNREFUSED) until [`FaultProxy::come_up`]. Returns once that holds.
    pub fn go_down(&self) {
        let mut acceptor = self.acceptor.lock().unwrap();
        self.shared.down.store(true, Ordering::SeqCst);
        {
            // Under the hold's lock, so that no held connection misses the wake-up.
            let _hold = self.shared.hold_from.lock().unwrap();
            self.shared.released.notify_all();
        }
        if let Some(thread) = acceptor.take() {
            // Wake the acceptor from its blocking `accept`: it sees `down`, and returns, which
            // closes the listening socket (and drops whatever it accepted after `down` was set).
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            match TcpStream::connect_timeout(&addr, WAKE_TIMEOUT) {
                Ok(wake) => {
                    let _ = thread.join();
                    drop(wake);
                }
                // Cannot happen while the acceptor listens; never panic while unwinding.
                Err(e) if !thread::panicking() => panic!(
                    "FaultProxy::go_down: cannot wake the acceptor on port {}: {e}",
                    self.port
                ),
                Err(_) => {}
            }
        }
        for socks in self.shared.open.lock().unwrap().values() {
            for s in socks {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Listens again on the same port.
    pub fn come_up(&self) {
        let mut acceptor = self.acceptor.lock().unwrap();
        if acceptor.is_some() {
            return;
        }
        // std sets SO_REUSEADDR: the closed connections' TIME_WAIT does not hold the port.
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("FaultProxy::come_up: bind 127.0.0.1:{}: {e}", self.port));
        self.shared.down.store(false, Ordering::SeqCst);
        *acceptor = Some(spawn_acceptor(self.shared.clone(), listener, self.port));
    }

    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        *self.shared.connections.lock().unwrap()
    }

    /// Blocks until [`FaultProxy::connections`] is at least `n`; false when `timeout` passes
    /// first.
    pub fn wait_for_connections(&self, n: u64, timeout: Duration) -> bool {
        let count = self.shared.connections.lock().unwrap();
        let (count, _) = self
            .shared
            .connected
            .wait_timeout_while(count, timeout, |c| *c < n)
            .unwrap();
        *count >= n
    }

    /// Connections being served now (piped, held, or answered and not yet closed).
    pub fn open_connections(&self) -> usize {
        self.shared.open.lock().unwrap().len()
    }

    /// Connections closed mid-request by `drop_every`.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// `503 Slow Down` answers sent by `slowdown_every`.
    pub fn slowdowns(&self) -> u64 {
        self.shared.slowdowns.load(Ordering::SeqCst)
    }

    /// Connections piped to the upstream.
    pub fn piped(&self) -> u64 {
        self.shared.piped.load(Ordering::SeqCst)
    }

    /// From now on, answer every `every`-th new connection (by the same numbering as
    /// [`Faults`], which take precedence) with `answer` instead of piping it; None: stop.
    pub fn set_canned(&self, canned: Option<(u32, Canned)>) {
        *self.shared.canned_every.lock().unwrap() = canned;
    }

    /// Canned answers sent (see [`FaultProxy::set_canned`]).
    pub fn canned(&self) -> u64 {
        self.shared.canned.load(Ordering::SeqCst)
    }

    /// From now on, connection `n` (by the numbering of [`Faults`]) and every later one is
    /// accepted and then held: its request is never forwarded and never answered, until
    /// [`FaultProxy::release_held`] closes it. So a test knows that exactly `n - 1` requests
    /// could reach the upstream when it acts, say kills the client mid-upload.
    pub fn hold_from(&self, n: u64) {
        *self.shared.hold_from.lock().unwrap() = Some(n);
    }

    /// Lift [`FaultProxy::hold_from`]: held connections are closed unanswered (their requests
    /// never reach the upstream); new ones are piped again.
    pub fn release_held(&self) {
        *self.shared.hold_from.lock().unwrap() = None;
        self.shared.released.notify_all();
    }

    /// Piped connections the proxy closed at a request boundary (see [`REQUESTS_PER_CONNECTION`]).
    pub fn recycled(&self) -> u64 {
        self.shared.recycled.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.go_down();
    }
}

fn spawn_acceptor(shared: Arc<ProxyShared>, listener: TcpListener, port: u16) -> JoinHandle<()> {
    thread::Builder::new()
        .name(format!("fault-proxy-{port}"))
        .spawn(move || accept_loop(shared, listener))
        .expect("FaultProxy: spawn the acceptor thread")
}

/// Accepts (blocking) until `down` is set; returning drops the listener.
fn accept_loop(shared: Arc<ProxyShared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.down.load(Ordering::SeqCst) {
            return; // `go_down`'s wake-up call, or a client arriving as the proxy goes down
        }
        // An error is about one connection (aborted before it was accepted): go on.
        let Ok((client, _)) = accepted else {
            continue;
        };
        let n = {
            let mut count = shared.connections.lock().unwrap();
            *count += 1;
            shared.connected.notify_all();
            *count
        };
        let s = shared.clone();
        // Out of threads: `client` is dropped, the client sees a closed connection.
        let _ = thread::Builder::new()
            .name(format!("fault-proxy-conn-{n}"))
            .spawn(move || handle(s, client, n));
    }
}

/// Registers sockets for `go_down`; unregistered on drop.
pub(super) struct Registered {
    shared: Arc<ProxyShared>,
    id: u64,
}

impl Registered {
    fn new(shared: &Arc<ProxyShared>, socks: &[&TcpStream]) -> Option<Registered> {
        let id = shared.next_socket_set.fetch_add(1, Ordering::SeqCst);
        let clones = socks.iter().filter_map(|s| s.try_clone().ok()).collect();
        shared.open.lock().unwrap().insert(id, clones);
        let reg = Registered {
            shared: shared.clone(),
            id,
        };
        // `go_down` sets `down` before closing what is registered: whoever registers after the
        // sweep sees it here.
        if shared.down.load(Ordering::SeqCst) {
            for s in socks {
                let _ = s.shutdown(Shutdown::Both);
            }
            return None;
        }
        Some(reg)
    }

    pub(super) fn add(&self, sock: &TcpStream) {
        if let Ok(c) = sock.try_clone() {
            if let Some(v) = self.shared.open.lock().unwrap().get_mut(&self.id) {
                v.push(c);
            }
        }
        if self.shared.down.load(Ordering::SeqCst) {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.open.lock().unwrap().remove(&self.id);
    }
}

fn handle(shared: Arc<ProxyShared>, client: TcpStream, n: u64) {
    let _ = client.set_nodelay(true);
    let Some(reg) = Registered::new(&shared, &[&client]) else {
        return;
    };
    if held(&shared, n) {
        return; // closed unanswered: `client` and `reg` are dropped
    }
    let faults = *shared.faults.lock().unwrap();
    let every = |k: Option<u32>| matches!(k, Some(k) if k > 0 && n % u64::from(k) == 0);
    if every(faults.drop_every) {
        drop_mid_request(&client);
        shared.dropped.fetch_add(1, Ordering::SeqCst);
    } else if every(faults.slowdown_every) {
        slow_down(&shared, &client);
    } else if let Some(answer) = canned_answer(&shared, n) {
        canned(&shared, &client, answer);
    } else {
        pipe(&shared, &reg, client, faults.any());
    }
}

/// Whether connection `n` falls under `hold_from`; if so, blocks until the hold is lifted or
/// the proxy goes down.
fn held(shared: &ProxyShared, n: u64) -> bool {
    let hold = shared.hold_from.lock().unwrap();
    if !hold.is_some_and(|from| n >= from) {
        return false;
    }
    let _released = shared
        .released
        .wait_while(hold, |h| {
            h.is_some_and(|from| n >= from) && !shared.down.load(Ordering::SeqCst)
        })
        .unwrap();
    true
}

/// The canned answer connection `n` gets, if any.
fn canned_answer(shared: &ProxyShared, n: u64) -> Option<Canned> {
    match *shared.canned_every.lock().unwrap() {
        Some((every, answer)) if every > 0 && n % u64::from(every) == 0 => Some(answer),
        _ => None,
    }
}
