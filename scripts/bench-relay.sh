#!/usr/bin/env bash
# Runs one jim-bench workload against the minimal relay (jim_bench::relay)
# instead of the gateway: the same harness on the same machine, so the
# relay's figures show what the machine and the harness cost by themselves.
# TCP and c2c only (the relay has no WebSocket and no groups).
#
#   scripts/bench-relay.sh c2c --rate 20000 --duration 10
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p jim-bench --bin jim-bench --example relay
addr=127.0.0.1:9101
./target/release/examples/relay "$addr" >/dev/null &
relay=$!
trap 'kill $relay 2>/dev/null; wait $relay 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/9101) 2>/dev/null && break
  sleep 0.1
done
./target/release/jim-bench "$@" --tcp "$addr" --server-pid "$relay"
