//! Sync benchmark: how fast one `Syncer::sync_once` pass puts a ledger's objects into a local S3
//! server, beside `aws s3 sync` (awscli) uploading the very same files to the same server in the
//! same run, reported as a ratio.
//!
//! - The server is moto (`python3 -m moto.server`, pip `moto[server]==5.2.1`) on a free
//!   127.0.0.1 port, started here and killed at the end (also on panic).
//! - The data is a ledger built through the library: `BENCH_ENTRIES` entries (default 2000),
//!   each with its own `BENCH_CONTENT_BYTES` of content (default 4096, so one blob per entry),
//!   appended in batches of 16 (one checkpoint per batch).
//! - Ours: `sync::open` + `sync_once` to `s3://evidence-bench/ours-<run>/<host>/` (a fresh
//!   prefix per run, so every run uploads everything), at most `UPLOAD_CONCURRENCY` (8) PUTs in
//!   flight, each with `If-None-Match: *` and a SHA-256 checksum, stage after stage.
//! - Reference: the objects of the same `SyncPlan` (plus the `checkpoint` pointer) written to
//!   a directory beforehand, then `aws s3 sync DIR s3://evidence-bench/awscli-<run>/` timed as a
//!   whole process (Python start-up and its ListObjectsV2 of the target included, as
//!   `sync::open`, the anchoring GET and the plan are included on our side). awscli runs up to
//!   10 requests at once by default and has no stage barriers.
//! - `BENCH_RUNS` (default 2) runs of ours-then-awscli, so one cold start does not decide.
//!
//! moto is a single Python process (werkzeug, threads under the GIL): both sides are largely
//! bounded by how fast it answers, so the ratio says more than the absolute rates, which are
//! far below what real S3 (or MinIO) sustains. The table shows the CPU seconds moto spent in
//! each timed phase, and the client's own (this process for ours, the `aws` child for awscli):
//! moto CPU close to the wall time means the server was the bottleneck.
//! The request count (from moto's log) covers the whole run, the untimed checks too (each side's
//! objects are listed after its phase to confirm the count and bytes); any status other than
//! 2xx beyond the anchoring 404s would mean retries or errors.
//!
//! Run: `cargo bench -p evidence-agent --bench sync` (needs `python3` with moto and `aws`).

mod common;

use common::env_num;
use common::moto::{Moto, AWS_ENV};
use common::process::rusage_seconds;
use common::table::{self, Row};

use evidence_agent::ledger::{Ledger, LEDGER_FILE};
use evidence_agent::{config, keys, sync};
use std::fs;
use std::time::Instant;

const HOST: &str = "bench-host";
const BUCKET: &str = "evidence-bench";
const BATCH: u64 = 16;
/// `size` bytes of content unique to entry `i`: its index in hex, then pseudo-random hex.
fn content(i: u64, size: usize) -> Vec<u8> {
    let mut bytes = format!("{i:016x}").into_bytes();
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while bytes.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend(
            x.to_le_bytes()
                .iter()
                .map(|b| b"0123456789abcdef"[(b & 15) as usize]),
        );
    }
    bytes.truncate(size);
    bytes
}

/// One timed phase of one side.
struct Timing {
    seconds: f64,
    client_cpu: f64,
    moto_cpu: f64,
}

fn main() {
    let entries = env_num("BENCH_ENTRIES", 2000);
    let content_bytes = env_num("BENCH_CONTENT_BYTES", 4096) as usize;
    let runs = env_num("BENCH_RUNS", 2);
    assert!(
        content_bytes >= 16,
        "BENCH_CONTENT_BYTES must be at least 16"
    );
    // Before any thread exists: the SDK reads credentials and region from the environment.
    for (k, v) in AWS_ENV {
        std::env::set_var(k, v);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let key_path = data_dir.join("keys").join("host.key");
    let name = keys::key_name(HOST);
    keys::generate(&key_path, &name).expect("generate key");
    let signer = keys::load(&key_path, Some(&name)).expect("load key");

    let moto = Moto::start(&dir.path().join("moto.log"));
    moto.aws(&["s3api", "create-bucket", "--bucket", BUCKET]);

    let t = Instant::now();
    let mut ledger =
        Ledger::open(&data_dir.join(LEDGER_FILE), HOST, signer.clone()).expect("open ledger");
    let mut i = 0;
    while i < entries {
        let end = (i + BATCH).min(entries);
        ledger
            .append(
                (i..end)
                    .map(|k| common::ok_entry(k, "command", content(k, content_bytes)))
                    .collect(),
            )
            .expect("append");
        i = end;
    }
    let build_seconds = t.elapsed().as_secs_f64();

    let config_for = |run: u64| {
        let text = format!(
            "host_id = \"{HOST}\"\ndata_dir = \"{}\"\n\n[s3]\nbucket = \"{BUCKET}\"\n\
             prefix = \"ours-{run}\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\
             force_path_style = true\n",
            data_dir.display(),
            moto.url()
        );
        config::parse(&dir.path().join("agent.toml"), &text, None)
            .unwrap_or_else(|e| panic!("bench config:\n{e}\n{text}"))
    };

    // The reference files: exactly what the first sync pass will upload.
    let first = config_for(1);
    let s3 = first.s3.clone().expect("[s3]");
    let plan = ledger
        .sync_plan(&sync::location(&s3, HOST))
        .expect("sync plan");
    let (objects, bytes) = (plan.objects() as u64, plan.bytes());
    let files = dir.path().join("files");
    for object in plan.stages.iter().flatten() {
        let path = files.join(&object.key);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        let body = ledger.object_bytes(&object.source).expect("object bytes");
        assert_eq!(body.len() as u64, object.size, "{}", object.key);
        fs::write(&path, body).expect("write object");
    }
    let pointer = plan.pointer.as_ref().expect("a pointer checkpoint");
    fs::write(files.join("checkpoint"), &pointer.note).expect("write checkpoint");
    drop(ledger);

    let t = Instant::now();
    moto.aws(&["--version"]);
    let aws_startup = t.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut results = Vec::new();
    for run in 1..=runs {
        // Ours.
        let config = config_for(run);
        let s3 = config.s3.clone().expect("[s3]");
        let signer = keys::load(&key_path, Some(&name)).expect("load key");
        let (cpu0, moto0, t) = (
            rusage_seconds(libc::RUSAGE_SELF),
            moto.cpu_seconds(),
            Instant::now(),
        );
        let (report, sync_seconds) = runtime.block_on(async {
            let syncer = sync::open(&config, &s3, signer).await.expect("sync::open");
            let t = Instant::now();
            let report = syncer
                .sync_once()
                .await
                .unwrap_or_else(|e| panic!("sync_once: {e}\n--- moto\n{}", moto.log()));
            (report, t.elapsed().as_secs_f64())
        });
        let ours = Timing {
            seconds: t.elapsed().as_secs_f64(),
            client_cpu: rusage_seconds(libc::RUSAGE_SELF) - cpu0,
            moto_cpu: moto.cpu_seconds() - moto0,
        };
        assert_eq!(
            (
                report.uploaded as u64,
                report.uploaded_bytes,
                report.already_there
            ),
            (objects, bytes, 0),
            "run {run}: the pass did not upload exactly the plan"
        );
        assert_eq!(
            moto.count(BUCKET, &format!("ours-{run}/")),
            (objects, bytes)
        );

        // awscli, same files, same server.
        let target = format!("s3://{BUCKET}/awscli-{run}/");
        let files_arg = files.to_str().expect("UTF-8 temp path");
        let (cpu0, moto0, t) = (
            rusage_seconds(libc::RUSAGE_CHILDREN),
            moto.cpu_seconds(),
            Instant::now(),
        );
        moto.aws(&["s3", "sync", "--only-show-errors", files_arg, &target]);
        let reference = Timing {
            seconds: t.elapsed().as_secs_f64(),
            client_cpu: rusage_seconds(libc::RUSAGE_CHILDREN) - cpu0,
            moto_cpu: moto.cpu_seconds() - moto0,
        };
        assert_eq!(
            moto.count(BUCKET, &format!("awscli-{run}/")),
            (objects, bytes)
        );
        results.push((run, ours, sync_seconds, reference));
    }
    let (requests, not_ok) = moto.statuses();
    drop(moto);

    let mb = bytes as f64 / 1e6;
    println!(
        "sync to moto: {entries} entries of {content_bytes} B content (built in {build_seconds:.1} s), \
         {objects} objects, {bytes} bytes ({mb:.1} MB); `aws --version` alone takes {aws_startup:.2} s"
    );
    println!("moto logged {requests} requests; not 2xx: {not_ok:?}");
    println!("run  side     seconds   objects/s      MB/s   client CPU s   moto CPU s (of wall)");
    let row = |run: u64, side: &str, t: &Timing| {
        println!(
            "{run:>3}  {side:<7} {:>8.2} {:>11.0} {:>9.2} {:>14.2} {:>12.2} ({:>3.0}%)",
            t.seconds,
            objects as f64 / t.seconds,
            mb / t.seconds,
            t.client_cpu,
            t.moto_cpu,
            100.0 * t.moto_cpu / t.seconds
        );
    };
    let ours_s = common::median(results.iter().map(|r| r.1.seconds).collect());
    let ref_s = common::median(results.iter().map(|r| r.3.seconds).collect());
    table::record(Row {
        benchmark: format!("sync to moto, {objects} objects"),
        ours: format!("{:.0} objects/s", objects as f64 / ours_s),
        reference: format!("aws s3 sync: {:.0} objects/s", objects as f64 / ref_s),
        ratio: format!("{:.2} of its rate", ref_s / ours_s),
        target: "-".into(),
        met: None,
    });
    for (run, ours, sync_seconds, reference) in &results {
        row(*run, "ours", ours);
        row(*run, "awscli", reference);
        println!(
            "     ratio ours/awscli objects/s: {:.2}  (sync_once alone: {sync_seconds:.2} s, {:.0} objects/s)",
            reference.seconds / ours.seconds,
            objects as f64 / sync_seconds
        );
    }
}
