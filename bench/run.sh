#!/usr/bin/env bash
# Runs every benchmark of evidence-agent (release builds) and prints one table of their figures,
# each beside the reference measured in the same run, with the machine it ran on. The table is
# Markdown, ready for BENCHMARKS.md.
#
#   bench/run.sh              all benchmarks (over an hour; `idle` alone watches the agent
#                             for 10 minutes)
#   bench/run.sh ledger sync  only those
#
# Each benchmark is a `harness = false` bench target; every figure it measures goes through
# agent/benches/common/table.rs, which appends it to the file named by BENCH_TABLE.
set -euo pipefail
cd "$(dirname "$0")/.."

# package:bench, in the order the table lists them.
all=(
  evidence-agent:ingest
  evidence-agent:ledger
  evidence-agent:bundle
  evidence-agent:year
  evidence-agent:sync
  evidence-agent:idle
  collectors:github
)
selected=()
if [ $# -eq 0 ]; then
  selected=("${all[@]}")
else
  for name in "$@"; do
    found=""
    for entry in "${all[@]}"; do
      if [ "${entry#*:}" = "$name" ]; then
        selected+=("$entry")
        found=1
      fi
    done
    [ -n "$found" ] || { echo "bench/run.sh: no benchmark named $name (have: ${all[*]#*:})" >&2; exit 2; }
  done
fi

# What the S3 benchmarks need: moto (the local S3 server, as in the tests) and awscli (the sync
# benchmark's reference). Installed once, pinned, as tests/run.sh does.
if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
  python3 -m pip install --quiet 'moto[server]==5.2.1' \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]==5.2.1'
fi
if ! command -v aws >/dev/null; then
  python3 -m pip install --quiet 'awscli==1.45.11' \
    || python3 -m pip install --quiet --break-system-packages 'awscli==1.45.11'
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
table=$scratch/table.tsv
touch "$table"
export BENCH_TABLE=$table

# The idle footprint is that of the binary that ships, built by the release profile (LTO, one
# codegen unit), not the bench profile's; it is copied out because the benches' builds replace
# target/release/evidence-agent. IDLE_BENCH_AGENT names another binary to measure instead.
for entry in "${selected[@]}"; do
  if [ "${entry#*:}" = idle ] && [ -z "${IDLE_BENCH_AGENT:-}" ]; then
    echo "== cargo build --release (the shipped binary, for idle)"
    cargo build --release --locked -p evidence-agent --bin evidence-agent
    cp target/release/evidence-agent "$scratch/evidence-agent"
    export IDLE_BENCH_AGENT=$scratch/evidence-agent
  fi
done

# A benchmark that fails is reported and the others still run; the script then exits 1.
failed=()
for entry in "${selected[@]}"; do
  echo "== cargo bench -p ${entry%%:*} --bench ${entry#*:}"
  cargo bench --locked -p "${entry%%:*}" --bench "${entry#*:}" || failed+=("${entry#*:}")
done

echo
echo "## Machine"
echo
echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; SHA extensions: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- Kernel: $(uname -sr); filesystem of $(pwd): $(df -T . | awk 'NR == 2 {print $2}')"
echo "- $(rustc --version); $(openssl version); moto $(python3 -c 'import moto; print(moto.__version__)'); $(aws --version 2>&1 | cut -d' ' -f1)"
echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "- Load average at the end (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## Results"
echo
echo "| benchmark | ours | reference (same run) | ratio | target | |"
echo "|---|---|---|---|---|---|"
while IFS=$'\t' read -r benchmark ours reference ratio target verdict; do
  echo "| $benchmark | $ours | $reference | $ratio | $target | $verdict |"
done < "$table"
if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "bench/run.sh: failed: ${failed[*]} (their rows are missing above)" >&2
  exit 1
fi
