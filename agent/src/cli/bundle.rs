//! Commands for auditors and the compliance lead: export a period as a bundle, verify one.

use super::manage::{block_on, choose_verifier, read_vkeys};
use super::{Failed, Paths};
use crate::bundle::derive::Params;
use crate::bundle::export::{self, Options};
use crate::bundle::fleet::{self, DownloadedBlobs, S3Url};
use crate::bundle::hostlog::{BlobSource, HostLog};
use crate::bundle::layout::{Filters, Period, SampleSpec};
use crate::bundle::sample::{self, Size};
use crate::bundle::verify;
use crate::config::S3Config;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// What `export` was asked for.
pub struct ExportArgs<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub out: &'a Path,
    pub collectors: &'a [String],
    pub sample: Option<&'a str>,
    pub seed: Option<&'a str>,
    pub source: Option<&'a str>,
    pub hosts: &'a [String],
}

pub fn export(paths: &Paths, args: &ExportArgs) -> anyhow::Result<()> {
    let period = Period::parse(args.from, args.to)?;
    let sample = match (args.sample, args.seed) {
        (None, Some(_)) => anyhow::bail!("--seed needs --sample N or --sample auto"),
        (None, None) => None,
        (Some(size), seed) => Some(SampleSpec {
            size: Size::parse(size)?.to_string(),
            seed: seed.map_or_else(sample::new_seed, str::to_owned),
            method: sample::METHOD.to_owned(),
        }),
    };
    let options = Options {
        out: args.out.to_owned(),
        params: Params {
            period,
            created_at: chrono::Utc::now(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            filters: Filters {
                collectors: args.collectors.to_vec(),
                hosts: args.hosts.to_vec(),
            },
            sample: sample.clone(),
        },
    };
    let write = |hosts: Vec<(HostLog, &dyn BlobSource)>| {
        export::write(hosts, &options).with_context(|| format!("export to {}", args.out.display()))
    };
    let written = match args.source {
        Some(url) => {
            let config = fleet_config(paths, url)?;
            let fetched = block_on(fetch_fleet(&config, args, &period))?;
            let (logs, blobs): (Vec<HostLog>, Vec<DownloadedBlobs>) = fetched.into_iter().unzip();
            let hosts = logs
                .into_iter()
                .zip(&blobs)
                .map(|(log, blobs)| (log, blobs as &dyn BlobSource))
                .collect();
            write(hosts)?
        }
        None => {
            let ledger = paths.open_ledger()?;
            let origin = ledger.origin();
            let (verifier, trust) =
                choose_verifier(paths, &[], &origin, ledger.verifier_from_meta().ok())?;
            let known = ledger.last_entries()?;
            if let Some(unknown) = args
                .collectors
                .iter()
                .find(|c| !known.iter().any(|e| &e.collector_id == *c))
            {
                anyhow::bail!("--collector {unknown}: the ledger has no entry of this collector");
            }
            let log = export::from_ledger(&ledger, &verifier, &period)
                .with_context(|| format!("read {}", ledger.path().display()))?;
            println!("key {trust}");
            write(vec![(log, &ledger)])?
        }
    };
    println!(
        "wrote {}: {} host(s), {} entries, {} blobs, {} files",
        args.out.display(),
        written.hosts,
        written.entries,
        written.blobs,
        written.files
    );
    if let Some(s) = &sample {
        println!(
            "sample: {} rows ({} per population, seed {}, method {})",
            written.sampled, s.size, s.seed, s.method
        );
    }
    if written.gaps > 0 {
        println!(
            "WARNING: {} coverage gap(s) in the period; see report.html",
            written.gaps
        );
    }
    Ok(())
}

/// Where `--source` is: its bucket and prefix, with the endpoint, region and addressing of the
/// configuration's [s3] table when there is one.
fn fleet_config(paths: &Paths, url: &str) -> anyhow::Result<S3Config> {
    let source = S3Url::parse(url)?;
    let base = paths.config.as_ref().and_then(|c| c.s3.clone());
    Ok(S3Config {
        bucket: source.bucket,
        prefix: source.prefix,
        region: base.as_ref().and_then(|b| b.region.clone()),
        endpoint_url: base.as_ref().and_then(|b| b.endpoint_url.clone()),
        force_path_style: base.as_ref().is_some_and(|b| b.force_path_style),
        object_lock: None,
    })
}

async fn fetch_fleet(
    config: &S3Config,
    args: &ExportArgs<'_>,
    period: &Period,
) -> anyhow::Result<Vec<(HostLog, DownloadedBlobs)>> {
    let found = fleet::hosts(config).await?;
    if let Some(missing) = args.hosts.iter().find(|h| !found.contains(h)) {
        anyhow::bail!(
            "--host {missing}: s3://{}/{} has no such host (found: {})",
            config.bucket,
            config.prefix,
            found.join(", ")
        );
    }
    let wanted: Vec<&String> = found
        .iter()
        .filter(|h| args.hosts.is_empty() || args.hosts.contains(h))
        .collect();
    if wanted.is_empty() {
        anyhow::bail!(
            "s3://{}/{} holds no host directory",
            config.bucket,
            config.prefix
        );
    }
    let mut out = Vec::new();
    for host in wanted {
        let fetched = fleet::read_host(config, host, period, args.collectors)
            .await
            .with_context(|| format!("host {host}"))?;
        println!(
            "host {host}: entries {}..{} checked",
            fetched.0.start_size(),
            fetched.0.end.size()
        );
        out.push(fetched);
    }
    Ok(out)
}

/// Whether `path` is a bundle rather than a ledger or data directory.
pub fn is_bundle(path: &Path) -> bool {
    crate::bundle::archive::is_archive(path) || path.join(crate::bundle::layout::MANIFEST).is_file()
}

pub fn verify_bundle(path: &Path, vkey_files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let pinned = read_vkeys(vkey_files)?;
    let report = verify::verify(path, &pinned)
        .with_context(|| format!("verify bundle {}", path.display()))?;
    for v in &pinned {
        if !report
            .hosts
            .iter()
            .any(|h| crate::keys::key_name(&h.host) == v.name())
        {
            anyhow::bail!("--vkey {v}: the bundle has no host of this key");
        }
    }
    if json {
        let out = serde_json::json!({ "bundle": path, "ok": report.ok(), "report": report });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("bundle {} ({})", path.display(), report.format);
        for h in &report.hosts {
            let trust = if h.pinned {
                "pinned"
            } else {
                "NOT pinned (taken from the bundle)"
            };
            println!(
                "host {}: entries {}..{} ({}), key {}: {trust}",
                h.host, h.start_size, h.end_size, h.entries, h.vkey
            );
        }
        println!(
            "{} files, {} blobs checked; {} sampled rows; {} coverage gap(s)",
            report.files_checked, report.blobs_checked, report.sampled, report.gaps
        );
        for n in &report.notes {
            println!("NOTE {n}");
        }
        for f in &report.findings {
            println!("FAIL {f}");
        }
    }
    if report.ok() {
        if !json {
            println!("OK: every signature, digest, proof, population and sample holds and the schedule is covered");
        }
        Ok(())
    } else {
        Err(Failed(format!(
            "bundle verification failed: {} problem(s)",
            report.findings.len()
        ))
        .into())
    }
}
