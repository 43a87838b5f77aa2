#!/usr/bin/env bash
# bench/deploy.sh: how long a new-version deploy of the bundled example takes on 1, 3 and 10
# hosts, and how many round trips it needs per host, beside the no-op figure of the same project.
#
# Run (as root, from anywhere; needs sshd, git, python3 and a Docker engine: scripts/deps.sh):
#
#     bench/deploy.sh                          # start-first (zero downtime), 3 deploys, N = 1 3 10
#     HOSTS="1 3" bench/deploy.sh              # the host counts to measure, one row each
#     RUNS=5 bench/deploy.sh                   # more timed runs per figure
#     STRATEGY=stop-first bench/deploy.sh      # the repo's playbook as shipped, for comparison
#     BIN=target/debug/provision bench/deploy.sh   # skip the release build
#     DOCKER_HOST=unix:///… bench/deploy.sh    # default: the tests' engine, which must answer
#
# What it does: builds the release binary (unless BIN is given), builds the local images
# (scripts/base-images.sh, examples/compose-three-tier/nginx-image.sh) into the engine, starts
# as many OpenSSH servers on 127.0.0.1 as the largest N (each its own dir and a private
# /var/lib/provision as the test harness does, root login by an ed25519 key) and writes a
# project deploying examples/hello from a local git repo with playbooks/deploy.toml, whose app
# step is made start-first (`strategy = "start-first"`, the proxy publishing the port) unless
# STRATEGY=stop-first. All hosts share the one Docker engine, so the playbook is adapted: every
# per-host resource carries `{{ host.name }}` (app folder, image, app container and its proxy,
# the port from `host.vars.http_port`); the database, its wait and the migrations run once (on
# h1, `run_once`), and the apps of all hosts reach it on one shared network, created by the
# database step before any app starts (the other hosts wait for a run_once step's result).
# Env `bN` holds the first N hosts. For each N `provision up bN` converges once, then it times
#   * no-op:   `provision up bN`  (RUNS runs; each must change nothing)
#   * deploy:  a new commit, then `provision up bN` (RUNS runs; each must change the app
#              container on every host: git, release note, image build, app, health check;
#              migrations once)
# Round trips per host come from `host_finished.round_trips` of the JSON events (the largest
# over the hosts).
#
# It prints one row per N:
#     N  strategy  deploy_min_s  deploy_med_s  noop_med_s  deploy_rt/host  noop_rt/host
# Per-run details (and each deploy's changed steps with their ms) go to stderr. Everything it
# created (containers, volume, network, images, sshds, temp dir) is removed on exit.
set -euo pipefail

RUNS=${RUNS:-3}
STRATEGY=${STRATEGY:-start-first}
HOSTS=${HOSTS:-1 3 10}
MAX_N=0
for n in $HOSTS; do
  case $n in ''|*[!0-9]*|0) echo "deploy.sh: HOSTS is a list of host counts (\"1 3 10\")" >&2; exit 1;; esac
  [ "$n" -gt "$MAX_N" ] && MAX_N=$n
done
[ "$MAX_N" -gt 0 ] || { echo "deploy.sh: HOSTS is empty" >&2; exit 1; }
case $STRATEGY in start-first|stop-first) ;; *) echo "deploy.sh: STRATEGY is start-first or stop-first" >&2; exit 1;; esac
[ "$(id -u)" -eq 0 ] || { echo "deploy.sh: run as root (the host is root@127.0.0.1)" >&2; exit 1; }
for tool in /usr/sbin/sshd ssh-keygen git python3 docker unshare; do
  [ -x "$(command -v "$tool")" ] || { echo "deploy.sh: $tool is missing; run scripts/deps.sh" >&2; exit 1; }
done
export DOCKER_HOST=${DOCKER_HOST:-unix:///tmp/provision-test-docker/docker.sock}
docker info >/dev/null 2>&1 || { echo "deploy.sh: no Docker engine answers on $DOCKER_HOST (run a docker test once to start the tests' engine, or set DOCKER_HOST)" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release/provision
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
"$ROOT/scripts/base-images.sh" >/dev/null
"$ROOT/examples/compose-three-tier/nginx-image.sh" >/dev/null

W=$(mktemp -d /tmp/provision-bench-deploy.XXXXXX)
APP=benchdeploy$$
SSHD_PIDS=()
cleanup() {
  for pid in "${SSHD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  # Only what this run created: every name starts with $APP (unique per run).
  for c in $(docker ps -aq --filter "name=^$APP-"); do
    docker rm -f -v "$c" >/dev/null 2>&1 || true
  done
  docker volume rm -f "$APP-pgdata" >/dev/null 2>&1 || true
  for net in $(docker network ls -q --filter "name=^$APP-net\$"); do docker network rm "$net" >/dev/null 2>&1 || true; done
  for i in $(docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$APP-h[0-9]*:"); do docker rmi -f "$i" >/dev/null 2>&1 || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port is free when nothing answers on it.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }

mkdir -p /run/sshd "$W/home" /var/lib/provision
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$W/client_key"
cp "$W/client_key.pub" "$W/authorized_keys"
SSH_PORTS=(); HTTP_PORTS=()
# One sshd per host h1..hMAX_N, each with its own host key, HOME and /var/lib/provision.
start_sshd() {
  local h=$1 d=$W/$1 port
  mkdir -p "$d/remote-home" "$d/state"
  ssh-keygen -q -t ed25519 -N '' -C "bench-$h" -f "$d/host_key"
  port=$(free_port $((${#SSH_PORTS[@]} ? SSH_PORTS[-1] + 1 : 24500)))
  cat >"$d/sshd.conf" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
AuthorizedKeysFile $W/authorized_keys
PidFile $d/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel ERROR
SetEnv HOME=$d/remote-home
EOF
  unshare --mount --propagation private -- /bin/sh -c 'mount --bind "$1" /var/lib/provision && exec /usr/sbin/sshd -D -e -f "$2"' sh "$d/state" "$d/sshd.conf" 2>>"$d/sshd.log" &
  SSHD_PIDS+=("$!")
  for _ in $(seq 100); do port_free "$port" || break; sleep 0.05; done
  port_free "$port" && { echo "deploy.sh: sshd of $h did not start: $(cat "$d/sshd.log")" >&2; exit 1; }
  SSH_PORTS+=("$port")
}
for i in $(seq "$MAX_N"); do
  start_sshd "h$i"
  p=$(free_port $((${#HTTP_PORTS[@]} ? HTTP_PORTS[-1] + 1 : 25500)))
  HTTP_PORTS+=("$p")
done

# The app: examples/hello in a bare repo the host clones from, and a working clone.
git init -q --bare -b main "$W/hello.git"
git clone -q "$W/hello.git" "$W/work" 2>/dev/null
cp -a "$ROOT/examples/hello/." "$W/work/"
commit() { git -C "$W/work" add -A && git -C "$W/work" -c user.name=b -c user.email=b@b commit -q -m "$1" && git -C "$W/work" push -q origin HEAD:main; }
git -C "$W/work" checkout -q -B main
commit "hello"

P=$W/project
mkdir -p "$P/playbooks" "$P/templates" "$P/secrets"
# The release note names the host's own port.
sed 's/{{ http_port }}/{{ host.vars.http_port }}/g' "$ROOT/templates/release.txt.j2" >"$P/templates/release.txt.j2"
python3 - "$ROOT/playbooks/deploy.toml" "$P/playbooks/deploy.toml" "$STRATEGY" <<'PY'
import sys
src, dest, strategy = sys.argv[1:]
text = open(src).read()
# The same change as tests/zero_downtime.rs: only the app step becomes start-first.
old = 'ports = ["127.0.0.1:{{ http_port }}:8000"], network = "{{ app }}-net", pull = "never", healthcheck = { url = "http://127.0.0.1:{{ http_port }}/cgi-bin/health", timeout = "30s" } }'
new = 'network = "{{ app }}-net", pull = "never", strategy = "start-first", proxy = { port = "127.0.0.1:{{ http_port }}", app_port = 8000, health = "/cgi-bin/health", timeout = "20s", drain = "5s" } }'
def edit(old, new, count=1):
    global text
    if text.count(old) != count:
        sys.exit("deploy.sh: playbooks/deploy.toml changed (%r); update this script" % old)
    text = text.replace(old, new)
if strategy == "start-first":
    edit(old, new)
# Many hosts on one engine: what each host owns carries its name; the one database (and its
# wait) runs once, as the migrations already do.
edit('{{ base }}', '{{ base }}/{{ host.name }}', text.count('{{ base }}') or 1)
edit('{{ http_port }}', '{{ host.vars.http_port }}', text.count('{{ http_port }}') or 1)
edit('{{ app }}:{{ src.short_sha }}', '{{ app }}-{{ host.name }}:{{ src.short_sha }}', 3)
edit('docker_run = { name = "{{ app }}", ', 'docker_run = { name = "{{ app }}-{{ host.name }}", ')
edit('name = "database"\n', 'name = "database"\nrun_once = true\n')
edit('name = "database ready"\n', 'name = "database ready"\nrun_once = true\n')
open(dest, "w").write(text)
PY
cat >"$P/provision.toml" <<EOF
app = "$APP"
repo = "$W/hello.git"

[vars]
base = "$W/remote/srv"
ref = "main"
greeting = "Hello from the benchmark"
base_image = "provision-local/base:1"
db_image = "provision-local/postgres:15"
pull = "never"

[ssh]
identity_file = "$W/client_key"
known_hosts = "accept-new"
config = "none"

EOF
# Env bN: hosts h1..hN as host tables (name and http_port per host).
for n in $HOSTS; do
  {
    printf '\n[env.b%s]\nhosts = [\n' "$n"
    for i in $(seq "$n"); do
      printf '  { host = "root@127.0.0.1:%s", name = "h%s", vars = { http_port = %s } },\n' "${SSH_PORTS[i-1]}" "$i" "${HTTP_PORTS[i-1]}"
    done
    printf ']\nsecrets = "secrets/bench.env"\nremote_env = { DOCKER_HOST = "%s" }\n' "$DOCKER_HOST"
  } >>"$P/provision.toml"
done
printf 'APP_SECRET=bench-app-secret\nDB_PASSWORD=bench-db-password\n' >"$P/secrets/bench.env"

prov() { env -i PATH="$PATH" HOME="$W/home" "$BIN" -C "$P" "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min_of() { sort -g | head -n1; }
median_of() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The largest host_finished.round_trips of a run (the busiest host).
round_trips() { grep -o '"round_trips":[0-9]*' "$1" | cut -d: -f2 | sort -n | tail -n1; }
# How many hosts replaced their app container in a run.
apps_changed() { grep -c '"step":"app","kind":"docker_run","status":"changed"' "$1" || true; }
changed_steps() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "step_finished" and e.get("status") == "changed":
        print(e.get("host", "?") + ":" + e["step"], e["ms"], "ms", end="; ")
        if e["step"] == "app" and e.get("output"):
            print("[" + " / ".join(e["output"].splitlines()) + "]", end="; ")
' "$1"; }

release=0
# One row of figures for env bN.
bench_n() {
  local n=$1 env=b$1 i t0 t1 noop=() deploy=() noop_rt= deploy_rt= got
  if ! prov up "$env" --output json >"$W/converge-$n.log" 2>&1; then
    echo "deploy.sh: the first deploy on $n hosts failed:" >&2; tail -n 30 "$W/converge-$n.log" >&2; exit 1
  fi
  for i in $(seq "$RUNS"); do
    t0=$(now)
    prov up "$env" --output json >"$W/noop.log" 2>&1 || { echo "deploy.sh: N=$n no-op run $i failed:" >&2; tail -n 20 "$W/noop.log" >&2; exit 1; }
    t1=$(now)
    grep -q '"event":"run_finished".*"changed":0' "$W/noop.log" || { echo "deploy.sh: N=$n no-op run $i changed something:" >&2; grep '"status":"changed"' "$W/noop.log" | head -n 5 >&2; exit 1; }
    noop+=("$(elapsed "$t0" "$t1")"); noop_rt=$(round_trips "$W/noop.log")

    release=$((release + 1))
    echo "release $release" >"$W/work/www/version.txt"
    commit "release $release"
    t0=$(now)
    prov up "$env" --output json >"$W/deploy.log" 2>&1 || { echo "deploy.sh: N=$n deploy $i failed:" >&2; grep '"status":"failed"' "$W/deploy.log" | head -n 3 >&2; exit 1; }
    t1=$(now)
    got=$(apps_changed "$W/deploy.log")
    [ "$got" -eq "$n" ] || { echo "deploy.sh: N=$n deploy $i replaced the app container on $got of $n hosts" >&2; exit 1; }
    deploy+=("$(elapsed "$t0" "$t1")"); deploy_rt=$(round_trips "$W/deploy.log")
    echo "N=$n run $i: no-op ${noop[-1]}s ($noop_rt round trips), deploy ${deploy[-1]}s ($deploy_rt round trips): $(changed_steps "$W/deploy.log")" >&2
  done
  printf '%-3s %-12s %12s %12s %10s %15s %13s\n' "$n" "$STRATEGY" \
    "$(printf '%s\n' "${deploy[@]}" | min_of)" "$(printf '%s\n' "${deploy[@]}" | median_of)" \
    "$(printf '%s\n' "${noop[@]}" | median_of)" "$deploy_rt" "$noop_rt"
}

printf '%-3s %-12s %12s %12s %10s %15s %13s\n' N strategy deploy_min_s deploy_med_s noop_med_s deploy_rt/host noop_rt/host
for n in $HOSTS; do bench_n "$n"; done
