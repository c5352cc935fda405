import XCTest
import KlifeProtocol

extension ListOffsetsResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 6
        return MsgWire.write { w in
            if v >= 2 { w.writeInt32(throttleTimeMs) }
            w.writeArrayCount(topics.count, flexible: f)
            for t in topics {
                w.writeString(t.name, flexible: f)
                w.writeArrayCount(t.partitions.count, flexible: f)
                for p in t.partitions {
                    w.writeInt32(p.partitionIndex)
                    w.writeInt16(p.errorCode)
                    w.writeInt64(p.timestamp)
                    w.writeInt64(p.offset)
                    if v >= 4 { w.writeInt32(p.leaderEpoch) }
                    w.writeEmptyTaggedFields(flexible: f)
                }
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = ListOffsetsResponse(throttleTimeMs: 4, topics: [
        Topic(name: "events", partitions: [
            Partition(partitionIndex: 0, errorCode: 0, timestamp: 1_700_000_000_000, offset: 1234, leaderEpoch: 6),
            Partition(partitionIndex: 1, errorCode: 6),
        ]),
        Topic(name: "empty"),
    ])
}

final class ListOffsetsTests: XCTestCase {
    // MARK: Requests

    func testRequestV1() {
        let request = ListOffsetsRequest(topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: ListOffsetsRequest.latestTimestamp)]),
        ])
        XCTAssertEqual(MsgWire.encode(request, version: 1), [
            0xff, 0xff, 0xff, 0xff,  // replica_id -1
            // isolation_level: v2+
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: ARRAY 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            // current_leader_epoch: v4+
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // timestamp -1 (latest)
        ])
    }

    func testRequestV6AndV9() {
        func request(_ timestamp: Int64) -> ListOffsetsRequest {
            ListOffsetsRequest(isolationLevel: 1, topics: [
                .init(name: "t", partitions: [.init(partitionIndex: 3, currentLeaderEpoch: 5, timestamp: timestamp)]),
            ])
        }
        let v6: [UInt8] = [
            0xff, 0xff, 0xff, 0xff,  // replica_id -1
            0x01,  // isolation_level 1 (read committed)
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x02,  // partitions: COMPACT_ARRAY 1
            0x00, 0x00, 0x00, 0x03,  // partition_index 3
            0x00, 0x00, 0x00, 0x05,  // current_leader_epoch 5
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,  // timestamp -2 (earliest)
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(request(ListOffsetsRequest.earliestTimestamp), version: 6), v6)
        var v9 = v6
        v9[24] = 0xfb  // timestamp -5 (latest tiered, v9+); v7-9 change no fields, only timestamp meanings
        XCTAssertEqual(MsgWire.encode(request(ListOffsetsRequest.latestTieredTimestamp), version: 9), v9)
    }

    func testRequestVersionedFields() {
        let partition = ListOffsetsRequest.Partition(partitionIndex: 0, timestamp: 0)
        let request = ListOffsetsRequest(topics: [.init(name: "t", partitions: [partition])])
        let sizes = (1...9).map { MsgWire.encode(request, version: Int16($0)).count }
        // v2: + isolation_level; v4: + current_leader_epoch;
        // v6: compact counts and strings (-7), three tag sections (+3).
        XCTAssertEqual(sizes, [27, 28, 28, 32, 32, 28, 28, 28, 28])
    }

    func testMinimumVersionForSpecialTimestamps() {
        XCTAssertEqual(ListOffsetsRequest.minimumVersion(forTimestamp: ListOffsetsRequest.latestTimestamp), 1)
        XCTAssertEqual(ListOffsetsRequest.minimumVersion(forTimestamp: ListOffsetsRequest.earliestTimestamp), 1)
        XCTAssertEqual(ListOffsetsRequest.minimumVersion(forTimestamp: ListOffsetsRequest.maxTimestamp), 7)
        XCTAssertEqual(ListOffsetsRequest.minimumVersion(forTimestamp: ListOffsetsRequest.earliestLocalTimestamp), 8)
        XCTAssertEqual(ListOffsetsRequest.minimumVersion(forTimestamp: ListOffsetsRequest.latestTieredTimestamp), 9)
        XCTAssertEqual(ListOffsetsRequest.minimumVersion(forTimestamp: 1_700_000_000_000), 1)
    }

    // MARK: Responses

    func testResponseV1() {
        let bytes: [UInt8] = [
            // throttle_time_ms: v2+
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: ARRAY 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x00, 0x00,  // error_code 0
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // timestamp -1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,  // offset 42
            // leader_epoch: v4+
        ]
        let r = msgDecode(ListOffsetsResponse.self, bytes, version: 1)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.topics, [.init(name: "t", partitions: [
            .init(partitionIndex: 0, errorCode: 0, timestamp: -1, offset: 42, leaderEpoch: -1),
        ])])
    }

    func testResponseV6AndV9() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x01,  // throttle_time_ms 1
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x03,  // partitions: COMPACT_ARRAY 2
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x4e,  // error_code 78 OFFSET_NOT_AVAILABLE
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // timestamp -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // offset -1
            0xff, 0xff, 0xff, 0xff,  // leader_epoch -1
            0x00,  // partition tagged fields
            0x00, 0x00, 0x00, 0x02,  // partition_index 2
            0x00, 0x00,  // error_code 0
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,  // timestamp 1_700_000_000_000
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,  // offset 256
            0x00, 0x00, 0x00, 0x09,  // leader_epoch 9
            0x01, 0x03, 0x01, 0x00,  // partition tagged fields: unknown tag 3, 1 byte (skipped)
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ]
        for version: Int16 in [6, 9] {
            let r = msgDecode(ListOffsetsResponse.self, bytes, version: version)
            XCTAssertEqual(r.throttleTimeMs, 1)
            XCTAssertEqual(r.topics, [.init(name: "t", partitions: [
                .init(partitionIndex: 1, errorCode: 78, timestamp: -1, offset: -1, leaderEpoch: -1),
                .init(partitionIndex: 2, errorCode: 0, timestamp: 1_700_000_000_000, offset: 256, leaderEpoch: 9),
            ])])
        }
    }

    func testRoundTripAllVersions() {
        let sample = ListOffsetsResponse.msgSample
        for version in ListOffsetsRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(ListOffsetsResponse.self, bytes, version: version)
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
            guard decoded.topics.count == 2, decoded.topics[0].partitions.count == 2 else { continue }
            XCTAssertEqual(decoded.throttleTimeMs, version >= 2 ? 4 : 0)
            XCTAssertEqual(decoded.topics[0].partitions[0].leaderEpoch, version >= 4 ? 6 : -1)
            if version >= 4 { XCTAssertEqual(decoded, sample) }
        }
    }
}
