#!/usr/bin/env bash
# Load test of the HTTP hot paths with wrk (Debian: apt-get install wrk), against a release build on a
# fresh SQLite database with production Argon2id parameters. Prints wrk's own reports. wrk runs one thread
# per run: on a 2-core machine a second wrk thread takes CPU from the server it is measuring.
#
#   scripts/load.sh            # 64 connections, 20 s per run
#   DURATION=10s CONNECTIONS=32 scripts/load.sh
#   BINARY=/tmp/latchkey-old scripts/load.sh
#   RUNS="healthz forward" scripts/load.sh    # some of: me login flood healthz forward oidc_code oidc_refresh
#                                             #          cc introspect
#   scripts/peer-bench.sh                      # healthz cc introspect, then the same against oidc-provider
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
RUNS=${RUNS:-me login flood healthz forward oidc_code oidc_refresh cc introspect}
B="http://127.0.0.1:$PORT"
PASSWORD="correct horse battery staple plume"

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
# BINARY=path measures another build (an older one, to compare on the same machine).
BINARY=${BINARY:-./target/release/latchkey}
[ "$BINARY" = ./target/release/latchkey ] && cargo build --release --quiet
work=$(mktemp -d)
# The per-IP rate limit would refuse all but 60 logins a minute from wrk's one address: off for measuring.
LATCHKEY_BIND="127.0.0.1:$PORT" LATCHKEY_DATABASE_URL="sqlite://$work/load.db" LATCHKEY_KEY_FILE="$work/latchkey.key" \
  LATCHKEY_RATE_LIMIT_PER_MINUTE=0 \
  RUST_LOG=warn "$BINARY" serve &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.2; done

# One account per connection: more sign-ins in flight at once for one identifier than the lockout threshold
# are refused (429 too_many_attempts) without being checked.
for i in $(seq 0 $((CONNECTIONS - 1))); do
  curl -sf "$B/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"load$i@example.com\",\"password\":\"$PASSWORD\"}" >/dev/null
done
token=$(curl -sf "$B/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"load0@example.com\",\"password\":\"$PASSWORD\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

cat > "$work/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = (n + 1) % $CONNECTIONS
  return wrk.format(nil, nil, nil, '{"username":"load' .. n .. '@example.com","password":"$PASSWORD"}')
end
LUA

# A browser's web session, for forward authentication: the sign-in form with its pre-session cookie.
curl -sf -c "$work/jar" "$B/login" >"$work/login.html"
csrf=$(sed -nE 's/.*name="csrf" value="([^"]+)".*/\1/p' "$work/login.html" | head -1)
curl -sf -b "$work/jar" -c "$work/jar" -o /dev/null "$B/login" \
  --data-urlencode "csrf=$csrf" --data-urlencode "username=load0@example.com" --data-urlencode "password=$PASSWORD"
session=$(awk '$6 == "latchkey_session" { print $7 }' "$work/jar")

run() { [[ " $RUNS " == *" $1 "* ]]; }

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if run me; then
  echo "== GET /api/v1/auth/me, $CONNECTIONS connections, $DURATION"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" "$B/api/v1/auth/me"
fi

if run login; then
  echo "== POST /api/v1/auth/login (correct password), $CONNECTIONS connections, $DURATION"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/login.lua" "$B/api/v1/auth/login"
fi

if run flood; then
  echo "== GET /api/v1/auth/me at 64 connections while 64 connections flood POST /auth/login"
  wrk -t1 -c64 -d"$DURATION" -s "$work/login.lua" "$B/api/v1/auth/login" >"$work/flood.txt" &
  flood=$!
  sleep 2
  wrk -t1 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $token" "$B/api/v1/auth/me"
  wait $flood
  echo "-- the login flood meanwhile:"
  cat "$work/flood.txt"
fi

if run healthz; then
  echo "== GET /healthz (the floor forward auth is compared with), $CONNECTIONS connections, $DURATION"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$B/healthz"
fi

if run forward; then
  echo "== GET /api/v1/authz/auth-request with a web session cookie, as nginx asks, $CONNECTIONS connections, $DURATION"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: latchkey_session=$session" \
    -H "X-Original-URL: http://localhost:$PORT/app/page" -H "X-Original-Method: GET" "$B/api/v1/authz/auth-request"
  echo "-- answers: $(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: latchkey_session=$session" \
    -H "X-Original-URL: http://localhost:$PORT/app/page" "$B/api/v1/authz/auth-request") (200 = allowed as load0)"
fi

# OpenID Connect: a confidential client with implicit consent (so no page in the way) and offline_access.
# Each wrk thread counts the token responses that carried what was asked for; done() reports them.
FINISHED_LUA='threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("tokens") end
  print(string.format("completed: %d in %.1f s = %.0f/s", n, summary.duration / 1e6, n / (summary.duration / 1e6)))
end'
if run oidc_code || run oidc_refresh; then
  redirect="http://127.0.0.1:9/cb"
  client=$(LATCHKEY_DATABASE_URL="sqlite://$work/load.db" LATCHKEY_KEY_FILE="$work/latchkey.key" RUST_LOG=warn \
    "$BINARY" client create --name load --redirect-uri "$redirect" --consent implicit)
  client_id=$(echo "$client" | sed -nE 's/.*"client_id": "([^"]+)".*/\1/p')
  secret=$(echo "$client" | sed -nE 's/.*"client_secret": "([^"]+)".*/\1/p')
  basic=$(printf '%s:%s' "$client_id" "$secret" | base64 -w0)
  authorize="/oauth2/authorize?client_id=$client_id&response_type=code&scope=openid%20email%20offline_access&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s&nonce=n"
  code_of() { curl -s -o /dev/null -w '%{redirect_url}' -H "Cookie: latchkey_session=$session" "$B$authorize" | sed -nE 's/.*code=([^&]+).*/\1/p'; }
fi

if run oidc_code; then
  # One flow = GET /oauth2/authorize with a signed-in session (303 with a code), then the code at the token
  # endpoint (RS256 ID token and access token, a refresh token). Each connection alternates the two.
  cat > "$work/code.lua" <<LUA
local codes = {}
tokens = 0
request = function()
  local code = table.remove(codes)
  if code then
    return wrk.format("POST", "/oauth2/token", {["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = "Basic $basic"}, "grant_type=authorization_code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code=" .. code)
  end
  return wrk.format("GET", "$authorize", {["Cookie"] = "latchkey_session=$session"})
end
response = function(status, headers, body)
  local location = headers["location"] or headers["Location"]
  local code = location and location:match("code=([^&]+)")
  if code then table.insert(codes, code) end
  if body:find('"id_token"', 1, true) then tokens = tokens + 1 end
  if status >= 400 then print("error " .. status .. " " .. body) end
end
$FINISHED_LUA
LUA
  echo "== OIDC code flow: GET /oauth2/authorize + POST /oauth2/token (flows/s = requests/s / 2), $CONNECTIONS connections, $DURATION"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/code.lua" "$B"
fi

if run oidc_refresh; then
  # Refresh tokens rotate and a spent one revokes its grant: each is used once, the answer's new one queued.
  seeds=$((CONNECTIONS * 2))
  : >"$work/rts"
  for _ in $(seq 1 "$seeds"); do
    curl -s -H "Authorization: Basic $basic" "$B/oauth2/token" -d "grant_type=authorization_code" \
      --data-urlencode "redirect_uri=$redirect" -d "code=$(code_of)" | grep -o '"refresh_token":"[^"]*"' | cut -d'"' -f4 >>"$work/rts"
  done
  {
    echo "local rts = {"
    sed 's/.*/"&",/' "$work/rts"
    echo "}"
  } >"$work/refresh.lua"
  cat >> "$work/refresh.lua" <<LUA
request = function()
  local rt = table.remove(rts, 1)
  return wrk.format("POST", "/oauth2/token", {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic $basic"}, "grant_type=refresh_token&refresh_token=" .. rt)
end
tokens = 0
response = function(status, headers, body)
  local rt = body:match('"refresh_token":"([^"]+)"')
  if rt then table.insert(rts, rt); tokens = tokens + 1 else print("error " .. status .. " " .. body) end
end
$FINISHED_LUA
LUA
  echo "== POST /oauth2/token grant_type=refresh_token (rotating), $CONNECTIONS connections, $DURATION ($(wc -l <"$work/rts") grants)"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/refresh.lua" "$B"
fi

# Machine-to-machine: a confidential client with only the client_credentials grant (CC_SCOPE), and a second
# confidential client as the resource server that introspects its tokens. scripts/form_post.lua sends the same
# form with Basic auth each time and counts the answers that are not 200 (and, for introspection, the ones not
# "active":true); done() prints them as "checked: answers=N non200=N wrong=N".
CC_SCOPE=${CC_SCOPE:-roles}
if run cc || run introspect; then
  cli() { LATCHKEY_DATABASE_URL="sqlite://$work/load.db" LATCHKEY_KEY_FILE="$work/latchkey.key" RUST_LOG=warn "$BINARY" "$@"; }
  basic_of() { printf '%s:%s' "$(echo "$1" | sed -nE 's/.*"client_id": "([^"]+)".*/\1/p')" \
    "$(echo "$1" | sed -nE 's/.*"client_secret": "([^"]+)".*/\1/p')" | base64 -w0; }
  cc_basic=$(basic_of "$(cli client create --name bench --grant client_credentials --scope "$CC_SCOPE")")
  rs_basic=$(basic_of "$(cli client create --name resource-server --grant client_credentials --scope "$CC_SCOPE")")
  cc_token=$(curl -sf -H "Authorization: Basic $cc_basic" "$B/oauth2/token" \
    -d grant_type=client_credentials --data-urlencode "scope=$CC_SCOPE" | sed -nE 's/.*"access_token":"([^"]+)".*/\1/p')
  [ -n "$cc_token" ] || { echo "client_credentials grant failed: no access token" >&2; exit 1; }
fi

if run cc; then
  echo "== POST /oauth2/token grant_type=client_credentials (Basic auth, RS256 JWT access token), $CONNECTIONS connections, $DURATION"
  FORM_BODY="grant_type=client_credentials&scope=$CC_SCOPE" FORM_BASIC="$cc_basic" FORM_EXPECT='"access_token":"' \
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/form_post.lua "$B/oauth2/token"
fi

if run introspect; then
  echo "-- introspection of the client-credentials token: $(curl -s -H "Authorization: Basic $rs_basic" "$B/oauth2/introspect" -d "token=$cc_token")"
  echo "== POST /oauth2/introspect of a live client-credentials access token (resource server, Basic auth), $CONNECTIONS connections, $DURATION"
  FORM_BODY="token=$cc_token" FORM_BASIC="$rs_basic" FORM_EXPECT='"active":true' \
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/form_post.lua "$B/oauth2/introspect"
fi
