#!/usr/bin/env bash
# compare.sh — klife vs librdkafka on identical workloads against one fresh Tansu broker
# (or the klife-sink broker, or both one after the other).
#
#   Benchmarks/compare.sh [--runs N] [--quick | --full] [--cases REGEX] [--scale F]
#                         [--broker tansu|sink|both] [--scaling | --no-scaling]
#                         [--no-profile | --profile-mode produce|group] [--no-install]
#                         [--out FILE] [--keep-raw FILE] [--idle-wait S]
#
# Installs what it needs (scripts/bootstrap.sh, Debian librdkafka-dev for the headers),
# builds `klife` (release, scratch path .build-bench) and Benchmarks/peers/rdkafka_bench.c
# (linked against the librdkafka inside the confluent-kafka wheel), starts ONE Tansu
# broker on a free loopback port, and runs every case of the matrix --runs times,
# alternating which client goes first, each produce run on a fresh topic. Consume cases
# read one topic filled beforehand; the group cases join a fresh group in every run.
# After each case the per-run ratios (klife / librdkafka, both clients of one run measured
# back to back) are logged. Medians and ratios go into docs/benchmarks.md between the
# "compare.sh results" markers; with perf available a profile of `klife bench produce`
# goes between the "compare.sh profile" markers (--profile-mode group: of `bench consume
# --group`, between the "compare.sh consume profile" markers).
#
#   --runs N      runs per client and case (default 3; --quick: 1)
#   --quick       6 cases, 1 run, a fifth of the records (~30 s plus the profile)
#   --full        the default matrix plus acks 1/0, linger 0, 1 KiB codecs and more consume
#                 cases (~10 minutes; the default matrix takes ~4 on an idle 2-core machine)
#   --cases RE    only the cases of the chosen matrix whose id matches the extended regular
#                 expression RE as a whole (e.g. 'c-100-6p.*')
#   --profile-mode produce (default) or group: what the perf profile records
#   --scale F     multiply every record count by F (e.g. 0.2)
#   --broker B    tansu (default): a real broker sharing the cores; sink: klife-sink
#                 (Benchmarks/Sources/KlifeSink), which acknowledges Produce without storing
#                 and serves consume cases from a record set it prepares at start (restarted
#                 per consume case; group cases are skipped), so each client runs at its own
#                 ceiling; both: the matrix against the sink, then against Tansu. Sink results
#                 get tables of their own; the profile always runs against Tansu.
#   --scaling     also run the reactor-scaling case (see run_scaling below): klife-sink with
#                 --nodes 2, klife with 1 and 2 reactors (2 also pinned) and librdkafka, produce
#                 and consume, in a table of its own (1–3 minutes). On by default with --broker
#                 sink|both and the default or full matrix; --no-scaling turns it off. With
#                 --scaling the --cases regex may match nothing (only the scaling case runs).
#   --no-profile  skip the perf profile
#   --no-install  do not run bootstrap / apt-get / builds (use what is there)
#   --out FILE    markdown file to update (default docs/benchmarks.md)
#   --keep-raw F  also copy the raw JSON lines to F
#   --idle-wait S before each run, wait up to S seconds (default 120) for the machine to be
#                 idle (< 15 % CPU busy over half a second): other processes skew the numbers
#
# Produce cases: klife produces borrowed bytes (`bench produce --borrowed`: enqueue(topic:value:)
# from one reused buffer, no array per record), as the librdkafka peer does (RD_KAFKA_MSG_F_COPY
# from one buffer); cases whose id ends in -arrays use klife's ProducerRecord form instead (a
# fresh value array per record, as callers whose bytes are in arrays produce). --sync runs
# always use ProducerRecord (`produce(_:)`).
#
# Consume cases: without a flag klife reads with its fetch loop (`client.fetch`, one cursor
# per partition); --assign reads through KlifeConsumer with the partitions assigned by hand;
# --group joins a group (a fresh name per run and client; join time apart, in join_seconds).
# librdkafka assigns in the first two and subscribes in the third.
#
# Needs: bash, python3, gcc, swift; apt-get (as root) for librdkafka-dev when missing.
# Only loopback traffic; the broker is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ARGS_TEXT="Benchmarks/compare.sh${*:+ $*}"

RUNS=""
MATRIX=default
SCALE=1
PROFILE=1
INSTALL=1
OUT=docs/benchmarks.md
KEEP_RAW=""
IDLE_WAIT=120
CASES_RE=".*"
PROFILE_MODE=produce
BROKER_CHOICE=tansu
SCALING=auto
while (($#)); do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --quick) MATRIX=quick; shift ;;
    --full) MATRIX=full; shift ;;
    --scale) SCALE="$2"; shift 2 ;;
    --scale=*) SCALE="${1#*=}"; shift ;;
    --no-profile) PROFILE=0; shift ;;
    --no-install) INSTALL=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --keep-raw) KEEP_RAW="$2"; shift 2 ;;
    --idle-wait) IDLE_WAIT="$2"; shift 2 ;;
    --cases) CASES_RE="$2"; shift 2 ;;
    --cases=*) CASES_RE="${1#*=}"; shift ;;
    --profile-mode) PROFILE_MODE="$2"; shift 2 ;;
    --profile-mode=*) PROFILE_MODE="${1#*=}"; shift ;;
    --broker) BROKER_CHOICE="$2"; shift 2 ;;
    --broker=*) BROKER_CHOICE="${1#*=}"; shift ;;
    --scaling) SCALING=1; shift ;;
    --no-scaling) SCALING=0; shift ;;
    -h|--help) sed -n '2,52p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
  esac
done
if [[ -z "$RUNS" ]]; then RUNS=3; [[ $MATRIX == quick ]] && RUNS=1; fi
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --runs needs a positive integer" >&2; exit 64; }
[[ $PROFILE_MODE == produce || $PROFILE_MODE == group ]] || { echo "compare.sh: --profile-mode is produce or group" >&2; exit 64; }
case $BROKER_CHOICE in
  tansu) BROKER_KINDS=(tansu) ;;
  sink) BROKER_KINDS=(sink) ;;
  both) BROKER_KINDS=(sink tansu) ;;   # Tansu last: the profile runs against it
  *) echo "compare.sh: --broker is tansu, sink or both" >&2; exit 64 ;;
esac
if [[ $SCALING == auto ]]; then
  SCALING=0
  [[ $BROKER_CHOICE != tansu && $MATRIX != quick ]] && SCALING=1
fi

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

SCRATCH="$ROOT/.build-bench"
KLIFE="$SCRATCH/release/klife"
PEER="$SCRATCH/rdkafka_bench"
WORK="$(mktemp -d /tmp/klife-compare.XXXXXX)"
RAW_TANSU="$WORK/results.tsv"
RAW_SINK="$WORK/results-sink.tsv"
RAW="$RAW_TANSU"   # the current broker's results (start_broker switches it)
: > "$RAW_TANSU"; : > "$RAW_SINK"
SINK="$ROOT/Benchmarks/.build/release/klife-sink"
BROKER_PID=""
BROKER_KIND=""
PROBES_ADDED=0

cleanup() {
  if [[ $PROBES_ADDED == 1 ]]; then perf probe -q -d 'klifebench:*' >/dev/null 2>&1 || true; fi
  rm -f "$WORK"/perf*.data
  stop_broker
}
# Stops the broker started last, if any (TERM, then KILL after 3 s).
stop_broker() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- install and build
if ((INSTALL)); then
  log "bootstrap (Tansu, confluent-kafka wheel, compression libraries)"
  bash scripts/bootstrap.sh
  if [[ ! -r /usr/include/librdkafka/rdkafka.h ]]; then
    log "installing librdkafka-dev (headers)"
    sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo -n"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq </dev/null >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends librdkafka-dev </dev/null >/dev/null
  fi
fi
# shellcheck source=/dev/null
source scripts/env.sh
LIBRDKAFKA="$(ls "$ROOT"/.venv/lib/python3*/site-packages/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -n1 || true)"
[[ -n "$LIBRDKAFKA" ]] || { echo "compare.sh: librdkafka from the confluent-kafka wheel not found (run scripts/bootstrap.sh)" >&2; exit 1; }
if ((INSTALL)); then
  log "building klife (release, $SCRATCH)"
  swift build -c release --scratch-path "$SCRATCH" --product klife 2>&1 | grep -E "error|warning: unre|Compiling|Build" >&2 || true
  log "compiling the librdkafka peer against $(basename "$LIBRDKAFKA")"
  mkdir -p "$SCRATCH"
  gcc -O2 -Wall -o "$PEER" Benchmarks/peers/rdkafka_bench.c "$LIBRDKAFKA" -Wl,-rpath,"$(dirname "$LIBRDKAFKA")"
  if [[ $BROKER_CHOICE != tansu || $SCALING == 1 ]]; then
    log "building klife-sink (release, Benchmarks package)"
    swift build -c release --package-path Benchmarks --product klife-sink 2>&1 | grep -E "error|warning: unre|Build" >&2 || true
  fi
fi
[[ -x "$KLIFE" ]] || { echo "compare.sh: $KLIFE missing (build failed?)" >&2; exit 1; }
if [[ ($BROKER_CHOICE != tansu || $SCALING == 1) && ! -x "$SINK" ]]; then
  echo "compare.sh: $SINK missing (build failed?)" >&2; exit 1
fi
[[ -x "$PEER" ]] || { echo "compare.sh: $PEER missing" >&2; exit 1; }
RDK_VERSION="$("$PEER" version)"
case "$RDK_VERSION" in
  2.1[6-9]*|2.[2-9]*|[3-9]*) ;;
  *) log "warning: the peer runs librdkafka $RDK_VERSION (expected the wheel's 2.16+)" ;;
esac
log "librdkafka $RDK_VERSION ($(ldd "$PEER" | awk '/librdkafka/ {print $3}'))"

# ---------------------------------------------------------------- broker
TANSU="${KLIFE_TANSU_BIN:-$(cat .klife/tansu-path 2>/dev/null || true)}"
# Waits until the broker just started answers Metadata (10 s at most).
wait_broker_ready() {
  local i
  for i in $(seq 1 100); do
    if "$KLIFE" topic list -b "$BROKER" -X connect.timeout.ms=500 >/dev/null 2>&1; then return 0; fi
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/$BROKER_KIND.log" >&2; echo "compare.sh: broker exited" >&2; exit 1; }
    ((i == 100)) && { echo "compare.sh: broker not ready after 10 s" >&2; exit 1; }
    sleep 0.1
  done
}
# start_broker KIND [SINK ARGS...]: stops the running broker and starts Tansu or klife-sink
# on a fresh free loopback port (sets BROKER, BROKER_PID, BROKER_KIND, RAW).
start_broker() {
  local kind=$1; shift
  stop_broker
  BROKER_KIND=$kind
  if [[ $kind == sink ]]; then
    RAW="$RAW_SINK"
    rm -f "$WORK/sink.out"   # so that the wait below never reads the previous sink's port
    "$SINK" --port 0 "$@" >"$WORK/sink.out" 2>>"$WORK/sink.log" &
    BROKER_PID=$!
    local i
    for i in $(seq 1 600); do
      [[ -s "$WORK/sink.out" ]] && break
      kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/sink.log" >&2; echo "compare.sh: klife-sink exited" >&2; exit 1; }
      ((i == 600)) && { echo "compare.sh: klife-sink not listening after 60 s" >&2; exit 1; }
      sleep 0.1
    done
    BROKER="$(head -n1 "$WORK/sink.out" | awk '{print $2}')"
    log "started klife-sink on $BROKER${*:+ ($*)}"
  else
    [[ -x "$TANSU" ]] || { echo "compare.sh: Tansu not found (.klife/tansu-path; run scripts/bootstrap.sh)" >&2; exit 1; }
    RAW="$RAW_TANSU"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    BROKER="127.0.0.1:$port"
    log "starting Tansu on $BROKER ($(basename "$TANSU"))"
    RUST_LOG=warn "$TANSU" broker --listener-url "tcp://$BROKER" --advertised-listener-url "tcp://$BROKER" \
      >"$WORK/tansu.log" 2>&1 &
    BROKER_PID=$!
  fi
  wait_broker_ready
}
# fill_topic TOPIC RECORDS SIZE PARTITIONS [FILL FLAGS...]: gives a consume case its
# records. Tansu: klife produces them (linger 5 ms, the case's -z). Sink: a fresh sink whose
# prepared record set is the case's (count per partition, value size, codec).
fill_topic() {
  local topic=$1 records=$2 size=$3 parts=$4; shift 4
  if [[ $BROKER_KIND == sink ]]; then
    local codec=none per_partition
    local words=("$@") i
    for ((i = 0; i < ${#words[@]}; i++)); do
      [[ ${words[i]} == -z || ${words[i]} == --compression ]] && codec=${words[i + 1]}
    done
    per_partition=$(( (records + parts - 1) / parts ))
    start_broker sink --topic "$topic:$parts" --fetch-records "$per_partition" --fetch-record-size "$size" \
      --fetch-compression "$codec"
    return 0
  fi
  if ! "$KLIFE" bench produce -b "$BROKER" -t "$topic" -n "$records" -s "$size" -P "$parts" --linger-ms 5 \
      --latency-every 0 "$@" >/dev/null 2>"$WORK/$id-fill.err"; then
    log "  filling $topic failed: $(tail -n 2 "$WORK/$id-fill.err" | tr '\n' ' ')"
    return 1
  fi
}
# broker_cases: the cases the current broker runs (the sink runs no consumer groups).
broker_cases() {
  if [[ $BROKER_KIND == sink ]]; then
    grep -v -- '--group' <<< "$CASES" || true
  else
    printf '%s\n' "$CASES"
  fi
}

# ---------------------------------------------------------------- matrix
# One case a line:  ID|MODE|RECORD_SIZE|PARTITIONS|RECORDS|FLAGS
# FLAGS are passed unchanged to both `klife bench` and `rdkafka_bench` (same spellings).
# Consume cases fill their topic once (klife, linger 5 ms, the case's -z) and then read it.
# Latency cases (lat-*) run open loop (--rate N): RECORDS is the measured count, so
# RECORDS / N seconds after a 0.5 s warm-up of their own (no --warmup records); every
# record is timed from its scheduled time to its acknowledgement.
DEFAULT_CASES='
p-100-1p|produce|100|1|1000000|--acks all --idempotent true --linger-ms 5
p-100-6p|produce|100|6|1000000|--acks all --idempotent true --linger-ms 5
p-100-6p-l0|produce|100|6|1000000|--acks all --idempotent true --linger-ms 0
p-100-6p-noidem|produce|100|6|1000000|--acks all --idempotent false --linger-ms 5
p-100-6p-arrays|produce|100|6|1000000|--acks all --idempotent true --linger-ms 5
p-1k-1p|produce|1024|1|200000|--acks all --idempotent true --linger-ms 5
p-1k-6p|produce|1024|6|200000|--acks all --idempotent true --linger-ms 5
p-100-6p-gzip|produce|100|6|500000|--acks all --idempotent true --linger-ms 5 -z gzip
p-100-6p-snappy|produce|100|6|500000|--acks all --idempotent true --linger-ms 5 -z snappy
p-100-6p-lz4|produce|100|6|500000|--acks all --idempotent true --linger-ms 5 -z lz4
p-100-6p-zstd|produce|100|6|500000|--acks all --idempotent true --linger-ms 5 -z zstd
p-100-1p-sync|produce|100|1|2000|--acks all --idempotent true --linger-ms 0 --sync
p-100-1p-buf20k|produce|100|1|1000000|--acks all --idempotent true --linger-ms 5 --max-buffered 20000
p-100-6p-buf20k|produce|100|6|1000000|--acks all --idempotent true --linger-ms 5 --max-buffered 20000
lat-20k|produce|100|6|100000|--acks all --idempotent true --linger-ms 0 --rate 20000
lat-200k|produce|100|6|1000000|--acks all --idempotent true --linger-ms 0 --rate 200000
c-100-1p|consume|100|1|1000000|
c-100-6p|consume|100|6|1000000|
c-1k-6p|consume|1024|6|200000|
c-100-6p-lz4|consume|100|6|1000000|-z lz4
c-100-6p-assign|consume|100|6|1000000|--assign
c-100-6p-group|consume|100|6|1000000|--group
'
QUICK_CASES='
p-100-6p|produce|100|6|200000|--acks all --idempotent true --linger-ms 5
p-100-6p-l0|produce|100|6|200000|--acks all --idempotent true --linger-ms 0
p-1k-6p|produce|1024|6|50000|--acks all --idempotent true --linger-ms 5
p-100-6p-lz4|produce|100|6|200000|--acks all --idempotent true --linger-ms 5 -z lz4
p-100-1p-sync|produce|100|1|500|--acks all --idempotent true --linger-ms 0 --sync
c-100-6p|consume|100|6|200000|
c-100-6p-assign|consume|100|6|200000|--assign
c-100-6p-group|consume|100|6|200000|--group
'
FULL_EXTRA='
p-100-6p-acks1|produce|100|6|1000000|--acks 1 --linger-ms 5
p-100-6p-acks0|produce|100|6|1000000|--acks 0 --linger-ms 5
p-100-1p-l0|produce|100|1|1000000|--acks all --idempotent true --linger-ms 0
p-1k-6p-l0|produce|1024|6|200000|--acks all --idempotent true --linger-ms 0
p-1k-6p-noidem|produce|1024|6|200000|--acks all --idempotent false --linger-ms 5
p-1k-6p-gzip|produce|1024|6|100000|--acks all --idempotent true --linger-ms 5 -z gzip
p-1k-6p-snappy|produce|1024|6|200000|--acks all --idempotent true --linger-ms 5 -z snappy
p-1k-6p-lz4|produce|1024|6|200000|--acks all --idempotent true --linger-ms 5 -z lz4
p-1k-6p-zstd|produce|1024|6|200000|--acks all --idempotent true --linger-ms 5 -z zstd
p-1k-1p-sync|produce|1024|1|2000|--acks all --idempotent true --linger-ms 0 --sync
p-100-1p-sync-acks1|produce|100|1|2000|--acks 1 --linger-ms 0 --sync
c-1k-1p|consume|1024|1|200000|
c-100-6p-gzip|consume|100|6|500000|-z gzip
c-100-6p-snappy|consume|100|6|1000000|-z snappy
c-100-6p-zstd|consume|100|6|1000000|-z zstd
'
case $MATRIX in
  quick) CASES="$QUICK_CASES" ;;
  full) CASES="$DEFAULT_CASES$FULL_EXTRA" ;;
  *) CASES="$DEFAULT_CASES" ;;
esac
CASES="$(while IFS='|' read -r id rest; do
  if [[ -n "$id" && "$id" =~ ^($CASES_RE)$ ]]; then printf '%s|%s\n' "$id" "$rest"; fi
done <<< "$CASES")"
[[ -n "$CASES" || $SCALING == 1 ]] || { echo "compare.sh: no case of the $MATRIX matrix matches --cases '$CASES_RE'" >&2; exit 64; }

client_cmd() { # client -> executable
  if [[ $1 == klife ]]; then echo "$KLIFE bench"; else echo "$PEER"; fi
}

# Percentage of CPU time busy (all cores) over half a second, from /proc/stat.
busy_percent() {
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep 0.5
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  idle=$(( (b[4] - a[4]) + (b[5] - a[5]) ))
  (( total > 0 )) && echo $(( 100 * (total - idle) / total )) || echo 0
}

BUSY_STARTS=0
# Waits (up to --idle-wait seconds) until nothing else is using the CPU.
wait_idle() {
  local waited=0 busy
  while :; do
    busy="$(busy_percent)"
    (( busy < 15 )) && return 0
    if (( waited >= IDLE_WAIT )); then
      BUSY_STARTS=$((BUSY_STARTS + 1))
      log "  machine still ${busy}% busy after ${waited} s: running anyway"
      return 0
    fi
    (( waited == 0 )) && log "  machine ${busy}% busy (other processes): waiting for it to be idle"
    sleep 2; waited=$((waited + 3))
  done
}

delete_topic() { "$KLIFE" topic delete -b "$BROKER" "$1" >/dev/null 2>&1 || true; }

# run_one CLIENT CASE RUN MODE TOPIC ARGS... : appends "case<TAB>run<TAB>json" to $RAW.
run_one() {
  local client=$1 id=$2 run=$3 mode=$4 topic=$5; shift 5
  local out err rc=0
  err="$WORK/$id-$client-$run.err"
  wait_idle
  # shellcheck disable=SC2046
  out="$(timeout 600 $(client_cmd "$client") "$mode" -b "$BROKER" -t "$topic" "$@" 2>"$err")" || rc=$?
  local line; line="$(printf '%s\n' "$out" | grep '^{' | tail -n1 || true)"
  if ((rc != 0)) || [[ -z "$line" ]]; then
    log "  $client run $run FAILED (exit $rc): $(tail -n 2 "$err" | tr '\n' ' ')"
    printf '%s\t%s\t{"client":"%s","failed":true,"exit":%d}\n' "$id" "$run" "$client" "$rc" >> "$RAW"
    return 0
  fi
  printf '%s\t%s\t%s\n' "$id" "$run" "$line" >> "$RAW"
  python3 - "$line" <<'EOF' >&2
import json, sys
r = json.loads(sys.argv[1])
lat = f"  p50 {r['p50_us']:.0f} µs p99 {r['p99_us']:.0f} µs" if "p50_us" in r else ""
if "p999_us" in r: lat += f" p99.9 {r['p999_us']:.0f} µs"
print(f"[compare]   {r['client']:<10} {r['records_per_sec']:>12,.0f} rec/s {r['mb_per_sec']:>8.1f} MB/s "
      f"{r['cpu_ns_per_record']:>8.1f} CPU ns/rec{lat}")
EOF
}

scaled() { python3 -c "import sys; print(max(1, int(round(int(sys.argv[1]) * float(sys.argv[2])))))" "$1" "$SCALE"; }

# case_ratios CASE : logs klife / librdkafka per run (both clients of a run measured back
# to back, so each ratio saw about the same machine load) and their median.
case_ratios() {
  python3 - "$1" "$RAW" <<'EOF' >&2
import json, statistics, sys
case, raw = sys.argv[1:]
runs = {}
for line in open(raw):
    cid, run, js = line.rstrip("\n").split("\t", 2)
    r = json.loads(js)
    if cid == case and not r.get("failed"):
        runs.setdefault(run, {})[r["client"]] = r
pairs = [(run, v["klife"], v["librdkafka"]) for run, v in sorted(runs.items(), key=lambda kv: int(kv[0]))
         if "klife" in v and "librdkafka" in v]
if not pairs:
    print(f"[compare]   {case}: no run with both clients"); sys.exit()
tput = [k["records_per_sec"] / r["records_per_sec"] for _, k, r in pairs if r["records_per_sec"] > 0]
cpu = [k["cpu_ns_per_record"] / r["cpu_ns_per_record"] for _, k, r in pairs if r["cpu_ns_per_record"] > 0]
each = lambda xs: " ".join(f"{x:.2f}" for x in xs)
line = (f"[compare]   {case} klife/librdkafka: throughput {statistics.median(tput):.2f}x (runs {each(tput)}), "
        f"CPU/record {statistics.median(cpu):.2f}x (runs {each(cpu)})")
joins = [(k.get("join_seconds"), r.get("join_seconds")) for _, k, r in pairs]
if all(a is not None and b is not None for a, b in joins):
    line += f"; join s klife {statistics.median(a for a, _ in joins):.2f}, librdkafka {statistics.median(b for _, b in joins):.2f}"
print(line)
EOF
}

# ---------------------------------------------------------------- reactor scaling
# run_scaling: klife with 1 and 2 reactor threads on the same workload. klife gives each
# broker connection to reactor (node id mod reactors), so a one-node broker leaves a second
# reactor idle: this case runs klife-sink --nodes 2 (partition p led by node p mod 2), 100 B
# records, 6 partitions. Variants, alternating which goes first in each run:
#   r1          -X reactors=1
#   r2          -X reactors=2
#   r2-pinned   -X reactors=2 -X reactor.affinity=0,1 (only with 2 or more CPUs)
#   librdkafka  the same workload, as the reference
# Produce: acks all, idempotent, linger 5 ms, a fresh topic per run. Consume: the sink's
# prepared record set. Every run uses --threads (CPU per thread); the sink's own CPU is read
# from /proc around each run. Results go to $WORK/scaling*.tsv and the table to
# $SCALING_MD (Benchmarks/peers/reactor_scaling_table.py).
SCALING_NODES=2
SCALING_RAW="$WORK/scaling.tsv"
SCALING_THREADS="$WORK/scaling-threads.tsv"
SCALING_SINK_CPU="$WORK/scaling-sink-cpu.tsv"
SCALING_MD="$WORK/scaling.md"
: > "$SCALING_RAW"; : > "$SCALING_THREADS"; : > "$SCALING_SINK_CPU"; : > "$SCALING_MD"
# CPU time (user + system) of process $1 so far, in nanoseconds.
process_cpu_ns() {
  python3 -c 'import os, sys
f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(f[11]) + int(f[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK"))' "$1" 2>/dev/null || echo 0
}
# scaling_run VARIANT MODE RUN RECORDS TOPIC: one run of one variant, its result appended to
# $SCALING_RAW (through run_one), its --threads lines and the sink's CPU to their files.
scaling_run() {
  local variant=$1 mode=$2 run=$3 records=$4 topic=$5 client=klife id="scale-$2-$1"
  local extra=()
  case $variant in
    r1) extra=(-X reactors=1) ;;
    r2) extra=(-X reactors=2) ;;
    r2-pinned) extra=(-X reactors=2 -X reactor.affinity=0,1) ;;
    librdkafka) client=librdkafka ;;
  esac
  local words=(-n "$records" --threads)
  if [[ $mode == produce ]]; then
    words+=(-s 100 -P 6 --acks all --idempotent true --linger-ms 5 --warmup $((records / 20)))
    [[ $client == klife ]] && words+=(--borrowed)
  fi
  local sink_before sink_after
  sink_before="$(process_cpu_ns "$BROKER_PID")"
  run_one "$client" "$id" "$run" "$mode" "$topic" "${words[@]}" "${extra[@]}"
  sink_after="$(process_cpu_ns "$BROKER_PID")"
  printf '%s\t%s\t%s\n' "$id" "$run" "$((sink_after - sink_before))" >> "$SCALING_SINK_CPU"
  sed -nE 's/^  (.*[^ ]) +([0-9.]+) s +[0-9.]+ ns\/record$/\1\t\2/p' "$WORK/$id-$client-$run.err" \
    | awk -F'\t' -v id="$id" -v run="$run" '{printf "%s\t%s\t%s\t%.0f\n", id, run, $1, $2 * 1e9}' >> "$SCALING_THREADS"
  [[ $mode == produce ]] && delete_topic "$topic"
  return 0
}
run_scaling() {
  local variants=(r1 r2 r2-pinned librdkafka) records mode run i
  (( $(nproc) >= 2 )) || variants=(r1 r2 librdkafka)
  records="$(scaled 1000000)"
  for mode in produce consume; do
    if [[ $mode == produce ]]; then
      start_broker sink --nodes "$SCALING_NODES"
    else
      start_broker sink --nodes "$SCALING_NODES" --topic "bench-scale-consume:6" \
        --fetch-records $(( (records + 5) / 6 )) --fetch-record-size 100
    fi
    RAW="$SCALING_RAW"
    log "case reactor scaling, $mode: $records x 100 B, 6 partitions, klife-sink --nodes $SCALING_NODES" \
      "($(sed -n 2p "$WORK/sink.out")), variants ${variants[*]}"
    for run in $(seq 1 "$RUNS"); do
      for ((i = 0; i < ${#variants[@]}; i++)); do
        local variant=${variants[(i + run - 1) % ${#variants[@]}]} topic=bench-scale-consume
        SEQ=$((SEQ + 1))
        [[ $mode == produce ]] && topic="bench-scale-$variant-$run-$SEQ"
        scaling_run "$variant" "$mode" "$run" "$records" "$topic"
      done
    done
  done
  stop_broker
  python3 Benchmarks/peers/reactor_scaling_table.py "$SCALING_RAW" "$SCALING_THREADS" "$SCALING_SINK_CPU" \
    "$SCALING_NODES" > "$SCALING_MD"
  sed -n '/^| ---/,$p' "$SCALING_MD" | tail -n +2 | sed 's/^/[compare]   /' >&2
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
if python3 -c "import sys; sys.exit(0 if float(open('/proc/loadavg').read().split()[0]) > 0.7 else 1)"; then
  log "warning: load average $LOAD_BEFORE before the matrix: other work on this machine will skew the numbers"
fi
STARTED=$(date +%s)
SEQ=0
((SCALING)) && run_scaling
# The whole matrix once per broker; the last broker stays up for the profile.
for kind in "${BROKER_KINDS[@]}"; do
[[ -n "$CASES" ]] || break
start_broker "$kind"
while IFS='|' read -r id mode size parts records flags; do
  [[ -z "$id" ]] && continue
  records="$(scaled "$records")"
  # shellcheck disable=SC2206
  flag_words=($flags)
  log "case $id: $mode, $records x $size B, $parts partition(s) $flags"
  if [[ $mode == produce ]]; then
    warm=()
    [[ " $flags " == *" --sync "* || " $flags " == *" --rate "* ]] || warm=(--warmup "$(( records / 20 ))")
    # klife produces borrowed bytes, as the librdkafka peer does (RD_KAFKA_MSG_F_COPY from one
    # buffer); the -arrays cases measure its ProducerRecord form, a fresh array per record.
    KLIFE_PRODUCE_WORDS=(--borrowed)
    [[ $id == *-arrays ]] && KLIFE_PRODUCE_WORDS=()
    for run in $(seq 1 "$RUNS"); do
      if ((run % 2)); then order=(klife librdkafka); else order=(librdkafka klife); fi
      for client in "${order[@]}"; do
        SEQ=$((SEQ + 1))
        topic="bench-$id-$client-$run-$SEQ"
        client_words=()
        [[ $client == klife ]] && client_words=("${KLIFE_PRODUCE_WORDS[@]}")
        run_one "$client" "$id" "$run" produce "$topic" -n "$records" -s "$size" -P "$parts" "${warm[@]}" "${flag_words[@]}" "${client_words[@]}"
        delete_topic "$topic"
      done
    done
  else
    SEQ=$((SEQ + 1))
    topic="bench-$id-$SEQ"
    # --group (each run joins a fresh group) and --assign are read flags, not fill flags.
    group=0
    fill_words=()
    read_words=()
    for word in "${flag_words[@]}"; do
      case $word in
        --group) group=1 ;;
        --assign) read_words+=("$word") ;;
        *) fill_words+=("$word") ;;
      esac
    done
    fill_topic "$topic" "$records" "$size" "$parts" "${fill_words[@]}" || continue
    for run in $(seq 1 "$RUNS"); do
      if ((run % 2)); then order=(klife librdkafka); else order=(librdkafka klife); fi
      for client in "${order[@]}"; do
        consume_words=("${read_words[@]}")
        ((group)) && consume_words+=(--group "bench-$id-$client-$run-$SEQ")
        run_one "$client" "$id" "$run" consume "$topic" -n "$records" "${consume_words[@]}"
      done
    done
    delete_topic "$topic"
  fi
  case_ratios "$id"
done <<< "$(broker_cases)"
done
ELAPSED=$(( $(date +%s) - STARTED ))
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
log "matrix done in ${ELAPSED} s"

# ---------------------------------------------------------------- profile
PROFILE_MD="$WORK/profile.md"
: > "$PROFILE_MD"
if ((PROFILE)) && [[ $BROKER_KIND == sink ]]; then
  log "profile skipped: it runs against Tansu (--broker tansu or both)"
  PROFILE=0
fi
if ((PROFILE)); then
  if command -v perf >/dev/null && perf record -e cpu-clock -o "$WORK/perf-probe.data" -- true >/dev/null 2>&1; then
    PRECORDS="$(scaled 1000000)"
    if [[ $PROFILE_MODE == group ]]; then
      # Both clients read one topic, each joining a group of its own.
      PMODE=consume
      PFLAGS="-n $PRECORDS"
      PWORKLOAD="bench consume --group GROUP $PFLAGS (100 B values, 6 partitions, a fresh group each)"
      KTOPIC=bench-profile-group; RTOPIC=bench-profile-group
      KEXTRA=(--group bench-profile-klife); REXTRA=(--group bench-profile-rdk)
      "$KLIFE" bench produce -b "$BROKER" -t "$KTOPIC" -n "$PRECORDS" -s 100 -P 6 --linger-ms 5 --latency-every 0 \
        >/dev/null 2>"$WORK/profile-fill.err" || log "filling $KTOPIC failed: $(tail -n 2 "$WORK/profile-fill.err" | tr '\n' ' ')"
    else
      PMODE=produce
      PFLAGS="-n $PRECORDS -s 100 -P 6 --acks all --idempotent true --linger-ms 5 --warmup $((PRECORDS / 20))"
      PWORKLOAD="bench produce $PFLAGS"
      KTOPIC=bench-profile-klife; RTOPIC=bench-profile-rdk
      KEXTRA=(--borrowed); REXTRA=()
    fi
    wait_idle
    log "profiling: perf record -g klife bench $PMODE $PFLAGS ${KEXTRA[*]}"
    # shellcheck disable=SC2086
    perf record -F 4000 -e cpu-clock -g -o "$WORK/perf.data" -- \
      "$KLIFE" bench $PMODE -b "$BROKER" -t "$KTOPIC" $PFLAGS "${KEXTRA[@]}" --threads \
      >"$WORK/profile-klife.json" 2>"$WORK/profile-klife.err" || log "perf run of klife failed"
    [[ $PMODE == produce ]] && delete_topic "$KTOPIC"
    # shellcheck disable=SC2086
    perf record -F 4000 -e cpu-clock -g -o "$WORK/perf-rdk.data" -- \
      "$PEER" $PMODE -b "$BROKER" -t "$RTOPIC" $PFLAGS "${REXTRA[@]}" --threads \
      >"$WORK/profile-rdk.json" 2>"$WORK/profile-rdk.err" || log "perf run of librdkafka failed"
    delete_topic "$RTOPIC"
    DEMANGLE=(cat)
    command -v swift-demangle >/dev/null && DEMANGLE=(swift-demangle --simplified)
    cpu_of() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("{"): print(json.loads(l)["cpu_ns_per_record"])' "$1" 2>/dev/null || true; }
    KCPU="$(cpu_of "$WORK/profile-klife.json")"; RCPU="$(cpu_of "$WORK/profile-rdk.json")"
    perf script -i "$WORK/perf.data" -F comm,tid,period,ip,sym,dso 2>/dev/null | "${DEMANGLE[@]}" \
      | python3 Benchmarks/peers/perf_summary.py --title klife ${KCPU:+--cpu-ns-per-record "$KCPU"} > "$WORK/klife-summary.md" || true
    perf script -i "$WORK/perf-rdk.data" -F comm,tid,period,ip,sym,dso 2>/dev/null \
      | python3 Benchmarks/peers/perf_summary.py --title librdkafka ${RCPU:+--cpu-ns-per-record "$RCPU"} > "$WORK/rdk-summary.md" || true
    rm -f "$WORK"/perf*.data

    # Reference-counting calls per record, counted exactly with uprobes on libswiftCore
    # (slow: every call traps), as the difference between two run sizes.
    RC_MD="$WORK/refcounts.md"; : > "$RC_MD"
    SWIFTCORE="$(ldd "$KLIFE" | awk '/libswiftCore/ {print $3}')"
    if [[ -n "$SWIFTCORE" ]] && perf probe -q -x "$SWIFTCORE" -a 'klifebench:retain=swift_retain' \
        -a 'klifebench:release=swift_release' >/dev/null 2>&1; then
      PROBES_ADDED=1
      count_rc() { # mode topic n [flags...] -> "retains releases"
        local mode=$1 topic=$2 n=$3; shift 3
        perf stat -x, -e klifebench:retain,klifebench:release -- \
          "$KLIFE" bench "$mode" -b "$BROKER" -t "$topic" -n "$n" "$@" 2>&1 >/dev/null \
          | awk -F, '/klifebench:retain/ {r=$1} /klifebench:release/ {l=$1} END {print r+0, l+0}'
      }
      log "counting swift_retain/release per record with uprobes (slow)"
      P=(-P 6 --linger-ms 5 --latency-every 0)
      read -r pr1 pl1 < <(count_rc produce bench-rc-small 20000 "${P[@]}")
      read -r pr2 pl2 < <(count_rc produce bench-rc-large 120000 "${P[@]}")
      read -r cr1 cl1 < <(count_rc consume bench-rc-small 20000)
      read -r cr2 cl2 < <(count_rc consume bench-rc-large 120000)
      read -r gr1 gl1 < <(count_rc consume bench-rc-small 20000 --group bench-rc-small)
      read -r gr2 gl2 < <(count_rc consume bench-rc-large 120000 --group bench-rc-large)
      delete_topic bench-rc-small; delete_topic bench-rc-large
      perf probe -q -d 'klifebench:*' >/dev/null 2>&1 || true
      PROBES_ADDED=0
      python3 - "$pr1" "$pl1" "$pr2" "$pl2" "$cr1" "$cl1" "$cr2" "$cl2" "$gr1" "$gl1" "$gr2" "$gl2" > "$RC_MD" <<'EOF'
import sys
pr1, pl1, pr2, pl2, cr1, cl1, cr2, cl2, gr1, gl1, gr2, gl2 = map(int, sys.argv[1:])
per = lambda a, b: (b - a) / 100000
print("**klife: reference-counting calls per record** (uprobes on `swift_retain` / `swift_release` in libswiftCore, "
      "difference between 120,000- and 20,000-record runs, 100 B, 6 partitions; librdkafka has none)\n")
print("| | swift_retain / record | swift_release / record |")
print("| --- | ---: | ---: |")
print(f"| produce (linger 5, idempotent) | {per(pr1, pr2):.1f} | {per(pl1, pl2):.1f} |")
print(f"| consume (fetch + decode) | {per(cr1, cr2):.1f} | {per(cl1, cl2):.1f} |")
print(f"| consume as a group member (consumer.batches) | {per(gr1, gr2):.1f} | {per(gl1, gl2):.1f} |")
print()
EOF
    fi

    python3 - "$WORK" "$PWORKLOAD" "$PROFILE_MD" <<'EOF'
import json, os, sys
work, workload, out = sys.argv[1:]
def read(name):
    p = os.path.join(work, name)
    return open(p, encoding="utf-8", errors="replace").read() if os.path.exists(p) else ""
def result(name):
    for line in read(name).splitlines():
        if line.startswith("{"):
            return json.loads(line)
    return None
md = []
k, r = result("profile-klife.json"), result("profile-rdk.json")
md.append(f"Workload: `{workload}` (both clients), each under "
          "`perf record -F 4000 -e cpu-clock -g` (software clock: this VM exposes no hardware counters). "
          "Shares are of all samples of that process, start-up and warm-up included; the ≈ ns/record "
          "column spreads the run's measured CPU/record over them.\n")
if k and r:
    md.append(f"- klife under perf: {k['records_per_sec']:,.0f} records/s, {k['cpu_ns_per_record']:,.0f} CPU ns/record")
    md.append(f"- librdkafka under perf: {r['records_per_sec']:,.0f} records/s, {r['cpu_ns_per_record']:,.0f} CPU ns/record\n")
for which, title in (("klife", "klife"), ("rdk", "librdkafka")):
    threads = [l for l in read(f"profile-{which}.err").splitlines() if l.startswith("  ")]
    md.append(f"**{title}: CPU per thread over the measured section** (`--threads`: /proc/self/task, 10 ms ticks)\n")
    md.append("```")
    md.extend(threads or ["(not available)"])
    md.append("```\n")
    md.append(read(f"{which}-summary.md").rstrip() + "\n")
md.append(read("refcounts.md").rstrip() + "\n")
open(out, "w").write("\n".join(md) + "\n")
EOF
  else
    log "perf unavailable: profile skipped"
    echo "perf was not available on this machine; run with --threads for per-thread CPU instead." > "$PROFILE_MD"
  fi
fi

# ---------------------------------------------------------------- report
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
SWIFT_VERSION="$(swift --version 2>/dev/null | grep -m1 -i 'swift version' | sed 's/^ *//')"
if [[ -n "$KEEP_RAW" ]]; then
  { cat "$RAW_TANSU"; sed 's|^|sink/|' "$RAW_SINK"; sed "s|^|sink$SCALING_NODES/|" "$SCALING_RAW"; } > "$KEEP_RAW"
fi
BROKER_TEXT=""
[[ " ${BROKER_KINDS[*]} " == *" tansu "* ]] && BROKER_TEXT="$(basename "$TANSU") (memory storage), same machine"
[[ " ${BROKER_KINDS[*]} " == *" sink "* ]] && \
  BROKER_TEXT="${BROKER_TEXT:+$BROKER_TEXT; }klife-sink (no storage; the *sink broker* tables), same machine"
((SCALING)) && BROKER_TEXT="${BROKER_TEXT:+$BROKER_TEXT; }klife-sink --nodes $SCALING_NODES (reactor scaling), same machine"
export CMP_NPROC="$(nproc)" CMP_CPU="$CPU_MODEL" CMP_KERNEL="$(uname -srm)" CMP_SWIFT="$SWIFT_VERSION" \
  CMP_RDK="$RDK_VERSION (confluent-kafka wheel: $(basename "$LIBRDKAFKA"))" \
  CMP_BROKER="$BROKER_TEXT" CMP_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" \
  CMP_SCALING_NODES="$SCALING_NODES" CMP_SCALING_MD="$SCALING_MD" CMP_SCALING_RAW="$SCALING_RAW" CMP_COMMAND="$ARGS_TEXT" CMP_RUNS="$RUNS" CMP_MATRIX="$MATRIX" CMP_ELAPSED="$ELAPSED" CMP_CASES="$CASES" \
  CMP_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ' + uncommitted changes under Sources/')" \
  CMP_LOAD="$LOAD_BEFORE before the matrix, $LOAD_AFTER after (1, 5, 15 min); $BUSY_STARTS run(s) started while other processes kept the machine busy"
python3 - "$RAW_TANSU" "$OUT" "$PROFILE_MD" "$PROFILE" "$PROFILE_MODE" "$RAW_SINK" <<'EOF'
import json, statistics, sys, os
raw, out, profile_md, profile_on, profile_mode, raw_sink = sys.argv[1:]
E = os.environ
machine = {
    "nproc": E["CMP_NPROC"], "cpu": E["CMP_CPU"], "kernel": E["CMP_KERNEL"], "swift": E["CMP_SWIFT"],
    "librdkafka": E["CMP_RDK"], "broker": E["CMP_BROKER"], "date": E["CMP_DATE"], "command": E["CMP_COMMAND"],
    "runs": E["CMP_RUNS"], "matrix": E["CMP_MATRIX"], "elapsed": E["CMP_ELAPSED"], "load": E["CMP_LOAD"],
    "commit": E["CMP_COMMIT"],
}
cases_text = E["CMP_CASES"]
cases = []
for line in cases_text.strip().splitlines():
    parts = line.split("|")
    if len(parts) >= 6:
        cases.append(dict(id=parts[0], mode=parts[1], size=int(parts[2]), parts=int(parts[3]),
                          records=parts[4], flags=parts[5]))
results = {}
for line in open(raw):
    cid, run, js = line.rstrip("\n").split("\t", 2)
    r = json.loads(js)
    results.setdefault((cid, r["client"]), []).append(r)
sink_results = {}
for line in open(raw_sink):
    cid, run, js = line.rstrip("\n").split("\t", 2)
    r = json.loads(js)
    sink_results.setdefault((cid, r["client"]), []).append(r)

def med(rs, key):
    vals = [r[key] for r in rs if not r.get("failed") and key in r]
    return statistics.median(vals) if vals else None

def fmt(v, digits=0, grouped=True):
    if v is None: return "—"
    return f"{v:,.{digits}f}" if grouped else f"{v:.{digits}f}"

def ratio(a, b, digits=2):
    if a is None or b in (None, 0): return "—"
    return f"{a / b:.{digits}f}×"

def describe(c):
    f = c["flags"].split()
    opts = {}
    i = 0
    while i < len(f):
        if f[i] == "--sync": opts["sync"] = True; i += 1; continue
        if i + 1 < len(f): opts[f[i].lstrip("-")] = f[i + 1]
        i += 2
    size = "1 KiB" if c["size"] == 1024 else f"{c['size']} B"
    bits = [size, f"{c['parts']} p"]
    if c["mode"] == "produce":
        bits.append("acks " + opts.get("acks", "all"))
        idem = opts.get("idempotent", "true" if opts.get("acks", "all") == "all" else "false")
        bits.append("idem " + ("on" if idem == "true" else "off"))
        bits.append(f"linger {opts.get('linger-ms', '0')}")
    bits.append(opts.get("z", "none"))
    if c["mode"] == "consume":
        words = c["flags"].split()
        if "--group" in words: bits.append("**group member** (klife consumer.batches; librdkafka subscribe)")
        elif "--assign" in words: bits.append("klife consumer.assign + batches")
        else: bits.append("klife fetch loop")
    if "max-buffered" in opts: bits.append(f"**buffer {int(opts['max-buffered']):,} records**")
    if "rate" in opts: bits.append(f"**open loop {int(opts['rate']):,} records/s**")
    if opts.get("sync"): bits.append("**sync**")
    return ", ".join(bits)

lines = []
lines.append("<!-- BEGIN compare.sh results (generated: do not edit by hand; rerun Benchmarks/compare.sh) -->")
lines.append("")
lines.append(f"Generated {machine['date']} by `{machine['command']}` "
             f"({machine['matrix']} matrix, {machine['runs']} run(s) per client and case, "
             f"alternating which client goes first; matrix took {machine['elapsed']} s).")
lines.append("")
lines.append("| machine | |")
lines.append("| --- | --- |")
for k, label in (("commit", "klife commit"), ("nproc", "cores (nproc)"), ("cpu", "CPU"), ("kernel", "kernel"), ("swift", "Swift"),
                 ("librdkafka", "librdkafka"), ("broker", "broker"), ("load", "load average")):
    lines.append(f"| {label} | {machine[k]} |")
lines.append("")
lines.append("Medians. *Ratio* is klife / librdkafka: above 1 is better for throughput, below 1 is better "
             "for CPU. CPU is the client process's user + system time (all threads) per record. "
             "Latency: enqueue → acknowledgement of every 64th record in the asynchronous runs "
             "(mostly time spent queued behind earlier records), produce → acknowledgement of every "
             "record in the sync runs, scheduled time → acknowledgement of every record in the "
             "open-loop latency cases (`lat-*`, see below).")
lines.append("")
def case_tables(results, title_suffix, skip_groups=False):
    """Appends the produce and consume tables of one broker's results to `lines`."""
    for mode in ("produce", "consume"):
        sel = [c for c in cases if c["mode"] == mode and not (skip_groups and "--group" in c["flags"].split())]
        if not sel: continue
        lines.append(f"### {mode.capitalize()}{title_suffix}")
        lines.append("")
        if mode == "produce":
            lines.append("| case | records | klife rec/s | librdkafka rec/s | ratio | klife MB/s | klife CPU ns/rec | librdkafka CPU ns/rec | ratio | klife p50 / p99 µs | librdkafka p50 / p99 µs |")
            lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        else:
            lines.append("| case | records | klife rec/s | librdkafka rec/s | ratio | klife MB/s | klife CPU ns/rec | librdkafka CPU ns/rec | ratio | join s klife / librdkafka |")
            lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for c in sel:
            k = results.get((c["id"], "klife"), [])
            r = results.get((c["id"], "librdkafka"), [])
            kr, rr = med(k, "records_per_sec"), med(r, "records_per_sec")
            kc, rc = med(k, "cpu_ns_per_record"), med(r, "cpu_ns_per_record")
            km = med(k, "mb_per_sec")
            fails = sum(1 for x in k + r if x.get("failed"))
            n = next((x["records"] for x in k + r if not x.get("failed")), c["records"])
            name = f"`{c['id']}` {describe(c)}" + (f" ({fails} failed runs)" if fails else "")
            row = [name, fmt(int(n)), fmt(kr), fmt(rr), ratio(kr, rr), fmt(km, 1), fmt(kc), fmt(rc), ratio(kc, rc)]
            if mode == "produce":
                lat = lambda rs: "—" if med(rs, "p50_us") is None else f"{fmt(med(rs, 'p50_us'))} / {fmt(med(rs, 'p99_us'))}"
                row += [lat(k), lat(r)]
            else:
                kj, rj = med(k, "join_seconds"), med(r, "join_seconds")
                row.append("—" if kj is None or rj is None else f"{kj:.2f} / {rj:.2f}")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")

if results:
    case_tables(results, "")

# Target check over the throughput cases (async produce; consume).
def geo(vals):
    vals = [v for v in vals if v and v > 0]
    if not vals: return None
    p = 1.0
    for v in vals: p *= v
    return p ** (1 / len(vals))
def latency_tables(cases, results, suffix=""):
    """The open-loop table (lat-* cases) and the tail of the sync and buffered cases."""
    out = []
    us = lambda v: fmt(v)
    def trio(rs):
        return " / ".join(us(med(rs, key)) for key in ("p50_us", "p99_us", "p999_us"))
    def checked(name, a, b, limit, misses):
        if a is None or b in (None, 0): return "—"
        value = a / b
        if value > limit:
            misses.append(f"{name} {value:.2f}×")
            return f"{value:.2f}× **missed**"
        return f"{value:.2f}×"
    lat = [c for c in cases if "--rate" in c["flags"].split()]
    if lat:
        out.append(f"### Latency at a fixed offered load{suffix}")
        out.append("")
        out.append("Open loop (`--rate`): record *i* is due at start + *i* / rate; each client produces every "
                   "record when it is due, whatever happened to earlier ones, and times every record from its "
                   "*scheduled* time to its acknowledgement (no coordinated omission). Medians over the runs of "
                   "each run's percentiles, in µs; ratio is klife / librdkafka (below 1 is better). "
                   "Achieved: records acknowledged per second over the measured section.")
        out.append("")
        out.append("| case | target rec/s | achieved klife / librdkafka | klife p50 / p99 / p99.9 µs | librdkafka p50 / p99 / p99.9 µs | p50 ratio | p99 ratio | p99.9 ratio |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        misses, checks = [], 0
        for c in lat:
            k = results.get((c["id"], "klife"), []); r = results.get((c["id"], "librdkafka"), [])
            fails = sum(1 for x in k + r if x.get("failed"))
            words = c["flags"].split()
            target = int(words[words.index("--rate") + 1])
            row = [f"`{c['id']}` {describe(c)}" + (f" ({fails} failed runs)" if fails else ""), fmt(target),
                   f"{fmt(med(k, 'records_per_sec'))} / {fmt(med(r, 'records_per_sec'))}", trio(k), trio(r)]
            for key, label in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                checks += 1
                row.append(checked(f"`{c['id']}` {label}", med(k, key), med(r, key), 0.5, misses))
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        verdict = "all met" if not misses else "**missed**: " + ", ".join(misses)
        out.append(f"Targets: every latency ratio ≤ 0.50× ({checks} checked): {verdict}.")
        out.append("")
    tail = [c for c in cases if c["mode"] == "produce" and "--rate" not in c["flags"].split()
            and ("--sync" in c["flags"].split() or "--max-buffered" in c["flags"].split())]
    if tail:
        out.append(f"### Latency tails of the sync and buffered cases{suffix}")
        out.append("")
        out.append("Medians of each run's percentiles, in µs: produce → acknowledgement of every record (sync), "
                   "enqueue → acknowledgement of every 64th record (buffered, closed loop). Ratio is klife / librdkafka.")
        out.append("")
        out.append("| case | klife p50 / p99 / p99.9 µs | librdkafka p50 / p99 / p99.9 µs | p50 ratio | p99 ratio | p99.9 ratio |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
        misses, checks = [], 0
        for c in tail:
            k = results.get((c["id"], "klife"), []); r = results.get((c["id"], "librdkafka"), [])
            row = [f"`{c['id']}` {describe(c)}", trio(k), trio(r)]
            buffered = "--max-buffered" in c["flags"].split()
            for key in ("p50_us", "p99_us", "p999_us"):
                if buffered and key == "p50_us":
                    checks += 1
                    row.append(checked(f"`{c['id']}` p50", med(k, key), med(r, key), 1.0, misses))
                else:
                    row.append(ratio(med(k, key), med(r, key)))
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        if checks:
            verdict = "all met" if not misses else "**missed**: " + ", ".join(misses)
            out.append(f"Targets: buffered cases' p50 no worse than librdkafka's (ratio ≤ 1.00×, {checks} checked): {verdict}.")
            out.append("")
    return out

def target_summary(results, title):
    """The targets table (geometric means of per-case median ratios) of one broker's results."""
    summary = []
    for mode, tput_target, cpu_target in (("produce", 3.0, 0.2), ("consume", 2.0, 1 / 3)):
        tr, cr = [], []
        for c in cases:
            if c["mode"] != mode or "--sync" in c["flags"] or "--rate" in c["flags"]: continue
            k = results.get((c["id"], "klife"), []); r = results.get((c["id"], "librdkafka"), [])
            kr, rr = med(k, "records_per_sec"), med(r, "records_per_sec")
            kc, rc = med(k, "cpu_ns_per_record"), med(r, "cpu_ns_per_record")
            if kr and rr: tr.append(kr / rr)
            if kc and rc: cr.append(kc / rc)
        if not tr: continue
        gt, gc = geo(tr), geo(cr)
        ok_t = "met" if gt >= tput_target else "**missed**"
        ok_c = "met" if gc is not None and gc <= cpu_target else "**missed**"
        summary.append(f"| {mode} | ≥ {tput_target:g}× | {gt:.2f}× (range {min(tr):.2f}–{max(tr):.2f}) | {ok_t} | "
                       f"≤ {cpu_target:.2f}× | {gc:.2f}× (range {min(cr):.2f}–{max(cr):.2f}) | {ok_c} |")
    if summary:
        lines.append(f"### {title}")
        lines.append("")
        lines.append("| | throughput target | measured | | CPU/record target | measured | |")
        lines.append("| --- | ---: | ---: | --- | ---: | ---: | --- |")
        lines.extend(summary)
        lines.append("")

target_summary(results, "Targets (geometric mean of the per-case median ratios; sync and open-loop cases excluded)")
lines.extend(latency_tables(cases, results))
# The sink's tables after the targets, which are computed from the Tansu results only.
if sink_results:
    lines.append("Against **klife-sink** (the sink broker): Produce is acknowledged without being stored and "
                 "Fetch is served from a record set prepared at start-up, so these tables show each client near "
                 "its own ceiling, with the broker's cost nearly removed. Consumer-group cases are not run.")
    lines.append("")
    case_tables(sink_results, " (sink broker)", skip_groups=True)
    target_summary(sink_results, "Targets against the sink broker (same method)")
    # Against the sink the latency is the clients' own: the broker answers at once.
    lines.extend(latency_tables(cases, sink_results, " (sink broker)"))
# The reactor-scaling table (run_scaling), when it ran.
if os.path.getsize(E["CMP_SCALING_MD"]) > 0:
    lines.append(open(E["CMP_SCALING_MD"]).read().rstrip())
    lines.append("")
lines.append("<details><summary>Raw results (one JSON line per run)</summary>")
lines.append("")
lines.append("```")
for line in open(raw):
    cid, run, js = line.rstrip("\n").split("\t", 2)
    lines.append(f"{cid}\trun {run}\t{js}")
for line in open(raw_sink):
    cid, run, js = line.rstrip("\n").split("\t", 2)
    lines.append(f"sink/{cid}\trun {run}\t{js}")
for line in open(E["CMP_SCALING_RAW"]):
    cid, run, js = line.rstrip("\n").split("\t", 2)
    lines.append(f"sink{E['CMP_SCALING_NODES']}/{cid}\trun {run}\t{js}")
lines.append("```")
lines.append("")
lines.append("</details>")
lines.append("")
lines.append("<!-- END compare.sh results -->")
block = "\n".join(lines)

prof = None
marker = "compare.sh consume profile" if profile_mode == "group" else "compare.sh profile"
if profile_on == "1" and os.path.exists(profile_md) and os.path.getsize(profile_md) > 0:
    prof = (f"<!-- BEGIN {marker} (generated: do not edit by hand; rerun Benchmarks/compare.sh) -->\n\n"
            + open(profile_md).read().rstrip() + f"\n\n<!-- END {marker} -->")

def replace(doc, begin, end, new):
    b, e = doc.find(begin), doc.find(end)
    if b < 0 or e < 0:
        return None
    e = doc.find("-->", e) + 3
    return doc[:b] + new + doc[e:]

if os.path.exists(out):
    doc = open(out).read()
else:
    doc = ("# Benchmarks\n\n## Results\n\n<!-- BEGIN compare.sh results -->\n<!-- END compare.sh results -->\n\n"
           "## Profile of the producer\n\n<!-- BEGIN compare.sh profile -->\n<!-- END compare.sh profile -->\n")
new = replace(doc, "<!-- BEGIN compare.sh results", "<!-- END compare.sh results", block)
if new is None:
    new = doc.rstrip() + "\n\n" + block + "\n"
doc = new
if prof:
    new = replace(doc, f"<!-- BEGIN {marker}", f"<!-- END {marker}", prof)
    if new is None and profile_mode == "group":
        new = doc.rstrip() + "\n\n## Profile of the group consumer\n\n" + prof + "\n"
    doc = new if new is not None else doc.rstrip() + "\n\n" + prof + "\n"
open(out, "w").write(doc)
print(f"[compare] wrote {out}", file=sys.stderr)
EOF
log "done; raw results in $RAW"
