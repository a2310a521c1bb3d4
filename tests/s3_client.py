#!/usr/bin/env python3
"""A plain S3 client (boto3) the end-to-end tests use to look at a bucket from outside the agent.

Usage:
    s3_client.py create-bucket  ENDPOINT BUCKET [--object-lock]
    s3_client.py versions       ENDPOINT BUCKET PREFIX
    s3_client.py download       ENDPOINT BUCKET PREFIX DIR
    s3_client.py get            ENDPOINT BUCKET KEY FILE [--version-id ID]
    s3_client.py put            ENDPOINT BUCKET KEY FILE
    s3_client.py delete-version ENDPOINT BUCKET KEY VERSION_ID

create-bucket  makes the bucket with versioning on (and Object Lock enabled with --object-lock).
versions       prints a JSON list, one item per object version under PREFIX (delete markers
               included, flagged), oldest first per key:
               {key, version_id, is_latest, delete_marker, size, sha256, lock_mode, retain_until}
               (sha256 is the hex SHA-256 of the version's bytes; retain_until RFC 3339 or null).
download       writes the latest version of every object under the "folder" PREFIX (a `/` is
               added if missing) into DIR, the prefix stripped from the key
               (`<PREFIX>/tile/0/000` -> `DIR/tile/0/000`); prints the count.
get            writes one object's bytes (optionally one version) to FILE.
put            a plain PutObject of FILE's bytes (no conditions, no retention): for tampering.
delete-version tries to delete one version without any governance bypass; prints `deleted` or
               the S3 error code (e.g. AccessDenied) and exits 0 either way.

Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
Path-style addressing; standard retry mode with 10 attempts, so it goes through a faulty proxy.
Exit status: 0 on success, 1 on an S3 or I/O error (message on stderr), 2 on a usage error.
"""

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import sys

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:  # pragma: no cover - environment problem
    print(
        "s3_client: the Python `boto3` package is missing; run tests/run.sh (it installs "
        "moto[server], which brings boto3)",
        file=sys.stderr,
    )
    sys.exit(2)


def client(endpoint):
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": 10},
        connect_timeout=5,
        read_timeout=20,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=config,
    )


def rfc3339(dt):
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def cmd_create_bucket(a):
    s3 = client(a.endpoint)
    kwargs = {"Bucket": a.bucket}
    if a.object_lock:
        kwargs["ObjectLockEnabledForBucket"] = True
    s3.create_bucket(**kwargs)
    s3.put_bucket_versioning(Bucket=a.bucket, VersioningConfiguration={"Status": "Enabled"})
    print(f"created {a.bucket}" + (" with object lock" if a.object_lock else ""))


def cmd_versions(a):
    s3 = client(a.endpoint)
    out = []
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=a.bucket, Prefix=a.prefix)
    for page in pages:
        for v in page.get("Versions", []):
            key, vid = v["Key"], v["VersionId"]
            got = s3.get_object(Bucket=a.bucket, Key=key, VersionId=vid)
            data = got["Body"].read()
            head = s3.head_object(Bucket=a.bucket, Key=key, VersionId=vid)
            out.append(
                {
                    "key": key,
                    "version_id": vid,
                    "is_latest": bool(v.get("IsLatest")),
                    "delete_marker": False,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "lock_mode": head.get("ObjectLockMode"),
                    "retain_until": rfc3339(head.get("ObjectLockRetainUntilDate")),
                    "last_modified": rfc3339(v.get("LastModified")),
                    "_order": len(out),
                }
            )
        for m in page.get("DeleteMarkers", []):
            out.append(
                {
                    "key": m["Key"],
                    "version_id": m["VersionId"],
                    "is_latest": bool(m.get("IsLatest")),
                    "delete_marker": True,
                    "size": 0,
                    "sha256": None,
                    "lock_mode": None,
                    "retain_until": None,
                    "last_modified": rfc3339(m.get("LastModified")),
                    "_order": len(out),
                }
            )
    # Oldest first per key (S3 lists newest first), keys in lexical order.
    # S3 lists each key's versions newest first; within one second keep that order, reversed.
    out.sort(key=lambda v: (v["key"], v["last_modified"] or "", v["is_latest"], -v["_order"]))
    for v in out:
        del v["_order"]
    print(json.dumps(out, indent=1))


def strip_prefix(key, prefix):
    rel = key[len(prefix) :] if key.startswith(prefix) else key
    return rel.lstrip("/")


def cmd_download(a):
    s3 = client(a.endpoint)
    root = pathlib.Path(a.dir)
    root.mkdir(parents=True, exist_ok=True)
    prefix = a.prefix if not a.prefix or a.prefix.endswith("/") else a.prefix + "/"
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            rel = strip_prefix(o["Key"], prefix)
            if not rel or rel.endswith("/"):
                continue
            parts = pathlib.PurePosixPath(rel).parts
            if any(p in ("..", ".") for p in parts):
                raise ValueError(f"refusing to write key {o['Key']!r} outside {root}")
            target = root.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=a.bucket, Key=o["Key"])["Body"].read())
            n += 1
    print(f"downloaded {n} objects")


def cmd_get(a):
    s3 = client(a.endpoint)
    kwargs = {"Bucket": a.bucket, "Key": a.key}
    if a.version_id:
        kwargs["VersionId"] = a.version_id
    pathlib.Path(a.file).write_bytes(s3.get_object(**kwargs)["Body"].read())


def cmd_put(a):
    s3 = client(a.endpoint)
    got = s3.put_object(Bucket=a.bucket, Key=a.key, Body=pathlib.Path(a.file).read_bytes())
    print(got.get("VersionId") or "null")


def cmd_delete_version(a):
    s3 = client(a.endpoint)
    try:
        s3.delete_object(Bucket=a.bucket, Key=a.key, VersionId=a.version_id)
        print("deleted")
    except botocore.exceptions.ClientError as e:
        print(e.response.get("Error", {}).get("Code") or str(e))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("create-bucket")
    p.add_argument("endpoint")
    p.add_argument("bucket")
    p.add_argument("--object-lock", action="store_true")
    p.set_defaults(fn=cmd_create_bucket)
    p = sub.add_parser("versions")
    p.add_argument("endpoint")
    p.add_argument("bucket")
    p.add_argument("prefix")
    p.set_defaults(fn=cmd_versions)
    p = sub.add_parser("download")
    p.add_argument("endpoint")
    p.add_argument("bucket")
    p.add_argument("prefix")
    p.add_argument("dir")
    p.set_defaults(fn=cmd_download)
    p = sub.add_parser("get")
    p.add_argument("endpoint")
    p.add_argument("bucket")
    p.add_argument("key")
    p.add_argument("file")
    p.add_argument("--version-id")
    p.set_defaults(fn=cmd_get)
    p = sub.add_parser("put")
    p.add_argument("endpoint")
    p.add_argument("bucket")
    p.add_argument("key")
    p.add_argument("file")
    p.set_defaults(fn=cmd_put)
    p = sub.add_parser("delete-version")
    p.add_argument("endpoint")
    p.add_argument("bucket")
    p.add_argument("key")
    p.add_argument("version_id")
    p.set_defaults(fn=cmd_delete_version)
    a = ap.parse_args(argv)
    try:
        a.fn(a)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError, ValueError) as e:
        print(f"s3_client {a.cmd}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
