#!/usr/bin/env bash
# Runs one jim-bench workload across two gateways in kafka mode, with a
# tansu broker (memory storage) on this machine. Clients alternate between
# the gateways, so about half the C2C messages cross gateways; every
# message goes through Kafka. --server-pid is gateway 1's.
#
#   scripts/bench-kafka.sh c2c --clients 200 --window 4 --duration 10
#   scripts/bench-kafka.sh c2c --clients 200 --rate 2000 --duration 10
#
# ROUTES_IN_FLIGHT sets limits.routes_in_flight; KAFKA_PROPERTIES adds
# lines to [kafka.properties] (e.g. '"linger.ms" = "5"'); SENDER_COPY=false
# sets inbox.sender_copy.
set -euo pipefail
cd "$(dirname "$0")/.."
# GATEWAYS: how many gateways (1 to 9; 2 by default).
gateways=${GATEWAYS:-2}
# BIN_DIR: binaries built elsewhere (another commit, for a paired run);
# unset: this tree's, built now.
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release -q -p jim-gateway --features kafka -p jim-bench
fi
bin=$(realpath "${BIN_DIR:-target/release}")
# Absolute: the broker runs in its scratch directory.
tansu=$(realpath "${TANSU:-$(command -v tansu || echo target/tools/bin/tansu)}")
scratch=$(mktemp -d)
pids=()
trap 'kill ${pids[*]} 2>/dev/null; wait 2>/dev/null || true; rm -rf "$scratch"' EXIT
(cd "$scratch" && exec "$tansu" broker --listener-url tcp://127.0.0.1:19092 \
  --advertised-listener-url tcp://127.0.0.1:19092 --storage-engine memory://tansu/ >/dev/null 2>&1) &
pids+=($!)
for _ in $(seq 100); do
  "$tansu" topic list --broker tcp://127.0.0.1:19092 >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "tansu did not start" >&2; exit 1; }
  sleep 0.1
done
cat > "$scratch/gateway.toml" <<TOML
[auth]
dev = true
[limits]
messages_per_sec = 10000000
message_burst = 10000000
# No fan-out budgets (as in crates/jim-bench/gateway.toml): a group closed
# loop would measure the gateway's budget (100,000 recipients/s by default).
fanout_per_sec = 0
gateway_fanout_per_sec = 0
outbox_frames = 65536
routes_in_flight = ${ROUTES_IN_FLIGHT:-64}
[inbox]
# Kafka routing alone (the inbox stores are measured in local mode).
store = "off"
${SENDER_COPY:+sender_copy = $SENDER_COPY}
[kafka]
bootstrap = "127.0.0.1:19092"
topic_prefix = "bench$$."
[kafka.properties]
${KAFKA_PROPERTIES:-}
TOML
for node in $(seq "$gateways"); do
  "$bin"/jim-gateway --config "$scratch/gateway.toml" --log warn --mode kafka --node-id $node \
    --tcp 127.0.0.1:9${node}01 --ws 127.0.0.1:9${node}00 --admin 127.0.0.1:9${node}02 1>&2 &
  pids+=($!)
done
for node in $(seq "$gateways"); do
  until curl -sf http://127.0.0.1:9${node}02/readyz >/dev/null 2>&1; do sleep 0.1; done
done
tcp=$(for node in $(seq "$gateways"); do printf '127.0.0.1:9%s01,' "$node"; done)
ws=$(for node in $(seq "$gateways"); do printf '127.0.0.1:9%s00,' "$node"; done)
before=$(scripts/cpu-of.sh "${pids[@]}")
"$bin"/jim-bench "$@" --tcp "${tcp%,}" --ws "${ws%,}" --admin http://127.0.0.1:9102 --server-pid "${pids[1]}"
scripts/cpu-of.sh "${pids[@]}" | scripts/cpu-of.sh --since "$before" tansu $(seq -f 'gateway%g' "$gateways") >&2
