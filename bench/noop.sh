#!/usr/bin/env bash
# bench/noop.sh: how long a no-op converge and a fresh apply take, against the floor of
# connecting and running one command on the same hosts (provision's `exec` and OpenSSH's), and
# the peak memory of shipping a 1 MiB file to every host.
#
# Run (as root, from anywhere; needs sshd, ssh-keygen and /usr/bin/time: scripts/deps.sh):
#
#     bench/noop.sh            # N = 1 10 50 hosts
#     bench/noop.sh 5 100      # other host counts
#     RUNS=9 bench/noop.sh 50  # more timed runs per figure (default 5)
#     BIN=target/debug/provision bench/noop.sh 1 10   # skip the release build
#
# What it does: builds the release binary (cargo build --release), starts max(N) OpenSSH
# servers on 127.0.0.1 (own temp dir, one shared ed25519 host key, root login by an ed25519
# client key, UsePAM no, MaxStartups 200), and for each N writes a project whose env `bench`
# lists N of them, with a 4-step playbook: directory, env_file, template and a command guarded
# by `creates`, each under a per-host folder in the temp dir. `provision up bench` runs once
# to converge (and pin the host keys, accept-new), then the script times
#   * no-op:  `provision up bench`             (RUNS runs; each must exit 0 with nothing changed)
#   * floor:  `provision exec bench -- true`   (RUNS runs)
#   * ssh:    OpenSSH `ssh -p PORT root@127.0.0.1 true` to the N hosts at once (curve25519,
#             ed25519, no multiplexing; RUNS runs), the floor any tool on OpenSSH pays
#   * fresh:  the per-host folders removed, then `provision up bench` (RUNS runs; each must
#             change all 4 steps on every host)
#   * 1 MiB:  a fifth step, a `file` of 1 MiB random bytes, shipped fresh to the N hosts
#             (peak RSS of that run)
# HOME points at the temp dir so no ~/.ssh/config or key of the user is read; on the sshd side
# HOME is an empty dir too (SetEnv), like the anchors' harness, so root's rc files cost nothing. Every sshd is
# stopped and the temp dir removed on exit (trap).
#
# It prints one table row per N (times are medians of RUNS runs, seconds):
#     N  noop_s  exec_s  ssh_s  fresh_s  fresh/noop  rss_mib  rss_1mib  rt_noop  rt_fresh
# rss_mib = peak RSS of the no-op runs (largest of them, /usr/bin/time %M); rss_1mib = peak
# RSS of the 1 MiB file run; rt_* = `host_finished.round_trips` of an `--output json` run
# (min-max over hosts). Targets (issue 14, N = 50): fresh/noop <= 1.3, noop and exec <= ssh,
# rss_1mib <= 30 at N = 100.
# Timing details (each run) go to stderr.
set -euo pipefail

RUNS=${RUNS:-5}
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 10 50 100)
for n in "${COUNTS[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "noop.sh: host count '$n' is not a positive number" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "noop.sh: run as root (the hosts are root@127.0.0.1)" >&2; exit 1; }
for tool in /usr/sbin/sshd ssh-keygen /usr/bin/time; do
  [ -x "$(command -v "$tool")" ] || { echo "noop.sh: $tool is missing; run scripts/deps.sh" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release/provision
fi
BIN=$(realpath "$BIN")

W=$(mktemp -d /tmp/provision-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p /run/sshd "$W/home" "$W/remote" "$W/remote-home"
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$W/host_key"
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$W/client_key"
cp "$W/client_key.pub" "$W/authorized_keys"

# A port is free when nothing answers on it.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

MAX=0
for n in "${COUNTS[@]}"; do [ "$n" -gt "$MAX" ] && MAX=$n; done
PORTS=()
port=24000
while [ ${#PORTS[@]} -lt "$MAX" ]; do
  port=$((port + 1))
  [ $port -lt 30000 ] || { echo "noop.sh: no free ports left in 24001-29999" >&2; exit 1; }
  port_free $port || continue
  cfg=$W/sshd_$port.conf
  cat >"$cfg" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $W/host_key
AuthorizedKeysFile $W/authorized_keys
PidFile $W/sshd_$port.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200
LogLevel ERROR
# A neutral remote shell, as in ../shared/bench-anchors: bash (root's login shell) sources
# \$HOME/.bashrc even for \`ssh host cmd\`, and this machine's /root/.bashrc runs pyenv init
# (~0.2 s per connection), which a real target would not.
SetEnv HOME=$W/remote-home
EOF
  # Each target stands for its own machine: a private /var/lib/provision (where provision keeps
  # per-host state such as the deploy lock), as the test harness does.
  mkdir -p "$W/state_$port" /var/lib/provision
  unshare --mount --propagation private -- /bin/sh -c 'mount --bind "$1" /var/lib/provision && exec /usr/sbin/sshd -D -e -f "$2"' sh "$W/state_$port" "$cfg" 2>>"$W/sshd_$port.log" &
  PIDS+=($!)
  PORTS+=($port)
done
# Wait until every sshd listens (or say which did not).
for port in "${PORTS[@]}"; do
  for _ in $(seq 100); do port_free "$port" || continue 2; sleep 0.05; done
  echo "noop.sh: sshd on $port did not start: $(cat "$W/sshd_$port.log")" >&2
  exit 1
done

# Seconds with millisecond resolution.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# min and median of the numbers on stdin, one a line.
min_of() { sort -g | head -n1; }
median_of() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

write_project() { # $1 = N, $2 = "big" for a fifth step (a 1 MiB file)
  local n=$1 dir=$W/project_$1${2:-}
  mkdir -p "$dir/playbooks" "$dir/templates" "$dir/secrets"
  {
    echo 'app = "bench"'
    echo "ssh = { config = \"none\", known_hosts = \"accept-new\", identity_file = \"$W/client_key\" }"
    echo
    echo '[env.bench]'
    echo 'secrets = "secrets/bench.env"'
    echo 'vars = { port = 8000 }'
    echo 'hosts = ['
    for port in "${PORTS[@]:0:$n}"; do echo "  \"root@127.0.0.1:$port\","; done
    echo ']'
  } >"$dir/provision.toml"
  cat >"$dir/playbooks/deploy.toml" <<EOF
[[step]]
name = "app dir"
directory = { path = "$W/remote/{{ host.port }}/app", mode = "0755" }

[[step]]
name = "app env"
env_file = { dest = "$W/remote/{{ host.port }}/app/.env" }

[[step]]
name = "app config"
template = { src = "templates/app.conf.j2", dest = "$W/remote/{{ host.port }}/app/app.conf", mode = "0644" }

[[step]]
name = "install"
command = { run = "date > $W/remote/{{ host.port }}/app/installed", creates = "$W/remote/{{ host.port }}/app/installed" }
EOF
  if [ "${2:-}" = big ]; then
    head -c 1048576 /dev/urandom >"$dir/blob.bin"
    printf '\n[[step]]\nname = "blob"\nfile = { src = "blob.bin", dest = "%s/remote/{{ host.port }}/app/blob.bin" }\n' "$W" >>"$dir/playbooks/deploy.toml"
  fi
  printf '# {{ app }} ({{ env }}) on {{ host.name }}\nport = {{ port }}\n' >"$dir/templates/app.conf.j2"
  printf 'DB_PASSWORD=bench-db-password\nAPI_TOKEN=bench-api-token\n' >"$dir/secrets/bench.env"
  echo "$dir"
}

# provision with a clean environment: HOME in the temp dir, no agent, no CI detection games.
prov() { env -i PATH="$PATH" HOME="$W/home" "$BIN" "$@"; }

# OpenSSH to the first $1 hosts at once, each `true`; the targets' keys are accepted on first
# use into a known_hosts of the bench's own.
openssh_all() {
  printf '%s\n' "${PORTS[@]:0:$1}" | xargs -P "$1" -I{} ssh -q -p {} -i "$W/client_key" \
    -o UserKnownHostsFile="$W/ssh_known_hosts" -o StrictHostKeyChecking=accept-new \
    -o BatchMode=yes -o ControlMaster=no -o ControlPath=none -F /dev/null root@127.0.0.1 true
}

# Round trips per host in a JSON run's events: "n" or "min-max".
round_trips() {
  local rts lo hi
  rts=$(grep -o '"round_trips":[0-9]*' "$1" | cut -d: -f2 | sort -n | uniq)
  lo=$(head -n1 <<<"$rts"); hi=$(tail -n1 <<<"$rts")
  if [ "$lo" = "$hi" ]; then echo "$lo"; else echo "$lo-$hi"; fi
}

# `provision $@` (as `prov` runs it) with output to $LOG and its peak RSS (KiB) in $W/rss;
# prints its seconds. A failure stops the bench, saying what failed.
timed() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f %M -o "$W/rss" env -i PATH="$PATH" HOME="$W/home" "$BIN" "$@" >"$LOG" 2>&1 || {
    echo "noop.sh: failed: provision $*" >&2; tail -n 20 "$LOG" >&2; exit 1; }
  t1=$(now)
  elapsed "$t0" "$t1"
}
# `openssh_all $1`, timed like `timed`.
timed_ssh() {
  local t0 t1
  t0=$(now)
  openssh_all "$1" >"$LOG" 2>&1 || { echo "noop.sh: ssh to $1 hosts failed:" >&2; tail -n 20 "$LOG" >&2; exit 1; }
  t1=$(now)
  elapsed "$t0" "$t1"
}
med() { printf '%s\n' "$@" | median_of; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# The JSON run in $1 changed exactly $2 steps.
expect_changed() {
  grep -q "\"event\":\"run_finished\".*\"changed\":$2[,}]" "$1" || {
    echo "noop.sh: expected $2 changes in $1:" >&2; grep run_finished "$1" >&2; exit 1; }
}
fresh_hosts() { rm -rf "$W"/remote/*/app; }

printf '%-5s %7s %7s %7s %8s %11s %8s %9s %8s %9s\n' N noop_s exec_s ssh_s fresh_s fresh/noop rss_mib rss_1mib rt_noop rt_fresh
for n in "${COUNTS[@]}"; do
  dir=$(write_project "$n")
  # Converge once (this also pins the host keys in $dir/.provision/known_hosts).
  LOG=$W/converge_$n.log; timed -C "$dir" up bench >/dev/null
  LOG=$W/json_$n.log; timed -C "$dir" up bench --output json >/dev/null
  expect_changed "$LOG" 0
  rt_noop=$(round_trips "$LOG")
  fresh_hosts
  LOG=$W/jsonfresh_$n.log; timed -C "$dir" up bench --output json >/dev/null
  expect_changed "$LOG" $((4 * n))
  rt_fresh=$(round_trips "$LOG")
  openssh_all "$n" # accepts the host keys: not timed

  noop=(); floor=(); ssh=(); fresh=(); rss=()
  for i in $(seq "$RUNS"); do
    LOG=$W/noop_$n.log; noop+=("$(timed -C "$dir" up bench)"); rss+=("$(tail -n1 "$W/rss")")
    LOG=$W/floor_$n.log; floor+=("$(timed -C "$dir" exec bench -- true)")
    LOG=$W/ssh_$n.log; ssh+=("$(timed_ssh "$n")")
    fresh_hosts
    LOG=$W/fresh_$n.log; fresh+=("$(timed -C "$dir" up bench --output json)")
    expect_changed "$LOG" $((4 * n))
    echo "N=$n run $i: no-op ${noop[-1]}s (rss ${rss[-1]} KiB), exec ${floor[-1]}s, ssh ${ssh[-1]}s, fresh ${fresh[-1]}s" >&2
  done
  big=$(write_project "$n" big)
  fresh_hosts
  LOG=$W/big_$n.log; timed -C "$big" up bench --output json >/dev/null
  expect_changed "$LOG" $((5 * n))
  rss_big=$(mib "$(tail -n1 "$W/rss")")
  rss_mib=$(mib "$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)")
  noop_med=$(med "${noop[@]}"); fresh_med=$(med "${fresh[@]}")
  ratio=$(awk -v a="$fresh_med" -v b="$noop_med" 'BEGIN { printf "%.2f", a / b }')
  printf '%-5s %7s %7s %7s %8s %11s %8s %9s %8s %9s\n' "$n" "$noop_med" "$(med "${floor[@]}")" "$(med "${ssh[@]}")" "$fresh_med" "$ratio" "$rss_mib" "$rss_big" "$rt_noop" "$rt_fresh"
done
