#!/usr/bin/env python3
"""Read exactly N records from a topic with librdkafka (confluent_kafka).

Uses manual assign() of every partition at OFFSET_BEGINNING (no group join,
so no rebalance delay). Prints one JSON object per record, sorted by
(partition, offset):
  {"topic","partition","offset","key_hex","value_hex",
   "headers": [[name, value_hex|null], ...],"timestamp_type","timestamp"}
Exit codes: 0 ok, 2 timeout before N records, 1 other error.
"""
import argparse
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def hex_or_none(b):
    return None if b is None else bytes(b).hex()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout-s", type=float, default=30.0)
    ap.add_argument("--from-beginning", default="default",
                    help="accepted for compatibility; reading always starts at the beginning")
    ap.add_argument("--debug", default=None, help="librdkafka debug contexts, e.g. protocol")
    args = ap.parse_args()

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": "klife-interop-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    if args.debug:
        conf["debug"] = args.debug
    deadline = time.monotonic() + args.timeout_s
    c = Consumer(conf)
    try:
        # Wait for the topic to appear in metadata (it may have just been created).
        parts = []
        while not parts:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"timeout: topic {args.topic!r} not in metadata", file=sys.stderr)
                return 2
            md = c.list_topics(args.topic, timeout=min(left, 5.0))
            t = md.topics.get(args.topic)
            if t is not None and t.error is None and t.partitions:
                parts = sorted(t.partitions)
            else:
                time.sleep(0.1)
        c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in parts])

        out = []
        while len(out) < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"timeout: got {len(out)}/{args.count} records", file=sys.stderr)
                return 2
            msgs = c.consume(num_messages=args.count - len(out), timeout=min(left, 1.0))
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    print(f"consume error: {err}", file=sys.stderr)
                    if err.fatal():
                        return 1
                    continue
                ts_type, ts = m.timestamp()
                out.append({
                    "topic": m.topic(),
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "key_hex": hex_or_none(m.key()),
                    "value_hex": hex_or_none(m.value()),
                    "headers": [[k, hex_or_none(v)] for k, v in (m.headers() or [])],
                    "timestamp_type": ts_type,
                    "timestamp": ts,
                })
        out.sort(key=lambda r: (r["partition"], r["offset"]))
        for r in out[: args.count]:
            print(json.dumps(r, separators=(",", ":")))
        return 0
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
