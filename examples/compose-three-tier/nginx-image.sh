#!/usr/bin/env bash
# Builds provision-local/nginx:1 without any registry: Debian's nginx binary and the libraries
# it loads (scripts/deb-image.sh). Where Docker Hub is reachable, use the official image
# instead (vars.nginx_image = "nginx:1.25").
#
# Usage: DOCKER_HOST=unix:///… examples/compose-three-tier/nginx-image.sh   (idempotent)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../scripts/deb-image.sh" provision-local/nginx:1 nginx /usr/sbin/nginx \
  /var/lib/nginx /var/log/nginx /etc/nginx <<'DOCKERFILE'
RUN echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >> /etc/passwd \
 && echo 'nogroup:x:65534:' >> /etc/group
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["/usr/sbin/nginx", "-g", "daemon off;"]
DOCKERFILE
