//! One `[[collectors]]` table: the keys the agent owns (`id`, `kind`, `schedule`, `timeout`,
//! `enabled`) are read here; everything else is handed to the kind's constructor, whose
//! complaints are located at the key they name.

use super::source::{check_id, Location, Source};
use super::CollectorConfig;
use crate::schedule::Schedule;
use collectors::{Collector, SettingError};
use serde::Deserialize;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeTable;
use toml::Spanned;

/// Builds a collector from its kind and settings; [`collectors::registry::build`] outside tests.
pub(crate) type Builder<'b> =
    &'b dyn Fn(&str, &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>>;

/// The keys of a collector table that the agent reads itself.
const OWNED_KEYS: [&str; 5] = ["id", "kind", "schedule", "timeout", "enabled"];
/// A run that takes longer than this is stopped and recorded as failed.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// No run may be given more than a week.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest collector id (it becomes part of file names).
const MAX_ID_LEN: usize = 128;

/// Where a collector's table and each of its keys are, so that problems found later
/// (`check_environment`) point at the right line.
#[derive(Debug, Clone)]
pub(crate) struct KeyLocations {
    pub header: Location,
    pub keys: HashMap<String, Location>,
}

impl KeyLocations {
    /// The key's location, or the table's when the key is not named or not in the table.
    pub fn of(&self, key: Option<&str>) -> Location {
        key.and_then(|k| self.keys.get(k).copied())
            .unwrap_or(self.header)
    }
}

/// The message for a [`SettingError`], with the kind for context when no key is named.
pub(crate) fn setting_message(kind: &str, error: &SettingError) -> String {
    match &error.key {
        Some(_) => error.to_string(),
        None => format!("{kind} collector: {}", error.message),
    }
}

/// Read one collector table (`span` is its header, or the inline table). `ids` maps the ids
/// seen so far to the line they were first used on. Every problem found is recorded in `src`;
/// the collector is returned only if there was none.
pub(crate) fn collector(
    src: &mut Source,
    span: Range<usize>,
    table: &DeTable,
    ids: &mut HashMap<String, usize>,
    build: Builder,
) -> Option<(CollectorConfig, KeyLocations)> {
    let header = src.locate(span.start);
    let locations = KeyLocations {
        header,
        keys: table
            .iter()
            .map(|(k, _)| (k.get_ref().to_string(), src.locate(k.span().start)))
            .collect(),
    };
    let before = src.problems.len();

    let id = match table.get("id") {
        None => {
            src.error_at(header, "collector is missing required key `id`");
            None
        }
        Some(value) => src.string("id", value).and_then(|id| {
            if let Err(why) = check_id(id, MAX_ID_LEN) {
                src.error(value.span(), format!("`id` {why}"));
                return None;
            }
            let line = src.locate(value.span().start).line;
            if let Some(first) = ids.get(id) {
                let message = format!("duplicate collector id {id:?} (first used on line {first})");
                src.error(value.span(), message);
                return None;
            }
            ids.insert(id.to_owned(), line);
            Some(id.to_owned())
        }),
    };
    let kind = match table.get("kind") {
        None => {
            src.error_at(header, "collector is missing required key `kind`");
            None
        }
        Some(value) => src.non_empty("kind", value).map(str::to_owned),
    };
    let schedule = match table.get("schedule") {
        None => {
            src.error_at(header, "collector is missing required key `schedule`");
            None
        }
        Some(value) => src
            .string("schedule", value)
            .and_then(|text| match Schedule::parse(text) {
                Ok(schedule) => Some(schedule),
                Err(e) => {
                    src.error(value.span(), format!("`schedule`: {e}"));
                    None
                }
            }),
    };
    let timeout = match table.get("timeout") {
        None => Some(DEFAULT_TIMEOUT),
        Some(value) => src.string("timeout", value).and_then(|text| {
            match parse_duration(text) {
                Ok(d) if d.is_zero() => Err("must be more than zero".to_owned()),
                Ok(d) if d > MAX_TIMEOUT => Err("must be at most 7d".to_owned()),
                other => other,
            }
            .map_err(|why| src.error(value.span(), format!("`timeout` {text:?}: {why}")))
            .ok()
        }),
    };
    let enabled = match table.get("enabled") {
        None => Some(true),
        Some(value) => src.boolean("enabled", value),
    };

    let mut settings = table.clone();
    for key in OWNED_KEYS {
        settings.remove(key);
    }
    let de = toml::de::Deserializer::from(Spanned::new(span.clone(), settings));
    let settings = match toml::Table::deserialize(de) {
        Ok(settings) => Some(settings),
        Err(e) => {
            src.error_at(header, format!("collector settings: {}", e.message()));
            None
        }
    };
    let collector = match (&kind, settings) {
        (Some(kind), Some(settings)) => match build(kind, &settings) {
            Ok(collector) => Some(collector),
            Err(errors) => {
                for error in &errors {
                    src.error_at(
                        locations.of(error.key.as_deref()),
                        setting_message(kind, error),
                    );
                }
                if errors.is_empty() {
                    src.error_at(header, format!("{kind} collector: rejected its settings"));
                }
                None
            }
        },
        _ => None,
    };

    if src.problems.len() != before {
        return None;
    }
    let config = CollectorConfig {
        id: id?,
        kind: kind?,
        schedule: schedule?,
        timeout: timeout?,
        enabled: enabled?,
        collector: Arc::from(collector?),
    };
    Some((config, locations))
}

/// Parse a duration like `30s`, `5m`, `1h30m`, `1d`, `250ms`: numbers with units `d`, `h`, `m`,
/// `s`, `ms`, largest first, each at most once.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    const HELP: &str = "use a number with a unit d, h, m, s or ms, e.g. \"30s\", \"5m\", \"1h30m\"";
    if text.is_empty() {
        return Err(format!("empty duration; {HELP}"));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut next_rank = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}; {HELP}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large".to_owned())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(rank) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() && rest.is_empty() {
                format!("missing unit after {number}; {HELP}")
            } else if unit.is_empty() {
                format!("unexpected {rest:?} after {number}; {HELP}")
            } else {
                format!("unknown unit {unit:?}; {HELP}")
            });
        };
        if rank < next_rank {
            return Err("units must go from largest to smallest, each at most once".to_owned());
        }
        next_rank = rank + 1;
        total_ms = number
            .checked_mul(UNITS[rank].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| "the duration is too large".to_owned())?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).expect("valid duration");
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1d2h3m4s5ms"), Duration::from_millis(93_784_005));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("0s"), Duration::ZERO);
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            " 5m",
            "5min",
            "1m1h",
            "1m1m",
            "-5s",
            "1.5h",
            "5M",
            "99999999999999999999s",
            "999999999999999d",
            "5m!",
            "é",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_duration("5min")
            .unwrap_err()
            .contains("unknown unit \"min\""));
    }
}
