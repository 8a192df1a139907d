#!/usr/bin/env bash
# Fuzzes every operation of the OpenAPI document with schemathesis, against a server started here on a free
# port with a fresh SQLite database, and fails on any finding. First the served /openapi.json is validated
# against the OpenAPI 3.1 schema (openapi-spec-validator); then schemathesis runs its examples, coverage and
# fuzzing phases in both modes (data the schema allows, and data it forbids) on every operation, and its
# stateful phase (sequences that feed one answer's ids into the next request, along the links schemathesis
# infers from the schemas: an admin creates a client, then reads, changes and deletes it), signed in
# as a registered user, and once more on the `admin` operations signed in as an administrator, with these
# checks on every answer:
#   not_a_server_error            no 5xx
#   status_code_conformance       the status is one the operation documents
#   content_type_conformance      the Content-Type is the one documented for that status
#   response_schema_conformance   the body matches the documented schema (ErrorBody for every error)
#   response_headers_conformance  documented headers are well-formed
#   negative_data_rejection       a request the schema forbids is refused
#   positive_data_acceptance      a request the schema allows is not refused as malformed (see the
#                                 exceptions, and why, in scripts/schemathesis.toml)
#
#   scripts/schemathesis.sh                        # against target/debug/latchkey (build it first)
#   scripts/schemathesis.sh target/release/latchkey
#   SCHEMATHESIS_EXAMPLES=200 SCHEMATHESIS_SEED=random scripts/schemathesis.sh   # longer, a new seed
#
# The tools are pinned in scripts/schemathesis-requirements.txt and installed into target/schemathesis-venv
# (made again when that file changes). The server runs with cheap Argon2 and without the per-IP rate limit:
# every request comes from 127.0.0.1, and the fuzzer would otherwise see little but 429 (which each
# rate-limited operation still documents). JUnit reports go to target/schemathesis-report/.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=${1:-target/debug/latchkey}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-25}
SEED=${SCHEMATHESIS_SEED:-20261203}
VENV=target/schemathesis-venv
REQUIREMENTS=scripts/schemathesis-requirements.txt
REPORTS=target/schemathesis-report

[ -x "$BINARY" ] || { echo "schemathesis: no server binary at $BINARY (cargo build --bin latchkey)" >&2; exit 1; }

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "schemathesis: needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
wanted=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  echo "schemathesis: installing $REQUIREMENTS into $VENV"
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-virtualenv -r "$REQUIREMENTS"
  "$VENV/bin/pip" check --disable-pip-version-check >/dev/null
  echo "$wanted" >"$VENV/.requirements.sha256"
fi

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export LATCHKEY_BIND="127.0.0.1:$port" LATCHKEY_ISSUER="$base" LATCHKEY_DATABASE_URL="sqlite://$work/latchkey.db" \
  LATCHKEY_KEY_FILE="$work/latchkey.key" LATCHKEY_ARGON2_MEMORY_KIB=1024 LATCHKEY_ARGON2_ITERATIONS=1 \
  LATCHKEY_RATE_LIMIT_PER_MINUTE=0 LATCHKEY_ADMIN_REQUIRE_MFA=false RUST_LOG=warn

# Two accounts: a registered user (role viewer), who fuzzes every operation, and an administrator, made with
# `latchkey user create` before the server starts, who fuzzes the `admin` operations again (the viewer gets
# only 403 from them). scripts/schemathesis.toml says how schemathesis signs in as each.
export LK_FUZZ_PASSWORD="correct horse battery staple plume"
user="fuzzer-$port@example.test"
admin="fuzzer-admin-$port@example.test"
if ! echo "$LK_FUZZ_PASSWORD" | "$BINARY" user create --email "$admin" --role admin >"$work/admin.log" 2>&1; then
  echo "schemathesis: could not create the administrator:" >&2
  cat "$work/admin.log" >&2
  exit 1
fi

"$BINARY" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
if ! curl -sf "$base/readyz" >/dev/null; then
  echo "schemathesis: the server did not become ready; its log:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
registered=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$user\",\"password\":\"$LK_FUZZ_PASSWORD\"}")
[ "$registered" = 201 ] || { echo "schemathesis: registering the user answered $registered" >&2; exit 1; }

echo "== OpenAPI 3.1 document: openapi-spec-validator"
curl -sf "$base/openapi.json" -o "$work/openapi.json"
"$VENV/bin/openapi-spec-validator" --schema 3.1 --validation-errors all "$work/openapi.json"

seed_args=(--seed "$SEED")
[ "$SEED" = random ] && seed_args=()
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
checks+=,response_headers_conformance,negative_data_rejection,positive_data_acceptance
# One worker: with two, Hypothesis parses the source of its filters in both threads at once, and CPython 3.11
# before 3.11.9 can fail that (`SystemError: AST constructor recursion depth mismatch`, CPython gh-106905).
fuzz() {
  "$VENV/bin/st" --config-file scripts/schemathesis.toml --no-color run "$base/openapi.json" \
    --phases examples,coverage,fuzzing,stateful --mode all --max-examples "$EXAMPLES" "${seed_args[@]}" \
    --checks "$checks" --workers 1 --generation-database none --request-timeout 10 \
    --report junit --report-dir "$REPORTS" "$@"
}
version=$("$VENV/bin/st" --version | awk '{print $NF}')
status=0
echo "== schemathesis $version: every operation, positive and negative, as a registered user"
LK_FUZZ_EMAIL=$user fuzz || status=$?
echo "== schemathesis $version: the admin operations, positive and negative, as an administrator"
LK_FUZZ_EMAIL=$admin fuzz --include-tag admin || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis: failed (exit $status); the end of the server's log:" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
