//! Evidence bundles end to end with the real binary: export → verify, every kind of tampering
//! named, reproducible samples, ticket populations, coverage gaps as findings, and hostile
//! bundles refused with a clear error.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::bundle::{copy_dir, files_under, reseal};
use evidence_agent::keys;
use evidence_agent::ledger::{Ledger, NewEntry, Outcome};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HOST: &str = "bundle-host";

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evidence-agent"))
        .args(["--config", "/nonexistent/agent.toml"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run evidence-agent")
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap()
}

/// A data directory with a key and a ledger; `runs` are appended one batch per day.
struct Host {
    _dir: tempfile::TempDir,
    data: PathBuf,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        keys::generate(&data.join("keys/host.key"), &keys::key_name(HOST)).unwrap();
        Host { _dir: dir, data }
    }

    fn append(&self, batches: Vec<Vec<NewEntry>>) {
        let signer = keys::load(&self.data.join("keys/host.key"), None).unwrap();
        let mut ledger = Ledger::open(&self.data.join("ledger.sqlite"), HOST, signer).unwrap();
        for batch in batches {
            ledger.append(batch).unwrap();
        }
    }

    fn vkey(&self) -> String {
        self.data.join("keys/host.vkey").display().to_string()
    }

    fn export(&self, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "--data-dir",
            self.data.to_str().unwrap(),
            "export",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        agent(&args)
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.data.parent().unwrap().join(name)
    }
}

/// Daily access reviews (ok, one failed) and an hourly log, March 1–10, plus February runs
/// before the period so the bundle starts at a non-zero checkpoint.
fn typical_host() -> Host {
    let host = Host::new();
    let mut batches = Vec::new();
    for d in 1..=10u32 {
        let t = day(d);
        let mut batch = vec![common::scheduled_run(
            "accounts",
            "linux_accounts",
            "@daily",
            t,
            if d == 4 {
                Outcome::Failed("cannot read /etc/shadow: permission denied".into())
            } else {
                common::ok_json(
                    format!(r#"{{"items":[{{"id":"u{}","type":"user"}}]}}"#, d % 3),
                    None,
                )
            },
        )];
        for h in 0..24 {
            batch.push(common::scheduled_run(
                "auth-log",
                "log_file",
                "0 * * * *",
                t + Duration::hours(h),
                common::ok_json(format!("line {d}-{h}\n"), None),
            ));
        }
        batches.push(batch);
    }
    let before: Vec<NewEntry> = (1..=3)
        .map(|i| {
            common::scheduled_run(
                "accounts",
                "linux_accounts",
                "@daily",
                day(1) - Duration::days(i),
                common::ok_json("{}", None),
            )
        })
        .collect();
    batches.insert(0, before);
    host.append(batches);
    host
}

const PERIOD: [&str; 4] = ["--from", "2026-03-01", "--to", "2026-03-10"];

#[test]
fn export_then_verify_round_trip_as_directory_and_tar_gz() {
    let host = typical_host();
    for name in ["bundle", "bundle.tar.gz"] {
        let out = host.scratch(name);
        let export = host.export(&out, &PERIOD);
        assert!(export.status.success(), "{}", text(&export));
        let verify = agent(&["verify", out.to_str().unwrap(), "--vkey", &host.vkey()]);
        assert!(verify.status.success(), "{name}: {}", text(&verify));
        assert!(text(&verify).contains("pinned"), "{}", text(&verify));

        let json_out = agent(&["verify", out.to_str().unwrap(), "--json"]);
        assert!(json_out.status.success(), "{}", text(&json_out));
        let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
        assert_eq!(v["ok"], true);
        let h = &v["report"]["hosts"][0];
        assert_eq!(h["pinned"], false, "no --vkey: the key is the bundle's own");
        // Three February runs precede the period: the range starts after them.
        assert_eq!(
            (h["start_size"].as_u64(), h["end_size"].as_u64()),
            (Some(3), Some(253))
        );
        assert!(text(&agent(&["verify", out.to_str().unwrap()])).contains("NOT pinned"));
    }
    let dir = host.scratch("bundle");
    let population = std::fs::read_to_string(dir.join("population.csv")).unwrap();
    // 10 daily runs (one failed) and 240 hourly segments.
    assert_eq!(
        population.matches(",accounts,linux_accounts,runs,").count(),
        10
    );
    assert_eq!(
        population.matches(",auth-log,log_file,segments,").count(),
        240
    );
    assert!(population.contains(",failed,"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "evidence-bundle/v1");
    assert_eq!(
        manifest["period"]["to"], "2026-03-11T00:00:00Z",
        "--to is inclusive"
    );
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(sums.status.success(), "sha256sum -c: {}", text(&sums));
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let s = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(s)).unwrap();
}

#[test]
fn every_kind_of_tampering_is_detected_and_named() {
    let host = typical_host();
    let pristine = host.scratch("pristine");
    assert!(host.export(&pristine, &PERIOD).status.success());
    let blob = files_under(&pristine)
        .into_iter()
        .find(|f| f.starts_with("blobs/"))
        .unwrap();
    let other = Host::new();
    type Tamper = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Tamper, bool, &str)> = vec![
        (
            "blob content",
            Box::new({
                let blob = blob.clone();
                move |d: &Path| std::fs::write(d.join(&blob), b"forged").unwrap()
            }),
            true,
            "content does not match its name",
        ),
        (
            "envelope",
            Box::new(|d: &Path| {
                edit(&d.join("entries/bundle-host/10.json"), |s| {
                    s.replacen("\"sig\":\"", "\"sig\":\"AAAA", 1)
                })
            }),
            true,
            "entries/bundle-host/10.json: envelope signature",
        ),
        (
            "inclusion proof",
            Box::new(|d: &Path| {
                edit(&d.join("proofs/bundle-host/10.json"), |s| {
                    let mut v: Value = serde_json::from_str(&s).unwrap();
                    v["hashes"][0] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
                    v.to_string()
                })
            }),
            true,
            "proofs/bundle-host/10.json: does not prove",
        ),
        (
            "proof of the wrong length",
            Box::new(|d: &Path| {
                edit(&d.join("proofs/bundle-host/11.json"), |s| {
                    let mut v: Value = serde_json::from_str(&s).unwrap();
                    v["hashes"].as_array_mut().unwrap().pop();
                    v.to_string()
                })
            }),
            true,
            "proofs/bundle-host/11.json: does not prove",
        ),
        (
            "hash of the wrong size",
            Box::new(|d: &Path| {
                edit(&d.join("proofs/bundle-host/12.json"), |s| {
                    let mut v: Value = serde_json::from_str(&s).unwrap();
                    v["hashes"][0] = json!("AAAA");
                    v.to_string()
                })
            }),
            true,
            "proofs/bundle-host/12.json: hash 0 is 3 bytes, not 32",
        ),
        (
            "end checkpoint",
            Box::new(|d: &Path| {
                edit(&d.join("checkpoints/bundle-host/253"), |s| {
                    s.replacen("253\n", "254\n", 1)
                })
            }),
            true,
            "checkpoints/bundle-host/253:",
        ),
        (
            "consistency proof",
            Box::new(|d: &Path| {
                edit(&d.join("proofs/bundle-host/consistency-3-253.json"), |s| {
                    let mut v: Value = serde_json::from_str(&s).unwrap();
                    v["hashes"][0] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
                    v.to_string()
                })
            }),
            true,
            "consistency-3-253.json: does not prove",
        ),
        (
            "removed entry",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("entries/bundle-host/20.json")).unwrap()
            }),
            true,
            "entries/bundle-host/20.json: missing",
        ),
        (
            "population row",
            Box::new(|d: &Path| {
                edit(&d.join("population.csv"), |s| {
                    s.replacen(",failed,", ",ok,", 1)
                })
            }),
            true,
            "population.csv: differs from the populations",
        ),
        (
            "sample seed",
            Box::new(|d: &Path| {
                edit(&d.join("manifest.json"), |s| {
                    s.replace(
                        "\"sample\":null",
                        "\"sample\":{\"method\":\"sha256-rank/v1\",\"seed\":\"x\",\"size\":\"2\"}",
                    )
                })
            }),
            true,
            "sample.csv: differs from the sample",
        ),
        (
            "report",
            Box::new(|d: &Path| edit(&d.join("report.html"), |s| s + "<p>all good</p>")),
            true,
            "report.html: differs",
        ),
        (
            "added file",
            Box::new(|d: &Path| {
                std::fs::write(d.join("entries/bundle-host/9999.json"), "{}").unwrap()
            }),
            true,
            "entries/bundle-host/9999.json: not part of the host's exported range",
        ),
        (
            "unsealed edit",
            Box::new(|d: &Path| edit(&d.join("sample.csv"), |s| s + "x\n")),
            false,
            "sample.csv: content does not match SHA256SUMS",
        ),
        (
            "SHA256SUMS line",
            Box::new(|d: &Path| edit(&d.join("SHA256SUMS"), |s| s.replacen("  ", " ", 1))),
            false,
            "SHA256SUMS: line 1: not `<sha256>  <path>`",
        ),
        (
            "replaced key",
            Box::new({
                let vkey = other.data.join("keys/host.vkey");
                move |d: &Path| {
                    // Another key under this host's name: signatures must fail against the pin.
                    let text = std::fs::read_to_string(&vkey).unwrap();
                    std::fs::write(d.join("keys/bundle-host.vkey"), text).unwrap()
                }
            }),
            true,
            "keys/bundle-host.vkey: is not the pinned key",
        ),
    ];
    for (i, (what, tamper, sealed, expected)) in cases.iter().enumerate() {
        let copy = host.scratch(&format!("tampered-{i}"));
        copy_dir(&pristine, &copy);
        tamper(&copy);
        if *sealed {
            reseal(&copy);
        }
        let out = agent(&["verify", copy.to_str().unwrap(), "--vkey", &host.vkey()]);
        assert!(
            !out.status.success(),
            "{what}: verify passed:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains(expected),
            "{what}: expected {expected:?} in:\n{}",
            text(&out)
        );
    }
}

#[test]
fn samples_are_reproducible_from_the_seed() {
    let host = typical_host();
    let sample_of = |name: &str, args: &[&str]| {
        let out = host.scratch(name);
        let mut all = PERIOD.to_vec();
        all.extend_from_slice(args);
        let export = host.export(&out, &all);
        assert!(export.status.success(), "{}", text(&export));
        let verify = agent(&["verify", out.to_str().unwrap(), "--vkey", &host.vkey()]);
        assert!(verify.status.success(), "{}", text(&verify));
        std::fs::read_to_string(out.join("sample.csv")).unwrap()
    };
    let a = sample_of("s1", &["--sample", "5", "--seed", "audit-2026"]);
    let b = sample_of("s2", &["--sample", "5", "--seed", "audit-2026"]);
    let c = sample_of("s3", &["--sample", "5", "--seed", "another"]);
    assert_eq!(a, b, "same seed and population: same sample");
    assert_ne!(a, c, "another seed: another sample");
    assert_eq!(a.lines().count(), 1 + 5 + 5, "5 rows per population:\n{a}");
    // Each row's rank key is SHA-256(seed \n host \n collector \n row id), as documented.
    let row = a.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split(',').collect();
    let key = hex::encode(Sha256::digest(
        format!("audit-2026\n{HOST}\n{}\n{}", cells[1], cells[9]).as_bytes(),
    ));
    assert_eq!(cells[10], key, "{row}");

    let auto = sample_of("s4", &["--sample", "auto", "--seed", "audit-2026"]);
    // Daily access reviews: 40 asked, the population of 10 taken whole; hourly log: 60.
    assert!(auto.contains(",accounts,runs,10,10,auto: daily,"), "{auto}");
    assert!(
        auto.contains(",auth-log,segments,240,60,auto: many times a day,"),
        "{auto}"
    );
    let seedless = host.scratch("s5");
    let mut args = PERIOD.to_vec();
    args.extend_from_slice(&["--sample", "3"]);
    let out = host.export(&seedless, &args);
    assert!(
        text(&out).contains("seed "),
        "a random seed is printed: {}",
        text(&out)
    );
}

fn ticket(id: u32, approved: bool) -> Value {
    json!({
        "type": "change", "id": format!("acme/api#{id}"), "title": format!("=HYPERLINK(\"x\") change {id}"),
        "author": "alice", "approvers": if approved { json!(["bob", "carol"]) } else { json!([]) },
        "approved_at": if approved { json!("2026-03-01T10:00:00Z") } else { Value::Null },
        "merged_at": "2026-03-01T11:00:00Z",
    })
}

#[test]
fn a_ticket_seen_in_many_snapshots_is_one_population_row() {
    let host = Host::new();
    // 30 daily snapshots; ticket 1 is in every one, ticket 2 from day 10, ticket 3 on day 30.
    let batches = (1..=30u32)
        .map(|d| {
            let mut items = vec![ticket(1, true)];
            if d == 15 {
                // A collector listing a ticket twice: still one entry that saw it.
                items.push(ticket(1, true));
            }
            if d >= 10 {
                items.push(ticket(2, d >= 12));
            }
            if d == 30 {
                items.push(ticket(3, false));
            }
            let body = serde_json::to_vec(&json!({ "items": items })).unwrap();
            let t = Utc.with_ymd_and_hms(2026, 4, d, 6, 0, 0).unwrap();
            vec![common::scheduled_run(
                "changes",
                "github_pull_requests",
                "0 6 * * *",
                t,
                common::ok_json(body, None),
            )]
        })
        .collect();
    host.append(batches);
    let out = host.scratch("tickets");
    let export = host.export(
        &out,
        &[
            "--from",
            "2026-04-01",
            "--to",
            "2026-04-30",
            "--sample",
            "3",
            "--seed",
            "s",
        ],
    );
    assert!(export.status.success(), "{}", text(&export));
    let population = std::fs::read_to_string(out.join("population.csv")).unwrap();
    let rows: Vec<&str> = population.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{population}");
    assert!(
        rows[0].contains("ticket:acme/api#1,0,29,"),
        "first and last entry: {}",
        rows[0]
    );
    assert!(
        rows[1].contains("ticket:acme/api#2,9,29,") && rows[1].contains("bob;carol"),
        "{}",
        rows[1]
    );
    // A title that a spreadsheet would run as a formula is neutralized.
    assert!(rows[0].contains("'=HYPERLINK"), "{}", rows[0]);
    let verify = agent(&["verify", out.to_str().unwrap(), "--vkey", &host.vkey()]);
    assert!(verify.status.success(), "{}", text(&verify));
    let independent = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/independent_bundle.py"))
        .arg(&out)
        .args(["--vkey", &host.vkey()])
        .output()
        .unwrap();
    assert!(independent.status.success(), "{}", text(&independent));
    let sample = std::fs::read_to_string(out.join("sample.csv")).unwrap();
    assert_eq!(
        sample.lines().count(),
        4,
        "the whole population of 3:\n{sample}"
    );
    // Every snapshot that holds a sampled ticket is evidence for it, each once (day 15 lists
    // ticket 1 twice).
    let every_day: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    let ticket1 = sample
        .lines()
        .find(|l| l.contains(",ticket:acme/api#1,"))
        .unwrap();
    assert!(
        ticket1.ends_with(&format!(",{}", every_day.join(" "))),
        "{ticket1}"
    );
}

#[test]
fn a_coverage_gap_is_a_finding_with_its_dates() {
    let host = Host::new();
    // Hourly on March 2, but 05:00 and 06:00 left no entry at all; 09:00 failed (not a gap).
    let batches = (0..24)
        .filter(|h| *h != 5 && *h != 6)
        .map(|h| {
            let outcome = if h == 9 {
                Outcome::Failed("timeout".into())
            } else {
                common::ok_json("{}", None)
            };
            vec![common::scheduled_run(
                "backups",
                "files",
                "0 * * * *",
                day(2) + Duration::hours(h),
                outcome,
            )]
        })
        .collect();
    host.append(batches);
    let out = host.scratch("gap");
    let export = host.export(&out, &["--from", "2026-03-02", "--to", "2026-03-02"]);
    assert!(export.status.success(), "{}", text(&export));
    assert!(
        text(&export).contains("1 coverage gap"),
        "{}",
        text(&export)
    );
    let verify = agent(&[
        "verify",
        out.to_str().unwrap(),
        "--vkey",
        &host.vkey(),
        "--json",
    ]);
    assert!(!verify.status.success());
    let v: Value = serde_json::from_slice(&verify.stdout).unwrap();
    let findings = v["report"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0]["message"],
        "bundle-host/backups: gap: 2 scheduled run(s) from 2026-03-02T05:00:00Z to 2026-03-02T06:00:00Z left no entry"
    );
}

/// A .tar.gz with one hand-made member (name bytes written as given, so `..` is possible).
fn hostile_tar(path: &Path, name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) {
    let file = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    let bytes = name.as_bytes();
    header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    if let Some(target) = link {
        header.set_link_name(target).unwrap();
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
}

#[test]
fn hostile_bundles_are_refused_with_a_clear_error() {
    let host = typical_host();
    type Make = Box<dyn Fn(&Path) -> PathBuf>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "path traversal",
            Box::new(|d: &Path| {
                let p = d.join("traversal.tar.gz");
                hostile_tar(&p, "../../evil", tar::EntryType::Regular, b"x", None);
                p
            }),
            "../../evil",
        ),
        (
            "symlink member",
            Box::new(|d: &Path| {
                let p = d.join("symlink.tar.gz");
                hostile_tar(
                    &p,
                    "manifest.json",
                    tar::EntryType::Symlink,
                    b"",
                    Some("/etc/passwd"),
                );
                p
            }),
            "manifest.json",
        ),
        (
            "not gzip",
            Box::new(|d: &Path| {
                let p = d.join("garbage.tar.gz");
                std::fs::write(&p, b"this is not a bundle").unwrap();
                p
            }),
            "garbage.tar.gz",
        ),
        (
            "symlink in a directory bundle",
            Box::new(|d: &Path| {
                let b = d.join("linked");
                std::fs::create_dir_all(&b).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", b.join("manifest.json")).unwrap();
                b
            }),
            "manifest.json",
        ),
        (
            "malformed manifest",
            Box::new(|d: &Path| {
                let b = d.join("badjson");
                std::fs::create_dir_all(&b).unwrap();
                std::fs::write(
                    b.join("manifest.json"),
                    b"{\"format\": \"evidence-bundle/v1\",",
                )
                .unwrap();
                b
            }),
            "manifest.json: not a bundle manifest",
        ),
        (
            "manifest host escaping the directory",
            Box::new(|d: &Path| {
                let b = d.join("badhost");
                std::fs::create_dir_all(&b).unwrap();
                let m = json!({"format": "evidence-bundle/v1", "agent_version": "0", "created_at": "2026-01-01T00:00:00Z",
                "period": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
                "filters": {"collectors": [], "hosts": []}, "sample": null,
                "hosts": [{"host": "../x", "source": "ledger", "start_size": 0, "end_size": 1}], "files": []});
                std::fs::write(b.join("manifest.json"), m.to_string()).unwrap();
                b
            }),
            "host id \"../x\"",
        ),
    ];
    let scratch = host.scratch("hostile");
    std::fs::create_dir_all(&scratch).unwrap();
    for (what, make, expected) in cases {
        let path = make(&scratch);
        let out = agent(&["verify", path.to_str().unwrap()]);
        assert!(!out.status.success(), "{what}: accepted");
        let t = text(&out);
        assert!(t.contains(expected), "{what}: expected {expected:?} in {t}");
        assert!(!t.contains("panicked"), "{what}: {t}");
    }
    assert!(!scratch.parent().unwrap().join("evil").exists());
}
