//! The systemd unit as systemd itself sees it: `systemd-analyze verify` finds nothing wrong
//! with `systemd/evidence-agent.service` (its ExecStart pointed at the binary under test, its
//! `man:` documentation link at the generated man page), and `systemd-analyze security
//! --offline=true` rates its exposure 2.5 or lower. systemd-analyze comes from Debian's
//! `systemd` package, which tests/run.sh installs when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The highest exposure `systemd-analyze security` may give the unit (ARCHITECTURE.md).
const MAX_EXPOSURE: f64 = 2.5;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/evidence-agent.service")
}

fn systemd_analyze(args: &[&str], envs: &[(&str, &Path)]) -> (Output, String) {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("run systemd-analyze: {e} (tests/run.sh installs it with Debian's systemd package)")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn unit_verifies_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's program exists and runs `man` for the Documentation=
    // link: point both at what this build produced.
    let unit = std::fs::read_to_string(unit_path()).expect("read systemd/evidence-agent.service");
    let bin = env!("CARGO_BIN_EXE_evidence-agent");
    assert!(
        unit.contains("\nExecStart=/usr/bin/evidence-agent "),
        "the unit should start /usr/bin/evidence-agent:\n{unit}"
    );
    let unit = unit.replace(
        "\nExecStart=/usr/bin/evidence-agent ",
        &format!("\nExecStart={bin} "),
    );
    let path = dir.path().join("evidence-agent.service");
    std::fs::write(&path, unit).unwrap();
    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let page = Command::new(bin)
        .args(["generate", "man"])
        .output()
        .expect("run evidence-agent generate man");
    assert!(page.status.success(), "generate man failed: {page:?}");
    std::fs::write(man1.join("evidence-agent.1"), &page.stdout).unwrap();

    let (out, text) = systemd_analyze(
        &["verify", path.to_str().unwrap()],
        &[("MANPATH", &dir.path().join("man"))],
    );
    // Other units on the machine may draw warnings of their own; none may name ours.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("evidence-agent"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify complained about the unit ({}):\n{text}",
        out.status
    );
}

#[test]
fn unit_exposure_is_at_most_2_5() {
    let unit = unit_path();
    let (out, text) = systemd_analyze(&["security", "--offline=true", unit.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "systemd-analyze security failed ({}):\n{text}",
        out.status
    );
    let prefix = "Overall exposure level for evidence-agent.service: ";
    let score: f64 = text
        .lines()
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"{prefix}X.Y\" line in:\n{text}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} is above {MAX_EXPOSURE}:\n{text}"
    );
    eprintln!("systemd-analyze security --offline=true: exposure {score}");
}
