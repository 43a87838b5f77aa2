#!/usr/bin/env bash
# Builds provision-local/nginx:1 without any registry: Debian's nginx binary (`apt-get download
# nginx`, cached in $PROVISION_TEST_CACHE) and the libraries it loads, on top of
# provision-local/base:1 (scripts/base-images.sh). Where Docker Hub is reachable, use the
# official image instead (vars.nginx_image = "nginx:1.25").
#
# Usage: DOCKER_HOST=unix:///… examples/compose-three-tier/nginx-image.sh   (idempotent)
set -euo pipefail
image=provision-local/nginx:1
docker image inspect "$image" >/dev/null 2>&1 && exit 0
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../scripts/base-images.sh" >/dev/null
cache=${PROVISION_TEST_CACHE:-/var/cache/provision-test}/debs
mkdir -p "$cache"
exec 9>"$cache/nginx.lock"
flock 9
docker image inspect "$image" >/dev/null 2>&1 && exit 0
deb=$(ls "$cache"/nginx_*_amd64.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  (cd "$cache" && apt-get download nginx >/dev/null 2>&1) || { echo "apt-get download nginx failed" >&2; exit 1; }
  deb=$(ls "$cache"/nginx_*_amd64.deb | head -1)
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
dpkg-deb -x "$deb" "$ctx/deb"
mkdir -p "$ctx/root/usr/sbin"
cp "$ctx/deb/usr/sbin/nginx" "$ctx/root/usr/sbin/nginx"
ldd "$ctx/deb/usr/sbin/nginx" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$ctx/root$(dirname "$lib")"; cp -L "$lib" "$ctx/root$lib"
done
mkdir -p "$ctx/root/var/lib/nginx" "$ctx/root/var/log/nginx" "$ctx/root/etc/nginx" "$ctx/root/run"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM provision-local/base:1
COPY root/ /
RUN echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >> /etc/passwd \
 && echo 'nogroup:x:65534:' >> /etc/group
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["/usr/sbin/nginx", "-g", "daemon off;"]
DOCKERFILE
docker build -q -t "$image" "$ctx" >/dev/null 2>"$ctx/err" || { cat "$ctx/err" >&2; exit 1; }
echo "built $image"
