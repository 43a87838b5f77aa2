#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target (fuzz/), starting from the kept corpus.
#   scripts/fuzz-smoke.sh [seconds per target, default 30]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1
# unlocks the nightly flags it passes. Builds into $CARGO_TARGET_DIR (default
# target/fuzz next to this repo's target/, so it never blocks the main build).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/../target/fuzz}"
# ASan needs its runtime; without it (some containers), run with --sanitizer none.
sanitizer="${FUZZ_SANITIZER:-address}"
targets=(config template known_hosts ssh_config)
cargo fuzz build -O --sanitizer "$sanitizer"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  # A scratch copy: new inputs found here are not added to the kept corpus.
  scratch=$(mktemp -d)
  cp -r "corpus/$t/." "$scratch/"
  echo "== $t (${secs}s)"
  log="$scratch.log"
  rc=0
  cargo fuzz run -O --sanitizer "$sanitizer" "$t" "$scratch" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|ERROR|panicked|SUMMARY' "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz target $t failed (artifacts in fuzz/artifacts/$t)" >&2
    exit 1
  fi
  rm -rf "$scratch" "$log"
done
