//! Cron schedules with crontab(5) semantics, evaluated in UTC.
//!
//! This module owns the meaning of a collector's `schedule` key. It accepts a standard 5-field
//! crontab expression (`minute hour day-of-month month day-of-week`), a 6-field one with seconds
//! first, and the shorthands `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`/`@annually`.
//!
//! Evaluation is delegated to the `cron` crate, but the text is parsed here, field by field,
//! so that it means what crontab(5) says and not what `cron` would make of it:
//!
//! - day-of-week is `0`–`7` with `0` and `7` both Sunday and `1` Monday (`cron` counts `1` =
//!   Sunday); names `SUN`–`SAT` and months `JAN`–`DEC` are accepted, case-insensitively;
//! - when both day-of-month and day-of-week are restricted (their text does not start with
//!   `*`), a time matches if *either* matches, as crontab does; otherwise both must match;
//! - `a/n` means `a-max/n`; steps apply to the field's own range (day-of-week `*/2` is Sunday,
//!   Tuesday, Thursday, Saturday).
//!
//! Each field is reduced to an explicit set of values and handed to `cron` as a plain list, so
//! none of `cron`'s own extensions (`?`, years, …) leak in. A schedule that can never fire
//! (`0 0 30 2 *`) is rejected. Guarantees: parsing never panics, errors name the field and what
//! is wrong with it, and [`Schedule`]'s `Display` is the text exactly as written.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use std::fmt;
use std::str::FromStr;

/// A parsed schedule. See the module documentation for the accepted syntax.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    /// The schedule proper; with OR semantics, the day-of-month half.
    primary: cron::Schedule,
    /// With OR semantics (both day fields restricted), the day-of-week half.
    alternate: Option<cron::Schedule>,
}

/// Why an expression is not a valid schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty schedule; expected 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or one of {SHORTHANDS}")]
    Empty,
    #[error("{0} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (seconds first), or one of {SHORTHANDS}")]
    FieldCount(usize),
    #[error("unknown shorthand {0:?}; expected one of {SHORTHANDS}")]
    UnknownShorthand(String),
    #[error("{field} field {text:?}: {problem}")]
    Field {
        field: &'static str,
        text: String,
        problem: String,
    },
    #[error("{0:?} never fires (is the day of the month beyond the end of the month?)")]
    NeverFires(String),
    #[error("{0:?} could not be evaluated: {1}")]
    Evaluation(String, String),
}

const SHORTHANDS: &str = "@hourly, @daily, @weekly, @monthly, @yearly, @annually";

/// One crontab field: its name in errors, its range, and its names (for `names[i]` = `min + i`).
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const fn spec(name: &'static str, min: u32, max: u32, names: &'static [&'static str]) -> FieldSpec {
    FieldSpec {
        name,
        min,
        max,
        names,
    }
}

const SECOND: FieldSpec = spec("second", 0, 59, &[]);
const MINUTE: FieldSpec = spec("minute", 0, 59, &[]);
const HOUR: FieldSpec = spec("hour", 0, 23, &[]);
const DAY_OF_MONTH: FieldSpec = spec("day-of-month", 1, 31, &[]);
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const MONTH: FieldSpec = spec("month", 1, 12, &MONTHS);
/// Weekday names, the same in crontab and in `cron` (whose numbers differ).
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// crontab's day-of-week: 0–7, both ends Sunday.
const DAY_OF_WEEK: FieldSpec = spec("day-of-week", 0, 7, &WEEKDAYS);

/// The latest year `cron` evaluates; asking beyond it yields `None` (and avoids overflow).
const LAST_YEAR: i32 = 2100;

impl Schedule {
    /// Parse a crontab expression or shorthand. Surrounding whitespace is ignored.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = expr.trim();
        let expanded = if let Some(word) = trimmed.strip_prefix('@') {
            match word.to_ascii_lowercase().as_str() {
                "hourly" => "0 * * * *",
                "daily" => "0 0 * * *",
                "weekly" => "0 0 * * 0",
                "monthly" => "0 0 1 * *",
                "yearly" | "annually" => "0 0 1 1 *",
                _ => return Err(ScheduleError::UnknownShorthand(trimmed.to_owned())),
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            0 => return Err(ScheduleError::Empty),
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(ScheduleError::FieldCount(n)),
        };
        let [minute, hour, dom, month, dow] = rest else {
            return Err(ScheduleError::FieldCount(fields.len()));
        };
        let list =
            |spec: &FieldSpec, text: &str| parse_field(spec, text).map(|set| numbers(spec, set));
        let prefix = format!(
            "{} {} {}",
            list(&SECOND, seconds)?,
            list(&MINUTE, minute)?,
            list(&HOUR, hour)?
        );
        let dom_list = list(&DAY_OF_MONTH, dom)?;
        let month_list = list(&MONTH, month)?;
        let dow_list = weekdays(parse_field(&DAY_OF_WEEK, dow)?);

        let build = |dom: &str, dow: &str| {
            let text = format!("{prefix} {dom} {month_list} {dow}");
            cron::Schedule::from_str(&text)
                .map_err(|e| ScheduleError::Evaluation(expr.to_owned(), e.to_string()))
        };
        // crontab(5): "If both fields are restricted (i.e., don't start with *), the command will
        // be run when either field matches the current time."
        let or_days = !dom.starts_with('*') && !dow.starts_with('*');
        let schedule = if or_days {
            Schedule {
                source: expr.to_owned(),
                primary: build(&dom_list, "*")?,
                alternate: Some(build("*", &dow_list)?),
            }
        } else {
            Schedule {
                source: expr.to_owned(),
                primary: build(&dom_list, &dow_list)?,
                alternate: None,
            }
        };
        let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        match epoch.and_then(|t| schedule.next_after(t)) {
            Some(_) => Ok(schedule),
            None => Err(ScheduleError::NeverFires(expr.to_owned())),
        }
    }

    /// The first fire time strictly after `t`, or `None` if there is none before the end of
    /// the year 2100 (the `cron` crate's horizon).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if t.year() > LAST_YEAR {
            return None;
        }
        // `cron` knows no year before 1970; every fire time is after this instant anyway.
        let t = match Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).single() {
            Some(floor) if t < floor => floor,
            _ => t,
        };
        let first = self.primary.after(&t).next();
        let second = self.alternate.as_ref().and_then(|s| s.after(&t).next());
        match (first, second) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every fire time in `(from, to]`, in order. Lazy: take what you need.
    pub fn between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(from), move |t| self.next_after(*t))
            .take_while(move |t| *t <= to)
    }

    /// The expression exactly as written in the configuration.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Schedule {
    /// Two schedules are equal when they were written the same way.
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Schedule {}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// Parse one field into the set of its values, as a bit set indexed by value.
fn parse_field(spec: &FieldSpec, text: &str) -> Result<u64, ScheduleError> {
    let fail = |problem: String| ScheduleError::Field {
        field: spec.name,
        text: text.to_owned(),
        problem,
    };
    let mut set = 0u64;
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                let step = parse_number(step)
                    .filter(|s| *s > 0)
                    .ok_or_else(|| fail(format!("step {step:?} is not a positive number")))?;
                (base, Some(step))
            }
            None => (item, None),
        };
        let (first, last) = if base == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(spec, a).map_err(fail)?, value(spec, b).map_err(fail)?);
            if a > b {
                return Err(fail(format!("range {base} goes backwards")));
            }
            (a, b)
        } else if base.is_empty() {
            return Err(fail("empty list item".to_owned()));
        } else {
            let a = value(spec, base).map_err(fail)?;
            // `a/n` is `a-max/n`, as in the `cron` crate and cronie.
            (a, if step.is_some() { spec.max } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = first;
        while v <= last {
            set |= 1 << v;
            v = match v.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok(set)
}

/// A number or (for months and weekdays) a three-letter name, checked against the range.
fn value(spec: &FieldSpec, text: &str) -> Result<u32, String> {
    let n = if let Some(n) = parse_number(text) {
        n
    } else if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        spec.min + i as u32
    } else if text.is_empty() {
        return Err("missing value".to_owned());
    } else if spec.names.is_empty() {
        return Err(format!("{text:?} is not a number"));
    } else {
        return Err(format!(
            "{text:?} is neither a number nor one of {}",
            spec.names.join(", ")
        ));
    };
    if n < spec.min || n > spec.max {
        return Err(format!("{n} is out of range {}-{}", spec.min, spec.max));
    }
    Ok(n)
}

/// Plain decimal digits only (no sign, no spaces), at most a few of them.
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The set as a `cron` field: `*` when every value is in it, else a comma list.
fn numbers(spec: &FieldSpec, set: u64) -> String {
    let values: Vec<u32> = (spec.min..=spec.max)
        .filter(|v| set & (1 << v) != 0)
        .collect();
    if values.len() as u32 == spec.max - spec.min + 1 {
        return "*".to_owned();
    }
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// crontab weekdays (0–7, 0 and 7 Sunday) as `cron` weekday names.
fn weekdays(set: u64) -> String {
    let set = (set | (set >> 7)) & 0x7f;
    if set == 0x7f {
        return "*".to_owned();
    }
    (0..7)
        .filter(|d| set & (1 << d) != 0)
        .map(|d| WEEKDAYS[d])
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> String {
        let s = Schedule::parse(expr).expect("valid schedule");
        s.next_after(at(after)).expect("fires").to_rfc3339()
    }

    fn error(expr: &str) -> String {
        Schedule::parse(expr)
            .expect_err("invalid schedule")
            .to_string()
    }

    #[test]
    fn weekdays_follow_crontab_numbering() {
        // 2024-06-01 is a Saturday.
        assert_eq!(
            next("0 9 * * 1-5", "2024-06-01T12:00:00Z"),
            "2024-06-03T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * 1-5", "2024-06-03T09:00:00Z"),
            "2024-06-04T09:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 0", "2024-06-01T12:00:00Z"),
            "2024-06-02T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 7", "2024-06-01T12:00:00Z"),
            "2024-06-02T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 6", "2024-06-01T12:00:00Z"),
            "2024-06-08T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 5-7", "2024-06-01T12:00:00Z"),
            "2024-06-02T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * mon", "2024-06-01T12:00:00Z"),
            "2024-06-03T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * Tue-Thu", "2024-06-01T12:00:00Z"),
            "2024-06-04T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * SAT,sun", "2024-06-02T12:00:00Z"),
            "2024-06-08T00:00:00+00:00"
        );
    }

    #[test]
    fn weekday_steps_use_the_crontab_range() {
        // */2 over 0-7 is 0,2,4,6: Sunday, Tuesday, Thursday, Saturday.
        let s = Schedule::parse("0 0 * * */2").expect("valid");
        let days: Vec<_> = s
            .between(at("2024-06-01T00:00:00Z"), at("2024-06-09T00:00:00Z"))
            .map(|t| t.day())
            .collect();
        assert_eq!(days, [2, 4, 6, 8, 9]);
        // 1-5/2 is Monday, Wednesday, Friday.
        let s = Schedule::parse("0 0 * * 1-5/2").expect("valid");
        let days: Vec<_> = s
            .between(at("2024-06-01T00:00:00Z"), at("2024-06-09T00:00:00Z"))
            .map(|t| t.day())
            .collect();
        assert_eq!(days, [3, 5, 7]);
    }

    #[test]
    fn every_fifteen_minutes() {
        let s = Schedule::parse("*/15 * * * *").expect("valid");
        let times: Vec<_> = s
            .between(at("2024-06-01T10:07:00Z"), at("2024-06-01T11:00:00Z"))
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            times,
            [
                "2024-06-01T10:15:00+00:00",
                "2024-06-01T10:30:00+00:00",
                "2024-06-01T10:45:00+00:00",
                "2024-06-01T11:00:00+00:00",
            ]
        );
    }

    #[test]
    fn next_after_is_strict_and_between_is_half_open() {
        assert_eq!(
            next("*/15 * * * *", "2024-06-01T10:15:00Z"),
            "2024-06-01T10:30:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-06-01T10:14:59.9Z"),
            "2024-06-01T10:15:00+00:00"
        );
        let s = Schedule::parse("@hourly").expect("valid");
        let n = s
            .between(at("2024-06-01T10:00:00Z"), at("2024-06-01T12:00:00Z"))
            .count();
        assert_eq!(n, 2);
        assert_eq!(
            s.between(at("2024-06-01T10:00:00Z"), at("2024-06-01T10:00:00Z"))
                .count(),
            0
        );
    }

    #[test]
    fn restricted_day_fields_are_ored() {
        // Day 1 of the month OR any Sunday. 2024-06-01 is a Saturday.
        let s = Schedule::parse("0 0 1 * 0").expect("valid");
        let days: Vec<_> = s
            .between(at("2024-05-31T00:00:00Z"), at("2024-07-01T00:00:00Z"))
            .map(|t| (t.month(), t.day()))
            .collect();
        assert_eq!(
            days,
            [(6, 1), (6, 2), (6, 9), (6, 16), (6, 23), (6, 30), (7, 1)]
        );
        // A field starting with `*` is unrestricted: AND (odd days that are Mondays).
        let s = Schedule::parse("0 0 */2 * 1").expect("valid");
        let days: Vec<_> = s
            .between(at("2024-06-01T00:00:00Z"), at("2024-07-01T00:00:00Z"))
            .map(|t| t.day())
            .collect();
        assert_eq!(days, [3, 17, 1]); // 2024-07-01 is a Monday; `to` is included
    }

    #[test]
    fn shorthands() {
        assert_eq!(
            next("@weekly", "2024-06-01T12:00:00Z"),
            "2024-06-02T00:00:00+00:00"
        );
        assert_eq!(
            next("@daily", "2024-06-01T12:00:00Z"),
            "2024-06-02T00:00:00+00:00"
        );
        assert_eq!(
            next("@hourly", "2024-06-01T12:00:00Z"),
            "2024-06-01T13:00:00+00:00"
        );
        assert_eq!(
            next("@monthly", "2024-06-01T12:00:00Z"),
            "2024-07-01T00:00:00+00:00"
        );
        assert_eq!(
            next("@yearly", "2024-06-01T12:00:00Z"),
            "2025-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("@annually", "2024-06-01T12:00:00Z"),
            "2025-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        assert_eq!(
            next("*/10 * * * * *", "2024-06-01T12:00:05Z"),
            "2024-06-01T12:00:10+00:00"
        );
        assert_eq!(
            next("*/10 * * * * *", "2024-06-01T12:00:50Z"),
            "2024-06-01T12:01:00+00:00"
        );
        assert_eq!(
            next("30 0 9 * * 1", "2024-06-01T12:00:00Z"),
            "2024-06-03T09:00:30+00:00"
        );
    }

    #[test]
    fn months_names_and_lists() {
        assert_eq!(
            next("0 0 1 jan,Jul *", "2024-06-01T12:00:00Z"),
            "2024-07-01T00:00:00+00:00"
        );
        assert_eq!(
            next("5,10-12 3 * * *", "2024-06-01T03:10:00Z"),
            "2024-06-01T03:11:00+00:00"
        );
        assert_eq!(
            next("10/20 * * * *", "2024-06-01T03:31:00Z"),
            "2024-06-01T03:50:00+00:00"
        );
    }

    #[test]
    fn display_and_source_are_the_text_as_written() {
        let s = Schedule::parse(" @daily ").expect("valid");
        assert_eq!(s.source(), " @daily ");
        assert_eq!(s.to_string(), " @daily ");
    }

    #[test]
    fn rejects_bad_expressions_naming_the_problem() {
        assert!(error("* * * *").contains("4 fields"));
        assert!(error("* * * * * * *").contains("7 fields"));
        assert!(error("").contains("empty schedule"));
        assert!(error("   ").contains("empty schedule"));
        assert_eq!(
            error("60 * * * *"),
            "minute field \"60\": 60 is out of range 0-59"
        );
        assert!(error("0 24 * * *").starts_with("hour field"));
        assert!(error("0 0 0 * *").starts_with("day-of-month field"));
        assert!(error("0 0 * 13 *").starts_with("month field"));
        assert!(error("0 0 * * 8").starts_with("day-of-week field"));
        assert!(error("* * * * * 60").starts_with("day-of-week field"));
        assert!(error("61 * * * * *").starts_with("second field"));
        assert!(error("5-1 * * * *").contains("goes backwards"));
        assert!(error("*/0 * * * *").contains("step"));
        assert!(error("1,,2 * * * *").contains("empty list item"));
        assert!(error("0 0 * * funday").contains("neither a number nor one of SUN"));
        assert!(error("0 0 ? * *").starts_with("day-of-month field"));
        assert!(error("0 0 L * *").starts_with("day-of-month field"));
        assert!(error("-1 * * * *").starts_with("minute field"));
        assert!(error("+1 * * * *").starts_with("minute field"));
        assert!(error("99999999999999999999 * * * *").starts_with("minute field"));
        assert!(error("@reboot").contains("unknown shorthand"));
        assert!(error("0 0 30 2 *").contains("never fires"));
        assert!(error("garbage").contains("1 fields"));
    }

    #[test]
    fn never_panics_on_garbage() {
        let samples = [
            "\0",
            "*/",
            "/5",
            "-",
            "1-",
            "-5",
            "*-*",
            "*/*",
            "1/2/3",
            "@",
            "@@daily",
            "é * * * *",
            "* * * * \u{202e}",
            "0 0 31 2 1",
            "1-2-3 * * * *",
            ",",
            "*,",
            "0 0 * * 7-0",
        ];
        for s in samples {
            let _ = Schedule::parse(s);
        }
        // Day 31 of February never matches, but Mondays do (OR).
        assert!(Schedule::parse("0 0 31 2 1").is_ok());
        let s = Schedule::parse("* * * * *").expect("valid");
        assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(s.next_after(at("2100-12-31T23:59:00Z")), None);
        assert!(s.next_after(DateTime::<Utc>::MIN_UTC).is_some());
    }
}
