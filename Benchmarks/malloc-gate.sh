#!/usr/bin/env bash
# malloc-gate.sh — the allocation gate of the benchmarks (see README.md).
#
#   bash Benchmarks/malloc-gate.sh [check]   run every benchmark measuring mallocs only and
#                                            compare each p90 with Thresholds/<swift x.y>/;
#                                            exits non-zero when any count moved
#   bash Benchmarks/malloc-gate.sh update    re-record Thresholds/<swift x.y>/ (review the diff!)
#
# Extra arguments go to the benchmark plugin, e.g. `--target RecordBatchBenchmarks`
# or `--filter 'RecordBatch\.encode.*'` (filters match whole benchmark names).
#
# ConsumerBenchmarks and ProducerBenchmarks run against a real broker (the embedded Tansu):
# KLIFE_TANSU_BIN, else ../.klife/tansu-path (scripts/bootstrap.sh), else `tansu` on PATH.
# Without one those targets are skipped, and the script says so.
#
# Only mallocCountTotal is recorded and checked: times depend on the machine, allocation
# counts do not. The run uses `--metric mallocCountTotal` for both update and check, so
# the framework's own per-iteration reads of /proc (which `cpuTotal` would add) never
# enter the counts.
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-check}"
[[ $# -gt 0 ]] && shift

version="$(swift --version 2>/dev/null | sed -nE 's/.*Swift version ([0-9]+\.[0-9]+).*/\1/p' | head -n 1)"
if [[ -z "$version" ]]; then
  echo "malloc-gate: cannot tell the Swift version from 'swift --version'" >&2
  exit 1
fi
dir="Thresholds/$version"

skip=()
if [[ -z "${KLIFE_TANSU_BIN:-}" && -r ../.klife/tansu-path ]]; then
  KLIFE_TANSU_BIN="$(cat ../.klife/tansu-path)"
  export KLIFE_TANSU_BIN
fi
if [[ -z "${KLIFE_TANSU_BIN:-}" ]] && ! command -v tansu >/dev/null; then
  echo "malloc-gate: no Tansu broker (run scripts/bootstrap.sh or set KLIFE_TANSU_BIN): SKIPPING ConsumerBenchmarks and ProducerBenchmarks" >&2
  skip=(--skip-target ConsumerBenchmarks --skip-target ProducerBenchmarks)
fi

case "$mode" in
  update)
    mkdir -p "$dir"
    swift package --disable-sandbox --allow-writing-to-package-directory benchmark thresholds update \
      --metric mallocCountTotal --path "$dir" --no-progress "${skip[@]}" "$@"
    echo "malloc-gate: wrote $dir; review 'git diff -- Benchmarks/$dir' before committing"
    ;;
  check)
    if [[ ! -d "$dir" ]]; then
      echo "malloc-gate: no thresholds for Swift $version ($dir); record them with: bash Benchmarks/malloc-gate.sh update" >&2
      exit 1
    fi
    swift package --disable-sandbox benchmark thresholds check \
      --metric mallocCountTotal --path "$dir" --no-progress "${skip[@]}" "$@"
    ;;
  *)
    echo "usage: $0 [check|update] [benchmark plugin options...]" >&2
    exit 64
    ;;
esac
