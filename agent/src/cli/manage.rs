//! Commands that run or set up the agent: run, collect, check-config, keygen, key, verify.

use super::{Failed, Paths};
use crate::config::{self, Config};
use crate::daemon::{self, runner, Agent};
use crate::keys::{self, KeyError};
use crate::ledger::verify;
use crate::statement::Trigger;
use crate::sync;
use crate::tlog::note::{NoteSigner, NoteVerifier};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Run `work` on a multi-threaded runtime. Afterwards, collector jobs still blocked on the
/// blocking pool (a file read on a hung mount outliving its timeout) get a few seconds, then
/// are abandoned: everything that matters was committed before `work` returned, and the
/// process must exit when asked to.
pub(super) fn block_on<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    block_on_with(None, work)
}

/// [`block_on`] with `workers` async worker threads (tokio's default, one per core, if `None`).
fn block_on_with<T>(
    workers: Option<usize>,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result = runtime.block_on(work);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

/// The host key, created on first start so that the quickstart is one command. A key that
/// exists but is unsafe or unreadable is an error, never replaced.
fn host_key(config: &Config) -> anyhow::Result<NoteSigner> {
    daemon::prepare_data_dir(&config.data_dir)?;
    let name = keys::key_name(&config.host_id);
    match keys::load(&config.key_path, Some(&name)) {
        Err(KeyError::Missing { .. }) => {
            let verifier = keys::generate(&config.key_path, &name)?;
            tracing::info!(key = %config.key_path.display(), vkey = %verifier, "created the host key");
            Ok(keys::load(&config.key_path, Some(&name))?)
        }
        other => Ok(other?),
    }
}

/// Async worker threads of the daemon, whatever the core count: its async work is mostly
/// waiting (timers, child processes, HTTP), the heavy parts (hashing, SQLite, file reads) run
/// on the blocking pool and the ledger thread, and the signal loop runs on the main thread.
/// Every worker costs a stack and, with glibc's default, a malloc arena.
const DAEMON_WORKERS: usize = 1;

/// glibc's malloc arenas for the daemon. By default glibc gives threads their own arenas, up
/// to 8 per core, and each keeps its freed memory; the daemon's threads allocate little and
/// rarely at once, so one arena is enough and keeps its resident memory from growing with the
/// threads the blocking pool starts over the months (benches/idle.rs measures it).
#[cfg(target_env = "gnu")]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator settings; called before any thread is started.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) } != 1 {
        tracing::warn!("could not limit malloc arenas (mallopt M_ARENA_MAX)");
    }
}

#[cfg(not(target_env = "gnu"))]
fn limit_malloc_arenas() {}

/// The daemon. `data_dir` is the `--data-dir` override, applied again at every reload.
pub fn run(config: Config, data_dir: Option<&Path>) -> anyhow::Result<()> {
    // Before the runtime's threads exist: this takes NOTIFY_SOCKET out of the environment.
    let notifier = daemon::notify::Notifier::from_env();
    limit_malloc_arenas();
    let signer = host_key(&config)?;
    let (path, data_dir) = (config.path.clone(), data_dir.map(Path::to_path_buf));
    let loader: daemon::ConfigLoader = Arc::new(move || config::load(&path, data_dir.as_deref()));
    block_on_with(
        Some(DAEMON_WORKERS),
        daemon::run(config, signer, loader, notifier),
    )
}

/// One sync pass in the foreground: anchor against S3, upload everything pending.
pub fn sync(config: Config) -> anyhow::Result<()> {
    let Some(s3) = config.s3.clone() else {
        anyhow::bail!("sync is off: {} has no [s3] table", config.path.display());
    };
    let name = keys::key_name(&config.host_id);
    let signer = keys::load(&config.key_path, Some(&name))?;
    let _lock = sync::lock(&config.data_dir)?;
    block_on(async move {
        let syncer = sync::open(&config, &s3, signer).await?;
        let result = syncer.sync_once().await;
        let error = result.as_ref().err().map(ToString::to_string);
        let location = syncer.location().to_owned();
        syncer
            .with_ledger(move |l| l.record_sync_attempt(&location, error.as_deref()))
            .await?;
        let pending = syncer.plan().await.map(|p| (p.objects(), p.bytes()));
        match (result, pending) {
            (Ok(report), Ok((0, _))) => {
                println!(
                    "synced to {}: tree size {}, {} objects uploaded ({} bytes), {} already there",
                    syncer.location(),
                    report.size,
                    report.uploaded,
                    report.uploaded_bytes,
                    report.already_there
                );
                Ok(())
            }
            (Ok(_), Ok((objects, bytes))) => Err(Failed(format!(
                "{objects} objects ({bytes} bytes) appeared while syncing and are still pending; run sync again"
            ))
            .into()),
            (Err(e), pending) => {
                let left = match pending {
                    Ok((objects, bytes)) => format!("{objects} objects ({bytes} bytes) still pending"),
                    Err(p) => format!("pending objects unknown: {p}"),
                };
                Err(anyhow::Error::new(e).context(format!("sync to {} incomplete, {left}", syncer.location())))
            }
            (Ok(_), Err(e)) => Err(e.into()),
        }
    })
}

pub fn collect(config: Config, only: &[String]) -> anyhow::Result<()> {
    for id in only {
        if !config.collectors.iter().any(|c| &c.id == id) {
            let known: Vec<_> = config.collectors.iter().map(|c| c.id.as_str()).collect();
            anyhow::bail!(
                "no collector with id {id:?} in {}; known: {}",
                config.path.display(),
                known.join(", ")
            );
        }
    }
    let signer = host_key(&config)?;
    block_on(async move {
        let selected: Vec<_> = config
            .collectors
            .iter()
            .filter(|c| {
                if only.is_empty() {
                    c.enabled
                } else {
                    only.contains(&c.id)
                }
            })
            .cloned()
            .map(Arc::new)
            .collect();
        let permits = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent));
        // Like `run`: a ledger that S3 shows was rolled back must not append.
        if let Some(s3) = config.s3.clone() {
            let syncer = sync::open(&config, &s3, signer.clone()).await?;
            daemon::anchor_at_start(&syncer).await?;
        }
        let settings = runner::RunSettings::of(&config);
        let agent = Agent::start(config, signer).await?;
        let mut runs = tokio::task::JoinSet::new();
        for c in selected {
            let (ctx, permits) = (agent.ctx.clone(), permits.clone());
            runs.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let now = chrono::Utc::now();
                runner::run_once(&ctx, settings, &c, Trigger::Manual, now).await
            });
        }
        let (mut total, mut failed) = (0, 0);
        let mut unrecorded = None;
        while let Some(joined) = runs.join_next().await {
            total += 1;
            // Keep going: the other runs must still be recorded and the ledger closed.
            let r = match joined.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(r) => r,
                Err(e) => {
                    failed += 1;
                    unrecorded.get_or_insert(e);
                    continue;
                }
            };
            match &r.error {
                None => println!(
                    "{}: ok, {} items, entry {}",
                    r.collector_id, r.item_count, r.index
                ),
                Some(e) => {
                    failed += 1;
                    println!("{}: {}: {e} (entry {})", r.collector_id, r.status, r.index);
                }
            }
        }
        agent.close().await?;
        if let Some(e) = unrecorded {
            return Err(e.context("a run could not be recorded in the ledger"));
        }
        if failed > 0 {
            return Err(Failed(format!(
                "{failed} of {total} runs did not succeed (recorded as such in the ledger)"
            ))
            .into());
        }
        Ok(())
    })
}

pub fn check_config(path: &Path, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let config = match config::load(path, data_dir) {
        Ok(c) => c,
        Err(errors) => {
            println!("{errors}");
            return Err(
                Failed(format!("{}: {} problem(s)", path.display(), errors.0.len())).into(),
            );
        }
    };
    let problems = config.check_environment();
    for p in &problems {
        println!("{p}");
    }
    if !problems.is_empty() {
        return Err(Failed(format!("{}: {} problem(s)", path.display(), problems.len())).into());
    }
    println!(
        "{}: ok (host {}, {} collectors, data in {})",
        path.display(),
        config.host_id,
        config.collectors.len(),
        config.data_dir.display()
    );
    Ok(())
}

pub fn keygen(config: &Config) -> anyhow::Result<()> {
    daemon::prepare_data_dir(&config.data_dir)?;
    let verifier = keys::generate(&config.key_path, &keys::key_name(&config.host_id))?;
    println!("created {}", config.key_path.display());
    print_key(&verifier);
    Ok(())
}

pub fn key(paths: &Paths) -> anyhow::Result<()> {
    let path = paths.key.as_deref().context("no key path")?;
    let vkey = keys::vkey_path(path);
    let verifier = if vkey.exists() {
        keys::read_vkey(&vkey)?
    } else {
        let expected = paths.config.as_ref().map(|c| keys::key_name(&c.host_id));
        keys::load(path, expected.as_deref())?.verifier()
    };
    print_key(&verifier);
    Ok(())
}

fn print_key(verifier: &NoteVerifier) {
    println!("{verifier}");
    println!("fingerprint {}", keys::fingerprint(verifier));
}

/// The verifier keys in `files` (`--vkey`), one per file, on its first line.
pub(super) fn read_vkeys(files: &[PathBuf]) -> anyhow::Result<Vec<NoteVerifier>> {
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("read {}", file.display()))?;
            // The first line, so that the output of `evidence-agent key` (vkey, then the
            // fingerprint) works as a --vkey file too.
            let line = text.lines().map(str::trim).find(|l| !l.is_empty());
            NoteVerifier::parse(line.unwrap_or("")).with_context(|| format!("{}", file.display()))
        })
        .collect()
}

/// Which key checks the ledger, and how much it can be trusted.
pub(super) fn choose_verifier(
    paths: &Paths,
    vkey_files: &[PathBuf],
    origin: &str,
    recorded: Option<NoteVerifier>,
) -> anyhow::Result<(NoteVerifier, String)> {
    if !vkey_files.is_empty() {
        let mut names = Vec::new();
        for (file, v) in vkey_files.iter().zip(read_vkeys(vkey_files)?) {
            if v.name() == origin {
                return Ok((v, format!("pinned by {}", file.display())));
            }
            names.push(v.name().to_owned());
        }
        anyhow::bail!(
            "none of the --vkey keys is for {origin} (they are for {})",
            names.join(", ")
        );
    }
    if let Some(key) = &paths.key {
        let vkey = keys::vkey_path(key);
        if vkey.exists() {
            let v = keys::read_vkey(&vkey)?;
            if v.name() != origin {
                anyhow::bail!(
                    "{}: key is for {}, the ledger is {origin}",
                    vkey.display(),
                    v.name()
                );
            }
            return Ok((v, format!("pinned by the host key {}", vkey.display())));
        }
        if key.exists() {
            let signer = keys::load(key, Some(origin))?;
            return Ok((
                signer.verifier(),
                format!("pinned by the host key {}", key.display()),
            ));
        }
    }
    let v = recorded.context("the ledger records no key and none was given (--vkey FILE)")?;
    Ok((
        v,
        "taken from the ledger itself and NOT pinned: pass --vkey to pin it".into(),
    ))
}

pub fn verify(paths: &Paths, vkey_files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let ledger = paths.open_ledger()?;
    let origin = ledger.origin();
    let recorded = ledger.verifier_from_meta().ok();
    let (verifier, trust) = choose_verifier(paths, vkey_files, &origin, recorded)?;
    let report = verify::verify(&ledger, &verifier)?;
    if json {
        let out = serde_json::json!({
            "ledger": ledger.path(),
            "origin": origin,
            "vkey": verifier.to_string(),
            "key_trust": trust,
            "ok": report.ok(),
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("ledger {} ({origin})", ledger.path().display());
        println!("key {verifier}: {trust}");
        println!(
            "{} entries, {} distinct blobs, {} checkpoints checked",
            report.entries, report.blobs_checked, report.checkpoints
        );
        for f in &report.findings {
            println!("FAIL {f}");
        }
    }
    if report.ok() {
        if !json {
            println!("OK: every signature, digest, leaf and checkpoint holds");
        }
        Ok(())
    } else {
        Err(Failed(format!(
            "verification failed: {} problem(s)",
            report.findings.len()
        ))
        .into())
    }
}
