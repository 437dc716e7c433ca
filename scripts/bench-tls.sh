#!/usr/bin/env bash
# TLS against plaintext, in the same run: a release gateway (local mode,
# crates/jim-bench/gateway.toml) with a certificate made here for
# 127.0.0.1, loaded over TCP with TLS and over plain TCP in turn.
#
#   scripts/bench-tls.sh connect --connections 5000 --concurrency 64
#   scripts/bench-tls.sh c2c --clients 1000 --window 16 --duration 5
#
# ROUNDS (default 2) alternates the two transports that many times each.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
{
  cat crates/jim-bench/gateway.toml
  printf '\n[tls]\ncert = "%s"\nkey = "%s"\n# The admin API stays plaintext: the bench reads it.\nplaintext = ["admin"]\n' \
    "$dir/cert.pem" "$dir/key.pem"
} > "$dir/gateway.toml"
for round in $(seq "${ROUNDS:-2}"); do
  echo "== round $round: TLS"
  GATEWAY_CONFIG="$dir/gateway.toml" scripts/bench.sh "$@" --transport tls --ca "$dir/cert.pem"
  echo "== round $round: plaintext"
  scripts/bench.sh "$@" --transport tcp
done
