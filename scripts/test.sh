#!/usr/bin/env bash
# make test: run the suite with a real PostgreSQL for the CRM sink tests.
# Uses EXPANSION_TEST_POSTGRES_URL when given, else a server already answering on
# 127.0.0.1:5432, else installs Debian's postgresql and starts a throwaway cluster on
# loopback in a temporary folder, stopped when the run ends (EXPANSION_TEST_THROWAWAY_PG=1
# forces the throwaway server even when one answers). Installs Debian's chromium for the browser
# tests when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export MLFLOW_DISABLE_TELEMETRY=true
export SPARK_LOCAL_IP=127.0.0.1
PG_TMP=""

cleanup() {
  if [ -n "$PG_TMP" ]; then
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $PG_TMP/data -m immediate stop" >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
trap cleanup EXIT

pg_answers() { "$BIN/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1].replace("postgresql+psycopg", "postgresql"), connect_timeout=3).close()
PY
}

start_throwaway_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "test.sh: installing PostgreSQL (Debian package) for the sink tests" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  PG_TMP=$(mktemp -d /tmp/expansion-pg.XXXXXX)
  chown postgres "$PG_TMP"
  local port
  port=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  su postgres -s /bin/sh -c "$PG_BIN/initdb -D $PG_TMP/data -A trust -U postgres" >/dev/null
  su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $PG_TMP/data -l $PG_TMP/log -w -o '-p $port -k $PG_TMP -c listen_addresses=127.0.0.1' start" >/dev/null
  su postgres -s /bin/sh -c "$PG_BIN/createdb -h 127.0.0.1 -p $port -U postgres test"
  export EXPANSION_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/test"
  echo "test.sh: throwaway PostgreSQL on 127.0.0.1:$port" >&2
}

if [ -z "${EXPANSION_TEST_POSTGRES_URL:-}" ]; then
  if [ -z "${EXPANSION_TEST_THROWAWAY_PG:-}" ] && pg_answers "postgresql://postgres@127.0.0.1:5432/test"; then
    export EXPANSION_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
  else
    start_throwaway_postgres
  fi
fi

# the browser tests drive Debian's chromium through Playwright (no browser download)
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing chromium (Debian package) for the browser tests" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# two workers (the CI machine's cores), whole files per worker so module fixtures are built
# once: one worker took 17 minutes, over the 15-minute budget. EXPANSION_TEST_WORKERS=0 runs
# in one process. The slowest tests are listed so a creeping suite shows in the CI log.
"$BIN/python" -m pytest -n "${EXPANSION_TEST_WORKERS:-2}" --dist loadfile --durations=15 "$@"
