//! The service manager's notification protocol (sd_notify(3)): `READY=1` once the ledger is
//! open and the schedule loaded, `RELOADING=1` and `STOPPING=1` around reloads and shutdown,
//! `STATUS=` lines for `systemctl status`, and `WATCHDOG=1` keep-alives.
//!
//! Messages are datagrams to the `AF_UNIX` socket named by `NOTIFY_SOCKET` (a path, or an
//! abstract name written with a leading `@`). Without it, outside systemd, nothing is sent.
//! The variables are taken out of the environment at start so that the programs collectors run
//! cannot speak for the agent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, if anywhere.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Read (and remove) `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. Call this before
    /// any other thread starts: it changes the process environment.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let watchdog_usec = std::env::var("WATCHDOG_USEC").ok();
        let watchdog_pid = std::env::var("WATCHDOG_PID").ok();
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(name);
        }
        let target = socket.and_then(|name| match open(&name) {
            Ok(target) => Some(target),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET={name:?} cannot be used: {e}; not notifying");
                None
            }
        });
        // The watchdog is ours unless it names another process (a wrapper's).
        let ours = watchdog_pid.is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = watchdog_usec
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// Whether anything listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`: half the manager's timeout, as sd_watchdog_enabled(3)
    /// advises. `None` when no watchdog is set.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled()).map(|w| w / 2)
    }

    /// Send `state`, newline-separated `KEY=VALUE` assignments, without waiting. A failure is
    /// logged and otherwise ignored: the agent's work does not depend on the service manager
    /// hearing it. A lost state change (READY, RELOADING, STOPPING) leaves the unit waiting for
    /// its timeout, so that is a warning; a lost keep-alive or status line is not.
    pub fn notify(&self, state: &str) {
        let Some((socket, address)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), address) {
            let (socket, first) = (address_name(address), state.lines().next().unwrap_or(""));
            if state.starts_with("WATCHDOG=") || state.starts_with("STATUS=") {
                tracing::debug!("cannot send {first} to NOTIFY_SOCKET {socket}: {e}");
            } else {
                tracing::warn!("cannot send {first} to NOTIFY_SOCKET {socket}: {e}");
            }
        }
    }

    pub fn status(&self, line: &str) {
        // A newline would start another assignment.
        self.notify(&format!("STATUS={}", line.replace('\n', " ")));
    }

    /// `RELOADING=1`, with the monotonic time that a `Type=notify-reload` unit (systemd 253 and
    /// later) requires; under the packaged `Type=notify` unit it only shows as "reloading".
    pub fn reloading(&self) {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec to the valid pointer it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

fn address_name(address: &SocketAddr) -> String {
    use std::os::linux::net::SocketAddrExt;
    match (address.as_pathname(), address.as_abstract_name()) {
        (Some(path), _) => path.display().to_string(),
        (None, Some(name)) => format!("@{}", String::from_utf8_lossy(name)),
        (None, None) => "(unnamed)".into(),
    }
}

fn open(name: &std::ffi::OsStr) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    let address = match bytes.strip_prefix(b"@") {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name)?
        }
        None if bytes.starts_with(b"/") => SocketAddr::from_pathname(name)?,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither an absolute path nor an abstract name (@…)",
            ))
        }
    };
    let socket = UnixDatagram::unbound()?;
    // A manager that does not read must not stall an async worker: a full queue drops the
    // message instead.
    socket.set_nonblocking(true)?;
    Ok((socket, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            target: Some(open(path.as_os_str()).unwrap()),
            watchdog: Some(Duration::from_secs(60)),
        };
        notifier.notify("READY=1");
        notifier.status("two\nlines");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=two lines");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_relative_socket_name_is_refused_and_no_socket_means_silence() {
        assert!(open(std::ffi::OsStr::new("notify")).is_err());
        let silent = Notifier::default();
        silent.notify("READY=1");
        assert!(!silent.enabled());
        assert_eq!(silent.watchdog_interval(), None);
    }
}
