#!/usr/bin/env bash
# Runs every test of evidence-agent. On a fresh machine it first installs what the tests need
# from the package registries: Python's `cryptography` (the independent verifier in the tests),
# `moto[server]` (a local S3 API for the sync tests; it brings boto3, the tests' plain S3 client),
# Debian's `chromium` (headless, to render the bundle's report.html) and Debian's
# `systemd-journal-remote` (it writes the real journal files the journald collector tests read).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "installing python3 cryptography for the independent verifier tests"
  python3 -m pip install --quiet 'cryptography>=42' \
    || python3 -m pip install --quiet --break-system-packages 'cryptography>=42'
fi

if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
  echo "installing python3 moto[server] for the S3 sync tests"
  python3 -m pip install --quiet 'moto[server]==5.2.1' \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]==5.2.1'
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium for the report.html rendering test"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

if [ ! -x /lib/systemd/systemd-journal-remote ] && [ ! -x /usr/lib/systemd/systemd-journal-remote ]; then
  echo "installing Debian's systemd-journal-remote for the journald collector tests"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd-journal-remote
fi

cargo test --workspace --locked "$@"
