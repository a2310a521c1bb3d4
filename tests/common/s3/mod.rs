//! S3 test infrastructure for the sync tests: a real S3 API (moto's server) that survives a
//! SIGKILL, a TCP proxy that injects faults in front of it, and a plain S3 client
//! (`tests/s3_client.py`, boto3) to look at the bucket from outside the agent.
//!
//! - [`S3Server`] (`server.rs`): `python3 -m moto.server` on a free 127.0.0.1 port. moto keeps
//!   its state in memory only, so every request is recorded (moto's recorder, into a file in the
//!   server's temp directory) and [`S3Server::restart`] replays the recording into the new
//!   process. moto's random generator is seeded first (and the seed is part of the recording),
//!   so sequentially made objects get the same version ids after a restart; timestamps
//!   (LastModified) do not survive. The recorder is wrapped in a lock: moto's own writes one
//!   request as several `write`s, which concurrent uploads would interleave. Readiness is an
//!   event (werkzeug's "Running on" line on moto's stderr, or the process exiting), not a poll.
//! - [`FaultProxy`] (`proxy.rs`): a TCP proxy with per-connection faults ([`Faults`]), canned
//!   answers ([`Canned`]: IAM throttling, HTML error pages), an outage switch
//!   ([`FaultProxy::go_down`] / [`FaultProxy::come_up`]) and counters.
//! - [`host::Host`] (`host.rs`): a data directory and configuration syncing to an endpoint of
//!   the bench, and the checks of what S3 holds for it.
//! - [`s3_client`] and the typed helpers on [`S3Server`] (`client.rs`): boto3 through
//!   `tests/s3_client.py`.
//!
//! Needs `python3` with `moto[server]` (brings boto3); `tests/run.sh` installs it. Without it
//! the tests that use this module fail with a message saying so; they never pass silently.
#![allow(dead_code)] // each test crate uses a subset
#![allow(unused_imports)] // likewise for the re-exports

mod client;
mod connection;
pub mod host;
mod proxy;
mod server;

pub use client::{
    aws_env, parse_versions, require_moto, s3_client, s3_client_ok, tests_dir, ObjectVersion,
    ACCESS_KEY, REGION, SECRET_KEY,
};
pub use connection::Canned;
pub use proxy::{FaultProxy, Faults, BYTES_PER_CONNECTION, IDLE_CLOSE, REQUESTS_PER_CONNECTION};
pub use server::{free_port, S3Server};
