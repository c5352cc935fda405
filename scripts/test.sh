#!/usr/bin/env bash
# test.sh — the single test command.
#   bootstrap -> swift build --build-tests -> swift test --skip-build [ARGS...]
# Extra arguments go to `swift test` (e.g. --filter KlifeProtocolTests).
# KLIFE_SOAK (scripts/chaos.sh) and KLIFE_SOAK_MINUTES (scripts/soak.sh) are left unset unless
# the caller sets them: without them the chaos and soak tests run their short versions.
# Exits with the exit code of `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${KLIFE_SOAK:-}" || "${KLIFE_SOAK}" == 0 ]]; then unset KLIFE_SOAK; fi

echo "==> [1/3] bootstrap"
bash scripts/bootstrap.sh
source scripts/env.sh

echo "==> [2/3] swift build --build-tests"
swift build --build-tests

echo "==> [3/3] swift test --skip-build${*:+ $*}"
rc=0
swift test --skip-build "$@" || rc=$?
echo "==> swift test exit code: $rc"
exit "$rc"
