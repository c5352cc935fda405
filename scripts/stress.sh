#!/usr/bin/env bash
# stress.sh — repeats timing-sensitive tests many times, under ThreadSanitizer and/or with every
# core kept busy, and counts failures. A race that shows once is a bug: any failure fails the run.
#
#   scripts/stress.sh                       # the fault tests, 200 runs under TSan + 200 under CPU load
#   scripts/stress.sh --runs 50 --mode tsan --filter IdempotenceTests.testNumberedStreamUnderFaultsIsExactlyOnceAndInOrder
#
# Options:
#   --runs N      runs per mode (default 200)
#   --mode M      tsan | load | tsan+load | all (default all: tsan, then load, each N runs)
#   --filter F    swift test filter (default: the idempotence/ordering fault tests)
# Modes:
#   tsan   the test binary built with --sanitize=thread (scripts/sanitize.sh's build, .build-tsan),
#          which changes the timing of every thread;
#   load   the normal debug build while one busy loop per core competes for the CPU;
#   tsan+load  both at once.
# Each failing run's output is kept in .klife/stress/<mode>-<run>.log; a summary line per mode.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=200
mode=all
filter='IdempotenceTests|MockClusterTests.testLeaderMove|MockClusterTests.testRecordForDownedLeader'
while (($#)); do
  case "$1" in
    --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
    --mode) mode="${2:?--mode needs tsan|load|tsan+load|all}"; shift 2 ;;
    --filter) filter="${2:?--filter needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "stress.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[0-9]+$ ]] || { echo "stress.sh: --runs must be a whole number" >&2; exit 2; }
case "$mode" in
  all) modes=(tsan load) ;;
  tsan|load|tsan+load) modes=("$mode") ;;
  *) echo "stress.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac

bash scripts/bootstrap.sh
source scripts/env.sh
mkdir -p .klife/stress

needs_tsan=0
for m in "${modes[@]}"; do [[ "$m" == tsan* ]] && needs_tsan=1; done
if ((needs_tsan)); then
  echo "==> build (thread sanitizer, .build-tsan)"
  swift build --build-tests --sanitize=thread --scratch-path .build-tsan -Xswiftc -Xcc -Xswiftc -DKLIFE_TSAN -Xcc -DKLIFE_TSAN
fi
if [[ " ${modes[*]} " == *" load "* ]]; then
  echo "==> build (debug, .build)"
  swift build --build-tests
fi

busy_pids=()
start_load() {
  local cores i
  cores=$(nproc)
  for ((i = 0; i < cores; i++)); do
    ( while :; do :; done ) &
    busy_pids+=($!)
  done
}
stop_load() {
  ((${#busy_pids[@]})) && kill "${busy_pids[@]}" 2>/dev/null || true
  busy_pids=()
}
trap stop_load EXIT

total_failures=0
for m in "${modes[@]}"; do
  args=(--skip-build --filter "$filter")
  export TSAN_OPTIONS="suppressions=$PWD/scripts/sanitizers/thread.supp halt_on_error=0 report_signal_unsafe=0 history_size=4 exitcode=66"
  case "$m" in
    tsan) args+=(--sanitize=thread --scratch-path .build-tsan) ;;
    load) start_load ;;
    tsan+load) args+=(--sanitize=thread --scratch-path .build-tsan); start_load ;;
  esac
  failures=0
  for ((run = 1; run <= runs; run++)); do
    log=".klife/stress/$m-$run.log"
    rc=0
    timeout --kill-after=20 600 swift test "${args[@]}" >"$log" 2>&1 || rc=$?
    if ((rc != 0)) || grep -q -E '^WARNING: ThreadSanitizer' "$log"; then
      failures=$((failures + 1))
      echo "==> [$m] run $run FAILED (exit $rc): $log"
      grep -E ' error: |WARNING: ThreadSanitizer' "$log" | head -n 5 || true
    else
      rm -f "$log"
    fi
    if ((run % 20 == 0)); then echo "==> [$m] $run/$runs runs, $failures failed"; fi
  done
  stop_load
  echo "==> [$m] $runs runs of '$filter': $failures failed"
  total_failures=$((total_failures + failures))
done
((total_failures == 0)) || exit 1
