#!/usr/bin/env bash
# flow-demo.sh — a Klife group consumer writing into a PostgreSQL that struggles.
#   bootstrap -> build Examples (release, .build-examples; debug with --ci) -> Tansu on a free port ->
#   PostgreSQL via scripts/postgres.sh -> flow-demo -> figure line -> plot (docs/images/flow-demo.png)
#
#   bash scripts/flow-demo.sh [--records N] [--struggle-seconds S] [--mode M] [--rate R] [--ci] [--no-plot]
#                             [--png PATH] [--csv PATH] [-- FLOW-DEMO OPTIONS...]
#
#   --records N            records to produce and consume (default 300000)
#   --struggle-seconds S   how long the database struggles (default 10)
#   --mode adaptive|manual|none
#                          the consumer's pacing (default adaptive: the adaptive limit on
#                          records in flight; manual: a fixed rate limit; none: nothing)
#   --rate R               manual: records per second (default 20000)
#   --ci                   bounded run for CI: a debug build, adaptive (unless --mode), 20000
#                          records (at 5000/s in manual mode), a 3 s struggle, no plot; exits
#                          non-zero unless lost=0, duplicated=0, rebalances=0 and rows=records
#   --no-plot              skip the PNG
#   --png PATH             where the plot goes (default docs/images/flow-demo.png)
#   --csv PATH             the timeline CSV (default .klife/flow-demo.csv)
#   after --               passed to flow-demo as they are (--struggle lock, --row-cost-ms 1,
#                          --restart-at 0, --tolerance 4, --limit-min 50, ...; `flow-demo --help`
#                          lists them)
#
# Every process it starts (Tansu, PostgreSQL, the demo) is stopped on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

records=300000
struggle_seconds=10
mode=adaptive
rate=20000
rate_set=0
ci=0
plot=1
png=docs/images/flow-demo.png
csv=.klife/flow-demo.csv
extra=()
while (($#)); do
  case "$1" in
    --records) records="$2"; shift 2 ;;
    --struggle-seconds) struggle_seconds="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --rate) rate="$2"; rate_set=1; shift 2 ;;
    --ci) ci=1; plot=0; shift ;;
    --no-plot) plot=0; shift ;;
    --png) png="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "flow-demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ((ci)); then
  records=20000
  struggle_seconds=3
  # Manual mode: slower than the full run, so that the restart and the struggle each find records
  # to write. (Adaptive and none run at the database's pace: the struggle, 3 s at 2,000 rows/s,
  # still finds records left after the restart's join.)
  ((rate_set)) || rate=5000
  csv=.klife/flow-demo-ci.csv
fi

echo "==> [1/5] bootstrap"
bash scripts/bootstrap.sh
source scripts/env.sh
mkdir -p .klife

# Release for the demo's figures; CI builds debug (a release build of postgres-nio and its
# dependencies takes several times as long on 2 cores, and CI only checks what is lost or doubled).
config=release
((ci)) && config=debug
echo "==> [2/5] swift build -c $config --package-path Examples --scratch-path .build-examples"
swift build -c "$config" --package-path Examples --scratch-path .build-examples --product flow-demo
bin="$(swift build -c "$config" --package-path Examples --scratch-path .build-examples --show-bin-path)/flow-demo"

tansu_pid=""
pg_state=".klife/flow-demo-postgres.$$.env"
demo_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$demo_pid" ]] && kill -0 "$demo_pid" 2>/dev/null; then kill "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
  if [[ -n "$tansu_pid" ]] && kill -0 "$tansu_pid" 2>/dev/null; then
    kill "$tansu_pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$tansu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$tansu_pid" 2>/dev/null || true
    wait "$tansu_pid" 2>/dev/null || true
  fi
  bash scripts/postgres.sh stop --state "$pg_state" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

echo "==> [3/5] Tansu and PostgreSQL on 127.0.0.1"
kafka_port="$(free_port)"
tansu_log=".klife/flow-demo-tansu.log"
RUST_LOG="${KLIFE_TANSU_LOG:-warn}" "$KLIFE_TANSU_BIN" broker \
  --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" >"$tansu_log" 2>&1 </dev/null &
tansu_pid=$!
for _ in $(seq 100); do
  if (echo >"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null; then break; fi
  kill -0 "$tansu_pid" 2>/dev/null || { echo "Tansu exited; its log:" >&2; cat "$tansu_log" >&2; exit 1; }
  sleep 0.1
done
echo "Tansu on 127.0.0.1:$kafka_port (pid $tansu_pid)"
pg_url="$(bash scripts/postgres.sh start --state "$pg_state" | sed -n 's/^PGURL=//p')"
echo "PostgreSQL at $pg_url"

rate_args=()
[[ "$mode" == manual ]] && rate_args=(--rate "$rate")
echo "==> [4/5] flow-demo --records $records --struggle-seconds $struggle_seconds --mode $mode${rate_args[*]:+ ${rate_args[*]}}${extra[*]:+ ${extra[*]}}"
out=".klife/flow-demo.out"
"$bin" --bootstrap "127.0.0.1:$kafka_port" --postgres "$pg_url" \
  --records "$records" --struggle-seconds "$struggle_seconds" --mode "$mode" "${rate_args[@]}" \
  --csv "$csv" "${extra[@]}" >"$out" &
demo_pid=$!
demo_rc=0
wait "$demo_pid" || demo_rc=$?
demo_pid=""
figures="$(grep '^records=' "$out" | tail -1 || true)"
echo "$figures"
[[ -n "$figures" ]] || { echo "flow-demo printed no figure line (exit $demo_rc)" >&2; exit 1; }

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$figures"; }
check_rc=0
if [[ "$(field lost)" != 0 || "$(field duplicated)" != 0 || "$(field rows)" != "$(field records)" || "$(field rebalances)" != 0 ]]; then
  echo "flow-demo: FAILED: lost=$(field lost) duplicated=$(field duplicated) rows=$(field rows) records=$(field records) rebalances=$(field rebalances)" >&2
  check_rc=1
fi
if ((demo_rc != 0)); then
  echo "flow-demo: FAILED: exit code $demo_rc" >&2
  check_rc=1
fi

if ((plot)); then
  echo "==> [5/5] plot"
  py="$KLIFE_PYTHON"
  if ! "$py" -c 'import matplotlib' >/dev/null 2>&1; then
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$py" -m pip install --quiet matplotlib </dev/null
  fi
  mkdir -p "$(dirname "$png")"
  "$py" scripts/flow-demo-plot.py "$csv" "$png"
else
  echo "==> [5/5] plot skipped"
fi
if ((check_rc == 0)); then echo "flow-demo: ok (timeline $csv)"; fi
exit "$check_rc"
