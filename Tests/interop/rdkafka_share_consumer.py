#!/usr/bin/env python3
"""A librdkafka (confluent_kafka) share group consumer (KIP-932), reporting JSON lines.

Usage:
  rdkafka_share_consumer.py --bootstrap HOST:PORT --group G --topic T [--topic T2 ...]

It subscribes to the topics in share group G in implicit acknowledgement mode (each poll
accepts the records of the previous one) and prints one JSON object per line, flushed at once:
  {"event":"started","librdkafka":"2.x.y"}
  {"event":"record","topic":T,"partition":P,"offset":O,"deliveries":N}
  {"event":"error","reason":R}
  {"event":"closed","records":N}
`quit` on stdin (or stdin closing) makes it close the consumer, which accepts what it was
given and leaves the group. It also exits when its parent process dies.
"""
import argparse
import json
import os
import sys
import threading
import time

from confluent_kafka import ShareConsumer, libversion


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", action="append", required=True)
    args = ap.parse_args()

    stop = threading.Event()
    parent = os.getppid()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        stop.set()

    def watch_parent():
        while not stop.is_set():
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=watch_parent, daemon=True).start()

    consumer = ShareConsumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": "rdkafka-share-peer",
    })
    consumer.subscribe(args.topic)
    emit({"event": "started", "librdkafka": libversion()[0]})
    records = 0
    while not stop.is_set():
        try:
            messages = consumer.poll(0.2)
        except Exception as e:  # report, keep polling
            emit({"event": "error", "reason": str(e)})
            continue
        for m in messages or []:
            if m.error():
                emit({"event": "error", "reason": str(m.error())})
                continue
            records += 1
            emit({"event": "record", "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                  "deliveries": m.delivery_count()})
    consumer.close()
    emit({"event": "closed", "records": records})


if __name__ == "__main__":
    main()
