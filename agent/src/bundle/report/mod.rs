//! report.html: the bundle's human report (DESIGN.md §3).
//!
//! One self-contained HTML5 file: inline CSS and inline SVG only, no JavaScript, no external
//! resource, and a Content-Security-Policy that forbids loading any, because auditors open it
//! from a bundle that came from outside. It is meant to be read on screen and printed to PDF:
//! print rules keep each coverage block on one page and repeat table headers, and every colour
//! comes with a pattern or a text label so that a black-and-white print keeps the meaning.
//!
//! **Every string that comes from the log is escaped** ([`E`]): ticket titles and authors come
//! from outside, and a tampered entry must not be able to inject markup.
//!
//! **Deterministic:** the document is a pure function of [`ReportInput`] (no clock, no hash map
//! order, integer geometry), because `verify` re-renders it and compares bytes.
//!
//! **Bounded:** a collector may expect up to [`super::coverage::MAX_EXPECTED`] runs, so the
//! timeline draws at most [`MAX_BUCKETS`] buckets, and tables and lists are cut at fixed sizes,
//! saying where the rest is (population.csv, sample.csv).

use super::coverage::{Coverage, SlotStatus};
use super::hostlog::HostLog;
use super::layout::{Filters, Period, SampleSpec};
use super::population::{Class, Population};
use super::sample::Drawn;
use crate::ledger::timestamp as ts;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use std::collections::BTreeSet;
use std::fmt::{self, Write};
use timeline::{gap_text, status_class, timeline};

/// Everything the report shows. The report is a pure function of this, so that `verify` can
/// re-render it and compare bytes.
pub struct ReportInput<'a> {
    pub period: &'a Period,
    pub created_at: DateTime<Utc>,
    pub agent_version: &'a str,
    pub filters: &'a Filters,
    pub sample: Option<&'a SampleSpec>,
    pub hosts: Vec<HostReport<'a>>,
}

/// One host's part of the report.
pub struct HostReport<'a> {
    pub log: &'a HostLog,
    /// SHA256 fingerprint of the host key, as `evidence-agent key` prints it.
    pub key_fingerprint: String,
    pub coverage: &'a [Coverage],
    pub populations: &'a [Population],
    pub samples: &'a [Drawn],
}

/// Timeline buckets at most: 2.45 SVG units each, still visible when printed.
pub const MAX_BUCKETS: i64 = 400;
/// Rows shown per population or sample table; the CSV files hold all of them.
pub const MAX_ROWS: usize = 500;
/// Gaps listed in text per collector, and gaps outlined on its timeline (the longest).
pub const MAX_GAPS_LISTED: usize = 200;
pub const MAX_GAPS_DRAWN: usize = 100;
/// Evidencing entries listed per sampled row, and manual runs listed per collector.
const MAX_LISTED: usize = 20;

const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";

const CSS: &str = "<style>
:root{color-scheme:light}
body{margin:0;background:#fff;color:#1a1a1a;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 .4em} h3{font-size:1.12em;margin:1.1em 0 .4em} h4{margin:1em 0 .3em}
h2{font-size:1.3em;margin:1.8em 0 .6em;padding-bottom:.15em;border-bottom:2px solid #333}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace;font-size:.9em}
pre{padding:8px 10px;border:1px solid #bbb;background:#f5f5f5;white-space:pre-wrap;word-break:break-all}
.brk{word-break:break-all} .note{color:#444;font-size:.9em} .warn{padding:4px 10px;border-left:4px solid #b71c1c}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:.5em 0} dt{font-weight:600} dd{margin:0}
table{width:100%;margin:.4em 0 1em;border-collapse:collapse;font-size:.86em}
th,td{padding:3px 6px;border:1px solid #bbb;text-align:left;vertical-align:top} thead th{background:#eee}
.n{text-align:right;font-variant-numeric:tabular-nums}
.st-ok{color:#1b5e20} .st-failed{color:#b71c1c;font-weight:700} .st-skipped{color:#7a4f00;font-weight:700}
.st-missing{color:#7f0000;font-weight:700;text-decoration:underline}
.card,.collector{margin:12px 0;padding:4px 14px 8px;border:1px solid #ccc;border-radius:4px}
svg{display:block;width:100%;height:auto;margin:.4em 0} svg text{font:10px system-ui,Arial,sans-serif;fill:#222}
@page{margin:14mm 12mm}
@media print{body{font-size:10pt} main{max-width:none;padding:0} a{color:inherit;text-decoration:none}
h2,h3,h4{break-after:avoid} tr,li,.card,.cov{break-inside:avoid} thead{display:table-header-group}
section.host{break-before:page} .card,.collector{border:none;padding:0}}
</style>\n";

const VERIFY_HELP: &str = "<p>where <code>&lt;bundle&gt;</code> is the bundle directory or \
<code>.tar.gz</code> and each <code>&lt;host&gt;.vkey</code> (one <code>--vkey</code> per host) is \
that host's verifier key <strong>obtained from the host owner out of band</strong> (for example \
the output of <code>evidence-agent key</code> on the host), not copied from this bundle; its \
fingerprint must match the one below. Without <code>--vkey</code>, verify takes each key from the \
bundle's <code>keys/</code> and reports it as &quot;not pinned&quot;: that shows the bundle is \
consistent, not who signed it. Verify also recomputes population.csv, sample.csv and this report \
and names any file that differs.</p>\n";

/// Writes to a `String`, which cannot fail.
macro_rules! w {
    ($o:expr, $($arg:tt)*) => {{
        let _ = write!($o, $($arg)*);
    }};
}

mod timeline;

/// Text from data, escaped for HTML text and attribute values. Control characters other
/// than tab and newline (invalid in HTML) become U+FFFD.
struct E<'a>(&'a str);

impl fmt::Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\t' | '\n' => f.write_char(c)?,
                c if c.is_control() => f.write_char('\u{FFFD}')?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The HTML document.
pub fn render(input: &ReportInput) -> String {
    let mut o = String::with_capacity(1 << 16);
    let p = input.period;
    let version = E(input.agent_version);
    let (from, to) = (ts(p.from), ts(p.to));
    let created = ts(input.created_at);
    w!(
        o,
        "{HEAD}<meta name=\"generator\" content=\"evidence-agent {version}\">\n\
         <title>Evidence report {from} to {to}</title>\n{CSS}</head>\n<body>\n<main>\n<header>\n\
         <h1>SOC 2 evidence report</h1>\n<dl>\n<dt>Period</dt><dd>from {from} up to, \
         <em>not including</em>, {to} (UTC)"
    );
    // A period given as dates reads better as the days it includes.
    if p.from.time() == NaiveTime::MIN && p.to.time() == NaiveTime::MIN {
        let (first, last) = (p.from.date_naive(), (p.to - Duration::days(1)).date_naive());
        match first == last {
            true => w!(o, ": the day {first}"),
            false => w!(o, ": the days {first} through {last}"),
        }
    }
    w!(o, "</dd>\n<dt>Hosts</dt><dd>");
    list(
        &mut o,
        input.hosts.iter().map(|h| &h.log.host),
        ", ",
        "none",
    );
    w!(
        o,
        "</dd>\n<dt>Bundle created</dt><dd>{created}</dd>\n\
         <dt>Exported by</dt><dd>evidence-agent {version}</dd>\n<dt>Collectors</dt><dd>"
    );
    list(&mut o, &input.filters.collectors, ", ", "all");
    w!(o, "</dd>\n<dt>Hosts filter</dt><dd>");
    list(&mut o, &input.filters.hosts, ", ", "all hosts found");
    w!(o, "</dd>\n<dt>Sample</dt><dd>");
    match input.sample {
        Some(s) => w!(
            o,
            "size <code>{}</code> per population, seed <code class=\"brk\">{}</code>, \
             method <code>{}</code> (see sample.csv)",
            E(&s.size),
            E(&s.seed),
            E(&s.method)
        ),
        None => w!(o, "no sample was drawn"),
    }
    w!(
        o,
        "</dd>\n</dl>\n</header>\n<section id=\"verification\">\n<h2>Verification</h2>\n\
         <p>When this bundle was exported ({created}), evidence-agent {version} checked the \
         signatures of every entry and checkpoint in it, every inclusion and consistency proof, \
         and the SHA-256 digest of every file. This report is part of the bundle and cannot \
         vouch for it: check the bundle yourself, offline, with</p>\n\
         <pre>evidence-agent verify &lt;bundle&gt;"
    );
    for h in &input.hosts {
        w!(o, " --vkey {}.vkey", E(&h.log.host));
    }
    w!(o, "</pre>\n{VERIFY_HELP}");
    for (h, host) in input.hosts.iter().enumerate() {
        host_card(&mut o, h, host);
    }
    w!(o, "</section>\n");
    summary(&mut o, input);
    for (h, host) in input.hosts.iter().enumerate() {
        host_section(&mut o, p, input.sample.is_some(), h, host);
    }
    o.push_str("</main>\n</body>\n</html>\n");
    o
}

fn host_card(o: &mut String, h: usize, host: &HostReport) {
    let log = host.log;
    let (start, end) = (log.start_size(), log.end.size());
    let whole = if start == 0 {
        " (from the start of the log)"
    } else {
        ""
    };
    w!(
        o,
        "<div class=\"card\" id=\"v{h}\">\n<h3>Host {}</h3>\n<dl>\n<dt>Source</dt><dd>{}</dd>\n\
         <dt>Log range</dt><dd>[{start}, {end}): {}; every entry of this range is in the \
         bundle{whole}",
        E(&log.host),
        E(&log.source),
        count(end.saturating_sub(start), "entry", "entries")
    );
    for (what, c) in [("Start", log.start.as_ref()), ("End", Some(&log.end))] {
        let Some(c) = c else { continue };
        let time = c.checkpoint.time().map(E);
        let time = time.map_or("no time recorded".into(), |t| format!("signed at {t}"));
        w!(
            o,
            "</dd>\n<dt>{what} checkpoint</dt><dd>size {}, {time}",
            c.size()
        );
    }
    w!(
        o,
        "</dd>\n<dt>Key fingerprint</dt><dd><code class=\"brk\">{}</code></dd>\n\
         <dt>Verifier key</dt><dd><code class=\"brk\">{}</code></dd>\n</dl>\n</div>\n",
        E(&host.key_fingerprint),
        E(&log.vkey)
    );
}

/// A collector of a host with its coverage, population and sample.
type Parts<'a> = (
    &'a str,
    Option<&'a Coverage>,
    Option<&'a Population>,
    Option<&'a Drawn>,
);

/// The host's collectors, by id.
fn collectors<'a>(host: &'a HostReport) -> Vec<Parts<'a>> {
    let ids: BTreeSet<&str> = (host.coverage.iter().map(|c| c.collector.as_str()))
        .chain(host.populations.iter().map(|p| p.collector.as_str()))
        .chain(host.samples.iter().map(|d| d.collector.as_str()))
        .collect();
    let parts = |id: &'a str| -> Parts<'a> {
        let cov = host.coverage.iter().find(|c| c.collector == id);
        let pop = host.populations.iter().find(|p| p.collector == id);
        (
            id,
            cov,
            pop,
            host.samples.iter().find(|d| d.collector == id),
        )
    };
    ids.into_iter().map(parts).collect()
}

const STATUSES: [SlotStatus; 4] = [
    SlotStatus::Ok,
    SlotStatus::Failed,
    SlotStatus::Skipped,
    SlotStatus::Missing,
];

fn summary(o: &mut String, input: &ReportInput) {
    w!(
        o,
        "<section id=\"summary\">\n<h2>Summary</h2>\n<table>\n<thead><tr><th>Host</th>\
         <th>Collector</th><th class=\"n\">Expected runs</th><th class=\"n\">ok</th>\
         <th class=\"n\">failed</th><th class=\"n\">skipped</th><th class=\"n\">missing</th>\
         <th class=\"n\">Gaps</th><th class=\"n\">Manual runs</th><th class=\"n\">Population</th>\
         <th class=\"n\">Sample</th></tr></thead>\n<tbody>\n"
    );
    for (h, host) in input.hosts.iter().enumerate() {
        for (c, (id, cov, pop, drawn)) in collectors(host).into_iter().enumerate() {
            let name = E(&host.log.host);
            w!(
                o,
                "<tr><td>{name}</td><td><a href=\"#h{h}c{c}\">{}</a></td>",
                E(id)
            );
            match cov {
                Some(cov) if cov.unchecked.is_none() => {
                    w!(o, "<td class=\"n\">{}</td>", num(cov.slots.len() as u64));
                    for s in STATUSES {
                        let n = cov.count(s) as u64;
                        let class = if n > 0 { status_class(s) } else { "" };
                        w!(o, "<td class=\"n {class}\">{}</td>", num(n));
                    }
                    w!(o, "<td class=\"n\">{}</td>", num(cov.gaps.len() as u64));
                }
                _ => w!(o, "<td colspan=\"6\">coverage not checked</td>"),
            }
            let manual = num(cov.map_or(0, |c| c.manual.len() as u64));
            let rows = num(pop.map_or(0, |p| p.rows.len() as u64));
            let sample = drawn.map_or("–".into(), |d| num(d.size));
            w!(
                o,
                "<td class=\"n\">{manual}</td><td class=\"n\">{rows}</td>\
                 <td class=\"n\">{sample}</td></tr>\n"
            );
        }
    }
    w!(o, "</tbody>\n</table>\n</section>\n");
}

fn host_section(o: &mut String, period: &Period, sampled: bool, h: usize, host: &HostReport) {
    let name = E(&host.log.host);
    w!(
        o,
        "<section class=\"host\" id=\"h{h}\">\n<h2>Host {name}</h2>\n"
    );
    let parts = collectors(host);
    if parts.is_empty() {
        w!(o, "<p>No collector of this host ran in the period.</p>\n");
    }
    for (c, (id, cov, pop, drawn)) in parts.into_iter().enumerate() {
        let (id, kind) = (E(id), pop.map(|p| E(&p.kind)));
        let kind = kind.map_or(String::new(), |k| {
            format!(" <span class=\"note\">(kind {k})</span>")
        });
        w!(
            o,
            "<section class=\"collector\" id=\"h{h}c{c}\">\n\
             <h3>Collector <code>{id}</code>{kind}</h3>\n"
        );
        if let Some(cov) = cov {
            coverage(o, period, &format!("t{h}-{c}"), cov);
        }
        if let Some(pop) = pop {
            population(o, pop);
        }
        match drawn {
            Some(d) => sample(o, d, pop),
            None if sampled => w!(
                o,
                "<h4>Sample</h4>\n<p>None drawn for this collector.</p>\n"
            ),
            None => {}
        }
        w!(o, "</section>\n");
    }
    w!(o, "</section>\n");
}

fn coverage(o: &mut String, period: &Period, id: &str, c: &Coverage) {
    w!(
        o,
        "<div class=\"cov\">\n<h4>Schedule coverage</h4>\n<dl>\n<dt>Schedule</dt><dd>"
    );
    list(o, &c.schedules, ", then ", "none recorded");
    let (from, to) = (ts(c.from), ts(c.to));
    w!(
        o,
        " (UTC)</dd>\n<dt>Checked</dt><dd>from {from} \
         (its first run in the period) up to {to}"
    );
    if c.unchecked.is_none() {
        let [ok, failed, skipped, missing] = STATUSES.map(|s| c.count(s) as u64);
        let expected = c.slots.len() as u64;
        w!(
            o,
            "</dd>\n<dt>Expected runs</dt><dd>{}: {} ok{}, {} failed, {} skipped, {} missing\
             </dd>\n<dt>Gaps</dt><dd>{}",
            num(expected),
            num(ok),
            percent(ok, expected),
            num(failed),
            num(skipped),
            num(missing),
            num(c.gaps.len() as u64)
        );
    }
    let manual = num(c.manual.len() as u64);
    w!(
        o,
        "</dd>\n<dt>Manual runs</dt><dd>{manual} (not part of the schedule)"
    );
    for (i, (t, s)) in c.manual.iter().take(MAX_LISTED).enumerate() {
        let (sep, st) = (if i == 0 { ": " } else { ", " }, s.as_str());
        w!(o, "{sep}{} <span class=\"st-{st}\">{st}</span>", ts(*t));
    }
    if let Some(n) = c.manual.len().checked_sub(MAX_LISTED).filter(|n| *n > 0) {
        w!(o, ", and {} more", num(n as u64));
    }
    w!(o, "</dd>\n</dl>\n");
    if let Some(why) = &c.unchecked {
        w!(
            o,
            "<p class=\"warn\">Coverage was not checked: {}.</p>\n</div>\n",
            E(why)
        );
        return;
    }
    timeline(o, period, id, c);
    // The list may be long: outside the block kept on one page.
    w!(o, "</div>\n");
    if c.gaps.is_empty() {
        w!(o, "<p>No gaps: every expected run left an entry.</p>\n");
        return;
    }
    w!(
        o,
        "<p><strong>Gaps</strong> (expected runs that left no entry at all):</p>\n<ol>\n"
    );
    for g in c.gaps.iter().take(MAX_GAPS_LISTED) {
        w!(o, "<li>{}</li>\n", gap_text(g).trim_start_matches("gap: "));
    }
    w!(o, "</ol>\n");
    if let Some(rest) = c.gaps.get(MAX_GAPS_LISTED..).filter(|r| !r.is_empty()) {
        let runs = count(rest.iter().map(|g| g.runs).sum(), "run", "runs");
        let n = count(rest.len() as u64, "more gap", "more gaps");
        w!(o, "<p class=\"note\">{n} ({runs}) are not listed.</p>\n");
    }
}

fn population(o: &mut String, p: &Population) {
    let (what, heads) = match p.class {
        Class::Runs => (
            "every run scheduled in the period, whatever its status",
            "<th>Row</th><th>Entry</th><th>Scheduled for</th><th>Status</th><th>Items</th>",
        ),
        Class::Segments => (
            "every log segment (ok run) in the period",
            "<th>Row</th><th>Entry</th><th>Scheduled for</th><th>Path</th><th>Start offset</th>\
             <th>End offset</th><th>Items</th>",
        ),
        Class::Tickets => (
            "every change ticket seen in the period's ok snapshots",
            "<th>Ticket</th><th>Title</th><th>Author</th><th>Approvers</th><th>Approved at</th>\
             <th>Closed at</th><th>Entries</th>",
        ),
    };
    let digest = match p.class {
        Class::Tickets => "",
        _ => "<th>Content SHA-256</th>",
    };
    w!(
        o,
        "<h4>Population: {}</h4>\n<p class=\"note\">Class <em>{}</em>: {what}.</p>\n\
         <table>\n<thead><tr>{heads}{digest}</tr></thead>\n<tbody>\n",
        count(p.rows.len() as u64, "row", "rows"),
        p.class.as_str()
    );
    for r in p.rows.iter().take(MAX_ROWS) {
        let entries = entry_span(&r.entries);
        let (id, at, items) = (E(&r.id), E(&r.scheduled_for), E(&r.items));
        let (sha, st, status) = (E(&r.digest), status_name(&r.status), E(&r.status));
        let sha = format!("<td><code class=\"brk\">{sha}</code></td>");
        match p.class {
            Class::Runs => w!(
                o,
                "<tr><td>{id}</td><td class=\"n\">{entries}</td><td>{at}</td>\
                 <td class=\"st-{st}\">{status}</td><td class=\"n\">{items}</td>{sha}</tr>\n"
            ),
            Class::Segments => w!(
                o,
                "<tr><td>{id}</td><td class=\"n\">{entries}</td><td>{at}</td>\
                 <td class=\"brk\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{items}</td>{sha}</tr>\n",
                E(&r.segment_path),
                E(&r.segment_start),
                E(&r.segment_end)
            ),
            Class::Tickets => w!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"n\">{entries}</td></tr>\n",
                E(&r.ticket),
                E(&r.title),
                E(&r.author),
                E(&r.approvers),
                E(&r.approved_at),
                E(&r.closed_at)
            ),
        }
    }
    w!(o, "</tbody>\n</table>\n");
    if let Some(n) = p.rows.len().checked_sub(MAX_ROWS).filter(|n| *n > 0) {
        let n = count(n as u64, "more row", "more rows");
        w!(o, "<p class=\"note\">{n} in population.csv.</p>\n");
    }
}

fn sample(o: &mut String, d: &Drawn, pop: Option<&Population>) {
    w!(
        o,
        "<h4>Sample: {} of {}</h4>\n<p class=\"note\">Rule <em>{}</em>; rows ranked with \
         the bundle's seed (sample.csv gives each row's key).</p>\n",
        num(d.size),
        count(d.population_size, "row", "rows"),
        E(&d.rule)
    );
    if d.rows.is_empty() {
        w!(o, "<p>Nothing to sample.</p>\n");
        return;
    }
    w!(
        o,
        "<table>\n<thead><tr><th class=\"n\">Rank</th><th>Row</th><th>What</th>\
         <th>Evidencing entries</th></tr></thead>\n<tbody>\n"
    );
    for c in d.rows.iter().take(MAX_ROWS) {
        w!(
            o,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>",
            c.rank,
            E(&c.row_id)
        );
        // What the row is, from its population row.
        let rows = pop.map_or(&[][..], |p| &p.rows);
        let row = rows.binary_search_by(|r| r.id.as_str().cmp(&c.row_id));
        match (pop.map(|p| p.class), row.map(|i| &rows[i])) {
            (Some(Class::Tickets), Ok(r)) => w!(o, "{}", E(&r.title)),
            (Some(class), Ok(r)) => {
                let (at, st, status) = (E(&r.scheduled_for), status_name(&r.status), E(&r.status));
                w!(o, "{at} <span class=\"st-{st}\">{status}</span>");
                if class == Class::Segments {
                    w!(o, " {}", E(&r.segment_path));
                }
            }
            _ => w!(o, "–"),
        }
        w!(o, "</td><td>");
        for (i, e) in c.entries.iter().take(MAX_LISTED).enumerate() {
            w!(o, "{}{e}", if i > 0 { ", " } else { "" });
        }
        if let Some(n) = c.entries.len().checked_sub(MAX_LISTED).filter(|n| *n > 0) {
            w!(o, ", and {} more (sample.csv)", num(n as u64));
        }
        w!(o, "</td></tr>\n");
    }
    w!(o, "</tbody>\n</table>\n");
    if let Some(n) = d.rows.len().checked_sub(MAX_ROWS).filter(|n| *n > 0) {
        let n = count(n as u64, "more row", "more rows");
        w!(o, "<p class=\"note\">{n} in sample.csv.</p>\n");
    }
}

/// A status as a CSS class suffix; anything unexpected gets no styling.
fn status_name(s: &str) -> &'static str {
    match s {
        "ok" => "ok",
        "failed" => "failed",
        "skipped" => "skipped",
        _ => "other",
    }
}

/// `i`, or `first–last (n)` for a row evidenced by several entries.
fn entry_span(entries: &[u64]) -> String {
    match entries {
        [] => "–".into(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}–{last} ({})", entries.len()),
    }
}

/// Escaped items as code joined by `sep`, or `empty` when there are none.
fn list<S: AsRef<str>>(o: &mut String, items: impl IntoIterator<Item = S>, sep: &str, empty: &str) {
    let mut any = false;
    for s in items {
        w!(
            o,
            "{}<code>{}</code>",
            if any { sep } else { "" },
            E(s.as_ref())
        );
        any = true;
    }
    if !any {
        w!(o, "{empty}");
    }
}

/// `n` and the noun that agrees with it.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", num(n), if n == 1 { one } else { many })
}

/// A count with thousands separators.
pub(super) fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// ` (99.9%)`, rounded down so that it never overstates coverage.
fn percent(part: u64, whole: u64) -> String {
    let permille = (part as u128 * 1000).checked_div(whole as u128);
    permille.map_or(String::new(), |p| format!(" ({}.{}%)", p / 10, p % 10))
}

#[cfg(test)]
mod tests;
