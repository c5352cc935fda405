#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets in Fuzz/ and run each on a scratch copy of its
# checked-in seed corpus.
#
#   bash scripts/fuzz.sh                      every target, 10,000,000 inputs each
#   bash scripts/fuzz.sh --target FuzzSASL --runs 1000000
#   bash scripts/fuzz.sh --seconds 300        every target for at most 5 minutes
#   bash scripts/fuzz.sh --ci                 bounded: 20,000 inputs per target
#
# Options:
#   --runs N        inputs per target (libFuzzer -runs); default 10000000
#   --seconds S     stop a target after S seconds (libFuzzer -max_total_time), whichever comes first
#   --target NAME   run only NAME (repeatable): FuzzRecordBatch FuzzResponses FuzzFraming FuzzSASL
#   --ci            --runs 20000 unless --runs is given
#   --no-build      use the binaries already in .build-fuzz
#   KLIFE_FUZZ_FLAGS (environment): more libFuzzer flags, e.g. "-seed=1 -max_len=16384"
#
# Builds with `swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library`
# in .build-fuzz; runs under `nice -n 10`. Each target works in .klife/fuzz/<Target>/: corpus/
# (a fresh copy of Fuzz/Corpus/<Target>, grown by the run), fuzz.log, and crash-*, leak-*,
# oom-*, timeout-* inputs when something fails. Prints inputs run, exec/s, coverage (cov, ft:
# libFuzzer's final figures) and the result per target; exits 1 if any target failed, keeping
# its input. Reproduce one: .build-fuzz/release/<Target> .klife/fuzz/<Target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(FuzzRecordBatch FuzzResponses FuzzFraming FuzzSASL)
runs=""
seconds=""
ci=0
build=1
targets=()
while (($#)); do
  case "$1" in
    --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --target) targets+=("${2:?--target needs a name}"); shift 2 ;;
    --ci) ci=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$runs" ]]; then
  if ((ci)); then runs=20000; else runs=10000000; fi
fi
[[ "$runs" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --runs must be a number" >&2; exit 2; }
[[ -z "$seconds" || "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --seconds must be a number" >&2; exit 2; }
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target $t (${ALL_TARGETS[*]})" >&2; exit 2; }
done

bin=.build-fuzz/release
if ((build)); then
  echo "==> bootstrap"
  bash scripts/bootstrap.sh
  source scripts/env.sh
  for t in "${targets[@]}"; do
    echo "==> build $t"
    nice -n 10 swift build -c release --package-path Fuzz --scratch-path .build-fuzz \
      -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product "$t"
  done
fi

# One libFuzzer figure from a log: the last "cov: N" / "ft: N" / "corp: N" on a status line.
status_field() { { grep -E '^#[0-9]+' "$2" || true; } | { grep -oE "$1: [0-9]+" || true; } | tail -n 1 | awk '{print $2}'; }
stat_field() { { grep -E "^stat::$1:" "$2" || true; } | tail -n 1 | awk '{print $2}'; }

failed=0
summary=()
for t in "${targets[@]}"; do
  work=.klife/fuzz/$t
  rm -rf "$work/corpus"
  mkdir -p "$work/corpus"
  cp Fuzz/Corpus/"$t"/* "$work/corpus/"
  seeds=$(ls "$work/corpus" | wc -l)
  flags=(-runs="$runs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/")
  [[ -n "$seconds" ]] && flags+=(-max_total_time="$seconds")
  read -r -a extra <<<"${KLIFE_FUZZ_FLAGS:-}"
  flags+=(${extra[@]+"${extra[@]}"})
  echo "==> fuzz $t (${runs} runs${seconds:+, at most ${seconds} s}, ${seeds} seeds) — log: $work/fuzz.log"
  rc=0
  touch "$work/.started"
  started=$(date +%s.%N)
  nice -n 10 "$bin/$t" "${flags[@]}" "$work/corpus" >"$work/fuzz.log" 2>&1 || rc=$?
  executed=$(stat_field number_of_executed_units "$work/fuzz.log")
  [[ -n "$executed" ]] || executed=$({ grep -oE '^#[0-9]+' "$work/fuzz.log" || true; } | tail -n 1 | tr -d '#')
  rate=$(stat_field average_exec_per_sec "$work/fuzz.log")
  if [[ -z "$rate" || "$rate" == 0 ]] && [[ -n "$executed" ]]; then
    # libFuzzer divides by whole seconds; short runs get a wall-clock rate instead.
    rate=$(awk -v n="$executed" -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", n / (b - a) }')
  fi
  cov=$(status_field cov "$work/fuzz.log")
  ft=$(status_field ft "$work/fuzz.log")
  corp=$(status_field corp "$work/fuzz.log")
  if ((rc == 0)); then
    result=ok
  else
    failed=1
    # Only this run's inputs: earlier failures stay on disk, but are not this result.
    artifacts=$(find "$work" -maxdepth 1 -newer "$work/.started" -regextype egrep \
      -regex '.*/(crash|leak|oom|timeout|slow-unit)-[0-9a-f]+' | sort | tr '\n' ' ')
    result="FAILED (exit $rc) ${artifacts:-see $work/fuzz.log}"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|Fatal error|.*fuzz invariant)' "$work/fuzz.log" | head -n 5 || true
  fi
  line=$(printf '%-16s inputs %-10s exec/s %-7s cov %-6s ft %-6s corpus %-6s %s' \
    "$t" "${executed:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")
  echo "    $line"
  summary+=("$line")
done

echo "==> summary"
printf '    %s\n' "${summary[@]}"
exit "$failed"
