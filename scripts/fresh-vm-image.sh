#!/usr/bin/env bash
# Builds the "fresh VM" test images (tests/fresh_vm.rs) without any registry: a debootstrap'd
# Debian bookworm minbase, `docker import`ed, plus what a brand-new cloud VM has and nothing else.
#
#   provision-fresh/minbase:bookworm  debootstrap --variant=minbase bookworm
#   provision-fresh/bare:bookworm     + openssh-server, sudo, ca-certificates; user `admin`
#                                     with passwordless sudo; fresh host keys at every start;
#                                     sshd is PID 1 (no init system: the fallback path)
#   provision-fresh/vm:bookworm       + systemd as PID 1 (ssh.service enabled): the "fresh VM"
#   provision-fresh/vm-docker:bookworm  the fresh VM + Debian's docker.io (enabled at boot): a
#                                     cloud image with Docker baked in. Only the tests about
#                                     installing Docker start from the images without it; the
#                                     others start here (apt installing Docker is ~40 s each).
#
# No Docker and no git in the first three: provision installs them. The debootstrap rootfs is
# cached as a tarball in $PROVISION_TEST_CACHE (default /var/cache/provision-test), so
# rebuilding the images after they were removed takes seconds; vm-docker is cached there too
# (`docker save`, keyed by the Dockerfiles), so it is built from the mirror once. Idempotent:
# existing images are kept (FRESH_VM_REBUILD=1 rebuilds them from the cached rootfs).
#
# Usage: DOCKER_HOST=unix:///… scripts/fresh-vm-image.sh   (default: the tests' shared engine)
# Needs: debootstrap (scripts/deps.sh), a Debian mirror (FRESH_VM_MIRROR, default deb.debian.org).
set -euo pipefail
export DOCKER_HOST=${DOCKER_HOST:-unix:///tmp/provision-test-docker/docker.sock}
cache=${PROVISION_TEST_CACHE:-/var/cache/provision-test}
mirror=${FRESH_VM_MIRROR:-http://deb.debian.org/debian}
minbase=provision-fresh/minbase:bookworm
bare=provision-fresh/bare:bookworm
vm=provision-fresh/vm:bookworm
vmd=provision-fresh/vm-docker:bookworm

have() { [ "${FRESH_VM_REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
all_there() { have "$minbase" && have "$bare" && have "$vm" && have "$vmd"; }
if all_there; then exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9   # parallel test binaries build once
if all_there; then exit 0; fi

tarball="$cache/bookworm-minbase.tar"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is required (scripts/deps.sh)" >&2; exit 1; }
  rootfs="$cache/rootfs.tmp"
  rm -rf "$rootfs"
  echo "fresh-vm: debootstrap bookworm minbase (once; cached in $tarball)" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
fi
have "$minbase" || docker import -c 'CMD ["/bin/bash"]' "$tarball" "$minbase" >/dev/null

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cat >"$build/entrypoint" <<'EOF'
#!/bin/sh
# sshd as PID 1 (no init system): a host key of its own for every container.
set -e
ssh-keygen -A >/dev/null
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
EOF
chmod 755 "$build/entrypoint"

cat >"$build/Dockerfile.bare" <<EOF
FROM $minbase
ENV DEBIAN_FRONTEND=noninteractive
# Test-only speed-up, invisible to provision: dpkg without fsync (apt inside the target
# dominates the test's wall time).
RUN echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/provision-test-unsafe-io \\
 && apt-get update -q \\
 && apt-get install -y -q --no-install-recommends openssh-server sudo ca-certificates \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /etc/ssh/ssh_host_* \\
 && useradd -m -s /bin/bash admin \\
 && echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-admin && chmod 440 /etc/sudoers.d/90-admin \\
 && printf 'AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/test-keys/authorized_keys\nUseDNS no\nPasswordAuthentication no\n' > /etc/ssh/sshd_config.d/provision-test.conf
COPY entrypoint /usr/local/sbin/fresh-vm-entrypoint
EXPOSE 22
CMD ["/usr/local/sbin/fresh-vm-entrypoint"]
EOF

cat >"$build/Dockerfile.vm" <<EOF
FROM $bare
ENV container=docker
RUN apt-get update -q \\
 && apt-get install -y -q --no-install-recommends systemd systemd-sysv dbus \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \\
 && mkdir -p /etc/systemd/system/ssh.service.d \\
 && printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' > /etc/systemd/system/ssh.service.d/hostkeys.conf \\
 && systemctl enable ssh \\
 && systemctl mask getty@tty1.service console-getty.service systemd-logind.service \\
 && mkdir -p /etc/systemd/system.conf.d /etc/systemd/system/docker.service.d /etc/systemd/system/containerd.service.d \\
 && printf '[Manager]\nDefaultLimitNOFILE=1024:20000\n' > /etc/systemd/system.conf.d/limits.conf \\
 && for u in docker containerd; do printf '[Service]\nLimitNOFILE=20000\nLimitNPROC=\nLimitCORE=\n' > /etc/systemd/system/\$u.service.d/limits.conf; done
# ^ a quirk of the sandboxes these tests run in: the hard RLIMIT_NOFILE is 20000 and cannot be
#   raised, so units asking for more (docker, containerd) would fail with 205/LIMITS. Harmless
#   elsewhere.
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF

cat >"$build/Dockerfile.vm-docker" <<EOF
FROM $vm
# What a Docker-preinstalled cloud image has: the engine enabled at boot, the login user not in
# the docker group (provision's docker_install adds it).
RUN apt-get update -q \\
 && apt-get install -y -q --no-install-recommends docker.io \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \\
 && systemctl enable docker.service containerd.service
EOF

b() { docker build -q -t "$1" -f "$2" "$build" >/dev/null 2>"$build/err" || { cat "$build/err" >&2; exit 1; }; }
have "$bare" || b "$bare" "$build/Dockerfile.bare"
have "$vm" || b "$vm" "$build/Dockerfile.vm"
# vm-docker from its cached archive while the Dockerfiles (and so the image) are the same.
key=$(cat "$build"/Dockerfile.* | sha256sum | cut -c1-16)
archive="$cache/vm-docker-$key.tar"
if ! have "$vmd"; then
  if [ -s "$archive" ] && docker load -q -i "$archive" >/dev/null && have "$vmd"; then
    echo "fresh-vm: $vmd loaded from $archive" >&2
  else
    echo "fresh-vm: building $vmd (apt docker.io, once; cached in $archive)" >&2
    b "$vmd" "$build/Dockerfile.vm-docker"
    rm -f "$cache"/vm-docker-*.tar
    docker save -o "$archive.tmp" "$vmd" && mv "$archive.tmp" "$archive"
  fi
fi
echo "fresh-vm: ready: $minbase, $bare, $vm, $vmd" >&2
