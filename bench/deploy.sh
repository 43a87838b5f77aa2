#!/usr/bin/env bash
# bench/deploy.sh: how long a new-version deploy of the bundled example takes on one host, and
# how many round trips it needs, beside the no-op figure of the same project.
#
# Run (as root, from anywhere; needs sshd, git, python3 and a Docker engine: scripts/deps.sh):
#
#     bench/deploy.sh                          # start-first (zero downtime), 3 deploys
#     RUNS=5 bench/deploy.sh                   # more timed runs per figure
#     STRATEGY=stop-first bench/deploy.sh      # the repo's playbook as shipped, for comparison
#     BIN=target/debug/provision bench/deploy.sh   # skip the release build
#     DOCKER_HOST=unix:///… bench/deploy.sh    # default: the tests' engine, which must answer
#
# What it does: builds the release binary (unless BIN is given), builds the local images
# (scripts/base-images.sh, examples/compose-three-tier/nginx-image.sh) into the engine, starts
# one OpenSSH server on 127.0.0.1 (own temp dir, a private /var/lib/provision as the test
# harness does, root login by an ed25519 key) and writes a project deploying examples/hello
# from a local git repo with playbooks/deploy.toml, whose app step is made start-first
# (`strategy = "start-first"`, the proxy publishing the port) unless STRATEGY=stop-first.
# `provision up` converges once, then the script times
#   * no-op:   `provision up bench`  (RUNS runs; each must change nothing)
#   * deploy:  a new commit, then `provision up bench` (RUNS runs; each must change the app
#              container: git, release note, image build, migrations, app, health check)
# Round trips per host come from `host_finished.round_trips` of the JSON events. Multi-host
# figures come later (the image would be built on every host today).
#
# It prints one row:
#     N  strategy  deploy_min_s  deploy_med_s  noop_med_s  deploy_rt/host  noop_rt/host
# Per-run details (and each deploy's changed steps with their ms) go to stderr. Everything it
# created (containers, volume, network, images, sshd, temp dir) is removed on exit.
set -euo pipefail

RUNS=${RUNS:-3}
STRATEGY=${STRATEGY:-start-first}
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
SSHD_PID=
cleanup() {
  [ -n "$SSHD_PID" ] && { kill "$SSHD_PID" 2>/dev/null || true; wait "$SSHD_PID" 2>/dev/null || true; }
  for c in $(docker ps -aq --filter "label=provision.service=$APP") "$APP-proxy" "$APP" "$APP--previous" "$APP-db"; do
    docker rm -f -v "$c" >/dev/null 2>&1 || true
  done
  docker volume rm -f "$APP-pgdata" >/dev/null 2>&1 || true
  docker network rm "$APP-net" >/dev/null 2>&1 || true
  for i in $(docker images "$APP" --format '{{.Repository}}:{{.Tag}}'); do docker rmi -f "$i" >/dev/null 2>&1 || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port is free when nothing answers on it.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }

mkdir -p /run/sshd "$W/home" "$W/remote-home" "$W/state" /var/lib/provision
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$W/host_key"
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$W/client_key"
cp "$W/client_key.pub" "$W/authorized_keys"
SSH_PORT=$(free_port 24500)
cat >"$W/sshd.conf" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $W/host_key
AuthorizedKeysFile $W/authorized_keys
PidFile $W/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel ERROR
SetEnv HOME=$W/remote-home
EOF
unshare --mount --propagation private -- /bin/sh -c 'mount --bind "$1" /var/lib/provision && exec /usr/sbin/sshd -D -e -f "$2"' sh "$W/state" "$W/sshd.conf" 2>>"$W/sshd.log" &
SSHD_PID=$!
for _ in $(seq 100); do port_free "$SSH_PORT" || break; sleep 0.05; done
port_free "$SSH_PORT" && { echo "deploy.sh: sshd did not start: $(cat "$W/sshd.log")" >&2; exit 1; }
HTTP_PORT=$(free_port 25500)

# The app: examples/hello in a bare repo the host clones from, and a working clone.
git init -q --bare -b main "$W/hello.git"
git clone -q "$W/hello.git" "$W/work" 2>/dev/null
cp -a "$ROOT/examples/hello/." "$W/work/"
commit() { git -C "$W/work" add -A && git -C "$W/work" -c user.name=b -c user.email=b@b commit -q -m "$1" && git -C "$W/work" push -q origin HEAD:main; }
git -C "$W/work" checkout -q -B main
commit "hello"

P=$W/project
mkdir -p "$P/playbooks" "$P/templates" "$P/secrets"
cp "$ROOT/templates/release.txt.j2" "$P/templates/"
python3 - "$ROOT/playbooks/deploy.toml" "$P/playbooks/deploy.toml" "$STRATEGY" <<'PY'
import sys
src, dest, strategy = sys.argv[1:]
text = open(src).read()
# The same change as tests/zero_downtime.rs: only the app step becomes start-first.
old = 'ports = ["127.0.0.1:{{ http_port }}:8000"], network = "{{ app }}-net", pull = "never", healthcheck = { url = "http://127.0.0.1:{{ http_port }}/cgi-bin/health", timeout = "30s" } }'
new = 'network = "{{ app }}-net", pull = "never", strategy = "start-first", proxy = { port = "127.0.0.1:{{ http_port }}", app_port = 8000, health = "/cgi-bin/health", timeout = "20s", drain = "5s" } }'
if strategy == "start-first":
    if text.count(old) != 1:
        sys.exit("deploy.sh: the app step of playbooks/deploy.toml changed; update this script")
    text = text.replace(old, new)
open(dest, "w").write(text)
PY
cat >"$P/provision.toml" <<EOF
app = "$APP"
repo = "$W/hello.git"

[vars]
base = "$W/remote/srv"
ref = "main"
http_port = $HTTP_PORT
greeting = "Hello from the benchmark"
base_image = "provision-local/base:1"
db_image = "provision-local/postgres:15"
pull = "never"

[ssh]
identity_file = "$W/client_key"
known_hosts = "accept-new"
config = "none"

[env.bench]
hosts = ["root@127.0.0.1:$SSH_PORT"]
secrets = "secrets/bench.env"
remote_env = { DOCKER_HOST = "$DOCKER_HOST" }
EOF
printf 'APP_SECRET=bench-app-secret\nDB_PASSWORD=bench-db-password\n' >"$P/secrets/bench.env"

prov() { env -i PATH="$PATH" HOME="$W/home" "$BIN" -C "$P" "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min_of() { sort -g | head -n1; }
median_of() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
round_trips() { grep -o '"round_trips":[0-9]*' "$1" | cut -d: -f2 | head -n1; }
changed_steps() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "step_finished" and e.get("status") == "changed":
        print(e["step"], e["ms"], "ms", end="; ")
        if e["step"] == "app" and e.get("output"):
            print("[" + " / ".join(e["output"].splitlines()) + "]", end="; ")
' "$1"; }

if ! prov up bench --output json >"$W/converge.log" 2>&1; then
  echo "deploy.sh: the first deploy failed:" >&2; tail -n 30 "$W/converge.log" >&2; exit 1
fi

noop=(); deploy=(); noop_rt=; deploy_rt=
for i in $(seq "$RUNS"); do
  t0=$(now)
  prov up bench --output json >"$W/noop.log" 2>&1 || { echo "deploy.sh: no-op run $i failed:" >&2; tail -n 20 "$W/noop.log" >&2; exit 1; }
  t1=$(now)
  grep -q '"event":"run_finished".*"changed":0' "$W/noop.log" || { echo "deploy.sh: no-op run $i changed something:" >&2; grep '"status":"changed"' "$W/noop.log" | head -n 5 >&2; exit 1; }
  noop+=("$(elapsed "$t0" "$t1")"); noop_rt=$(round_trips "$W/noop.log")

  echo "release $i" >"$W/work/www/version.txt"
  commit "release $i"
  t0=$(now)
  prov up bench --output json >"$W/deploy.log" 2>&1 || { echo "deploy.sh: deploy $i failed:" >&2; grep '"status":"failed"' "$W/deploy.log" | head -n 3 >&2; exit 1; }
  t1=$(now)
  grep -q '"step":"app","kind":"docker_run","status":"changed"' "$W/deploy.log" || { echo "deploy.sh: deploy $i did not replace the app container" >&2; exit 1; }
  deploy+=("$(elapsed "$t0" "$t1")"); deploy_rt=$(round_trips "$W/deploy.log")
  echo "run $i: no-op ${noop[-1]}s ($noop_rt round trips), deploy ${deploy[-1]}s ($deploy_rt round trips): $(changed_steps "$W/deploy.log")" >&2
done

printf '%-3s %-12s %12s %12s %10s %15s %13s\n' N strategy deploy_min_s deploy_med_s noop_med_s deploy_rt/host noop_rt/host
printf '%-3s %-12s %12s %12s %10s %15s %13s\n' 1 "$STRATEGY" \
  "$(printf '%s\n' "${deploy[@]}" | min_of)" "$(printf '%s\n' "${deploy[@]}" | median_of)" \
  "$(printf '%s\n' "${noop[@]}" | median_of)" "$deploy_rt" "$noop_rt"
