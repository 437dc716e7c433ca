#!/usr/bin/env bash
# Installs what the test suite needs besides Rust, once, into target/tools
# (later runs find it there; `cargo clean` removes it):
#
#   tansu 0.6.0  a Kafka-protocol broker from crates.io, for the kafka-mode
#                tests and scripts/dev-cluster.sh kafka (about 4 minutes to
#                build, once)
#
# and checks for what it cannot install without root: a C toolchain and
# Debian's redis-server.
#
# scripts/test.sh runs it first; so does .ci/run (through scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/target/tools"

# The inbox's redis tests start Debian's redis-server (not installed here:
# that takes root; .ci/run does it).
if ! command -v redis-server >/dev/null; then
  echo "install-tools: 'redis-server' is missing: the inbox's redis tests start one." >&2
  echo "  On Debian or Ubuntu: sudo apt-get install redis-server" >&2
  exit 1
fi

for tool in cc make; do
  if ! command -v "$tool" >/dev/null; then
    echo "install-tools: '$tool' is missing: librdkafka (kafka mode) is built from source." >&2
    echo "  On Debian or Ubuntu: sudo apt-get install build-essential" >&2
    exit 1
  fi
done

if [ -x "$tools/bin/tansu" ]; then
  echo "install-tools: tansu is in $tools/bin"
elif command -v tansu >/dev/null; then
  echo "install-tools: tansu is on PATH ($(command -v tansu))"
else
  echo "install-tools: installing tansu 0.6.0 (a Kafka-compatible broker for the kafka tests) into $tools: about 4 minutes, once"
  CARGO_PROFILE_DEV_DEBUG=0 cargo install tansu --version 0.6.0 --locked --debug \
    --no-default-features --features dynostore --root "$tools"
fi
