#!/usr/bin/env bash
# Runs the bundled example for real: sets up a local target (OpenSSH sshd on 127.0.0.1:22022,
# a throw-away user `provision-demo` with passwordless sudo, a git repo of examples/hello),
# then `provision plan local`, `provision up local`, and `up` again to show it changes nothing.
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

# The app's repository, as a bare repo the target clones from.
repo=/tmp/provision-demo/hello.git
if [ ! -d "$repo" ]; then
  work=$(mktemp -d)
  cp -R examples/hello/. "$work/"
  git -C "$work" init -q -b main
  git -C "$work" add -A
  git -C "$work" -c user.name=demo -c user.email=demo@localhost commit -q -m "hello app"
  git clone -q --bare "$work" "$repo"
  rm -rf "$work"
  chmod -R a+rX /tmp/provision-demo
fi

# Secrets stay out of git; make some for the demo.
[ -f secrets/local.env ] || printf 'APP_SECRET=%s\nDB_PASSWORD=%s\n' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" > secrets/local.env

echo "== provision plan local"
"$bin" plan local --output plain
echo "== provision up local"
"$bin" up local --output plain
echo "== provision up local (again: nothing to change)"
"$bin" up local --output plain
