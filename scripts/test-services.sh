#!/usr/bin/env bash
# Make sure the real Postgres and Redis the tests talk to are up, and create a fresh test database.
set -euo pipefail

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(pg_lsclusters -h | awk '{print $1}' | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

# The dashboard's browser test drives Debian's chromium through Playwright (never `playwright install`).
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

db_url="${GRIN_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/grin_test}"
db_name="${db_url##*/}"
psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" -c "CREATE DATABASE \"$db_name\""
echo "Postgres and Redis ready; fresh database $db_name"
