#!/usr/bin/env bash
# refcounts.sh — swift_retain / swift_release calls per produced record, counted exactly
# with uprobes on libswiftCore (perf probe), as the difference between two run sizes.
#
#   Benchmarks/refcounts.sh [--klife PATH] [-- extra `klife bench produce` flags]
#
# Starts its own Tansu broker on a free loopback port (the one scripts/bootstrap.sh
# installed), runs `klife bench produce` with 20,000 and 120,000 records (100 B,
# 6 partitions, linger 5 ms) under `perf stat`, and prints the per-record counts. Needs root for perf
# probe. Every call traps into the kernel, so runs are slow; the counts are exact and do
# not depend on machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
KLIFE=.build-rel/release/klife
EXTRA=()
while (($#)); do
  case "$1" in
    --klife) KLIFE="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
done
[[ -x "$KLIFE" ]] || { echo "build it first: swift build -c release --product klife --scratch-path .build-rel" >&2; exit 1; }
TANSU="$(cat .klife/tansu-path)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
WORK="$(mktemp -d)"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
trap 'kill $BROKER_PID 2>/dev/null; perf probe -q -d "kliferc:*" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
SWIFTCORE="$(ldd "$KLIFE" | awk '/libswiftCore/ {print $3}')"
perf probe -q -d 'kliferc:*' >/dev/null 2>&1 || true
perf probe -q -x "$SWIFTCORE" -a 'kliferc:retain=swift_retain' -a 'kliferc:release=swift_release' >/dev/null
FLAGS=(-s 100 -P 6 --latency-every 0 --linger-ms 5)
count() { # topic n -> "retains releases"
  perf stat -x, -e kliferc:retain,kliferc:release -- \
    "$KLIFE" bench produce -b "127.0.0.1:$PORT" -t "$1" -n "$2" "${FLAGS[@]}" "${EXTRA[@]}" 2>&1 >/dev/null \
    | awk -F, '/kliferc:retain/ {r=$1} /kliferc:release/ {l=$1} END {print r+0, l+0}'
}
read -r r1 l1 < <(count rc-small 20000)
read -r r2 l2 < <(count rc-large 120000)
python3 -c "import sys; r1,l1,r2,l2=map(int,sys.argv[1:]); print(f'produce: {(r2-r1)/100000:.1f} retains/record, {(l2-l1)/100000:.1f} releases/record')" "$r1" "$l1" "$r2" "$l2"
