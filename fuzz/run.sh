#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each for a bounded time (fuzz/run.sh [SECONDS]; default
# $FUZZ_SECONDS, else 60), failing if any target crashes. The committed corpus
# (fuzz/corpus/<target>/, fuzz/regressions/<target>/) is only read: what the fuzzer finds new
# goes to a scratch working corpus, so a run never dirties the repo. Set FUZZ_WORK=DIR to keep
# the working corpus (DIR/<target>/) across runs, e.g. for a long local run before minimizing
# into fuzz/corpus/ (see ARCHITECTURE.md). Crashing inputs are written to fuzz/artifacts/
# (ignored by git) and printed in base64, since CI's clone is gone after the run.
#
# Stable Rust only: `--sanitizer none` is the one mode of cargo-fuzz that passes no -Z flag to
# rustc (AddressSanitizer needs -Zsanitizer, i.e. nightly or RUSTC_BOOTSTRAP=1). The targets run
# safe Rust with no C code, where ASan adds little: libFuzzer's coverage, its malloc limit and
# Rust's own checks (debug assertions and overflow checks stay on) find what we look for.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${FUZZ_SECONDS:-60}}
targets=(bundle config note plugin)
# The fuzz build's own target directory: libFuzzer's instrumentation changes every crate, so
# sharing the tests' directory would only rebuild both back and forth.
target_dir=${FUZZ_TARGET_DIR:-fuzz/target}
jobs=${FUZZ_JOBS:-$(nproc)}

# One codegen unit per crate (cargo-fuzz's default) makes the cold build of the agent's
# dependencies slow; 16 keeps the instrumentation and builds in parallel.
cargo fuzz build --sanitizer none --codegen-units 16 --target-dir "$target_dir"
bin_dir="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"

work=${FUZZ_WORK:-}
if [ -z "$work" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p fuzz/artifacts

# One target: its working corpus first (libFuzzer writes new inputs to the first directory
# only), then the committed seeds and regressions, read-only. -timeout makes a hang a crash;
# -rss_limit_mb (and the malloc limit libFuzzer derives from it) makes unbounded allocation one.
fuzz_one() {
  local target=$1
  mkdir -p "$work/$target" "fuzz/artifacts/$target"
  local dirs=("$work/$target" "fuzz/corpus/$target")
  [ -d "fuzz/regressions/$target" ] && dirs+=("fuzz/regressions/$target")
  "$bin_dir/$target" "${dirs[@]}" \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$target/" >"$work/$target.log" 2>&1 \
    && echo 0 >"$work/$target.status" || echo $? >"$work/$target.status"
}

# Targets run side by side, one per core, each for the full time; each leaves its exit status
# in a file, read once all are done.
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  fuzz_one "$target" &
done
wait

failed=()
for target in "${targets[@]}"; do
  if [ "$(cat "$work/$target.status")" = 0 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$target.log")
    echo "fuzz $target: ${seconds}s, ${runs:-?} runs, ${rate:-?} execs/s, no crash"
  else
    failed+=("$target")
    echo "fuzz $target: CRASHED; its log ends:"
    tail -n 40 "$work/$target.log"
    for crash in "fuzz/artifacts/$target"/*; do
      [ -f "$crash" ] || continue
      echo "input $crash (base64; commit it under fuzz/regressions/$target/):"
      head -c 65536 "$crash" | base64 -w 0
      echo
    done
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} crashed" >&2
  exit 1
fi
