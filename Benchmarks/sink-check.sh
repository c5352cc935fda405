#!/usr/bin/env bash
# sink-check.sh — end-to-end check of klife-sink with both benchmark clients.
#
#   Benchmarks/sink-check.sh [--records N] [--build]
#
# Starts klife-sink on a free loopback port and checks that
#   - `klife bench produce` and `rdkafka_bench produce` each complete N records of 100 B on
#     6 partitions (idempotent, acks=all) and on 1 partition with lz4,
#   - `klife bench consume` and `rdkafka_bench consume` each read the prepared record set
#     (N rounded down to a multiple of 60,000 records, plain and lz4) with the same checksum,
#   - malformed input closes only its own connection (a line on stderr; the sink lives on).
# Uses .build-bench/release/klife, .build-bench/rdkafka_bench (see compare.sh) and
# Benchmarks/.build/release/klife-sink; --build builds klife and klife-sink first.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=1000000
BUILD=0
while (($#)); do
  case "$1" in
    --records) RECORDS="$2"; shift 2 ;;
    --build) BUILD=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "sink-check.sh: unknown option '$1'" >&2; exit 64 ;;
  esac
done
KLIFE=.build-bench/release/klife
PEER=.build-bench/rdkafka_bench
SINK=Benchmarks/.build/release/klife-sink
if ((BUILD)); then
  swift build -c release --product klife --scratch-path .build-bench
  swift build -c release --package-path Benchmarks --product klife-sink
fi
for tool in "$KLIFE" "$PEER" "$SINK"; do
  [[ -x $tool ]] || { echo "sink-check.sh: $tool missing (build it, or see compare.sh)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/klife-sink-check.XXXXXX)"
SINK_PID=""
stop_sink() {
  if [[ -n $SINK_PID ]]; then kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; fi
  SINK_PID=""
}
trap stop_sink EXIT
FAILURES=0
fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }

# start_sink ARGS...: a fresh sink; sets BROKER.
start_sink() {
  stop_sink
  rm -f "$WORK/sink.out"
  "$SINK" --port 0 "$@" >"$WORK/sink.out" 2>>"$WORK/sink.err" &
  SINK_PID=$!
  for _ in $(seq 1 300); do [[ -s $WORK/sink.out ]] && break; sleep 0.1; done
  BROKER="$(head -n1 "$WORK/sink.out" | awk '{print $2}')"
  [[ -n $BROKER ]] || { cat "$WORK/sink.err" >&2; echo "sink-check.sh: klife-sink did not start" >&2; exit 1; }
}

# check_run LABEL EXPECTED COMMAND...: runs a bench command, checks its JSON line's record
# count, prints the line's numbers, and leaves the stderr checksum line in $CHECKSUM.
check_run() {
  local label=$1 expected=$2; shift 2
  local out rc=0
  out="$(timeout 300 "$@" 2>"$WORK/run.err")" || rc=$?
  local line; line="$(grep '^{' <<< "$out" | tail -n1 || true)"
  CHECKSUM="$(grep -o 'checksum [0-9]*' "$WORK/run.err" || true)"
  if ((rc != 0)) || [[ -z $line ]]; then
    fail "$label: exit $rc: $(tail -n 2 "$WORK/run.err" | tr '\n' ' ')"
    return 0
  fi
  python3 - "$label" "$expected" "$line" <<'PY' || FAILURES=$((FAILURES + 1))
import json, sys
label, expected, line = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
ok = line["records"] == expected
print(f"{'ok  ' if ok else 'FAIL'} {label:<34} {line['records']:>9,} records {line['records_per_sec']:>12,.0f} rec/s "
      f"{line['cpu_ns_per_record']:>7.0f} CPU ns/rec")
sys.exit(0 if ok else 1)
PY
}

PRODUCE=(-n "$RECORDS" -s 100 --acks all --idempotent true --linger-ms 5)
start_sink
echo "klife-sink on $BROKER"
check_run "klife produce 6 p" "$RECORDS" "$KLIFE" bench produce -b "$BROKER" -t check-k6 -P 6 "${PRODUCE[@]}"
check_run "librdkafka produce 6 p" "$RECORDS" "$PEER" produce -b "$BROKER" -t check-r6 -P 6 "${PRODUCE[@]}"
check_run "klife produce 1 p lz4" "$RECORDS" "$KLIFE" bench produce -b "$BROKER" -t check-k1 -P 1 "${PRODUCE[@]}" -z lz4
check_run "librdkafka produce 1 p lz4" "$RECORDS" "$PEER" produce -b "$BROKER" -t check-r1 -P 1 "${PRODUCE[@]}" -z lz4

# Consumers read every prepared record, so that both read the same records and their
# checksums must agree: N rounded down to a multiple of 60,000 (6 partitions; and whole
# batches of the peer's 10,000-message consume calls, which otherwise wait 1 s for the rest).
CONSUME=$(( RECORDS / 60000 * 60000 ))
((CONSUME > 0)) || CONSUME=60000
per_partition=$(( CONSUME / 6 ))
for codec in none lz4; do
  start_sink --topic check-c:6 --fetch-records "$per_partition" --fetch-record-size 100 --fetch-compression "$codec"
  check_run "klife consume ($codec)" "$CONSUME" "$KLIFE" bench consume -b "$BROKER" -t check-c -n "$CONSUME"
  klife_sum=$CHECKSUM
  check_run "librdkafka consume ($codec)" "$CONSUME" "$PEER" consume -b "$BROKER" -t check-c -n "$CONSUME"
  [[ -n $klife_sum && $klife_sum == "$CHECKSUM" ]] || fail "consume ($codec): checksums differ ('$klife_sum' vs '$CHECKSUM')"
done

# Malformed input: a frame with a huge Metadata topic count, then a negative frame size.
python3 - "${BROKER##*:}" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
for frame in (struct.pack(">hhih", 3, 8, 1, -1) + struct.pack(">i", 10**6), None):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack(">i", len(frame)) + frame if frame else struct.pack(">i", -5))
    s.settimeout(5)
    assert s.recv(16) == b"", "the sink answered malformed input"
    s.close()
PY
sleep 0.2
if kill -0 "$SINK_PID" 2>/dev/null && [[ $(grep -c 'closed:' "$WORK/sink.err") -ge 2 ]]; then
  echo "ok   malformed input closes its own connection; the sink lives on"
else
  fail "malformed input: $(tail -n 3 "$WORK/sink.err" | tr '\n' ' ')"
fi

if ((FAILURES)); then echo "sink-check: $FAILURES failure(s); logs in $WORK" >&2; exit 1; fi
echo "sink-check: all passed"
rm -rf "$WORK"
