//! Everything in a bundle that is computed rather than copied: populations, samples, coverage,
//! the report, and which blobs the bundle must carry. Export writes the result; verify
//! recomputes it from the checked entries and compares, so both go through this one function.

use super::coverage::{self, Coverage};
use super::hostlog::{BlobSource, HostLog};
use super::layout::{Filters, Period, SampleSpec};
use super::population::{self, Class, Population};
use super::report::{self, HostReport, ReportInput};
use super::sample::{self, Drawn, Size};
use super::BundleError;
use crate::statement::Status;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashSet};

/// The parameters a bundle was made with (all recorded in its manifest).
#[derive(Debug, Clone)]
pub struct Params {
    pub period: Period,
    pub created_at: DateTime<Utc>,
    pub agent_version: String,
    pub filters: Filters,
    pub sample: Option<SampleSpec>,
}

/// One host's derived data.
#[derive(Debug)]
pub struct HostDerived {
    pub populations: Vec<Population>,
    pub samples: Vec<Drawn>,
    pub coverage: Vec<Coverage>,
}

/// The computed files and facts of a bundle.
#[derive(Debug)]
pub struct Derived {
    pub hosts: Vec<HostDerived>,
    pub population_csv: Vec<u8>,
    pub sample_csv: Vec<u8>,
    pub report_html: String,
    /// Blobs the bundle carries (SHA-256 hex): the content of every `ok` entry of the period
    /// for the filtered collectors, or with a sample only that of the sampled rows, plus all
    /// of a ticket collector's content, which its population is computed from.
    pub blobs: BTreeSet<String>,
}

/// Compute the derived part of a bundle of `hosts`. `fingerprints[i]` is host i's key
/// fingerprint for the report.
pub fn derive(
    hosts: &[HostLog],
    fingerprints: &[String],
    blobs: &dyn BlobSource,
    params: &Params,
) -> Result<Derived, BundleError> {
    let size = params
        .sample
        .as_ref()
        .map(|s| Size::parse(&s.size))
        .transpose()?;
    let seed = params.sample.as_ref().map_or("", |s| s.seed.as_str());
    let collectors = &params.filters.collectors;
    let cutoff = params.created_at.min(params.period.to);
    let mut derived_hosts = Vec::with_capacity(hosts.len());
    let mut needed = BTreeSet::new();
    for log in hosts {
        let populations = population::build(log, &params.period, collectors, blobs)?;
        let samples: Vec<Drawn> = match size {
            Some(size) => populations
                .iter()
                .map(|p| sample::draw(p, size, seed, &params.period))
                .collect(),
            None => Vec::new(),
        };
        // Content to carry, by entry index.
        let sampled: HashSet<u64> = samples
            .iter()
            .flat_map(|d| d.rows.iter().flat_map(|r| r.entries.iter().copied()))
            .collect();
        let ticket_collectors: HashSet<&str> = populations
            .iter()
            .filter(|p| p.class == Class::Tickets)
            .map(|p| p.collector.as_str())
            .collect();
        for (e, _) in population::in_period(log, &params.period, collectors) {
            let carried = size.is_none()
                || sampled.contains(&e.index)
                || ticket_collectors.contains(e.collector());
            if carried && e.statement.predicate.status == Status::Ok {
                needed.insert(e.statement.content_sha256().to_owned());
            }
        }
        let coverage = coverage::compute(log, &params.period, collectors, cutoff);
        derived_hosts.push(HostDerived {
            populations,
            samples,
            coverage,
        });
    }
    let all_populations: Vec<Population> = derived_hosts
        .iter()
        .flat_map(|h| h.populations.iter().cloned())
        .collect();
    let all_samples: Vec<Drawn> = derived_hosts
        .iter()
        .flat_map(|h| h.samples.iter().cloned())
        .collect();
    let report_html = report::render(&ReportInput {
        period: &params.period,
        created_at: params.created_at,
        agent_version: &params.agent_version,
        filters: &params.filters,
        sample: params.sample.as_ref(),
        hosts: hosts
            .iter()
            .zip(&derived_hosts)
            .zip(fingerprints)
            .map(|((log, d), fp)| HostReport {
                log,
                key_fingerprint: fp.clone(),
                coverage: &d.coverage,
                populations: &d.populations,
                samples: &d.samples,
            })
            .collect(),
    });
    Ok(Derived {
        population_csv: population::to_csv(&all_populations),
        sample_csv: sample::to_csv(&all_samples, seed),
        report_html,
        blobs: needed,
        hosts: derived_hosts,
    })
}
