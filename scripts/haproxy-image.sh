#!/usr/bin/env bash
# Builds provision-local/haproxy:1 without any registry: Debian's HAProxy and the libraries it
# loads (scripts/deb-image.sh), run in master-worker mode so `docker kill -s USR2` reloads it
# gracefully. The config is mounted at /etc/haproxy/haproxy.cfg. A load balancer with active
# health checks, for a start-first `docker_run` with `proxy.lb` behind it.
#
# Usage: DOCKER_HOST=unix:///… scripts/haproxy-image.sh   (idempotent)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Debian links HAProxy against OpenTracing, which a controller rarely has installed.
DEB_LIBS="libopentracing-c-wrapper0 libopentracing1" exec "$here/deb-image.sh" provision-local/haproxy:1 haproxy /usr/sbin/haproxy \
  /etc/haproxy /var/lib/haproxy <<'DOCKERFILE'
RUN echo 'haproxy:x:101:101:haproxy:/var/lib/haproxy:/bin/false' >> /etc/passwd \
 && echo 'haproxy:x:101:' >> /etc/group
EXPOSE 80
STOPSIGNAL SIGUSR1
CMD ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
DOCKERFILE
