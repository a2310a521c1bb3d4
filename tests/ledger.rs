//! The ledger on real SQLite files: appends, proofs against signed checkpoints, the append-only
//! guard, and tamper detection by `verify` naming the entry or checkpoint.

use chrono::{TimeZone, Utc};
use ed25519_dalek::SigningKey;
use evidence_agent::ledger::{verify::verify, Ledger, NewEntry, Outcome};
use evidence_agent::tlog::merkle;
use evidence_agent::tlog::note::{Checkpoint, NoteSigner};
use rusqlite::Connection;

mod common;
use std::path::{Path, PathBuf};

fn signer() -> NoteSigner {
    NoteSigner::new(
        "evidence-agent/test-host",
        SigningKey::from_bytes(&[42; 32]),
    )
    .unwrap()
}

fn run(i: u64, body: &str) -> NewEntry {
    let outcome = match i % 7 {
        5 => Outcome::Failed(format!("cannot read /nope/{i}: No such file")),
        6 => Outcome::Skipped("previous run still going".into()),
        _ => common::ok_json(body, Some(serde_json::json!({"offset": i}))),
    };
    common::test_entry(
        i,
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        outcome,
    )
}

/// A ledger with `n` entries appended in batches of 1, 2, 3, … (so several checkpoints).
fn ledger_with(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("ledger.sqlite");
    let mut ledger = Ledger::open(&path, "test-host", signer()).unwrap();
    let (mut i, mut batch) = (0u64, 1u64);
    while i < n {
        let entries: Vec<_> = (i..(i + batch).min(n))
            .map(|k| run(k, &format!("{{\"items\":[{{\"id\":\"{}\"}}]}}", k % 4)))
            .collect();
        i += entries.len() as u64;
        ledger.append(entries).unwrap();
        batch += 1;
    }
    path
}

/// Run `sql` against the file as an attacker who dropped the append-only guard.
fn tamper(path: &Path, sql: &str) {
    common::attacker(path).execute_batch(sql).unwrap();
}

fn findings(path: &Path) -> Vec<String> {
    let ledger = Ledger::open_read_only(path).unwrap();
    let report = verify(&ledger, &signer().verifier()).unwrap();
    report.findings.iter().map(|f| f.to_string()).collect()
}

#[test]
fn appended_entries_verify_and_proofs_check_against_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 40);
    let ledger = Ledger::open_read_only(&path).unwrap();
    assert_eq!(ledger.size().unwrap(), 40);
    let report = verify(&ledger, &signer().verifier()).unwrap();
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(report.entries, 40);
    assert!(report.checkpoints >= 8);

    let checkpoints = ledger.checkpoints().unwrap();
    let v = signer().verifier();
    let latest = checkpoints.last().unwrap();
    let cp = Checkpoint::parse(v.open(&latest.note).unwrap()).unwrap();
    assert_eq!(cp.size, 40);
    assert!(cp.time().is_some());
    for i in [0u64, 1, 17, 39] {
        let e = ledger.entry(i).unwrap().unwrap();
        let proof = ledger.inclusion_proof(i, cp.size).unwrap();
        assert!(merkle::verify_inclusion(
            &merkle::leaf_hash(&e.envelope),
            i,
            cp.size,
            &proof,
            &cp.root
        ));
    }
    for old in &checkpoints {
        let old_cp = Checkpoint::parse(v.open(&old.note).unwrap()).unwrap();
        let proof = ledger.consistency_proof(old_cp.size, cp.size).unwrap();
        assert!(merkle::verify_consistency(
            old_cp.size,
            cp.size,
            &old_cp.root,
            &cp.root,
            &proof
        ));
    }
    // Cursors follow the last committed ok run of each collector.
    assert!(ledger.cursor("c0").unwrap().is_some());
}

#[test]
fn the_database_refuses_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 3);
    let conn = Connection::open(&path).unwrap();
    for sql in [
        "UPDATE entries SET status = 'ok'",
        "DELETE FROM entries WHERE idx = 2",
        "DELETE FROM checkpoints",
        "UPDATE blob_chunks SET data = x'00'",
        "DELETE FROM tree_nodes",
    ] {
        let err = conn.execute_batch(sql).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn a_ledger_refuses_another_host_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 1);
    let err = Ledger::open(&path, "other-host", signer()).unwrap_err();
    assert!(err.to_string().contains("host_id"), "{err}");
    let other =
        NoteSigner::new("evidence-agent/test-host", SigningKey::from_bytes(&[1; 32])).unwrap();
    let err = Ledger::open(&path, "test-host", other).unwrap_err();
    assert!(err.to_string().contains("vkey"), "{err}");
}

#[test]
fn one_changed_byte_of_an_envelope_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 20);
    // Flip one byte inside the base64 signature of entry 11.
    tamper(&path, "UPDATE entries SET envelope = CAST(replace(CAST(envelope AS TEXT), '\"sig\":\"', '\"sig\":\"A') AS BLOB) WHERE idx = 11");
    let f = findings(&path);
    assert!(f.iter().any(|m| m.starts_with("entry 11:")), "{f:?}");
}

#[test]
fn one_changed_byte_of_a_blob_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 20);
    let conn = Connection::open(&path).unwrap();
    let digest: Vec<u8> = conn
        .query_row(
            "SELECT content_digest FROM entries WHERE idx = 11",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    tamper(
        &path,
        &format!(
            "UPDATE blob_chunks SET data = CAST(replace(CAST(data AS TEXT), 'items', 'itemz') AS BLOB) WHERE digest = x'{}'",
            hex::encode(&digest)
        ),
    );
    let f = findings(&path);
    assert!(
        f.iter()
            .any(|m| m.starts_with("entry 11:") && m.contains("digest")),
        "{f:?}"
    );
}

#[test]
fn one_changed_byte_of_a_checkpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 20);
    tamper(&path, "UPDATE checkpoints SET note = replace(note, 'evidence-agent/test-host\n10\n', 'evidence-agent/test-host\n11\n') WHERE size = 10");
    let f = findings(&path);
    assert!(f.iter().any(|m| m.starts_with("checkpoint 10:")), "{f:?}");
}

#[test]
fn a_deleted_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 20);
    tamper(&path, "DELETE FROM entries WHERE idx = 7");
    let f = findings(&path);
    assert!(
        f.iter()
            .any(|m| m.starts_with("entry 7:") && m.contains("missing")),
        "{f:?}"
    );
}

#[test]
fn reordered_entries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 20);
    tamper(
        &path,
        "UPDATE entries SET idx = -1 WHERE idx = 4;
         UPDATE entries SET idx = 4 WHERE idx = 9;
         UPDATE entries SET idx = 9 WHERE idx = -1;",
    );
    let f = findings(&path);
    assert!(
        f.iter()
            .any(|m| m.starts_with("entry 4:") && m.contains("log index 9")),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|m| m.starts_with("entry 9:") && m.contains("log index 4")),
        "{f:?}"
    );
}

#[test]
fn findings_across_verify_chunks_keep_entry_order() {
    // More entries than two of the chunks verify checks in parallel (4096), with damage in the
    // first chunk, across the first boundary and in the last, partial chunk.
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 9_000);
    let sig = |i: u64| {
        format!("UPDATE entries SET envelope = CAST(replace(CAST(envelope AS TEXT), '\"sig\":\"', '\"sig\":\"A') AS BLOB) WHERE idx = {i};")
    };
    tamper(
        &path,
        &format!(
            "{} DELETE FROM entries WHERE idx = 4096; {}",
            sig(5),
            sig(8_999)
        ),
    );
    let ledger = Ledger::open_read_only(&path).unwrap();
    let report = verify(&ledger, &signer().verifier()).unwrap();
    assert_eq!(report.entries, 8_999);
    let entries: Vec<u64> = report.findings.iter().filter_map(|f| f.entry).collect();
    assert!(
        entries.windows(2).all(|w| w[0] <= w[1]),
        "entry findings out of order: {entries:?}"
    );
    let f: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
    for (index, what) in [
        (5, "envelope sig"),
        (4096, "missing"),
        (8_999, "envelope sig"),
    ] {
        assert!(
            f.iter()
                .any(|m| m.starts_with(&format!("entry {index}:")) && m.contains(what)),
            "no finding for entry {index} ({what}): {f:?}"
        );
    }
}

#[test]
fn a_truncated_tree_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 20);
    tamper(&path, "DELETE FROM entries WHERE idx >= 17; DELETE FROM tree_nodes WHERE idx >= 17 AND level = 0;");
    let f = findings(&path);
    assert!(
        f.iter()
            .any(|m| m.starts_with("checkpoint 20:") && m.contains("entries 17..19")),
        "{f:?}"
    );
}

#[test]
fn a_ledger_signed_by_another_key_fails_against_the_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 3);
    let ledger = Ledger::open_read_only(&path).unwrap();
    let other =
        NoteSigner::new("evidence-agent/test-host", SigningKey::from_bytes(&[1; 32])).unwrap();
    let report = verify(&ledger, &other.verifier()).unwrap();
    assert!(report.findings.len() >= 4, "{:?}", report.findings);
}

#[test]
fn a_doctored_index_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 5);
    tamper(&path, "UPDATE entries SET idx = -1 WHERE idx = 3");
    let ledger = Ledger::open_read_only(&path).unwrap();
    let err = verify(&ledger, &signer().verifier()).unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
}

#[test]
fn tiles_and_entry_bundles_rebuild_the_signed_root() {
    use evidence_agent::tlog::tiles;
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 300);
    let ledger = Ledger::open_read_only(&path).unwrap();
    let v = signer().verifier();
    let cp = Checkpoint::parse(
        v.open(&ledger.latest_checkpoint().unwrap().unwrap().note)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cp.size, 300);

    // A verifier holding only the tiles and bundles: bundles give the leaves, whose hashes must
    // be the level-0 tiles; the level-0 hashes rebuild the signed root.
    let mut leaf_hashes = Vec::new();
    for tile in tiles::tiles_for_size(cp.size) {
        let bytes = ledger.tile(tile).unwrap();
        assert_eq!(bytes.len() as u64, tile.width * 32);
        if tile.level == 0 {
            let bundle = ledger.entry_bundle(tile).unwrap();
            let entries = tiles::parse_entry_bundle(&bundle).unwrap();
            let hashes: Vec<u8> = entries.iter().flat_map(|e| merkle::leaf_hash(e)).collect();
            assert_eq!(hashes, bytes, "{}", tile.path());
            leaf_hashes.extend(hashes.chunks(32).map(|h| <[u8; 32]>::try_from(h).unwrap()));
        }
    }
    let rebuilt = merkle::MemoryNodes::new(leaf_hashes);
    assert_eq!(merkle::root(&rebuilt, cp.size).unwrap(), cp.root);
    // The level-1 tile holds the root of the first 256 leaves.
    let level1 = ledger
        .tile(tiles::Tile {
            level: 1,
            index: 0,
            width: 1,
        })
        .unwrap();
    assert_eq!(level1, merkle::range_hash(&rebuilt, 0, 256).unwrap());
    assert!(
        ledger
            .tile(tiles::Tile {
                level: 0,
                index: 1,
                width: 45
            })
            .is_err(),
        "beyond the tree"
    );
}

#[test]
fn oversized_run_metadata_is_cut_so_every_entry_fits_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut ledger = Ledger::open(&path, "test-host", signer()).unwrap();
    let mut ok = run(0, "{}");
    if let Outcome::Ok(s) = &mut ok.outcome {
        s.details = serde_json::json!({"matched": vec!["/etc/some/long/path/name.conf"; 5000]});
    }
    let mut failed = run(5, "");
    failed.outcome = Outcome::Failed("x".repeat(100_000));
    ledger.append(vec![ok, failed]).unwrap();
    for i in 0..2 {
        let e = ledger.entry(i).unwrap().unwrap();
        assert!(
            e.envelope.len() < 64 * 1024,
            "entry {i} is {} bytes",
            e.envelope.len()
        );
    }
    let st0 =
        evidence_agent::statement::read_unverified(&ledger.entry(0).unwrap().unwrap().envelope)
            .unwrap();
    assert!(st0.predicate.details["omitted"]
        .as_str()
        .unwrap()
        .contains("over the"));
    let st1 =
        evidence_agent::statement::read_unverified(&ledger.entry(1).unwrap().unwrap().envelope)
            .unwrap();
    assert!(st1
        .predicate
        .error
        .unwrap()
        .ends_with("(100000 bytes, cut to 4096)"));
    drop(ledger);
    assert!(findings(&path).is_empty());
}

#[test]
fn the_sync_plan_covers_what_s3_lacks_and_resumes_from_confirmed_uploads() {
    use evidence_agent::ledger::sync_state::{ObjectSource, Upload};
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_with(dir.path(), 300);
    let ledger = Ledger::open(&path, "test-host", signer()).unwrap();
    let here = "s3://bucket/prefix/test-host/";

    let plan = ledger.sync_plan(here).unwrap();
    assert_eq!((plan.synced_size, plan.size), (0, 300));
    assert_eq!(plan.stages.len(), 3, "key+blobs, tiles, checkpoints");
    let keys = |stage: usize| -> Vec<String> {
        plan.stages[stage].iter().map(|o| o.key.clone()).collect()
    };
    // Content: bodies cycle through 4 values, failed and skipped runs share the empty blob.
    assert_eq!(keys(0)[0], "key.vkey");
    assert_eq!(keys(0).len(), 1 + 4 + 1);
    assert!(keys(0)[1..].iter().all(|k| k.starts_with("blobs/sha256/")));
    assert_eq!(
        keys(1),
        [
            "tile/entries/000",
            "tile/0/000",
            "tile/entries/001.p/44",
            "tile/0/001.p/44",
            "tile/1/000.p/1"
        ]
    );
    let checkpoints = ledger.checkpoints().unwrap();
    assert_eq!(plan.stages[2].len(), checkpoints.len());
    assert_eq!(plan.pointer.as_ref().map(|c| c.size), Some(300));
    assert!(plan.oldest_pending.is_some());
    // Declared sizes are the sizes of the bytes that will be put.
    let mut total = 0;
    for object in plan.stages.iter().flatten() {
        let bytes = ledger.object_bytes(&object.source).unwrap();
        assert_eq!(bytes.len() as u64, object.size, "{}", object.key);
        if let ObjectSource::Blob(digest) = object.source {
            assert_eq!(<[u8; 32]>::from(Sha256::digest(&bytes)), digest);
        }
        total += object.size;
    }
    assert_eq!(
        plan.bytes(),
        total + plan.pointer.as_ref().unwrap().note.len() as u64
    );

    // Half of the blobs confirmed: only the other half is planned again.
    let confirm = |objects: &[evidence_agent::ledger::sync_state::PendingObject]| {
        let uploads: Vec<Upload> = objects
            .iter()
            .map(|o| {
                let bytes = ledger.object_bytes(&o.source).unwrap();
                Upload {
                    key: o.key.clone(),
                    sha256: Sha256::digest(&bytes).into(),
                    size: bytes.len() as u64,
                }
            })
            .collect();
        ledger.record_uploads(here, &uploads).unwrap();
    };
    confirm(&plan.stages[0][..3]);
    let again = ledger.sync_plan(here).unwrap();
    assert_eq!(again.stages[0].len(), 3);
    assert_eq!(again.objects(), plan.objects() - 3);
    // Another location starts from nothing.
    assert_eq!(
        ledger.sync_plan("s3://other/test-host/").unwrap().objects(),
        plan.objects()
    );

    // Everything confirmed and the pointer moved: nothing left.
    for stage in &plan.stages {
        confirm(stage);
    }
    ledger.record_pointer(here, 300).unwrap();
    let done = ledger.sync_plan(here).unwrap();
    assert!(done.is_empty(), "{:?}", done.stages);
    assert_eq!(done.oldest_pending, None);
    assert_eq!(ledger.synced_size(here).unwrap(), 300);
    drop(ledger);

    // One more entry: its blob is known already; the partial tiles of the new width, the new
    // checkpoint and the pointer are planned, and the unchanged level-1 tile is not.
    let mut ledger = Ledger::open(&path, "test-host", signer()).unwrap();
    ledger
        .append(vec![run(300, "{\"items\":[{\"id\":\"0\"}]}")])
        .unwrap();
    let next = ledger.sync_plan(here).unwrap();
    let keys: Vec<&str> = next
        .stages
        .iter()
        .flatten()
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "tile/entries/001.p/45",
            "tile/0/001.p/45",
            "checkpoints/301"
        ]
    );
    assert_eq!(next.pointer.map(|c| c.size), Some(301));
}
