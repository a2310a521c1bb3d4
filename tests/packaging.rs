//! The packages, installed for real: `packaging/build.sh` packages the binary under test, and
//! one test installs the .deb with dpkg on this machine (as root), checks every file, owner and
//! mode, the system user, the state directory and the host key, runs the installed agent, then
//! removes, purges and reinstalls it and checks that the ledger and the key outlive all of it.
//! The .rpm's file list, modes and owners are read back with `rpm -qp`. The other tests check
//! what `evidence-agent generate` writes: the man page (rendered by `man`), the completions
//! (the bash one run by bash) and the error for an unknown kind.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PACKAGE: &str = "evidence-agent";
const USER: &str = "evidence-agent";
const STATE_DIR: &str = "/var/lib/evidence-agent";
const KEY: &str = "/var/lib/evidence-agent/keys/host.key";
const LEDGER: &str = "/var/lib/evidence-agent/ledger.sqlite";
const CONFIG: &str = "/etc/evidence-agent/agent.toml";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/evidence-agent.service";
/// Written before this test installs anything and removed once it cleaned up: if it is there
/// at the start, what is installed is a crashed run's and may be removed; if not, an
/// installation found on the machine is someone's real one and is left alone.
const MARKER: &str = "/var/tmp/evidence-agent-packaging-test";

/// The commands of the command-line contract (DESIGN.md §4).
const COMMANDS: [&str; 12] = [
    "run",
    "collect",
    "check-config",
    "keygen",
    "key",
    "status",
    "log",
    "show",
    "diff",
    "sync",
    "export",
    "verify",
];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_evidence-agent")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the agent crate is in the workspace")
        .to_owned()
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the command, fails the test with its output if it fails, returns its stdout.
fn must(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Field `field` (0-based) of the `name` entry of a colon-separated database (/etc/passwd).
fn db_entry(db: &str, name: &str) -> Option<Vec<String>> {
    std::fs::read_to_string(db)
        .unwrap_or_else(|e| panic!("read {db}: {e}"))
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f[0] == name)
}

fn name_of(db: &str, id: u32) -> String {
    std::fs::read_to_string(db)
        .unwrap_or_else(|e| panic!("read {db}: {e}"))
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&id.to_string().as_str()))
        .map_or_else(|| id.to_string(), |f| f[0].to_owned())
}

/// Owner, group and permission bits of `path`, e.g. ("root", "root", 0o755).
fn stat(path: &str) -> (String, String, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}"));
    (
        name_of("/etc/passwd", meta.uid()),
        name_of("/etc/group", meta.gid()),
        meta.permissions().mode() & 0o7777,
    )
}

fn assert_stat(path: &str, owner: &str, group: &str, mode: u32) {
    let got = stat(path);
    assert_eq!(
        got,
        (owner.to_owned(), group.to_owned(), mode),
        "{path}: owner, group, mode (mode {:o})",
        got.2
    );
}

/// The package's dpkg status ("" when dpkg does not know it).
fn dpkg_status() -> String {
    let out = run("dpkg-query", &["-W", "--showformat=${Status}", PACKAGE]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs the installed agent as the service user, as the service and the maintainer scripts do.
fn as_agent(args: &[&str]) -> Output {
    let mut all = vec![
        "--reuid=evidence-agent",
        "--regid=evidence-agent",
        "--init-groups",
        "--",
        "/usr/bin/evidence-agent",
        "--config",
        CONFIG,
    ];
    all.extend_from_slice(args);
    run("setpriv", &all)
}

/// Removes everything the test installed, also after a panic (and at the start, after a
/// crashed run): the package, the state directory, the user and its group.
struct Installed;

impl Installed {
    fn clean() {
        let _ = run("dpkg", &["--purge", PACKAGE]);
        let _ = std::fs::remove_dir_all(STATE_DIR);
        if db_entry("/etc/passwd", USER).is_some() {
            let _ = run("userdel", &[USER]);
        }
        if db_entry("/etc/group", USER).is_some() {
            let _ = run("groupdel", &[USER]);
        }
        let _ = std::fs::remove_file(MARKER);
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        Installed::clean();
    }
}

/// The packages, built by packaging/build.sh from the binary under test.
fn build_packages(out: &Path) -> (PathBuf, PathBuf) {
    must(
        repo().join("packaging/build.sh").to_str().unwrap(),
        &["--binary", bin(), "--out", out.to_str().unwrap(), "--fast"],
    );
    let find = |ext: &str| {
        std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap_or_else(|| panic!("build.sh made no .{ext} in {}", out.display()))
    };
    (find("deb"), find("rpm"))
}

#[test]
fn deb_installs_removes_purges_and_keeps_the_evidence_and_rpm_lists_its_files() {
    // SAFETY: geteuid(2) only reads the process's effective user id.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 || !have("dpkg") {
        // Straight to stderr, not through eprintln!, which the test harness captures and
        // hides for a test that passes: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED packaging test: it installs the .deb with dpkg and needs root and \
             dpkg (running as uid {uid}, dpkg {}) ***\n",
            if have("dpkg") { "present" } else { "missing" }
        );
        return;
    }
    assert!(
        have("rpm"),
        "rpm not found: tests/run.sh installs Debian's rpm package"
    );
    if Path::new(MARKER).exists() {
        Installed::clean();
    }
    let mut found = Vec::new();
    let status = dpkg_status();
    if !status.is_empty() {
        found.push(format!("dpkg has the package ({status})"));
    }
    if Path::new(STATE_DIR).exists() {
        found.push(format!("{STATE_DIR} exists"));
    }
    if db_entry("/etc/passwd", USER).is_some() {
        found.push(format!("the user {USER} exists"));
    }
    assert!(
        found.is_empty(),
        "refusing to run: {} while {MARKER} is missing, so not from an earlier run of this \
         test; this looks like a real installation",
        found.join(", ")
    );
    std::fs::write(MARKER, "evidence-agent packaging test\n").unwrap();
    let _installed = Installed;

    let dir = tempfile::tempdir().unwrap();
    let (deb, rpm) = build_packages(dir.path());
    let deb = deb.to_str().unwrap();

    // Install.
    let installed = must("dpkg", &["-i", deb]);
    assert!(
        installed.contains("/var/lib/evidence-agent/keys/host.vkey"),
        "postinst should name the verifier key:\n{installed}"
    );
    assert_eq!(dpkg_status(), "install ok installed");
    assert_stat("/usr/bin/evidence-agent", "root", "root", 0o755);
    assert_stat(
        "/lib/systemd/system/evidence-agent.service",
        "root",
        "root",
        0o644,
    );
    assert_eq!(
        std::fs::read_to_string("/lib/systemd/system/evidence-agent.service").unwrap(),
        std::fs::read_to_string(repo().join("systemd/evidence-agent.service")).unwrap()
    );
    assert_stat(CONFIG, "root", USER, 0o640);
    let conffiles = must("dpkg-query", &["-W", "--showformat=${Conffiles}", PACKAGE]);
    assert!(
        conffiles.lines().any(|l| l.trim().starts_with(CONFIG)),
        "{CONFIG} is not a conffile: {conffiles:?}"
    );
    assert_stat(
        "/usr/share/evidence-agent/plugins/example-mounts.py",
        "root",
        "root",
        0o755,
    );
    assert_stat("/usr/lib/evidence-agent/setup", "root", "root", 0o755);
    for doc in [
        "/usr/share/man/man1/evidence-agent.1.gz",
        "/usr/share/bash-completion/completions/evidence-agent",
        "/usr/share/zsh/vendor-completions/_evidence-agent",
        "/usr/share/fish/vendor_completions.d/evidence-agent.fish",
    ] {
        assert_stat(doc, "root", "root", 0o644);
    }
    if have("man") {
        let page = must(
            "man",
            &["-P", "cat", "/usr/share/man/man1/evidence-agent.1.gz"],
        );
        assert!(page.contains("check-config"), "man page:\n{page}");
    }

    let user = db_entry("/etc/passwd", USER).expect("the system user exists");
    assert_eq!(user[5], STATE_DIR, "home directory: {user:?}");
    assert_eq!(user[6], "/usr/sbin/nologin", "login shell: {user:?}");
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid < 1000, "not a system uid: {user:?}");
    assert_stat(STATE_DIR, USER, USER, 0o700);
    assert_stat(KEY, USER, USER, 0o600);
    if have("systemctl") {
        assert!(
            Path::new(WANTS_LINK).is_symlink(),
            "the service is not enabled ({WANTS_LINK})"
        );
    }

    // The installed agent accepts the installed configuration, and runs: a ledger appears.
    let check = as_agent(&["check-config"]);
    assert!(check.status.success(), "check-config: {}", text(&check));
    let collect = as_agent(&["collect", "--collector", "accounts"]);
    assert!(collect.status.success(), "collect: {}", text(&collect));
    let key = std::fs::read(KEY).unwrap();
    let ledger = std::fs::read(LEDGER).unwrap();

    let evidence_kept = |after: &str| {
        assert_eq!(
            std::fs::read(KEY).unwrap(),
            key,
            "the key changed by {after}"
        );
        assert_eq!(
            std::fs::read(LEDGER).unwrap(),
            ledger,
            "the ledger changed by {after}"
        );
        assert_stat(STATE_DIR, USER, USER, 0o700);
        assert!(
            db_entry("/etc/passwd", USER).is_some(),
            "the user is gone after {after}"
        );
    };

    // Remove: the program goes, the configuration and the evidence stay.
    must("dpkg", &["-r", PACKAGE]);
    assert_eq!(dpkg_status(), "deinstall ok config-files");
    assert!(!Path::new("/usr/bin/evidence-agent").exists());
    assert!(Path::new(CONFIG).exists(), "remove took the conffile");
    evidence_kept("dpkg -r");

    // Purge: the configuration goes too, asking nothing; the evidence stays.
    let purged = must("dpkg", &["--purge", PACKAGE]);
    assert_eq!(dpkg_status(), "");
    assert!(!Path::new(CONFIG).exists(), "purge left {CONFIG}");
    assert!(!Path::new(WANTS_LINK).exists(), "purge left {WANTS_LINK}");
    assert!(
        purged.contains("kept /var/lib/evidence-agent"),
        "purge should say what it kept:\n{purged}"
    );
    evidence_kept("dpkg --purge");

    // Install again over the kept state, then reinstall the same version (the upgrade path):
    // the key is never regenerated.
    must("dpkg", &["-i", deb]);
    evidence_kept("an install over a kept key");
    assert_stat(CONFIG, "root", USER, 0o640);
    must("dpkg", &["-i", deb]);
    evidence_kept("a reinstall");
    assert!(as_agent(&["check-config"]).status.success());

    // The .rpm: same files, with the rpm paths, modes and owners, and its scriptlets.
    let rpm = rpm.to_str().unwrap();
    let mut listed: Vec<String> = must("rpm", &["-qlp", rpm])
        .lines()
        .map(str::to_owned)
        .collect();
    listed.sort();
    let mut expected = vec![
        "/etc/evidence-agent/agent.toml",
        "/usr/bin/evidence-agent",
        "/usr/lib/evidence-agent/setup",
        "/usr/lib/systemd/system/evidence-agent.service",
        "/usr/share/bash-completion/completions/evidence-agent",
        "/usr/share/doc/evidence-agent/README.md",
        "/usr/share/evidence-agent/plugins/example-mounts.py",
        "/usr/share/fish/vendor_completions.d/evidence-agent.fish",
        "/usr/share/man/man1/evidence-agent.1.gz",
        "/usr/share/zsh/site-functions/_evidence-agent",
    ];
    expected.sort();
    assert_eq!(listed, expected, "rpm -qlp {rpm}");
    let modes = must(
        "rpm",
        &[
            "-qp",
            "--queryformat",
            "[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]",
            rpm,
        ],
    );
    for want in [
        "/usr/bin/evidence-agent -rwxr-xr-x root:root",
        "/etc/evidence-agent/agent.toml -rw-r----- root:evidence-agent cn",
        "/usr/lib/systemd/system/evidence-agent.service -rw-r--r-- root:root",
    ] {
        assert!(
            modes.lines().any(|l| l.starts_with(want)),
            "no line starting {want:?} in:\n{modes}"
        );
    }
    let scripts = must("rpm", &["-qp", "--scripts", rpm]);
    for want in [
        "preinstall scriptlet",
        "useradd --system",
        "postinstall scriptlet",
        "/usr/lib/evidence-agent/setup install",
        "preuninstall scriptlet",
        "postuninstall scriptlet",
    ] {
        assert!(scripts.contains(want), "no {want:?} in:\n{scripts}");
    }
}

fn generate(kind: &str) -> String {
    must(bin(), &["generate", kind])
}

#[test]
fn man_page_documents_every_command() {
    let roff = generate("man");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("evidence-agent.1");
    std::fs::write(&page, &roff).unwrap();
    // Rendered by man when there is one (tests/run.sh's machines have man-db); the roff
    // source otherwise.
    let shown = if have("man") {
        let out = Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(&page)
            .env("MANWIDTH", "100")
            .output()
            .expect("run man");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("warning"),
            "man -l failed or warned ({}):\n{stderr}",
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        eprintln!("man is not installed: checking the roff source only");
        roff.replace("\\-", "-")
    };
    for command in COMMANDS {
        assert!(
            shown.contains(&format!("evidence-agent {command}")),
            "the man page has no section for {command}:\n{shown}"
        );
    }
    for section in ["SYNOPSIS", "OPTIONS", "COMMANDS", "FILES", "EXIT STATUS"] {
        assert!(shown.contains(section), "no {section} in:\n{shown}");
    }
    assert!(
        !shown.contains("evidence-agent generate"),
        "the hidden generate command is documented:\n{shown}"
    );
    assert!(shown.contains("--config"), "no global options:\n{shown}");
    assert!(
        shown.contains("/etc/evidence-agent/agent.toml"),
        "no default config:\n{shown}"
    );
}

#[test]
fn completions_complete_the_commands() {
    let bash = generate("complete-bash");
    for command in COMMANDS {
        assert!(bash.contains(command), "bash completion lacks {command}");
    }
    // Bash itself completes "evidence-agent check-" with the generated function.
    if have("bash") {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("evidence-agent.bash");
        std::fs::write(&script, &bash).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                "source \"$1\"; COMP_WORDS=(evidence-agent check-); COMP_CWORD=1; \
                 COMP_LINE='evidence-agent check-'; COMP_POINT=${#COMP_LINE}; \
                 _evidence__agent evidence-agent check- evidence-agent; printf '%s\\n' \"${COMPREPLY[@]}\"",
            )
            .arg("bash")
            .arg(&script)
            .output()
            .expect("run bash");
        assert!(out.status.success(), "bash: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "check-config");
    }
    assert!(
        !bash.contains("generate"),
        "the hidden command is offered:\n{bash}"
    );
    let zsh = generate("complete-zsh");
    assert!(zsh.starts_with("#compdef evidence-agent"), "zsh:\n{zsh}");
    let fish = generate("complete-fish");
    for command in COMMANDS {
        assert!(zsh.contains(command), "zsh completion lacks {command}");
        assert!(fish.contains(command), "fish completion lacks {command}");
    }
    assert!(!zsh.contains("generate") && !fish.contains("generate"));
}

#[test]
fn generate_refuses_an_unknown_kind() {
    let out = run(bin(), &["generate", "manpage"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'manpage'")
            && err.contains("man, complete-bash, complete-zsh, complete-fish"),
        "unclear error:\n{err}"
    );
    assert!(out.stdout.is_empty());
}
