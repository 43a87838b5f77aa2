#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests that drive the real binary against
# real sshd daemons on loopback. Installs what it needs first (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
mkdir -p target
cargo test --all-targets --no-fail-fast 2>&1 | tee target/test-output.txt
# Refuse a green run that ran nothing (e.g. every test binary filtered out).
grep -Eq '^test result: ok\. [1-9][0-9]* passed' target/test-output.txt || { echo "no tests ran" >&2; exit 1; }
