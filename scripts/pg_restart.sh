#!/usr/bin/env bash
# Fault test: PostgreSQL restarted under load. Registers users in a loop while PostgreSQL is restarted,
# then checks that every answer was 201 or 503 `unavailable` (never another 5xx), that the server
# recovered by itself, and that every registration answered 201 is in the database.
# Needs a local PostgreSQL it may restart (pg_ctlcluster) and psql; run it on a development machine, not CI.
set -euo pipefail
cd "$(dirname "$0")/.."

export PGUSER=postgres
PORT=${PORT:-18082}
B="http://127.0.0.1:$PORT/api/v1"
DB="latchkey_faults_$$"
cargo build --quiet
psql -h 127.0.0.1 -d postgres -qc "CREATE DATABASE $DB"
work=$(mktemp -d)
LATCHKEY_BIND="127.0.0.1:$PORT" LATCHKEY_DATABASE_URL="postgres://postgres@127.0.0.1/$DB" \
  LATCHKEY_KEY_FILE="$work/key" LATCHKEY_RATE_LIMIT_PER_MINUTE=0 LATCHKEY_ARGON2_MEMORY_KIB=1024 LATCHKEY_ARGON2_ITERATIONS=1 \
  RUST_LOG=warn ./target/debug/latchkey serve >"$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill $server 2>/dev/null || true
  wait $server 2>/dev/null || true
  pg_isready -h 127.0.0.1 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done

register_loop() {
  local i=0
  while [ ! -f "$work/stop" ]; do
    i=$((i + 1))
    code=$(curl -s -o "$work/body$1" -w '%{http_code}' "$B/auth/register" -H 'content-type: application/json' \
      -d "{\"email\":\"f$1-$i@example.com\",\"password\":\"correct horse battery staple plume\"}")
    echo "$1-$i $code $(head -c 120 "$work/body$1")" >>"$work/answers"
  done
}
loops=()
for n in 1 2 3 4; do
  register_loop "$n" &
  loops+=($!)
done
sleep 2
echo "== restarting PostgreSQL"
pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main stop -m fast
sleep 3
echo "   /readyz while it is down: $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$PORT/readyz")"
pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
sleep 4
touch "$work/stop"
wait "${loops[@]}"

total=$(wc -l <"$work/answers")
created=$(awk '$2 == 201' "$work/answers" | wc -l)
unavailable=$(grep -c '"error":"unavailable"' "$work/answers" || true)
other=$(awk '$2 != 201 && $2 != 503' "$work/answers" | wc -l)
stored=$(psql -h 127.0.0.1 -d "$DB" -Atc "SELECT count(*) FROM users")
lost=0
for i in $(awk '$2 == 201 {print $1}' "$work/answers"); do
  [ "$(psql -h 127.0.0.1 -d "$DB" -Atc "SELECT count(*) FROM users WHERE email = 'f$i@example.com'")" = 1 ] || lost=$((lost + 1))
done
echo "requests: $total; 201: $created; 503 unavailable: $unavailable; other answers: $other"
echo "users in the database: $stored; registrations answered 201 but missing: $lost"
echo "last answer: $(tail -n 1 "$work/answers")"
[ "$other" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$(tail -n 1 "$work/answers" | awk '{print $2}')" = 201 ]
echo "PASS: clean 503s while down, recovered by itself, nothing committed was lost"
