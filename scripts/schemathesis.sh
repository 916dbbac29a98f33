#!/usr/bin/env bash
# Property-based run over /openapi.json, bounded in time: against a running `kakeru api` (SQLite file)
# with records of every collection seeded first (scripts/schemathesis_seed.py), then the agent's own
# operations (as a simulated agent) and those on calls against `kakeru demo`, whose calls leave
# records; the hooks point generated ids at seeded
# records; every operation gets generated inputs, valid and invalid; no answer may be a 5xx, and every
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
pid=; demo_pid=
trap 'kill $pid $demo_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
bin="${CARGO_TARGET_DIR:-target}/debug/kakeru"
started=$(date +%s)

# One pass of schemathesis: pass NAME URL TOKEN SEED_JSON SECONDS [schemathesis options]. Every answer's
# status goes to $work/status.log; a 5xx (the server's log is $work/NAME.err), or schemathesis failing,
# ends the script.
pass() {
  local name=$1 url=$2 tok=$3 seed=$4 secs=$5
  shift 5
  set +e
  SCHEMATHESIS_KEEP_USER="$me" SCHEMATHESIS_SEED="$seed" SCHEMATHESIS_ADMIN_TOKEN="${admin_token:-}" SCHEMATHESIS_BASE_URL="$url" SCHEMATHESIS_TOKEN="$tok" \
    PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks SCHEMATHESIS_STATUS_LOG="$work/status.log" \
    timeout --signal=INT "$secs" "$venv/bin/schemathesis" run "$url/openapi.json" \
    -H "Authorization: Bearer $tok" --checks not_a_server_error --show-trace \
    --hypothesis-max-examples "$examples" --hypothesis-seed 1 --hypothesis-derandomize \
    --experimental=openapi-3.1 --workers 1 "$@" > "$work/st-$name.out" 2>&1
  local rc=$?
  set -e
  cp "$work/st-$name.out" "target/schemathesis-$name.out"; tail -25 "$work/st-$name.out"
  if grep -q "not_a_server_error" "$work/st-$name.out" && grep -qE "Server error|500 Internal" "$work/st-$name.out"; then
    echo "schemathesis ($name): the API answered a 5xx"; grep -iE "error" "$work/$name.err" | tail -5; exit 1
  fi
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 130 ]; then
    echo "schemathesis ($name): failed (exit $rc)"; exit 1
  fi
  grep -A1 "Performed checks" "$work/st-$name.out" | tail -1
  echo "schemathesis ($name): no 5xx"
}

login() { # URL PASSWORD: a token of the demo tenant's admin
  curl -sf -XPOST "$1/auth/login" -H 'content-type: application/json' \
    -d "{\"tenant\":\"demo\",\"login\":\"admin\",\"password\":\"$2\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])'
}

# Pass 1: every operation, against `kakeru api --seed-demo` over the records scripts/schemathesis_seed.py makes.
port=$((20000 + RANDOM % 20000))
DATABASE_URL="sqlite:$work/kakeru.db" "$bin" api --listen "127.0.0.1:$port" --seed-demo > "$work/api.out" 2> "$work/api.err" &
pid=$!
for _ in $(seq 1 100); do grep -q '"password"' "$work/api.out" 2>/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port"
token=$(login "$url" "$(grep -o '"password":"[^"]*"' "$work/api.out" | cut -d'"' -f4)")
me=$(curl -sf "$url/me" -H "Authorization: Bearer $token" | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
python3 scripts/schemathesis_seed.py "$url" "$token" > "$work/seed.json"
curl -sf "$url/openapi.json" -o "$work/openapi.json"
echo "schemathesis: up to ${seconds}s in all (the demo passes at least 30 s each), ${examples} examples per operation"
pass api "$url" "$token" "$work/seed.json" $((seconds - 40)) --exclude-path-regex '/auth/logout'
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

# Passes 2 and 3: the operations of an agent working a job, and those on calls and their records, need
# calls: against `kakeru demo` (the dialer, a simulated carrier and simulated agents), on the records
# its first calls leave; the rest of the time.
port=$((20000 + RANDOM % 20000))
DATABASE_URL="sqlite:$work/demo.db" "$bin" demo --listen "127.0.0.1:$port" --agents 3 --talk-mean-s 3 \
  --wrapup-mean-s 2 --answer-prob 0.9 --seed 1 --recordings-dir "$work/recordings" > "$work/calls.out" 2> "$work/calls.err" &
demo_pid=$!
for _ in $(seq 1 300); do grep -q 'login admin' "$work/calls.out" 2>/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port"
token=$(login "$url" "$(grep -o 'login admin  password [^ ]*' "$work/calls.out" | awk '{print $4}')")
me=$(curl -sf "$url/me" -H "Authorization: Bearer $token" | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
python3 scripts/schemathesis_seed.py --calls "$url" "$token" > "$work/calls.json"
# The agent's own operations, as a simulated agent working the demo's job (before the supervisor's
# operations of the next pass can log it off).
agent_token=$(python3 -c 'import sys,json;print(json.load(open(sys.argv[1]))["agent_token"])' "$work/calls.json")
# The hooks set the floor up per operation with the supervisor's token (the campaign's mode, the
# agent ready or on a call, an agent talking to monitor): see scripts/schemathesis_hooks.py.
admin_token="$token"
# No per-example deadline on the floor: an example whose set-up waits for a call takes up to 40 s.
pass agent "$url" "$agent_token" "$work/calls.json" 120 --include-path-regex '^/agent/' --hypothesis-deadline=None
left=$((seconds - ($(date +%s) - started)))
pass calls "$url" "$token" "$work/calls.json" $((left > 30 ? left : 30)) \
  --include-path-regex '^/(agents|call-records|callbacks|calls|recordings|wrapup-records)/\{id\}' --hypothesis-deadline=None

cp "$work/status.log" target/schemathesis-status.log; cp "$work/status.log.why" target/schemathesis-status.why 2>/dev/null || true
python3 scripts/schemathesis_reach.py "$work/openapi.json" "$work/status.log" scripts/schemathesis_unreached.txt
