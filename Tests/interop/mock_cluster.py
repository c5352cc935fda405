#!/usr/bin/env python3
"""Run a librdkafka mock cluster (real TCP brokers on 127.0.0.1) and drive it from stdin.

Usage:
  mock_cluster.py --brokers 3 --topic orders:6 [--topic logs:3:2 ...]

Start-up: creates the cluster and the topics (NAME:PARTITIONS[:RF], RF defaults to 1,
which spreads partition leaders over the brokers deterministically: partition p is led
by broker p mod N + 1), then prints ONE JSON line and flushes:
  {"bootstrap": "127.0.0.1:p1,127.0.0.1:p2,..."}
Broker ids are 1..N, in the same order as the bootstrap list.

Commands, one per line on stdin; each is answered with one JSON line,
{"ok": true} or {"ok": false, "error": "..."}:
  leader TOPIC PARTITION BROKER   move the partition's leadership to BROKER (>= 1);
                                  TOPIC must be one created with --topic
  down BROKER                     close the broker's connections; it stays out of
                                  Metadata answers until `up`
  up BROKER                       bring the broker back
  rtt BROKER MS                   delay every response of the broker by MS
  errors APIKEY CODE [CODE...]    fail the next requests of that API key (any broker)
                                  with these Kafka error codes, one code per request
  coordinator TYPE KEY BROKER     make BROKER the coordinator of KEY, TYPE being
                                  "transaction" (a transactional id) or "group"
  consumer_group SESSION_MS HEARTBEAT_MS
                                  session timeout and heartbeat interval of
                                  KIP-848 consumer groups (defaults 30000 and
                                  3000; members pick them up on their next
                                  ConsumerGroupHeartbeat)
  advertise BROKER HOST PORT      make Metadata and FindCoordinator answers name HOST:PORT
                                  for BROKER (a proxy in front of it); it still listens
                                  on its own port
  apiversion APIKEY MIN MAX       advertise (and accept) only MIN..MAX of an API
  group_initial_delay MS          how long the first join of an empty group waits for more
                                  members before the leader is elected (librdkafka's
                                  default is 3000, as Kafka's group.initial.rebalance.delay.ms)
  share_group SESSION_MS HEARTBEAT_MS LOCK_MS
                                  share groups (KIP-932): member session timeout,
                                  heartbeat interval and record acquisition lock
                                  duration (defaults 45000, 5000 and 30000)
  share_offset_reset earliest|latest
                                  where a share partition starts when first
                                  consumed (default latest)
  share_max_deliveries N          deliveries before a record is archived (default 5;
                                  0 = unlimited)
  share_assign GROUP MIN_MEMBERS TOPIC PARTITION [PARTITION...]
                                  give these partitions to every member of the share
                                  group (a manual assignment: several members share one
                                  partition); fails unless at least MIN_MEMBERS joined
  quit                            exit

The process exits when stdin closes or its parent process dies, so it never outlives
the test that started it. It talks to librdkafka (bundled with confluent-kafka, or
KLIFE_LIBRDKAFKA=/path/to/librdkafka.so.1) through ctypes; the mock API is part of
librdkafka's exported ABI (rdkafka_mock.h), no header is needed at run time.
"""
import argparse
import ctypes
import ctypes.util
import glob
import importlib.util
import json
import os
import socket
import struct
import sys
import threading
import time


def find_librdkafka():
    explicit = os.environ.get("KLIFE_LIBRDKAFKA")
    if explicit:
        return explicit
    spec = importlib.util.find_spec("confluent_kafka")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        package_dir = list(spec.submodule_search_locations)[0]
        site = os.path.dirname(package_dir)
        for pattern in ("confluent_kafka.libs/librdkafka*.so*", "confluent_kafka/.libs/librdkafka*.so*"):
            found = sorted(glob.glob(os.path.join(site, pattern)))
            if found:
                return found[0]
    system = ctypes.util.find_library("rdkafka")
    if system:
        return system
    raise SystemExit("mock_cluster: librdkafka not found (install confluent-kafka or set KLIFE_LIBRDKAFKA)")


def load(path):
    lib = ctypes.CDLL(path)
    P, I, I16, I32, SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_int16, ctypes.c_int32, ctypes.c_size_t

    def fn(name, restype, *argtypes, required=True):
        f = getattr(lib, name, None)
        if f is None:
            if required:
                raise SystemExit(f"mock_cluster: {path} lacks {name}")
            return None
        f.restype = restype
        f.argtypes = list(argtypes)
        return f

    api = argparse.Namespace()
    api.version_str = fn("rd_kafka_version_str", ctypes.c_char_p)
    api.conf_new = fn("rd_kafka_conf_new", P)
    api.conf_set = fn("rd_kafka_conf_set", I, P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, SZ)
    api.new = fn("rd_kafka_new", P, I, P, ctypes.c_char_p, SZ)
    api.destroy = fn("rd_kafka_destroy", None, P)
    api.err2name = fn("rd_kafka_err2name", ctypes.c_char_p, I)
    api.cluster_new = fn("rd_kafka_mock_cluster_new", P, P, I)
    api.cluster_destroy = fn("rd_kafka_mock_cluster_destroy", None, P)
    api.bootstraps = fn("rd_kafka_mock_cluster_bootstraps", ctypes.c_char_p, P)
    api.topic_create = fn("rd_kafka_mock_topic_create", I, P, ctypes.c_char_p, I, I)
    api.set_leader = fn("rd_kafka_mock_partition_set_leader", I, P, ctypes.c_char_p, I32, I32)
    api.set_down = fn("rd_kafka_mock_broker_set_down", I, P, I32)
    api.set_up = fn("rd_kafka_mock_broker_set_up", I, P, I32)
    api.set_rtt = fn("rd_kafka_mock_broker_set_rtt", I, P, I32, I)
    api.push_errors_array = fn("rd_kafka_mock_push_request_errors_array", None, P, I16, SZ,
                               ctypes.POINTER(ctypes.c_int), required=False)
    api.coordinator_set = fn("rd_kafka_mock_coordinator_set", I, P, ctypes.c_char_p, ctypes.c_char_p, I32)
    api.cgrp_session_timeout = fn("rd_kafka_mock_set_group_consumer_session_timeout_ms", None, P, I,
                                  required=False)
    api.cgrp_heartbeat_interval = fn("rd_kafka_mock_set_group_consumer_heartbeat_interval_ms", None, P, I,
                                     required=False)
    api.set_host_port = fn("rd_kafka_mock_broker_set_host_port", None, P, I32, ctypes.c_char_p, I)
    api.set_apiversion = fn("rd_kafka_mock_set_apiversion", I, P, I16, I16, I16)
    api.group_initial_delay = fn("rd_kafka_mock_group_initial_rebalance_delay_ms", None, P, I32)
    api.sgrp_session_timeout = fn("rd_kafka_mock_sharegroup_set_session_timeout", None, P, I, required=False)
    api.sgrp_heartbeat_interval = fn("rd_kafka_mock_sharegroup_set_heartbeat_interval", None, P, I, required=False)
    api.sgrp_lock_duration = fn("rd_kafka_mock_sharegroup_set_record_lock_duration", None, P, I, required=False)
    api.sgrp_offset_reset = fn("rd_kafka_mock_sharegroup_set_auto_offset_reset", None, P, I, required=False)
    api.sgrp_max_deliveries = fn("rd_kafka_mock_sharegroup_set_max_delivery_attempts", None, P, I, required=False)
    api.sgrp_member_ids = fn("rd_kafka_mock_sharegroup_get_member_ids", I, P, ctypes.c_char_p,
                             ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)), ctypes.POINTER(SZ), required=False)
    api.sgrp_target_assignment = fn("rd_kafka_mock_sharegroup_target_assignment", None, P, ctypes.c_char_p,
                                    ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(P), SZ, required=False)
    api.tplist_new = fn("rd_kafka_topic_partition_list_new", P, I)
    api.tplist_add = fn("rd_kafka_topic_partition_list_add", P, P, ctypes.c_char_p, I32)
    api.push_errors_va = fn("rd_kafka_mock_push_request_errors", None, required=True)
    api.push_errors_va.argtypes = None  # variadic: arguments converted per call
    api.broker_push_error_rtts = fn("rd_kafka_mock_broker_push_request_error_rtts", I)
    api.broker_push_error_rtts.argtypes = None  # variadic: (error, rtt_ms) pairs
    return api


class Mock:
    RD_KAFKA_PRODUCER = 0

    def __init__(self, api, brokers):
        self.api = api
        errstr = ctypes.create_string_buffer(512)
        conf = api.conf_new()
        # A plain producer handle with no bootstrap servers: it owns the mock cluster's
        # thread but never connects to it, so it sends no requests that could consume
        # injected errors (unlike `test.mock.num.brokers`, whose handle bootstraps to the mock).
        for key, value in (("log_level", "3"),):
            if api.conf_set(conf, key.encode(), value.encode(), errstr, len(errstr)) != 0:
                raise SystemExit(f"mock_cluster: conf {key}: {errstr.value.decode()}")
        self.rk = api.new(self.RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
        if not self.rk:
            raise SystemExit(f"mock_cluster: rd_kafka_new: {errstr.value.decode()}")
        self.mc = api.cluster_new(self.rk, brokers)
        if not self.mc:
            raise SystemExit("mock_cluster: rd_kafka_mock_cluster_new failed")
        self.bootstrap = api.bootstraps(self.mc).decode()
        self.topics = set()

    def check(self, err, what):
        if err != 0:
            raise RuntimeError(f"{what}: {self.api.err2name(err).decode()} ({err})")

    def create_topic(self, name, partitions, rf):
        self.check(self.api.topic_create(self.mc, name.encode(), partitions, rf), f"create topic {name}")
        self.topics.add(name)

    def leader(self, topic, partition, broker):
        if topic not in self.topics:  # the mock would silently auto-create it
            raise ValueError(f"leader: unknown topic {topic!r}")
        self.check(self.api.set_leader(self.mc, topic.encode(), partition, broker), "set leader")

    def down(self, broker):
        self.check(self.api.set_down(self.mc, broker), f"broker {broker} down")

    def up(self, broker):
        self.check(self.api.set_up(self.mc, broker), f"broker {broker} up")

    def rtt(self, broker, ms):
        self.check(self.api.set_rtt(self.mc, broker, ms), f"broker {broker} rtt")

    def coordinator(self, key_type, key, broker):
        self.check(self.api.coordinator_set(self.mc, key_type.encode(), key.encode(), broker), "set coordinator")

    def consumer_group(self, session_ms, heartbeat_ms):
        if self.api.cgrp_session_timeout is None or self.api.cgrp_heartbeat_interval is None:
            raise RuntimeError("this librdkafka has no KIP-848 consumer group settings in its mock cluster")
        self.api.cgrp_session_timeout(self.mc, session_ms)
        self.api.cgrp_heartbeat_interval(self.mc, heartbeat_ms)

    def advertise(self, broker, host, port):
        self.api.set_host_port(self.mc, broker, host.encode(), port)

    def apiversion(self, apikey, low, high):
        self.check(self.api.set_apiversion(self.mc, apikey, low, high), f"api {apikey} versions")

    def share_api(self, name):
        f = getattr(self.api, name)
        if f is None:
            raise RuntimeError("this librdkafka's mock cluster has no share groups (KIP-932)")
        return f

    def share_group(self, session_ms, heartbeat_ms, lock_ms):
        self.share_api("sgrp_session_timeout")(self.mc, session_ms)
        self.share_api("sgrp_heartbeat_interval")(self.mc, heartbeat_ms)
        self.share_api("sgrp_lock_duration")(self.mc, lock_ms)

    def share_offset_reset(self, earliest):
        self.share_api("sgrp_offset_reset")(self.mc, 1 if earliest else 0)

    def share_max_deliveries(self, n):
        self.share_api("sgrp_max_deliveries")(self.mc, n)

    def share_assign(self, group, min_members, topic, partitions):
        ids = ctypes.POINTER(ctypes.c_char_p)()
        count = ctypes.c_size_t(0)
        err = self.share_api("sgrp_member_ids")(self.mc, group.encode(), ctypes.byref(ids), ctypes.byref(count))
        self.check(err, f"share group {group} members")
        members = [ids[i] for i in range(count.value)]  # bytes; the C strings are left to the process
        if len(members) < min_members:
            raise RuntimeError(f"share group {group} has {len(members)} member(s), wanted {min_members}")
        lists = []
        for _ in members:
            tp = self.api.tplist_new(len(partitions))
            for p in partitions:
                self.api.tplist_add(tp, topic.encode(), p)
            lists.append(tp)
        id_array = (ctypes.c_char_p * len(members))(*members)
        list_array = (ctypes.c_void_p * len(members))(*lists)
        self.share_api("sgrp_target_assignment")(self.mc, group.encode(), id_array, list_array, len(members))

    def group_initial_delay(self, ms):
        self.api.group_initial_delay(self.mc, ms)

    def push_errors(self, apikey, codes):
        if self.api.push_errors_array is not None:
            array = (ctypes.c_int * len(codes))(*codes)
            self.api.push_errors_array(self.mc, apikey, len(codes), array)
        else:
            self.api.push_errors_va(ctypes.c_void_p(self.mc), ctypes.c_int(apikey), ctypes.c_size_t(len(codes)),
                                    *[ctypes.c_int(c) for c in codes])

    def broker_errors(self, broker, apikey, pairs):
        """The next len(pairs) requests with `apikey` to `broker` get (error, delay in ms) each;
        the request itself is still handled when it arrives, only its answer waits."""
        flat = []
        for code, rtt in pairs:
            flat += [ctypes.c_int(code), ctypes.c_int(rtt)]
        self.check(self.api.broker_push_error_rtts(ctypes.c_void_p(self.mc), ctypes.c_int32(broker), ctypes.c_int(apikey),
                                                   ctypes.c_size_t(len(pairs)), *flat), f"broker {broker} errors")

    def close(self):
        self.api.cluster_destroy(self.mc)
        self.api.destroy(self.rk)


def parse_topic(text):
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected NAME:PARTITIONS[:RF], got {text!r}")
    try:
        partitions = int(parts[1])
        rf = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME:PARTITIONS[:RF], got {text!r}")
    if partitions < 1 or rf < 1:
        raise argparse.ArgumentTypeError(f"partitions and RF must be >= 1: {text!r}")
    return parts[0], partitions, rf


def watch_parent(parent):
    """Exit at once if the process that started us goes away (it may not close our stdin)."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def reply(ok, error=None):
    sys.stdout.write(json.dumps({"ok": True} if ok else {"ok": False, "error": error}) + "\n")
    sys.stdout.flush()


def run_command(mock, words):
    cmd, args = words[0], words[1:]

    def ints(n_min, n_max=None):
        n_max = n_min if n_max is None else n_max
        if not (n_min <= len(args) <= n_max):
            raise ValueError(f"{cmd}: expected {n_min} argument(s), got {len(args)}")
        return [int(a) for a in args]

    if cmd == "leader":
        if len(args) != 3:
            raise ValueError("usage: leader TOPIC PARTITION BROKER")
        if int(args[2]) < 1:
            # A leaderless partition crashes the mock: its Produce v10 NOT_LEADER answer
            # writes the CurrentLeader tag from a NULL leader.
            raise ValueError("leader: BROKER must be >= 1 (leaderless partitions crash librdkafka's mock)")
        mock.leader(args[0], int(args[1]), int(args[2]))
    elif cmd == "down":
        mock.down(*ints(1))
    elif cmd == "up":
        mock.up(*ints(1))
    elif cmd == "rtt":
        broker, ms = ints(2)
        if ms < 0:
            raise ValueError("rtt must be >= 0")
        mock.rtt(broker, ms)
    elif cmd == "errors":
        if len(args) < 2:
            raise ValueError("usage: errors APIKEY CODE [CODE...]")
        values = [int(a) for a in args]
        mock.push_errors(values[0], values[1:])
    elif cmd == "broker_errors":
        if len(args) < 3 or (len(args) - 2) % 2:
            raise ValueError("usage: broker_errors BROKER APIKEY CODE RTT_MS [CODE RTT_MS...]")
        values = [int(a) for a in args]
        pairs = list(zip(values[2::2], values[3::2]))
        if any(rtt < 0 for _, rtt in pairs):
            raise ValueError("broker_errors: RTT_MS must be >= 0")
        mock.broker_errors(values[0], values[1], pairs)
    elif cmd == "coordinator":
        if len(args) != 3 or args[0] not in ("transaction", "group"):
            raise ValueError("usage: coordinator transaction|group KEY BROKER")
        mock.coordinator(args[0], args[1], int(args[2]))
    elif cmd == "consumer_group":
        session_ms, heartbeat_ms = ints(2)
        if session_ms < 1 or heartbeat_ms < 1:
            raise ValueError("consumer_group: SESSION_MS and HEARTBEAT_MS must be >= 1")
        mock.consumer_group(session_ms, heartbeat_ms)
    elif cmd == "advertise":
        if len(args) != 3:
            raise ValueError("usage: advertise BROKER HOST PORT")
        broker, port = int(args[0]), int(args[2])
        if broker < 1 or not 0 < port < 65536:
            raise ValueError("advertise: BROKER must be >= 1 and PORT in 1..65535")
        mock.advertise(broker, args[1], port)
    elif cmd == "apiversion":
        apikey, low, high = ints(3)
        if not 0 <= low <= high:
            raise ValueError("apiversion: expected 0 <= MIN <= MAX")
        mock.apiversion(apikey, low, high)
    elif cmd == "group_initial_delay":
        (ms,) = ints(1)
        if ms < 0:
            raise ValueError("group_initial_delay must be >= 0")
        mock.group_initial_delay(ms)
    elif cmd == "share_group":
        session_ms, heartbeat_ms, lock_ms = ints(3)
        if min(session_ms, heartbeat_ms, lock_ms) < 1:
            raise ValueError("share_group: every value must be >= 1")
        mock.share_group(session_ms, heartbeat_ms, lock_ms)
    elif cmd == "share_offset_reset":
        if args not in (["earliest"], ["latest"]):
            raise ValueError("usage: share_offset_reset earliest|latest")
        mock.share_offset_reset(args[0] == "earliest")
    elif cmd == "share_max_deliveries":
        (n,) = ints(1)
        if n < 0:
            raise ValueError("share_max_deliveries must be >= 0")
        mock.share_max_deliveries(n)
    elif cmd == "share_assign":
        if len(args) < 4:
            raise ValueError("usage: share_assign GROUP MIN_MEMBERS TOPIC PARTITION [PARTITION...]")
        if args[2] not in mock.topics:
            raise ValueError(f"share_assign: unknown topic {args[2]!r}")
        mock.share_assign(args[0], int(args[1]), args[2], [int(a) for a in args[3:]])
    else:
        raise ValueError(f"unknown command {cmd!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", type=int, default=3)
    ap.add_argument("--topic", type=parse_topic, action="append", default=[], metavar="NAME:PARTITIONS[:RF]")
    args = ap.parse_args()
    if args.brokers < 1:
        ap.error("--brokers must be >= 1")

    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()

    api = load(find_librdkafka())
    mock = Mock(api, args.brokers)
    hosts = [entry.rsplit(":", 1)[0] for entry in mock.bootstrap.split(",")]
    if len(hosts) != args.brokers or any(h != "127.0.0.1" for h in hosts):
        raise SystemExit(f"mock_cluster: expected {args.brokers} loopback brokers, got {mock.bootstrap!r}")
    for name, partitions, rf in args.topic:
        mock.create_topic(name, partitions, rf)

    sys.stdout.write(json.dumps({"bootstrap": mock.bootstrap}) + "\n")
    sys.stdout.flush()

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            reply(True)
            break
        try:
            run_command(mock, words)
            reply(True)
        except Exception as e:  # report, keep serving
            reply(False, str(e))

    # Destroying the handle waits for its threads; never let that keep us alive.
    threading.Timer(5.0, lambda: os._exit(0)).start()
    mock.close()
    os._exit(0)


if __name__ == "__main__":
    main()
