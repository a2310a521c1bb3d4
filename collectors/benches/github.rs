//! Throughput of `github_pull_requests`: a first run over 10,000 merged pull requests (1–2
//! reviews each) served by the local GitHub double of the tests, against a reference measured
//! in the same process on the same server.
//!
//! The reference is what any collector of this evidence must at least do: GET the same 100
//! list pages (100 pull requests each) one after the other, then the 10,000 review lists, with
//! the same headers, reading every body to the end and throwing it away: no JSON parsing, no
//! items, no canonical JSON, no hashing. It is measured twice: with the review lists 8 at a
//! time (the collector's own concurrency, so the ratio is the cost of our work per byte) and
//! one at a time (a naive sequential client). Both sides share the server, whose JSON
//! generation is most of the time on a small machine, so the ratio is a floor of our own
//! overhead rather than its measure. The machine's load (other processes) moves every
//! figure; the ratio of medians taken in alternating rounds is the number to compare.
//!
//! Run: `cargo bench -p collectors --bench github`. Prints items/s for each and the ratios.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/github/server.rs"]
mod server;
#[path = "../../agent/benches/common/table.rs"]
mod table;

use server::{at, merged_pull, GitHub, Review, TOKEN};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use table::Row;

const PULLS: u64 = 10_000;
const PAGE: u64 = 100;
const CONCURRENCY: usize = 8;
const ROUNDS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

/// Every second pull request gets a second review, a comment before the approval.
fn fixture() -> Arc<GitHub> {
    let gh = GitHub::new("");
    let pulls = (1..=PULLS)
        .map(|n| {
            let mut pull = merged_pull(n);
            if n % 2 == 0 {
                let m = i64::try_from(n).unwrap_or(0) * 10;
                pull.reviews.insert(
                    0,
                    Review {
                        id: n * 100,
                        login: "linter-bot".into(),
                        state: "COMMENTED",
                        submitted_at: at(m + 2),
                    },
                );
            }
            pull
        })
        .collect();
    gh.add_repo("hello-world", false, pulls);
    gh
}

async fn bench() {
    let started = Instant::now();
    let gh = fixture();
    let server = gh.start();
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    println!(
        "fixture: {PULLS} merged pull requests, {} reviews, made and served in {:.2}s",
        PULLS + PULLS / 2,
        started.elapsed().as_secs_f64()
    );
    let collector = common::build(
        "github_pull_requests",
        &format!(
            "base_url = {:?}\ntoken_file = {:?}\nrepos = [\"octo-org/hello-world\"]",
            server.base,
            token_file.display().to_string()
        ),
    );
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .expect("client");

    // One untimed run of each warms the connections and the allocator.
    let items = ours(collector.as_ref(), dir.path()).await;
    assert_eq!(items, PULLS, "the collector recorded every pull request");
    reference(&client, &server.base, CONCURRENCY).await;

    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        ours(collector.as_ref(), dir.path()).await;
        times[0].push(t.elapsed());
        let t = Instant::now();
        let bytes = reference(&client, &server.base, CONCURRENCY).await;
        times[1].push(t.elapsed());
        let t = Instant::now();
        reference(&client, &server.base, 1).await;
        times[2].push(t.elapsed());
        println!(
            "  round: ours {:.2}s, reference(8) {:.2}s, reference(sequential) {:.2}s; \
             {:.1} MiB of JSON a run",
            times[0].last().map_or(0.0, Duration::as_secs_f64),
            times[1].last().map_or(0.0, Duration::as_secs_f64),
            times[2].last().map_or(0.0, Duration::as_secs_f64),
            bytes as f64 / (1 << 20) as f64
        );
    }
    let rate = |samples: &mut Vec<Duration>| {
        samples.sort();
        let median = samples[samples.len() / 2];
        PULLS as f64 / median.as_secs_f64()
    };
    let [ours_t, ref8_t, ref1_t] = &mut times;
    let (ours_rate, ref8_rate, ref1_rate) = (rate(ours_t), rate(ref8_t), rate(ref1_t));
    println!("median of {ROUNDS} runs, {PULLS} items each:");
    println!("  github_pull_requests            {ours_rate:>9.0} items/s");
    println!("  reference, 8 review GETs at once {ref8_rate:>8.0} items/s");
    println!("  reference, sequential GETs      {ref1_rate:>9.0} items/s");
    println!(
        "  ratio ours / reference(8) = {:.2}, ours / reference(sequential) = {:.2}",
        ours_rate / ref8_rate,
        ours_rate / ref1_rate
    );
    table::record(Row {
        benchmark: format!("github_pull_requests, {PULLS} pull requests"),
        ours: format!("{ours_rate:.0} items/s"),
        reference: format!("same GETs, bodies discarded: {ref8_rate:.0} items/s"),
        ratio: format!("{:.2} of its rate", ours_rate / ref8_rate),
        target: "-".into(),
        met: None,
    });
}

/// A first run of the collector; returns the number of items.
async fn ours(collector: &dyn collectors::Collector, spool: &std::path::Path) -> u64 {
    let snapshot = collector
        .collect(common::ctx(spool))
        .await
        .expect("the collector's run");
    snapshot.item_count
}

/// The same requests as the collector's first run, bodies read and dropped; returns the
/// bytes read.
async fn reference(client: &reqwest::Client, base: &str, concurrency: usize) -> u64 {
    let bytes = Arc::new(AtomicU64::new(0));
    for page in 1..=PULLS.div_ceil(PAGE) {
        let url = format!(
            "{base}repos/octo-org/hello-world/pulls?state=closed&sort=updated&direction=desc&per_page={PAGE}&page={page}"
        );
        bytes.fetch_add(get(client, &url).await, Ordering::Relaxed);
    }
    let next = Arc::new(AtomicU64::new(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, base) = (client.clone(), base.to_owned());
        let (next, bytes) = (Arc::clone(&next), Arc::clone(&bytes));
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n > PULLS {
                    break;
                }
                let url =
                    format!("{base}repos/octo-org/hello-world/pulls/{n}/reviews?per_page={PAGE}");
                bytes.fetch_add(get(&client, &url).await, Ordering::Relaxed);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a reference task");
    }
    bytes.load(Ordering::Relaxed)
}

async fn get(client: &reqwest::Client, url: &str) -> u64 {
    let response = client
        .get(url)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("reference GET");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.bytes().await.expect("reference body").len() as u64
}
