#!/usr/bin/env bash
# Builds the one static binary provision ships: x86_64 Linux, glibc linked in statically
# (`crt-static`; this toolchain has no musl target and Debian ships no musl std), plus its
# SHA-256 checksum, into dist/:
#   dist/provision-<version>-x86_64-linux        (static-pie; `file` says "static-pie linked")
#   dist/provision-<version>-x86_64-linux.sha256 (`sha256sum -c` format)
#
#   scripts/dist.sh                 the release build (lto, stripped; ~10 min and ~8 GB RAM
#                                   on 2 cores from scratch: the EC2 SDK is most of it)
#   PROFILE=dev scripts/dist.sh     the same link over the test build's dependencies, in
#                                   seconds (the slow test group runs this one on a fresh VM)
#   OUT=dir                         somewhere else than dist/
#
# Why `cargo rustc … -- -C target-feature=+crt-static` rather than RUSTFLAGS: the flag then
# reaches only the final link of the binary, so every dependency built for `cargo build`/`cargo
# test` is reused as it is, and build scripts and proc-macros (which cannot be static) are not
# touched. provision resolves names with getaddrinfo and reads only $HOME and $USER (never
# getpwnam), so static glibc's NSS caveat is limited to hosts: glibc 2.34+ has `files` and `dns`
# built in; an exotic nsswitch `hosts:` source (mdns, LDAP) needs the same glibc at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
out=${OUT:-dist}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
case "$profile" in
  release) dir=target/release ;;
  dev) dir=target/debug ;;
  *) dir=target/$profile ;;
esac

cargo rustc --locked --profile "$profile" --bin provision -- -C target-feature=+crt-static
bin="$out/provision-$version-x86_64-linux"
mkdir -p "$out"
cp "$dir/provision" "$bin.tmp"
mv "$bin.tmp" "$bin"
# Refuse to ship a binary that is not static after all (e.g. a dependency forced a dylib).
if ! file -b "$bin" | grep -Eq 'static(-pie)? linked'; then
  echo "dist: $bin is not statically linked: $(file -b "$bin")" >&2
  exit 1
fi
(cd "$out" && sha256sum "$(basename "$bin")" >"$(basename "$bin").sha256")
echo "dist: $bin ($(du -h "$bin" | cut -f1), $(file -b "$bin" | cut -d, -f1-4))"
echo "dist: sha256 $(cut -d' ' -f1 "$bin.sha256")"
