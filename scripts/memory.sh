#!/usr/bin/env bash
# Resident memory of a release build: right after start-up and one login (idle), the peak during a burst of
# concurrent logins (production Argon2id: 19 MiB each), and what is resident once the burst is over. Reads
# VmRSS and VmHWM from /proc. Fresh SQLite database in a temporary folder.
#
#   scripts/memory.sh                          # 16 logins at once, three bursts
#   LOGINS=64 BURSTS=5 BINARY=/tmp/latchkey-old scripts/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LOGINS=${LOGINS:-16}
BURSTS=${BURSTS:-3}
PORT=${PORT:-18090}
B="http://127.0.0.1:$PORT"
PASSWORD="correct horse battery staple plume"
BINARY=${BINARY:-./target/release/latchkey}
[ "$BINARY" = ./target/release/latchkey ] && cargo build --release --quiet

work=$(mktemp -d)
LATCHKEY_BIND="127.0.0.1:$PORT" LATCHKEY_DATABASE_URL="sqlite://$work/memory.db" LATCHKEY_KEY_FILE="$work/latchkey.key" \
  LATCHKEY_RATE_LIMIT_PER_MINUTE=0 RUST_LOG=warn "$BINARY" serve &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.2; done

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$server/status"; }
mib() { awk -v n="$1" 'BEGIN { printf "%.1f MiB", n / 1024 }'; }
login() {
  curl -s -o /dev/null -w '%{http_code}\n' "$B/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"mem$1@example.com\",\"password\":\"$PASSWORD\"}"
}

echo "after start-up: $(mib "$(kib VmRSS)")"
for i in $(seq 0 $((LOGINS - 1))); do
  curl -sf -o /dev/null "$B/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"mem$i@example.com\",\"password\":\"$PASSWORD\"}"
done
# The registrations hashed one password at a time; the peak so far is the idle state's.
login 0 >/dev/null
sleep 1
echo "idle (after start-up, $LOGINS registrations and one login): $(mib "$(kib VmRSS)"), peak so far $(mib "$(kib VmHWM)")"
for burst in $(seq 1 "$BURSTS"); do
  codes=$(for i in $(seq 0 $((LOGINS - 1))); do login "$i" & done; wait)
  ok=$(grep -c '^200$' <<<"$codes" || true)
  sleep 1
  echo "burst $burst: $LOGINS logins at once ($ok answered 200): peak $(mib "$(kib VmHWM)"), after $(mib "$(kib VmRSS)")"
done
