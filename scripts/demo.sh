#!/usr/bin/env bash
# Runs the bundled example for real: sets up a local target (OpenSSH sshd on 127.0.0.1:22022,
# a throw-away user `provision-demo` with passwordless sudo, a Docker engine on its own socket,
# a git repo of examples/hello), then `provision plan local`, `provision up local` (Docker app +
# PostgreSQL + migrations + health check), `up` again to show it changes nothing, and asks the
# app for its page.
# Idempotent: run it as often as you like. Needs root (or sudo) for the user and sshd.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

scripts/deps.sh
cargo build --release --quiet
bin="$root/target/release/provision"

demo=.provision/demo
mkdir -p "$demo"
[ -f "$demo/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C provision-demo -f "$demo/id_ed25519"
[ -f "$demo/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C demo-host -f "$demo/host_ed25519"
cp "$demo/id_ed25519.pub" "$demo/authorized_keys"

# The target's login user, with sudo for the steps that need root.
if ! id provision-demo >/dev/null 2>&1; then
  $SUDO useradd --create-home --shell /bin/sh provision-demo
fi
# A new account has a locked password ("!"), which sshd without PAM treats as a locked account;
# "*" means "no password" without the lock, so key login works.
$SUDO usermod -p '*' provision-demo
echo "provision-demo ALL=(ALL) NOPASSWD:ALL" | $SUDO tee /etc/sudoers.d/provision-demo >/dev/null
$SUDO chmod 0440 /etc/sudoers.d/provision-demo

cat > "$demo/sshd_config" <<CONF
Port 22022
ListenAddress 127.0.0.1
HostKey $root/$demo/host_ed25519
AuthorizedKeysFile $root/$demo/authorized_keys
PidFile $root/$demo/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers provision-demo
CONF
if ! { [ -f "$demo/sshd.pid" ] && kill -0 "$(cat "$demo/sshd.pid")" 2>/dev/null; }; then
  $SUDO /usr/sbin/sshd -f "$root/$demo/sshd_config" -E "$root/$demo/sshd.log"
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/22022) 2>/dev/null && break; sleep 0.1; done
fi

# A Docker engine of the demo's own (no registry is needed: the base images are built here).
export DOCKER_HOST=unix:///tmp/provision-demo/docker.sock
mkdir -p /tmp/provision-demo
if ! docker info >/dev/null 2>&1; then
  $SUDO sh -c 'nohup dockerd --host unix:///tmp/provision-demo/docker.sock --data-root /tmp/provision-demo/docker \
    --exec-root /tmp/provision-demo/docker-exec --pidfile /tmp/provision-demo/docker.pid \
    > /tmp/provision-demo/dockerd.log 2>&1 &'
  for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
scripts/base-images.sh

# The app's repository, as a bare repo the target clones from.
repo=/tmp/provision-demo/hello.git
[ -d "$repo" ] || git init -q --bare -b main "$repo"
work=$(mktemp -d)
git clone -q "$repo" "$work" 2>/dev/null
git -C "$work" checkout -q -B main
find "$work" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
cp -R examples/hello/. "$work/"
git -C "$work" add -A
if ! git -C "$work" diff --cached --quiet 2>/dev/null || ! git -C "$work" rev-parse -q --verify HEAD >/dev/null; then
  git -C "$work" -c user.name=demo -c user.email=demo@localhost commit -q -m "hello app from examples/hello"
  git -C "$work" push -q origin main
fi
rm -rf "$work"
chmod -R a+rX /tmp/provision-demo/hello.git

# Secrets stay out of git; make some for the demo.
[ -f secrets/local.env ] || printf 'APP_SECRET=%s\nDB_PASSWORD=%s\n' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" > secrets/local.env

echo "== provision plan local"
"$bin" plan local --output plain
echo "== provision up local"
"$bin" up local --output plain
echo "== provision up local (again: nothing to change)"
"$bin" up local --output plain
echo "== the app answers"
curl -fsS http://127.0.0.1:8080/cgi-bin/hello
