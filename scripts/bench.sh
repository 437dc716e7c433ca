#!/usr/bin/env bash
# Runs one jim-bench workload against a fresh release gateway (local mode,
# crates/jim-bench/gateway.toml) and reports the gateway's CPU and memory.
#
#   scripts/bench.sh c2c --clients 1000 --window 16 --duration 10
#   scripts/bench.sh c2c --rate 20000 --duration 10
#   scripts/bench.sh idle --connections 19000
#   scripts/bench.sh c2g --transport ws --clients 1000 --group-size 1000
#
#   GATEWAY_ARGS="--inbox disk --inbox-dir /tmp/jim-inbox" scripts/bench.sh offline --recipients 100 --messages 50000
#
# Extra gateway flags go in GATEWAY_ARGS; another configuration file in
# GATEWAY_CONFIG.
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN_DIR: binaries built elsewhere (another commit, for a paired run);
# unset: this tree's, built now.
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release -q -p jim-gateway -p jim-bench
fi
bin=$(realpath "${BIN_DIR:-target/release}")
"$bin"/jim-gateway --config "${GATEWAY_CONFIG:-crates/jim-bench/gateway.toml}" --log warn ${GATEWAY_ARGS:-} 1>&2 &
gateway=$!
trap 'kill $gateway 2>/dev/null; wait $gateway 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf http://127.0.0.1:9002/healthz >/dev/null 2>&1 && break
  sleep 0.1
done
"$bin"/jim-bench "$@" --server-pid "$gateway"
