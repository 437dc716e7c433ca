#!/usr/bin/env bash
# Runs one jim-bench workload across two gateways in grpc mode, routed by
# one central router (all release builds, this machine). Clients are spread
# over both gateways, so about half of the C2C messages cross gateways.
# --server-pid is the router's: the report's CPU is the router's.
#
#   scripts/bench-grpc.sh c2c --clients 1000 --window 16 --duration 10
#   scripts/bench-grpc.sh c2c --clients 1000 --rate 20000 --duration 10
#
# Another gateway configuration file in GATEWAY_CONFIG; router flags in
# ROUTER_ARGS (e.g. "--inbox off").
set -euo pipefail
cd "$(dirname "$0")/.."
# GATEWAYS: how many gateways (1 to 9; 2 by default).
gateways=${GATEWAYS:-2}
# BIN_DIR: binaries built elsewhere (another commit, for a paired run);
# unset: this tree's, built now.
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release -q -p jim-gateway --features grpc -p jim-router-server -p jim-bench
fi
bin=$(realpath "${BIN_DIR:-target/release}")
"$bin"/jim-router --grpc 127.0.0.1:19093 --http off --log warn ${ROUTER_ARGS:-} 1>&2 &
router=$!
pids=($router)
trap 'kill ${pids[*]} 2>/dev/null; wait 2>/dev/null || true' EXIT
sleep 0.3
for node in $(seq "$gateways"); do
  "$bin"/jim-gateway --config "${GATEWAY_CONFIG:-crates/jim-bench/gateway.toml}" --log warn --mode grpc \
    --router http://127.0.0.1:19093 --node-id $node \
    --tcp 127.0.0.1:9${node}01 --ws 127.0.0.1:9${node}00 --admin 127.0.0.1:9${node}02 1>&2 &
  pids+=($!)
done
for node in $(seq "$gateways"); do
  for _ in $(seq 50); do
    curl -sf http://127.0.0.1:9${node}02/readyz >/dev/null 2>&1 && break
    sleep 0.1
  done
done
tcp=$(for node in $(seq "$gateways"); do printf '127.0.0.1:9%s01,' "$node"; done)
ws=$(for node in $(seq "$gateways"); do printf '127.0.0.1:9%s00,' "$node"; done)
before=$(scripts/cpu-of.sh "${pids[@]}")
"$bin"/jim-bench "$@" --tcp "${tcp%,}" --ws "${ws%,}" --admin http://127.0.0.1:9102 --server-pid "$router"
scripts/cpu-of.sh "${pids[@]}" | scripts/cpu-of.sh --since "$before" router $(seq -f 'gateway%g' "$gateways") >&2
