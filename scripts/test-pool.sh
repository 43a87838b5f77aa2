#!/usr/bin/env bash
# Runs the built test binaries side by side, TEST_JOBS at a time (default 3), longest first,
# each with its own log; then writes what `cargo test` would have printed, binary after binary
# in a fixed order, so scripts/test.sh counts the tests the same way.
#
#   scripts/test-pool.sh BUILD_JSON OUT_FAST OUT_SLOW
#
# BUILD_JSON: `cargo test --all-targets --no-run --message-format=json-render-diagnostics`.
# OUT_FAST gets every binary's plain run; OUT_SLOW the slow group (`--ignored --nocapture` of
# SLOW_BINS). Why a pool and not `cargo test`: cargo runs one binary after another, and most of
# these spend their time waiting on sshd, dockerd and containers, so two cores sit half idle
# (the suite took ~23 min serial; the longest binary alone takes ~3). Tests inside a binary
# still share its fixtures as under cargo (one process per binary, unlike cargo-nextest's
# process per test, which would start each binary's shared sshd/engine fixtures per test).
# The shared resources across binaries were already made for this: the test engine starts under
# a file lock, every name carries its test process's pid, ports come from the kernel.
# Prints a line per binary as it ends; a failed binary's log tail right away.
# Exits non-zero when any binary failed.
set -euo pipefail
cd "$(dirname "$0")/.."
build_json=$1 out_fast=$2 out_slow=$3
jobs="${TEST_JOBS:-3}"
# TEST_SLOW=0 leaves the slow group out (PROVISION_FAST=1 in scripts/test.sh).
SLOW_BINS="fresh_vm fleet static_binary"
# Longest first (seconds on 2 cores, serial): fleet 155, fresh_vm 190, zero_downtime 161,
# docker 151, examples 138, crash 92, init 75, tls 75, ec2 52, operator 44, compose 38.
LONG_FIRST="slow:fresh_vm slow:fleet zero_downtime docker examples crash init tls ec2 operator compose hostile symlink_race lib ship slow:static_binary"

logs=target/test-logs
rm -rf "$logs"
mkdir -p "$logs"

# "<name> <src> <exe>" per test binary; name = the source file's name without .rs.
jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
       | [.target.src_path, .executable] | @tsv' "$build_json" |
  while IFS=$'\t' read -r src exe; do
    src=${src#"$PWD/"}
    name=$(basename "$src" .rs)
    echo "$name $src ${exe#"$PWD/"}"
  done | sort -u >"$logs/bins"

# Jobs: "<job> <name>" where job is the name, or slow:<name> for the slow group's run.
jobs_list() {
  local j name
  for j in $LONG_FIRST; do
    [ "${TEST_SLOW:-1}" = 1 ] || [ "$j" = "${j#slow:}" ] || continue
    grep -q "^${j#slow:} " "$logs/bins" && echo "$j"
  done
  while read -r name _; do
    case " $LONG_FIRST " in *" $name "*) ;; *) echo "$name" ;; esac
    [ "${TEST_SLOW:-1}" = 1 ] || continue
    case " $SLOW_BINS " in
      *" $name "*) case " $LONG_FIRST " in *" slow:$name "*) ;; *) echo "slow:$name" ;; esac ;;
    esac
  done <"$logs/bins"
}

run_job() {
  local job=$1 name=${1#slow:} src exe log rc=0 t0
  read -r _ src exe < <(grep "^$name " "$logs/bins")
  log="$logs/${job/:/-}.out"
  t0=$(date +%s)
  {
    printf '     Running %s%s (%s)\n' "$([ "${src#src/}" != "$src" ] && echo 'unittests ')" "$src" "$exe"
    if [ "$job" != "$name" ]; then
      "$exe" --ignored --nocapture 2>&1 || rc=$?
    else
      "$exe" 2>&1 || rc=$?
    fi
  } >"$log"
  echo "$rc" >"$log.rc"
  local result
  result=$(grep -E '^test result: ' "$log" | tail -1 || true)
  echo "== $job: ${result:-no test result} (exit $rc, $(($(date +%s) - t0))s)"
  if [ "$rc" != 0 ]; then
    grep -E '^(---- |thread .* panicked|failures:)' "$log" | head -40 || true
    tail -60 "$log"
  fi
}

running=0
while read -r job; do
  run_job "$job" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done < <(jobs_list)
wait

# The combined outputs, in the order of the binaries' names (as cargo would run them).
: >"$out_fast"
: >"$out_slow"
failed=0
while read -r name _; do
  for job in "$name" "slow:$name"; do
    log="$logs/${job/:/-}.out"
    [ -f "$log" ] || continue
    if [ "$job" = "$name" ]; then cat "$log" >>"$out_fast"; else cat "$log" >>"$out_slow"; fi
    [ "$(cat "$log.rc")" = 0 ] || { echo "failed: $job (log: $log)" >&2; failed=1; }
  done
done <"$logs/bins"
exit "$failed"
