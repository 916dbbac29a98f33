#!/usr/bin/env bash
# Runs the SIP parser fuzz target for SECONDS (default 30) on the stable toolchain.
# cargo-fuzz needs -Z flags: RUSTC_BOOTSTRAP=1 lets stable accept them. If the sanitizer runtime does not
# link, the run falls back to --sanitizer none (still coverage-guided libFuzzer, no ASan).
set -euo pipefail
SECONDS_TO_RUN="${1:-30}"
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/fuzz/target}"
mkdir -p fuzz/corpus/parse
# Seed corpus: a few valid messages.
printf 'OPTIONS sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' > fuzz/corpus/parse/options
printf 'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 61\r\n\r\nv=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=sendrecv\r\n' > fuzz/corpus/parse/ok
printf 'REGISTER sip:f1.kakeru SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5391;branch=z9hG4bKcd;rport\r\nContact: <sip:agent0-0x5@127.0.0.1:5391>;expires=60;+sip.instance="<urn:uuid:e1cf>";reg-id=1\r\nTo: "A \\"b\\" <c>" <sip:agent0@f1.kakeru>\r\nFrom: <sip:agent0@f1.kakeru>;tag=9c\r\nCall-ID: 16b7\r\nCSeq: 15482 REGISTER\r\nContent-Length: 0\r\n\r\n' > fuzz/corpus/parse/register
# Only a sanitizer that does not build or link falls back; a crash found by the fuzzer fails the run.
sanitizer=()
if ! nice -n 10 cargo fuzz build parse >/dev/null 2>&1; then
  echo "the address sanitizer does not build here; fuzzing with --sanitizer none" >&2
  sanitizer=(--sanitizer none)
fi
nice -n 10 cargo fuzz run "${sanitizer[@]}" parse fuzz/corpus/parse -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -print_final_stats=1
