#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests that drive the real binary against
# real sshd daemons on loopback, with the slow group beside them: the full deploy on "fresh VM"
# targets (tests/fresh_vm.rs, fleet.rs, static_binary.rs, #[ignore]d in a plain `cargo test`),
# every test binary run side by side, three at a time (scripts/test-pool.sh; TEST_JOBS
# overrides); then a fuzz smoke run: every cargo-fuzz target for 60 s from the kept corpus
# (scripts/fuzz-smoke.sh). PROVISION_FAST=1 skips the slow group and the fuzz run. Installs
# what it needs first (scripts/deps.sh). Each phase prints its wall time.
#
# A green run must have run tests in every test binary: the summary line names each binary
# with the tests it ran, and a binary that ran none fails the run (unless listed below).
set -euo pipefail
cd "$(dirname "$0")/.."

# Binaries expected to run no test in the fast run, each for a reason:
#   main      src/main.rs only calls cli::main(); its code and unit tests live in the lib.
#   fresh_vm  every test is #[ignore]d: the slow group runs them (`--ignored`), so here it
#   fleet, static_binary  must report ignored tests (at least one) and run none.
ZERO_OK="main fresh_vm fleet static_binary"

phases=()
phase_start=0
start_phase() {
  phase_start=$(date +%s)
  echo "== $1"
}
end_phase() {
  local took=$(($(date +%s) - phase_start))
  phases+=("$1 ${took}s")
  echo "== $1 wall time: ${took}s"
}

# Per test binary in a `cargo test` output: "<name> <tests run> <ignored>" (run = passed +
# failed; -1 when the binary printed no `test result` line, e.g. it crashed). A binary's
# section opens with `Running tests/x.rs (...)` or `Running unittests src/lib.rs (...)`; its
# name is the file name without `.rs`.
per_binary() {
  awk '
    /^ +Running / {
      name = $0
      sub(/^ +Running (unittests )?/, "", name); sub(/ \(.*$/, "", name)
      sub(/^.*\//, "", name); sub(/\.rs$/, "", name)
      order[++n] = name; run[name] = -1; ign[name] = 0; next
    }
    /^test result: / && name != "" {
      p = f = i = 0
      if (match($0, /[0-9]+ passed/)) p = substr($0, RSTART, RLENGTH) + 0
      if (match($0, /[0-9]+ failed/)) f = substr($0, RSTART, RLENGTH) + 0
      if (match($0, /[0-9]+ ignored/)) i = substr($0, RSTART, RLENGTH) + 0
      run[name] = p + f; ign[name] = i; name = ""
    }
    END { for (k = 1; k <= n; k++) print order[k], run[order[k]], ign[order[k]] }
  ' "$1"
}

# Refuse a green run that ran nothing somewhere: every binary must have run a test (or be
# one of ZERO_OK, for its reason), and every tests/*.rs must have run as a binary.
# Prints the summary line, or the problems (to stderr) and fails.
check_counts() {
  local counts name run ignored f b problems summary total
  counts=$(per_binary "$1")
  problems=()
  summary=()
  total=0
  while read -r name run ignored; do
    [ -n "$name" ] || continue
    if [ "$run" -lt 0 ]; then
      problems+=("$name: no test result (did the binary crash?)")
      continue
    fi
    total=$((total + run))
    summary+=("$name $run")
    case " $ZERO_OK " in
      *" $name "*)
        if [ "$name" != main ] && { [ "$run" -ne 0 ] || [ "$ignored" -lt 1 ]; }; then
          problems+=("$name: expected 0 run and its #[ignore]d tests listed, got $run run, $ignored ignored")
        fi
        ;;
      *) [ "$run" -gt 0 ] || problems+=("$name: ran 0 tests") ;;
    esac
  done <<<"$counts"
  for f in tests/*.rs; do
    b=$(basename "$f" .rs)
    grep -q "^$b " <<<"$counts" || problems+=("$b: tests/$b.rs did not run as a test binary")
  done
  if [ ${#problems[@]} -gt 0 ]; then
    echo "a test binary ran nothing (the output: $1):" >&2
    printf '  %s\n' "${problems[@]}" >&2
    return 1
  fi
  echo "tests run: $(IFS=,; echo "${summary[*]}" | sed 's/,/, /g'); total $total"
}

# `scripts/test.sh --check-counts FILE`: only the check above, on a saved `cargo test` output.
if [ "${1:-}" = --check-counts ]; then
  check_counts "$2"
  exit
fi

start_phase deps
scripts/deps.sh
end_phase deps

start_phase fmt
cargo fmt --check
end_phase fmt

mkdir -p target
# The fuzz targets' ASan build (its own target dir, 15-25 min of CPU cold) starts first, niced,
# so it fills what the build, clippy and the I/O-bound tests leave idle of the cores; the fuzz
# phase at the end waits for it.
fuzz_build_pid=
if [ "${PROVISION_FAST:-0}" != 1 ]; then
  nice -n 15 scripts/fuzz-smoke.sh --build-only >target/fuzz-build.log 2>&1 &
  fuzz_build_pid=$!
fi

start_phase build
# The JSON lists the test executables for scripts/test-pool.sh; diagnostics still go to stderr.
cargo test --all-targets --no-run --quiet --message-format=json-render-diagnostics >target/test-build.json
end_phase build


# Every test binary, the slow group's (fresh VMs: Debian containers with systemd) among them,
# side by side (scripts/test-pool.sh). A failing binary still lets the others run; the exit
# code says.
tests_ok=1
slow=1
[ "${PROVISION_FAST:-0}" != 1 ] || slow=0
start_phase "tests (fast$([ $slow = 1 ] && echo ' and slow group'); PROVISION_FAST=1 skips the slow group)"
if [ $slow = 1 ]; then
  # The static binary (scripts/dist.sh) linked over the test build, for tests/static_binary.rs.
  PROFILE=dev OUT=target/dist-dev scripts/dist.sh || tests_ok=0
fi
# Clippy (~11 min of CPU cold: it checks every crate again, and the build without the AWS SDK
# — `--no-default-features`, as the fuzz crate uses it — has other features: nothing else
# lints it) runs beside the tests, niced: they leave a core mostly idle. It starts after
# dist.sh, the last cargo build the tests need, since it holds the target dir's lock.
clippy_start=$(date +%s)
(
  rc=0
  nice -n 10 cargo clippy --all-targets --quiet -- -D warnings &&
    nice -n 10 cargo clippy --no-default-features --all-targets --quiet -- -D warnings || rc=$?
  date +%s >target/clippy.end
  exit $rc
) >target/clippy.log 2>&1 &
clippy_pid=$!
TEST_SLOW=$slow scripts/test-pool.sh target/test-build.json target/test-output.txt target/test-output-slow.txt || tests_ok=0
end_phase tests

clippy_ok=1
wait "$clippy_pid" || clippy_ok=0
cat target/clippy.log
took=$(($(cat target/clippy.end 2>/dev/null || date +%s) - clippy_start))
phases+=("clippy (beside the tests) ${took}s")
echo "== clippy (both feature sets, beside the tests) wall time: ${took}s"

line=$(check_counts target/test-output.txt)
if [ $slow = 1 ]; then
  for b in fresh_vm fleet static_binary; do
    read -r _ slow_run _ <<<"$(per_binary target/test-output-slow.txt | grep "^$b " || echo "$b -1 0")"
    if [ "$slow_run" -le 0 ]; then
      echo "the slow group ran nothing in $b ($slow_run run)" >&2
      exit 1
    fi
    line="$line; slow group: $b $slow_run run"
  done
else
  line="$line; slow group skipped (PROVISION_FAST=1)"
fi
# Fuzzing: the config/playbook loader, the template layer, the known_hosts and ssh_config
# readers. The ASan build into target/fuzz ran in the background since the build phase; then
# 60 s per target, two at a time.
fuzz_ok=1
if [ "${PROVISION_FAST:-0}" != 1 ]; then
  start_phase "fuzz smoke run (60 s per target)"
  if ! wait "$fuzz_build_pid"; then
    cat target/fuzz-build.log >&2
    echo "the fuzz build failed (target/fuzz-build.log)" >&2
    fuzz_ok=0
  fi
  [ "$fuzz_ok" = 0 ] || scripts/fuzz-smoke.sh 60 || fuzz_ok=0
  end_phase fuzz
fi
echo "$line"
echo "wall time: $(IFS=,; echo "${phases[*]}" | sed 's/,/, /g')"
[ "$clippy_ok" = 1 ] || { echo "clippy failed (see above, target/clippy.log)" >&2; exit 1; }
[ "$tests_ok" = 1 ] || { echo "tests failed (see target/test-logs/)" >&2; exit 1; }
[ "$fuzz_ok" = 1 ] || { echo "the fuzz smoke run failed (see above)" >&2; exit 1; }
