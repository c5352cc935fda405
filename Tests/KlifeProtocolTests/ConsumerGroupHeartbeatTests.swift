import XCTest
import KlifeProtocol

extension ConsumerGroupHeartbeatResponse {
    /// Test-only encoder: the nullable assignment is a presence byte (-1 or 1) then the struct.
    func msgEncoded(version v: Int16) -> [UInt8] {
        MsgWire.write { w in
            w.writeInt32(throttleTimeMs)
            w.writeInt16(errorCode)
            w.writeCompactNullableString(errorMessage)
            w.writeCompactNullableString(memberID)
            w.writeInt32(memberEpoch)
            w.writeInt32(heartbeatIntervalMs)
            if let assignment {
                w.writeInt8(1)
                w.writeArrayCount(assignment.topicPartitions.count, flexible: true)
                for topic in assignment.topicPartitions {
                    w.writeUUID(topic.topicID)
                    w.writeArrayCount(topic.partitions.count, flexible: true)
                    for partition in topic.partitions { w.writeInt32(partition) }
                    w.writeEmptyTaggedFields()
                }
                w.writeEmptyTaggedFields()
            } else {
                w.writeInt8(-1)
            }
            w.writeEmptyTaggedFields()
        }
    }

    static let msgSample = ConsumerGroupHeartbeatResponse(
        throttleTimeMs: 4, errorCode: 0, errorMessage: nil, memberID: "member-1", memberEpoch: 7,
        heartbeatIntervalMs: 5000, assignment: Assignment(topicPartitions: [
            TopicPartitions(topicID: msgUUID, partitions: [0, 3, 5]),
            TopicPartitions(topicID: KafkaUUID(high: 0, low: 42), partitions: []),
        ]))

    static let msgSampleWithoutAssignment = ConsumerGroupHeartbeatResponse(
        throttleTimeMs: 0, errorCode: 110, errorMessage: "fenced", memberID: nil, memberEpoch: -1,
        heartbeatIntervalMs: 0, assignment: nil)
}

final class ConsumerGroupHeartbeatTests: XCTestCase {
    private static let uuidBytes: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                             0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10]

    private static let fullRequest = ConsumerGroupHeartbeatRequest(
        groupID: "g", memberID: "m", memberEpoch: 5, instanceID: "i", rackID: nil, rebalanceTimeoutMs: 30000,
        subscribedTopicNames: ["t"], subscribedTopicRegex: "r.*", serverAssignor: "uniform",
        topicPartitions: [.init(topicID: msgUUID, partitions: [0, 2])])

    // MARK: Requests

    func testRequestV0() {
        let expected: [UInt8] = [
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x05,  // member_epoch 5
            0x02, 0x69,  // instance_id "i"
            0x00,  // rack_id null
            0x00, 0x00, 0x75, 0x30,  // rebalance_timeout_ms 30000
            0x02,  // subscribed_topic_names: COMPACT_ARRAY 1
            0x02, 0x74,  // "t"
            // subscribed_topic_regex: v1+
            0x08, 0x75, 0x6e, 0x69, 0x66, 0x6f, 0x72, 0x6d,  // server_assignor "uniform"
            0x02,  // topic_partitions: COMPACT_ARRAY 1
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id (first half)
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // topic_id (second half)
            0x03,  // partitions: COMPACT_ARRAY 2
            0x00, 0x00, 0x00, 0x00,  // 0
            0x00, 0x00, 0x00, 0x02,  // 2
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(Self.fullRequest, version: 0), expected)
    }

    func testRequestV1() {
        let expected: [UInt8] = [
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x05,  // member_epoch 5
            0x02, 0x69,  // instance_id "i"
            0x00,  // rack_id null
            0x00, 0x00, 0x75, 0x30,  // rebalance_timeout_ms 30000
            0x02,  // subscribed_topic_names: COMPACT_ARRAY 1
            0x02, 0x74,  // "t"
            0x04, 0x72, 0x2e, 0x2a,  // subscribed_topic_regex "r.*" (v1+)
            0x08, 0x75, 0x6e, 0x69, 0x66, 0x6f, 0x72, 0x6d,  // server_assignor "uniform"
            0x02,  // topic_partitions: COMPACT_ARRAY 1
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id (first half)
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // topic_id (second half)
            0x03,  // partitions: COMPACT_ARRAY 2
            0x00, 0x00, 0x00, 0x00,  // 0
            0x00, 0x00, 0x00, 0x02,  // 2
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(Self.fullRequest, version: 1), expected)
    }

    func testLeaveRequestWithEveryNullableFieldNull() {
        let request = ConsumerGroupHeartbeatRequest(groupID: "g", memberID: "m",
                                                    memberEpoch: ConsumerGroupHeartbeatRequest.leaveEpoch)
        let v1: [UInt8] = [
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m"
            0xff, 0xff, 0xff, 0xff,  // member_epoch -1 (leave)
            0x00,  // instance_id null
            0x00,  // rack_id null
            0xff, 0xff, 0xff, 0xff,  // rebalance_timeout_ms -1 (unchanged)
            0x00,  // subscribed_topic_names null
            0x00,  // subscribed_topic_regex null (v1+)
            0x00,  // server_assignor null
            0x00,  // topic_partitions null
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(request, version: 1), v1)
        var v0 = v1
        v0.remove(at: 15)  // no subscribed_topic_regex before v1
        XCTAssertEqual(MsgWire.encode(request, version: 0), v0)
    }

    func testJoinRequestWithEmptyArraysIsNotNull() {
        let request = ConsumerGroupHeartbeatRequest(
            groupID: "g", memberID: "", memberEpoch: ConsumerGroupHeartbeatRequest.joinEpoch,
            rebalanceTimeoutMs: 300_000, subscribedTopicNames: [], topicPartitions: [])
        XCTAssertEqual(MsgWire.encode(request, version: 1), [
            0x02, 0x67,  // group_id "g"
            0x01,  // member_id ""
            0x00, 0x00, 0x00, 0x00,  // member_epoch 0 (join)
            0x00,  // instance_id null
            0x00,  // rack_id null
            0x00, 0x04, 0x93, 0xe0,  // rebalance_timeout_ms 300000
            0x01,  // subscribed_topic_names: COMPACT_ARRAY 0 (empty, not null)
            0x00,  // subscribed_topic_regex null
            0x00,  // server_assignor null
            0x01,  // topic_partitions: COMPACT_ARRAY 0 (owns nothing)
            0x00,  // tagged fields
        ])
    }

    func testRequestHeaderVersionIsAlwaysFlexible() {
        for version in ConsumerGroupHeartbeatRequest.supportedVersions {
            XCTAssertTrue(ConsumerGroupHeartbeatRequest.isFlexible(version))
            XCTAssertEqual(ConsumerGroupHeartbeatRequest.requestHeaderVersion(version), 2)
            XCTAssertEqual(ConsumerGroupHeartbeatRequest.responseHeaderVersion(version), 1)
        }
        XCTAssertEqual(ConsumerGroupHeartbeatRequest.apiKey.rawValue, 68)
        XCTAssertEqual(ConsumerGroupHeartbeatRequest.apiKey.description, "ConsumerGroupHeartbeat")
    }

    // MARK: Responses

    func testResponseWithAssignment() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x02, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x01,  // member_epoch 1
            0x00, 0x00, 0x13, 0x88,  // heartbeat_interval_ms 5000
            0x01,  // assignment present
            0x02,  // topic_partitions: COMPACT_ARRAY 1
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id (first half)
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // topic_id (second half)
            0x03,  // partitions: COMPACT_ARRAY 2
            0x00, 0x00, 0x00, 0x01,  // 1
            0x00, 0x00, 0x00, 0x04,  // 4
            0x00,  // topic tagged fields
            0x00,  // assignment tagged fields
            0x00,  // tagged fields
        ]
        for version in ConsumerGroupHeartbeatRequest.supportedVersions {
            let r = msgDecode(ConsumerGroupHeartbeatResponse.self, bytes, version: version)
            XCTAssertEqual(r, ConsumerGroupHeartbeatResponse(
                throttleTimeMs: 0, errorCode: 0, errorMessage: nil, memberID: "m", memberEpoch: 1,
                heartbeatIntervalMs: 5000,
                assignment: .init(topicPartitions: [.init(topicID: msgUUID, partitions: [1, 4])])), "v\(version)")
        }
    }

    func testResponseWithNullAssignment() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x02,  // throttle_time_ms 2
            0x00, 0x6e,  // error_code 110 FENCED_MEMBER_EPOCH
            0x02, 0x78,  // error_message "x"
            0x00,  // member_id null
            0xff, 0xff, 0xff, 0xff,  // member_epoch -1
            0x00, 0x00, 0x00, 0x00,  // heartbeat_interval_ms 0
            0xff,  // assignment null (INT8 -1)
            0x00,  // tagged fields
        ]
        let r = msgDecode(ConsumerGroupHeartbeatResponse.self, bytes, version: 1)
        XCTAssertEqual(r, ConsumerGroupHeartbeatResponse(
            throttleTimeMs: 2, errorCode: 110, errorMessage: "x", memberID: nil, memberEpoch: -1,
            heartbeatIntervalMs: 0, assignment: nil))
        XCTAssertEqual(KafkaErrorCode(rawValue: r.errorCode), .fencedMemberEpoch)
    }

    func testResponseSkipsUnknownTaggedFieldsAtEveryLevel() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x00,  // member_id null
            0x00, 0x00, 0x00, 0x09,  // member_epoch 9
            0x00, 0x00, 0x0b, 0xb8,  // heartbeat_interval_ms 3000
            0x01,  // assignment present
            0x02,  // topic_partitions: COMPACT_ARRAY 1
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id (first half)
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // topic_id (second half)
            0x01,  // partitions: COMPACT_ARRAY 0
            0x01, 0x05, 0x01, 0xaa,  // topic tagged fields: 1 field, tag 5, 1 byte
            0x02, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,  // assignment tagged fields: tags 0 and 3
            0x01, 0x7f, 0x02, 0x02, 0x00,  // tagged fields: tag 127, 2 bytes
        ]
        let r = msgDecode(ConsumerGroupHeartbeatResponse.self, bytes, version: 0)
        XCTAssertEqual(r.memberEpoch, 9)
        XCTAssertEqual(r.heartbeatIntervalMs, 3000)
        XCTAssertEqual(r.assignment, .init(topicPartitions: [.init(topicID: msgUUID, partitions: [])]))
    }

    func testAssignmentPresenceByteIsSigned() {
        // Kafka's reader takes any negative byte as null and any other byte as present.
        let head: [UInt8] = [0, 0, 0, 0, 0, 0, 0x00, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]
        let empty: [UInt8] = [0x01, 0x00]  // topic_partitions: COMPACT_ARRAY 0, assignment tagged fields
        let null = msgDecode(ConsumerGroupHeartbeatResponse.self, head + [0x80, 0x00], version: 1)
        XCTAssertNil(null.assignment)
        let zero = msgDecode(ConsumerGroupHeartbeatResponse.self, head + [0x00] + empty + [0x00], version: 1)
        XCTAssertEqual(zero.assignment, .init(topicPartitions: []))
        let one = msgDecode(ConsumerGroupHeartbeatResponse.self, head + [0x01] + empty + [0x00], version: 1)
        XCTAssertEqual(one.assignment, .init(topicPartitions: []))
    }

    func testHostileAssignmentCountsAreRejected() {
        let head: [UInt8] = [0, 0, 0, 0, 0, 0, 0x00, 0x00, 0, 0, 0, 1, 0, 0, 0, 1, 0x01]
        // topic_partitions claims 1,000,000 entries.
        var bytes = head + [0xc1, 0x84, 0x3d, 0x00]
        XCTAssertEqual(MsgWire.decode(ConsumerGroupHeartbeatResponse.self, bytes, version: 1).error?.kind, .invalidLength)
        // One topic whose partitions claim 1,000,000 entries.
        bytes = head + [0x02] + Self.uuidBytes + [0xc1, 0x84, 0x3d, 0x00, 0x00, 0x00]
        XCTAssertEqual(MsgWire.decode(ConsumerGroupHeartbeatResponse.self, bytes, version: 1).error?.kind, .invalidLength)
    }

    func testRoundTripAllVersions() {
        for sample in [ConsumerGroupHeartbeatResponse.msgSample, .msgSampleWithoutAssignment] {
            for version in ConsumerGroupHeartbeatRequest.supportedVersions {
                let bytes = sample.msgEncoded(version: version)
                let decoded = msgDecode(ConsumerGroupHeartbeatResponse.self, bytes, version: version)
                XCTAssertEqual(decoded, sample, "v\(version)")
                XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
            }
        }
    }

    func testEveryTruncationFails() {
        for sample in [ConsumerGroupHeartbeatResponse.msgSample, .msgSampleWithoutAssignment] {
            let bytes = sample.msgEncoded(version: 1)
            for n in 0..<bytes.count {
                let (_, error, _) = MsgWire.decode(ConsumerGroupHeartbeatResponse.self, Array(bytes[0..<n]), version: 1)
                XCTAssertNotNil(error, "prefix \(n) of \(bytes.count)")
            }
        }
    }
}
