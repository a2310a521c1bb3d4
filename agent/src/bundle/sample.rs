//! Reproducible samples (method `sha256-rank/v1`).
//!
//! For each population, every row gets the key
//! `SHA-256(seed ‖ 0x0A ‖ host ‖ 0x0A ‖ collector ‖ 0x0A ‖ row id)` (UTF-8 strings); rows are
//! ordered by key (ties, which SHA-256 makes impossible in practice, by row id) and the first
//! N are the sample, ranked 1..N. This is a uniform draw without replacement that anyone can
//! redo with `sha256sum`: the same seed and population give the same sample on any machine and
//! in any order of the rows, and adding a row to a population changes the sample only if the
//! new row's key ranks within the first N.
//!
//! `--sample auto` sizes each population by how often the control operates, as auditors do
//! (AICPA-style guidance, upper figures): many times a day 60, daily 40, weekly 15, monthly 5,
//! quarterly 2, annual 1. The frequency is the collector's schedule over the period (how many
//! times it fires); for tickets, and for collectors without a schedule, it is how many rows the
//! period produced. A population smaller than the size is taken whole.

use super::layout::Period;
use super::population::{Class, Population};
use super::BundleError;
use crate::schedule::Schedule;
use sha2::{Digest, Sha256};

pub const METHOD: &str = "sha256-rank/v1";

/// Fire times counted at most when estimating a frequency; beyond this it is "many a day".
const MAX_FIRES_COUNTED: usize = 100_000;

/// How many rows to draw per population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed(u64),
    Auto,
}

impl Size {
    pub fn parse(s: &str) -> Result<Size, BundleError> {
        if s == "auto" {
            return Ok(Size::Auto);
        }
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Size::Fixed(n)),
            _ => Err(BundleError::Invalid(format!(
                "--sample {s:?}: expected a number of rows (1 or more) or \"auto\""
            ))),
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Fixed(n) => write!(f, "{n}"),
            Size::Auto => f.write_str("auto"),
        }
    }
}

/// A fresh random seed: 128 bits, hex.
pub fn new_seed() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The key that orders `row_id` in a draw.
pub fn rank_key(seed: &str, host: &str, collector: &str, row_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for (i, part) in [seed, host, collector, row_id].iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// A drawn row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub rank: u64,
    pub row_id: String,
    pub key_hex: String,
    pub entries: Vec<u64>,
}

/// The sample of one population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    pub host: String,
    pub collector: String,
    pub class: Class,
    pub population_size: u64,
    pub size: u64,
    /// Why this size: `fixed` or the frequency `auto` found (e.g. `auto: daily`).
    pub rule: String,
    pub rows: Vec<Chosen>,
}

/// Draw the sample of `pop`.
pub fn draw(pop: &Population, size: Size, seed: &str, period: &Period) -> Drawn {
    let (wanted, rule) = match size {
        Size::Fixed(n) => (n, "fixed".to_owned()),
        Size::Auto => {
            let (name, n) = auto_size(pop, period);
            (n, format!("auto: {name}"))
        }
    };
    let mut keyed: Vec<([u8; 32], &super::population::Row)> = pop
        .rows
        .iter()
        .map(|r| (rank_key(seed, &pop.host, &pop.collector, &r.id), r))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let take = wanted.min(keyed.len() as u64);
    let rows = keyed
        .into_iter()
        .take(take as usize)
        .zip(1..)
        .map(|((key, row), rank)| Chosen {
            rank,
            row_id: row.id.clone(),
            key_hex: hex::encode(key),
            entries: row.entries.clone(),
        })
        .collect();
    Drawn {
        host: pop.host.clone(),
        collector: pop.collector.clone(),
        class: pop.class,
        population_size: pop.rows.len() as u64,
        size: take,
        rule,
        rows,
    }
}

/// The control frequency of `pop` over `period` and the sample size auditors use for it.
fn auto_size(pop: &Population, period: &Period) -> (&'static str, u64) {
    let schedule = match pop.class {
        Class::Tickets => None,
        Class::Runs | Class::Segments => pop
            .schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok()),
    };
    let occurrences = match schedule {
        Some(s) => s
            .between(period.from - chrono::Duration::milliseconds(1), period.to)
            .take_while(|t| *t < period.to)
            .take(MAX_FIRES_COUNTED)
            .count() as u64,
        None => pop.rows.len() as u64,
    };
    if occurrences == 0 {
        return ("none in the period", 0);
    }
    let hours = (period.to - period.from).num_seconds() as f64 / 3600.0 / occurrences as f64;
    match hours {
        h if h < 20.0 => ("many times a day", 60),
        h if h < 84.0 => ("daily", 40),
        h if h < 15.0 * 24.0 => ("weekly", 15),
        h if h < 45.0 * 24.0 => ("monthly", 5),
        h if h < 135.0 * 24.0 => ("quarterly", 2),
        _ => ("annual", 1),
    }
}

/// The header of sample.csv.
pub const CSV_HEADER: [&str; 12] = [
    "host",
    "collector",
    "population",
    "population_size",
    "sample_size",
    "rule",
    "seed",
    "method",
    "rank",
    "row_id",
    "rank_key",
    "entries",
];

/// sample.csv: the chosen rows of every population, each with the entries that evidence it.
pub fn to_csv(drawn: &[Drawn], seed: &str) -> Vec<u8> {
    let mut records: Vec<Vec<String>> = vec![CSV_HEADER.iter().map(|s| s.to_string()).collect()];
    for d in drawn {
        for c in &d.rows {
            records.push(vec![
                d.host.clone(),
                d.collector.clone(),
                d.class.as_str().to_owned(),
                d.population_size.to_string(),
                d.size.to_string(),
                d.rule.clone(),
                seed.to_owned(),
                METHOD.to_owned(),
                c.rank.to_string(),
                c.row_id.clone(),
                c.key_hex.clone(),
                c.entries
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ]);
        }
    }
    super::population::write_csv(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::population::Row;

    fn population(ids: &[&str], schedule: Option<&str>) -> Population {
        Population {
            host: "h".into(),
            collector: "c".into(),
            kind: "files".into(),
            class: Class::Runs,
            schedule: schedule.map(str::to_owned),
            rows: ids
                .iter()
                .map(|id| Row {
                    id: id.to_string(),
                    ..Row::default()
                })
                .collect(),
        }
    }

    fn period(days: i64) -> Period {
        let from = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        Period {
            from,
            to: from + chrono::Duration::days(days),
        }
    }

    #[test]
    fn the_key_is_sha256_of_the_newline_joined_parts() {
        // printf 's1\nh\nc\nrun:1' | sha256sum
        let expected: [u8; 32] = Sha256::digest(b"s1\nh\nc\nrun:1").into();
        assert_eq!(rank_key("s1", "h", "c", "run:1"), expected);
    }

    #[test]
    fn a_draw_ignores_row_order_and_depends_on_the_seed() {
        let ids: Vec<String> = (0..500).map(|i| format!("ticket:{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut reversed = refs.clone();
        reversed.reverse();
        let p = period(90);
        let a = draw(&population(&refs, None), Size::Fixed(25), "seed", &p);
        let b = draw(&population(&reversed, None), Size::Fixed(25), "seed", &p);
        assert_eq!(a, b);
        assert_eq!(a.rows.len(), 25);
        let c = draw(&population(&refs, None), Size::Fixed(25), "other", &p);
        assert_ne!(a.rows, c.rows);
        let small = draw(&population(&refs[..3], None), Size::Fixed(25), "seed", &p);
        assert_eq!(small.size, 3, "a small population is taken whole");
    }

    #[test]
    fn auto_sizes_follow_the_control_frequency() {
        let ids: Vec<String> = (0..400).map(|i| format!("run:{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let p = period(365);
        for (schedule, rule, size) in [
            ("0 * * * *", "auto: many times a day", 60),
            ("@daily", "auto: daily", 40),
            ("@weekly", "auto: weekly", 15),
            ("@monthly", "auto: monthly", 5),
            ("0 0 1 1,4,7,10 *", "auto: quarterly", 2),
            ("0 0 1 1 *", "auto: annual", 1),
        ] {
            let d = draw(&population(&refs, Some(schedule)), Size::Auto, "s", &p);
            assert_eq!((d.rule.as_str(), d.size), (rule, size), "{schedule}");
        }
        assert!(Size::parse("0").is_err());
        assert!(Size::parse("x").is_err());
        assert_eq!(Size::parse("auto").unwrap(), Size::Auto);
    }
}
