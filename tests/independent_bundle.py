#!/usr/bin/env python3
"""Independent verifier for evidence bundles (directory form, format `evidence-bundle/v1`).

Written from the published rules alone, sharing no code with the Rust implementation:
RFC 6962 / RFC 9162 §2.1 (Merkle inclusion §2.1.3.2 and consistency §2.1.4.2 proofs), C2SP
signed-note and tlog-checkpoint, DSSE v1 carrying in-toto Statement v1, DESIGN.md §3 and the
bundle rules documented in agent/src/bundle/{mod,layout,population,sample}.rs. The standards
themselves come from tests/independent_verify.py (the ledger's independent verifier).

Usage:
    independent_bundle.py BUNDLE_DIR [--vkey FILE]...

--vkey pins a host's key (a file holding one note verifier key line); a host without one is
checked with the key the bundle carries, and the summary says it was not pinned.

Exit status 0 with a JSON summary `{"ok": true, "hosts": {...}, "entries": N, "blobs": N,
"sample_rows": N}` when everything holds; 1 with one line per problem, each starting with the
bundle file it concerns (`entries/h/3.json: ...`), then the summary with "ok": false.
"""

import argparse
import base64
import calendar
import csv
import datetime
import hashlib
import io
import json
import os
import pathlib
import re
import stat
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import independent_verify as iv  # noqa: E402  (standards: RFC 6962, signed notes, DSSE)

FORMAT = "evidence-bundle/v1"
METHOD = "sha256-rank/v1"
MANIFEST, SUMS = "manifest.json", "SHA256SUMS"
POPULATION, SAMPLE, REPORT = "population.csv", "sample.csv", "report.html"
SMALL_FILE = 1 << 20  # entries, proofs, checkpoints and keys are far smaller
BIG_FILE = 1 << 30  # manifest, sums, CSVs
HOST_ID = re.compile(r"[A-Za-z0-9._-]{1,253}")
HEX64 = re.compile(r"[0-9a-f]{64}")
TICKET_KINDS = {"github_pull_requests", "gitlab_merge_requests", "jira_issues", "servicenow_changes"}
SEGMENT_KINDS = {"log_file", "journald"}
AUTO_SIZES = {"many times a day": 60, "daily": 40, "weekly": 15, "monthly": 5, "quarterly": 2, "annual": 1}
POPULATION_HEADER = [
    "host", "collector", "kind", "population", "row_id", "first_entry", "last_entry",
    "scheduled_for", "status", "digest", "items", "ticket", "title", "author", "approvers",
    "approved_at", "closed_at", "segment_path", "segment_start", "segment_end",
]  # fmt: skip
SAMPLE_HEADER = [
    "host", "collector", "population", "population_size", "sample_size", "rule", "seed",
    "method", "rank", "row_id", "rank_key", "entries",
]  # fmt: skip
Invalid = iv.Invalid


class Bundle:
    """The bundle directory, the digest and size of each regular file, the problems found."""

    def __init__(self, root):
        self.root = root
        self.files = {}  # relative posix path -> (sha256 hex, size)
        self.problems = []
        self.good_blobs = set()

    def problem(self, rel, message):
        self.problems.append(f"{rel}: {message}" if rel else message)

    def scan(self):
        """Hash every regular file; links and other special files are problems, never followed."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = pathlib.Path(dirpath)
            for name in list(dirnames) + filenames:
                path = base / name
                rel = path.relative_to(self.root).as_posix()
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    self.problem(rel, "is a symbolic link (not followed)")
                elif stat.S_ISREG(st.st_mode):
                    h = hashlib.sha256()
                    with open(path, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                    self.files[rel] = (h.hexdigest(), st.st_size)
                elif not stat.S_ISDIR(st.st_mode):
                    self.problem(rel, "is not a regular file")

    def read(self, rel, limit):
        """The bytes of a listed regular file, or Invalid."""
        if rel not in self.files:
            raise Invalid("missing")
        if self.files[rel][1] > limit:
            raise Invalid(f"is larger than the {limit} bytes such a file may have")
        return (self.root / rel).read_bytes()


# ---------------------------------------------------------------------------------------------
# Small parsers


def load_json(data):
    """Strict JSON from UTF-8 bytes: no duplicate keys, no NaN/Infinity."""

    def pairs(items):
        obj = {}
        for k, v in items:
            if k in obj:
                raise Invalid(f"duplicate key {k!r}")
            obj[k] = v
        return obj

    def constant(c):
        raise Invalid(f"{c} is not JSON")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Invalid(f"is not JSON: {e}") from None


def canonical(obj):
    """Canonical JSON bytes (keys sorted, no whitespace) of a document without floats."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def document(data, keys, what):
    """A canonical JSON object with exactly `keys` (documented bundle JSON files)."""
    obj = load_json(data)
    if not isinstance(obj, dict) or set(obj) != set(keys):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise Invalid(f"is not {what} (expected keys {sorted(keys)}, found {found})")
    if canonical(obj) != data:
        raise Invalid("is not canonical JSON (keys sorted, no whitespace)")
    return obj


def uint(v):
    return type(v) is int and v >= 0


RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)")


def parse_time(s):
    """Nanoseconds since the epoch of an RFC 3339 time, or None if `s` is not one."""
    m = RFC3339.fullmatch(s) if isinstance(s, str) else None
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    try:
        datetime.datetime(y, mo, d, h, mi, min(sec, 59))
    except ValueError:
        return None
    if sec > 60:
        return None
    off = m.group(8)
    offset = 0 if off in "Zz" else (1 if off[0] == "+" else -1) * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    frac = int((m.group(7) or "0")[:9].ljust(9, "0"))
    seconds = calendar.timegm((y, mo, d, h, mi, min(sec, 59), 0, 0, 0)) - offset
    return seconds * 10**9 + frac + (10**9 if sec == 60 else 0)


def decode_hashes(hashes):
    """Proof hashes: a list of standard base64 strings of exactly 32 bytes."""
    if not isinstance(hashes, list):
        raise Invalid("hashes is not a list")
    out = []
    for i, h in enumerate(hashes):
        raw = iv.b64_std(h)
        if len(raw) != 32:
            raise Invalid(f"hash {i} is {len(raw)} bytes, not 32")
        out.append(raw)
    return out


def csv_safe(cell):
    """population.rs write_csv: a cell a spreadsheet would take as a formula gets a leading '."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def read_csv(b, rel):
    """The records of a CSV file of the bundle."""
    text = b.read(rel, BIG_FILE).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), strict=True))


# ---------------------------------------------------------------------------------------------
# Files, SHA256SUMS, manifest


def check_manifest(b):
    """manifest.json: shape, format, period, hosts; returns it, or None if unusable."""
    try:
        keys = ["agent_version", "created_at", "files", "filters", "format", "hosts", "period", "sample"]
        m = document(b.read(MANIFEST, BIG_FILE), keys, "a bundle manifest")
        if m["format"] != FORMAT:
            raise Invalid(f"format is {m['format']!r}, not {FORMAT!r}")
        p = m["period"]
        if not isinstance(p, dict) or set(p) != {"from", "to"}:
            raise Invalid("period is not {from, to}")
        m["_from"], m["_to"] = parse_time(p["from"]), parse_time(p["to"])
        if m["_from"] is None or m["_to"] is None or m["_from"] >= m["_to"]:
            raise Invalid(f"period {p!r} is not two RFC 3339 times, from before to")
        if parse_time(m["created_at"]) is None or not isinstance(m["agent_version"], str):
            raise Invalid("created_at or agent_version is malformed")
        f = m["filters"]
        if not isinstance(f, dict) or set(f) != {"collectors", "hosts"}:
            raise Invalid("filters is not {collectors, hosts}")
        if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in f.values()):
            raise Invalid("filters are not lists of strings")
        s = m["sample"]
        if s is not None:
            if not isinstance(s, dict) or set(s) != {"method", "seed", "size"}:
                raise Invalid("sample is not null nor {method, seed, size}")
            if not all(isinstance(v, str) for v in s.values()):
                raise Invalid("sample fields are not strings")
            if s["method"] != METHOD:
                raise Invalid(f"sample method {s['method']!r} is not {METHOD!r}")
            if s["size"] != "auto" and not re.fullmatch(r"[1-9][0-9]*", s["size"]):
                raise Invalid(f"sample size {s['size']!r} is neither a number of rows nor auto")
        if not isinstance(m["hosts"], list) or not m["hosts"]:
            raise Invalid("hosts is not a non-empty list")
        seen = set()
        for h in m["hosts"]:
            if not isinstance(h, dict) or set(h) != {"end_size", "host", "source", "start_size"}:
                raise Invalid(f"host part {h!r:.80} is not {{end_size, host, source, start_size}}")
            host = h["host"]
            if not isinstance(host, str) or not HOST_ID.fullmatch(host) or host in (".", ".."):
                raise Invalid(f"host id {host!r} is not one path component of [A-Za-z0-9._-]")
            if host in seen:
                raise Invalid(f"host {host} is listed twice")
            seen.add(host)
            if not (uint(h["start_size"]) and uint(h["end_size"]) and h["start_size"] < h["end_size"]):
                raise Invalid(f"host {host}: range {h['start_size']!r}..{h['end_size']!r} is not a non-empty range")
        if not isinstance(m["files"], list):
            raise Invalid("files is not a list")
        return m
    except Invalid as e:
        b.problem(MANIFEST, e)
        return None


def check_file_lists(b, m):
    """SHA256SUMS and the manifest's file list against the files found, both ways."""
    listed = {}
    try:
        text = b.read(SUMS, BIG_FILE).decode("utf-8")
        if text and not text.endswith("\n"):
            b.problem(SUMS, "does not end with a newline")
        last = None
        for n, line in enumerate(text.splitlines(), 1):
            match = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
            if not match:
                b.problem(SUMS, f"line {n}: not `<sha256 hex>  <path>`")
                continue
            digest, rel = match.groups()
            if rel in listed or rel == SUMS:
                b.problem(SUMS, f"line {n}: {rel} listed twice or lists SHA256SUMS itself")
            if last is not None and rel <= last:
                b.problem(SUMS, f"line {n}: not sorted by path")
            last = rel
            listed[rel] = digest
    except (Invalid, UnicodeDecodeError) as e:
        b.problem(SUMS, e)
    for rel, (digest, _) in sorted(b.files.items()):
        if rel == SUMS:
            continue
        if rel not in listed:
            b.problem(rel, "not listed in SHA256SUMS")
        elif listed[rel] != digest:
            b.problem(rel, "content does not match SHA256SUMS")
    for rel in sorted(set(listed) - set(b.files)):
        b.problem(rel, "listed in SHA256SUMS but missing")

    in_manifest, last = set(), None
    for f in m["files"]:
        if not isinstance(f, dict) or set(f) != {"path", "sha256", "size"} or not isinstance(f["path"], str):
            b.problem(MANIFEST, f"file entry {f!r:.80} is not {{path, sha256, size}}")
            continue
        rel = f["path"]
        if rel in (MANIFEST, SUMS) or rel in in_manifest or (last is not None and rel <= last):
            b.problem(MANIFEST, f"files: {rel} is out of order, repeated, or not to be listed")
        last = rel
        in_manifest.add(rel)
        if rel not in b.files:
            b.problem(rel, "listed in manifest.json but missing")
        elif b.files[rel] != (f["sha256"], f["size"]):
            b.problem(rel, "sha256 or size does not match manifest.json")
    for rel in sorted(set(b.files) - in_manifest - {MANIFEST, SUMS}):
        b.problem(rel, "not listed in manifest.json")


def check_roles(b, m):
    """Every file has a documented role; blobs are named by their content's SHA-256."""
    expected = {MANIFEST, SUMS, POPULATION, SAMPLE, REPORT}
    for rel in sorted(expected - set(b.files)):
        b.problem(rel, "missing")
    hosts = {h["host"]: h for h in m["hosts"]}
    for rel, (digest, _) in sorted(b.files.items()):
        parts = rel.split("/")
        if rel in expected:
            continue
        if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] and HEX64.fullmatch(parts[2]):
            if digest == parts[2]:
                b.good_blobs.add(digest)
            else:
                b.problem(rel, f"content does not match its name: its SHA-256 is {digest}")
            continue
        h = hosts.get(parts[1]) if len(parts) == 3 else None
        if len(parts) == 2 and parts[0] == "keys" and parts[1].endswith(".vkey") and parts[1][:-5] in hosts:
            continue
        if h is not None:
            s, e = h["start_size"], h["end_size"]
            name = parts[2]
            index = int(name[:-5]) if re.fullmatch(r"(0|[1-9][0-9]*)\.json", name) else None
            if parts[0] in ("entries", "proofs") and index is not None and s <= index < e:
                continue
            if parts[0] == "proofs" and s > 0 and name == f"consistency-{s}-{e}.json":
                continue
            if parts[0] == "checkpoints" and re.fullmatch(r"0|[1-9][0-9]*", name):
                continue  # start and end are checked below; any other is checked too
        b.problem(rel, "not part of the bundle layout (or outside the host's exported range)")


# ---------------------------------------------------------------------------------------------
# One host: key, checkpoints, entries, proofs


def read_pinned(files, b):
    """--vkey files -> {key name: verifier}."""
    pinned = {}
    for f in files:
        try:
            v = iv.parse_vkey(pathlib.Path(f).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, Invalid) as e:
            b.problem(f"--vkey {f}", e)
            continue
        if v.name in pinned and pinned[v.name].public != v.public:
            b.problem(f"--vkey {f}", f"a second, different key for {v.name}")
        pinned[v.name] = v
    return pinned


def vkey_line(v):
    return "%s+%s+%s" % (v.name, v.key_hash.hex(), base64.b64encode(b"\x01" + v.public).decode())


def check_checkpoint(b, host, size, verifier):
    """checkpoints/<host>/<size>: signed by the host key, origin and size as named; the root."""
    rel = f"checkpoints/{host}/{size}"
    try:
        text = iv.open_note(b.read(rel, SMALL_FILE).decode("utf-8"), verifier)
        origin, cp_size, root, _ext = iv.parse_checkpoint(text)
        if origin != iv.ORIGIN_PREFIX + host:
            raise Invalid(f"origin is {origin!r}, not {iv.ORIGIN_PREFIX + host!r}")
        if cp_size != size:
            raise Invalid(f"signed tree size is {cp_size}, not {size}")
        return root
    except (Invalid, UnicodeDecodeError) as e:
        b.problem(rel, e)
        return None


def check_entry(b, host, i, verifier):
    """entries/<host>/<i>.json: a signed snapshot statement for index i of host; (leaf, statement)."""
    rel = f"entries/{host}/{i}.json"
    try:
        envelope = b.read(rel, SMALL_FILE)
        obj = load_json(envelope)
        if isinstance(obj, dict) and canonical(obj) != envelope:
            raise Invalid("is not canonical JSON (keys sorted, no whitespace)")
        st, subject = iv.parse_statement(iv.open_envelope(envelope, verifier))
        digest = subject["digest"].get("sha256")
        if not isinstance(digest, str) or not HEX64.fullmatch(digest):
            raise Invalid(f"subject sha256 {digest!r} is not 64 lowercase hex digits")
        p = st["predicate"]
        collector = p.get("collector") if isinstance(p.get("collector"), dict) else {}
        row = {
            "idx": i, "content_digest": bytes.fromhex(digest), "collector_id": collector.get("id"),
            "scheduled_for": p.get("scheduled_for"), "finished_at": p.get("finished_at"),
            "status": p.get("status"), "trigger": p.get("trigger"),
        }  # fmt: skip
        wrong = iv.check_snapshot_statement(st, subject, host, row)
        if wrong:
            raise Invalid("; ".join(wrong))
        return iv.leaf_hash(envelope), st
    except (Invalid, ValueError, TypeError, AttributeError) as e:
        b.problem(rel, e)
        return None, None


def check_inclusion(b, host, i, end, leaf, root):
    """proofs/<host>/<i>.json: leaf i of the end tree, RFC 9162 §2.1.3.2."""
    rel = f"proofs/{host}/{i}.json"
    try:
        doc = document(b.read(rel, SMALL_FILE), ["hashes", "leaf_index", "tree_size"], "an inclusion proof")
        if doc["leaf_index"] != i or doc["tree_size"] != end:
            raise Invalid(f"is for leaf {doc['leaf_index']!r} of tree {doc['tree_size']!r}, not {i} of {end}")
        if leaf is not None and root is not None:
            why = iv.verify_inclusion(leaf, i, end, decode_hashes(doc["hashes"]), root)
            if why:
                raise Invalid(f"does not prove entries/{host}/{i}.json is in checkpoint {end}: {why}")
    except Invalid as e:
        b.problem(rel, e)


def check_consistency(b, host, start, end, start_root, end_root):
    """proofs/<host>/consistency-<start>-<end>.json, RFC 9162 §2.1.4.2."""
    rel = f"proofs/{host}/consistency-{start}-{end}.json"
    try:
        doc = document(b.read(rel, SMALL_FILE), ["hashes", "new_size", "old_size"], "a consistency proof")
        if doc["old_size"] != start or doc["new_size"] != end:
            raise Invalid(f"is for {doc['old_size']!r}..{doc['new_size']!r}, not {start}..{end}")
        if start_root is not None and end_root is not None:
            why = iv.verify_consistency(start, end, start_root, end_root, decode_hashes(doc["hashes"]))
            if why:
                raise Invalid(f"does not prove checkpoint {end} extends checkpoint {start}: {why}")
    except Invalid as e:
        b.problem(rel, e)


def check_host(b, part, pinned):
    """One host's key, checkpoints, proofs and entries; returns {index: statement} and a summary."""
    host, start, end = part["host"], part["start_size"], part["end_size"]
    origin = iv.ORIGIN_PREFIX + host
    rel = f"keys/{host}.vkey"
    bundled = None
    try:
        text = b.read(rel, SMALL_FILE).decode("utf-8")
        bundled = iv.parse_vkey(text)
        if text != vkey_line(bundled) + "\n":
            b.problem(rel, "is not exactly one verifier key line and a newline")
    except (Invalid, UnicodeDecodeError) as e:
        b.problem(rel, e)
    verifier = pinned.get(origin, bundled)
    if origin in pinned and bundled is not None and vkey_line(bundled) != vkey_line(verifier):
        b.problem(rel, f"is not the pinned key {vkey_line(verifier)}")
    summary = {"start_size": start, "end_size": end, "entries": end - start, "pinned": origin in pinned}
    if verifier is None:
        return {}, summary
    summary["vkey"] = vkey_line(verifier)
    if verifier.name != origin:
        b.problem(rel, f"key name {verifier.name!r} is not {origin!r}")
        return {}, summary
    for name in sorted(f.split("/")[2] for f in b.files if f.startswith(f"checkpoints/{host}/")):
        if name not in (str(start), str(end)) and re.fullmatch(r"0|[1-9][0-9]*", name):
            check_checkpoint(b, host, int(name), verifier)  # an extra one must hold too
    end_root = check_checkpoint(b, host, end, verifier)
    if start > 0:
        start_root = check_checkpoint(b, host, start, verifier)
        check_consistency(b, host, start, end, start_root, end_root)
    statements = {}
    for i in range(start, end):
        leaf, st = check_entry(b, host, i, verifier)
        check_inclusion(b, host, i, end, leaf, end_root)
        if st is not None:
            statements[i] = st
    return statements, summary


# ---------------------------------------------------------------------------------------------
# Populations and sample (population.rs, sample.rs)


def text_of(v):
    """A JSON value as a CSV cell: null/absent empty, strings as they are, others as JSON."""
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def detail(p, key):
    """A string or number of predicate.details, as text; anything else is empty."""
    d = p.get("details")
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, str):
        return v
    return str(v) if type(v) in (int, float) else ""


def in_period(m, host, statements):
    """The (index, predicate, digest) of the host's entries scheduled in the period, filtered."""
    wanted = m["filters"]["collectors"]
    for i in sorted(statements):
        st = statements[i]
        p = st["predicate"]
        t = parse_time(p.get("scheduled_for"))
        if t is not None and m["_from"] <= t < m["_to"] and (not wanted or p["collector"]["id"] in wanted):
            yield i, p, st["subject"][0]["digest"]["sha256"]


def ticket_rows(b, host, entries):
    """Distinct change tickets over a collector's ok snapshots, fields from the last one."""
    rows = {}
    for i, p, digest in entries:
        if p["status"] != "ok":
            continue
        rel = f"blobs/sha256/{digest}"
        if digest not in b.good_blobs:
            raise Invalid(f"{rel}: missing, but entries/{host}/{i}.json's tickets are listed from it")
        doc = load_json(b.read(rel, BIG_FILE))
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise Invalid(f'{rel}: has no "items" array')
        for item in items:
            if not isinstance(item, dict) or item.get("type") != "change":
                continue
            tid = item.get("id")
            if type(tid) in (int, float):
                tid = str(tid)
            if not isinstance(tid, str) or not tid:
                raise Invalid(f"{rel}: has a change item without an id")
            row = rows.setdefault(tid, {"row_id": "ticket:" + tid, "ticket": tid, "entries": []})
            if i not in row["entries"]:
                row["entries"].append(i)
            approvers = item.get("approvers")
            row.update(
                title=text_of(item.get("title")), author=text_of(item.get("author")),
                approvers=";".join(text_of(a) for a in approvers) if isinstance(approvers, list) else text_of(approvers),
                approved_at=text_of(item.get("approved_at")),
                closed_at=text_of(item["merged_at"] if "merged_at" in item else item.get("closed_at")),
            )  # fmt: skip
    return list(rows.values())


def populations(b, m, host, statements):
    """The host's populations, ordered by collector id, each row's fields as population.csv has them."""
    by_collector = {}
    for e in in_period(m, host, statements):
        by_collector.setdefault(e[1]["collector"]["id"], []).append(e)
    pops = []
    for collector in sorted(by_collector):
        entries = by_collector[collector]
        kind = entries[-1][1]["collector"]["kind"]
        cls = "tickets" if kind in TICKET_KINDS else "segments" if kind in SEGMENT_KINDS else "runs"
        if cls == "tickets":
            rows = ticket_rows(b, host, entries)
        else:
            rows = []
            for i, p, digest in entries:
                if cls == "segments" and p["status"] != "ok":
                    continue
                seg = cls == "segments"
                rows.append({
                    "row_id": f"{'segment' if seg else 'run'}:{i:012d}", "entries": [i],
                    "scheduled_for": p["scheduled_for"], "status": p["status"],
                    "digest": digest if p["status"] == "ok" else "", "items": str(p["item_count"]),
                    "segment_path": detail(p, "path") if seg else "",
                    "segment_start": detail(p, "start_offset") if seg else "",
                    "segment_end": detail(p, "end_offset") if seg else "",
                })  # fmt: skip
        rows.sort(key=lambda r: r["row_id"].encode())
        schedule = next((p["schedule"] for _, p, _ in reversed(entries) if isinstance(p.get("schedule"), str)), None)
        fired = any(p.get("trigger") in ("schedule", "missed") and p.get("schedule") == schedule for _, p, _ in entries)
        pops.append({
            "host": host, "collector": collector, "kind": kind, "class": cls, "rows": rows,
            "schedule": schedule, "fired": schedule is not None and fired,
        })  # fmt: skip
    return pops


def population_records(pops):
    """population.csv's records (after the header) for `pops`."""
    out = []
    for p in pops:
        for r in p["rows"]:
            first, last = (str(r["entries"][0]), str(r["entries"][-1])) if r["entries"] else ("", "")
            cells = [p["host"], p["collector"], p["kind"], p["class"], r["row_id"], first, last]
            cells += [r.get(k, "") for k in POPULATION_HEADER[7:]]
            out.append([csv_safe(c) for c in cells])
    return out


def sample_records(b, m, pops, found):
    """sample.csv's records for `pops`, drawn with sha256-rank/v1; auto sizes are taken from
    the file (`found`) and checked against the documented sizes."""
    spec = m["sample"]
    out = []
    if spec is None:
        return out
    sizes = {}
    for rec in found:
        if len(rec) == len(SAMPLE_HEADER):
            sizes.setdefault((rec[0], rec[1]), (rec[4], rec[5]))
    for p in pops:
        n_pop = len(p["rows"])
        if spec["size"] == "auto":
            where = f"{p['host']}/{p['collector']}"
            size_cell, rule = sizes.get((csv_safe(p["host"]), csv_safe(p["collector"])), ("0", ""))
            name = rule[len("auto: "):] if rule.startswith("auto: ") else None
            # Without a schedule (and for tickets) the frequency is the number of rows; else it
            # is the schedule's, which fired in the period if a scheduled run under it did.
            by_rows = p["class"] == "tickets" or p["schedule"] is None
            if size_cell == "0" and rule == "":
                if n_pop and (by_rows or p["fired"]):
                    b.problem(SAMPLE, f"{where}: no rows drawn from a population of {n_pop} whose control ran in the period")
                continue
            want = auto_rule(m, n_pop) if by_rows else name
            if name not in AUTO_SIZES or name != want or size_cell != str(min(AUTO_SIZES[name], n_pop)):
                b.problem(SAMPLE, f"{where}: auto size {size_cell!r} ({rule!r}) is not the documented size "
                          f"for its frequency ({want}), capped at the population's {n_pop} rows")
                continue
            n = int(size_cell)
        else:
            n, rule = min(int(spec["size"]), n_pop), "fixed"
        keyed = []
        for r in p["rows"]:
            key = hashlib.sha256("\n".join([spec["seed"], p["host"], p["collector"], r["row_id"]]).encode()).digest()
            keyed.append((key, r["row_id"].encode(), r))
        keyed.sort(key=lambda k: (k[0], k[1]))
        for rank, (key, _, r) in enumerate(keyed[:n], 1):
            cells = [p["host"], p["collector"], p["class"], str(n_pop), str(n), rule, spec["seed"], METHOD,
                     str(rank), r["row_id"], key.hex(), " ".join(str(i) for i in r["entries"])]
            out.append([csv_safe(c) for c in cells])
    return out


def auto_rule(m, occurrences):
    """sample.rs auto_size: the frequency name for `occurrences` over the period."""
    hours = (m["_to"] - m["_from"]) // 10**9 / 3600 / occurrences
    limits = [(20, "many times a day"), (84, "daily"), (15 * 24, "weekly"), (45 * 24, "monthly"), (135 * 24, "quarterly")]
    return next((name for limit, name in limits if hours < limit), "annual")


def compare_records(b, rel, header, expected, found):
    """A CSV file against the records re-derived from the signed entries."""
    if not found or found[0] != header:
        b.problem(rel, f"header is not {','.join(header)}")
        return
    body = found[1:]
    bad = [n for n in range(max(len(body), len(expected))) if n >= len(body) or n >= len(expected) or body[n] != expected[n]]
    for n in bad[:5]:
        want = ",".join(expected[n]) if n < len(expected) else "(no such row)"
        got = ",".join(body[n]) if n < len(body) else "(no such row)"
        b.problem(rel, f"row {n + 1} differs from what the signed entries give: expected {want[:300]!r}, found {got[:300]!r}")
    if len(bad) > 5:
        b.problem(rel, f"{len(bad) - 5} more rows differ")


def check_blobs(b, m, host, statements, pops, sample):
    """Content sizes, and that the content the rules require is carried."""
    carried = set()
    ticket_collectors = {p["collector"] for p in pops if p["class"] == "tickets"}
    sampled = {int(i) for rec in sample if len(rec) == len(SAMPLE_HEADER) and rec[0] == csv_safe(host)
               for i in rec[11].split() if i.isdigit()}  # fmt: skip
    for i, p, digest in in_period(m, host, statements):
        if p["status"] != "ok":
            continue
        if m["sample"] is None or i in sampled or p["collector"]["id"] in ticket_collectors:
            if digest not in b.good_blobs:
                b.problem(f"blobs/sha256/{digest}", f"missing: the content of entries/{host}/{i}.json is required")
    for i, st in statements.items():
        p, digest = st["predicate"], st["subject"][0]["digest"]["sha256"]
        if p["status"] == "ok" and digest in b.good_blobs:
            carried.add(digest)
            if b.files[f"blobs/sha256/{digest}"][1] != p["content_size"]:
                b.problem(f"blobs/sha256/{digest}", f"is not the {p['content_size']} bytes entries/{host}/{i}.json signed")
    return carried


# ---------------------------------------------------------------------------------------------


def verify(root, vkey_files):
    """Verify the bundle directory `root`; returns (problems, summary)."""
    b = Bundle(pathlib.Path(root))
    summary = {"ok": False, "hosts": {}, "entries": 0, "blobs": 0, "sample_rows": 0}
    if not b.root.is_dir():
        return [f"{root}: not a bundle directory"], summary
    b.scan()
    pinned = read_pinned(vkey_files, b)
    m = check_manifest(b)
    if m is None:
        return b.problems, summary
    check_file_lists(b, m)
    check_roles(b, m)
    summary["blobs"] = len(b.good_blobs)
    for name in sorted(set(pinned) - {iv.ORIGIN_PREFIX + h["host"] for h in m["hosts"]}):
        b.problem(None, f"--vkey: the bundle has no host of the pinned key {name}")
    hosts = []
    for part in sorted(m["hosts"], key=lambda h: h["host"].encode()):
        statements, summary["hosts"][part["host"]] = check_host(b, part, pinned)
        summary["entries"] += len(statements)
        hosts.append((part, statements))
    if any(len(s) != p["end_size"] - p["start_size"] for p, s in hosts):
        b.problem(None, "population.csv and sample.csv not checked: a host's entries do not all hold")
        return b.problems, summary
    try:
        pops = []
        for part, statements in hosts:
            pops += populations(b, m, part["host"], statements)
        found_pop, found_sample = read_csv(b, POPULATION), read_csv(b, SAMPLE)
    except (Invalid, UnicodeDecodeError, csv.Error) as e:
        b.problem(None, f"populations not re-derived: {e}")
        return b.problems, summary
    compare_records(b, POPULATION, POPULATION_HEADER, population_records(pops), found_pop)
    expected_sample = sample_records(b, m, pops, found_sample[1:])
    compare_records(b, SAMPLE, SAMPLE_HEADER, expected_sample, found_sample)
    summary["sample_rows"] = len(expected_sample)
    carried = set()
    for part, statements in hosts:
        host_pops = [p for p in pops if p["host"] == part["host"]]
        carried |= check_blobs(b, m, part["host"], statements, host_pops, found_sample[1:])
    for digest in sorted(b.good_blobs - carried):
        b.problem(f"blobs/sha256/{digest}", "is not the content of any exported entry")
    return b.problems, summary


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="the bundle directory")
    ap.add_argument("--vkey", action="append", default=[], metavar="FILE", help="pin a host's verifier key")
    args = ap.parse_args(argv)
    try:
        sys.stdout.reconfigure(errors="backslashreplace")
        problems, summary = verify(args.bundle, args.vkey)
    except Exception as e:  # noqa: BLE001 - hostile input must give a finding, never a traceback
        problems, summary = [f"{args.bundle}: cannot be verified: {type(e).__name__}: {e}"], {"ok": False}
    for p in problems:
        print(p)
    summary["ok"] = not problems
    print(json.dumps(summary, sort_keys=True))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
