//! `evidence-agent generate KIND` (hidden): the man page and the shell completion scripts,
//! generated from the clap definition of the command line, written to stdout.
//!
//! `packaging/build.sh` runs it to make the files the packages install, so the man page and
//! completions always describe the binary they ship with. The page is clap_mangen's rendering
//! of the top-level command (name, synopsis, global options), followed by one subsection per
//! command with its synopsis and options (clap_mangen's own subcommand list only points at
//! per-command pages we do not ship), then the files, environment and exit status sections.

use super::{Cli, DEFAULT_CONFIG};
use anyhow::Context;
use clap::{CommandFactory, ValueEnum};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;
use std::io::Write;

/// What `generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// The man page, evidence-agent(1), as roff.
    Man,
    /// Bash completion (for /usr/share/bash-completion/completions/evidence-agent).
    CompleteBash,
    /// Zsh completion (the `_evidence-agent` function file).
    CompleteZsh,
    /// Fish completion (evidence-agent.fish).
    CompleteFish,
}

/// The name the completions complete and the man page documents.
const BIN: &str = "evidence-agent";

/// Writes the generated file of this kind to `out`.
pub fn write(kind: Kind, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    match kind {
        Kind::Man => man_page(&mut bytes).context("render the man page")?,
        Kind::CompleteBash => complete(Shell::Bash, &mut bytes),
        Kind::CompleteZsh => complete(Shell::Zsh, &mut bytes),
        Kind::CompleteFish => complete(Shell::Fish, &mut bytes),
    }
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .context("write the generated file to stdout")
}

fn complete(shell: Shell, out: &mut Vec<u8>) {
    clap_complete::generate(shell, &mut visible(Cli::command()), BIN, out);
}

/// The command line as the completions should offer it. clap_complete lists hidden commands
/// too (this one among them), so the completions get a copy without them.
fn visible(cmd: clap::Command) -> clap::Command {
    let mut shown = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        shown = shown.about(about.clone());
    }
    shown
}

fn man_page(out: &mut Vec<u8>) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = Man::new(cmd.clone())
        .title(BIN.to_uppercase())
        .manual("evidence-agent manual");
    // The title comes first and keeps its preamble.
    man.render_title(out)?;
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        render(&mut buf).map(|()| out.extend_from_slice(without_preamble(&buf)))
    };
    section(&|w| man.render_name_section(w))?;
    section(&|w| man.render_synopsis_section(w))?;
    section(&|w| man.render_description_section(w))?;
    section(&|w| description().to_writer(w))?;
    section(&|w| man.render_options_section(w))?;
    section(&|w| {
        let mut heading = Roff::new();
        heading.control("SH", ["COMMANDS"]);
        heading.to_writer(w)
    })?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        section(&|w| command_section(sub, w))?;
    }
    section(&|w| files_and_environment().to_writer(w))?;
    section(&|w| man.render_version_section(w))?;
    Ok(())
}

/// One command's subsection: `.SS evidence-agent NAME`, what it does, its synopsis and its
/// options, from clap_mangen's rendering of the command on its own with the section
/// headings taken out (they would end the COMMANDS section).
fn command_section(sub: &clap::Command, w: &mut Vec<u8>) -> std::io::Result<()> {
    type Part = fn(&Man, &mut dyn Write) -> std::io::Result<()>;
    let full_name = format!("{BIN} {}", sub.get_name());
    let mut head = Roff::new();
    head.control("SS", [full_name.as_str()]);
    head.to_writer(w)?;
    let man = Man::new(sub.clone().bin_name(&full_name).disable_help_flag(true));
    let mut parts: Vec<Part> = vec![
        Man::render_description_section,
        Man::render_synopsis_section,
    ];
    if sub.get_arguments().any(|a| !a.is_hide_set()) {
        parts.push(Man::render_options_section);
    }
    for (i, part) in parts.into_iter().enumerate() {
        let mut buf = Vec::new();
        part(&man, &mut buf)?;
        if i > 0 {
            // The synopsis and the options are paragraphs of their own.
            writeln!(w, ".PP")?;
        }
        let text = String::from_utf8_lossy(without_preamble(&buf)).into_owned();
        // roff escapes text lines that start with a dot, so a line starting with ".SH" is
        // always a heading, never text.
        for line in text.lines().filter(|l| !l.starts_with(".SH")) {
            writeln!(w, "{line}")?;
        }
    }
    Ok(())
}

/// The paragraphs after the one-line description.
fn description() -> Roff {
    let mut r = Roff::new();
    for paragraph in [
        "Each run of a collector (access lists, backup configurations, change tickets, logs) \
         becomes a signed statement (Ed25519, DSSE with an in-toto Statement) appended to a local \
         append-only ledger (SQLite), whose entries form an RFC 6962 Merkle tree with a signed \
         C2SP checkpoint after every append. Failed and skipped runs are entries too, so gaps \
         are visible. With an [s3] table in the configuration the ledger is copied, write-once, \
         to S3.",
        "The packaged service runs \"evidence-agent run\" as the evidence-agent system user \
         (systemctl status evidence-agent); \"systemctl reload evidence-agent\" re-reads the \
         configuration. The other commands inspect, export and verify the evidence.",
    ] {
        r.control("PP", []);
        r.text([roman(paragraph)]);
    }
    r
}

fn files_and_environment() -> Roff {
    let mut r = Roff::new();
    let entry = |r: &mut Roff, term: &str, text: &str| {
        r.control("TP", []);
        r.text([italic(term)]);
        r.text([roman(text)]);
    };
    r.control("SH", ["FILES"]);
    entry(
        &mut r,
        DEFAULT_CONFIG,
        "The configuration (TOML); its comments document every key. Check it with \
         evidence-agent check-config.",
    );
    entry(
        &mut r,
        "/var/lib/evidence-agent/",
        "The data directory of the packaged service: the ledger, cursors and spool.",
    );
    entry(
        &mut r,
        "/var/lib/evidence-agent/keys/host.key",
        "The host's Ed25519 signing key (mode 0600), created by keygen; host.vkey beside it \
         is the verifier key to give to auditors.",
    );
    entry(
        &mut r,
        "/lib/systemd/system/evidence-agent.service",
        "The hardened systemd unit (Type=notify).",
    );
    r.control("SH", ["ENVIRONMENT"]);
    entry(
        &mut r,
        "EVIDENCE_AGENT_CONFIG",
        "The configuration file, when --config is not given.",
    );
    entry(
        &mut r,
        "RUST_LOG",
        "Log filter (e.g. info, debug, evidence_agent=debug); overrides the configuration's \
         log_filter. Logs go to standard error.",
    );
    entry(
        &mut r,
        "EVIDENCE_AGENT_LOG_FORMAT",
        "text or json, when --log-format is not given.",
    );
    entry(
        &mut r,
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "Set by systemd: run sends READY, STATUS, RELOADING, STOPPING and watchdog \
         notifications there.",
    );
    entry(
        &mut r,
        "AWS_*",
        "S3 sync and the AWS collectors take credentials from the standard AWS chain only \
         (environment, profiles, instance metadata, web identity).",
    );
    r.control("SH", ["EXIT STATUS"]);
    r.text([
        bold("0"),
        roman(" on success; "),
        bold("1"),
        roman(" when the command failed or found a problem (verify, check-config); "),
        bold("2"),
        roman(" on a usage error."),
    ]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "systemctl(1), journalctl(1), systemd.exec(5); README.md and ARCHITECTURE.md of the \
         evidence-agent sources.",
    )]);
    r
}

/// `buf` without the preamble every roff rendering starts with (the definition of the
/// apostrophe string), which the page needs only once.
fn without_preamble(buf: &[u8]) -> &[u8] {
    let mut preamble = Vec::new();
    // Rendering an empty document into memory cannot fail.
    let _ = Roff::new().to_writer(&mut preamble);
    buf.strip_prefix(preamble.as_slice()).unwrap_or(buf)
}
