#!/usr/bin/env python3
"""End-to-end check of the interop tools against a throwaway Tansu broker.

Starts Tansu (memory storage) on a free loopback port, prints the ApiVersions
table, creates a 3-partition topic with rdkafka_admin.py, produces 10 keyed
records with headers through rdkafka_produce.py, reads them back with
rdkafka_consume.py, compares, deletes the topic, and prints timings.
Broker binary: $KLIFE_TANSU_BIN, else .klife/tansu-path. Exit 0 on success.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PY = sys.executable
TOPIC = "interop-selfcheck"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu_bin():
    b = os.environ.get("KLIFE_TANSU_BIN")
    if not b:
        b = (ROOT / ".klife" / "tansu-path").read_text().strip()
    return b


def run(label, args, stdin=None):
    t0 = time.monotonic()
    r = subprocess.run([PY, str(HERE / args[0]), *args[1:]], input=stdin,
                       capture_output=True, text=True, timeout=120)
    dt = time.monotonic() - t0
    print(f"  {label:<28} rc={r.returncode} {dt * 1000:8.1f} ms")
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"{label} failed")
    return r.stdout


def expected_records():
    recs = []
    for i in range(10):
        recs.append({
            "partition": i % 3,
            "key_hex": None if i == 7 else f"key-{i}".encode().hex(),
            "value_hex": None if i == 8 else (f"value-{i}".encode() * (i + 1)).hex(),
            "headers": [] if i == 5 else [["idx", str(i).encode().hex()], ["empty", ""],
                                          ["null", None], ["dup", "01"], ["dup", "02"]],
            "timestamp": 1_700_000_000_000 + i,
        })
    return recs


def main():
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    url = f"tcp://{bootstrap}"
    t0 = time.monotonic()
    broker = subprocess.Popen([tansu_bin(), "broker", "--listener-url", url,
                               "--advertised-listener-url", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if broker.poll() is not None or time.monotonic() - t0 > 10:
                    raise SystemExit("tansu did not start")
                time.sleep(0.01)
        print(f"tansu pid={broker.pid} on {bootstrap}, accepting after {(time.monotonic() - t0) * 1000:.1f} ms")
        print(run("apiversions_probe.py", ["apiversions_probe.py", "--bootstrap", bootstrap]), end="")
        run("admin create (3 partitions)", ["rdkafka_admin.py", "create", "--bootstrap", bootstrap,
                                             "--topic", TOPIC, "--partitions", "3"])
        want = expected_records()
        stdin = "".join(json.dumps(r) + "\n" for r in want)
        delivered = [json.loads(l) for l in run("produce 10", ["rdkafka_produce.py", "--bootstrap", bootstrap,
                                                               "--topic", TOPIC], stdin).splitlines()]
        got = [json.loads(l) for l in run("consume 10", ["rdkafka_consume.py", "--bootstrap", bootstrap,
                                                         "--topic", TOPIC, "--count", "10"]).splitlines()]
        by_pos = {(g["partition"], g["offset"]): g for g in got}
        bad = 0
        for w, d in zip(want, delivered):
            g = by_pos.get((d["partition"], d["offset"]))
            exp = dict(w, topic=TOPIC, offset=d["offset"], timestamp_type=1)
            if g != exp:
                bad += 1
                print(f"  MISMATCH\n    want {json.dumps(exp)}\n    got  {json.dumps(g)}")
        run("admin delete", ["rdkafka_admin.py", "delete", "--bootstrap", bootstrap, "--topic", TOPIC])
        if bad or len(got) != len(want):
            raise SystemExit(f"{bad} mismatches, {len(got)} records read")
        print(f"OK: 10/10 records round-tripped, total {(time.monotonic() - t0):.2f} s")
        return 0
    finally:
        broker.terminate()
        try:
            broker.wait(5)
        except subprocess.TimeoutExpired:
            broker.kill()


if __name__ == "__main__":
    sys.exit(main())
