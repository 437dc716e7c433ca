#!/usr/bin/env bash
# Runs the same jim-bench workloads against Jim (TCP and WebSocket), the
# minimal relay (jim_bench::relay), mosquitto (MQTT) and nats-server, in
# interleaved rounds, and prints the comparison table of docs/benchmarks.md
# (medians of the rounds). mosquitto and nats-server come from Debian and
# are installed when missing.
#
#   scripts/bench-peers.sh                 # 3 rounds, 10 s runs, 19,000 idle connections
#   ROUNDS=1 DURATION=5 IDLE=5000 scripts/bench-peers.sh
#
# Workloads (N clients, ~200-byte messages): c2c closed loop with W = 16
# in flight per client; c2c at RATE messages/s (latency); IDLE
# authenticated connections held (memory per connection). Each server is
# started fresh for each run. The raw reports stay in OUT (a directory).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-1000}
RATE=${RATE:-20000}
IDLE=${IDLE:-19000}
OUT=${OUT:-$(mktemp -d /tmp/jim-peers.XXXXXX)}
RELAY=127.0.0.1:9105
MQTT=127.0.0.1:9110
NATS=127.0.0.1:9111

missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi
export PATH=$PATH:/usr/sbin
# The servers (started from here) and the generator hold up to IDLE sockets.
ulimit -n "$(ulimit -Hn)"

cargo build --release -q -p jim-gateway -p jim-bench --bin jim-bench --bin jim-gateway --example relay
bin=$(realpath target/release)
mkdir -p "$OUT"

mosquitto_conf=$OUT/mosquitto.conf
cat >"$mosquitto_conf" <<EOF
listener ${MQTT##*:} ${MQTT%:*}
allow_anonymous true
# As Jim and nats-server do: without it a reply waits for the peer's delayed ACK (40 ms).
set_tcp_nodelay true
persistence false
log_dest stderr
log_type error
EOF

server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

# Waits until something accepts on host:port.
wait_for() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  return 1
}

# run SERVER WORKLOAD: one jim-bench run against a fresh SERVER.
run() {
  local server=$1 workload=$2 out="$OUT/$1.$2.$round.json" args=()
  case $workload in
    closed) args=(c2c --clients "$CLIENTS" --window 16 --duration "$DURATION") ;;
    rate) args=(c2c --clients "$CLIENTS" --rate "$RATE" --duration "$DURATION") ;;
    idle) args=(idle --connections "$IDLE" --duration 3) ;;
  esac
  echo "round $round: $server $workload" >&2
  case $server in
    jim-tcp | jim-ws)
      BIN_DIR=$bin scripts/bench.sh "${args[@]}" --transport "${server#jim-}" --quiet --json >"$out" 2>>"$OUT/log"
      return
      ;;
    relay)
      "$bin"/examples/relay "$RELAY" >/dev/null &
      server_pid=$!
      wait_for "$RELAY"
      "$bin"/jim-bench "${args[@]}" --tcp "$RELAY" --server-pid "$server_pid" --quiet --json >"$out" 2>>"$OUT/log"
      ;;
    mosquitto)
      mosquitto -c "$mosquitto_conf" 2>>"$OUT/log" &
      server_pid=$!
      wait_for "$MQTT"
      "$bin"/jim-bench "${args[@]}" --transport mqtt --tcp "$MQTT" --server-pid "$server_pid" --quiet --json >"$out" 2>>"$OUT/log"
      ;;
    nats-server)
      nats-server -a "${NATS%:*}" -p "${NATS##*:}" 2>>"$OUT/log" &
      server_pid=$!
      wait_for "$NATS"
      "$bin"/jim-bench "${args[@]}" --transport nats --tcp "$NATS" --server-pid "$server_pid" --quiet --json >"$out" 2>>"$OUT/log"
      ;;
  esac
  stop_server
}

servers=(relay jim-tcp jim-ws mosquitto nats-server)
for round in $(seq "$ROUNDS"); do
  for workload in closed rate idle; do
    for server in "${servers[@]}"; do
      # The relay is a floor for messages; it keeps no sessions worth weighing.
      [ "$server" = relay ] && [ "$workload" = idle ] && continue
      run "$server" "$workload"
    done
  done
done

python3 - "$OUT" "$ROUNDS" "$CLIENTS" "$RATE" "$IDLE" "${servers[@]}" <<'EOF'
import datetime, json, os, statistics, sys

out, rounds, clients, rate, idle, servers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]

def reports(server, workload):
    found = []
    for r in range(1, rounds + 1):
        path = os.path.join(out, f"{server}.{workload}.{r}.json")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            found.append(json.load(open(path)))
    return found

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def lossless(server):
    bad = [r for w in ("closed", "rate") for r in reports(server, w)
           if (r.get("counts") or {}).get("lost") or (r.get("counts") or {}).get("errors")]
    return "" if not bad else " (loss or errors!)"

cpu = {s: median([r["server"]["cpu_us_per_message"] for r in reports(s, "closed")]) for s in servers}
relay = cpu.get("relay")
def cell_cpu(s):
    if cpu[s] is None:
        return ""
    ratio = f" ({cpu[s] / relay:.2f}x)" if relay and s != "relay" else ""
    return f"{cpu[s]:.2f} µs{ratio}"
def cell_rate(s):
    v = median([r["throughput"] for r in reports(s, "closed")])
    return "" if v is None else f"{v / 1000:.0f} K"
def cell_latency(s):
    rs = reports(s, "rate")
    p50, p99 = median([r["latency"]["p50_us"] for r in rs]), median([r["latency"]["p99_us"] for r in rs])
    return "" if p50 is None else f"{p50 / 1000:.2f} / {p99 / 1000:.2f} ms"
def cell_idle(s):
    v = median([(r.get("server") or {}).get("rss_bytes_per_connection") for r in reports(s, "idle")])
    return "" if v is None else f"{v:,.0f} B"

names = {"relay": "minimal relay", "jim-tcp": "Jim TCP", "jim-ws": "Jim WebSocket",
         "mosquitto": "mosquitto", "nats-server": "nats-server"}
print(f"Measured {datetime.date.today()} by `scripts/bench-peers.sh` ({rounds} rounds, medians; "
      f"N = {clients} clients, ~200-byte messages, W = 16 for the closed loop, {rate}/s for latency, "
      f"{idle} idle connections):")
print()
print("| | " + " | ".join(names[s] + lossless(s) for s in servers) + " |")
print("|---|" + "---|" * len(servers))
print("| server CPU per delivered message, closed loop | " + " | ".join(cell_cpu(s) for s in servers) + " |")
print("| delivered msg/s, closed loop | " + " | ".join(cell_rate(s) for s in servers) + " |")
print(f"| p50 / p99 at {rate}/s | " + " | ".join(cell_latency(s) for s in servers) + " |")
print("| memory per idle connection | " + " | ".join(cell_idle(s) for s in servers) + " |")
print()
print(f"Reports: {out}")
EOF
