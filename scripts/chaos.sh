#!/usr/bin/env bash
# chaos.sh — the soak/chaos runner: loops the Chaos tests (producer through a FaultProxy
# that kills and stalls connections) with a new seed each round, KLIFE_SOAK=1.
#
#   scripts/chaos.sh                      # new random seeds for 5 minutes
#   scripts/chaos.sh --minutes 30         # ... for 30 minutes
#   scripts/chaos.sh --seeds 7,42,1234    # exactly these seeds (e.g. to replay a failure)
#
# Options:
#   --minutes N    keep starting rounds for N minutes (default 5; ignored with --seeds)
#   --seeds a,b,c  run these seeds, in order
#   --seconds S    KLIFE_SOAK_SECONDS for each test of a round (default: $KLIFE_SOAK_SECONDS, else 30)
#   --filter F     swift test filter (default: ChaosTests)
# Environment: KLIFE_SCRATCH_PATH  build directory (swift --scratch-path), default SwiftPM's .build.
#
# bootstrap -> swift build --build-tests (once) -> per seed:
#   KLIFE_SOAK=1 KLIFE_SOAK_SECONDS=S KLIFE_CHAOS_SEED=seed swift test --skip-build --filter F
# Stops at the first failing round, prints its seed and the replay command, exits 1.
# Each round's output is kept in .klife/chaos/seed-<seed>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=5
seeds=""
seconds="${KLIFE_SOAK_SECONDS:-30}"
filter="ChaosTests"
while (($#)); do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift 2 ;;
    --seeds) seeds="${2:?--seeds needs a,b,c}"; shift 2 ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --filter) filter="${2:?--filter needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "chaos.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$minutes" =~ ^[0-9]+$ ]] || { echo "chaos.sh: --minutes must be a whole number" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "chaos.sh: --seconds must be a whole number" >&2; exit 2; }

scratch=()
[[ -n "${KLIFE_SCRATCH_PATH:-}" ]] && scratch=(--scratch-path "$KLIFE_SCRATCH_PATH")

echo "==> bootstrap"
bash scripts/bootstrap.sh
source scripts/env.sh

echo "==> swift build --build-tests ${scratch[*]}"
swift build --build-tests "${scratch[@]}"

mkdir -p .klife/chaos
# A round runs 3 tests of S seconds each plus setup and drain; kill it if it hangs.
round_limit=$((seconds * 6 + 600))

random_seed() { od -An -N4 -tu4 /dev/urandom | tr -d ' '; }

run_round() {
  local seed="$1" log=".klife/chaos/seed-$1.log" rc=0
  echo "==> round $round: seed=$seed (KLIFE_SOAK_SECONDS=$seconds, log: $log)"
  KLIFE_SOAK=1 KLIFE_SOAK_SECONDS="$seconds" KLIFE_CHAOS_SEED="$seed" \
    timeout --kill-after=30 "$round_limit" \
    swift test --skip-build "${scratch[@]}" --filter "$filter" >"$log" 2>&1 || rc=$?
  grep -E '^\[chaos\]|error:|failed' "$log" || true
  if ((rc != 0)); then
    echo
    echo "==> last lines of $log:"
    tail -n 40 "$log"
    echo
    echo "==> FAILED: seed=$seed (exit $rc$( ((rc == 124)) && echo ', timed out'))"
    echo "==> replay: scripts/chaos.sh --seeds $seed --seconds $seconds"
    echo "==>     or: KLIFE_SOAK=1 KLIFE_SOAK_SECONDS=$seconds KLIFE_CHAOS_SEED=$seed swift test --filter $filter"
    exit 1
  fi
}

round=0
if [[ -n "$seeds" ]]; then
  IFS=',' read -r -a list <<<"$seeds"
  for seed in "${list[@]}"; do
    [[ "$seed" =~ ^[0-9]+$ ]] || { echo "chaos.sh: seed '$seed' is not a number" >&2; exit 2; }
    round=$((round + 1))
    run_round "$seed"
  done
else
  deadline=$(( $(date +%s) + minutes * 60 ))
  # Bounded: at most 10,000 rounds, none started after the deadline.
  while (( $(date +%s) < deadline && round < 10000 )); do
    round=$((round + 1))
    run_round "$(random_seed)"
  done
fi
echo "==> chaos: $round round(s) passed"
