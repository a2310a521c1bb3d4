#!/usr/bin/env python3
"""Independent verifier for an evidence-agent ledger.

Written from the standards alone, sharing no code with the Rust implementation:

- RFC 6962 §2.1 / RFC 9162 §2.1: Merkle tree hash, inclusion proofs (§2.1.3.2) and
  consistency proofs (§2.1.4.2);
- C2SP signed-note (note text, signature lines, Ed25519 verifier keys) and tlog-checkpoint;
- DSSE v1 (envelope, PAE) carrying an in-toto Statement v1;
- C2SP tlog-tiles (tile paths, hash tiles, entry bundles);
- the ledger's SQLite table layout (agent/src/ledger/schema.rs) and DESIGN.md §3.

Usage:
    independent_verify.py LEDGER.sqlite VKEY_FILE [PROOFS.json]
    independent_verify.py --vectors vectors.json
    independent_verify.py --tiles DIR VKEY_FILE

--tiles verifies one host's directory as synced to S3 (DESIGN.md §3) and downloaded: the C2SP
tlog-tiles log (`checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), every
`checkpoints/<size>`, `key.vkey` and the content under `blobs/sha256/<hex>`, against the pinned
VKEY_FILE (a different `key.vkey` is a problem, never trusted).

PROOFS.json: {"inclusion": [{"index", "size", "hashes": [b64]}],
              "consistency": [{"old", "new", "hashes": [b64]}]}
checked against the roots of the signed checkpoints of the same sizes.

Prints every problem found ("entry N: ...", "checkpoint N: ...", "tile/0/000: ...",
"blobs/sha256/<hex>: ...") and a one-line summary.
Exit status: 0 when everything holds, 1 when any check fails, 2 on a usage error or when the
`cryptography` package is missing.
"""

import argparse
import base64
import binascii
import hashlib
import json
import pathlib
import re
import sqlite3
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
except ImportError:  # pragma: no cover - environment problem, not a verification result
    print(
        "independent-verify: the Python `cryptography` package is missing; "
        "run tests/run.sh (it installs it) or `python3 -m pip install cryptography`",
        file=sys.stderr,
    )
    sys.exit(2)

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://evidence-agent.dev/snapshot/v1"
ORIGIN_PREFIX = "evidence-agent/"
SIG_LINE_PREFIX = "\u2014 "  # EM DASH, SPACE
ED25519_ALG = 0x01
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


class Invalid(Exception):
    """One failed check, with a message naming what is wrong."""


# ---------------------------------------------------------------------------------------------
# Encodings


def b64_std(text):
    """Strict standard base64 (RFC 4648 §4, padded)."""
    if not isinstance(text, str):
        raise Invalid(f"expected a base64 string, found {type(text).__name__}")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise Invalid(f"invalid base64 {text[:40]!r}: {e}") from None


def b64_dsse(text):
    """DSSE allows standard or URL-safe base64."""
    if isinstance(text, str) and ("-" in text or "_" in text):
        text = text.replace("-", "+").replace("_", "/")
    return b64_std(text)


def sha256(data):
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------------------------------------
# RFC 6962 §2.1 Merkle tree


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")


def split_point(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaf_hashes):
    """MTH(D[n]) exactly as RFC 6962 §2.1 defines it, over precomputed leaf hashes."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def rfc6962_path(m, leaf_hashes):
    """PATH(m, D[n]) of RFC 6962 §2.1.1 (used to known-answer test the verifier)."""
    n = len(leaf_hashes)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return rfc6962_path(m, leaf_hashes[:k]) + [mth(leaf_hashes[k:])]
    return rfc6962_path(m - k, leaf_hashes[k:]) + [mth(leaf_hashes[:k])]


def rfc6962_proof(m, leaf_hashes):
    """PROOF(m, D[n]) of RFC 6962 §2.1.2."""

    def subproof(m, d, b):
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = split_point(n)
        if m <= k:
            return subproof(m, d[:k], b) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]

    return subproof(m, leaf_hashes, True)


class RootAccumulator:
    """Roots of every prefix of a log in one pass: a stack of perfect subtrees.

    MTH(D[n]) is the right fold of n's perfect subtrees (largest first), which is what the
    recursive definition computes; `mth` is checked against this in the self-test.
    """

    def __init__(self):
        self.stack = []  # (size, hash), sizes strictly decreasing
        self.size = 0

    def push(self, leaf):
        size, h = 1, leaf
        while self.stack and self.stack[-1][0] == size:
            left_size, left = self.stack.pop()
            size, h = left_size + size, node_hash(left, h)
        self.stack.append((size, h))
        self.size += 1

    def root(self):
        if not self.stack:
            return EMPTY_ROOT
        h = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            h = node_hash(left, h)
        return h


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 §2.1.3.2. Returns None if the proof holds, else the reason."""
    if index < 0 or index >= size:
        return f"leaf index {index} is not below tree size {size}"
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return "proof is longer than the tree is deep"
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return "proof is shorter than the tree is deep"
    if r != root:
        return "proof does not lead to the checkpoint's root"
    return None


def verify_consistency(first, second, first_root, second_root, path):
    """RFC 9162 §2.1.4.2. Returns None if the proof holds, else the reason."""
    if first < 0 or first > second:
        return f"old size {first} is larger than new size {second}"
    if first == second:
        if path:
            return "proof between equal sizes must be empty"
        return None if first_root == second_root else "equal sizes but different roots"
    if first == 0:
        # Every tree extends the empty tree; RFC 6962 defines no proof for it.
        return None if not path else "proof from the empty tree must be empty"
    if not path:
        return "proof is empty"
    path = list(path)
    if first & (first - 1) == 0:  # exact power of two
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return "proof is longer than needed"
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return "proof is shorter than needed"
    if fr != first_root:
        return "proof does not lead to the old checkpoint's root"
    if sr != second_root:
        return "proof does not lead to the new checkpoint's root"
    return None


# ---------------------------------------------------------------------------------------------
# C2SP signed-note and tlog-checkpoint


def note_key_hash(name, public):
    """First 4 bytes of SHA-256(name || "\\n" || 0x01 || public key)."""
    return sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_ALG]) + public)[:4]


def valid_key_name(name):
    return bool(name) and "+" not in name and not any(c.isspace() for c in name) and all(
        ord(c) >= 0x20 for c in name
    )


class Verifier:
    def __init__(self, name, key_hash, public):
        self.name = name
        self.key_hash = key_hash
        self.public = public
        self.key = Ed25519PublicKey.from_public_bytes(public)

    def verify(self, message, signature):
        try:
            self.key.verify(signature, message)
            return True
        except InvalidSignature:
            return False


def parse_vkey(text):
    """`<name>+<hex key hash>+<base64(0x01 || public key)>`."""
    text = text.strip()
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise Invalid(f"verifier key {text!r} is not <name>+<hash>+<key>")
    name, hash_hex, key_b64 = parts
    if not valid_key_name(name):
        raise Invalid(f"verifier key name {name!r} is not a valid note key name")
    if not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
        raise Invalid(f"verifier key hash {hash_hex!r} is not 8 lowercase hex digits")
    raw = b64_std(key_b64)
    if len(raw) != 33 or raw[0] != ED25519_ALG:
        raise Invalid("verifier key is not an Ed25519 key (0x01 followed by 32 bytes)")
    public = raw[1:]
    want = note_key_hash(name, public)
    if want.hex() != hash_hex:
        raise Invalid(f"verifier key hash is {hash_hex} but the name and key hash to {want.hex()}")
    try:
        return Verifier(name, want, public)
    except ValueError as e:
        raise Invalid(f"verifier key: {e}") from None


def open_note(note, verifier):
    """Split a signed note, check it, and return its text once `verifier` has signed it."""
    if not isinstance(note, str):
        raise Invalid("note is not text")
    if not note.endswith("\n"):
        raise Invalid("note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise Invalid("note has no blank line between text and signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise Invalid("note text contains a control character")
    if not sig_block:
        raise Invalid("note has no signature lines")
    ours = 0
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(SIG_LINE_PREFIX):
            raise Invalid(f"malformed signature line {line[:60]!r}")
        fields = line[len(SIG_LINE_PREFIX) :].split(" ")
        if len(fields) != 2 or not valid_key_name(fields[0]):
            raise Invalid(f"malformed signature line {line[:60]!r}")
        name, sig_b64 = fields
        sig = b64_std(sig_b64)
        if len(sig) < 5:
            raise Invalid(f"signature by {name} is too short")
        if name != verifier.name or sig[:4] != verifier.key_hash:
            continue  # a signature by some other key: not ours to judge
        if len(sig) != 4 + 64:
            raise Invalid(f"signature by {name} is {len(sig) - 4} bytes, not 64")
        if not verifier.verify(text.encode("utf-8"), sig[4:]):
            raise Invalid(f"signature by {name} does not verify")
        ours += 1
    if ours == 0:
        raise Invalid(f"note is not signed by {verifier.name}+{verifier.key_hash.hex()}")
    return text


def parse_checkpoint(text):
    """tlog-checkpoint body: origin, decimal size, base64 root, extension lines."""
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise Invalid("checkpoint has fewer than 3 lines")
    origin, size_s, root_b64 = lines[0], lines[1], lines[2]
    if not origin:
        raise Invalid("checkpoint origin is empty")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s):
        raise Invalid(f"checkpoint size {size_s!r} is not a decimal number")
    root = b64_std(root_b64)
    if len(root) != 32:
        raise Invalid(f"checkpoint root is {len(root)} bytes, not 32")
    extensions = lines[3:]
    if any(not e for e in extensions):
        raise Invalid("checkpoint has an empty extension line")
    return origin, int(size_s), root, extensions


# ---------------------------------------------------------------------------------------------
# DSSE v1 + in-toto Statement v1


def pae(payload_type, payload):
    """DSSEv1 Pre-Authentication Encoding; lengths are byte counts in ASCII decimal."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def open_envelope(envelope_bytes, verifier):
    """Check a DSSE envelope signed by `verifier`; return the decoded payload bytes."""
    try:
        env = json.loads(envelope_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Invalid(f"envelope is not UTF-8 JSON: {e}") from None
    if not isinstance(env, dict):
        raise Invalid("envelope is not a JSON object")
    payload_type = env.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise Invalid(f"payloadType is {payload_type!r}, not {PAYLOAD_TYPE!r}")
    payload = b64_dsse(env.get("payload"))
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise Invalid("envelope has no signatures")
    message = pae(payload_type, payload)
    for i, s in enumerate(sigs):
        if not isinstance(s, dict):
            raise Invalid(f"signature {i} is not an object")
        keyid = s.get("keyid")
        if keyid != verifier.key_hash.hex():
            raise Invalid(f"signature {i} keyid is {keyid!r}, not {verifier.key_hash.hex()!r}")
        sig = b64_dsse(s.get("sig"))
        if len(sig) != 64:
            raise Invalid(f"signature {i} is {len(sig)} bytes, not 64")
        if not verifier.verify(message, sig):
            raise Invalid(f"signature {i} does not verify over PAE(payloadType, payload)")
    return payload


def parse_statement(payload):
    """An in-toto Statement v1 with exactly one subject; returns (statement, subject)."""
    try:
        st = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Invalid(f"payload is not UTF-8 JSON: {e}") from None
    if not isinstance(st, dict):
        raise Invalid("statement is not a JSON object")
    if st.get("_type") != STATEMENT_TYPE:
        raise Invalid(f"statement _type is {st.get('_type')!r}, not {STATEMENT_TYPE!r}")
    subjects = st.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise Invalid("statement must have exactly one subject")
    subject = subjects[0]
    if not isinstance(subject, dict) or not isinstance(subject.get("digest"), dict):
        raise Invalid("subject has no digest object")
    if not isinstance(subject.get("name"), str) or not subject["name"]:
        raise Invalid("subject has no name")
    if not isinstance(st.get("predicateType"), str):
        raise Invalid("statement has no predicateType")
    if not isinstance(st.get("predicate"), dict):
        raise Invalid("statement predicate is not an object")
    return st, subject


def check_snapshot_statement(st, subject, host, row):
    """DESIGN.md §3 snapshot predicate, against the entry's row. Returns a list of problems."""
    problems = []
    idx = row["idx"]
    if st["predicateType"] != PREDICATE_TYPE:
        problems.append(f"predicateType is {st['predicateType']!r}, not {PREDICATE_TYPE!r}")
    digest_hex = subject["digest"].get("sha256")
    if digest_hex != row["content_digest"].hex():
        problems.append(
            f"subject digest sha256 {digest_hex!r} is not the stored content digest "
            f"{row['content_digest'].hex()}"
        )
    p = st["predicate"]
    log_index = p.get("log_index")
    if type(log_index) is not int or log_index != idx:
        problems.append(f"signed log index {log_index!r} is not its position {idx}")
    if p.get("host") != host:
        problems.append(f"predicate host {p.get('host')!r} is not {host!r}")
    collector = p.get("collector")
    if not isinstance(collector, dict) or not isinstance(collector.get("id"), str) or not isinstance(
        collector.get("kind"), str
    ):
        problems.append("predicate collector is not {id, kind}")
    else:
        if collector["id"] != subject["name"]:
            problems.append(f"subject name {subject['name']!r} is not the collector id {collector['id']!r}")
        if collector["id"] != row["collector_id"]:
            problems.append(f"stored collector_id {row['collector_id']!r} is not the signed {collector['id']!r}")
    for field in ("scheduled_for", "started_at", "finished_at"):
        v = p.get(field)
        if not isinstance(v, str) or not RFC3339_UTC.match(v):
            problems.append(f"predicate {field} {v!r} is not an RFC 3339 UTC time")
    for field in ("scheduled_for", "finished_at"):
        if p.get(field) != row[field]:
            problems.append(f"stored {field} {row[field]!r} is not the signed {p.get(field)!r}")
    status = p.get("status")
    if status not in ("ok", "failed", "skipped"):
        problems.append(f"predicate status {status!r} is not ok|failed|skipped")
    elif status != "ok" and not (isinstance(p.get("error"), str) and p["error"]):
        problems.append(f"status {status} without an error")
    if status != row["status"]:
        problems.append(f"stored status {row['status']!r} is not the signed {status!r}")
    if "trigger" in p and p["trigger"] != row["trigger"]:
        problems.append(f"stored trigger {row['trigger']!r} is not the signed {p['trigger']!r}")
    for field in ("content_size", "item_count"):
        if type(p.get(field)) is not int or p[field] < 0:
            problems.append(f"predicate {field} {p.get(field)!r} is not a non-negative integer")
    for field in ("media_type", "agent_version"):
        if not isinstance(p.get(field), str) or not p[field]:
            problems.append(f"predicate {field} is missing")
    if not isinstance(p.get("config_sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", p["config_sha256"]):
        problems.append(f"predicate config_sha256 {p.get('config_sha256')!r} is not 64 hex digits")
    return problems


# ---------------------------------------------------------------------------------------------
# The ledger


def read_blob(conn, digest):
    """Reassemble a blob from its chunks; returns (sha256, size, problems)."""
    problems = []
    row = conn.execute("SELECT size, chunks FROM blobs WHERE digest = ?", (digest,)).fetchone()
    if row is None:
        return None, 0, ["content blob is not stored"]
    size, chunks = row
    h, total, expected_seq = hashlib.sha256(), 0, 0
    for seq, data in conn.execute(
        "SELECT seq, data FROM blob_chunks WHERE digest = ? ORDER BY seq", (digest,)
    ):
        if seq != expected_seq:
            problems.append(f"content chunk {expected_seq} is missing")
            expected_seq = seq
        data = bytes(data)
        h.update(data)
        total += len(data)
        expected_seq += 1
    if expected_seq != chunks:
        problems.append(f"content has {expected_seq} chunks, the blob row says {chunks}")
    if total != size:
        problems.append(f"content is {total} bytes, the blob row says {size}")
    return h.digest(), total, problems


def verify_ledger(ledger_path, vkey_path, proofs_path):
    problems = []
    counts = {"entries": 0, "checkpoints": 0, "blobs": 0, "inclusion": 0, "consistency": 0}
    try:
        verifier = parse_vkey(pathlib.Path(vkey_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, Invalid) as e:
        return [f"key: {e}"], counts, None
    if not verifier.name.startswith(ORIGIN_PREFIX):
        problems.append(f"key: name {verifier.name!r} is not {ORIGIN_PREFIX}<host-id>")
    host = verifier.name[len(ORIGIN_PREFIX) :]

    path = pathlib.Path(ledger_path)
    if not path.is_file():
        return [f"ledger: {ledger_path} does not exist"], counts, verifier
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT idx, collector_id, status, trigger, scheduled_for, finished_at, "
            "content_digest, envelope, leaf_hash FROM entries ORDER BY idx"
        ).fetchall()
        cps = conn.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall()
    except sqlite3.Error as e:
        return [f"ledger: {e}"], counts, verifier

    # Entries: envelope, statement, content; leaf hashes in log order.
    leaves = []  # leaf hashes of the contiguous prefix 0..len-1
    gap = False
    seen_blobs = set()
    for expected, row in enumerate(rows):
        idx = row["idx"]
        if idx != expected and not gap:
            problems.append(f"entry {expected}: missing (the next stored entry is {idx})")
            gap = True
        envelope = bytes(row["envelope"])
        digest = bytes(row["content_digest"])
        row = dict(row)
        row["content_digest"] = digest
        entry_problems = []
        lh = leaf_hash(envelope)
        if bytes(row["leaf_hash"]) != lh:
            entry_problems.append("stored leaf_hash is not SHA-256(0x00 || envelope)")
        try:
            payload = open_envelope(envelope, verifier)
            st, subject = parse_statement(payload)
            entry_problems += check_snapshot_statement(st, subject, host, row)
            content_size = st["predicate"].get("content_size")
        except Invalid as e:
            entry_problems.append(str(e))
            content_size = None
        got, size, blob_problems = read_blob(conn, digest)
        entry_problems += blob_problems
        if got is not None:
            seen_blobs.add(digest)
            if got != digest:
                entry_problems.append(
                    f"content SHA-256 is {got.hex()}, not the signed digest {digest.hex()}"
                )
            if type(content_size) is int and content_size != size:
                entry_problems.append(f"content is {size} bytes, the statement says {content_size}")
        problems += [f"entry {idx}: {p}" for p in entry_problems]
        if not gap:
            leaves.append(lh)
    counts["entries"] = len(rows)
    counts["blobs"] = len(seen_blobs)

    # Roots of every prefix we need, in one pass.
    wanted = {row["size"] for row in cps}
    roots = {}
    acc = RootAccumulator()
    if 0 in wanted:
        roots[0] = acc.root()
    for lh in leaves:
        acc.push(lh)
        if acc.size in wanted:
            roots[acc.size] = acc.root()

    # Checkpoints: signature, body, root.
    signed_roots = {}
    for row in cps:
        size = row["size"]
        try:
            text = open_note(row["note"], verifier)
            origin, cp_size, root, _ext = parse_checkpoint(text)
        except Invalid as e:
            problems.append(f"checkpoint {size}: {e}")
            continue
        bad = False
        if origin != verifier.name:
            problems.append(f"checkpoint {size}: origin {origin!r} is not the key name {verifier.name!r}")
            bad = True
        if cp_size != size:
            problems.append(f"checkpoint {size}: signed tree size is {cp_size}")
            bad = True
        if size > len(leaves):
            problems.append(
                f"checkpoint {size}: covers entries {len(leaves)}..{size - 1}, which the ledger lacks"
            )
            bad = True
        elif roots[size] != root:
            problems.append(
                f"checkpoint {size}: signed root {base64.b64encode(root).decode()} is not the "
                f"root of entries 0..{size - 1} ({base64.b64encode(roots[size]).decode()})"
            )
            bad = True
        if not bad:
            signed_roots[size] = root
    counts["checkpoints"] = len(cps)
    latest = cps[-1]["size"] if cps else 0
    if latest < len(rows):
        problems.append(
            f"entry {latest}: entries {latest}..{len(rows) - 1} are not covered by any signed checkpoint"
        )

    if proofs_path:
        problems += check_proofs(proofs_path, leaves, signed_roots, counts)
    return problems, counts, verifier


def check_proofs(proofs_path, leaves, signed_roots, counts):
    problems = []
    try:
        proofs = json.loads(pathlib.Path(proofs_path).read_text(encoding="utf-8"))
        inclusion = proofs.get("inclusion", [])
        consistency = proofs.get("consistency", [])
    except (OSError, ValueError, AttributeError) as e:
        return [f"proofs: cannot read {proofs_path}: {e}"]
    for p in inclusion:
        try:
            index, size = int(p["index"]), int(p["size"])
            name = f"inclusion proof {index}@{size}"
            hashes = [b64_std(h) for h in p["hashes"]]
        except (KeyError, TypeError, ValueError, Invalid) as e:
            problems.append(f"inclusion proof {p!r:.80}: malformed: {e}")
            continue
        if size not in signed_roots:
            problems.append(f"{name}: no valid signed checkpoint of size {size}")
        elif not 0 <= index < len(leaves):
            problems.append(f"{name}: entry {index} is not in the ledger")
        else:
            why = verify_inclusion(leaves[index], index, size, hashes, signed_roots[size])
            if why:
                problems.append(f"{name}: {why}")
        counts["inclusion"] += 1
    for p in consistency:
        try:
            old, new = int(p["old"]), int(p["new"])
            name = f"consistency proof {old}->{new}"
            hashes = [b64_std(h) for h in p["hashes"]]
        except (KeyError, TypeError, ValueError, Invalid) as e:
            problems.append(f"consistency proof {p!r:.80}: malformed: {e}")
            continue
        missing = [s for s in (old, new) if s not in signed_roots]
        if missing:
            problems.append(f"{name}: no valid signed checkpoint of size {missing[0]}")
        else:
            why = verify_consistency(old, new, signed_roots[old], signed_roots[new], hashes)
            if why:
                problems.append(f"{name}: {why}")
        counts["consistency"] += 1
    return problems


# ---------------------------------------------------------------------------------------------
# C2SP tlog-tiles: a host's directory as synced to S3 (DESIGN.md §3, S3 layout)

TILE_WIDTH = 256  # hashes (or entries) in a full tile
TILE_HEIGHT = 8  # tree levels per tile level
INDEX_RE = r"(?:x\d{3}/)*\d{3}"
HASH_TILE_RE = re.compile(r"tile/(0|[1-9][0-9]?)/(" + INDEX_RE + r")(?:\.p/([1-9][0-9]*))?")
BUNDLE_RE = re.compile(r"tile/entries/(" + INDEX_RE + r")(?:\.p/([1-9][0-9]*))?")
CHECKPOINTS_RE = re.compile(r"checkpoints/(0|[1-9][0-9]*)")
BLOB_RE = re.compile(r"blobs/sha256/([0-9a-f]{64})")


def tile_index_path(n):
    """N as 3-digit groups, every group but the last prefixed with `x` (1234067 -> x001/x234/067)."""
    groups = ["%03d" % (n % 1000)]
    n //= 1000
    while n:
        groups.insert(0, "x%03d" % (n % 1000))
        n //= 1000
    return "/".join(groups)


def tile_path(level, n, width):
    """`tile/<L>/<N>[.p/<W>]`; level "entries" gives an entry bundle's path."""
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{tile_index_path(n)}{suffix}"


def parse_tile_index(text):
    n = 0
    for g in text.split("/"):
        n = n * 1000 + int(g.lstrip("x"))
    return n


def classify_tile_path(rel):
    """(kind, level, index, width) for a hash tile or entry bundle path, or None.

    Only canonical paths match: the index re-encodes to the same text, 1 <= W <= 255."""
    m = BUNDLE_RE.fullmatch(rel)
    if m:
        kind, level, index_text, w = "entries", 0, m.group(1), m.group(2)
    else:
        m = HASH_TILE_RE.fullmatch(rel)
        if not m:
            return None
        kind, level, index_text, w = "hash", int(m.group(1)), m.group(2), m.group(3)
        if level > 63:
            return None
    index = parse_tile_index(index_text)
    width = int(w) if w is not None else TILE_WIDTH
    if not 1 <= width <= TILE_WIDTH or (w is not None and width == TILE_WIDTH):
        return None
    if tile_index_path(index) != index_text:
        return None
    return kind, level, index, width


def parse_bundle(data):
    """An entry bundle: entries, each prefixed by its big-endian uint16 length."""
    entries, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise Invalid(f"ends inside the length prefix of entry {len(entries)}")
        n = int.from_bytes(data[i : i + 2], "big")
        if i + 2 + n > len(data):
            raise Invalid(f"entry {len(entries)} claims {n} bytes but only {len(data) - i - 2} remain")
        entries.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    return entries


def read_tile_for(root, level, n, width):
    """The bytes a client reads for tile (level, n) of `width`: the partial `.p/<W>` when the
    tile is partial, falling back to the full tile (a log that grew since may have only that).
    Returns (relative path read, bytes) or raises Invalid naming the missing path."""
    want = tile_path(level, n, width)
    p = root / want
    if p.is_file():
        return want, p.read_bytes()
    if width < TILE_WIDTH:
        full = tile_path(level, n, TILE_WIDTH)
        if (root / full).is_file():
            return full, (root / full).read_bytes()
    raise Invalid("missing")


def tree_levels(leaf_hashes, up_to_height):
    """levels[h][k] = the hash of the perfect subtree of height h over leaves k*2^h .. (k+1)*2^h-1."""
    levels = [list(leaf_hashes)]
    for _ in range(up_to_height):
        below = levels[-1]
        levels.append([node_hash(below[2 * k], below[2 * k + 1]) for k in range(len(below) // 2)])
    return levels


def read_blob_file(root, hex_digest):
    """Returns (sha256 of the content, size, problem or None); gzip at rest is undone."""
    p = root / "blobs" / "sha256" / hex_digest
    if not p.is_file():
        return None, 0, "missing"
    data = p.read_bytes()
    got = sha256(data)
    if got.hex() != hex_digest and data[:2] == b"\x1f\x8b":
        import gzip

        try:
            plain = gzip.decompress(data)
            if sha256(plain).hex() == hex_digest:
                return sha256(plain), len(plain), None
        except (OSError, EOFError):
            pass
    return got, len(data), None


def verify_tiles(dir_path, vkey_path, envelopes=True):
    """Verify a host directory laid out as in S3. With envelopes=False the entries are opaque
    (the known-answer tiles vector), so statements and blobs are not checked."""
    problems = []
    counts = {"size": 0, "entries": 0, "blobs": 0, "bundles": 0, "tiles": 0, "checkpoints": 0, "beyond": 0}
    root = pathlib.Path(dir_path)
    try:
        verifier = parse_vkey(pathlib.Path(vkey_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, Invalid) as e:
        return [f"key: {e}"], counts, None
    if not root.is_dir():
        return [f"tiles: {dir_path} is not a directory"], counts, verifier
    pinned = f"{verifier.name}+{verifier.key_hash.hex()}"
    if envelopes and not verifier.name.startswith(ORIGIN_PREFIX):
        problems.append(f"key: name {verifier.name!r} is not {ORIGIN_PREFIX}<host-id>")
    host = verifier.name[len(ORIGIN_PREFIX) :]

    # Every file must be a path of the layout.
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    bundles, hash_tiles, cp_files = [], [], []
    for rel in files:
        if rel in ("checkpoint", "key.vkey") or BLOB_RE.fullmatch(rel):
            continue
        if CHECKPOINTS_RE.fullmatch(rel):
            cp_files.append(rel)
            continue
        t = classify_tile_path(rel)
        if t is None:
            problems.append(f"{rel}: not a path of the layout (checkpoint, key.vkey, checkpoints/<size>, tile/..., blobs/sha256/<hex>)")
        elif t[0] == "entries":
            bundles.append((rel,) + t[1:])
        else:
            hash_tiles.append((rel,) + t[1:])

    # The published key.
    kp = root / "key.vkey"
    if not kp.is_file():
        problems.append("key.vkey: missing")
    else:
        try:
            published = kp.read_text(encoding="utf-8").strip()
            if published != pathlib.Path(vkey_path).read_text(encoding="utf-8").strip():
                other = parse_vkey(published)
                problems.append(
                    f"key.vkey: publishes {other.name}+{other.key_hash.hex()}, not the pinned key {pinned}"
                )
        except (OSError, UnicodeDecodeError, Invalid) as e:
            problems.append(f"key.vkey: differs from the pinned key {pinned}: {e}")

    # The checkpoint, against the pinned key.
    try:
        note = (root / "checkpoint").read_bytes().decode("utf-8")
        origin, size, cp_root, _ext = parse_checkpoint(open_note(note, verifier))
    except FileNotFoundError:
        return problems + ["checkpoint: missing"], counts, verifier
    except (OSError, UnicodeDecodeError) as e:
        return problems + [f"checkpoint: {e}"], counts, verifier
    except Invalid as e:
        return problems + [f"checkpoint: {e}"], counts, verifier
    if origin != verifier.name:
        problems.append(f"checkpoint: origin {origin!r} is not the key name {verifier.name!r}")
    counts["size"] = size

    # Entry bundles for the checkpoint's size: the leaves, as a contiguous prefix.
    entries = []
    for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        name = tile_path("entries", n, width)
        try:
            used, data = read_tile_for(root, "entries", n, width)
            got = parse_bundle(data)
        except Invalid as e:
            problems.append(f"{name}: {e} (needed for tree size {size}); entries from {n * TILE_WIDTH} on are not verified")
            break
        if len(got) < width or (len(got) != width and used == name):
            problems.append(f"{used}: holds {len(got)} entries, not {width}; entries from {n * TILE_WIDTH} on are not verified")
            break
        if used == tile_path("entries", n, TILE_WIDTH) and len(got) != TILE_WIDTH:
            problems.append(f"{used}: a full bundle holds {len(got)} entries, not {TILE_WIDTH}")
        entries.extend(got[:width])
    leaves = [leaf_hash(e) for e in entries]
    counts["entries"] = len(entries)

    # Each entry: DSSE signature, statement, and its content under blobs/sha256/.
    seen_blobs = set()
    for idx, env in enumerate(entries if envelopes else []):
        entry_problems = []
        try:
            st, subject = parse_statement(open_envelope(env, verifier))
        except Invalid as e:
            problems.append(f"entry {idx}: {e}")
            continue
        digest_hex = subject["digest"].get("sha256")
        if not isinstance(digest_hex, str) or not re.fullmatch(r"[0-9a-f]{64}", digest_hex):
            problems.append(f"entry {idx}: subject digest sha256 {digest_hex!r} is not 64 lowercase hex digits")
            continue
        p = st["predicate"]
        collector = p.get("collector")
        row = {
            "idx": idx,
            "content_digest": bytes.fromhex(digest_hex),
            "collector_id": collector.get("id") if isinstance(collector, dict) else None,
            "scheduled_for": p.get("scheduled_for"),
            "finished_at": p.get("finished_at"),
            "status": p.get("status"),
            "trigger": p.get("trigger"),
        }
        entry_problems += check_snapshot_statement(st, subject, host, row)
        problems += [f"entry {idx}: {x}" for x in entry_problems]
        if digest_hex in seen_blobs:
            continue
        seen_blobs.add(digest_hex)
        got, blob_size, why = read_blob_file(root, digest_hex)
        name = f"blobs/sha256/{digest_hex}"
        if why:
            problems.append(f"{name}: {why} (the content of entry {idx})")
        elif got.hex() != digest_hex:
            problems.append(f"{name}: content SHA-256 is {got.hex()} (the content of entry {idx})")
        else:
            cs = p.get("content_size")
            if type(cs) is int and cs != blob_size:
                problems.append(f"{name}: content is {blob_size} bytes, entry {idx} says {cs}")
    counts["blobs"] = len(seen_blobs)

    # Roots of every prefix that a checkpoint names.
    cp_sizes = set()
    for rel in cp_files:
        cp_sizes.add(int(CHECKPOINTS_RE.fullmatch(rel).group(1)))
    roots = {}
    acc = RootAccumulator()
    wanted = cp_sizes | {size}
    if 0 in wanted:
        roots[0] = acc.root()
    for lh in leaves:
        acc.push(lh)
        if acc.size in wanted:
            roots[acc.size] = acc.root()
    if len(leaves) == size:
        if roots[size] != cp_root:
            problems.append(
                f"checkpoint: signed root {base64.b64encode(cp_root).decode()} is not the root of "
                f"entries 0..{size - 1} ({base64.b64encode(roots[size]).decode()})"
            )
    else:
        problems.append(f"checkpoint: its root cannot be checked: only {len(leaves)} of {size} entries are readable")

    # Hash tiles: level-L tile N holds tree-level 8L nodes N*256 .. N*256+W-1.
    max_level = 0
    while (size >> (TILE_HEIGHT * (max_level + 1))) > 0:
        max_level += 1
    levels = tree_levels(leaves, TILE_HEIGHT * max_level)

    def check_hash_tile(rel, level, n, width, data, needed):
        nodes = levels[TILE_HEIGHT * level]
        if (n * TILE_WIDTH + width) > len(nodes):
            counts["beyond"] += 1  # covers entries past what we can recompute
            return
        if len(data) < width * 32 or (len(data) != width * 32 and rel == needed):
            problems.append(f"{rel}: is {len(data)} bytes, not {width} hashes of 32 bytes")
            return
        for k in range(width):
            if data[32 * k : 32 * k + 32] != nodes[n * TILE_WIDTH + k]:
                problems.append(
                    f"{rel}: hash {k} is not the recomputed node (tree level {TILE_HEIGHT * level}, "
                    f"index {n * TILE_WIDTH + k})"
                )
                return
        counts["tiles"] += 1

    for level in range(max_level + 1):
        count = size >> (TILE_HEIGHT * level)  # nodes of tree level 8L in a tree of `size`
        for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, count - n * TILE_WIDTH)
            name = tile_path(level, n, width)
            try:
                used, data = read_tile_for(root, level, n, width)
            except Invalid:
                problems.append(f"{name}: missing (needed for tree size {size})")
                continue
            check_hash_tile(used, level, n, width, data, name)

    # Every other tile and bundle present (older partials, full tiles): consistent with the log.
    needed_bundles = {tile_path("entries", n, min(TILE_WIDTH, size - n * TILE_WIDTH)) for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH)}
    for rel, _level, n, width in bundles:
        if rel in needed_bundles:
            counts["bundles"] += 1
            continue
        if n * TILE_WIDTH + width > len(entries):
            counts["beyond"] += 1
            continue
        try:
            got = parse_bundle((root / rel).read_bytes())
        except Invalid as e:
            problems.append(f"{rel}: {e}")
            continue
        if got != entries[n * TILE_WIDTH : n * TILE_WIDTH + width]:
            diff = next((k for k in range(min(len(got), width)) if got[k] != entries[n * TILE_WIDTH + k]), None)
            what = f"entry {n * TILE_WIDTH + diff} differs from the log's" if diff is not None else f"holds {len(got)} entries, not {width}"
            problems.append(f"{rel}: {what}")
        else:
            counts["bundles"] += 1
    needed_tiles = set()
    for level in range(max_level + 1):
        count = size >> (TILE_HEIGHT * level)
        for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            needed_tiles.add(tile_path(level, n, min(TILE_WIDTH, count - n * TILE_WIDTH)))
    for rel, level, n, width in hash_tiles:
        if rel in needed_tiles:
            continue  # checked above
        if level > max_level or (n * TILE_WIDTH + width) << (TILE_HEIGHT * level) > len(leaves):
            counts["beyond"] += 1
            continue
        check_hash_tile(rel, level, n, width, (root / rel).read_bytes(), rel)

    # checkpoints/<n>: every checkpoint, kept; each signed and on this log.
    if str(size) not in {rel.split("/")[1] for rel in cp_files}:
        problems.append(f"checkpoints/{size}: missing (the latest checkpoint is not kept)")
    for rel in sorted(cp_files, key=lambda r: int(r.split("/")[1])):
        n = int(rel.split("/")[1])
        counts["checkpoints"] += 1
        try:
            o, s, r, _ = parse_checkpoint(open_note((root / rel).read_bytes().decode("utf-8"), verifier))
        except (OSError, UnicodeDecodeError, Invalid) as e:
            problems.append(f"{rel}: {e}")
            continue
        if o != origin:
            problems.append(f"{rel}: origin {o!r} is not the checkpoint's {origin!r}")
        if s != n:
            problems.append(f"{rel}: signed tree size is {s}")
        elif n > size:
            problems.append(f"{rel}: tree size {n} is larger than the checkpoint's {size}")
        elif n > len(leaves):
            problems.append(f"{rel}: its root cannot be checked: only {len(leaves)} entries are readable")
        elif roots[n] != r:
            problems.append(
                f"{rel}: signed root {base64.b64encode(r).decode()} is not the root of entries "
                f"0..{n - 1} ({base64.b64encode(roots[n]).decode()})"
            )
    return problems, counts, verifier


def tiles_self_test(vectors, vector_dir):
    """The tiles reader against the known-answer `tiles-300` vector, then the whole tiles mode
    against a log built here (signed with the vector key) and damaged in known ways."""
    import tempfile

    problems = []
    key = vectors["key"]
    verifier = parse_vkey(key["vkey"])
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["seed_hex"]))
    tiles = pathlib.Path(vector_dir) / "tiles-300"
    checks = 0

    def sign_note(body):
        sig = verifier.key_hash + private.sign(body.encode())
        return body + "\n" + f"{SIG_LINE_PREFIX}{verifier.name} {base64.b64encode(sig).decode()}\n"

    with tempfile.TemporaryDirectory() as tmp:
        vk = pathlib.Path(tmp) / "vkey"
        vk.write_text(key["vkey"] + "\n")

        # 1. The vector: its entries are opaque `entry-<i>` bytes; checkpoint and tiles must hold.
        if tiles.is_dir():
            got, c, _ = verify_tiles(tiles, vk, envelopes=False)
            # The vector has no key.vkey and no checkpoints/ (it predates the S3 layout).
            got = [p for p in got if not p.startswith(("key.vkey:", "checkpoints/"))]
            problems += [f"vectors: tiles-300: {p}" for p in got]
            if c["entries"] != 300 or c["tiles"] != 3:
                problems.append(f"vectors: tiles-300: read {c['entries']} entries and {c['tiles']} hash tiles, not 300 and 3")
            leaves = (tiles / "tile" / "entries" / "000").read_bytes()
            if parse_bundle(leaves)[:2] != [b"entry-0", b"entry-1"]:
                problems.append("vectors: tiles-300: bundle 000 does not start with entry-0, entry-1")
            checks += 1
        else:
            problems.append(f"vectors: {tiles} is missing")
        for n, want in ((0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")):
            if tile_index_path(n) != want or parse_tile_index(want) != n:
                problems.append(f"vectors: tile index {n} is not encoded as {want}")
        for bad in ("tile/0/1", "tile/0/x000/001", "tile/0/000.p/256", "tile/0/000.p/0", "tile/entries/001.p/044"):
            if classify_tile_path(bad) is not None:
                problems.append(f"vectors: {bad} accepted as a tile path")

        # 2. A log of signed snapshot statements, 512 entries, its checkpoint at 260.
        host = verifier.name[len(ORIGIN_PREFIX) :]
        contents = [b"", b"alpha\n", b'{"users":["root"]}']
        envs = []
        for i in range(512):
            content = contents[i % 3]
            st = {
                "_type": STATEMENT_TYPE,
                "subject": [{"name": "c%d" % (i % 2), "digest": {"sha256": hashlib.sha256(content).hexdigest()}}],
                "predicateType": PREDICATE_TYPE,
                "predicate": {
                    "host": host, "collector": {"id": "c%d" % (i % 2), "kind": "files"},
                    "log_index": i, "scheduled_for": "2025-01-01T00:00:00Z",
                    "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:00:01Z",
                    "status": "ok", "content_size": len(content), "media_type": "application/json",
                    "item_count": 1, "agent_version": "0.1.0", "config_sha256": "0" * 64,
                },
            }
            payload = json.dumps(st, sort_keys=True, separators=(",", ":")).encode()
            sig = private.sign(pae(PAYLOAD_TYPE, payload))
            envs.append(json.dumps({
                "payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": verifier.key_hash.hex(), "sig": base64.b64encode(sig).decode()}],
            }, separators=(",", ":")).encode())
        lh = [leaf_hash(e) for e in envs]
        lv = tree_levels(lh, 16)
        d = pathlib.Path(tmp) / "host"

        def put(rel, data):
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data if isinstance(data, bytes) else data.encode())

        def write_size(n):
            for level in range(3):
                count = n >> (8 * level)
                for t in range((count + 255) // 256):
                    w = min(256, count - t * 256)
                    put(tile_path(level, t, w), b"".join(lv[8 * level][t * 256 : t * 256 + w]))
                    if level == 0:
                        put(tile_path("entries", t, w), b"".join(len(e).to_bytes(2, "big") + e for e in envs[t * 256 : t * 256 + w]))
            put(f"checkpoints/{n}", sign_note(f"{verifier.name}\n{n}\n{base64.b64encode(mth(lh[:n])).decode()}\n"))

        for n in (3, 100, 260, 512):
            write_size(n)
        # The log grew to 512 but the checkpoint is at 260 (as after an interrupted sync).
        os_remove = lambda rel: (d / rel).unlink()
        os_remove("checkpoints/512")
        put("checkpoint", (d / "checkpoints/260").read_bytes())
        put("key.vkey", key["vkey"] + "\n")
        for c in contents:
            put(f"blobs/sha256/{hashlib.sha256(c).hexdigest()}", c)

        def expect(what, want_problem):
            nonlocal checks
            got, c, _ = verify_tiles(d, vk)
            checks += 1
            if want_problem is None and got:
                problems.extend(f"vectors: tiles log ({what}): {p}" for p in got)
            elif want_problem is not None and not any(p.startswith(want_problem) for p in got):
                problems.append(f"vectors: tiles log ({what}): no problem starting {want_problem!r} in {got}")
            return c

        c = expect("intact", None)
        if (c["entries"], c["blobs"], c["checkpoints"]) != (260, 3, 3) or c["beyond"] == 0:
            problems.append(f"vectors: tiles log: counted {c}")
        # A client falls back to the full tile when the partial one is gone.
        os_remove("tile/entries/001.p/4")
        os_remove("tile/0/001.p/4")
        expect("partials replaced by full tiles", None)
        os_remove("tile/1/000.p/1")
        expect("hash tile missing", "tile/1/000.p/1: missing")
        put("tile/1/000.p/1", lv[8][0])
        blob = f"blobs/sha256/{hashlib.sha256(contents[1]).hexdigest()}"
        put(blob, b"alphA\n")
        expect("blob changed", blob + ": content SHA-256")
        put(blob, contents[1])
        old = (d / "tile/0/000").read_bytes()
        put("tile/0/000", old[:64] + bytes(32) + old[96:])
        expect("hash tile changed", "tile/0/000: hash 2")
        put("tile/0/000", old)
        old = (d / "tile/entries/000").read_bytes()
        at = old.index(b'"sig":"') + len(b'"sig":"')
        put("tile/entries/000", old[:at] + (b"B" if old[at : at + 1] == b"A" else b"A") + old[at + 1 :])
        expect("entry changed", "entry 0: ")
        put("tile/entries/000", old)
        old = (d / "checkpoints/100").read_bytes()
        put("checkpoints/100", sign_note(f"{verifier.name}\n100\n{base64.b64encode(mth(lh[:99])).decode()}\n"))
        expect("forked old checkpoint", "checkpoints/100: signed root")
        put("checkpoints/100", old)
        put("checkpoint", sign_note(f"{verifier.name}\n260\n{base64.b64encode(mth(lh[:259])).decode()}\n"))
        expect("wrong root", "checkpoint: signed root")
        put("checkpoint", (d / "checkpoints/260").read_bytes())
        put("key.vkey", "evidence-agent/other+00000000+AWfYHVBZ+kTcbkzhDAFxEGGG7s1oT2q8PZ9UNtudTn24\n")
        expect("other published key", "key.vkey: ")
        put("key.vkey", key["vkey"] + "\n")
        put("tile/0/1", b"")
        expect("non-canonical path", "tile/0/1: not a path")
        os_remove("tile/0/1")
        expect("restored", None)
    return problems, checks


# ---------------------------------------------------------------------------------------------
# Known-answer self-test against the shared vectors


def self_test(vectors_path):
    problems = []
    counts = {"trees": 0, "inclusion": 0, "consistency": 0, "checkpoints": 0, "dsse": 0, "tiles": 0}
    try:
        v = json.loads(pathlib.Path(vectors_path).read_text(encoding="utf-8"))
        key = v["key"]
        verifier = parse_vkey(key["vkey"])
    except (OSError, ValueError, KeyError, Invalid) as e:
        return [f"vectors: cannot load {vectors_path}: {e}"], counts

    def check(cond, what):
        if not cond:
            problems.append(f"vectors: {what}")

    # Key: the vkey, the key hash, the seed.
    seed = bytes.fromhex(key["seed_hex"])
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = bytes.fromhex(key["public_hex"])
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    check(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == public, "seed does not give public_hex")
    check(verifier.name == key["name"], "vkey name")
    check(verifier.public == public, "vkey public key")
    check(note_key_hash(key["name"], public).hex() == key["key_hash_hex"], "key hash")
    built = "%s+%s+%s" % (
        key["name"],
        note_key_hash(key["name"], public).hex(),
        base64.b64encode(bytes([ED25519_ALG]) + public).decode(),
    )
    check(built == key["vkey"], "vkey rebuilt from name and public key differs")
    for bad in (key["vkey"].replace("+" + key["key_hash_hex"] + "+", "+00000000+"), "x+y"):
        try:
            parse_vkey(bad)
            problems.append(f"vectors: bad vkey {bad[:30]!r} accepted")
        except Invalid:
            pass

    # DSSE + in-toto.
    d = v["dsse"]
    env_bytes = json.dumps(d["envelope"]).encode()
    payload = d["payload"].encode()
    try:
        got = open_envelope(env_bytes, verifier)
        check(got == payload, "envelope payload differs from dsse.payload")
        st, subject = parse_statement(got)
        check(st["predicateType"] == PREDICATE_TYPE, "statement predicateType")
        check(
            subject["digest"].get("sha256") == hashlib.sha256(d["content"].encode()).hexdigest(),
            "subject digest is not sha256(content)",
        )
    except Invalid as e:
        problems.append(f"vectors: dsse envelope: {e}")
    check(pae(PAYLOAD_TYPE, payload) == b64_std(d["pae_b64"]), "PAE bytes differ")
    sig = b64_std(d["envelope"]["signatures"][0]["sig"])
    check(private.sign(pae(PAYLOAD_TYPE, payload)) == sig, "Ed25519 signature over PAE is not deterministic")
    tampered = dict(d["envelope"], payload=base64.b64encode(payload.replace(b"ok", b"no")).decode())
    try:
        open_envelope(json.dumps(tampered).encode(), verifier)
        problems.append("vectors: tampered DSSE payload accepted")
    except Invalid:
        pass
    counts["dsse"] = 1

    # Trees.
    check(b64_std(v["empty_tree_root_b64"]) == mth([]), "empty tree root")
    check(b64_std(v["leaf_hash_of_entry-0_b64"]) == leaf_hash(b"entry-0"), "leaf hash of entry-0")
    max_n = max(int(n) for n in v["trees"])
    leaves = [leaf_hash(b"entry-%d" % i) for i in range(max_n)]
    acc = RootAccumulator()
    prefix_roots = [acc.root()]
    for lh in leaves:
        acc.push(lh)
        prefix_roots.append(acc.root())
    for n in range(min(max_n, 70) + 1):
        check(prefix_roots[n] == mth(leaves[:n]), f"streamed root of size {n} differs from MTH")
    check(prefix_roots[max_n] == mth(leaves), f"streamed root of size {max_n} differs from MTH")

    for n_s, t in sorted(v["trees"].items(), key=lambda kv: int(kv[0])):
        n = int(n_s)
        root = b64_std(t["root_b64"])
        check(mth(leaves[:n]) == root, f"trees[{n}]: root")
        try:
            text = open_note(t["checkpoint"], verifier)
            origin, size, cp_root, ext = parse_checkpoint(text)
            check(origin == key["name"] and size == n and cp_root == root and ext == [], f"trees[{n}]: checkpoint body")
            body = f"{key['name']}\n{n}\n{t['root_b64']}\n"
            check(text == body, f"trees[{n}]: checkpoint text")
            sig = verifier.key_hash + private.sign(body.encode())
            line = f"{SIG_LINE_PREFIX}{key['name']} {base64.b64encode(sig).decode()}\n"
            check(t["checkpoint"] == body + "\n" + line, f"trees[{n}]: signed note not byte-identical")
        except Invalid as e:
            problems.append(f"vectors: trees[{n}]: checkpoint: {e}")
        forged = t["checkpoint"].replace(f"\n{n}\n", f"\n{n + 1}\n", 1)
        try:
            open_note(forged, verifier)
            problems.append(f"vectors: trees[{n}]: checkpoint with a changed size accepted")
        except Invalid:
            pass
        counts["checkpoints"] += 1
        for i_s, path_b64 in t["inclusion"].items():
            i = int(i_s)
            path = [b64_std(h) for h in path_b64]
            check(rfc6962_path(i, leaves[:n]) == path, f"trees[{n}]: PATH({i}) differs")
            why = verify_inclusion(leaves[i], i, n, path, root)
            check(why is None, f"trees[{n}]: inclusion of {i}: {why}")
            for bad_i, bad_path in ((i ^ 1, path), (i, path[:-1]), (i, path + [root])):
                if bad_i < n and verify_inclusion(leaves[i], bad_i, n, bad_path, root) is None and (bad_i, bad_path) != (i, path):
                    problems.append(f"vectors: trees[{n}]: bad inclusion proof of {i} accepted")
            if path:
                flipped = [bytes([path[0][0] ^ 1]) + path[0][1:]] + path[1:]
                check(verify_inclusion(leaves[i], i, n, flipped, root) is not None, f"trees[{n}]: flipped inclusion proof of {i} accepted")
            counts["inclusion"] += 1
        for m_s, path_b64 in t["consistency"].items():
            m = int(m_s)
            path = [b64_std(h) for h in path_b64]
            old_root = mth(leaves[:m])
            check(rfc6962_proof(m, leaves[:n]) == path, f"trees[{n}]: PROOF({m}) differs")
            why = verify_consistency(m, n, old_root, root, path)
            check(why is None, f"trees[{n}]: consistency from {m}: {why}")
            check(verify_consistency(m, n, root, root, path) is not None or old_root == root, f"trees[{n}]: consistency from {m} with a wrong old root accepted")
            if path:
                flipped = path[:-1] + [bytes([path[-1][0] ^ 1]) + path[-1][1:]]
                check(verify_consistency(m, n, old_root, root, flipped) is not None, f"trees[{n}]: flipped consistency proof from {m} accepted")
            counts["consistency"] += 1
        counts["trees"] += 1

    # Every inclusion and consistency proof of a smaller tree, generated by RFC 6962's own
    # definitions, must verify with the RFC 9162 algorithms (and fail against the wrong root).
    for n in range(1, 34):
        root = mth(leaves[:n])
        for i in range(n):
            if verify_inclusion(leaves[i], i, n, rfc6962_path(i, leaves[:n]), root) is not None:
                problems.append(f"vectors: generated inclusion proof {i}@{n} rejected")
        for m in range(1, n + 1):
            proof = rfc6962_proof(m, leaves[:n])
            if verify_consistency(m, n, mth(leaves[:m]), root, proof) is not None:
                problems.append(f"vectors: generated consistency proof {m}->{n} rejected")
            if m < n and verify_consistency(m, n, mth(leaves[:m]), mth(leaves[: n - 1]), proof) is None:
                problems.append(f"vectors: consistency proof {m}->{n} accepted against a wrong root")

    tile_problems, counts["tiles"] = tiles_self_test(v, pathlib.Path(vectors_path).parent)
    problems += tile_problems
    return problems, counts


# ---------------------------------------------------------------------------------------------


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ledger", nargs="?", help="the ledger SQLite file")
    ap.add_argument("vkey", nargs="?", help="file holding the note verifier key")
    ap.add_argument("proofs", nargs="?", help="optional JSON file of inclusion/consistency proofs")
    ap.add_argument("--vectors", metavar="FILE", help="known-answer self-test against vectors.json")
    ap.add_argument(
        "--tiles", nargs=2, metavar=("DIR", "VKEY_FILE"), help="verify a host directory synced to S3"
    )
    args = ap.parse_args(argv)
    if not args.vectors and not args.tiles and not (args.ledger and args.vkey):
        ap.error("give LEDGER VKEY [PROOFS], --tiles DIR VKEY_FILE or --vectors FILE")
    if args.ledger and not args.vkey:
        ap.error("a ledger needs its VKEY file")

    failed = False
    if args.vectors:
        problems, c = self_test(args.vectors)
        for p in problems:
            print(p)
        if problems:
            failed = True
            print(f"independent-verify vectors: FAILED {len(problems)} problems")
        else:
            print(
                f"independent-verify vectors: OK trees={c['trees']} checkpoints={c['checkpoints']} "
                f"inclusion={c['inclusion']} consistency={c['consistency']} dsse={c['dsse']} "
                f"tiles={c['tiles']}"
            )
    if args.tiles:
        problems, c, verifier = verify_tiles(args.tiles[0], args.tiles[1])
        for p in problems:
            print(p)
        summary = (
            f"size={c['size']} entries={c['entries']} blobs={c['blobs']} bundles={c['bundles']} "
            f"tiles={c['tiles']} checkpoints={c['checkpoints']} beyond={c['beyond']}"
        )
        if problems:
            failed = True
            print(f"independent-verify tiles: FAILED {len(problems)} problems; {summary}")
        else:
            key = f"{verifier.name}+{verifier.key_hash.hex()}"
            print(f"independent-verify tiles: OK {summary} key={key}")
    if args.ledger:
        problems, c, verifier = verify_ledger(args.ledger, args.vkey, args.proofs)
        for p in problems:
            print(p)
        summary = (
            f"entries={c['entries']} checkpoints={c['checkpoints']} blobs={c['blobs']} "
            f"inclusion={c['inclusion']} consistency={c['consistency']}"
        )
        if problems:
            failed = True
            print(f"independent-verify: FAILED {len(problems)} problems; {summary}")
        else:
            key = f"{verifier.name}+{verifier.key_hash.hex()}"
            print(f"independent-verify: OK {summary} key={key}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
