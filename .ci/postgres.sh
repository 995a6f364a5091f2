# Sourced by .ci/run: a throwaway PostgreSQL on a free loopback port for the state-store tests.
# Installs Debian's package when no server is on the machine. Best effort: without it the state
# tests run on SQLite alone, and this says so loudly.

_ordersync_pg_start() {
  local bin data port as
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    command -v apt-get >/dev/null || return 1
    echo "installing PostgreSQL from Debian's packages..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || return 1
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$bin" ] || return 1
  fi
  data=$(mktemp -d /tmp/ordersync-pg.XXXXXX)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || return 1
    chown postgres "$data"
    as() { su postgres -s /bin/sh -c "$1"; }
  else
    as() { sh -c "$1"; }
  fi
  as "'$bin/initdb' -D '$data/db' -A trust -U postgres" >/dev/null || return 1
  as "'$bin/pg_ctl' -D '$data/db' -w -l '$data/log' -o \"-p $port -k '$data' -c listen_addresses=127.0.0.1\" start" \
    >/dev/null || return 1
  ORDERSYNC_PG_STOP="'$bin/pg_ctl' -D '$data/db' -m fast stop"
  ORDERSYNC_PG_AS_ROOT=$([ "$(id -u)" = 0 ] && echo 1 || echo 0)
  "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE ordersync_test" >/dev/null || return 1
  export ORDERSYNC_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/ordersync_test"
  echo "PostgreSQL for the state tests: 127.0.0.1:$port" >&2
}

_ordersync_pg_stop() {
  [ -n "${ORDERSYNC_PG_STOP:-}" ] || return 0
  if [ "${ORDERSYNC_PG_AS_ROOT:-0}" = 1 ]; then
    su postgres -s /bin/sh -c "$ORDERSYNC_PG_STOP" >/dev/null 2>&1 || true
  else
    sh -c "$ORDERSYNC_PG_STOP" >/dev/null 2>&1 || true
  fi
}

if ! _ordersync_pg_start; then
  echo "WARNING: no PostgreSQL could be started; the state-store tests run on SQLite only." >&2
fi
trap _ordersync_pg_stop EXIT
