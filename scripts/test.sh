#!/usr/bin/env bash
# The whole test suite, as the README says (and CI runs): installs the
# tools the tests need when missing, runs every test of the workspace with
# every feature, then the TypeScript SDK's tests (unit, against the gateway
# binary cargo just built, and the web chat in Chromium), and ends with one
# line saying how it went.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
mkdir -p target
started=$(date +%s)
set +e
# --no-fail-fast: every test binary runs, so the closing count is the whole story.
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee target/test.log
status=${PIPESTATUS[0]}
# The SDK's tests start jim-gateway and web from debug/ in cargo's target
# directory (CARGO_TARGET_DIR, or target/), which cargo test built.
npm --prefix clients/typescript test 2>&1 | tee target/test-typescript.log
sdk_status=${PIPESTATUS[0]}
set -e
rust=$(awk '
  /^test result:/ { passed += $4; failed += $6; ignored += $8; binaries++ }
  END { printf "%d passed, %d failed, %d ignored, in %d test binaries and doc-test runs", passed, failed, ignored, binaries }' target/test.log)
sdk=$(awk '
  /^ℹ pass / { passed = $3 } /^ℹ fail / { failed = $3 }
  END { printf "%d passed, %d failed", passed, failed }' target/test-typescript.log)
if [ "$status" -eq 0 ] && [ "$sdk_status" -eq 0 ]; then
  verdict=ok
else
  verdict="FAILED (cargo test exited with $status, the SDK's tests with $sdk_status)"
fi
printf '\n==> tests %s: Rust %s; TypeScript SDK %s; %d s (logs: target/test.log, target/test-typescript.log; screenshots: clients/typescript/test-artifacts)\n' \
  "$verdict" "$rust" "$sdk" "$(( $(date +%s) - started ))"
[ "$verdict" = ok ]
