#!/usr/bin/env bash
# Latchkey beside oidc-provider (the OpenID-certified Node provider, pinned in scripts/peer/package.json) on the
# same machine in one go, for two machine-to-machine operations:
#   cc          POST token endpoint, grant_type=client_credentials, client_secret_basic, RS256 JWT access token
#   introspect  POST introspection endpoint (RFC 7662) with a live access token, Basic auth of a resource server
# plus Latchkey's GET /healthz in the same run, as the floor of what this machine serves. Latchkey goes first
# (scripts/load.sh with RUNS="healthz cc introspect"; its server stops when that ends), then oidc-provider
# alone, with the same wrk script (scripts/form_post.lua), one wrk thread, the same connections and duration.
# Every answer is checked (status 200 and the expected body); any failure makes the script exit 1.
#
#   scripts/peer-bench.sh                         # 64 connections, 20 s per run, builds target/release
#   BINARY=target-rel/release/latchkey DURATION=10s scripts/peer-bench.sh
#
# Requires wrk (apt-get install -y wrk) and Node 20 with npm (the first run does `npm ci` in scripts/peer).
#
# What differs between the two, by design or by necessity:
# - oidc-provider keeps its state in its in-memory adapter (no database); Latchkey uses SQLite, reads a client
#   at most every 5 s and writes its last use (with an audit row) once a minute for client-credentials tokens.
# - oidc-provider runs one Node process (one core for JavaScript); Latchkey's runtime uses both cores. wrk
#   takes one core in both cases.
# - oidc-provider does not store JWT access tokens, so its introspection answers {"active": false} for them
#   (the script shows it). Its introspection run uses an opaque client-credentials token of the same client,
#   found in memory; Latchkey's run introspects its RS256 JWT (signature check, answered from memory).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
PEER_PORT=${PEER_PORT:-18090}
BINARY=${BINARY:-./target/release/latchkey}
export DURATION CONNECTIONS PORT BINARY

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
command -v node >/dev/null || { echo "node (20) is needed" >&2; exit 1; }
[ -d scripts/peer/node_modules/oidc-provider ] || (cd scripts/peer && npm ci --no-audit --no-fund)
peer_version=$(node -p "require('./scripts/peer/node_modules/oidc-provider/package.json').version")

work=$(mktemp -d)
peer=
trap '[ -n "$peer" ] && { kill "$peer" 2>/dev/null; wait "$peer" 2>/dev/null; }; rm -rf "$work"' EXIT

echo "######## Latchkey ($BINARY): GET /healthz, client_credentials, introspection"
RUNS="healthz cc introspect" scripts/load.sh 2>&1 | tee "$work/latchkey.txt"

# load.sh's sections, by their headings, one file each for the table.
awk -v dir="$work" '
  /^== GET \/healthz/ { out = dir "/lk_healthz" }
  /^== POST \/oauth2\/token grant_type=client_credentials/ { out = dir "/lk_cc" }
  /^== POST \/oauth2\/introspect/ { out = dir "/lk_introspect" }
  /^== machine/ { out = "" }
  out != "" { print > out }
' "$work/latchkey.txt"

echo
echo "######## oidc-provider $peer_version on Node $(node --version): client_credentials, introspection"
secret() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }
cc_secret=$(secret)
rs_secret=$(secret)
P="http://127.0.0.1:$PEER_PORT"
NODE_ENV=production PORT=$PEER_PORT CC_CLIENT_ID=bench CC_CLIENT_SECRET="$cc_secret" \
  RS_CLIENT_ID=rs RS_CLIENT_SECRET="$rs_secret" node scripts/peer/provider.mjs >"$work/peer.log" 2>&1 &
peer=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "$P/.well-known/openid-configuration" && break; sleep 0.2; done
curl -sf -o /dev/null "$P/.well-known/openid-configuration" || { cat "$work/peer.log" >&2; exit 1; }

cc_basic=$(printf 'bench:%s' "$cc_secret" | base64 -w0)
rs_basic=$(printf 'rs:%s' "$rs_secret" | base64 -w0)
token_of() { sed -nE 's/.*"access_token":"([^"]+)".*/\1/p'; }
jwt=$(curl -sf -H "Authorization: Basic $cc_basic" "$P/token" -d grant_type=client_credentials -d scope=api:read | token_of)
opaque=$(curl -sf -H "Authorization: Basic $cc_basic" "$P/token" -d grant_type=client_credentials -d scope=api:read \
  -d resource=urn:latchkey-bench:opaque | token_of)
[ -n "$jwt" ] && [ -n "$opaque" ] || { echo "oidc-provider gave no client_credentials token" >&2; cat "$work/peer.log" >&2; exit 1; }
b64url_decode() { local s; s=$(tr '_-' '/+'); while [ $(( ${#s} % 4 )) != 0 ]; do s="$s="; done; echo "$s" | base64 -d; }
echo "-- its client_credentials access token's header: $(echo "$jwt" | cut -d. -f1 | b64url_decode)"
echo "-- introspection of that JWT: $(curl -s -H "Authorization: Basic $rs_basic" "$P/token/introspection" -d "token=$jwt") (not stored, so not introspectable)"
echo "-- introspection of an opaque one: $(curl -s -H "Authorization: Basic $rs_basic" "$P/token/introspection" -d "token=$opaque")"

echo "== POST /token grant_type=client_credentials (Basic auth, RS256 JWT access token), $CONNECTIONS connections, $DURATION"
FORM_BODY="grant_type=client_credentials&scope=api:read" FORM_BASIC="$cc_basic" FORM_EXPECT='"access_token":"ey' \
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/form_post.lua "$P/token" | tee "$work/op_cc"
echo "== POST /token/introspection of a live opaque client-credentials token (resource server, Basic auth), $CONNECTIONS connections, $DURATION"
FORM_BODY="token=$opaque" FORM_BASIC="$rs_basic" FORM_EXPECT='"active":true' \
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/form_post.lua "$P/token/introspection" | tee "$work/op_introspect"
kill "$peer"; wait "$peer" 2>/dev/null || true; peer=
if grep -qv -e '^oidc-provider listening' -e 'in-memory adapter is used' "$work/peer.log"; then
  echo "-- oidc-provider wrote:"; cat "$work/peer.log"
fi

# The table: wrk's Requests/sec and 99th percentile, and the checks (non-200 from form_post.lua, or wrk's own
# "Non-2xx or 3xx responses" for /healthz; "wrong" = 200 without the expected body; wrk's socket errors).
failed=0
row() { # server, operation, file
  local f=$1/$4 rps p99 non200 wrong sock
  [ -s "$f" ] || { printf '| %s | %s | (no run) | | | | |\n' "$2" "$3"; failed=1; return; }
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
  p99=$(awk '$1 == "99%" { print $2 }' "$f")
  non200=$(sed -nE 's/^checked: answers=[0-9]+ non200=([0-9]+).*/\1/p' "$f")
  wrong=$(sed -nE 's/^checked: .* wrong=([0-9]+).*/\1/p' "$f")
  [ -n "$non200" ] || non200=$(sed -nE 's/.*Non-2xx or 3xx responses: ([0-9]+).*/\1/p' "$f")
  sock=$(sed -nE 's/.*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1 \2 \3 \4/p' "$f" |
    awk '{ print $1 + $2 + $3 + $4 }')
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$3" "${rps:-?}" "${p99:-?}" "${non200:-0}" "${wrong:-n/a}" "${sock:-0}"
  if [ -z "$rps" ] || [ "${non200:-0}" != 0 ] || [ "${wrong:-0}" != 0 ] || [ "${sock:-0}" != 0 ]; then failed=1; fi
}
rate() { awk '/^Requests\/sec:/ { print $2 }' "$work/$1" 2>/dev/null; }
ratio() { awk -v a="$(rate "$1")" -v b="$(rate "$2")" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "?" }'; }

echo
echo "######## summary: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $CONNECTIONS connections, one wrk thread, $DURATION per run"
echo "| server | operation | requests/s | p99 | non-200 | wrong body | socket errors |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row "$work" Latchkey "GET /healthz" lk_healthz
row "$work" Latchkey "client_credentials grant" lk_cc
row "$work" Latchkey "introspection, live JWT" lk_introspect
row "$work" "oidc-provider $peer_version" "client_credentials grant" op_cc
row "$work" "oidc-provider $peer_version" "introspection, live opaque token" op_introspect
echo
echo "Latchkey ÷ oidc-provider: client_credentials $(ratio lk_cc op_cc), introspection $(ratio lk_introspect op_introspect);" \
  "Latchkey's own ÷ /healthz: client_credentials $(ratio lk_cc lk_healthz), introspection $(ratio lk_introspect lk_healthz)"
if [ "$failed" != 0 ]; then
  echo "FAILED: some answers were not the expected 200 (see the checks above); these figures are no measurement." >&2
  exit 1
fi
