import XCTest
@testable import KlifeProtocol

// Test-only encoders of the share group responses (the client only decodes them).

extension ShareFetchResponse {
    func msgEncoded() -> [UInt8] {
        MsgWire.write { w in
            w.writeInt32(throttleTimeMs)
            w.writeInt16(errorCode)
            w.writeCompactNullableString(errorMessage)
            w.writeInt32(acquisitionLockTimeoutMs)
            w.writeArrayCount(responses.count, flexible: true)
            for topic in responses {
                w.writeUUID(topic.topicID)
                w.writeArrayCount(topic.partitions.count, flexible: true)
                for p in topic.partitions {
                    w.writeInt32(p.partitionIndex)
                    w.writeInt16(p.errorCode)
                    w.writeCompactNullableString(p.errorMessage)
                    w.writeInt16(p.acknowledgeErrorCode)
                    w.writeCompactNullableString(p.acknowledgeErrorMessage)
                    w.writeInt32(p.currentLeader.leaderID)
                    w.writeInt32(p.currentLeader.leaderEpoch)
                    w.writeEmptyTaggedFields()
                    w.writeNullableSizedBytes(p.records, flexible: true)
                    w.writeArrayCount(p.acquiredRecords.count, flexible: true)
                    for a in p.acquiredRecords {
                        w.writeInt64(a.firstOffset)
                        w.writeInt64(a.lastOffset)
                        w.writeInt16(a.deliveryCount)
                        w.writeEmptyTaggedFields()
                    }
                    w.writeEmptyTaggedFields()
                }
                w.writeEmptyTaggedFields()
            }
            msgWriteEndpoints(nodeEndpoints, into: &w)
            w.writeEmptyTaggedFields()
        }
    }

    static let msgSample = ShareFetchResponse(
        throttleTimeMs: 1, errorCode: 0, errorMessage: nil, acquisitionLockTimeoutMs: 30000,
        responses: [Topic(topicID: msgUUID, partitions: [
            Partition(partitionIndex: 0, records: [1, 2, 3],
                      acquiredRecords: [.init(firstOffset: 0, lastOffset: 4, deliveryCount: 1),
                                        .init(firstOffset: 7, lastOffset: 7, deliveryCount: 3)]),
            Partition(partitionIndex: 1, errorCode: 6, errorMessage: "moved", acknowledgeErrorCode: 121,
                      acknowledgeErrorMessage: "bad", currentLeader: .init(leaderID: 2, leaderEpoch: 9)),
        ])],
        nodeEndpoints: [.init(nodeID: 2, host: "h", port: 9092, rack: nil)])
}

extension ShareAcknowledgeResponse {
    func msgEncoded() -> [UInt8] {
        MsgWire.write { w in
            w.writeInt32(throttleTimeMs)
            w.writeInt16(errorCode)
            w.writeCompactNullableString(errorMessage)
            w.writeArrayCount(responses.count, flexible: true)
            for topic in responses {
                w.writeUUID(topic.topicID)
                w.writeArrayCount(topic.partitions.count, flexible: true)
                for p in topic.partitions {
                    w.writeInt32(p.partitionIndex)
                    w.writeInt16(p.errorCode)
                    w.writeCompactNullableString(p.errorMessage)
                    w.writeInt32(p.currentLeader.leaderID)
                    w.writeInt32(p.currentLeader.leaderEpoch)
                    w.writeEmptyTaggedFields()
                    w.writeEmptyTaggedFields()
                }
                w.writeEmptyTaggedFields()
            }
            msgWriteEndpoints(nodeEndpoints, into: &w)
            w.writeEmptyTaggedFields()
        }
    }

    static let msgSample = ShareAcknowledgeResponse(
        throttleTimeMs: 0, errorCode: 0, errorMessage: nil,
        responses: [Topic(topicID: msgUUID, partitions: [
            Partition(partitionIndex: 3), Partition(partitionIndex: 4, errorCode: 121, errorMessage: "x"),
        ])],
        nodeEndpoints: [])
}

extension ShareGroupDescribeResponse {
    func msgEncoded() -> [UInt8] {
        MsgWire.write { w in
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
                    w.writeCompactNullableString(m.rackID)
                    w.writeInt32(m.memberEpoch)
                    w.writeCompactString(m.clientID)
                    w.writeCompactString(m.clientHost)
                    w.writeArrayCount(m.subscribedTopicNames.count, flexible: true)
                    for name in m.subscribedTopicNames { w.writeCompactString(name) }
                    w.writeArrayCount(m.assignment.topicPartitions.count, flexible: true)
                    for t in m.assignment.topicPartitions {
                        w.writeUUID(t.topicID)
                        w.writeCompactString(t.topicName)
                        w.writeArrayCount(t.partitions.count, flexible: true)
                        for p in t.partitions { w.writeInt32(p) }
                        w.writeEmptyTaggedFields()
                    }
                    w.writeEmptyTaggedFields()
                    w.writeEmptyTaggedFields()
                }
                w.writeInt32(g.authorizedOperations)
                w.writeEmptyTaggedFields()
            }
            w.writeEmptyTaggedFields()
        }
    }

    static let msgSample = ShareGroupDescribeResponse(throttleTimeMs: 0, groups: [
        DescribedGroup(groupID: "g", groupState: "Stable", groupEpoch: 3, assignmentEpoch: 3, assignorName: "simple",
                       members: [Member(memberID: "m", rackID: "r", memberEpoch: 3, clientID: "c", clientHost: "/h",
                                        subscribedTopicNames: ["t"],
                                        assignment: .init(topicPartitions: [
                                            .init(topicID: msgUUID, topicName: "t", partitions: [0, 1]),
                                        ]))]),
        DescribedGroup(errorCode: 69, errorMessage: "gone", groupID: "x"),
    ])
}

private func msgWriteEndpoints(_ endpoints: [FetchResponse.NodeEndpoint], into w: inout ByteWriter) {
    w.writeArrayCount(endpoints.count, flexible: true)
    for e in endpoints {
        w.writeInt32(e.nodeID)
        w.writeCompactString(e.host)
        w.writeInt32(e.port)
        w.writeCompactNullableString(e.rack)
        w.writeEmptyTaggedFields()
    }
}

final class ShareGroupMessageTests: XCTestCase {
    private static let uuidBytes: [UInt8] = Array(1...16)

    // MARK: API keys and versions

    func testApiKeysAndVersions() {
        XCTAssertEqual(ShareGroupHeartbeatRequest.apiKey.rawValue, 76)
        XCTAssertEqual(ShareGroupDescribeRequest.apiKey.rawValue, 77)
        XCTAssertEqual(ShareFetchRequest.apiKey.rawValue, 78)
        XCTAssertEqual(ShareAcknowledgeRequest.apiKey.rawValue, 79)
        XCTAssertEqual(ApiKey.shareFetch.description, "ShareFetch")
        XCTAssertEqual(ApiKey.shareAcknowledge.description, "ShareAcknowledge")
        XCTAssertEqual(ApiKey.shareGroupHeartbeat.description, "ShareGroupHeartbeat")
        XCTAssertEqual(ApiKey.shareGroupDescribe.description, "ShareGroupDescribe")
        XCTAssertTrue(ShareFetchRequest.isFlexible(1))
        XCTAssertEqual(ShareFetchRequest.requestHeaderVersion(1), 2)
        XCTAssertEqual(ShareAcknowledgeRequest.responseHeaderVersion(1), 1)
        XCTAssertEqual(ShareGroupHeartbeatRequest.requestHeaderVersion(1), 2)
        XCTAssertEqual(ShareGroupDescribeRequest.responseHeaderVersion(1), 1)
    }

    func testNegotiationNamesTheMissingApi() {
        let table = ApiVersionTable([ApiVersionRange(apiKey: 1, minVersion: 4, maxVersion: 16)])
        XCTAssertThrowsError(try table.negotiate(ShareFetchRequest.self)) { error in
            let e = error as? UnsupportedVersionError
            XCTAssertEqual(e?.api, .shareFetch)
            XCTAssertNil(e?.brokerRange)
            XCTAssertTrue(String(describing: error).contains("ShareFetch"), "\(error)")
        }
        let mock = ApiVersionTable([ApiVersionRange(apiKey: 78, minVersion: 1, maxVersion: 1)])
        XCTAssertEqual(try mock.negotiate(ShareFetchRequest.self), 1)
        let early = ApiVersionTable([ApiVersionRange(apiKey: 76, minVersion: 0, maxVersion: 0)])
        XCTAssertThrowsError(try early.negotiate(ShareGroupHeartbeatRequest.self))
    }

    // MARK: Requests

    func testHeartbeatJoinRequest() {
        let request = ShareGroupHeartbeatRequest(groupID: "g", memberID: "m", memberEpoch: 0,
                                                 subscribedTopicNames: ["t"])
        XCTAssertEqual(MsgWire.encode(request, version: 1), [
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x00,  // member_epoch 0 (join)
            0x00,  // rack_id null
            0x02, 0x02, 0x74,  // subscribed_topic_names ["t"]
            0x00,  // tagged fields
        ])
    }

    func testHeartbeatLeaveRequestWithNullFields() {
        let request = ShareGroupHeartbeatRequest(groupID: "g", memberID: "m", memberEpoch: -1, rackID: "r")
        XCTAssertEqual(MsgWire.encode(request, version: 1), [
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m"
            0xff, 0xff, 0xff, 0xff,  // member_epoch -1 (leave)
            0x02, 0x72,  // rack_id "r"
            0x00,  // subscribed_topic_names null (unchanged)
            0x00,  // tagged fields
        ])
    }

    func testShareFetchRequestWithAcknowledgementsAndForgottenTopics() {
        let request = ShareFetchRequest(
            groupID: "g", memberID: "m", shareSessionEpoch: 2, maxWaitMs: 500, minBytes: 1, maxBytes: 1024,
            maxRecords: 10, batchSize: 5,
            topics: [.init(topicID: msgUUID, partitions: [
                .init(partitionIndex: 3, acknowledgementBatches: [
                    .init(firstOffset: 4, lastOffset: 6, type: .accept),
                    .init(firstOffset: 8, lastOffset: 9, acknowledgeTypes: [2, 3]),
                ]),
            ])],
            forgottenTopics: [.init(topicID: msgUUID, partitions: [7])])
        XCTAssertEqual(MsgWire.encode(request, version: 1), [
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x02,  // share_session_epoch 2
            0x00, 0x00, 0x01, 0xf4,  // max_wait_ms 500
            0x00, 0x00, 0x00, 0x01,  // min_bytes 1
            0x00, 0x00, 0x04, 0x00,  // max_bytes 1024
            0x00, 0x00, 0x00, 0x0a,  // max_records 10
            0x00, 0x00, 0x00, 0x05,  // batch_size 5
            0x02,  // topics: 1
        ] + Self.uuidBytes + [
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x03,  // partition_index 3
            0x03,  // acknowledgement_batches: 2
            0, 0, 0, 0, 0, 0, 0, 4,  // first_offset 4
            0, 0, 0, 0, 0, 0, 0, 6,  // last_offset 6
            0x02, 0x01,  // acknowledge_types [accept]
            0x00,  // batch tagged fields
            0, 0, 0, 0, 0, 0, 0, 8,  // first_offset 8
            0, 0, 0, 0, 0, 0, 0, 9,  // last_offset 9
            0x03, 0x02, 0x03,  // acknowledge_types [release, reject]
            0x00,  // batch tagged fields
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x02,  // forgotten_topics_data: 1
        ] + Self.uuidBytes + [
            0x02, 0x00, 0x00, 0x00, 0x07,  // partitions [7]
            0x00,  // forgotten topic tagged fields
            0x00,  // tagged fields
        ])
    }

    func testShareFetchOpenRequestWithNoTopics() {
        let request = ShareFetchRequest(groupID: nil, memberID: "m", shareSessionEpoch: -1, maxWaitMs: 0, minBytes: 0,
                                        maxBytes: 0, maxRecords: 0, batchSize: 0)
        XCTAssertEqual(MsgWire.encode(request, version: 1),
                       [0x00, 0x02, 0x6d, 0xff, 0xff, 0xff, 0xff] + [UInt8](repeating: 0, count: 20) + [0x01, 0x01, 0x00])
    }

    func testShareAcknowledgeRequest() {
        let request = ShareAcknowledgeRequest(
            groupID: "g", memberID: "m", shareSessionEpoch: 3,
            topics: [.init(topicID: msgUUID, partitions: [
                .init(partitionIndex: 0, acknowledgementBatches: [.init(firstOffset: 1, lastOffset: 1, type: .reject)]),
            ])])
        XCTAssertEqual(MsgWire.encode(request, version: 1), [
            0x02, 0x67,  // group_id "g"
            0x02, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x03,  // share_session_epoch 3
            0x02,  // topics: 1
        ] + Self.uuidBytes + [
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x02,  // acknowledgement_batches: 1
            0, 0, 0, 0, 0, 0, 0, 1,  // first_offset 1
            0, 0, 0, 0, 0, 0, 0, 1,  // last_offset 1
            0x02, 0x03,  // acknowledge_types [reject]
            0x00, 0x00, 0x00,  // batch, partition, topic tagged fields
            0x00,  // tagged fields
        ])
    }

    func testShareGroupDescribeRequest() {
        XCTAssertEqual(MsgWire.encode(ShareGroupDescribeRequest(groupIDs: ["a", "b"]), version: 1),
                       [0x03, 0x02, 0x61, 0x02, 0x62, 0x00, 0x00])
    }

    func testAcknowledgementRunsGroupConsecutiveOffsets() {
        let runs = ShareAcknowledgementBatch.runs([
            (0, .accept), (1, .accept), (2, .accept), (4, .release), (5, .reject), (6, .accept), (9, .accept),
        ])
        XCTAssertEqual(runs, [
            .init(firstOffset: 0, lastOffset: 2, type: .accept),
            .init(firstOffset: 4, lastOffset: 6, acknowledgeTypes: [2, 3, 1]),
            .init(firstOffset: 9, lastOffset: 9, type: .accept),
        ])
        XCTAssertEqual(ShareAcknowledgementBatch.runs([]), [])
        // The last offset there is: no overflow looking past it.
        XCTAssertEqual(ShareAcknowledgementBatch.runs([(.max - 1, .accept), (.max, .accept)]),
                       [.init(firstOffset: .max - 1, lastOffset: .max, type: .accept)])
    }

    // MARK: Responses

    func testHeartbeatResponseWithAssignment() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x02, 0x6d,  // member_id "m"
            0x00, 0x00, 0x00, 0x02,  // member_epoch 2
            0x00, 0x00, 0x13, 0x88,  // heartbeat_interval_ms 5000
            0x01,  // assignment present
            0x02,  // topic_partitions: 1
        ] + Self.uuidBytes + [
            0x02, 0x00, 0x00, 0x00, 0x00,  // partitions [0]
            0x00,  // topic tagged fields
            0x00,  // assignment tagged fields
            0x00,  // tagged fields
        ]
        let r = msgDecode(ShareGroupHeartbeatResponse.self, bytes, version: 1)
        XCTAssertEqual(r, ShareGroupHeartbeatResponse(
            memberID: "m", memberEpoch: 2, heartbeatIntervalMs: 5000,
            assignment: .init(topicPartitions: [.init(topicID: msgUUID, partitions: [0])])))
    }

    func testShareFetchResponseGolden() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms
            0x00, 0x00,  // error_code
            0x00,  // error_message null
            0x00, 0x00, 0x75, 0x30,  // acquisition_lock_timeout_ms 30000
            0x02,  // responses: 1
        ] + Self.uuidBytes + [
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x00, 0x00, 0x00,  // error_code 0, error_message null
            0x00, 0x00, 0x00,  // acknowledge_error_code 0, message null
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,  // current_leader -1/-1, tags
            0x03, 0xaa, 0xbb,  // records: 2 bytes
            0x02,  // acquired_records: 1
            0, 0, 0, 0, 0, 0, 0, 5,  // first_offset 5
            0, 0, 0, 0, 0, 0, 0, 9,  // last_offset 9
            0x00, 0x02,  // delivery_count 2
            0x00,  // acquired tagged fields
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x01,  // node_endpoints: 0
            0x00,  // tagged fields
        ]
        let r = msgDecode(ShareFetchResponse.self, bytes, version: 1)
        XCTAssertEqual(r, ShareFetchResponse(acquisitionLockTimeoutMs: 30000, responses: [
            .init(topicID: msgUUID, partitions: [
                .init(partitionIndex: 0, records: [0xaa, 0xbb],
                      acquiredRecords: [.init(firstOffset: 5, lastOffset: 9, deliveryCount: 2)]),
            ]),
        ]))
    }

    func testShareFetchResponseNullRecordsDecodeAsEmpty() {
        let bytes: [UInt8] = [
            0, 0, 0, 0, 0, 0, 0x00,  // throttle, error_code, error_message null
            0x00, 0x00, 0x03, 0xe8,  // acquisition_lock_timeout_ms 1000
            0x02,  // responses: 1
        ] + Self.uuidBytes + [
            0x02,  // partitions: 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x06, 0x02, 0x78,  // error_code 6 NOT_LEADER_OR_FOLLOWER, "x"
            0x00, 0x00, 0x00,  // acknowledge_error_code 0, message null
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0x00,  // current_leader 2 epoch 4, tags
            0x00,  // records null
            0x01,  // acquired_records: 0
            0x00, 0x00,  // partition, topic tagged fields
            0x02,  // node_endpoints: 1
            0x00, 0x00, 0x00, 0x02, 0x02, 0x68, 0x00, 0x00, 0x23, 0x84, 0x00, 0x00,  // 2 "h" 9092 null rack
            0x00,  // tagged fields
        ]
        let r = msgDecode(ShareFetchResponse.self, bytes, version: 1)
        XCTAssertEqual(r, ShareFetchResponse(acquisitionLockTimeoutMs: 1000, responses: [
            .init(topicID: msgUUID, partitions: [
                .init(partitionIndex: 1, errorCode: 6, errorMessage: "x", currentLeader: .init(leaderID: 2, leaderEpoch: 4)),
            ]),
        ], nodeEndpoints: [.init(nodeID: 2, host: "h", port: 9092, rack: nil)]))
    }

    func testShareAcknowledgeResponseGolden() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms
            0x00, 0x7a,  // error_code 122 SHARE_SESSION_NOT_FOUND
            0x02, 0x78,  // error_message "x"
            0x01,  // responses: 0
            0x01,  // node_endpoints: 0
            0x00,  // tagged fields
        ]
        let r = msgDecode(ShareAcknowledgeResponse.self, bytes, version: 1)
        XCTAssertEqual(r, ShareAcknowledgeResponse(errorCode: 122, errorMessage: "x"))
        XCTAssertEqual(KafkaErrorCode(rawValue: r.errorCode), .shareSessionNotFound)
    }

    func testRoundTrips() {
        XCTAssertEqual(msgDecode(ShareFetchResponse.self, ShareFetchResponse.msgSample.msgEncoded(), version: 1),
                       ShareFetchResponse.msgSample)
        XCTAssertEqual(msgDecode(ShareAcknowledgeResponse.self, ShareAcknowledgeResponse.msgSample.msgEncoded(),
                                 version: 1), ShareAcknowledgeResponse.msgSample)
        XCTAssertEqual(msgDecode(ShareGroupDescribeResponse.self, ShareGroupDescribeResponse.msgSample.msgEncoded(),
                                 version: 1), ShareGroupDescribeResponse.msgSample)
    }

    // MARK: Hostile input

    private static let cases: [MsgHostileCase] = [
        .make(ShareGroupHeartbeatResponse.self, 1, ConsumerGroupHeartbeatResponse.msgSample.msgEncoded(version: 1)),
        .make(ShareFetchResponse.self, 1, ShareFetchResponse.msgSample.msgEncoded()),
        .make(ShareAcknowledgeResponse.self, 1, ShareAcknowledgeResponse.msgSample.msgEncoded()),
        .make(ShareGroupDescribeResponse.self, 1, ShareGroupDescribeResponse.msgSample.msgEncoded()),
    ]

    func testValidSamplesDecodeCleanly() {
        for c in Self.cases {
            let (error, atEnd) = c.decode(c.valid)
            XCTAssertNil(error, c.label)
            XCTAssertTrue(atEnd, c.label)
        }
    }

    func testEveryTruncationFailsWithATypedError() {
        for c in Self.cases {
            for length in 0..<c.valid.count {
                let (error, _) = c.decode(Array(c.valid.prefix(length)))
                XCTAssertNotNil(error, "\(c.label): prefix \(length) of \(c.valid.count)")
            }
        }
    }

    func testRandomBytesAndMutationsNeverTrap() {
        var rng = MsgXorShift(seed: 0x5348_4152_45)
        var failures = 0
        for i in 0..<4000 {
            let c = Self.cases[i % Self.cases.count]
            var bytes = c.valid
            switch i % 3 {
            case 0:
                bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            default:
                let edges: [UInt8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = edges.randomElement(using: &rng)!
            }
            if c.decode(bytes).error != nil { failures += 1 }
        }
        XCTAssertGreaterThan(failures, 1000)
    }

    func testHugeCountsAreRejectedBeforeAllocating() {
        let varintCount: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x08]
        let head: [UInt8] = [0, 0, 0, 0, 0, 0, 0x00]
        XCTAssertEqual(MsgWire.decode(ShareFetchResponse.self, head + [0, 0, 0, 0] + varintCount, version: 1)
            .error?.kind, .invalidLength)
        XCTAssertEqual(MsgWire.decode(ShareAcknowledgeResponse.self, head + varintCount, version: 1).error?.kind,
                       .invalidLength)
        XCTAssertEqual(MsgWire.decode(ShareGroupDescribeResponse.self, [0, 0, 0, 0] + varintCount, version: 1)
            .error?.kind, .invalidLength)
        // One topic whose partitions claim a million entries.
        let topic = head + [0, 0, 0, 0, 0x02] + Self.uuidBytes + [0xc1, 0x84, 0x3d, 0x00]
        XCTAssertEqual(MsgWire.decode(ShareFetchResponse.self, topic, version: 1).error?.kind, .invalidLength)
    }
}
