#!/usr/bin/env bash
# The serve tests once more, with every server they start keeping its uploads in an
# S3-compatible object store (`livemux serve --store`): a moto_server started here, each
# server under a prefix of its own (LIVEMUX_TEST_STORE, read by tests/common/server.rs).
# .ci/run runs it after `cargo test --release`; extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${LIVEMUX_PYTHON:-python3}
moto="$(dirname "$py")/moto_server"
[ -x "$moto" ] || moto=moto_server
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$moto" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 \
       AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
for _ in $(seq 600); do
  curl -s -o /dev/null "$AWS_ENDPOINT_URL/" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "moto_server exited" >&2; exit 1; }
  sleep 0.1
done
curl -sf --aws-sigv4 aws:amz:us-east-1:s3 -u testing:testing -X PUT "$AWS_ENDPOINT_URL/livemux-test" -o /dev/null
export LIVEMUX_TEST_STORE=s3://livemux-test
cargo test --release --test serve_protocol --test serve_tus --test serve_hooks --test serve_security \
  --test serve_crash --test serve_browser "$@"
