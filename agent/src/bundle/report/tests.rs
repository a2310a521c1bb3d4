use super::timeline::ticks;
use super::*;
use crate::bundle::coverage::{Gap, Slot};
use crate::bundle::hostlog::SignedCheckpoint;
use crate::bundle::population::Row;
use crate::bundle::sample::Chosen;
use crate::tlog::note::Checkpoint;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn period() -> Period {
    let from = t("2026-01-01T00:00:00Z");
    let to = t("2026-01-11T00:00:00Z");
    Period { from, to }
}

/// A coverage of the period with these slots and its gaps (consecutive missing slots).
fn coverage(slots: Vec<Slot>) -> Coverage {
    let mut gaps: Vec<Gap> = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        let after_missing = i > 0 && slots[i - 1].status == SlotStatus::Missing;
        match (s.status, gaps.last_mut()) {
            (SlotStatus::Missing, Some(g)) if after_missing => {
                (g.last, g.runs) = (s.at, g.runs + 1)
            }
            (SlotStatus::Missing, _) => gaps.push(Gap {
                first: s.at,
                last: s.at,
                runs: 1,
            }),
            _ => {}
        }
    }
    let (from, to) = (slots.first().map_or(period().from, |s| s.at), period().to);
    let schedules = vec!["0 0 * * *".into()];
    let (host, collector) = ("web-1".into(), "users".into());
    let (manual, unchecked) = (Vec::new(), None);
    Coverage {
        host,
        collector,
        schedules,
        from,
        to,
        slots,
        gaps,
        manual,
        unchecked,
    }
}

/// A daily collector over the period, without entries on the `missing` days.
fn daily(missing: &[i64]) -> Coverage {
    let status = |d| match missing.contains(&d) {
        true => SlotStatus::Missing,
        false => SlotStatus::Ok,
    };
    let slot = |d| Slot {
        at: period().from + Duration::days(d),
        status: status(d),
    };
    coverage((0..10).map(slot).collect())
}

fn render_with(cov: &[Coverage], pops: &[Population], samples: &[Drawn]) -> String {
    let end = Checkpoint {
        origin: "evidence-agent/web-1".into(),
        size: 42,
        root: [0; 32],
        extensions: vec!["time 2026-01-11T00:00:05Z".into()],
    };
    let log = HostLog {
        host: "web-1".into(),
        source: "ledger".into(),
        vkey: "evidence-agent/web-1+0123abcd+AQ==".into(),
        start: None,
        end: SignedCheckpoint {
            note: "any text".into(),
            checkpoint: end,
        },
        entries: Vec::new(),
        consistency: Vec::new(),
    };
    let (seed, method) = ("s33d".into(), "sha256-rank/v1".into());
    let spec = SampleSpec {
        size: "auto".into(),
        seed,
        method,
    };
    render(&ReportInput {
        period: &period(),
        created_at: t("2026-01-12T08:00:00Z"),
        agent_version: "0.1.0",
        filters: &Filters::default(),
        sample: Some(&spec),
        hosts: vec![HostReport {
            log: &log,
            key_fingerprint: "SHA256:abcd".into(),
            coverage: cov,
            populations: pops,
            samples,
        }],
    })
}

#[test]
fn text_from_the_log_is_escaped() {
    let row = Row {
        id: "ticket:7".into(),
        entries: vec![3, 4, 5],
        ticket: "7".into(),
        title: "<script>alert(1)</script>".into(),
        author: "mallory\"><img src=x>".into(),
        ..Row::default()
    };
    let pop = Population {
        host: "web-1".into(),
        collector: "users".into(),
        kind: "github_pull_requests".into(),
        class: Class::Tickets,
        schedule: None,
        rows: vec![row],
    };
    let chosen = Chosen {
        rank: 1,
        row_id: "ticket:7".into(),
        key_hex: "00".into(),
        entries: vec![3, 4, 5],
    };
    let drawn = Drawn {
        host: "web-1".into(),
        collector: "users".into(),
        class: Class::Tickets,
        population_size: 1,
        size: 1,
        rule: "auto: daily".into(),
        rows: vec![chosen],
    };
    let html = render_with(&[daily(&[])], &[pop], &[drawn]);
    // In the population table and as the sampled row's description.
    assert_eq!(
        html.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
            .count(),
        2
    );
    assert!(!html.contains("<script") && !html.contains("<img"));
    assert!(html.contains("mallory&quot;&gt;&lt;img src=x&gt;"));
    assert_eq!(E("a&b'c\u{0}").to_string(), "a&amp;b&#39;c\u{FFFD}");
    assert!(html.contains("<pre>evidence-agent verify &lt;bundle&gt; --vkey web-1.vkey</pre>"));
}

#[test]
fn a_gap_is_an_svg_element_with_a_title() {
    let html = render_with(&[daily(&[4, 5, 6])], &[], &[]);
    let text = "3 runs missing from 2026-01-05T00:00:00Z to 2026-01-07T00:00:00Z";
    assert!(html.contains(&format!("<g class=\"gap\"><title>gap: {text}</title>")));
    assert!(
        html.contains(&format!("<li>{text}</li>")),
        "and in the text list"
    );
    let one = render_with(&[daily(&[9])], &[], &[]);
    assert!(one.contains("<title>gap: 1 run missing at 2026-01-10T00:00:00Z</title>"));
    assert!(!render_with(&[daily(&[])], &[], &[]).contains("class=\"gap\""));
}

#[test]
fn rendering_twice_gives_the_same_bytes() {
    let cov = [daily(&[2]), daily(&[3, 4])];
    assert_eq!(render_with(&cov, &[], &[]), render_with(&cov, &[], &[]));
}

#[test]
fn a_million_slots_stay_small() {
    // One run a minute, every third one missing: 333,333 gaps, the worst case for gaps.
    let slot = |i: i64| Slot {
        at: period().from + Duration::minutes(i),
        status: if i % 3 == 2 {
            SlotStatus::Missing
        } else {
            SlotStatus::Ok
        },
    };
    let html = render_with(&[coverage((0..1_000_000).map(slot).collect())], &[], &[]);
    assert!(html.len() < 300_000, "{} bytes", html.len());
    assert_eq!(html.matches("<g class=\"gap\">").count(), MAX_GAPS_DRAWN);
    assert!(html.contains("333,133 more gaps (333,133 runs) are not listed"));
}

#[test]
fn unchecked_coverage_shows_the_reason_instead_of_a_timeline() {
    let mut c = daily(&[]);
    c.slots.clear();
    c.unchecked = Some("its runs record no <schedule>".into());
    let html = render_with(&[c], &[], &[]);
    assert!(html.contains("Coverage was not checked: its runs record no &lt;schedule&gt;."));
    assert!(!html.contains("<svg"));
}

#[test]
fn ticks_are_calendar_steps() {
    let labels = |from, to| -> Vec<String> {
        let p = Period {
            from: t(from),
            to: t(to),
        };
        ticks(&p).into_iter().map(|(_, l)| l).collect()
    };
    let day = labels("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    assert_eq!(day[..3], ["2026-01-01", "03:00", "06:00"]);
    assert_eq!(day.len(), 9);
    let weeks = labels("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");
    assert_eq!(weeks[0], "2026-01-05", "a Monday");
    let quarter = labels("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
    assert_eq!(
        quarter,
        ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"]
    );
    assert_eq!(
        labels("2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z")[0],
        "2020"
    );
    assert_eq!(
        (num(2_000_000), percent(999, 1000)),
        ("2,000,000".into(), " (99.9%)".into())
    );
}
