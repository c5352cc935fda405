#!/usr/bin/env bash
# test.sh — the single test command.
#   bootstrap -> swift build --build-tests -> swift test --skip-build [ARGS...] -> side packages
#   (Fuzz: build + 20,000 inputs per target; Benchmarks: build; Examples: the flow demo;
#   Integrations: build + test; docs-examples.sh; docc.sh)
# Extra arguments go to `swift test` (e.g. --filter KlifeProtocolTests).
# KLIFE_SOAK (scripts/chaos.sh) and KLIFE_SOAK_MINUTES (scripts/soak.sh) are left unset unless
# the caller sets them: without them the chaos and soak tests run their short versions.
# Exits with the exit code of `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${KLIFE_SOAK:-}" || "${KLIFE_SOAK}" == 0 ]]; then unset KLIFE_SOAK; fi

echo "==> [1/4] bootstrap"
bash scripts/bootstrap.sh
source scripts/env.sh

echo "==> [2/4] swift build --build-tests"
swift build --build-tests

echo "==> [3/4] swift test --skip-build${*:+ $*}"
rc=0
swift test --skip-build "$@" || rc=$?
echo "==> swift test exit code: $rc"

# The packages beside the library build on every run: the fuzz targets (built with
# libFuzzer and run briefly over their seed corpora) and the benchmarks. Skipped when
# arguments narrow the run to some tests, or with KLIFE_SKIP_SIDE_PACKAGES=1.
if (($# == 0)) && [[ "${KLIFE_SKIP_SIDE_PACKAGES:-0}" != 1 ]]; then
  echo "==> [4/4] side packages: Fuzz (fuzz.sh --ci), Benchmarks (swift build), Examples (flow-demo.sh --ci), Integrations, docs examples, DocC"
  side=0
  bash scripts/fuzz.sh --ci || side=1
  swift build --package-path Benchmarks --scratch-path .build-benchmarks || side=1
  # Builds the Examples package (postgres-nio) and runs the PostgreSQL flow-control demo, bounded:
  # 20,000 records and a 3 s struggle; fails unless nothing is lost or duplicated.
  bash scripts/flow-demo.sh --ci || side=1
  # The adapters for swift-log, swift-metrics and swift-service-lifecycle (Integrations/, its
  # own package): built with their example and tested against an embedded broker.
  swift build --package-path Integrations --scratch-path .build-integrations --build-tests || side=1
  swift test --package-path Integrations --scratch-path .build-integrations --skip-build || side=1
  # Every Swift block of README.md and docs/*.md compiled, the README's example run on Tansu.
  bash scripts/docs-examples.sh || side=1
  # The DocC archives: fails on any docc warning or undocumented public symbol.
  bash scripts/docc.sh || side=1
  echo "==> side packages: $([[ $side == 0 ]] && echo ok || echo FAILED)"
  if ((side != 0 && rc == 0)); then rc=1; fi
fi
exit "$rc"
