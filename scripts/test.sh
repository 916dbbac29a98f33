#!/usr/bin/env bash
# The whole test suite: every crate's tests (each storage test runs on SQLite AND PostgreSQL),
# then a property-based run of schemathesis over the OpenAPI document against the running API.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
export KAKERU_TEST_PG_URL="${KAKERU_TEST_PG_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

cargo build --workspace --all-targets --features media/opus,kakeru/opus --quiet
cargo nextest run --workspace --features media/opus,kakeru/opus --no-fail-fast
bash scripts/schemathesis.sh
# The SIP parser under libFuzzer for a bounded time (a crash fails the suite).
bash sip/fuzz/run.sh "${SIP_FUZZ_SECONDS:-30}" 2>&1 | tail -15
