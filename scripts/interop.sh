#!/usr/bin/env bash
# interop.sh — checks the librdkafka interop tools against a throwaway Tansu
# broker (ApiVersions table, create topic, produce, consume, compare).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
exec "$KLIFE_PYTHON" Tests/interop/selfcheck.py "$@"
