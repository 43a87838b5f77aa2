#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target (fuzz/), starting from the kept corpus (libFuzzer
# first replays the whole corpus, so every kept input is re-checked before new ones are tried).
#   scripts/fuzz-smoke.sh [seconds per target, default 60]
#   scripts/fuzz-smoke.sh --build-only   (only the ASan build; scripts/test.sh runs it early,
#                                          in the background, so its minutes overlap the tests)
# Runs as many targets at once as there are cores (FUZZ_JOBS overrides). Needs cargo-fuzz
# (scripts/deps.sh installs it); on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks the nightly
# flags it passes. Builds into $CARGO_TARGET_DIR (default target/fuzz next to this repo's
# target/, so it never blocks the main build). Fails when a target crashes or ran nothing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/../target/fuzz}"
# ASan needs its runtime; without it (some containers), run with FUZZ_SANITIZER=none.
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-$(nproc)}"
targets=(config template known_hosts ssh_config)
cargo fuzz build -O --sanitizer "$sanitizer"
[ "$build_only" = 0 ] || exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One target on a scratch copy of its corpus (new inputs found here are not added to the kept
# corpus); its log goes to $work/<target>.log, its exit status to $work/<target>.rc.
run_one() {
  local t=$1 rc=0
  mkdir -p "corpus/$t" "$work/$t"
  cp -r "corpus/$t/." "$work/$t/"
  cargo fuzz run -O --sanitizer "$sanitizer" "$t" "$work/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 >"$work/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
}

running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
for t in "${targets[@]}"; do
  rc=$(cat "$work/$t.rc" 2>/dev/null || echo missing)
  # libFuzzer's last status line: "#<execs> DONE cov: … corp: …".
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | tail -1 || true)
  execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$done_line")
  echo "== $t (${secs}s): ${done_line:-no DONE line} (exit $rc)"
  if [ "$rc" != 0 ] || [ -z "$execs" ] || [ "$execs" -eq 0 ]; then
    grep -E 'ERROR|panicked|SUMMARY' "$work/$t.log" >&2 || true
    tail -40 "$work/$t.log" >&2
    echo "fuzz target $t failed or ran nothing (crash inputs in fuzz/artifacts/$t)" >&2
    failed=1
  fi
done
exit "$failed"
