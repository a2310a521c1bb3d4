//! The coverage timeline of one collector: an inline SVG over the whole period, at most
//! [`MAX_BUCKETS`] buckets each drawn as its worst slot, gaps outlined and titled.

use super::{num, E, MAX_BUCKETS, MAX_GAPS_DRAWN};
use crate::bundle::coverage::{Coverage, Gap, SlotStatus};
use crate::bundle::layout::Period;
use crate::ledger::timestamp as ts;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use std::fmt::Write;

// Timeline geometry in SVG user units: the period's axis spans x = LEFT .. LEFT + PLOT.
const LEFT: i64 = 10;
const PLOT: i64 = 980;
const TRACK_Y: i64 = 18;
const TRACK_H: i64 = 28;

/// A gap as the timeline's tooltip says it (times and counts only, nothing to escape).
pub(super) fn gap_text(g: &Gap) -> String {
    let runs = match g.runs {
        1 => "1 run".to_owned(),
        n => format!("{} runs", num(n)),
    };
    let (first, last) = (ts(g.first), ts(g.last));
    match g.first == g.last {
        true => format!("gap: {runs} missing at {first}"),
        false => format!("gap: {runs} missing from {first} to {last}"),
    }
}

/// An x coordinate in hundredths of an SVG unit, as SVG text. The geometry is integer
/// arithmetic so that every machine renders the same bytes.
fn coord(v: i64) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// How bad a slot is; a bucket is drawn as its worst slot.
fn severity(s: SlotStatus) -> u8 {
    match s {
        SlotStatus::Ok => 1,
        SlotStatus::Skipped => 2,
        SlotStatus::Failed => 3,
        SlotStatus::Missing => 4,
    }
}

pub(super) fn status_class(s: SlotStatus) -> &'static str {
    ["st-ok", "st-skipped", "st-failed", "st-missing"][severity(s) as usize - 1]
}

/// Fill of a bucket by severity; `@` stands for the timeline's id.
const FILLS: [&str; 4] = ["#2e7d32", "url(#@s)", "url(#@f)", "url(#@m)"];

/// Patterns, not just hues, tell the statuses apart in black and white: diagonal stripes =
/// missing, cross-hatch = failed, dots = skipped, light hatching = not checked. Every inline
/// SVG of a document shares one id space, so the ids carry the timeline's id (`@`).
const DEFS: &str = "<defs>\
<pattern id=\"@m\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"6\" height=\"6\" fill=\"#7f0000\"/><rect width=\"2\" height=\"6\" fill=\"#fff\"/></pattern>\n\
<pattern id=\"@f\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\"><rect width=\"5\" height=\"5\" \
fill=\"#e53935\"/><path d=\"M0 0L5 5M5 0L0 5\" stroke=\"#fff\"/></pattern>\n\
<pattern id=\"@s\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\"><rect width=\"4\" height=\"4\" \
fill=\"#ffb300\"/><circle cx=\"2\" cy=\"2\" r=\".9\"/></pattern>\n\
<pattern id=\"@n\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"8\" height=\"8\" fill=\"#f2f2f2\"/><rect width=\"1\" height=\"8\" fill=\"#bbb\"/></pattern>\n\
</defs>\n";

const GAP_STYLE: &str = "fill=\"#b71c1c\" fill-opacity=\".15\" stroke=\"#000\" \
stroke-width=\"1.2\" stroke-dasharray=\"3 2\"";

/// The legend below each timeline (so that a printed page explains itself).
const LEGEND: [(&str, &str); 7] = [
    ("fill=\"#2e7d32\"", "ok"),
    ("fill=\"url(#@f)\"", "failed"),
    ("fill=\"url(#@s)\"", "skipped"),
    ("fill=\"url(#@m)\"", "missing"),
    ("fill=\"#fff\" stroke=\"#666\"", "no run expected"),
    ("fill=\"url(#@n)\" stroke=\"#666\"", "not checked"),
    (GAP_STYLE, "gap (expected runs without any entry)"),
];

/// The inline SVG timeline of one collector over the whole period.
pub(super) fn timeline(o: &mut String, period: &Period, id: &str, c: &Coverage) {
    let ms = ((period.to - period.from).num_milliseconds() as i128).max(1);
    let offset = |t: DateTime<Utc>| ((t - period.from).num_milliseconds() as i128).clamp(0, ms);
    let x_of = |t| LEFT * 100 + (offset(t) * PLOT as i128 * 100 / ms) as i64;
    // One bucket per schedule interval when that fits (an hourly collector over a day gets 24
    // hour-wide buckets holding one run each), else MAX_BUCKETS buckets.
    let step = c.slots.windows(2).map(|w| w[1].at - w[0].at).min();
    let step = step.unwrap_or(c.to - c.from).num_milliseconds().max(1) as i128;
    let buckets = ((ms + step - 1) / step).clamp(1, MAX_BUCKETS as i128);
    let bucket = |t| (offset(t) * buckets / ms).min(buckets - 1) as usize;
    let bx = |i: usize| LEFT * 100 + (i as i128 * PLOT as i128 * 100 / buckets) as i64;
    let mut worst = vec![0u8; buckets as usize];
    for s in &c.slots {
        let b = &mut worst[bucket(s.at)];
        *b = (*b).max(severity(s.status));
    }
    let track = format!("y=\"{TRACK_Y}\" height=\"{TRACK_H}\"");
    // The period, hatched where it was not checked (before the first run, after the cutoff).
    let (x0, x1) = (x_of(c.from), x_of(c.to));
    w!(
        o,
        "<svg viewBox=\"0 0 1000 92\" role=\"img\" aria-labelledby=\"{id}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n<title id=\"{id}\">Coverage of {} from {} \
         to {}: {} expected runs, {} ok, {} gaps</title>\n{}\
         <rect x=\"{LEFT}\" {track} width=\"{PLOT}\" fill=\"url(#{id}n)\"/>\n\
         <rect x=\"{}\" {track} width=\"{}\" fill=\"#fff\"/>\n",
        E(&c.collector),
        ts(period.from),
        ts(period.to),
        num(c.slots.len() as u64),
        num(c.count(SlotStatus::Ok) as u64),
        num(c.gaps.len() as u64),
        DEFS.replace('@', id),
        coord(x0),
        coord(x1 - x0)
    );
    // Runs of equal buckets are one rectangle, which keeps a long regular history small.
    let mut i = 0;
    while i < worst.len() {
        let j = i + worst[i..].iter().take_while(|s| **s == worst[i]).count();
        if let Some(fill) = FILLS.get((worst[i] as usize).wrapping_sub(1)) {
            let (x, width, fill) = (coord(bx(i)), coord(bx(j) - bx(i)), fill.replace('@', id));
            w!(
                o,
                "<rect x=\"{x}\" {track} width=\"{width}\" fill=\"{fill}\"/>\n"
            );
        }
        i = j;
    }
    w!(
        o,
        "<rect x=\"{LEFT}\" {track} width=\"{PLOT}\" fill=\"none\" stroke=\"#666\"/>\n"
    );
    let y = TRACK_Y + TRACK_H;
    for (t, label) in ticks(period) {
        let x = x_of(t);
        let anchor = match x {
            x if x < (LEFT + 40) * 100 => "start",
            x if x > (LEFT + PLOT - 40) * 100 => "end",
            _ => "middle",
        };
        w!(
            o,
            "<line x1=\"{x}\" x2=\"{x}\" y1=\"{y}\" y2=\"{}\" stroke=\"#666\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>\n",
            y + 5,
            y + 15,
            x = coord(x)
        );
    }
    gap_bands(o, c, &|g: &Gap| {
        (bx(bucket(g.first)), bx(bucket(g.last) + 1))
    });
    let mut x = LEFT;
    for (attrs, label) in LEGEND {
        let attrs = attrs.replace('@', id);
        w!(
            o,
            "<rect x=\"{x}\" y=\"76\" width=\"12\" height=\"12\" {attrs}/>\
             <text x=\"{}\" y=\"86\">{label}</text>\n",
            x + 16
        );
        x += 16 + label.len() as i64 * 6 + 18;
    }
    w!(o, "</svg>\n");
    if c.gaps.len() > MAX_GAPS_DRAWN {
        w!(
            o,
            "<p class=\"note\">The timeline outlines the {MAX_GAPS_DRAWN} longest of {} gaps; \
             every missing run is drawn in its bucket.</p>\n",
            num(c.gaps.len() as u64)
        );
    }
}

/// Gap bands: dashed outlines over the missing buckets (`span` gives their x range), each a
/// `class="gap"` group whose `<title>` says what is missing, labelled where there is room.
fn gap_bands(o: &mut String, c: &Coverage, span: &dyn Fn(&Gap) -> (i64, i64)) {
    let mut drawn: Vec<&Gap> = c.gaps.iter().collect();
    if drawn.len() > MAX_GAPS_DRAWN {
        drawn.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.first.cmp(&b.first)));
        drawn.truncate(MAX_GAPS_DRAWN);
        drawn.sort_by_key(|g| g.first);
    }
    let mut free_from = 0;
    for g in drawn {
        let (a, b) = span(g);
        // At least 4 units wide, so that a one-run gap stays visible.
        let width = (b - a).max(400);
        let a = a.min((LEFT + PLOT) * 100 - width);
        w!(
            o,
            "<g class=\"gap\"><title>{}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" \
             height=\"{}\" {GAP_STYLE}/>",
            gap_text(g),
            coord(a),
            TRACK_Y - 3,
            coord(width),
            TRACK_H + 6
        );
        let label = format!("gap: {} missing", num(g.runs));
        // About 5.5 units per character of the 10-unit font; labels stay inside the plot (a
        // gap at the period's end is common: the agent was down) and never overlap.
        let len = label.len() as i64 * 550;
        let start = a.min((LEFT + PLOT) * 100 - len);
        if start >= free_from {
            w!(o, "<text x=\"{}\" y=\"11\">{label}</text>", coord(start));
            free_from = start + len + 600;
        }
        w!(o, "</g>\n");
    }
}

/// Date ticks in `[from, to]`: the smallest calendar step giving at most 8 of them.
pub(super) fn ticks(p: &Period) -> Vec<(DateTime<Utc>, String)> {
    const MAX: i64 = 8;
    const DAY: i64 = 86400;
    const STEPS: [i64; 11] = [
        300,
        900,
        1800,
        3600,
        7200,
        10800,
        21600,
        43200,
        DAY,
        2 * DAY,
        7 * DAY,
    ];
    let (from, to) = (p.from.timestamp(), p.to.timestamp());
    if let Some(step) = STEPS.into_iter().find(|s| (to - from) / s <= MAX) {
        // Weeks start on Monday (the epoch was a Thursday); shorter steps divide a UTC day.
        let shift = if step == 7 * DAY { 4 * DAY } else { 0 };
        let first = (from - shift + step - 1).div_euclid(step) * step + shift;
        let times = (first..=to).step_by(step as usize);
        let times = times.filter_map(|t| DateTime::from_timestamp(t, 0));
        let label = |t: DateTime<Utc>| match (step < DAY, t.hour(), t.minute()) {
            (true, h, m) if (h, m) != (0, 0) => format!("{h:02}:{m:02}"),
            _ => t.format("%Y-%m-%d").to_string(),
        };
        return times.map(|t| (t, label(t))).collect();
    }
    // The first of every k-th month; years when k is 12 or more.
    let months = |t: DateTime<Utc>| t.year() as i64 * 12 + t.month0() as i64;
    let span = months(p.to) - months(p.from);
    let k = [1, 2, 3, 6, 12, 24, 60, 120, 600, 1200]
        .into_iter()
        .find(|k| span / k < MAX);
    let k = k.unwrap_or(12000);
    let format = if k >= 12 { "%Y" } else { "%Y-%m-%d" };
    let first = |m: i64| NaiveDate::from_ymd_opt((m / 12) as i32, (m % 12) as u32 + 1, 1);
    let times = (months(p.from) / k * k..=months(p.to)).step_by(k as usize);
    let times = times
        .filter_map(first)
        .map(|d| d.and_time(NaiveTime::MIN).and_utc());
    let times = times.filter(|t| p.from <= *t && *t <= p.to);
    times.map(|t| (t, t.format(format).to_string())).collect()
}
