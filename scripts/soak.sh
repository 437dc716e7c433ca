#!/usr/bin/env bash
# A soak of a release gateway (local mode, crates/jim-bench/gateway.toml):
# for DURATION seconds (default 180) clients connect, sign in and leave
# over and over (2,000 at a time, both transports in turn) while others
# exchange one-to-one messages at RATE a second (default 2,000). Every 10 s
# it prints the gateway's memory (RSS) and open files; at the end it checks
# that the open files came back to where they started (within 16) and
# that memory stopped growing: it rises while the inboxes fill up to their
# retention (1,000 entries per user), then holds, so the last third of the
# run may add at most 10%. Exit 0 if so, 1 if not.
#
#   scripts/soak.sh
#   DURATION=600 RATE=5000 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-180}"
rate="${RATE:-2000}"
cargo build --release -q -p jim-gateway -p jim-bench
./target/release/jim-gateway --config crates/jim-bench/gateway.toml --log warn >/dev/null 2>&1 &
gateway=$!
load=()
trap 'kill "${load[@]}" $gateway 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf http://127.0.0.1:9002/healthz >/dev/null 2>&1 && break
  sleep 0.1
done
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$gateway/status"; }
files() { ls "/proc/$gateway/fd" | wc -l; }
start_files=$(files)
echo "soak: gateway $gateway, $duration s; at start: $(( $(rss) / 1024 )) MiB, $start_files open files"
printf '%8s %10s %12s\n' seconds "rss MiB" "open files"

./target/release/jim-bench c2c --clients 200 --rate "$rate" --duration "$duration" --quiet >target/soak-c2c.log 2>&1 &
load+=($!)
(
  end=$(( $(date +%s) + duration ))
  transport=tcp
  while [ "$(date +%s)" -lt "$end" ]; do
    ./target/release/jim-bench connect --transport "$transport" --connections 2000 --concurrency 64 --quiet >/dev/null 2>&1 || true
    if [ "$transport" = tcp ]; then transport=ws; else transport=tcp; fi
  done
) &
load+=($!)

started=$(date +%s)
baseline=""
last=0
while kill -0 "${load[0]}" 2>/dev/null; do
  sleep 10
  elapsed=$(( $(date +%s) - started ))
  last=$(rss)
  printf '%8d %10d %12d\n' "$elapsed" $(( last / 1024 )) "$(files)"
  if [ -z "$baseline" ] && [ "$elapsed" -ge $(( duration * 2 / 3 )) ]; then baseline=$last; fi
done
wait "${load[@]}" 2>/dev/null || true
load=()
# The last connections close within a moment.
for _ in $(seq 50); do
  [ "$(files)" -le $(( start_files + 16 )) ] && break
  sleep 0.1
done
end_files=$(files)
end_rss=$(rss)
echo "soak: at the end: $(( end_rss / 1024 )) MiB, $end_files open files; the c2c run:"
grep -E 'sent / acked|loss' target/soak-c2c.log || true
status=0
if [ "$end_files" -gt $(( start_files + 16 )) ]; then
  echo "soak: FAILED: $end_files open files, $start_files at start" >&2
  status=1
fi
if [ -n "$baseline" ] && [ "$end_rss" -gt $(( baseline * 11 / 10 )) ]; then
  echo "soak: FAILED: memory grew by more than 10% in the last third of the run: $(( baseline / 1024 )) to $(( end_rss / 1024 )) MiB" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "soak: ok"
exit "$status"
