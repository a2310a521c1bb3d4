#!/usr/bin/env bash
# Runs every test of evidence-agent. On a fresh machine it first installs what the tests need
# from the package registries: Python's `cryptography` (the independent verifier in the tests),
# `moto[server]` (a local S3 API for the sync tests; it brings boto3, the tests' plain S3 client),
# Debian's `chromium` (headless, to render the bundle's report.html), Debian's
# `systemd-journal-remote` (it writes the real journal files the journald collector tests read),
# Debian's `systemd` (systemd-analyze checks the unit), `rpm` (reads the built .rpm back) and
# `faketime` (libfaketime moves the agent's wall clock under it in tests/faults_clock.rs), the
# pinned cargo-deb and cargo-generate-rpm that packaging/build.sh runs, and the pinned
# cargo-fuzz that fuzz/run.sh runs after the tests. cargo install
# compiles them once per machine: cargo-deb took 1.5 min on 2 cores, cargo-generate-rpm (which
# brings an OpenPGP stack for signing) up to 30 min while other builds shared the cores.
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

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# Debian packages, missing ones installed in one go: chromium renders report.html,
# systemd-journal-remote writes the journal files the journald tests read, systemd brings
# systemd-analyze for the unit checks, rpm reads the built .rpm back, faketime steps the
# wall clock of the agent in the clock-fault test (Debian's multiarch path varies: any arch).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /lib/systemd/systemd-journal-remote ] || [ -x /usr/lib/systemd/systemd-journal-remote ] \
  || missing+=(systemd-journal-remote)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v rpm >/dev/null || missing+=(rpm)
compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1' >/dev/null || missing+=(faketime)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]} for the tests"
  apt_install "${missing[@]}"
fi

# `cargo install` only when the pinned version is not the one installed.
cargo_install() {
  local crate=$1 version=$2 subcommand=$3 user=${4:-packaging/build.sh}
  if ! cargo "$subcommand" --version 2>/dev/null | grep -qF "$version"; then
    echo "installing $crate $version for $user"
    cargo install --locked --version "$version" "$crate"
  fi
}
cargo_install cargo-deb 3.8.0 deb
cargo_install cargo-generate-rpm 0.21.1 generate-rpm
# cargo-fuzz builds the fuzz targets (fuzz/run.sh); it works on stable Rust with
# `--sanitizer none` (see fuzz/run.sh); libfuzzer-sys compiles libFuzzer with the C++ compiler.
cargo_install cargo-fuzz 0.13.2 fuzz fuzz/run.sh

cargo test --workspace --locked "$@"

# Each fuzz target for a bounded time (FUZZ_SECONDS, default 60; 0 skips), after the tests so
# a failing test is reported first. Crashes found earlier are replayed by the fuzz_regressions
# test above.
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
  fuzz/run.sh "${FUZZ_SECONDS:-60}"
fi
