#!/usr/bin/env python3
"""Produce JSON-line records from stdin with librdkafka (confluent_kafka).

Input, one JSON object per line (all fields optional):
  {"partition": int, "key_hex": str|null, "value_hex": str|null,
   "headers": [[name, value_hex|null], ...], "timestamp": int (ms)}
Output, one JSON line per input record, in input order:
  {"index": i, "partition": p, "offset": o}           on success
  {"index": i, "error": "..."}                       on failure
Producer: acks=all, linger.ms=5 (--linger-ms), compression.type=none
(--compression gzip|snappy|lz4|zstd). Exit 1 if any delivery fails.
"""
import argparse
import json
import sys

from confluent_kafka import Producer


def unhex(s):
    return None if s is None else bytes.fromhex(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--timeout-s", type=float, default=30.0)
    ap.add_argument("--debug", default=None, help="librdkafka debug contexts, e.g. protocol")
    ap.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"],
                    help="compression.type of the produced batches")
    ap.add_argument("--linger-ms", type=int, default=5,
                    help="linger.ms: raise it so several records share one (compressed) batch")
    args = ap.parse_args()

    conf = {
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": args.linger_ms,
        "compression.type": args.compression,
        "message.timeout.ms": int(args.timeout_s * 1000),
    }
    if args.debug:
        conf["debug"] = args.debug
    p = Producer(conf)
    results = {}

    def on_delivery(index):
        def cb(err, msg):
            if err is not None:
                results[index] = {"index": index, "error": str(err)}
            else:
                results[index] = {"index": index, "partition": msg.partition(), "offset": msg.offset()}
        return cb

    n = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        kw = {
            "key": unhex(rec.get("key_hex")),
            "value": unhex(rec.get("value_hex")),
            "on_delivery": on_delivery(n),
        }
        if rec.get("partition") is not None:
            kw["partition"] = int(rec["partition"])
        if rec.get("headers"):
            kw["headers"] = [(h[0], unhex(h[1])) for h in rec["headers"]]
        if rec.get("timestamp") is not None:
            kw["timestamp"] = int(rec["timestamp"])
        while True:
            try:
                p.produce(args.topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        n += 1

    remaining = p.flush(args.timeout_s)
    failed = remaining > 0
    for i in range(n):
        r = results.get(i, {"index": i, "error": "not delivered before timeout"})
        failed |= "error" in r
        print(json.dumps(r, separators=(",", ":")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
