#!/usr/bin/env bash
# demo.sh — the single demo command.
#   bootstrap -> swift build -c release --product klife -> klife demo [ARGS...]
# `klife demo` starts its own embedded broker, then produces and consumes.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> [1/3] bootstrap"
bash scripts/bootstrap.sh
source scripts/env.sh

echo "==> [2/3] swift build -c release --product klife"
swift build -c release --product klife

echo "==> [3/3] klife demo${*:+ $*}"
exec .build/release/klife demo "$@"
