"""What the broker does with a transaction its producer left open by dying.

A producer (a child process) begins a transaction, produces one record and exits without
committing or aborting. A second producer with the same transactional id then initialises
(Kafka aborts the open transaction here: the epoch bump fences the dead one) and commits a
transaction of its own. Prints the values a read_committed consumer sees, as JSON.

usage: tansu_abandoned_transaction.py --bootstrap HOST:PORT --topic TOPIC --id TRANSACTIONAL_ID
"""
import argparse
import json
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

parser = argparse.ArgumentParser()
parser.add_argument("--bootstrap", required=True)
parser.add_argument("--topic", required=True)
parser.add_argument("--id", required=True)
parser.add_argument("--die", action="store_true", help="(internal) be the producer that dies")
args = parser.parse_args()

if args.die:
    dying = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": args.id})
    dying.init_transactions()
    dying.begin_transaction()
    dying.produce(args.topic, partition=0, value=b"from-dead-producer")
    dying.flush()
    os._exit(0)

subprocess.run([sys.executable, __file__, "--bootstrap", args.bootstrap, "--topic", args.topic,
                "--id", args.id, "--die"], check=True)
successor = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": args.id})
successor.init_transactions()
successor.begin_transaction()
successor.produce(args.topic, partition=0, value=b"from-successor")
successor.commit_transaction()

consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "probe-" + args.topic,
                     "isolation.level": "read_committed", "enable.auto.commit": False})
consumer.assign([TopicPartition(args.topic, 0, 0)])
seen = []
deadline = time.time() + 10
while time.time() < deadline and "from-successor" not in seen:
    message = consumer.poll(0.5)
    if message is not None and not message.error():
        seen.append(message.value().decode())
consumer.close()
print(json.dumps(seen))
