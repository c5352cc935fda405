#!/usr/bin/env bash
# soak.sh — long-run entry point: runs the Soak test suites with KLIFE_SOAK=1.
# Extra arguments go to `swift test` after `--filter Soak`.
set -euo pipefail
cd "$(dirname "$0")/.."
KLIFE_SOAK=1 exec bash scripts/test.sh --filter Soak "$@"
