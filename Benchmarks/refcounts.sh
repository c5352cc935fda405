#!/usr/bin/env bash
# refcounts.sh — swift_retain / swift_release calls and heap allocations per record,
# counted exactly with uprobes (perf probe) on libswiftCore and libc, as the difference
# between two run sizes (so start-up, connection set-up and a group join cancel out).
#
#   Benchmarks/refcounts.sh [--klife PATH] [--mode MODE] [-- extra `klife bench` flags]
#
#   --mode produce   `klife bench produce`, 20,000 and 120,000 records (100 B, 6 partitions,
#                    linger 5 ms); the default
#   --mode consume   `klife bench consume` (the fetch loop) of two topics filled first with
#                    20,000 and 120,000 records (100 B, 6 partitions), each read whole: a
#                    consumer fetches ahead, so only a whole topic is read the same way
#   --mode assign    the same through KlifeConsumer, partitions assigned by hand (--assign)
#   --mode group     the same as a member of a fresh consumer group each run (--group)
#
# Allocations are calls of malloc, calloc, realloc, posix_memalign and aligned_alloc in
# libc (Swift allocates through them). Starts its own Tansu broker on a free loopback port
# (the one scripts/bootstrap.sh installed). Needs root for perf probe. Every counted call
# traps into the kernel, so runs are slow; the counts are exact and do not depend on
# machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
KLIFE=.build-rel/release/klife
MODE=produce
EXTRA=()
while (($#)); do
  case "$1" in
    --klife) KLIFE="$2"; shift 2 ;;
    --mode) MODE="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
done
case "$MODE" in produce|consume|assign|group) ;; *) echo "--mode is produce, consume, assign or group" >&2; exit 64 ;; esac
[[ -x "$KLIFE" ]] || { echo "build it first: swift build -c release --product klife --scratch-path .build-rel" >&2; exit 1; }
TANSU="${KLIFE_TANSU_BIN:-$(cat .klife/tansu-path)}"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BROKER="127.0.0.1:$PORT"
WORK="$(mktemp -d)"
"$TANSU" broker --listener-url "tcp://$BROKER" --advertised-listener-url "tcp://$BROKER" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
trap 'kill $BROKER_PID 2>/dev/null; perf probe -q -d "kliferc:*" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
SWIFTCORE="$(ldd "$KLIFE" | awk '/libswiftCore/ {print $3}')"
LIBC="$(ldd "$KLIFE" | awk '$1 ~ /^libc\.so/ {print $3}')"
perf probe -q -d 'kliferc:*' >/dev/null 2>&1 || true
perf probe -q -x "$SWIFTCORE" -a 'kliferc:retain=swift_retain' -a 'kliferc:release=swift_release' >/dev/null
ALLOCATORS=(malloc calloc realloc posix_memalign aligned_alloc)
for f in "${ALLOCATORS[@]}"; do perf probe -q -x "$LIBC" -a "kliferc:$f=$f" >/dev/null; done
EVENTS="kliferc:retain,kliferc:release$(printf ',kliferc:%s' "${ALLOCATORS[@]}")"

if [[ $MODE == produce ]]; then
  FLAGS=(-s 100 -P 6 --latency-every 0 --linger-ms 5)
else
  # Filled before the counted runs (perf stat counts its own command only).
  for n in 20000 120000; do
    "$KLIFE" bench produce -b "$BROKER" -t "rc-source-$n" -n "$n" -s 100 -P 6 --linger-ms 5 --latency-every 0 \
      >/dev/null 2>"$WORK/fill.err" || { cat "$WORK/fill.err" >&2; exit 1; }
  done
  FLAGS=()
  [[ $MODE == assign ]] && FLAGS=(--assign)
fi
count() { # n run -> "retains releases allocations"
  local topic="rc-source-$1" mode=consume extra=()
  if [[ $MODE == produce ]]; then topic="refcount-census-produce-$2"; mode=produce; fi
  if [[ $MODE == group ]]; then extra=(--group "rc-group-$2"); fi
  if ! perf stat -x, -o "$WORK/stat-$2.txt" -e "$EVENTS" -- \
      "$KLIFE" bench "$mode" -b "$BROKER" -t "$topic" -n "$1" "${FLAGS[@]}" "${extra[@]}" "${EXTRA[@]}" \
      >/dev/null 2>"$WORK/run-$2.err"; then
    echo "refcounts: the $1-record run failed: $(tail -n 2 "$WORK/run-$2.err")" >&2
    exit 1
  fi
  awk -F, '/kliferc:retain/ {r=$1} /kliferc:release/ {l=$1} /kliferc:(malloc|calloc|realloc|posix_memalign|aligned_alloc)/ {a+=$1}
           END {print r+0, l+0, a+0}' "$WORK/stat-$2.txt"
}
read -r r1 l1 a1 < <(count 20000 1)
read -r r2 l2 a2 < <(count 120000 2)
python3 -c "import sys; m=sys.argv[1]; r1,l1,a1,r2,l2,a2=map(int,sys.argv[2:]); d=lambda a,b:(b-a)/100000
print(f'{m}: {d(r1,r2):.1f} retains/record, {d(l1,l2):.1f} releases/record, {d(a1,a2):.2f} allocations/record')" \
  "$MODE" "$r1" "$l1" "$a1" "$r2" "$l2" "$a2"
