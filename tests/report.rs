//! report.html in a real browser: a bundle exported by the real binary from a ledger with an
//! injected gap is opened in headless Chromium, which must render it without a single console
//! message (the report has no script, so any message is a blocked load, a CSP violation or an
//! injection), take a screenshot, and show the gap as a `class="gap"` element naming the
//! missing hours. A hostile ticket title must come out as text.
//!
//! Needs Debian's `chromium` at /usr/bin/chromium; tests/run.sh installs it.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use evidence_agent::keys;
use evidence_agent::ledger::{Ledger, Outcome};
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";
const HOST: &str = "report-host";
/// The hours of 2026-03-02 that left no entry: the injected gap.
const GAP_HOURS: [u32; 3] = [10, 11, 12];
const HOSTILE_TITLE: &str = "<script>alert(1)</script>";

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, 0, 0).unwrap()
}

/// An hourly `heartbeat` collector over 2026-03-02 with no entry in [`GAP_HOURS`] (one failed
/// and one skipped run besides), and a six-hourly change-ticket collector whose ticket title
/// is hostile. One append per hour, as the daemon would.
fn ledger(data: &Path) {
    let key = data.join("keys/host.key");
    keys::generate(&key, &keys::key_name(HOST)).unwrap();
    let signer = keys::load(&key, None).unwrap();
    let mut ledger = Ledger::open(&data.join("ledger.sqlite"), HOST, signer).unwrap();
    for hour in (0..24).filter(|h| !GAP_HOURS.contains(h)) {
        let outcome = match hour {
            5 => Outcome::Failed("exit status 2".into()),
            7 => Outcome::Skipped("the previous run was still going".into()),
            _ => common::ok_json(r#"{"items":[{"id":"beat","type":"status"}]}"#, None),
        };
        let mut batch = vec![common::scheduled_run(
            "heartbeat",
            "command",
            "0 * * * *",
            at(hour),
            outcome,
        )];
        if hour % 6 == 0 {
            let ticket = serde_json::json!({"items": [{
                "type": "change", "id": "PR-7", "title": HOSTILE_TITLE, "author": "eve",
            }]});
            let content = common::ok_json(ticket.to_string(), None);
            batch.push(common::scheduled_run(
                "changes",
                "github_pull_requests",
                "0 */6 * * *",
                at(hour),
                content,
            ));
        }
        ledger.append(batch).unwrap();
    }
}

/// Chromium's console messages on stderr (`--enable-logging=stderr`), e.g.
/// `[1:1:1124/001124.045439:INFO:CONSOLE:1] "Uncaught ReferenceError: …", source: …`
/// (older versions write `INFO:CONSOLE(1)`), whatever their level.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE:") || l.contains(":CONSOLE("))
        .collect()
}

fn assert_no_console_message(stderr: &str) {
    let console = console_lines(stderr);
    assert!(
        console.is_empty(),
        "report.html made console messages:\n{}",
        console.join("\n")
    );
}

/// Runs headless Chromium on `page` with `args`; returns (stdout, stderr).
fn chromium(scratch: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir_in(scratch).unwrap();
    let (out, err) = (scratch.join("chromium.out"), scratch.join("chromium.err"));
    let status = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
        ])
        .args(["--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--enable-logging=stderr", "--v=0"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        // Files, not pipes: the DOM is larger than a pipe's buffer.
        .stdout(Stdio::from(File::create(&out).unwrap()))
        .stderr(Stdio::from(File::create(&err).unwrap()))
        .status()
        .unwrap_or_else(|e| panic!("run {CHROMIUM}: {e}"));
    let (out, err) = (std::fs::read(out).unwrap(), std::fs::read(err).unwrap());
    let err = String::from_utf8_lossy(&err).into_owned();
    assert!(
        status.success(),
        "chromium {args:?} failed ({status}):\n{err}"
    );
    (String::from_utf8_lossy(&out).into_owned(), err)
}

#[test]
fn chromium_renders_the_report_with_the_gap_and_no_console_message() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test renders report.html in Debian's chromium, which \
         tests/run.sh installs (apt-get install --no-install-recommends chromium)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ledger(&data);
    let bundle = dir.path().join("bundle");
    let export = Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
        .args(["--config", "/nonexistent/agent.toml", "--data-dir"])
        .arg(&data)
        .args([
            "export",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-02",
            "--out",
        ])
        .arg(&bundle)
        .args(["--sample", "3", "--seed", "report-test"])
        .output()
        .unwrap();
    let say = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        export.status.success(),
        "export: {}{}",
        say(&export.stdout),
        say(&export.stderr)
    );
    let report = bundle.join("report.html");

    let png = dir.path().join("report.png");
    let shot = format!("--screenshot={}", png.display());
    let (_, stderr) = chromium(dir.path(), &report, &[&shot, "--window-size=1400,2000"]);
    assert_no_console_message(&stderr);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot: {e}\n{stderr}"));
    assert_eq!(bytes[..8], *b"\x89PNG\r\n\x1a\n", "not a PNG");
    let dimension = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(
        (&bytes[12..16], dimension(16), dimension(20)),
        (&b"IHDR"[..], 1400, 2000)
    );
    // A blank 1400×2000 page compresses to a few kilobytes; text, tables and a timeline do not.
    assert!(
        bytes.len() > 50_000,
        "a suspiciously small screenshot: {} bytes",
        bytes.len()
    );

    let (dom, stderr) = chromium(dir.path(), &report, &["--dump-dom"]);
    assert_no_console_message(&stderr);
    let gap = "<g class=\"gap\"><title>gap: 3 runs missing from 2026-03-02T10:00:00Z to \
               2026-03-02T12:00:00Z</title>";
    assert!(
        dom.contains(gap),
        "no gap element for hours 10–12 in the DOM:\n{dom}"
    );
    // The change-ticket collector missed its 12:00 run in the same outage.
    assert!(dom.contains("<title>gap: 1 run missing at 2026-03-02T12:00:00Z</title>"));
    assert_eq!(
        dom.matches("<g class=\"gap\">").count(),
        2,
        "those two gaps and no other"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the title as text"
    );
    assert!(!dom.contains("<script"), "no script element at all");
}

#[test]
fn console_messages_are_recognised() {
    // As Chromium 156 writes them for a page with a broken script and a blocked image.
    let stderr = "\
[1:2:1124/001123.2:WARNING:media/gpu/vaapi/vaapi_wrapper.cc:1655] drmGetDevices2() has not found any devices
[12254:12254:1124/001124.045439:INFO:CONSOLE:1] \"Uncaught ReferenceError: f is not defined\", source: file:///x.html (1)
[12403:12403:1124/001126.241581:INFO:CONSOLE:0] \"Loading the image 'http://example.invalid/x.png' violates the following Content Security Policy directive\", source: file:///x.html (0)
[9:9:0101/000000.1:ERROR:CONSOLE(3)] \"Uncaught TypeError\", source: file:///x.html (3)";
    assert_eq!(console_lines(stderr).len(), 3);
}
