import XCTest
import KlifeProtocol

extension JoinGroupResponse {
    /// Test-only encoder. Before v7 the protocol name is not nullable: `nil` is written as "".
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 6
        return MsgWire.write { w in
            if v >= 2 { w.writeInt32(throttleTimeMs) }
            w.writeInt16(errorCode)
            w.writeInt32(generationID)
            if v >= 7 {
                w.writeCompactNullableString(protocolType)
                w.writeCompactNullableString(protocolName)
            } else {
                w.writeString(protocolName ?? "", flexible: f)
            }
            w.writeString(leader, flexible: f)
            if v >= 9 { w.writeBool(skipAssignment) }
            w.writeString(memberID, flexible: f)
            w.writeArrayCount(members.count, flexible: f)
            for m in members {
                w.writeString(m.memberID, flexible: f)
                if v >= 5 { w.writeNullableString(m.groupInstanceID, flexible: f) }
                w.writeSizedBytes(m.metadata, flexible: f)
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    /// What survives a trip through `version`: the fields it does not carry take their defaults.
    func msgAt(version v: Int16) -> JoinGroupResponse {
        var r = self
        if v < 2 { r.throttleTimeMs = 0 }
        if v < 7 { r.protocolType = nil }
        if v < 9 { r.skipAssignment = false }
        if v < 5 { r.members = r.members.map { Member(memberID: $0.memberID, metadata: $0.metadata) } }
        return r
    }

    static let msgSample = JoinGroupResponse(
        throttleTimeMs: 3, errorCode: 0, generationID: 7, protocolType: "consumer", protocolName: "range",
        leader: "member-1", skipAssignment: true, memberID: "member-1", members: [
            Member(memberID: "member-1", groupInstanceID: "instance-1", metadata: [0x00, 0x01, 0x02]),
            Member(memberID: "member-2", groupInstanceID: nil, metadata: []),
        ])
}

final class JoinGroupTests: XCTestCase {
    private static let request = JoinGroupRequest(
        groupID: "g", sessionTimeoutMs: 45_000, rebalanceTimeoutMs: 300_000, memberID: "m", groupInstanceID: "i",
        protocols: [.init(name: "r", metadata: [0xab, 0xcd])], reason: "x")

    // MARK: Requests

    func testVersionsAndKeys() {
        XCTAssertEqual(JoinGroupRequest.apiKey.rawValue, 11)
        XCTAssertEqual(JoinGroupRequest.supportedVersions, 0...9)
        XCTAssertEqual(JoinGroupRequest.firstFlexibleVersion, 6)
        XCTAssertEqual(JoinGroupRequest.requestHeaderVersion(5), 1)
        XCTAssertEqual(JoinGroupRequest.requestHeaderVersion(6), 2)
        XCTAssertEqual(JoinGroupRequest.responseHeaderVersion(6), 1)
        XCTAssertEqual(Self.request.protocolType, "consumer")
    }

    func testRequestV0() {
        XCTAssertEqual(MsgWire.encode(Self.request, version: 0), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0xaf, 0xc8,  // session_timeout_ms 45000
            // rebalance_timeout_ms: v1+
            0x00, 0x01, 0x6d,  // member_id "m"
            // group_instance_id: v5+
            0x00, 0x08, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x00, 0x00, 0x00, 0x01,  // protocols: ARRAY 1
            0x00, 0x01, 0x72,  // name "r"
            0x00, 0x00, 0x00, 0x02, 0xab, 0xcd,  // metadata: BYTES 2
            // reason: v8+
        ])
    }

    func testRequestV1ThroughV4() {
        let expected: [UInt8] = [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0xaf, 0xc8,  // session_timeout_ms 45000
            0x00, 0x04, 0x93, 0xe0,  // rebalance_timeout_ms 300000 (v1+)
            0x00, 0x01, 0x6d,  // member_id "m"
            0x00, 0x08, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x00, 0x00, 0x00, 0x01,  // protocols: ARRAY 1
            0x00, 0x01, 0x72,  // name "r"
            0x00, 0x00, 0x00, 0x02, 0xab, 0xcd,  // metadata: BYTES 2
        ]
        for version: Int16 in 1...4 {
            XCTAssertEqual(MsgWire.encode(Self.request, version: version), expected, "v\(version)")
        }
    }

    func testRequestV5() {
        XCTAssertEqual(MsgWire.encode(Self.request, version: 5), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0xaf, 0xc8,  // session_timeout_ms 45000
            0x00, 0x04, 0x93, 0xe0,  // rebalance_timeout_ms 300000
            0x00, 0x01, 0x6d,  // member_id "m"
            0x00, 0x01, 0x69,  // group_instance_id "i" (v5+)
            0x00, 0x08, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x00, 0x00, 0x00, 0x01,  // protocols: ARRAY 1
            0x00, 0x01, 0x72,  // name "r"
            0x00, 0x00, 0x00, 0x02, 0xab, 0xcd,  // metadata: BYTES 2
        ])
    }

    func testFirstJoinRequestV5HasEmptyMemberAndNullInstance() {
        let first = JoinGroupRequest(groupID: "g", sessionTimeoutMs: 45_000, rebalanceTimeoutMs: 300_000,
                                     protocols: [.init(name: "r", metadata: [])])
        XCTAssertEqual(MsgWire.encode(first, version: 5), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0xaf, 0xc8,  // session_timeout_ms 45000
            0x00, 0x04, 0x93, 0xe0,  // rebalance_timeout_ms 300000
            0x00, 0x00,  // member_id "" (first join)
            0xff, 0xff,  // group_instance_id null
            0x00, 0x08, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x00, 0x00, 0x00, 0x01,  // protocols: ARRAY 1
            0x00, 0x01, 0x72,  // name "r"
            0x00, 0x00, 0x00, 0x00,  // metadata: BYTES 0
        ])
    }

    func testRequestV6AndV7() {
        let expected: [UInt8] = [
            0x02, 0x67,  // group_id: COMPACT_STRING "g"
            0x00, 0x00, 0xaf, 0xc8,  // session_timeout_ms 45000
            0x00, 0x04, 0x93, 0xe0,  // rebalance_timeout_ms 300000
            0x02, 0x6d,  // member_id "m"
            0x02, 0x69,  // group_instance_id "i"
            0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x02,  // protocols: COMPACT_ARRAY 1
            0x02, 0x72,  // name "r"
            0x03, 0xab, 0xcd,  // metadata: COMPACT_BYTES 2
            0x00,  // protocol tagged fields
            // reason: v8+
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(Self.request, version: 6), expected)
        XCTAssertEqual(MsgWire.encode(Self.request, version: 7), expected, "v7 has v6's layout")
    }

    func testRequestV8AndV9() {
        let expected: [UInt8] = [
            0x02, 0x67,  // group_id "g"
            0x00, 0x00, 0xaf, 0xc8,  // session_timeout_ms 45000
            0x00, 0x04, 0x93, 0xe0,  // rebalance_timeout_ms 300000
            0x02, 0x6d,  // member_id "m"
            0x02, 0x69,  // group_instance_id "i"
            0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x02,  // protocols: COMPACT_ARRAY 1
            0x02, 0x72,  // name "r"
            0x03, 0xab, 0xcd,  // metadata: COMPACT_BYTES 2
            0x00,  // protocol tagged fields
            0x02, 0x78,  // reason "x" (v8+)
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(Self.request, version: 8), expected)
        XCTAssertEqual(MsgWire.encode(Self.request, version: 9), expected, "v9 has v8's layout")
        var noReason = Self.request
        noReason.reason = nil
        var v8 = expected
        v8.replaceSubrange(30...31, with: [0x00])  // reason null
        XCTAssertEqual(MsgWire.encode(noReason, version: 8), v8)
    }

    // MARK: Responses

    /// v0: the leader's answer, with a member whose metadata is a v0 consumer subscription.
    private static let responseV0: [UInt8] = [
        0x00, 0x00,  // error_code 0
        0x00, 0x00, 0x00, 0x01,  // generation_id 1
        0x00, 0x05, 0x72, 0x61, 0x6e, 0x67, 0x65,  // protocol_name "range"
        0x00, 0x02, 0x6d, 0x31,  // leader "m1"
        0x00, 0x02, 0x6d, 0x31,  // member_id "m1"
        0x00, 0x00, 0x00, 0x02,  // members: ARRAY 2
        0x00, 0x02, 0x6d, 0x31,  // member_id "m1"
        0x00, 0x00, 0x00, 0x0d,  // metadata: BYTES 13
        0x00, 0x00,  // (subscription version 0)
        0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x74,  // (topics ["t"])
        0xff, 0xff, 0xff, 0xff,  // (user_data null)
        0x00, 0x02, 0x6d, 0x32,  // member_id "m2"
        0x00, 0x00, 0x00, 0x00,  // metadata: BYTES 0
    ]

    func testResponseV0() {
        let r = msgDecode(JoinGroupResponse.self, Self.responseV0, version: 0)
        XCTAssertEqual(r, JoinGroupResponse(
            throttleTimeMs: 0, errorCode: 0, generationID: 1, protocolType: nil, protocolName: "range",
            leader: "m1", skipAssignment: false, memberID: "m1", members: [
                .init(memberID: "m1", metadata: [0, 0, 0, 0, 0, 1, 0, 1, 0x74, 0xff, 0xff, 0xff, 0xff]),
                .init(memberID: "m2", metadata: []),
            ]))
        XCTAssertTrue(r.isLeader)
        XCTAssertEqual(try ConsumerProtocolSubscription(decoding: r.members[0].metadata),
                       ConsumerProtocolSubscription(topics: ["t"]))
    }

    /// v9: a static leader told to skip the assignment; unknown tagged fields are skipped.
    private static let responseV9: [UInt8] = [
        0x00, 0x00, 0x00, 0x05,  // throttle_time_ms 5
        0x00, 0x00,  // error_code 0
        0x00, 0x00, 0x00, 0x02,  // generation_id 2
        0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer" (v7+)
        0x06, 0x72, 0x61, 0x6e, 0x67, 0x65,  // protocol_name "range"
        0x03, 0x6d, 0x31,  // leader "m1"
        0x01,  // skip_assignment true (v9+)
        0x03, 0x6d, 0x31,  // member_id "m1"
        0x02,  // members: COMPACT_ARRAY 1
        0x03, 0x6d, 0x31,  // member_id "m1"
        0x03, 0x69, 0x31,  // group_instance_id "i1"
        0x03, 0xab, 0xcd,  // metadata: COMPACT_BYTES 2
        0x01, 0x03, 0x01, 0xee,  // member tagged fields: tag 3, 1 byte
        0x00,  // tagged fields
    ]

    func testResponseV9() {
        let r = msgDecode(JoinGroupResponse.self, Self.responseV9, version: 9)
        XCTAssertEqual(r, JoinGroupResponse(
            throttleTimeMs: 5, errorCode: 0, generationID: 2, protocolType: "consumer", protocolName: "range",
            leader: "m1", skipAssignment: true, memberID: "m1",
            members: [.init(memberID: "m1", groupInstanceID: "i1", metadata: [0xab, 0xcd])]))
    }

    /// v7: the KIP-394 answer to a first join, with null protocol type and name.
    private static let memberIDRequiredV7: [UInt8] = [
        0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
        0x00, 0x4f,  // error_code 79 MEMBER_ID_REQUIRED
        0xff, 0xff, 0xff, 0xff,  // generation_id -1
        0x00,  // protocol_type null
        0x00,  // protocol_name null
        0x01,  // leader ""
        0x03, 0x6d, 0x33,  // member_id "m3": join again with it
        0x01,  // members: COMPACT_ARRAY 0
        0x00,  // tagged fields
    ]

    func testMemberIDRequiredV7() {
        let r = msgDecode(JoinGroupResponse.self, Self.memberIDRequiredV7, version: 7)
        XCTAssertEqual(KafkaErrorCode(rawValue: r.errorCode), .memberIDRequired)
        XCTAssertEqual(r.generationID, -1)
        XCTAssertNil(r.protocolType)
        XCTAssertNil(r.protocolName)
        XCTAssertEqual(r.memberID, "m3")
        XCTAssertFalse(r.isLeader)
        XCTAssertEqual(r.members, [])
    }

    func testRoundTripAtEveryVersion() {
        let sample = JoinGroupResponse.msgSample
        for version in JoinGroupRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(JoinGroupResponse.self, bytes, version: version)
            XCTAssertEqual(decoded, sample.msgAt(version: version), "v\(version)")
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
        }
    }

    func testHostileMemberCounts() {
        // v0: empty protocol name, leader and member id, then 1,000,000 members.
        let v0: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x00, 0x0f, 0x42, 0x40]
        XCTAssertEqual(MsgWire.decode(JoinGroupResponse.self, v0, version: 0).error?.kind, .invalidLength)
        // v5: 2 members of 6 bytes each fit v0's minimum but not v5's 8 (the instance id).
        let v5: [UInt8] = [0, 0, 0, 0] + Array(v0[0..<12]) + [0, 0, 0, 2] + [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(MsgWire.decode(JoinGroupResponse.self, v5, version: 5).error?.kind, .invalidLength)
        // v6: one member whose metadata claims 999,999 bytes.
        let v6: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0x01, 0x01, 0x02, 0x01, 0x00, 0xc1, 0x84, 0x3d]
        XCTAssertEqual(MsgWire.decode(JoinGroupResponse.self, v6, version: 6).error?.kind, .invalidLength)
    }
}
