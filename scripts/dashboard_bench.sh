#!/usr/bin/env bash
# The admin dashboard on a database with a million audit events (issue 17): seeds 1,000,000 events over
# 30 days (sign-ins, failures, locks and other actions), then times GET /admin as a signed-in admin.
# SQLite by default; PG=1 uses a fresh database on the local PostgreSQL. Needs a built binary
# (BINARY, default target-rel/release/latchkey), sqlite3 or psql, and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=${BINARY:-target-rel/release/latchkey}
PORT=${PORT:-18093}
ROWS=${ROWS:-1000000}
work=$(mktemp -d)
export PGUSER=postgres
if [ "${PG:-0}" = 1 ]; then
  DB="latchkey_dash_$$"
  psql -h 127.0.0.1 -d postgres -qc "CREATE DATABASE $DB"
  export LATCHKEY_DATABASE_URL="postgres://postgres@127.0.0.1/$DB"
  sql() { psql -h 127.0.0.1 -d "$DB" -qc "$1"; }
else
  export LATCHKEY_DATABASE_URL="sqlite://$work/latchkey.db"
  sql() { sqlite3 "$work/latchkey.db" "$1"; }
fi
export LATCHKEY_BIND="127.0.0.1:$PORT" LATCHKEY_ISSUER="http://127.0.0.1:$PORT" LATCHKEY_KEY_FILE="$work/key"
export LATCHKEY_ADMIN_REQUIRE_MFA=false RUST_LOG=warn
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  [ "${PG:-0}" = 1 ] && psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT

"$BINARY" migrate >/dev/null
echo 'a dashboard benchmark passphrase' | "$BINARY" user create --email admin@example.com --role admin >/dev/null
now_ms=$(($(date +%s) * 1000))
started=$(date +%s.%N)
# Spread over 30 days; one event in ten is a failure, one in a hundred a lock, the rest other actions.
sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS)
     INSERT INTO audit_events (id, at, user_id, action, outcome, ip, user_agent, detail)
     SELECT 'seed-' || i, $now_ms - (i * 2592000000 / $ROWS), NULL,
            CASE WHEN i % 100 = 0 THEN 'account_locked' WHEN i % 10 = 0 THEN 'login_failed'
                 WHEN i % 3 = 0 THEN 'login' ELSE 'token_refreshed' END,
            'success', '192.0.2.1', NULL, '{}' FROM n"
[ "${PG:-0}" = 1 ] && sql "ANALYZE audit_events" || sql "ANALYZE"
echo "seeded $ROWS events in $(echo "$(date +%s.%N) - $started" | bc) s"

"$BINARY" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
jar="$work/cookies"
csrf=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$PORT/login" | grep -o 'name="csrf" value="[^"]*"' | head -1 | cut -d'"' -f4)
curl -s -c "$jar" -b "$jar" -o /dev/null --data-urlencode "csrf=$csrf" --data-urlencode "username=admin@example.com" \
  --data-urlencode "password=a dashboard benchmark passphrase" "http://127.0.0.1:$PORT/login"
for n in 1 2 3 4 5 6; do
  curl -s -b "$jar" -o "$work/admin.html" -w "GET /admin #$n: %{http_code} in %{time_total} s\n" "http://127.0.0.1:$PORT/admin"
done
grep -o '<dt>[^<]*</dt><dd>[0-9]*</dd>' "$work/admin.html" | sed 's/<[^>]*>/ /g' | tr -s ' '
