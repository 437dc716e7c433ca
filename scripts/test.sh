#!/usr/bin/env bash
# The whole test suite, as the README says (and CI runs): installs the
# tools the tests need when missing, runs every test of the workspace with
# every feature, and ends with one line saying how it went.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh
mkdir -p target
started=$(date +%s)
set +e
# --no-fail-fast: every test binary runs, so the closing count is the whole story.
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee target/test.log
status=${PIPESTATUS[0]}
set -e
awk -v status="$status" -v seconds="$(( $(date +%s) - started ))" '
  /^test result:/ { passed += $4; failed += $6; ignored += $8; binaries++ }
  END {
    verdict = (status == 0) ? "ok" : "FAILED (cargo test exited with " status ")"
    printf "\n==> tests %s: %d passed, %d failed, %d ignored, in %d test binaries and doc-test runs, %d s (log: target/test.log)\n",
      verdict, passed, failed, ignored, binaries, seconds
  }' target/test.log
exit "$status"
