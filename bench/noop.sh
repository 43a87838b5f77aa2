#!/usr/bin/env bash
# bench/noop.sh: how long a no-op converge takes, against the floor of connecting and running
# one command on the same hosts.
#
# Run (as root, from anywhere; needs sshd, ssh-keygen and /usr/bin/time: scripts/deps.sh):
#
#     bench/noop.sh            # N = 1 10 50 hosts
#     bench/noop.sh 5 100      # other host counts
#     RUNS=9 bench/noop.sh 50  # more timed runs per figure (default 5)
#
# What it does: builds the release binary (cargo build --release), starts max(N) OpenSSH
# servers on 127.0.0.1 (own temp dir, one shared ed25519 host key, root login by an ed25519
# client key, UsePAM no, MaxStartups 200), and for each N writes a project whose env `bench`
# lists N of them, with a 4-step playbook: directory, env_file, template and a command guarded
# by `creates`, each under a per-host folder in the temp dir. `provision up bench` runs once
# to converge (and pin the host keys, accept-new), then the script times
#   * no-op:  `provision up bench`             (RUNS runs; each must exit 0 with nothing changed)
#   * floor:  `provision exec bench -- true`   (RUNS runs)
# HOME points at the temp dir so no ~/.ssh/config or key of the user is read; on the sshd side
# HOME is an empty dir too (SetEnv), like the anchors' harness, so root's rc files cost nothing. Every sshd is
# stopped and the temp dir removed on exit (trap).
#
# It prints one table row per N:
#     N  noop_min_s  noop_med_s  floor_min_s  floor_med_s  ratio  rss_mib  round_trips/host
# ratio = no-op median / floor median; rss_mib = peak RSS of the no-op runs (largest of them,
# /usr/bin/time %M); round_trips/host = `host_finished.round_trips` of an `--output json`
# no-op run (min-max over hosts). Targets: at N=50, ratio <= 1.5 and RSS < 40 MiB.
# Timing details (each run) go to stderr.
set -euo pipefail

RUNS=${RUNS:-5}
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 10 50)
for n in "${COUNTS[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "noop.sh: host count '$n' is not a positive number" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "noop.sh: run as root (the hosts are root@127.0.0.1)" >&2; exit 1; }
for tool in /usr/sbin/sshd ssh-keygen /usr/bin/time; do
  [ -x "$(command -v "$tool")" ] || { echo "noop.sh: $tool is missing; run scripts/deps.sh" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release --quiet)
BIN=$ROOT/target/release/provision

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

write_project() { # $1 = N
  local n=$1 dir=$W/project_$1
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
  printf '# {{ app }} ({{ env }}) on {{ host.name }}\nport = {{ port }}\n' >"$dir/templates/app.conf.j2"
  printf 'DB_PASSWORD=bench-db-password\nAPI_TOKEN=bench-api-token\n' >"$dir/secrets/bench.env"
  echo "$dir"
}

# provision with a clean environment: HOME in the temp dir, no agent, no CI detection games.
prov() { env -i PATH="$PATH" HOME="$W/home" "$BIN" "$@"; }

printf '%-5s %11s %11s %12s %12s %6s %8s %17s\n' N noop_min_s noop_med_s floor_min_s floor_med_s ratio rss_mib round_trips/host
for n in "${COUNTS[@]}"; do
  dir=$(write_project "$n")
  # Converge once (this also pins the host keys in $dir/.provision/known_hosts).
  if ! prov -C "$dir" up bench >"$W/converge_$n.log" 2>&1; then
    echo "noop.sh: converging $n hosts failed:" >&2
    tail -n 30 "$W/converge_$n.log" >&2
    exit 1
  fi
  # One JSON no-op run: nothing may change; round trips per host.
  prov -C "$dir" up bench --output json >"$W/json_$n.log" 2>&1 || {
    echo "noop.sh: the no-op run (json) failed:" >&2; tail -n 20 "$W/json_$n.log" >&2; exit 1; }
  grep -q '"event":"run_finished".*"changed":0' "$W/json_$n.log" || {
    echo "noop.sh: the second run changed something; not a no-op:" >&2; grep '"status":"changed"' "$W/json_$n.log" | head -n 5 >&2; exit 1; }
  rts=$(grep -o '"round_trips":[0-9]*' "$W/json_$n.log" | cut -d: -f2 | sort -n | uniq)
  rt_min=$(head -n1 <<<"$rts"); rt_max=$(tail -n1 <<<"$rts")
  rt=$rt_min; [ "$rt_min" = "$rt_max" ] || rt="$rt_min-$rt_max"

  noop=(); floor=(); rss=()
  for i in $(seq "$RUNS"); do
    t0=$(now)
    /usr/bin/time -f %M -o "$W/rss" env -i PATH="$PATH" HOME="$W/home" "$BIN" -C "$dir" up bench >"$W/noop_$n.log" 2>&1 || {
      echo "noop.sh: no-op run $i on $n hosts failed:" >&2; tail -n 20 "$W/noop_$n.log" >&2; exit 1; }
    t1=$(now)
    noop+=("$(elapsed "$t0" "$t1")")
    rss+=("$(tail -n1 "$W/rss")")
    t0=$(now)
    prov -C "$dir" exec bench -- true >"$W/floor_$n.log" 2>&1 || {
      echo "noop.sh: exec run $i on $n hosts failed:" >&2; tail -n 20 "$W/floor_$n.log" >&2; exit 1; }
    t1=$(now)
    floor+=("$(elapsed "$t0" "$t1")")
    echo "N=$n run $i: no-op ${noop[-1]}s (rss ${rss[-1]} KiB), floor ${floor[-1]}s" >&2
  done
  noop_min=$(printf '%s\n' "${noop[@]}" | min_of); noop_med=$(printf '%s\n' "${noop[@]}" | median_of)
  floor_min=$(printf '%s\n' "${floor[@]}" | min_of); floor_med=$(printf '%s\n' "${floor[@]}" | median_of)
  rss_kib=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)
  ratio=$(awk -v a="$noop_med" -v b="$floor_med" 'BEGIN { printf "%.2f", a / b }')
  rss_mib=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k / 1024 }')
  printf '%-5s %11s %11s %12s %12s %6s %8s %17s\n' "$n" "$noop_min" "$noop_med" "$floor_min" "$floor_med" "$ratio" "$rss_mib" "$rt"
done
