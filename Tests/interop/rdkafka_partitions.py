#!/usr/bin/env python3
"""Report the partition librdkafka's murmur2_random partitioner picks for each key.

Keys come on stdin, one per line, hex encoded (an empty line is the empty key, which
librdkafka hashes like any other non-null key). Every key is produced, with an empty
value and no explicit partition, by a confluent_kafka Producer configured with
partitioner=murmur2_random to each --topic (each topic's partition count is whatever
the broker says); the partition of every delivery report is what librdkafka chose.

Output: one line per input key, in input order, with the partition picked in each
topic, space separated, in --topic order. Exit 1 if any delivery fails.
"""
import argparse
import sys

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT")
    ap.add_argument("--topic", action="append", required=True, help="topic to produce to (repeatable)")
    ap.add_argument("--timeout-s", type=float, default=120.0)
    args = ap.parse_args()

    keys = [bytes.fromhex(line.strip()) for line in sys.stdin.read().split("\n")[:-1]]
    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "partitioner": "murmur2_random",
        "acks": "all",
        "linger.ms": 20,
        "message.timeout.ms": int(args.timeout_s * 1000),
        "queue.buffering.max.messages": 1_000_000,
    })
    chosen = [[None] * len(args.topic) for _ in keys]
    errors = []

    def on_delivery(index, column):
        def cb(err, msg):
            if err is not None:
                errors.append(f"key #{index} to {args.topic[column]}: {err}")
            else:
                chosen[index][column] = msg.partition()
        return cb

    for column, topic in enumerate(args.topic):
        for index, key in enumerate(keys):
            while True:
                try:
                    p.produce(topic, key=key, value=b"", on_delivery=on_delivery(index, column))
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)

    remaining = p.flush(args.timeout_s)
    if remaining or errors:
        for e in errors[:20]:
            print(e, file=sys.stderr)
        print(f"{remaining} undelivered, {len(errors)} failed", file=sys.stderr)
        return 1
    out = sys.stdout
    for row in chosen:
        out.write(" ".join(str(c) for c in row))
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
