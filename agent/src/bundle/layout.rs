//! The files of a bundle: their paths, the manifest and the proof documents, and the period.

use super::BundleError;
use crate::tlog::Hash;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";
pub const SHA256SUMS: &str = "SHA256SUMS";
pub const POPULATION: &str = "population.csv";
pub const SAMPLE: &str = "sample.csv";
pub const REPORT: &str = "report.html";

pub fn vkey_path(host: &str) -> String {
    format!("keys/{host}.vkey")
}
pub fn checkpoint_path(host: &str, size: u64) -> String {
    format!("checkpoints/{host}/{size}")
}
pub fn entry_path(host: &str, index: u64) -> String {
    format!("entries/{host}/{index}.json")
}
pub fn inclusion_path(host: &str, index: u64) -> String {
    format!("proofs/{host}/{index}.json")
}
pub fn consistency_path(host: &str, old: u64, new: u64) -> String {
    format!("proofs/{host}/consistency-{old}-{new}.json")
}
pub fn blob_path(digest_hex: &str) -> String {
    format!("blobs/sha256/{digest_hex}")
}

/// A host id usable as one path component (config validation allows no more than this either).
pub fn check_host_id(host: &str) -> Result<(), BundleError> {
    crate::config::source::check_id(host, crate::config::MAX_HOST_ID_LEN)
        .map_err(|why| BundleError::Invalid(format!("host id {host:?} {why}")))
}

/// The reporting period `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    #[serde(with = "rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub to: DateTime<Utc>,
}

impl Period {
    /// From `--from` and `--to`: a date is a whole UTC day, so `--to 2026-03-31` includes that
    /// day; an RFC 3339 time is taken as is (and `to` is then exclusive).
    pub fn parse(from: &str, to: &str) -> Result<Period, BundleError> {
        let from_t = parse_time(from, false)?;
        let to_t = parse_time(to, true)?;
        if to_t <= from_t {
            return Err(BundleError::Invalid(format!(
                "the period is empty: --to {to} is not after --from {from}"
            )));
        }
        Ok(Period {
            from: from_t,
            to: to_t,
        })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

fn parse_time(s: &str, end_of_day: bool) -> Result<DateTime<Utc>, BundleError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        BundleError::Invalid(format!(
            "{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"
        ))
    })?;
    let date = if end_of_day {
        date.succ_opt()
            .ok_or_else(|| BundleError::Invalid(format!("{s:?} is out of range")))?
    } else {
        date
    };
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// RFC 3339 UTC to the second (or millisecond when there is one), as the ledger writes times.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::ledger::timestamp(*t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// manifest.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub agent_version: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    pub period: Period,
    pub filters: Filters,
    pub sample: Option<SampleSpec>,
    pub hosts: Vec<HostPart>,
    /// Every file but manifest.json and SHA256SUMS, sorted by path.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Collector ids the populations, samples and content are limited to (empty: all).
    pub collectors: Vec<String>,
    /// Hosts a fleet export was limited to (empty: all found).
    pub hosts: Vec<String>,
}

/// How the sample was drawn (see [`super::sample`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    /// `"auto"` or a number of rows per population.
    pub size: String,
    pub seed: String,
    pub method: String,
}

/// One host's part of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPart {
    pub host: String,
    /// Where it was exported from: `ledger` or the `s3://` host directory.
    pub source: String,
    /// First log index in the bundle; the size of the start checkpoint (0: none needed).
    pub start_size: u64,
    /// One past the last index; the size of the end checkpoint.
    pub end_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// proofs/<host>/<index>.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionDoc {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub hashes: Vec<String>,
}

/// proofs/<host>/consistency-<m>-<n>.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyDoc {
    pub old_size: u64,
    pub new_size: u64,
    pub hashes: Vec<String>,
}

pub fn encode_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

/// Proof hashes from base64, each exactly 32 bytes.
pub fn decode_hashes(hashes: &[String]) -> Result<Vec<Hash>, String> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let bytes = B64
                .decode(h)
                .map_err(|_| format!("hash {i} is not base64"))?;
            <Hash>::try_from(bytes.as_slice())
                .map_err(|_| format!("hash {i} is {} bytes, not 32", bytes.len()))
        })
        .collect()
}

/// Canonical JSON bytes of a bundle document.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    collectors::canonical::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_a_whole_day_and_to_is_inclusive() {
        let p = Period::parse("2026-01-01", "2026-03-31").unwrap();
        assert_eq!(crate::ledger::timestamp(p.from), "2026-01-01T00:00:00Z");
        assert_eq!(crate::ledger::timestamp(p.to), "2026-04-01T00:00:00Z");
        let p = Period::parse("2026-01-01T06:00:00Z", "2026-01-01T07:00:00Z").unwrap();
        assert_eq!(crate::ledger::timestamp(p.to), "2026-01-01T07:00:00Z");
        assert!(Period::parse("2026-02-01", "2026-01-01").is_err());
        assert!(Period::parse("yesterday", "2026-01-01").is_err());
    }

    #[test]
    fn host_ids_that_escape_a_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(check_host_id(bad).is_err(), "{bad:?}");
        }
        check_host_id("web-1.example_com").unwrap();
    }

    #[test]
    fn proof_hashes_must_be_32_bytes() {
        let good = encode_hashes(&[[7; 32]]);
        assert_eq!(decode_hashes(&good).unwrap(), vec![[7; 32]]);
        let short = vec![B64.encode([1u8; 31])];
        assert!(decode_hashes(&short).unwrap_err().contains("31 bytes"));
    }
}
