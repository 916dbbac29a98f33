#!/usr/bin/env bash
# Property-based run over /openapi.json against a running `kakeru api` (SQLite file), bounded in
# time: records of every collection are seeded first (scripts/schemathesis_seed.py) and the hooks
# point generated ids at them; every operation gets generated inputs, valid and invalid; no answer may be a 5xx, and every
# operation must answer some input with a 2xx (scripts/schemathesis_reach.py; the operations not yet
# reached are listed in scripts/schemathesis_unreached.txt, which may only shrink).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${SCHEMATHESIS_SECONDS:-240}"
examples="${SCHEMATHESIS_EXAMPLES:-40}"

venv=target/venv-schemathesis
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q "schemathesis==3.39.16" "hypothesis<6.112"
fi

work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
DATABASE_URL="sqlite:$work/kakeru.db" "${CARGO_TARGET_DIR:-target}/debug/kakeru" api --listen "127.0.0.1:$port" --seed-demo > "$work/api.out" 2> "$work/api.err" &
pid=$!
for _ in $(seq 1 100); do grep -q '"password"' "$work/api.out" 2>/dev/null && break; sleep 0.1; done
password=$(grep -o '"password":"[^"]*"' "$work/api.out" | cut -d'"' -f4)
token=$(curl -sf -XPOST "http://127.0.0.1:$port/auth/login" -H 'content-type: application/json' \
  -d "{\"tenant\":\"demo\",\"login\":\"admin\",\"password\":\"$password\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])')

me=$(curl -sf "http://127.0.0.1:$port/me" -H "Authorization: Bearer $token" | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
python3 scripts/schemathesis_seed.py "http://127.0.0.1:$port" "$token" > "$work/seed.json"
echo "schemathesis: up to ${seconds}s, ${examples} examples per operation"
set +e
curl -sf "http://127.0.0.1:$port/openapi.json" -o "$work/openapi.json"
SCHEMATHESIS_KEEP_USER="$me" SCHEMATHESIS_SEED="$work/seed.json" SCHEMATHESIS_BASE_URL="http://127.0.0.1:$port" SCHEMATHESIS_TOKEN="$token" PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks SCHEMATHESIS_STATUS_LOG="$work/status.log" timeout --signal=INT "$seconds" "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer $token" --checks not_a_server_error --show-trace \
  --hypothesis-max-examples "$examples" --hypothesis-seed 1 --hypothesis-derandomize \
  --experimental=openapi-3.1 --exclude-path-regex '/auth/logout' --workers 1 > "$work/st.out" 2>&1
rc=$?
set -e
cp "$work/st.out" target/schemathesis.out; tail -25 "$work/st.out"
if grep -q "not_a_server_error" "$work/st.out" && grep -qE "Server error|500 Internal" "$work/st.out"; then
  echo "schemathesis: the API answered a 5xx"; grep -iE "error" "$work/api.err" | tail -5; exit 1
fi
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 130 ]; then
  echo "schemathesis: failed (exit $rc)"; exit 1
fi
grep -A1 "Performed checks" "$work/st.out" | tail -1
echo "schemathesis: no 5xx"
cp "$work/status.log" target/schemathesis-status.log
python3 scripts/schemathesis_reach.py "$work/openapi.json" "$work/status.log" scripts/schemathesis_unreached.txt
