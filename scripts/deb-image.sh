#!/usr/bin/env bash
# Builds a small image around one binary of a Debian package, without any registry: the
# package's .deb (`apt-get download`, cached in $PROVISION_TEST_CACHE/debs), its binary and the
# libraries it loads, on top of provision-local/base:1 (scripts/base-images.sh). The rest of
# the Dockerfile (user lines, CMD, STOPSIGNAL) comes on stdin.
#
# Usage: DOCKER_HOST=… [DEB_LIBS="pkg…"] scripts/deb-image.sh IMAGE PACKAGE BINARY [DIR...] < tail
#   (idempotent: an existing IMAGE is kept; DIRs are created empty in the image; DEB_LIBS are
#   library packages the controller lacks, downloaded and extracted beside the binary)
set -euo pipefail
image=$1 package=$2 binary=$3
shift 3
tail=$(cat)
docker image inspect "$image" >/dev/null 2>&1 && exit 0
here=$(cd "$(dirname "$0")" && pwd)
"$here/base-images.sh" >/dev/null
cache=${PROVISION_TEST_CACHE:-/var/cache/provision-test}/debs
mkdir -p "$cache"
exec 9>"$cache/$package.lock"
flock 9
docker image inspect "$image" >/dev/null 2>&1 && exit 0
# The cached .deb of a package, downloaded once.
cached_deb() {
  local deb
  deb=$(ls "$cache/$1"_*_amd64.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    (cd "$cache" && apt-get download "$1" >/dev/null 2>&1) || { echo "apt-get download $1 failed" >&2; return 1; }
    deb=$(ls "$cache/$1"_*_amd64.deb | head -1)
  fi
  echo "$deb"
}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
for p in "$package" ${DEB_LIBS:-}; do dpkg-deb -x "$(cached_deb "$p")" "$ctx/deb"; done
mkdir -p "$ctx/root$(dirname "$binary")"
cp "$ctx/deb$binary" "$ctx/root$binary"
if LD_LIBRARY_PATH="$ctx/deb/usr/lib/x86_64-linux-gnu" ldd "$ctx/deb$binary" | grep 'not found' >&2; then
  echo "$binary needs libraries this machine lacks: add their packages to DEB_LIBS" >&2; exit 1
fi
LD_LIBRARY_PATH="$ctx/deb/usr/lib/x86_64-linux-gnu" ldd "$ctx/deb$binary" | grep -o '/[^ ]*' | while read -r lib; do
  dest=${lib#"$ctx/deb"}  # a library from DEB_LIBS goes where its package puts it
  mkdir -p "$ctx/root$(dirname "$dest")"; cp -L "$lib" "$ctx/root$dest"
done
mkdir -p "$ctx/root/run"
for d in "$@"; do mkdir -p "$ctx/root$d"; done
{
  echo 'FROM provision-local/base:1'
  echo 'COPY root/ /'
  echo 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  printf '%s\n' "$tail"
} > "$ctx/Dockerfile"
docker build -q -t "$image" "$ctx" >/dev/null 2>"$ctx/err" || { cat "$ctx/err" >&2; exit 1; }
echo "built $image"
