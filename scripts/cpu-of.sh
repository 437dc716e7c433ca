#!/usr/bin/env bash
# CPU seconds (user + system) used by processes, for the multi-process
# benchmarks (bench-grpc.sh, bench-kafka.sh):
#
#   before=$(scripts/cpu-of.sh PID...)            # one line: each process's CPU seconds
#   scripts/cpu-of.sh PID... | scripts/cpu-of.sh --since "$before" NAME...
#
# The second form reads the later sample on stdin and prints what each
# named process used in between, and the total.
set -euo pipefail
tick=$(getconf CLK_TCK)
if [ "${1:-}" = --since ]; then
  before=$2
  shift 2
  read -r -a after
  read -r -a start <<<"$before"
  total=0
  line="cpu:"
  for i in "${!after[@]}"; do
    used=$(awk -v a="${after[$i]}" -v b="${start[$i]}" 'BEGIN { printf "%.2f", a - b }')
    total=$(awk -v t="$total" -v u="$used" 'BEGIN { printf "%.2f", t + u }')
    line="$line ${1:-process$i} $used s,"
    shift || true
  done
  echo "$line total $total s"
  exit 0
fi
for pid in "$@"; do
  awk -v tick="$tick" '{ printf "%.2f ", ($14 + $15) / tick }' "/proc/$pid/stat" 2>/dev/null || printf '0 '
done
echo
