import XCTest
import KlifeProtocol

extension ConsumerGroupDescribeResponse {
    /// Test-only encoder; ``Member/memberType`` is written from v1 only.
    func msgEncoded(version v: Int16) -> [UInt8] {
        func assignment(_ w: inout ByteWriter, _ a: Assignment) {
            w.writeArrayCount(a.topicPartitions.count, flexible: true)
            for t in a.topicPartitions {
                w.writeUUID(t.topicID)
                w.writeCompactString(t.topicName)
                w.writeArrayCount(t.partitions.count, flexible: true)
                for p in t.partitions { w.writeInt32(p) }
                w.writeEmptyTaggedFields()
            }
            w.writeEmptyTaggedFields()
        }
        return MsgWire.write { w in
            w.writeInt32(throttleTimeMs)
            w.writeArrayCount(groups.count, flexible: true)
            for g in groups {
                w.writeInt16(g.errorCode)
                w.writeCompactNullableString(g.errorMessage)
                w.writeCompactString(g.groupID)
                w.writeCompactString(g.groupState)
                w.writeInt32(g.groupEpoch)
                w.writeInt32(g.assignmentEpoch)
                w.writeCompactString(g.assignorName)
                w.writeArrayCount(g.members.count, flexible: true)
                for m in g.members {
                    w.writeCompactString(m.memberID)
                    w.writeCompactNullableString(m.instanceID)
                    w.writeCompactNullableString(m.rackID)
                    w.writeInt32(m.memberEpoch)
                    w.writeCompactString(m.clientID)
                    w.writeCompactString(m.clientHost)
                    w.writeArrayCount(m.subscribedTopicNames.count, flexible: true)
                    for name in m.subscribedTopicNames { w.writeCompactString(name) }
                    w.writeCompactNullableString(m.subscribedTopicRegex)
                    assignment(&w, m.assignment)
                    assignment(&w, m.targetAssignment)
                    if v >= 1 { w.writeInt8(m.memberType) }
                    w.writeEmptyTaggedFields()
                }
                w.writeInt32(g.authorizedOperations)
                w.writeEmptyTaggedFields()
            }
            w.writeEmptyTaggedFields()
        }
    }

    static let msgSample = ConsumerGroupDescribeResponse(throttleTimeMs: 3, groups: [
        DescribedGroup(
            errorCode: 0, errorMessage: nil, groupID: "orders-app", groupState: "Reconciling", groupEpoch: 12,
            assignmentEpoch: 11, assignorName: "uniform", members: [
                Member(memberID: "m-1", instanceID: "instance-1", rackID: "az1", memberEpoch: 12, clientID: "klife",
                       clientHost: "/10.0.0.7", subscribedTopicNames: ["orders", "payments"],
                       subscribedTopicRegex: nil,
                       assignment: Assignment(topicPartitions: [
                           TopicPartitions(topicID: msgUUID, topicName: "orders", partitions: [0, 1]),
                       ]),
                       targetAssignment: Assignment(topicPartitions: [
                           TopicPartitions(topicID: msgUUID, topicName: "orders", partitions: [0]),
                           TopicPartitions(topicID: KafkaUUID(high: 7, low: 9), topicName: "payments", partitions: [2]),
                       ]),
                       memberType: Member.consumerMemberType),
                Member(memberID: "m-2", instanceID: nil, rackID: nil, memberEpoch: 11, clientID: "legacy",
                       clientHost: "/10.0.0.8", subscribedTopicNames: [], subscribedTopicRegex: "orders.*",
                       memberType: Member.classicMemberType),
            ], authorizedOperations: 0x0000_0f00),
        DescribedGroup(errorCode: 69, errorMessage: "group not found", groupID: "ghost"),
    ])
}

final class ConsumerGroupDescribeTests: XCTestCase {
    // MARK: Requests

    func testRequestV0AndV1() {
        let request = ConsumerGroupDescribeRequest(groupIDs: ["g1", "g2"], includeAuthorizedOperations: true)
        let expected: [UInt8] = [
            0x03,  // group_ids: COMPACT_ARRAY 2
            0x03, 0x67, 0x31,  // "g1"
            0x03, 0x67, 0x32,  // "g2"
            0x01,  // include_authorized_operations true
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(request, version: 0), expected)
        XCTAssertEqual(MsgWire.encode(request, version: 1), expected)  // v1 changes only the response
    }

    func testRequestWithoutGroups() {
        XCTAssertEqual(MsgWire.encode(ConsumerGroupDescribeRequest(groupIDs: []), version: 1), [
            0x01,  // group_ids: COMPACT_ARRAY 0
            0x00,  // include_authorized_operations false
            0x00,  // tagged fields
        ])
    }

    func testApiKeyAndHeaders() {
        XCTAssertEqual(ConsumerGroupDescribeRequest.apiKey.rawValue, 69)
        XCTAssertEqual(ConsumerGroupDescribeRequest.apiKey.description, "ConsumerGroupDescribe")
        for version in ConsumerGroupDescribeRequest.supportedVersions {
            XCTAssertEqual(ConsumerGroupDescribeRequest.requestHeaderVersion(version), 2)
            XCTAssertEqual(ConsumerGroupDescribeRequest.responseHeaderVersion(version), 1)
        }
    }

    // MARK: Responses

    func testResponseV0GroupNotFound() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x05,  // throttle_time_ms 5
            0x02,  // groups: COMPACT_ARRAY 1
            0x00, 0x45,  // error_code 69 GROUP_ID_NOT_FOUND
            0x02, 0x78,  // error_message "x"
            0x02, 0x67,  // group_id "g"
            0x01,  // group_state ""
            0x00, 0x00, 0x00, 0x00,  // group_epoch 0
            0x00, 0x00, 0x00, 0x00,  // assignment_epoch 0
            0x01,  // assignor_name ""
            0x01,  // members: COMPACT_ARRAY 0
            0x80, 0x00, 0x00, 0x00,  // authorized_operations INT32_MIN (not asked)
            0x00,  // group tagged fields
            0x00,  // tagged fields
        ]
        let r = msgDecode(ConsumerGroupDescribeResponse.self, bytes, version: 0)
        XCTAssertEqual(r, ConsumerGroupDescribeResponse(throttleTimeMs: 5, groups: [
            .init(errorCode: 69, errorMessage: "x", groupID: "g", groupState: "", groupEpoch: 0, assignmentEpoch: 0,
                  assignorName: "", members: [], authorizedOperations: .min),
        ]))
        XCTAssertEqual(KafkaErrorCode(rawValue: r.groups[0].errorCode).name, "GROUP_ID_NOT_FOUND")
    }

    func testResponseV1WithMember() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x02,  // groups: COMPACT_ARRAY 1
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x02, 0x67,  // group_id "g"
            0x07, 0x53, 0x74, 0x61, 0x62, 0x6c, 0x65,  // group_state "Stable"
            0x00, 0x00, 0x00, 0x03,  // group_epoch 3
            0x00, 0x00, 0x00, 0x03,  // assignment_epoch 3
            0x08, 0x75, 0x6e, 0x69, 0x66, 0x6f, 0x72, 0x6d,  // assignor_name "uniform"
            0x02,  // members: COMPACT_ARRAY 1
            0x02, 0x6d,  // member_id "m"
            0x00,  // instance_id null
            0x03, 0x72, 0x31,  // rack_id "r1"
            0x00, 0x00, 0x00, 0x03,  // member_epoch 3
            0x02, 0x63,  // client_id "c"
            0x03, 0x2f, 0x68,  // client_host "/h"
            0x02,  // subscribed_topic_names: COMPACT_ARRAY 1
            0x02, 0x74,  // "t"
            0x00,  // subscribed_topic_regex null
            0x02,  // assignment.topic_partitions: COMPACT_ARRAY 1
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id (first half)
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // topic_id (second half)
            0x02, 0x74,  // topic_name "t"
            0x02,  // partitions: COMPACT_ARRAY 1
            0x00, 0x00, 0x00, 0x00,  // 0
            0x00,  // topic tagged fields
            0x00,  // assignment tagged fields
            0x01,  // target_assignment.topic_partitions: COMPACT_ARRAY 0
            0x00,  // target_assignment tagged fields
            0x01,  // member_type 1 (consumer, v1+)
            0x00,  // member tagged fields
            0x00, 0x00, 0x0f, 0x00,  // authorized_operations 0x0f00
            0x00,  // group tagged fields
            0x00,  // tagged fields
        ]
        let r = msgDecode(ConsumerGroupDescribeResponse.self, bytes, version: 1)
        let member = ConsumerGroupDescribeResponse.Member(
            memberID: "m", instanceID: nil, rackID: "r1", memberEpoch: 3, clientID: "c", clientHost: "/h",
            subscribedTopicNames: ["t"], subscribedTopicRegex: nil,
            assignment: .init(topicPartitions: [.init(topicID: msgUUID, topicName: "t", partitions: [0])]),
            targetAssignment: .init(topicPartitions: []), memberType: 1)
        XCTAssertEqual(r, ConsumerGroupDescribeResponse(throttleTimeMs: 0, groups: [
            .init(errorCode: 0, errorMessage: nil, groupID: "g", groupState: "Stable", groupEpoch: 3, assignmentEpoch: 3,
                  assignorName: "uniform", members: [member], authorizedOperations: 0x0f00),
        ]))
        // At v0 there is no member_type: the same bytes leave one byte over, or misread the rest.
        let (_, error, atEnd) = MsgWire.decode(ConsumerGroupDescribeResponse.self, bytes, version: 0)
        XCTAssertFalse(error == nil && atEnd)
    }

    func testResponseSkipsUnknownTaggedFields() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x02,  // groups: COMPACT_ARRAY 1
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x02, 0x67,  // group_id "g"
            0x01,  // group_state ""
            0x00, 0x00, 0x00, 0x01,  // group_epoch 1
            0x00, 0x00, 0x00, 0x01,  // assignment_epoch 1
            0x01,  // assignor_name ""
            0x02,  // members: COMPACT_ARRAY 1
            0x02, 0x6d,  // member_id "m"
            0x00,  // instance_id null
            0x00,  // rack_id null
            0x00, 0x00, 0x00, 0x01,  // member_epoch 1
            0x01,  // client_id ""
            0x01,  // client_host ""
            0x01,  // subscribed_topic_names: COMPACT_ARRAY 0
            0x02, 0x2e,  // subscribed_topic_regex "."
            0x01,  // assignment.topic_partitions: COMPACT_ARRAY 0
            0x01, 0x00, 0x01, 0x09,  // assignment tagged fields: tag 0, 1 byte
            0x01,  // target_assignment.topic_partitions: COMPACT_ARRAY 0
            0x00,  // target_assignment tagged fields
            0x01, 0x04, 0x00,  // member tagged fields: tag 4, empty
            0x80, 0x00, 0x00, 0x00,  // authorized_operations INT32_MIN
            0x01, 0x02, 0x03, 0x61, 0x62, 0x63,  // group tagged fields: tag 2, 3 bytes
            0x01, 0x00, 0x01, 0xff,  // tagged fields: tag 0, 1 byte
        ]
        let r = msgDecode(ConsumerGroupDescribeResponse.self, bytes, version: 0)
        XCTAssertEqual(r.groups.count, 1)
        XCTAssertEqual(r.groups[0].members, [
            .init(memberID: "m", memberEpoch: 1, subscribedTopicRegex: ".", memberType: -1),
        ])
        XCTAssertEqual(r.groups[0].authorizedOperations, .min)
    }

    func testRoundTripAllVersions() {
        let sample = ConsumerGroupDescribeResponse.msgSample
        for version in ConsumerGroupDescribeRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(ConsumerGroupDescribeResponse.self, bytes, version: version)
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
            var expected = sample
            if version < 1 {
                for g in expected.groups.indices {
                    for m in expected.groups[g].members.indices {
                        expected.groups[g].members[m].memberType = ConsumerGroupDescribeResponse.Member.unknownMemberType
                    }
                }
            }
            XCTAssertEqual(decoded, expected, "v\(version)")
        }
    }

    func testEveryTruncationFails() {
        for version in ConsumerGroupDescribeRequest.supportedVersions {
            let bytes = ConsumerGroupDescribeResponse.msgSample.msgEncoded(version: version)
            for n in 0..<bytes.count {
                let (_, error, _) = MsgWire.decode(ConsumerGroupDescribeResponse.self, Array(bytes[0..<n]),
                                                   version: version)
                XCTAssertNotNil(error, "v\(version) prefix \(n) of \(bytes.count)")
            }
        }
    }

    func testHostileNestedCountsAreRejected() {
        // One group whose members claim 1,000,000 entries.
        let group: [UInt8] = [0, 0, 0, 0, 0x02, 0, 0, 0x00, 0x02, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]
        let members = group + [0xc1, 0x84, 0x3d] + [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(MsgWire.decode(ConsumerGroupDescribeResponse.self, members, version: 1).error?.kind,
                       .invalidLength)
        // One member whose assignment claims 1,000,000 topics.
        let member: [UInt8] = [0x02, 0x02, 0x6d, 0x00, 0x00, 0, 0, 0, 1, 0x01, 0x01, 0x01, 0x00]
        let topics = group + member + [0xc1, 0x84, 0x3d] + [UInt8](repeating: 0, count: 20)
        XCTAssertEqual(MsgWire.decode(ConsumerGroupDescribeResponse.self, topics, version: 1).error?.kind,
                       .invalidLength)
    }
}
