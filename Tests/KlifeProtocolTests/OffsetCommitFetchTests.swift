import XCTest
import KlifeProtocol

extension OffsetCommitResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 8
        return MsgWire.write { w in
            if v >= 3 { w.writeInt32(throttleTimeMs) }
            w.writeArrayCount(topics.count, flexible: f)
            for t in topics {
                w.writeString(t.name, flexible: f)
                w.writeArrayCount(t.partitions.count, flexible: f)
                for p in t.partitions {
                    w.writeInt32(p.partitionIndex)
                    w.writeInt16(p.errorCode)
                    w.writeEmptyTaggedFields(flexible: f)
                }
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = OffsetCommitResponse(throttleTimeMs: 7, topics: [
        .init(name: "events", partitions: [.init(partitionIndex: 0), .init(partitionIndex: 3, errorCode: 25)]),
    ])
}

extension OffsetFetchResponse {
    /// Test-only encoder (before v8 the first group, without its id).
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 6
        func topics(_ w: inout ByteWriter, _ list: [Topic]) {
            w.writeArrayCount(list.count, flexible: f)
            for t in list {
                w.writeString(t.name, flexible: f)
                w.writeArrayCount(t.partitions.count, flexible: f)
                for p in t.partitions {
                    w.writeInt32(p.partitionIndex)
                    w.writeInt64(p.committedOffset)
                    if v >= 5 { w.writeInt32(p.committedLeaderEpoch) }
                    w.writeNullableString(p.metadata, flexible: f)
                    w.writeInt16(p.errorCode)
                    w.writeEmptyTaggedFields(flexible: f)
                }
                w.writeEmptyTaggedFields(flexible: f)
            }
        }
        return MsgWire.write { w in
            if v >= 3 { w.writeInt32(throttleTimeMs) }
            if v >= 8 {
                w.writeArrayCount(groups.count, flexible: f)
                for g in groups {
                    w.writeString(g.groupID, flexible: f)
                    topics(&w, g.topics)
                    w.writeInt16(g.errorCode)
                    w.writeEmptyTaggedFields(flexible: f)
                }
            } else {
                topics(&w, groups[0].topics)
                if v >= 2 { w.writeInt16(groups[0].errorCode) }
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static func msgSample(version v: Int16) -> OffsetFetchResponse {
        let topic = Topic(name: "events", partitions: [
            .init(partitionIndex: 0, committedOffset: 42, committedLeaderEpoch: v >= 5 ? 3 : -1, metadata: "m"),
            .init(partitionIndex: 1, committedOffset: -1, committedLeaderEpoch: -1, metadata: nil, errorCode: 0),
        ])
        return OffsetFetchResponse(throttleTimeMs: v >= 3 ? 5 : 0,
                                   groups: [.init(groupID: v >= 8 ? "g" : "", topics: [topic], errorCode: v >= 2 ? 0 : 0)])
    }
}

final class OffsetCommitFetchTests: XCTestCase {
    private let commit = OffsetCommitRequest(groupID: "g", topics: [
        .init(name: "t", partitions: [.init(partitionIndex: 1, committedOffset: 42, committedLeaderEpoch: 5, committedMetadata: nil)]),
    ])

    // MARK: OffsetCommit requests

    func testCommitRequestV2() {
        XCTAssertEqual(MsgWire.encode(commit, version: 2), [
            0x00, 0x01, 0x67,  // group_id "g"
            0xff, 0xff, 0xff, 0xff,  // generation_id -1
            0x00, 0x00,  // member_id ""
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // retention_time_ms -1 (v2-4)
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,  // committed_offset 42
            // committed_leader_epoch: v6+
            0xff, 0xff,  // committed_metadata null
        ])
    }

    func testCommitRequestV3ToV6() {
        let v2 = MsgWire.encode(commit, version: 2)
        XCTAssertEqual(MsgWire.encode(commit, version: 3), v2, "v3 has v2's layout")
        XCTAssertEqual(MsgWire.encode(commit, version: 4), v2, "v4 has v2's layout")
        XCTAssertEqual(MsgWire.encode(commit, version: 5), [
            0x00, 0x01, 0x67,  // group_id "g"
            0xff, 0xff, 0xff, 0xff,  // generation_id -1
            0x00, 0x00,  // member_id ""
            // retention_time_ms: v2-4 only
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,  // committed_offset 42
            // committed_leader_epoch: v6+
            0xff, 0xff,  // committed_metadata null
        ])
        let member = OffsetCommitRequest(groupID: "g", generationIDOrMemberEpoch: 3, memberID: "m", topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 7, committedLeaderEpoch: 2,
                                                committedMetadata: "x")]),
        ])
        XCTAssertEqual(MsgWire.encode(member, version: 6), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x03,  // generation_id 3
            0x00, 0x01, 0x6d,  // member_id "m"
            // group_instance_id: v7+
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,  // committed_offset 7
            0x00, 0x00, 0x00, 0x02,  // committed_leader_epoch 2 (v6+)
            0x00, 0x01, 0x78,  // committed_metadata "x"
        ])
    }

    func testCommitRequestV7() {
        var request = commit
        request.groupInstanceID = "i"
        XCTAssertEqual(MsgWire.encode(request, version: 7), [
            0x00, 0x01, 0x67,  // group_id "g"
            0xff, 0xff, 0xff, 0xff,  // generation_id -1
            0x00, 0x00,  // member_id ""
            0x00, 0x01, 0x69,  // group_instance_id "i" (v7+)
            // retention_time_ms: v2-4 only
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,  // committed_offset 42
            0x00, 0x00, 0x00, 0x05,  // committed_leader_epoch 5 (v6+)
            0xff, 0xff,  // committed_metadata null
        ])
    }

    func testCommitRequestV8AndV9() {
        let expected: [UInt8] = [
            0x02, 0x67,  // group_id "g"
            0xff, 0xff, 0xff, 0xff,  // generation_id_or_member_epoch -1
            0x01,  // member_id ""
            0x00,  // group_instance_id null
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,  // committed_offset 42
            0x00, 0x00, 0x00, 0x05,  // committed_leader_epoch 5
            0x00,  // committed_metadata null
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(commit, version: 8), expected)
        XCTAssertEqual(MsgWire.encode(commit, version: 9), expected, "v9 has v8's layout")
    }

    // MARK: OffsetCommit responses

    func testCommitResponseV2() {
        let r = msgDecode(OffsetCommitResponse.self, [
            // throttle_time_ms: v3+
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x02,  // partition_index 2
            0x00, 0x19,  // error_code 25 UNKNOWN_MEMBER_ID
        ], version: 2)
        XCTAssertEqual(r, OffsetCommitResponse(topics: [.init(name: "t", partitions: [.init(partitionIndex: 2, errorCode: 25)])]))
    }

    func testCommitResponseV3() {
        let r = msgDecode(OffsetCommitResponse.self, [
            0x00, 0x00, 0x00, 0x07,  // throttle_time_ms 7 (v3+)
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x00, 0x00,  // error_code 0
        ], version: 3)
        XCTAssertEqual(r, OffsetCommitResponse(throttleTimeMs: 7, topics: [.init(name: "t", partitions: [.init(partitionIndex: 0)])]))
    }

    func testCommitResponseV8AndV9() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x71,  // error_code 113 STALE_MEMBER_EPOCH
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ]
        let expected = OffsetCommitResponse(topics: [.init(name: "t", partitions: [.init(partitionIndex: 1, errorCode: 113)])])
        XCTAssertEqual(msgDecode(OffsetCommitResponse.self, bytes, version: 8), expected)
        XCTAssertEqual(msgDecode(OffsetCommitResponse.self, bytes, version: 9), expected, "v9 has v8's layout")
    }

    func testCommitResponseRoundTrips() {
        for v in OffsetCommitRequest.supportedVersions {
            var expected = OffsetCommitResponse.msgSample
            if v < 3 { expected.throttleTimeMs = 0 }
            XCTAssertEqual(msgDecode(OffsetCommitResponse.self, expected.msgEncoded(version: v), version: v), expected, "v\(v)")
        }
    }

    // MARK: OffsetFetch requests

    private let fetch = OffsetFetchRequest(groups: [.init(groupID: "g", topics: [.init(name: "t", partitionIndexes: [0, 2])])])

    func testFetchRequestV1() {
        XCTAssertEqual(MsgWire.encode(fetch, version: 1), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x02,  // partition_indexes: 2
            0x00, 0x00, 0x00, 0x00,  // 0
            0x00, 0x00, 0x00, 0x02,  // 2
        ])
        // v1 cannot say "every partition": an absent list is sent empty.
        XCTAssertEqual(MsgWire.encode(OffsetFetchRequest(groups: [.init(groupID: "g")]), version: 1),
                       [0x00, 0x01, 0x67, 0x00, 0x00, 0x00, 0x00])
        XCTAssertEqual(MsgWire.encode(OffsetFetchRequest(groups: [.init(groupID: "g")]), version: 2),
                       [0x00, 0x01, 0x67, 0xff, 0xff, 0xff, 0xff], "v2+: null = every partition")
    }

    func testFetchRequestV3ToV6() {
        let v2 = MsgWire.encode(fetch, version: 2)
        XCTAssertEqual(v2, MsgWire.encode(fetch, version: 1), "v2 differs from v1 only for a null topic list")
        for v: Int16 in 3...5 { XCTAssertEqual(MsgWire.encode(fetch, version: v), v2, "v\(v) has v2's layout") }
        XCTAssertEqual(MsgWire.encode(OffsetFetchRequest(groups: fetch.groups, requireStable: true), version: 6), [
            0x02, 0x67,  // group_id: COMPACT_STRING "g"
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x03,  // partition_indexes: 2
            0x00, 0x00, 0x00, 0x00,  // 0
            0x00, 0x00, 0x00, 0x02,  // 2
            0x00,  // topic tagged fields
            // require_stable: v7+
            0x00,  // tagged fields
        ])
        XCTAssertEqual(MsgWire.encode(OffsetFetchRequest(groups: [.init(groupID: "g")]), version: 6), [
            0x02, 0x67,  // group_id "g"
            0x00,  // topics: null (every partition)
            0x00,  // tagged fields
        ])
    }

    func testFetchRequestV7() {
        XCTAssertEqual(MsgWire.encode(OffsetFetchRequest(groups: fetch.groups, requireStable: true), version: 7), [
            0x02, 0x67,  // group_id "g"
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x03,  // partition_indexes: 2
            0x00, 0x00, 0x00, 0x00,  // 0
            0x00, 0x00, 0x00, 0x02,  // 2
            0x00,  // topic tagged fields
            0x01,  // require_stable true
            0x00,  // tagged fields
        ])
    }

    func testFetchRequestV8AndV9() {
        XCTAssertEqual(MsgWire.encode(fetch, version: 8), [
            0x02,  // groups: COMPACT_ARRAY 1
            0x02, 0x67,  // group_id "g"
            0x02,  // topics: 1
            0x02, 0x74,  // name "t"
            0x03,  // partition_indexes: 2
            0x00, 0x00, 0x00, 0x00,  // 0
            0x00, 0x00, 0x00, 0x02,  // 2
            0x00,  // topic tagged fields
            0x00,  // group tagged fields
            0x00,  // require_stable false
            0x00,  // tagged fields
        ])
        var member = fetch
        member.groups[0].memberID = "m"
        member.groups[0].memberEpoch = 4
        member.groups[0].topics = nil
        XCTAssertEqual(MsgWire.encode(member, version: 9), [
            0x02,  // groups: 1
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m" (v9)
            0x00, 0x00, 0x00, 0x04,  // member_epoch 4 (v9)
            0x00,  // topics: null (every partition)
            0x00,  // group tagged fields
            0x00,  // require_stable false
            0x00,  // tagged fields
        ])
    }

    // MARK: OffsetFetch responses

    func testFetchResponseV1() {
        let r = msgDecode(OffsetFetchResponse.self, [
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // committed_offset -1 (none)
            0xff, 0xff,  // metadata null
            0x00, 0x00,  // error_code 0
        ], version: 1)
        XCTAssertEqual(r.groups, [.init(groupID: "", topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: -1)]),
        ])])
    }

    func testFetchResponseV2AndV3() {
        let v2: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // topics: 0
            0x00, 0x0e,  // error_code 14 COORDINATOR_LOAD_IN_PROGRESS (v2+)
        ]
        let expected = [OffsetFetchResponse.Group(groupID: "", topics: [], errorCode: 14)]
        XCTAssertEqual(msgDecode(OffsetFetchResponse.self, v2, version: 2).groups, expected)
        let v3 = msgDecode(OffsetFetchResponse.self, [0x00, 0x00, 0x00, 0x09] /* throttle_time_ms 9 (v3+) */ + v2, version: 3)
        XCTAssertEqual(v3, OffsetFetchResponse(throttleTimeMs: 9, groups: expected))
    }

    func testFetchResponseV5AndV6() {
        let expected = OffsetFetchResponse(throttleTimeMs: 1, groups: [.init(groupID: "", topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 2, committedOffset: 8, committedLeaderEpoch: 4,
                                                metadata: nil, errorCode: 88)]),
        ])])
        XCTAssertEqual(msgDecode(OffsetFetchResponse.self, [
            0x00, 0x00, 0x00, 0x01,  // throttle_time_ms 1
            0x00, 0x00, 0x00, 0x01,  // topics: 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: 1
            0x00, 0x00, 0x00, 0x02,  // partition_index 2
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,  // committed_offset 8
            0x00, 0x00, 0x00, 0x04,  // committed_leader_epoch 4 (v5+)
            0xff, 0xff,  // metadata null
            0x00, 0x58,  // error_code 88 UNSTABLE_OFFSET_COMMIT
            0x00, 0x00,  // error_code 0
        ], version: 5), expected)
        XCTAssertEqual(msgDecode(OffsetFetchResponse.self, [
            0x00, 0x00, 0x00, 0x01,  // throttle_time_ms 1
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x02,  // partition_index 2
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,  // committed_offset 8
            0x00, 0x00, 0x00, 0x04,  // committed_leader_epoch 4
            0x00,  // metadata null
            0x00, 0x58,  // error_code 88
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x00, 0x00,  // error_code 0
            0x00,  // tagged fields
        ], version: 6), expected)
    }

    func testFetchResponseV8() {
        let r = msgDecode(OffsetFetchResponse.self, [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x02,  // groups: 1
            0x02, 0x67,  // group_id "g"
            0x02,  // topics: 1
            0x02, 0x74,  // name "t"
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x03,  // partition_index 3
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,  // committed_offset 7
            0xff, 0xff, 0xff, 0xff,  // committed_leader_epoch -1
            0x01,  // metadata ""
            0x00, 0x00,  // error_code 0
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x00, 0x10,  // group error_code 16 NOT_COORDINATOR
            0x00,  // group tagged fields
            0x00,  // tagged fields
        ], version: 8)
        XCTAssertEqual(r.groups, [.init(groupID: "g", topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 3, committedOffset: 7, metadata: "")]),
        ], errorCode: 16)])
    }

    func testFetchResponseRoundTrips() {
        for v in OffsetFetchRequest.supportedVersions {
            let expected = OffsetFetchResponse.msgSample(version: v)
            XCTAssertEqual(msgDecode(OffsetFetchResponse.self, expected.msgEncoded(version: v), version: v), expected, "v\(v)")
        }
    }
}
