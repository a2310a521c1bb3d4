#!/usr/bin/env python3
"""An evidence-agent plugin (protocol evidence-agent-plugin/v1, docs/plugins.md): the mount
table as evidence, with what changed since the last committed run.

Configure it as:

    [[collectors]]
    id = "mounts"
    kind = "exec_plugin"
    schedule = "@daily"
    path = "/usr/share/evidence-agent/plugins/example-mounts.py"
    [collectors.config]
    mounts_file = "/proc/self/mounts"      # optional, this is the default
    skip_fstypes = ["proc", "sysfs"]       # optional, default none

Each mount is an item {"type": "mount", "id": <mount point>, "source", "fstype", "options"};
a mount point mounted over again gets " (2)", " (3)"... after its id, in table order.

The cursor shows incremental work: it keeps the run number, the digest and the ids of the
last committed table, and the done record's details say what was added and removed since
then. The agent only hands back the cursor of a committed run, so a failed run changes
nothing.
"""

import hashlib
import json
import sys

PROTOCOL = "evidence-agent-plugin/v1"


def unescape(field):
    """/proc/mounts writes space, tab, newline and backslash as \\040, \\011, \\012, \\134."""
    out = bytearray()
    raw = field.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        code = raw[i + 1 : i + 4]
        if raw[i] == 0x5C and len(code) == 3 and all(0x30 <= c <= 0x37 for c in code):
            out.append(int(code, 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def mounts(path, skip):
    items, seen = [], {}
    with open(path, encoding="utf-8", errors="surrogateescape") as table:
        for number, line in enumerate(table, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4:
                raise ValueError(f"{path}:{number}: not a mount line")
            source, target, fstype, options = (unescape(f) for f in fields[:4])
            if fstype in skip:
                continue
            seen[target] = seen.get(target, 0) + 1
            ident = target if seen[target] == 1 else f"{target} ({seen[target]})"
            items.append(
                {
                    "type": "mount",
                    "id": ident,
                    "source": source,
                    "fstype": fstype,
                    "options": options.split(","),
                }
            )
    return items


def main():
    request = json.load(sys.stdin)
    if request.get("protocol") != PROTOCOL:
        print(f"unsupported protocol {request.get('protocol')!r}", file=sys.stderr)
        return 2
    config = request.get("config") or {}
    path = config.get("mounts_file", "/proc/self/mounts")
    skip = set(config.get("skip_fstypes", []))
    try:
        items = mounts(path, skip)
    except (OSError, ValueError) as err:
        print(f"cannot read the mount table: {err}", file=sys.stderr)
        return 1

    previous = request.get("cursor") or {}
    ids = sorted(item["id"] for item in items)
    digest = hashlib.sha256(
        json.dumps(items, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    old_ids = set(previous.get("ids", []))
    run = previous.get("run", 0) + 1
    details = {
        "run": run,
        "changed": None if not previous else previous.get("sha256") != digest,
        "added": sorted(set(ids) - old_ids) if previous else [],
        "removed": sorted(old_ids - set(ids)),
    }

    out = sys.stdout
    for item in items:
        out.write(json.dumps({"item": item}) + "\n")
    cursor = {"run": run, "sha256": digest, "ids": ids}
    out.write(json.dumps({"done": {"cursor": cursor, "details": details}}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
