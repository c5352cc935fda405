#!/usr/bin/env python3
"""A librdkafka (confluent_kafka) consumer-group member, driven from stdin, reporting JSON lines.

Usage:
  rdkafka_group_member.py --bootstrap HOST:PORT --group G --topic T [--topic T2 ...]
      [--protocol classic|consumer] [--assignor range|roundrobin|cooperative-sticky]
      [--instance-id ID] [--session-timeout-ms N] [--count N] [--commit]
      [--timeout-s S] [--no-close] [--client-id NAME] [--debug CONTEXTS]

It subscribes to the topics in group G (group.protocol classic or consumer, KIP-848; the
assignor and session timeout apply to classic only), reads from the earliest offset when the
group has none committed, and prints one JSON object per line, flushed at once:
  {"event":"started","librdkafka":"2.x.y","confluent_kafka":"2.x.y"}
  {"event":"assigned","partitions":[[topic,p],...],"assignment":[[topic,p],...]}
  {"event":"revoked","partitions":[...],"assignment":[...]}
  {"event":"lost","partitions":[...],"assignment":[...]}
      (partitions: this event's; assignment: everything held after it, sorted)
  {"event":"member","member_id":ID}        before an assignment change that came with a new member id
  {"event":"record","topic":T,"partition":P,"offset":O,"value_hex":H}
  {"event":"committed","offsets":[[topic,p,offset],...]}   from consumer.committed()
  {"event":"commit_retry","name":N,"reason":R}             a --commit refused as stale, sent again
  {"event":"error","code":C,"name":N,"reason":R}
  {"event":"timeout"}                                       --timeout-s ran out
  {"event":"exit","records":N}
  {"event":"closed"}                                        the consumer left the group

With --commit every record is committed synchronously right after it is printed. A commit
refused with STALE_MEMBER_EPOCH (KIP-848: the coordinator moved the member epoch and the
heartbeat answer that tells librdkafka is still on its way; librdkafka hands the refusal to the
application) is sent again after a short pause, up to 5 times. Commands on
stdin, one per line: `committed` prints the committed offsets of every partition ever
assigned; `quit` stops. The member stops after --count records (0: until `quit` or stdin
closes), prints its committed offsets, and closes the consumer, leaving the group; with
--no-close it exits without closing (os._exit), like a killed member, which the coordinator
only drops after its session timeout.

The process also exits when stdin closes or its parent process dies, so it never outlives
the test that started it. Exit codes: 0 done, 2 --timeout-s ran out, 1 fatal error.
"""
import argparse
import json
import os
import queue
import sys
import threading
import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

STALE_MEMBER_EPOCH = 113

_out_lock = threading.Lock()


def emit(obj):
    with _out_lock:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def watch_parent(parent):
    """Exit at once if the process that started us goes away (it may not close our stdin)."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def read_commands(commands):
    """Feeds stdin lines to the main loop; end of input counts as `quit`."""
    for line in sys.stdin:
        word = line.strip()
        if word:
            commands.put(word)
    commands.put("quit")


class Member:
    def __init__(self, args):
        self.args = args
        self.held = set()
        self.ever = set()
        self.member_id = None
        conf = {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "group.protocol": args.protocol,
            "client.id": args.client_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        if args.protocol == "classic":
            conf["partition.assignment.strategy"] = args.assignor
            if args.session_timeout_ms is not None:
                conf["session.timeout.ms"] = args.session_timeout_ms
        if args.instance_id:
            conf["group.instance.id"] = args.instance_id
        if args.debug:
            conf["debug"] = args.debug
        self.consumer = Consumer(conf)

    def changed(self, event, partitions):
        pairs = {(p.topic, p.partition) for p in partitions}
        if event == "assigned":
            self.held |= pairs
            self.ever |= pairs
        else:
            self.held -= pairs
        member_id = self.consumer.memberid()
        if member_id and member_id != self.member_id:
            self.member_id = member_id
            emit({"event": "member", "member_id": member_id})
        emit({"event": event, "partitions": sorted([list(p) for p in pairs]),
              "assignment": sorted([list(p) for p in self.held])})

    def subscribe(self):
        self.consumer.subscribe(
            self.args.topic,
            on_assign=lambda c, ps: self.changed("assigned", ps),
            on_revoke=lambda c, ps: self.changed("revoked", ps),
            on_lost=lambda c, ps: self.changed("lost", ps),
        )

    def commit(self, message):
        """Commits `message` synchronously; a refusal as stale is sent again (see above)."""
        for attempt in range(1, 6):
            try:
                self.consumer.commit(message=message, asynchronous=False)
                return
            except KafkaException as e:
                error = e.args[0] if e.args else None
                if attempt == 5 or not isinstance(error, KafkaError) or error.code() != STALE_MEMBER_EPOCH:
                    raise
                emit({"event": "commit_retry", "name": error.name(), "reason": error.str()})
                time.sleep(0.05 * attempt)

    def print_committed(self):
        offsets = []
        if self.ever:
            asked = [TopicPartition(t, p) for t, p in sorted(self.ever)]
            for tp in self.consumer.committed(asked, timeout=10):
                if tp.error is None and tp.offset >= 0:
                    offsets.append([tp.topic, tp.partition, tp.offset])
        emit({"event": "committed", "offsets": offsets})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT")
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", action="append", required=True, help="repeatable")
    ap.add_argument("--protocol", choices=["classic", "consumer"], default="classic", help="group.protocol")
    ap.add_argument("--assignor", choices=["range", "roundrobin", "cooperative-sticky"], default="range",
                    help="partition.assignment.strategy (classic only)")
    ap.add_argument("--instance-id", default=None, help="group.instance.id (static membership)")
    ap.add_argument("--session-timeout-ms", type=int, default=None, help="session.timeout.ms (classic only)")
    ap.add_argument("--count", type=int, default=0, help="stop after N records in total; 0: until quit")
    ap.add_argument("--commit", action="store_true", help="commit each record synchronously after printing it")
    ap.add_argument("--timeout-s", type=float, default=120.0)
    ap.add_argument("--no-close", action="store_true", help="exit without leaving the group")
    ap.add_argument("--client-id", default="rdkafka-group-member")
    ap.add_argument("--debug", default=None, help="librdkafka debug contexts, e.g. cgrp")
    args = ap.parse_args()
    if args.protocol == "consumer" and args.session_timeout_ms is not None:
        ap.error("--session-timeout-ms applies to --protocol classic only (the broker sets it for consumer groups)")

    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()

    member = Member(args)
    emit({"event": "started", "librdkafka": confluent_kafka.libversion()[0], "confluent_kafka": confluent_kafka.__version__})
    member.subscribe()
    deadline = time.monotonic() + args.timeout_s
    records = 0
    status = 0
    try:
        while True:
            try:
                command = commands.get_nowait()
            except queue.Empty:
                command = None
            if command == "quit":
                break
            if command == "committed":
                member.print_committed()
            elif command is not None:
                emit({"event": "error", "code": -1, "name": "UNKNOWN_COMMAND", "reason": command})
            if args.count and records >= args.count:
                break
            if time.monotonic() >= deadline:
                emit({"event": "timeout"})
                status = 2
                break
            message = member.consumer.poll(0.1)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                emit({"event": "error", "code": error.code(), "name": error.name(), "reason": error.str()})
                if error.fatal():
                    status = 1
                    break
                continue
            value = message.value()
            emit({"event": "record", "topic": message.topic(), "partition": message.partition(),
                  "offset": message.offset(), "value_hex": None if value is None else bytes(value).hex()})
            records += 1
            if args.commit:
                member.commit(message)
        member.print_committed()
    except Exception as e:  # report, then leave as a dead member would not
        emit({"event": "error", "code": -1, "name": type(e).__name__, "reason": str(e)})
        status = 1
    emit({"event": "exit", "records": records})
    if args.no_close:
        os._exit(status)
    # Closing leaves the group; never let a stuck close keep us alive.
    threading.Timer(15.0, lambda: os._exit(status or 1)).start()
    member.consumer.close()
    emit({"event": "closed"})
    os._exit(status)


if __name__ == "__main__":
    main()
