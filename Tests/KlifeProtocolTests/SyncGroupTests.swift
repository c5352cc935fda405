import XCTest
import KlifeProtocol

extension SyncGroupResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 4
        return MsgWire.write { w in
            if v >= 1 { w.writeInt32(throttleTimeMs) }
            w.writeInt16(errorCode)
            if v >= 5 {
                w.writeCompactNullableString(protocolType)
                w.writeCompactNullableString(protocolName)
            }
            w.writeSizedBytes(assignment, flexible: f)
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    /// What survives a trip through `version`: the fields it does not carry take their defaults.
    func msgAt(version v: Int16) -> SyncGroupResponse {
        var r = self
        if v < 1 { r.throttleTimeMs = 0 }
        if v < 5 { (r.protocolType, r.protocolName) = (nil, nil) }
        return r
    }

    static let msgSample = SyncGroupResponse(
        throttleTimeMs: 2, errorCode: 0, protocolType: "consumer", protocolName: "cooperative-sticky",
        assignment: [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff])
}

final class SyncGroupTests: XCTestCase {
    private static let leaderRequest = SyncGroupRequest(
        groupID: "g", generationID: 7, memberID: "m", groupInstanceID: "i", protocolType: "consumer",
        protocolName: "range", assignments: [.init(memberID: "m", assignment: [0xab, 0xcd])])

    // MARK: Requests

    func testVersionsAndKeys() {
        XCTAssertEqual(SyncGroupRequest.apiKey.rawValue, 14)
        XCTAssertEqual(SyncGroupRequest.supportedVersions, 0...5)
        XCTAssertEqual(SyncGroupRequest.firstFlexibleVersion, 4)
        XCTAssertEqual(SyncGroupRequest.requestHeaderVersion(3), 1)
        XCTAssertEqual(SyncGroupRequest.requestHeaderVersion(4), 2)
        XCTAssertEqual(SyncGroupRequest.responseHeaderVersion(4), 1)
    }

    func testRequestV0ThroughV2() {
        let expected: [UInt8] = [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x00, 0x01, 0x6d,  // member_id "m"
            // group_instance_id: v3+; protocol_type, protocol_name: v5+
            0x00, 0x00, 0x00, 0x01,  // assignments: ARRAY 1
            0x00, 0x01, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x02, 0xab, 0xcd,  // assignment: BYTES 2
        ]
        for version: Int16 in 0...2 {
            XCTAssertEqual(MsgWire.encode(Self.leaderRequest, version: version), expected, "v\(version)")
        }
    }

    func testRequestV3() {
        XCTAssertEqual(MsgWire.encode(Self.leaderRequest, version: 3), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x00, 0x01, 0x6d,  // member_id "m"
            0x00, 0x01, 0x69,  // group_instance_id "i" (v3+)
            0x00, 0x00, 0x00, 0x01,  // assignments: ARRAY 1
            0x00, 0x01, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x02, 0xab, 0xcd,  // assignment: BYTES 2
        ])
    }

    func testRequestV4() {
        XCTAssertEqual(MsgWire.encode(Self.leaderRequest, version: 4), [
            0x02, 0x67,  // group_id: COMPACT_STRING "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x02, 0x6d,  // member_id "m"
            0x02, 0x69,  // group_instance_id "i"
            0x02,  // assignments: COMPACT_ARRAY 1
            0x02, 0x6d,  // member_id "m"
            0x03, 0xab, 0xcd,  // assignment: COMPACT_BYTES 2
            0x00,  // assignment tagged fields
            0x00,  // tagged fields
        ])
    }

    func testRequestV5() {
        XCTAssertEqual(MsgWire.encode(Self.leaderRequest, version: 5), [
            0x02, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x02, 0x6d,  // member_id "m"
            0x02, 0x69,  // group_instance_id "i"
            0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer" (v5+)
            0x06, 0x72, 0x61, 0x6e, 0x67, 0x65,  // protocol_name "range" (v5+)
            0x02,  // assignments: COMPACT_ARRAY 1
            0x02, 0x6d,  // member_id "m"
            0x03, 0xab, 0xcd,  // assignment: COMPACT_BYTES 2
            0x00,  // assignment tagged fields
            0x00,  // tagged fields
        ])
    }

    func testFollowerRequestV5SendsNoAssignments() {
        let follower = SyncGroupRequest(groupID: "g", generationID: 7, memberID: "m")
        XCTAssertEqual(MsgWire.encode(follower, version: 5), [
            0x02, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x02, 0x6d,  // member_id "m"
            0x00,  // group_instance_id null
            0x00,  // protocol_type null
            0x00,  // protocol_name null
            0x01,  // assignments: COMPACT_ARRAY 0
            0x00,  // tagged fields
        ])
    }

    // MARK: Responses

    /// v0: a member's assignment of partitions 0 and 1 of "t" (consumer protocol v0).
    private static let responseV0: [UInt8] = [
        0x00, 0x00,  // error_code 0
        0x00, 0x00, 0x00, 0x19,  // assignment: BYTES 25
        0x00, 0x00,  // (assignment version 0)
        0x00, 0x00, 0x00, 0x01,  // (assigned_partitions: ARRAY 1)
        0x00, 0x01, 0x74,  // (topic "t")
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // (partitions [0, 1])
        0xff, 0xff, 0xff, 0xff,  // (user_data null)
    ]

    func testResponseV0() {
        let r = msgDecode(SyncGroupResponse.self, Self.responseV0, version: 0)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.errorCode, 0)
        XCTAssertNil(r.protocolType)
        XCTAssertEqual(r.assignment.count, 25)
        XCTAssertEqual(try ConsumerProtocolAssignment(decoding: r.assignment),
                       ConsumerProtocolAssignment(assignedPartitions: [.init(topic: "t", partitions: [0, 1])]))
    }

    /// v5: nothing assigned to this member (empty bytes, as the coordinator fills in).
    private static let responseV5: [UInt8] = [
        0x00, 0x00, 0x00, 0x01,  // throttle_time_ms 1
        0x00, 0x00,  // error_code 0
        0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
        0x06, 0x72, 0x61, 0x6e, 0x67, 0x65,  // protocol_name "range"
        0x01,  // assignment: COMPACT_BYTES 0
        0x00,  // tagged fields
    ]

    func testResponseV5() {
        let r = msgDecode(SyncGroupResponse.self, Self.responseV5, version: 5)
        XCTAssertEqual(r, SyncGroupResponse(throttleTimeMs: 1, errorCode: 0, protocolType: "consumer",
                                            protocolName: "range", assignment: []))
    }

    /// v4: another rebalance began; unknown tagged fields are skipped.
    private static let rebalanceV4: [UInt8] = [
        0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
        0x00, 0x1b,  // error_code 27 REBALANCE_IN_PROGRESS
        0x01,  // assignment: COMPACT_BYTES 0
        0x01, 0x09, 0x02, 0x00, 0x00,  // tagged fields: tag 9, 2 bytes
    ]

    func testRebalanceInProgressV4() {
        let r = msgDecode(SyncGroupResponse.self, Self.rebalanceV4, version: 4)
        XCTAssertEqual(KafkaErrorCode(rawValue: r.errorCode), .rebalanceInProgress)
        XCTAssertEqual(r.assignment, [])
    }

    func testRoundTripAtEveryVersion() {
        let sample = SyncGroupResponse.msgSample
        for version in SyncGroupRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(SyncGroupResponse.self, bytes, version: version)
            XCTAssertEqual(decoded, sample.msgAt(version: version), "v\(version)")
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
        }
    }

    func testHostileAssignmentLengths() {
        // v0: assignment claims 0x7fffffff bytes.
        let v0: [UInt8] = [0x00, 0x00, 0x7f, 0xff, 0xff, 0xff]
        XCTAssertEqual(MsgWire.decode(SyncGroupResponse.self, v0, version: 0).error?.kind, .invalidLength)
        // v0: negative assignment length -2.
        let negative: [UInt8] = [0x00, 0x00, 0xff, 0xff, 0xff, 0xfe]
        XCTAssertEqual(MsgWire.decode(SyncGroupResponse.self, negative, version: 0).error?.kind, .invalidLength)
        // v4: compact assignment claims 999,999 bytes.
        let v4: [UInt8] = [0, 0, 0, 0, 0x00, 0x00, 0xc1, 0x84, 0x3d, 0x00]
        XCTAssertEqual(MsgWire.decode(SyncGroupResponse.self, v4, version: 4).error?.kind, .invalidLength)
    }
}
