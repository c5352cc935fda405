#!/usr/bin/env bash
# soak.sh — long-run entry point: the chaos/soak runner (scripts/chaos.sh), which loops the
# Chaos tests with KLIFE_SOAK=1 and a new seed per round. Arguments go to chaos.sh
# (--minutes N, --seeds a,b,c, --seconds S, --filter F).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/chaos.sh "$@"
