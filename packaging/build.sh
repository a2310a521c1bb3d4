#!/usr/bin/env bash
# Builds the .deb and the .rpm of evidence-agent (packaging/README.md).
#
#   packaging/build.sh [--binary PATH] [--out DIR] [--fast]
#
#   --binary PATH  package this evidence-agent binary instead of building one with
#                  `cargo build --release` (the tests package the debug binary they built)
#   --out DIR      where the packages go (default: <cargo target dir>/packages)
#   --fast         lighter compression: quicker, larger packages (for tests)
#
# Needs cargo-deb and cargo-generate-rpm (tests/run.sh installs the pinned versions).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '4,9s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

binary=""
out=""
fast=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary)
      [ $# -ge 2 ] || usage
      binary=$2
      shift 2
      ;;
    --out)
      [ $# -ge 2 ] || usage
      out=$2
      shift 2
      ;;
    --fast)
      fast=1
      shift
      ;;
    *) usage ;;
  esac
done

for tool in deb generate-rpm; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    echo "packaging/build.sh: cargo-$tool is not installed; tests/run.sh installs the pinned version" >&2
    exit 1
  fi
done

target_dir=${CARGO_TARGET_DIR:-target}
if [ -z "$binary" ]; then
  cargo build --release --locked -p evidence-agent --bin evidence-agent
  binary=$target_dir/release/evidence-agent
fi
if [ ! -x "$binary" ]; then
  echo "packaging/build.sh: $binary is not an executable" >&2
  exit 1
fi
out=${out:-$target_dir/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The packagers take their files from `<target dir>/release/` (agent/Cargo.toml's metadata):
# a private stage used as their target directory, so any binary can be packaged without
# touching the real target directory.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/release/packaging"
# Stripped here once for both packages (a debug build is mostly debug info).
strip --strip-all -o "$stage/release/evidence-agent" "$binary"
chmod 0755 "$stage/release/evidence-agent"

# Man page and completions, generated from the binary's own command-line definition.
gen() {
  "$stage/release/evidence-agent" generate "$1"
}
gen man | gzip -9 --no-name >"$stage/release/packaging/evidence-agent.1.gz"
gen complete-bash >"$stage/release/packaging/evidence-agent.bash"
gen complete-zsh >"$stage/release/packaging/_evidence-agent"
gen complete-fish >"$stage/release/packaging/evidence-agent.fish"

deb_args=(--no-build --no-strip --output "$out/")
rpm_args=(--payload-compress zstd)
if [ "$fast" -eq 1 ]; then
  deb_args+=(--fast)
  rpm_args=(--payload-compress gzip)
fi
CARGO_TARGET_DIR=$stage cargo deb -p evidence-agent "${deb_args[@]}"
CARGO_TARGET_DIR=$stage cargo generate-rpm -p agent --target-dir "$stage" -o "$out/" "${rpm_args[@]}"
ls -l "$out"
