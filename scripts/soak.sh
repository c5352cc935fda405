#!/usr/bin/env bash
# soak.sh — the soak runner: Tests/KlifeTests/Soak/ (SoakTests) for N minutes. Idempotent and
# transactional producers against Tansu behind a FaultProxy (random kills, stalls, garbled
# answers) and an idempotent producer against librdkafka's mock cluster (leader moves, brokers
# down and up), and a consumer group on Tansu whose members are killed and closed while they read,
# the logs and what the group read checked after every round and at the end, resident memory sampled.
#
#   scripts/soak.sh                        # 5 minutes
#   scripts/soak.sh --minutes 30           # 30 minutes
#   scripts/soak.sh --minutes 30 --seed 7  # with the fault schedules of seed 7 (replay)
#
# Options:
#   --minutes N   run for N minutes (default 5; decimals allowed)
#   --seed S      KLIFE_SOAK_SEED: fixes the fault schedules (default: random, printed)
# Environment: KLIFE_SCRATCH_PATH  build directory (swift --scratch-path), default SwiftPM's .build.
#
# bootstrap -> swift build --build-tests (once) ->
#   KLIFE_SOAK_MINUTES=N swift test --skip-build --filter SoakTests
# Writes .klife/soak/soak-<stamp>.log (the whole output) and .klife/soak/rss-<stamp>.csv
# (elapsed seconds, RSS KiB, records acknowledged so far), prints the summary, and exits 1 when
# the soak failed (a violation, RSS over its bound or growing across rounds, or a hang).
# Without KLIFE_SOAK_MINUTES (plain `swift test`) the same test runs a bounded ~15 s version.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=5
seed=""
while (($#)); do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v m="$minutes" 'BEGIN { exit !(m > 0 && m <= 1440) }' \
  || { echo "soak.sh: --minutes must be a number in (0, 1440]" >&2; exit 2; }
[[ -z "$seed" || "$seed" =~ ^[0-9]+$ ]] || { echo "soak.sh: --seed must be a whole number" >&2; exit 2; }

scratch=()
[[ -n "${KLIFE_SCRATCH_PATH:-}" ]] && scratch=(--scratch-path "$KLIFE_SCRATCH_PATH")

echo "==> bootstrap"
bash scripts/bootstrap.sh
source scripts/env.sh

echo "==> swift build --build-tests ${scratch[*]}"
swift build --build-tests "${scratch[@]}"

mkdir -p .klife/soak
stamp="$(date -u +%Y%m%d-%H%M%S)"
log=".klife/soak/soak-$stamp.log"
# The rounds stop starting at N minutes; the last round's checks, the whole-log pass and the
# shutdown come on top. Kill the run if it hangs well past that.
limit=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 1800 }')

echo "==> soak: $minutes minute(s)${seed:+, seed $seed} (log: $log, memory: .klife/soak/rss-$stamp.csv)"
rc=0
env KLIFE_SOAK_MINUTES="$minutes" KLIFE_SOAK_STAMP="$stamp" ${seed:+KLIFE_SOAK_SEED="$seed"} \
  timeout --kill-after=30 "$limit" \
  swift test --skip-build "${scratch[@]}" --filter SoakTests 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}

echo
echo "==> summary"
sed -n '/^\[soak\] ---- summary/,/^\[soak\] result:/p' "$log"
if ((rc != 0)); then
  grep -E '^\[soak\] seed=' "$log" || true
  echo "==> FAILED (exit $rc$( ((rc == 124)) && echo ', timed out')); violations and events: grep '^\[soak\]' $log"
  exit 1
fi
echo "==> soak passed"
