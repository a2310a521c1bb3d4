//! Known-answer tests: our Merkle tree, proofs, signed notes, checkpoints and DSSE envelopes
//! reproduce `tests/vectors/vectors.json` (a copy of `shared/vectors/`) byte for byte.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use evidence_agent::statement;
use evidence_agent::tlog::merkle::{self, MemoryNodes};
use evidence_agent::tlog::note::{Checkpoint, NoteSigner, NoteVerifier};
use evidence_agent::tlog::tiles;
use evidence_agent::tlog::Hash;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/vectors.json");
    serde_json::from_slice(&std::fs::read(path).expect("vectors.json")).expect("vectors parse")
}

fn signer(v: &Value) -> NoteSigner {
    let seed: [u8; 32] = hex::decode(v["key"]["seed_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    NoteSigner::new(
        v["key"]["name"].as_str().unwrap(),
        SigningKey::from_bytes(&seed),
    )
    .unwrap()
}

fn b64_hash(s: &Value) -> Hash {
    B64.decode(s.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn log(n: u64) -> MemoryNodes {
    MemoryNodes::new(
        (0..n)
            .map(|i| merkle::leaf_hash(format!("entry-{i}").as_bytes()))
            .collect(),
    )
}

#[test]
fn key_hash_and_verifier_key_match() {
    let v = vectors();
    let s = signer(&v);
    assert_eq!(
        hex::encode(s.verifier().public_key().as_bytes()),
        v["key"]["public_hex"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(s.key_hash()),
        v["key"]["key_hash_hex"].as_str().unwrap()
    );
    assert_eq!(s.verifier().to_string(), v["key"]["vkey"].as_str().unwrap());
    let parsed = NoteVerifier::parse(v["key"]["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, s.verifier());
}

#[test]
fn leaf_hash_and_empty_root_match() {
    let v = vectors();
    assert_eq!(
        merkle::leaf_hash(b"entry-0"),
        b64_hash(&v["leaf_hash_of_entry-0_b64"])
    );
    assert_eq!(merkle::empty_root(), b64_hash(&v["empty_tree_root_b64"]));
}

#[test]
fn roots_proofs_and_signed_checkpoints_match_every_tree() {
    let v = vectors();
    let s = signer(&v);
    let trees = v["trees"].as_object().unwrap();
    assert!(trees.len() >= 5);
    for (n, tree) in trees {
        let n: u64 = n.parse().unwrap();
        let nodes = log(n);
        let root = merkle::root(&nodes, n).unwrap();
        assert_eq!(root, b64_hash(&tree["root_b64"]), "root of {n}");

        let expected_note = tree["checkpoint"].as_str().unwrap();
        let cp = Checkpoint {
            origin: s.name().to_owned(),
            size: n,
            root,
            extensions: vec![],
        };
        assert_eq!(
            s.sign(&cp.to_text()).unwrap(),
            expected_note,
            "checkpoint {n}"
        );
        let text = s.verifier().open(expected_note).unwrap();
        assert_eq!(Checkpoint::parse(text).unwrap(), cp);

        for (i, proof) in tree["inclusion"].as_object().unwrap() {
            let i: u64 = i.parse().unwrap();
            let want: Vec<Hash> = proof.as_array().unwrap().iter().map(b64_hash).collect();
            assert_eq!(
                merkle::inclusion_proof(&nodes, i, n).unwrap(),
                want,
                "incl {i}@{n}"
            );
            let leaf = merkle::leaf_hash(format!("entry-{i}").as_bytes());
            assert!(merkle::verify_inclusion(&leaf, i, n, &want, &root));
        }
        for (m, proof) in tree["consistency"].as_object().unwrap() {
            let m: u64 = m.parse().unwrap();
            let want: Vec<Hash> = proof.as_array().unwrap().iter().map(b64_hash).collect();
            assert_eq!(
                merkle::consistency_proof(&nodes, m, n).unwrap(),
                want,
                "cons {m}->{n}"
            );
            let old_root = merkle::root(&nodes, m).unwrap();
            assert!(merkle::verify_consistency(m, n, &old_root, &root, &want));
        }
    }
}

#[test]
fn dsse_pae_and_envelope_match() {
    let v = vectors();
    let s = signer(&v);
    let d = &v["dsse"];
    let payload = d["payload"].as_str().unwrap().as_bytes();
    let pae = statement::pae(statement::PAYLOAD_TYPE, payload);
    assert_eq!(B64.encode(&pae), d["pae_b64"].as_str().unwrap());

    let ours: Value = serde_json::from_slice(&statement::sign(payload, &s)).unwrap();
    assert_eq!(ours, d["envelope"], "same fields, same signature bytes");

    let theirs = serde_json::to_vec(&d["envelope"]).unwrap();
    assert_eq!(statement::open(&theirs, &s.verifier()).unwrap(), payload);

    // The vector's content digest is the subject digest of its statement.
    let content = d["content"].as_str().unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes()));
    assert!(d["payload"].as_str().unwrap().contains(&digest));
}

#[test]
fn tampered_notes_and_envelopes_are_rejected() {
    let v = vectors();
    let s = signer(&v);
    let note = v["trees"]["5"]["checkpoint"].as_str().unwrap();
    let tampered = note.replacen("\n5\n", "\n6\n", 1);
    assert!(s.verifier().open(&tampered).is_err());
    assert!(s.verifier().open("no signatures\n").is_err());
    let other = NoteSigner::new("evidence-agent/other", SigningKey::from_bytes(&[7; 32])).unwrap();
    assert!(
        other.verifier().open(note).is_err(),
        "unknown key must not verify"
    );

    let mut env = v["dsse"]["envelope"].clone();
    env["payloadType"] = Value::from("text/plain");
    assert!(statement::open(&serde_json::to_vec(&env).unwrap(), &s.verifier()).is_err());
    for garbage in [&b""[..], b"{}", b"[]", b"\xff\xfe", b"{\"payload\":1}"] {
        assert!(statement::open(garbage, &s.verifier()).is_err());
    }
}

#[test]
fn tiles_of_the_300_entry_log_match_byte_for_byte() {
    let v = vectors();
    let s = signer(&v);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/tiles-300");
    let read =
        |rel: &str| std::fs::read(format!("{dir}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let n = 300;
    let nodes = log(n);
    let all = tiles::tiles_for_size(n);
    assert_eq!(all.len(), 3);
    for tile in all {
        assert_eq!(
            tiles::read_tile(&nodes, tile).unwrap(),
            read(&tile.path()),
            "{}",
            tile.path()
        );
        if tile.level == 0 {
            let (first, end) = tile.leaf_range();
            let entries: Vec<Vec<u8>> = (first..end)
                .map(|i| format!("entry-{i}").into_bytes())
                .collect();
            let bundle = tiles::entry_bundle(first, entries.iter().map(Vec::as_slice)).unwrap();
            assert_eq!(
                bundle,
                read(&tile.entries_path()),
                "{}",
                tile.entries_path()
            );
            let parsed = tiles::parse_entry_bundle(&bundle).unwrap();
            assert_eq!(parsed.len() as u64, tile.width);
        }
    }
    let root = merkle::root(&nodes, n).unwrap();
    let cp = Checkpoint {
        origin: s.name().to_owned(),
        size: n,
        root,
        extensions: vec![],
    };
    assert_eq!(
        s.sign(&cp.to_text()).unwrap().as_bytes(),
        read("checkpoint")
    );
}
