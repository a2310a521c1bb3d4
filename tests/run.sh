#!/usr/bin/env bash
# Runs every test of evidence-agent. On a fresh machine it first installs what the tests need
# from the package registries: Python's `cryptography` (the independent verifier in the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "installing python3 cryptography for the independent verifier tests"
  python3 -m pip install --quiet 'cryptography>=42' \
    || python3 -m pip install --quiet --break-system-packages 'cryptography>=42'
fi

cargo test --workspace --locked "$@"
