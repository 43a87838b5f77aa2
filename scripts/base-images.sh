#!/usr/bin/env bash
# Builds the local images the example app and the Docker tests use, without any registry:
# `docker import` of a root filesystem assembled from this machine's own binaries (Debian's
# busybox-static and postgresql packages) and the shared libraries they load.
#
#   provision-local/base:1       busybox (sh, httpd, wget, nc…), psql, pg_isready, and a
#                                PostgreSQL server; the example app builds FROM it
#   provision-local/postgres:15  the same, starting /usr/local/bin/pg-entrypoint, which
#                                honours POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB
#
# Usage: DOCKER_HOST=unix:///… scripts/base-images.sh     (idempotent: skips what exists)
set -euo pipefail
image=provision-local/base:1
pg=provision-local/postgres:15
if docker image inspect "$image" >/dev/null 2>&1 && docker image inspect "$pg" >/dev/null 2>&1; then exit 0; fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgver=$(basename "$(dirname "$pgbin")")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

copy() { # copy a file keeping its path, plus the libraries it loads
  local f=$1
  mkdir -p "$root$(dirname "$f")"
  cp -L "$f" "$root$f"
  ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
    [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
  done
}

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,etc,var/run/postgresql,var/lib/postgresql,usr/local/bin,root}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done
for b in postgres initdb pg_ctl pg_isready psql; do copy "$pgbin/$b"; done
for b in postgres initdb pg_ctl pg_isready psql; do ln -sf "$pgbin/$b" "$root/usr/bin/$b"; done
mkdir -p "$root/usr/lib/postgresql/$pgver" "$root/usr/share/postgresql"
cp -a "/usr/lib/postgresql/$pgver/lib" "$root/usr/lib/postgresql/$pgver/"
cp -a "/usr/share/postgresql/$pgver" "$root/usr/share/postgresql/"
# initdb needs timezone data and a locale-independent setup.
[ -d /usr/share/zoneinfo ] && mkdir -p "$root/usr/share" && cp -a /usr/share/zoneinfo "$root/usr/share/"
printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\napp:x:1000:\n' > "$root/etc/group"
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
chown -R 999:999 "$root/var/run/postgresql" "$root/var/lib/postgresql"

cat > "$root/usr/local/bin/pg-entrypoint" <<'SH'
#!/bin/sh
# Start PostgreSQL like the official image: initialise the data dir on first start with
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, then run the server in the foreground.
set -e
PGDATA=${PGDATA:-/var/lib/postgresql/data}
mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" /var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" > /tmp/pwfile
  chown postgres /tmp/pwfile
  su postgres -s /bin/sh -c "initdb -D '$PGDATA' -U '${POSTGRES_USER:-postgres}' --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >/dev/null"
  rm -f /tmp/pwfile
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  db=${POSTGRES_DB:-${POSTGRES_USER:-postgres}}
  if [ "$db" != postgres ]; then
    # A private socket dir, so readiness checks do not see this temporary server.
    mkdir -p /tmp/pginit && chown postgres /tmp/pginit
    su postgres -s /bin/sh -c "pg_ctl -D '$PGDATA' -o \"-c listen_addresses='' -k /tmp/pginit\" -w start" >/dev/null
    su postgres -s /bin/sh -c "psql -h /tmp/pginit -U '${POSTGRES_USER:-postgres}' -d postgres -c 'CREATE DATABASE \"$db\"'" >/dev/null
    su postgres -s /bin/sh -c "pg_ctl -D '$PGDATA' -m fast -w stop" >/dev/null
  fi
fi
exec su postgres -s /bin/sh -c "exec postgres -D '$PGDATA' -c listen_addresses='*'"
SH
chmod 755 "$root/usr/local/bin/pg-entrypoint"
docker image inspect "$image" >/dev/null 2>&1 ||
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
printf 'FROM %s\nEXPOSE 5432\nCMD ["/usr/local/bin/pg-entrypoint"]\n' "$image" | docker build -q -t "$pg" - >/dev/null
echo "built $image and $pg"
