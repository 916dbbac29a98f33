#!/usr/bin/env bash
# Makes sure what the test suite talks to is installed and running: PostgreSQL, Redis, and the
# tools the suite drives (cargo-nextest, Python for schemathesis, promtool, sipp and baresip for the
# SIP tests, Chromium and playwright-core for the browser tests). Idempotent; needs root on a
# fresh Debian machine (apt-get), does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- the media hosts' sysctls (deploy/sysctl/90-kakeru.conf): the dialer's SIP socket asks for 8 MiB
# buffers, and the test of that socket asserts the whole grant where these allow it (CI needs them).
while read -r key _ want; do
  case "$key" in net.*) ;; *) continue ;; esac
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if [ "$have" -lt "$want" ]; then
    sysctl -q -w "$key=$want" || echo "services: could not raise $key to $want (the SIP socket test then checks the warning only)" >&2
  fi
done < deploy/sysctl/90-kakeru.conf

# --- PostgreSQL (127.0.0.1:5432; the tests log in as postgres/postgres or by trust) -----------
pg_ready() { (command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q); }
if ! pg_ready; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "services: installing PostgreSQL"
    apt_install postgresql
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$ver/main
  grep -q "^listen_addresses = '127.0.0.1'" "$conf/postgresql.conf" || echo "listen_addresses = '127.0.0.1'" >> "$conf/postgresql.conf"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
fi
pg_ready || { echo "services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
# kakeru's settings for its primary (deploy/postgresql), so that tests and benches run on what production
# runs: into the newest cluster's conf.d (Debian's postgresql.conf includes it), then a reload.
pgconfd=$(ls -d /etc/postgresql/*/main/conf.d 2>/dev/null | sort -V | tail -1)
if [ -n "$pgconfd" ] && ! cmp -s deploy/postgresql/kakeru-postgresql.conf "$pgconfd/kakeru-postgresql.conf"; then
  install -m 0644 deploy/postgresql/kakeru-postgresql.conf "$pgconfd/"
  su postgres -c "psql -qtc 'SELECT pg_reload_conf()'" >/dev/null
fi

# --- Redis (127.0.0.1:6379) ----------------------------------------------------------------------
redis_ready() { (command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 ping 2>/dev/null)" = PONG ]); }
if ! redis_ready; then
  command -v redis-server >/dev/null || { echo "services: installing Redis"; apt_install redis-server; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir /var/lib/redis --logfile /var/log/redis/kakeru-ci.log
  for _ in $(seq 1 30); do redis_ready && break; sleep 1; done
fi
redis_ready || { echo "services: Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }

# --- Tools ---------------------------------------------------------------------------------------
# iproute2's `ip`: the fault test of the production layout makes network namespaces and veth pairs.
command -v ip >/dev/null || { echo "services: installing iproute2"; apt_install iproute2; }
command -v python3 >/dev/null || apt_install python3 python3-venv
# cmake: the opus crate builds libopus from source (the media plane's Opus pool).
command -v cmake >/dev/null || { echo "services: installing cmake"; apt_install cmake; }
# sipp (Debian's sip-tester): the carrier and the agents' phones of the dialer's SIP tests and bench.
command -v sipp >/dev/null || { echo "services: installing sipp"; apt_install sip-tester; }
# baresip (Debian 12 ships 1.0.0): the real softphone of the dialer's end-to-end test (the agent's phone
# registering, auto-answering, keying DTMF). Its core modules only (g711, aufile, aubridge, sndfile,
# ctrl_tcp, menu, uuid), not the GUI, video and codec packages it recommends.
command -v baresip >/dev/null || { echo "services: installing baresip"; apt_install --no-install-recommends baresip; }
# promtool (checks the /metrics exposition and deploy/prometheus), Debian's prometheus package.
command -v promtool >/dev/null || { echo "services: installing promtool"; apt_install --no-install-recommends prometheus; }
# The browser tests: Debian's Chromium (never a downloaded browser build), a Japanese font for the
# screenshots, Node.js and npm for playwright-core.
command -v chromium >/dev/null || { echo "services: installing Chromium"; apt_install chromium fonts-ipafont-gothic; }
fc-list 2>/dev/null | grep -qi ipagothic || apt_install fonts-ipafont-gothic
command -v npm >/dev/null || { echo "services: installing Node.js"; apt_install nodejs npm; }
browser=api/tests/browser
if [ ! -d "$browser/node_modules/playwright-core" ]; then
  echo "services: installing the browser tests' node packages"
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "services: installing cargo-nextest"
  cargo install cargo-nextest --locked --quiet
fi
