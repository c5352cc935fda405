#!/usr/bin/env python3
"""Produce records in real transactions with librdkafka (confluent_kafka).

--plan is a comma-separated list of OUTCOME:COUNT steps, OUTCOME one of
commit, abort, open (begin, produce, flush, then leave the transaction open).
Step i produces COUNT records with value "<label>-<i>-<j>" (label from --label,
default the transactional id) to --partition, then commits or aborts.
An "open" step must be the last one: the script prints its output, then waits
for a line on stdin (or EOF) before aborting the still open transaction
(--open-end commit to commit it instead) and printing {"closed": outcome}.
Output, one JSON line per produced record, in order:
  {"step": i, "outcome": "commit|abort|open", "value": "...", "offset": o}
then {"done": true} after the last step (flushed stdout).
--record-delay-ms D flushes and sleeps D ms after each record (one batch per record,
so two concurrent runs interleave their transactions on the partition); --start-at MS
(Unix time in ms) waits after init_transactions until then, so both runs start together.

Witness mode (no transactions): --consume read_committed|read_uncommitted --count N
reads --partition from the beginning with a librdkafka consumer at that isolation
level for up to --timeout-s (or until N records) and prints
  {"offset": o, "value": "..."} per record.

Offsets witness: --committed-group G prints the offset group G has committed for
--topic/--partition, as {"committed": o} (-1001 when none).
"""
import argparse
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def consume(args):
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "klife-txn-witness-" + uuid.uuid4().hex,
        "isolation.level": args.consume,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(args.topic, args.partition, OFFSET_BEGINNING)])
    deadline = time.monotonic() + args.timeout_s
    n = 0
    while n < args.count and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                if n >= args.count:
                    break
                continue
            print(json.dumps({"error": str(m.error())}), file=sys.stderr)
            return 1
        print(json.dumps({"offset": m.offset(), "value": m.value().decode()}, separators=(",", ":")))
        n += 1
    c.close()
    return 0


def committed(args):
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.committed_group,
        "enable.auto.commit": False,
    })
    try:
        tps = c.committed([TopicPartition(args.topic, args.partition)], timeout=args.timeout_s)
        print(json.dumps({"committed": tps[0].offset}))
    finally:
        c.close()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, default=0)
    ap.add_argument("--transactional-id")
    ap.add_argument("--label", default=None)
    ap.add_argument("--plan", help="e.g. commit:3,abort:2,commit:1")
    ap.add_argument("--record-delay-ms", type=int, default=0)
    ap.add_argument("--start-at", type=int, default=0, help="Unix ms to begin the first transaction at")
    ap.add_argument("--consume", choices=["read_committed", "read_uncommitted"], default=None)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--committed-group", default=None)
    ap.add_argument("--open-end", default="abort", choices=["abort", "commit"])
    ap.add_argument("--timeout-s", type=float, default=30.0)
    ap.add_argument("--debug", default=None)
    args = ap.parse_args()
    if args.consume:
        return consume(args)
    if args.committed_group:
        return committed(args)
    if not args.transactional_id or not args.plan:
        ap.error("--transactional-id and --plan are required")

    steps = []
    for part in args.plan.split(","):
        outcome, count = part.split(":")
        if outcome not in ("commit", "abort", "open"):
            ap.error(f"bad outcome {outcome!r}")
        steps.append((outcome, int(count)))
    if any(o == "open" for o, _ in steps[:-1]):
        ap.error("an open step must be the last")

    conf = {
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.transactional_id,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": int(args.timeout_s * 1000),
        "transaction.timeout.ms": 60000,
    }
    if args.debug:
        conf["debug"] = args.debug
    p = Producer(conf)
    p.init_transactions(args.timeout_s)
    if args.start_at:
        time.sleep(max(0.0, args.start_at / 1000 - time.time()))
    label = args.label or args.transactional_id
    errors = []

    for i, (outcome, count) in enumerate(steps):
        p.begin_transaction()
        delivered = {}

        def cb(j):
            def on_delivery(err, msg):
                if err is not None:
                    errors.append(str(err))
                else:
                    delivered[j] = msg.offset()
            return on_delivery

        values = [f"{label}-{i}-{j}" for j in range(count)]
        for j, v in enumerate(values):
            p.produce(args.topic, value=v.encode(), partition=args.partition, on_delivery=cb(j))
            if args.record_delay_ms:
                p.flush(args.timeout_s)
                time.sleep(args.record_delay_ms / 1000)
        p.flush(args.timeout_s)
        if outcome == "commit":
            p.commit_transaction(args.timeout_s)
        elif outcome == "abort":
            p.abort_transaction(args.timeout_s)
        for j, v in enumerate(values):
            print(json.dumps({"step": i, "outcome": outcome, "value": v, "offset": delivered.get(j, -1)},
                             separators=(",", ":")))
        sys.stdout.flush()

    print(json.dumps({"done": True}))
    sys.stdout.flush()
    if steps and steps[-1][0] == "open":
        sys.stdin.readline()
        if args.open_end == "commit":
            p.commit_transaction(args.timeout_s)
        else:
            p.abort_transaction(args.timeout_s)
        print(json.dumps({"closed": args.open_end}))
    if errors:
        print(json.dumps({"errors": errors}), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
