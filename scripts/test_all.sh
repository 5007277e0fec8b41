#!/usr/bin/env bash
# The whole test suite: once on SQLite (everything, browser tests included), then once more on a
# private PostgreSQL cluster started here on loopback (every test that touches the database).
# Redis, the SMTP sink and the Mailchimp simulator are started by the pytest fixtures themselves.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=".venv/bin/pytest"
export HOME_FOR_CHROMIUM="$(mktemp -d)"
export XDG_CONFIG_HOME="$HOME_FOR_CHROMIUM" XDG_CACHE_HOME="$HOME_FOR_CHROMIUM"
export TZ=UTC

echo "== pass 1/2: SQLite"
$PYTEST "$@"
sqlite_rc=$?

echo "== pass 2/2: PostgreSQL"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pgdir=$(mktemp -d /tmp/anaba-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = "0" ] && chown postgres "$pgdir"
stop_pg() { as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1; rm -rf "$pgdir"; }
trap stop_pg EXIT
as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$pgdir -c fsync=off -c max_connections=200" start >/dev/null
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres anaba_test
TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/anaba_test" \
  $PYTEST -m "not browser" --ignore=tests/sim "$@"
pg_rc=$?

echo "== SQLite pass exit code: $sqlite_rc; PostgreSQL pass exit code: $pg_rc"
[ $sqlite_rc -eq 0 ] && [ $pg_rc -eq 0 ]
