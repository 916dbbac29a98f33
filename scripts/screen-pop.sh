#!/usr/bin/env bash
# The screen pop measured in Chromium on the demo floor (bench/RESULTS.md, "Agents' push channel"):
# `kakeru demo` with N people's agents beside the simulated ones; N browser tabs (api/tests/browser/
# desktop.test.js, mode pop) each log in, start the job and take CALLS calls; prints the times from
# control's bridge to the lead on screen, and their p50/p99.
# Usage: scripts/screen-pop.sh [KAKERU_BINARY] [PEOPLE] [CALLS]
set -euo pipefail
bin=${1:-target/debug/kakeru}
people=${2:-10}
calls=${3:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
cd "$work"
"$root/$bin" demo --agents 40 --people "$people" --talk-mean-s 20 --wrapup-mean-s 3 --listen "127.0.0.1:$port" --seed 11 > demo.out 2> demo.err &
demo=$!
trap 'kill -INT $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 240); do grep -q "operator:" demo.out 2>/dev/null && break; sleep 0.5; done
sleep 1
agents=$(grep "operator:" demo.out | awk '{print "{\"login\":\"" $5 "\",\"password\":\"" $7 "\"}"}' | paste -sd, -)
fixture="{\"tenant\":\"demo\",\"calls\":$calls,\"agents\":[${agents}]}"
cd "$root/api/tests/browser"
KAKERU_MODE=pop KAKERU_BASE="http://127.0.0.1:$port" KAKERU_OUT="$work" KAKERU_FIXTURE="$fixture" node desktop.test.js < /dev/null | tee "$work/pop.out" | grep -E "^(POPS|BROWSER)"
# Every call the people took has its saved wrap-up record (the demo's SQLite file, read beside it).
logins=$(grep "operator:" "$work/demo.out" | awk '{print "'"'"'" $5 "'"'"'"}' | paste -sd, -)
sqlite3 "$work/kakeru.db" "SELECT 'calls taken by the people: ' || COUNT(*) || ', with a saved record: ' || COUNT(w.id)
  FROM call_records r JOIN users u ON u.id = r.agent_user_id
  LEFT JOIN wrapup_records w ON w.call_record_id = r.id AND w.saved = 1
  WHERE u.login IN ($logins) AND r.bridged_at IS NOT NULL"
grep "^POPS" "$work/pop.out" | sed 's/^POPS //' | node -e '
  const v = JSON.parse(require("fs").readFileSync(0, "utf8")).sort((a, b) => a - b);
  const q = (p) => v[Math.round((v.length - 1) * p)];
  console.log(`screen pops ${v.length}: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${v[v.length - 1]} ms`);'
