import XCTest
import KlifeProtocol

extension HeartbeatResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        MsgWire.write { w in
            if v >= 1 { w.writeInt32(throttleTimeMs) }
            w.writeInt16(errorCode)
            w.writeEmptyTaggedFields(flexible: v >= 4)
        }
    }

    static let msgSample = HeartbeatResponse(throttleTimeMs: 6, errorCode: 27)
}

extension LeaveGroupResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 4
        return MsgWire.write { w in
            if v >= 1 { w.writeInt32(throttleTimeMs) }
            w.writeInt16(errorCode)
            if v >= 3 {
                w.writeArrayCount(members.count, flexible: f)
                for m in members {
                    w.writeString(m.memberID, flexible: f)
                    w.writeNullableString(m.groupInstanceID, flexible: f)
                    w.writeInt16(m.errorCode)
                    w.writeEmptyTaggedFields(flexible: f)
                }
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    /// What survives a trip through `version`: the fields it does not carry take their defaults.
    func msgAt(version v: Int16) -> LeaveGroupResponse {
        LeaveGroupResponse(throttleTimeMs: v >= 1 ? throttleTimeMs : 0, errorCode: errorCode,
                           members: v >= 3 ? members : [])
    }

    static let msgSample = LeaveGroupResponse(throttleTimeMs: 1, errorCode: 0, members: [
        Member(memberID: "member-1", groupInstanceID: nil, errorCode: 0),
        Member(memberID: "", groupInstanceID: "instance-2", errorCode: 82),
    ])
}

/// Heartbeat and LeaveGroup codecs.
final class GroupMembershipTests: XCTestCase {
    // MARK: Heartbeat

    private static let heartbeat = HeartbeatRequest(groupID: "g", generationID: 7, memberID: "m", groupInstanceID: "i")

    func testHeartbeatVersionsAndKeys() {
        XCTAssertEqual(HeartbeatRequest.apiKey.rawValue, 12)
        XCTAssertEqual(HeartbeatRequest.supportedVersions, 0...4)
        XCTAssertEqual(HeartbeatRequest.firstFlexibleVersion, 4)
        XCTAssertEqual(HeartbeatRequest.requestHeaderVersion(3), 1)
        XCTAssertEqual(HeartbeatRequest.requestHeaderVersion(4), 2)
    }

    func testHeartbeatRequestV0ThroughV2() {
        let expected: [UInt8] = [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x00, 0x01, 0x6d,  // member_id "m"
            // group_instance_id: v3+
        ]
        for version: Int16 in 0...2 {
            XCTAssertEqual(MsgWire.encode(Self.heartbeat, version: version), expected, "v\(version)")
        }
    }

    func testHeartbeatRequestV3() {
        XCTAssertEqual(MsgWire.encode(Self.heartbeat, version: 3), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x00, 0x01, 0x6d,  // member_id "m"
            0x00, 0x01, 0x69,  // group_instance_id "i" (v3+)
        ])
        let dynamic = HeartbeatRequest(groupID: "g", generationID: 7, memberID: "m")
        XCTAssertEqual(MsgWire.encode(dynamic, version: 3).suffix(2), [0xff, 0xff], "group_instance_id null")
    }

    func testHeartbeatRequestV4() {
        XCTAssertEqual(MsgWire.encode(Self.heartbeat, version: 4), [
            0x02, 0x67,  // group_id: COMPACT_STRING "g"
            0x00, 0x00, 0x00, 0x07,  // generation_id 7
            0x02, 0x6d,  // member_id "m"
            0x02, 0x69,  // group_instance_id "i"
            0x00,  // tagged fields
        ])
    }

    /// v0: the coordinator asks the member to rejoin.
    private static let heartbeatRebalanceV0: [UInt8] = [
        0x00, 0x1b,  // error_code 27 REBALANCE_IN_PROGRESS
    ]

    /// v4: a stable group; an unknown tagged field is skipped.
    private static let heartbeatStableV4: [UInt8] = [
        0x00, 0x00, 0x00, 0x0a,  // throttle_time_ms 10
        0x00, 0x00,  // error_code 0
        0x01, 0x02, 0x01, 0x00,  // tagged fields: tag 2, 1 byte
    ]

    func testHeartbeatResponses() {
        let v0 = msgDecode(HeartbeatResponse.self, Self.heartbeatRebalanceV0, version: 0)
        XCTAssertEqual(v0, HeartbeatResponse(throttleTimeMs: 0, errorCode: 27))
        XCTAssertEqual(KafkaErrorCode(rawValue: v0.errorCode), .rebalanceInProgress)
        let v4 = msgDecode(HeartbeatResponse.self, Self.heartbeatStableV4, version: 4)
        XCTAssertEqual(v4, HeartbeatResponse(throttleTimeMs: 10, errorCode: 0))
    }

    func testHeartbeatRoundTripAtEveryVersion() {
        let sample = HeartbeatResponse.msgSample
        for version in HeartbeatRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            XCTAssertEqual(bytes.count, [2, 6, 6, 6, 7][Int(version)], "v\(version)")
            let decoded = msgDecode(HeartbeatResponse.self, bytes, version: version)
            XCTAssertEqual(decoded, HeartbeatResponse(throttleTimeMs: version >= 1 ? 6 : 0, errorCode: 27))
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
        }
    }

    // MARK: LeaveGroup

    /// A dynamic member by id and a static member removed by instance id alone.
    private static let leaveBatch = LeaveGroupRequest(groupID: "g", members: [
        .init(memberID: "m"),
        .init(memberID: "", groupInstanceID: "i", reason: "bye"),
    ])

    func testLeaveGroupVersionsAndKeys() {
        XCTAssertEqual(LeaveGroupRequest.apiKey.rawValue, 13)
        XCTAssertEqual(LeaveGroupRequest.supportedVersions, 0...5)
        XCTAssertEqual(LeaveGroupRequest.firstFlexibleVersion, 4)
        XCTAssertEqual(LeaveGroupRequest.responseHeaderVersion(3), 0)
        XCTAssertEqual(LeaveGroupRequest.responseHeaderVersion(4), 1)
    }

    func testLeaveGroupRequestV0ThroughV2SendOneMemberID() {
        let expected: [UInt8] = [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x01, 0x6d,  // member_id "m" (the first member; v0-2 only)
        ]
        for version: Int16 in 0...2 {
            XCTAssertEqual(MsgWire.encode(Self.leaveBatch, version: version), expected, "v\(version)")
            XCTAssertEqual(MsgWire.encode(LeaveGroupRequest(groupID: "g", memberID: "m"), version: version), expected)
        }
        XCTAssertEqual(MsgWire.encode(LeaveGroupRequest(groupID: "g", members: []), version: 0), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00,  // member_id "" (no member named)
        ])
    }

    func testLeaveGroupRequestV3() {
        XCTAssertEqual(MsgWire.encode(Self.leaveBatch, version: 3), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x02,  // members: ARRAY 2 (v3+)
            0x00, 0x01, 0x6d,  // member_id "m"
            0xff, 0xff,  // group_instance_id null
            0x00, 0x00,  // member_id ""
            0x00, 0x01, 0x69,  // group_instance_id "i"
            // reason: v5+
        ])
    }

    func testLeaveGroupRequestV4() {
        XCTAssertEqual(MsgWire.encode(Self.leaveBatch, version: 4), [
            0x02, 0x67,  // group_id: COMPACT_STRING "g"
            0x03,  // members: COMPACT_ARRAY 2
            0x02, 0x6d,  // member_id "m"
            0x00,  // group_instance_id null
            0x00,  // member tagged fields
            0x01,  // member_id ""
            0x02, 0x69,  // group_instance_id "i"
            0x00,  // member tagged fields
            0x00,  // tagged fields
        ])
    }

    func testLeaveGroupRequestV5() {
        XCTAssertEqual(MsgWire.encode(Self.leaveBatch, version: 5), [
            0x02, 0x67,  // group_id "g"
            0x03,  // members: COMPACT_ARRAY 2
            0x02, 0x6d,  // member_id "m"
            0x00,  // group_instance_id null
            0x00,  // reason null (v5+)
            0x00,  // member tagged fields
            0x01,  // member_id ""
            0x02, 0x69,  // group_instance_id "i"
            0x04, 0x62, 0x79, 0x65,  // reason "bye" (v5+)
            0x00,  // member tagged fields
            0x00,  // tagged fields
        ])
    }

    /// v0: the coordinator moved.
    private static let leaveNotCoordinatorV0: [UInt8] = [
        0x00, 0x10,  // error_code 16 NOT_COORDINATOR
    ]

    /// v3: one member left, the other's instance id was taken over.
    private static let leaveResponseV3: [UInt8] = [
        0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
        0x00, 0x00,  // error_code 0
        0x00, 0x00, 0x00, 0x02,  // members: ARRAY 2
        0x00, 0x01, 0x6d,  // member_id "m"
        0xff, 0xff,  // group_instance_id null
        0x00, 0x00,  // error_code 0
        0x00, 0x00,  // member_id ""
        0x00, 0x01, 0x69,  // group_instance_id "i"
        0x00, 0x52,  // error_code 82 FENCED_INSTANCE_ID
    ]

    /// v5: the same answer, flexible, with unknown tagged fields at both levels.
    private static let leaveResponseV5: [UInt8] = [
        0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
        0x00, 0x00,  // error_code 0
        0x03,  // members: COMPACT_ARRAY 2
        0x02, 0x6d,  // member_id "m"
        0x00,  // group_instance_id null
        0x00, 0x00,  // error_code 0
        0x00,  // member tagged fields
        0x01,  // member_id ""
        0x02, 0x69,  // group_instance_id "i"
        0x00, 0x52,  // error_code 82
        0x01, 0x00, 0x01, 0x07,  // member tagged fields: tag 0, 1 byte
        0x01, 0x04, 0x00,  // tagged fields: tag 4, 0 bytes
    ]

    func testLeaveGroupResponses() {
        let v0 = msgDecode(LeaveGroupResponse.self, Self.leaveNotCoordinatorV0, version: 0)
        XCTAssertEqual(v0, LeaveGroupResponse(throttleTimeMs: 0, errorCode: 16, members: []))
        let expected = LeaveGroupResponse(throttleTimeMs: 0, errorCode: 0, members: [
            .init(memberID: "m", groupInstanceID: nil, errorCode: 0),
            .init(memberID: "", groupInstanceID: "i", errorCode: 82),
        ])
        XCTAssertEqual(msgDecode(LeaveGroupResponse.self, Self.leaveResponseV3, version: 3), expected)
        XCTAssertEqual(msgDecode(LeaveGroupResponse.self, Self.leaveResponseV5, version: 5), expected)
    }

    func testLeaveGroupRoundTripAtEveryVersion() {
        let sample = LeaveGroupResponse.msgSample
        for version in LeaveGroupRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(LeaveGroupResponse.self, bytes, version: version)
            XCTAssertEqual(decoded, sample.msgAt(version: version), "v\(version)")
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
        }
    }

    func testLeaveGroupHostileMemberCounts() {
        // v3: 2 members claimed, 10 bytes left: more than 6 per member is needed.
        let v3: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 2] + [UInt8](repeating: 0, count: 10)
        XCTAssertEqual(MsgWire.decode(LeaveGroupResponse.self, v3, version: 3).error?.kind, .invalidLength)
        // v4: 999,999 members claimed.
        let v4: [UInt8] = [0, 0, 0, 0, 0, 0, 0xc1, 0x84, 0x3d, 0x00]
        XCTAssertEqual(MsgWire.decode(LeaveGroupResponse.self, v4, version: 4).error?.kind, .invalidLength)
    }
}
