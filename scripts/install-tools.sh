#!/usr/bin/env bash
# Installs what the test suite needs besides Rust, once, into target/tools
# (later runs find it there; `cargo clean` removes it):
#
#   tansu 0.6.0  a Kafka-protocol broker from crates.io, for the kafka-mode
#                tests and scripts/dev-cluster.sh kafka (about 4 minutes to
#                build, once)
#
#   clients/typescript/node_modules  the TypeScript SDK's build and test
#                tools from npm (`npm ci`, when the lockfile changed)
#
# and checks for what it cannot install without root: a C toolchain,
# Debian's redis-server and chromium, and Node 20 or later.
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

# jim-bench's peer protocols are tested against Debian's mosquitto and nats-server.
for server in mosquitto nats-server; do
  if ! [ -x "/usr/sbin/$server" ] && ! command -v "$server" >/dev/null; then
    echo "install-tools: '$server' is missing: jim-bench's peer protocols are tested against it." >&2
    echo "  On Debian or Ubuntu: sudo apt-get install mosquitto nats-server" >&2
    exit 1
  fi
done

# The SDK's tests run under Node 20+; its browser test drives Debian's chromium.
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "install-tools: Node.js 20 or later is missing: the TypeScript SDK's tests run under it." >&2
  echo "  It has: $(node --version 2>/dev/null || echo 'no node')" >&2
  exit 1
fi
if ! command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null; then
  echo "install-tools: '${CHROMIUM:-/usr/bin/chromium}' is missing: the web chat's test drives it headless." >&2
  echo "  On Debian or Ubuntu: sudo apt-get install chromium (or set CHROMIUM to a Chromium binary)" >&2
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

sdk=clients/typescript
if [ ! -f "$sdk/node_modules/.package-lock.json" ] || [ "$sdk/package-lock.json" -nt "$sdk/node_modules/.package-lock.json" ]; then
  echo "install-tools: npm ci in $sdk (the SDK's compiler, API docs and test tools; no runtime dependency)"
  npm --prefix "$sdk" ci --no-audit --no-fund
else
  echo "install-tools: $sdk/node_modules is up to date"
fi
