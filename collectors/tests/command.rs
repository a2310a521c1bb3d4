//! The `command` collector: output, failures, limits, and the child dying with the run.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

fn command(toml_text: &str) -> Box<dyn collectors::Collector> {
    build("command", toml_text)
}

#[tokio::test]
async fn stdout_is_the_content_and_lines_are_items() {
    let spool = tempfile::tempdir().unwrap();
    let collector = command(
        r#"argv = ["printf", "id,snapshot,time\n1,4b1f0c2e,2024-01-02T03:00:00Z\n2,9a7d3e11,2024-01-03T03:00:00Z"]"#,
    );
    assert!(collector.check().is_empty());
    let snapshot = collect(&*collector, spool.path())
        .await
        .expect("the run succeeds");
    assert_eq!(
        bytes(&snapshot),
        b"id,snapshot,time\n1,4b1f0c2e,2024-01-02T03:00:00Z\n2,9a7d3e11,2024-01-03T03:00:00Z"
    );
    assert_eq!(snapshot.media_type, collectors::MEDIA_TYPE_OCTETS);
    assert_eq!(snapshot.item_count, 3, "a last line without newline counts");
    assert_eq!(snapshot.details["exit_status"], 0);
    assert_eq!(snapshot.details["argv"][0], "printf");
    assert_eq!(snapshot.cursor, None);
}

#[tokio::test]
async fn env_and_cwd_are_given_to_the_child() {
    let spool = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let collector = command(&format!(
        "argv = [\"sh\", \"-c\", 'printf \"%s|%s\" \"$BACKUP_PROFILE\" \"$(pwd -P)\"']\n\
         cwd = {:?}\n[env]\nBACKUP_PROFILE = \"nightly\"\n",
        dir.path().display().to_string()
    ));
    let snapshot = collect(&*collector, spool.path()).await.unwrap();
    let expected = format!("nightly|{}", dir.path().canonicalize().unwrap().display());
    assert_eq!(String::from_utf8(bytes(&snapshot)).unwrap(), expected);
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_the_status_and_the_stderr_tail() {
    let spool = tempfile::tempdir().unwrap();
    let collector = command(
        r#"argv = ["sh", "-c", "echo 'snapshots listed'; echo 'Fatal: unable to open config file' >&2; echo 'Is there a repository at the following location?' >&2; exit 3"]"#,
    );
    let err = collect(&*collector, spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "sh exited with status 3; stderr: Fatal: unable to open config file Is there a repository at the following location?"
    );

    let long = command(
        r#"argv = ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1"]"#,
    );
    let err = collect(&*long, spool.path()).await.unwrap_err().to_string();
    assert!(err.ends_with("xxxxEND"), "{}", &err[err.len() - 20..]);
    assert!(
        err.len() < 4200,
        "only the tail of stderr is kept: {}",
        err.len()
    );
}

#[tokio::test]
async fn death_by_signal_is_a_failure() {
    let spool = tempfile::tempdir().unwrap();
    let err = collect(
        &*command(r#"argv = ["sh", "-c", "kill -KILL $$"]"#),
        spool.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(err, "sh was killed by signal 9; stderr: (empty)");
}

#[tokio::test]
async fn output_over_max_output_kills_the_command() {
    let spool = tempfile::tempdir().unwrap();
    // `yes` never ends by itself: only the limit stops it.
    let err = collect(
        &*command("argv = [\"yes\", \"backup ok\"]\nmax_output = 1048576"),
        spool.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "yes: output is over max_output (1048576 bytes); the command was killed"
    );
}

#[tokio::test]
async fn big_outputs_on_both_pipes_do_not_stall() {
    let spool = tempfile::tempdir().unwrap();
    // 3 MiB on stdout and 1 MiB on stderr: a reader of one pipe only would deadlock.
    let collector = command(
        r#"argv = ["sh", "-c", "head -c 1048576 /dev/zero >&2; head -c 3145728 /dev/zero | tr '\\0' '\\n'"]"#,
    );
    let snapshot = collect(&*collector, spool.path()).await.unwrap();
    assert!(snapshot.content.as_bytes().is_none(), "3 MiB is spooled");
    assert_eq!(snapshot.content.size(), 3 << 20);
    assert_eq!(snapshot.item_count, 3 << 20);
    assert_eq!(snapshot.details["stderr_bytes"], 1 << 20);
    assert_eq!(bytes(&snapshot), vec![b'\n'; 3 << 20]);
}

#[tokio::test]
async fn the_agents_timeout_kills_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("alive");
    let c_path =
        std::ffi::CString::new(fifo.clone().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // The child holds the FIFO open and says its pid; the FIFO reads EOF once it is dead.
    let collector = command(&format!(
        "argv = [\"sh\", \"-c\", 'exec 3>\"$0\"; echo $$ >&3; exec sleep 1000', {:?}]",
        fifo.display().to_string()
    ));
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel::<u32>();
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: if the test fails it is left blocked, not the runtime.
    std::thread::spawn(move || {
        let mut reader = BufReader::new(std::fs::File::open(&fifo).unwrap());
        let mut pid = String::new();
        reader.read_line(&mut pid).unwrap();
        let _ = pid_tx.send(pid.trim().parse().unwrap());
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let _ = gone_tx.send(());
    });

    let spool = tempfile::tempdir().unwrap();
    let mut run = collector.collect(ctx(spool.path()));
    let pid = tokio::select! {
        result = &mut run => panic!("the command ended early: {result:?}"),
        pid = pid_rx => pid.unwrap(),
    };
    // The child is running: now the agent's timeout elapses and drops the run.
    let timed_out = tokio::time::timeout(Duration::from_millis(50), run).await;
    assert!(timed_out.is_err(), "sleep 1000 cannot finish in time");
    tokio::time::timeout(Duration::from_secs(30), gone_rx)
        .await
        .expect("the child still holds its FIFO 30 s after the timeout")
        .unwrap();
    // Its descriptors are closed; wait for the process itself to have exited.
    let exited = tokio::task::spawn_blocking(move || wait_for_exit(pid, 30_000))
        .await
        .unwrap();
    assert!(exited, "pid {pid} is still running 30 s after the timeout");
}

#[tokio::test]
async fn the_timeout_kills_the_whole_process_group() {
    // A killed `sleep` is orphaned; make this test process the reaper of orphans (init does
    // not reap in every container), so the group can be seen empty: not even a zombie left.
    // SAFETY: prctl with integer arguments only.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("alive");
    let c_path =
        std::ffi::CString::new(fifo.clone().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // sh and its background sleep both hold the FIFO open; sh says its pid (the group's id)
    // and the sleep's. The FIFO reads EOF once both are dead.
    let collector = command(&format!(
        "argv = [\"sh\", \"-c\", 'exec 3>\"$0\"; sleep 30 & echo \"$$ $!\" >&3; wait', {:?}]",
        fifo.display().to_string()
    ));
    let (ids_tx, ids_rx) = tokio::sync::oneshot::channel::<(i32, i32)>();
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(std::fs::File::open(&fifo).unwrap());
        let mut ids = String::new();
        reader.read_line(&mut ids).unwrap();
        let mut ids = ids.split_whitespace().map(|id| id.parse().unwrap());
        let _ = ids_tx.send((ids.next().unwrap(), ids.next().unwrap()));
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let _ = gone_tx.send(());
    });

    let spool = tempfile::tempdir().unwrap();
    let mut run = collector.collect(ctx(spool.path()));
    let (pgid, sleep_pid) = tokio::select! {
        result = &mut run => panic!("the command ended early: {result:?}"),
        ids = ids_rx => ids.unwrap(),
    };
    let timed_out = tokio::time::timeout(Duration::from_millis(50), run).await;
    assert!(timed_out.is_err(), "sleep 30 cannot finish in time");
    tokio::time::timeout(Duration::from_secs(20), gone_rx)
        .await
        .expect("a process of the group (the sleep) still holds the FIFO 20 s after the timeout")
        .unwrap();
    let group_empty = tokio::task::spawn_blocking(move || {
        assert!(wait_for_exit(pgid as u32, 20_000), "sh still runs");
        assert!(wait_for_exit(sleep_pid as u32, 20_000), "sleep still runs");
        // Both are dead: reap them (sh may already have been reaped by tokio: ECHILD).
        for pid in [sleep_pid, pgid] {
            let mut status = 0;
            // SAFETY: waitpid on a dead process returns at once; status is a valid pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        // SAFETY: signal 0 only checks whether the group has any process.
        let alive = unsafe { libc::kill(-pgid, 0) };
        alive == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    })
    .await
    .unwrap();
    assert!(group_empty, "process group {pgid} still has a member");
}

#[tokio::test]
async fn argv_and_stderr_are_redacted() {
    let spool = tempfile::tempdir().unwrap();
    let collector = command(
        r#"argv = ["sh", "-c", "echo ok", "sh", "--password=Sup3rSecret", "-pMyPw9", "token=tok-abc", "--token", "tok-def", "--verbose"]"#,
    );
    let snapshot = collect(&*collector, spool.path()).await.unwrap();
    let argv = snapshot.details["argv"].to_string();
    for secret in ["Sup3rSecret", "MyPw9", "tok-abc", "tok-def"] {
        assert!(!argv.contains(secret), "{secret} in {argv}");
    }
    assert_eq!(argv.matches("[REDACTED sha256:").count(), 4, "{argv}");
    assert_eq!(snapshot.details["argv"][2], "echo ok");
    assert_eq!(snapshot.details["argv"][9], "--verbose");

    let failing = command(
        r#"argv = ["sh", "-c", "echo 'connecting with password=hunter2' >&2; echo 'retry with --token tok-xyz' >&2; exit 2"]"#,
    );
    let err = collect(&*failing, spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("hunter2") && !err.contains("tok-xyz"),
        "{err}"
    );
    assert!(
        err.starts_with("sh exited with status 2; stderr: connecting with password=[REDACTED"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_program_is_reported_by_check_and_by_the_run() {
    let spool = tempfile::tempdir().unwrap();
    let collector = command(r#"argv = ["restic-not-installed", "snapshots"]"#);
    let problems = collector.check();
    assert_eq!(problems.len(), 1);
    assert!(problems[0]
        .message
        .contains("restic-not-installed: not found on PATH"));
    let err = collect(&*collector, spool.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("start restic-not-installed:"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("report.sh");
    std::fs::write(&script, "#!/bin/sh\necho ok\n").unwrap();
    let by_path = command(&format!("argv = [{:?}]", script.display().to_string()));
    assert_eq!(by_path.check().len(), 1, "not executable");
    let custom_path = command(&format!(
        "argv = [\"report.sh\"]\n[env]\nPATH = {:?}",
        dir.path().display().to_string()
    ));
    assert_eq!(custom_path.check().len(), 1);
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert!(by_path.check().is_empty());
    assert!(custom_path.check().is_empty());
}

#[test]
fn settings_are_checked() {
    let refused = |text: &str| {
        collectors::registry::build("command", &table(text))
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"))
    };
    assert_eq!(refused("argv = []")[0].key.as_deref(), Some("argv"));
    assert_eq!(refused("argv = [\"\"]")[0].key.as_deref(), Some("argv"));
    let wrong_type = &refused("argv = \"ls -l\"")[0];
    assert!(wrong_type.message.contains("expected a sequence"));
    assert_eq!(wrong_type.key.as_deref(), Some("argv"));
    assert_eq!(
        refused("argv = [\"ls\"]\ncwd = 5")[0].key.as_deref(),
        Some("cwd")
    );
    assert_eq!(
        refused("argv = [\"ls\"]\nshell = true")[0].key.as_deref(),
        Some("shell")
    );
    assert_eq!(
        refused("argv = [\"ls\"]\nmax_output = 0")[0].key.as_deref(),
        Some("max_output")
    );
    assert_eq!(
        refused("argv = [\"ls\"]\n[env]\n\"A=B\" = \"x\"")[0]
            .key
            .as_deref(),
        Some("env")
    );
}
