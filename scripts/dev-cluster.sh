#!/usr/bin/env bash
# A deployment of several processes on this machine, to try the grpc or
# kafka mode: a central router (grpc) or a Kafka-compatible broker (kafka:
# tansu), and two gateways in development mode. It runs in the foreground
# until Ctrl-C (or SIGTERM), then stops everything it started.
#
#   scripts/dev-cluster.sh grpc
#   scripts/dev-cluster.sh kafka
#
# Ports: gateway 1 on 9000 (WebSocket), 9001 (TCP), 9002 (admin); gateway
# 2 on 9010, 9011, 9012; the router on 9093 (its HTTP on 9094); the broker
# on 9092; each one that is taken is replaced by a free one. The addresses
# are printed, and written to target/dev-cluster/env for scripts:
#   . target/dev-cluster/env && echo "$JIM_GATEWAY2_WS"
# Logs: target/dev-cluster/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
case "$mode" in
  grpc | kafka) ;;
  *)
    echo "usage: scripts/dev-cluster.sh grpc|kafka" >&2
    exit 2
    ;;
esac
dir="$PWD/target/dev-cluster"
mkdir -p "$dir"
rm -f "$dir"/*.log "$dir/env"

# The docs' build command (grpc mode is in it by default); kafka mode adds
# librdkafka, compiled from C.
features=()
if [ "$mode" = kafka ]; then
  features=(--features kafka)
fi
echo "dev-cluster: building jim-gateway and jim-router (release${features[*]:+, with ${features[*]}})."
echo "  The first build takes about 4 minutes on 2 cores (kafka mode: 2 more, and 4 more"
echo "  for the test broker, once); later builds take seconds. Cargo's progress follows."
cargo build --release -p jim-gateway -p jim-router-server "${features[@]}"

pids=()
stop() {
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    echo "dev-cluster: stopping ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -f "$dir/env"
}
trap stop EXIT
# Stopped on request: a success.
trap 'exit 0' INT TERM

# The port if it is free, else a free one.
port() {
  python3 - "$1" <<'PY'
import socket, sys
want = int(sys.argv[1])
s = socket.socket()
try:
    s.bind(("127.0.0.1", want))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

# Starts a process in the background with its output in a log, and waits
# until the log shows `ready`.
start() {
  local name="$1" ready="$2"
  shift 2
  "$@" >"$dir/$name.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 600); do
    if grep -q -- "$ready" "$dir/$name.log"; then
      return 0
    fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "dev-cluster: $name exited; its log ($dir/$name.log):" >&2
      cat "$dir/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "dev-cluster: $name did not start within a minute; see $dir/$name.log" >&2
  exit 1
}

gateway_args=()
if [ "$mode" = grpc ]; then
  router_port=$(port 9093)
  router_http=$(port 9094)
  # No settle window: in a fresh cluster no gateway is re-linking (restart
  # the router by hand, with its default settle_ms, to see one).
  start router "| grpc" target/release/jim-router --grpc "127.0.0.1:$router_port" \
    --http "127.0.0.1:$router_http" --settle-ms 0 --log info
  backend="router http://127.0.0.1:$router_port (health and metrics: http://127.0.0.1:$router_http)"
  gateway_args=(--mode grpc --router "http://127.0.0.1:$router_port")
else
  scripts/install-tools.sh
  tansu=target/tools/bin/tansu
  [ -x "$tansu" ] || tansu=tansu
  broker_port=$(port 9092)
  mkdir -p "$dir/tansu"
  (cd "$dir/tansu" && exec "$OLDPWD/$tansu" broker --listener-url "tcp://127.0.0.1:$broker_port" \
    --advertised-listener-url "tcp://127.0.0.1:$broker_port" --storage-engine memory://tansu/) \
    >"$dir/tansu.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 300); do
    grep -q "ready in" "$dir/tansu.log" && break
    sleep 0.1
  done
  grep -q "ready in" "$dir/tansu.log" || {
    echo "dev-cluster: tansu did not start; see $dir/tansu.log" >&2
    exit 1
  }
  backend="kafka 127.0.0.1:$broker_port (tansu, in memory)"
  gateway_args=(--mode kafka --kafka-bootstrap "127.0.0.1:$broker_port")
  # kafka mode keeps inboxes in Redis, shared by the gateways.
  if command -v redis-server >/dev/null; then
    redis_port=$(port 6379)
    redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --dir "$dir" >"$dir/redis.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 100); do
      grep -q "Ready to accept" "$dir/redis.log" && break
      sleep 0.1
    done
    backend="$backend, inbox in redis 127.0.0.1:$redis_port"
    gateway_args+=(--inbox redis --inbox-redis "redis://127.0.0.1:$redis_port/")
  else
    backend="$backend, NO inbox (apt-get install redis-server for one)"
    gateway_args+=(--inbox off)
  fi
fi

declare -A ws tcp admin
for n in 1 2; do
  base=$((9000 + (n - 1) * 10))
  ws[$n]=$(port "$base")
  tcp[$n]=$(port $((base + 1)))
  admin[$n]=$(port $((base + 2)))
  start "gateway$n" "| admin api" target/release/jim-gateway --dev "${gateway_args[@]}" \
    --node-id "$n" --ws "127.0.0.1:${ws[$n]}" --tcp "127.0.0.1:${tcp[$n]}" \
    --admin "127.0.0.1:${admin[$n]}" --log info
done

{
  for n in 1 2; do
    echo "JIM_GATEWAY${n}_WS=ws://127.0.0.1:${ws[$n]}/ws"
    echo "JIM_GATEWAY${n}_TCP=tcp://127.0.0.1:${tcp[$n]}"
    echo "JIM_GATEWAY${n}_ADMIN=http://127.0.0.1:${admin[$n]}"
  done
} >"$dir/env"

cat <<TABLE

Jim dev cluster ($mode mode), development auth (any non-empty token is the user id)
  backend    $backend
  gateway 1  ws://127.0.0.1:${ws[1]}/ws  tcp://127.0.0.1:${tcp[1]}  admin http://127.0.0.1:${admin[1]}
  gateway 2  ws://127.0.0.1:${ws[2]}/ws  tcp://127.0.0.1:${tcp[2]}  admin http://127.0.0.1:${admin[2]}
  addresses  target/dev-cluster/env (. target/dev-cluster/env)
  logs       target/dev-cluster/*.log

dev cluster ready: stop it with Ctrl-C (or kill $$)
TABLE

# Until a signal, or until one of them dies.
wait -n "${pids[@]}" || true
echo "dev-cluster: a process ended; stopping the others" >&2
exit 1
