//! The `evidence-agent` binary: parses the command line, sets up logging, and hands over to
//! the library's `cli` module. Errors end here, printed as one line with their context chain.

use clap::Parser;
use evidence_agent::cli::{self, Cli, Failed};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Everything the agent creates (ledger, spool, keys) is private to its user.
    // SAFETY: umask(2) only sets this process's file mode mask.
    unsafe { libc::umask(0o077) };
    if !matches!(cli.command, cli::Command::Run) {
        // A reading command piped into `head` should end quietly, as Unix tools do, instead of
        // failing on EPIPE. The daemon keeps Rust's default (ignored) so a closed stderr
        // cannot kill it.
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    evidence_agent::logging::init(cli.log_format);
    match cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(failed) = e.downcast_ref::<Failed>() {
                eprintln!("{failed}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
