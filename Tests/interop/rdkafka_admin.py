#!/usr/bin/env python3
"""Topic admin with librdkafka (confluent_kafka AdminClient).

  rdkafka_admin.py create --bootstrap H:P --topic T [--partitions N] [--replication-factor R]
  rdkafka_admin.py delete --bootstrap H:P --topic T
  rdkafka_admin.py list   --bootstrap H:P
Exit 0 on success (create of an existing topic counts as success), 1 otherwise.
"""
import argparse
import sys

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("create", "delete", "list"):
        s = sub.add_parser(name)
        s.add_argument("--bootstrap", required=True, help="HOST:PORT")
        s.add_argument("--timeout-s", type=float, default=30.0)
        if name != "list":
            s.add_argument("--topic", required=True)
        if name == "create":
            s.add_argument("--partitions", type=int, default=1)
            s.add_argument("--replication-factor", type=int, default=1)
    args = ap.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    t = args.timeout_s
    if args.cmd == "list":
        md = admin.list_topics(timeout=t)
        for name in sorted(md.topics):
            print(f"{name}\t{len(md.topics[name].partitions)}")
        return 0
    if args.cmd == "create":
        fut = admin.create_topics(
            [NewTopic(args.topic, num_partitions=args.partitions,
                      replication_factor=args.replication_factor)],
            operation_timeout=t, request_timeout=t)
    else:
        fut = admin.delete_topics([args.topic], operation_timeout=t, request_timeout=t)
    try:
        fut[args.topic].result(timeout=t)
    except Exception as e:  # KafkaException wrapping a KafkaError
        err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
        if args.cmd == "create" and err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            print(f"{args.topic}: already exists", file=sys.stderr)
            return 0
        print(f"{args.cmd} {args.topic} failed: {e}", file=sys.stderr)
        return 1
    print(f"{args.cmd}d {args.topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
