#!/usr/bin/env python3
"""Raw-socket ApiVersions probe: prints the (api_key, min, max) table a broker advertises.

  apiversions_probe.py --bootstrap 127.0.0.1:9092 [--version 0|3|4] [--json] [--wire-order]

v0 request (header v1): int32 size, int16 api_key=18, int16 api_version=0,
int32 correlation_id, nullable string client_id; empty body.
v0 response: int32 size, int32 correlation_id, int16 error_code,
array(int32 n) of (int16 api_key, int16 min_version, int16 max_version).
v3+ (flexible): request header v2 + compact client_software_name/version;
the response keeps header v0 but uses compact arrays, throttle_time_ms and
tagged fields (0 SupportedFeatures, 1 FinalizedFeaturesEpoch,
2 FinalizedFeatures, 3 ZkMigrationReady), whose raw bytes are printed.
"""
import argparse
import json
import socket
import struct
import sys

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr",
    5: "StopReplica", 6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls",
    32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete", 48: "DescribeClientQuotas",
    49: "AlterClientQuotas", 50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials", 52: "Vote", 53: "BeginQuorumEpoch",
    54: "EndQuorumEpoch", 55: "DescribeQuorum", 56: "AlterPartition",
    57: "UpdateFeatures", 58: "Envelope", 59: "FetchSnapshot", 60: "DescribeCluster",
    61: "DescribeProducers", 62: "BrokerRegistration", 63: "BrokerHeartbeat",
    64: "UnregisterBroker", 65: "DescribeTransactions", 66: "ListTransactions",
    67: "AllocateProducerIds", 68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
    70: "ControllerRegistration", 71: "GetTelemetrySubscriptions", 72: "PushTelemetry",
    73: "AssignReplicasToDirs", 74: "ListClientMetricsResources",
    75: "DescribeTopicPartitions", 76: "ShareGroupHeartbeat", 77: "ShareGroupDescribe",
    78: "ShareFetch", 79: "ShareAcknowledge", 80: "AddRaftVoter", 81: "RemoveRaftVoter",
    82: "UpdateRaftVoter", 83: "InitializeShareGroupState", 84: "ReadShareGroupState",
    85: "WriteShareGroupState", 86: "DeleteShareGroupState",
    87: "ReadShareGroupStateSummary", 88: "StreamsGroupHeartbeat",
    89: "StreamsGroupDescribe", 90: "DescribeShareGroupOffsets",
    91: "AlterShareGroupOffsets", 92: "DeleteShareGroupOffsets",
}


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)}/{n} bytes")
        buf += chunk
    return bytes(buf)


def uvarint(buf, pos):
    val = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        val |= (b & 0x7F) << shift
        if b < 0x80:
            return val, pos
        shift += 7


def compact_str(b):
    out = bytearray()
    n = len(b) + 1
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + b


def probe(host, port, version=0, timeout=5.0, correlation_id=0x4B4C4946, client_id=b"klife-probe"):
    """Return (error_code, [(api_key, min, max)] in wire order, extras dict)."""
    header = struct.pack(">hhih", 18, version, correlation_id, len(client_id)) + client_id
    body = b""
    if version >= 3:
        header += b"\x00"  # header tagged fields
        body = compact_str(b"klife-probe") + compact_str(b"1.0.0") + b"\x00"
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        resp = recv_exact(s, size)
    corr, err = struct.unpack_from(">ih", resp, 0)
    if corr != correlation_id:
        raise ValueError(f"correlation id mismatch: {corr:#x} != {correlation_id:#x}")
    extras = {}
    if version < 3:
        (n,) = struct.unpack_from(">i", resp, 6)
        apis = [struct.unpack_from(">hhh", resp, 10 + 6 * i) for i in range(n)]
        pos = 10 + 6 * n
        if version >= 1 and pos + 4 <= size:
            (extras["throttle_time_ms"],) = struct.unpack_from(">i", resp, pos)
            pos += 4
    else:
        n, pos = uvarint(resp, 6)
        apis = []
        for _ in range(n - 1):
            apis.append(struct.unpack_from(">hhh", resp, pos))
            pos += 6
            ntag, pos = uvarint(resp, pos)
            for _ in range(ntag):  # per-entry tagged fields (none defined)
                _tag, pos = uvarint(resp, pos)
                ln, pos = uvarint(resp, pos)
                pos += ln
        (extras["throttle_time_ms"],) = struct.unpack_from(">i", resp, pos)
        pos += 4
        ntag, pos = uvarint(resp, pos)
        tags = {}
        for _ in range(ntag):
            tag, pos = uvarint(resp, pos)
            ln, pos = uvarint(resp, pos)
            tags[tag] = resp[pos:pos + ln].hex()
            pos += ln
        extras["tagged_fields_hex"] = tags
    extras["trailing_bytes"] = size - pos
    return err, apis, extras


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT")
    ap.add_argument("--version", type=int, default=0, choices=range(0, 5), help="ApiVersions request version")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--wire-order", action="store_true", help="keep the broker's order (default: sort by key)")
    args = ap.parse_args()
    host, _, port = args.bootstrap.rpartition(":")
    err, apis, extras = probe(host, int(port), args.version)
    if not args.wire_order:
        apis = sorted(apis)
    if args.json:
        print(json.dumps({"version": args.version, "error_code": err, **extras, "apis": [
            {"api_key": k, "name": API_NAMES.get(k, "?"), "min": lo, "max": hi}
            for k, lo, hi in apis]}))
    else:
        extra = " ".join(f"{k}={v}" for k, v in extras.items())
        print(f"ApiVersions v{args.version}: error_code={err} apis={len(apis)} {extra}")
        print(f"{'key':>4}  {'name':<28} {'min':>3} {'max':>3}")
        for k, lo, hi in apis:
            print(f"{k:>4}  {API_NAMES.get(k, '?'):<28} {lo:>3} {hi:>3}")
    return 0 if err == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
