import KlifeProtocol
import XCTest

/// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit codecs.
final class TransactionMessageTests: XCTestCase {
    // MARK: Helpers

    /// Every strict prefix of `bytes` must set the reader error without trapping.
    private func assertEveryTruncationFails<T: KafkaResponse>(
        _ type: T.Type, _ bytes: [UInt8], version: Int16, file: StaticString = #filePath, line: UInt = #line
    ) {
        for n in 0..<bytes.count {
            let (_, error, _) = MsgWire.decode(type, Array(bytes[0..<n]), version: version)
            XCTAssertNotNil(error, "\(T.self) v\(version) prefix \(n)", file: file, line: line)
        }
    }

    /// Decoding `bytes` must fail with `.invalidLength`.
    private func assertInvalidLength<T: KafkaResponse>(
        _ type: T.Type, _ bytes: [UInt8], version: Int16, file: StaticString = #filePath, line: UInt = #line
    ) {
        let (_, error, _) = MsgWire.decode(type, bytes, version: version)
        XCTAssertEqual(error?.kind, .invalidLength, "\(T.self) v\(version)", file: file, line: line)
    }

    private static let producerID: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 7]  // producer_id INT64 7

    // MARK: Metadata

    func testVersionsAndKeys() {
        XCTAssertEqual(AddPartitionsToTxnRequest.apiKey.rawValue, 24)
        XCTAssertEqual(AddPartitionsToTxnRequest.supportedVersions, 0...3)
        XCTAssertEqual(AddPartitionsToTxnRequest.firstFlexibleVersion, 3)
        XCTAssertEqual(AddOffsetsToTxnRequest.apiKey.rawValue, 25)
        XCTAssertEqual(AddOffsetsToTxnRequest.supportedVersions, 0...3)
        XCTAssertEqual(AddOffsetsToTxnRequest.firstFlexibleVersion, 3)
        XCTAssertEqual(EndTxnRequest.apiKey.rawValue, 26)
        XCTAssertEqual(EndTxnRequest.supportedVersions, 0...3)
        XCTAssertEqual(EndTxnRequest.firstFlexibleVersion, 3)
        XCTAssertEqual(TxnOffsetCommitRequest.apiKey.rawValue, 28)
        XCTAssertEqual(TxnOffsetCommitRequest.supportedVersions, 0...3)
        XCTAssertEqual(TxnOffsetCommitRequest.firstFlexibleVersion, 3)
        XCTAssertEqual(EndTxnRequest.requestHeaderVersion(2), 1)
        XCTAssertEqual(EndTxnRequest.requestHeaderVersion(3), 2)
        XCTAssertEqual(EndTxnRequest.responseHeaderVersion(3), 1)
    }

    // MARK: AddPartitionsToTxn

    private let addPartitions = AddPartitionsToTxnRequest(
        transactionalID: "tx", producerID: 7, producerEpoch: 3,
        topics: [.init(name: "t", partitions: [0, 2])])

    func testAddPartitionsToTxnRequestV0() {
        XCTAssertEqual(MsgWire.encode(addPartitions, version: 0), [
            0x00, 0x02, 0x74, 0x78,  // transactional_id: STRING "tx"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name: STRING "t"
            0x00, 0x00, 0x00, 0x02,  // partitions: ARRAY 2
            0x00, 0x00, 0x00, 0x00,  // partition 0
            0x00, 0x00, 0x00, 0x02,  // partition 2
        ])
    }

    func testAddPartitionsToTxnRequestV3() {
        XCTAssertEqual(MsgWire.encode(addPartitions, version: 3), [
            0x03, 0x74, 0x78,  // transactional_id: COMPACT_STRING "tx" (length+1 = 3)
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name: COMPACT_STRING "t"
            0x03,  // partitions: COMPACT_ARRAY 2
            0x00, 0x00, 0x00, 0x00,  // partition 0
            0x00, 0x00, 0x00, 0x02,  // partition 2
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ])
    }

    private static let addPartitionsResponseV0: [UInt8] = [
        0x00, 0x00, 0x00, 0x05,  // throttle_time_ms 5
        0x00, 0x00, 0x00, 0x01,  // results_by_topic: ARRAY 1
        0x00, 0x01, 0x74,  // name "t"
        0x00, 0x00, 0x00, 0x02,  // results_by_partition: ARRAY 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // partition 0, error 0
        0x00, 0x00, 0x00, 0x02, 0x00, 0x33,  // partition 2, error 51 CONCURRENT_TRANSACTIONS
    ]

    private static let addPartitionsResponseV3: [UInt8] = [
        0x00, 0x00, 0x00, 0x05,  // throttle_time_ms 5
        0x02,  // results_by_topic: COMPACT_ARRAY 1
        0x02, 0x74,  // name "t"
        0x03,  // results_by_partition: COMPACT_ARRAY 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // partition 0, error 0, tags
        0x00, 0x00, 0x00, 0x02, 0x00, 0x33,  // partition 2, error 51
        0x01, 0x05, 0x01, 0xaa,  // partition tags: 1 unknown field (tag 5, size 1) — skipped
        0x00,  // topic tagged fields
        0x00,  // tagged fields
    ]

    private static let addPartitionsExpected = AddPartitionsToTxnResponse(throttleTimeMs: 5, results: [
        .init(name: "t", partitions: [.init(partitionIndex: 0, errorCode: 0), .init(partitionIndex: 2, errorCode: 51)]),
    ])

    func testAddPartitionsToTxnResponseV0AndV3() {
        let v0 = msgDecode(AddPartitionsToTxnResponse.self, Self.addPartitionsResponseV0, version: 0)
        let v3 = msgDecode(AddPartitionsToTxnResponse.self, Self.addPartitionsResponseV3, version: 3)
        for r in [v0, v3] {
            XCTAssertEqual(r.throttleTimeMs, 5)
            XCTAssertEqual(r.results.count, 1)
            XCTAssertEqual(r.results.first?.name, "t")
            XCTAssertEqual(r.results.first?.partitions.map(\.partitionIndex), [0, 2])
            XCTAssertEqual(r.results.first?.partitions.map(\.errorCode), [0, 51])
            XCTAssertEqual(r, Self.addPartitionsExpected)
        }
    }

    func testAddPartitionsToTxnResponseTruncations() {
        assertEveryTruncationFails(AddPartitionsToTxnResponse.self, Self.addPartitionsResponseV0, version: 0)
        assertEveryTruncationFails(AddPartitionsToTxnResponse.self, Self.addPartitionsResponseV3, version: 3)
    }

    func testAddPartitionsToTxnResponseHostileCounts() {
        // Topic count 0x7fffffff.
        assertInvalidLength(AddPartitionsToTxnResponse.self, [0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff], version: 0)
        // Negative topic count -2.
        assertInvalidLength(AddPartitionsToTxnResponse.self, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe], version: 0)
        // Compact topic count 2^32-2.
        assertInvalidLength(AddPartitionsToTxnResponse.self, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f], version: 3)
        // Sane topic, hostile partition count 1,000,000.
        assertInvalidLength(AddPartitionsToTxnResponse.self,
                            [0, 0, 0, 0, 0x02, 0x02, 0x74, 0xc1, 0x84, 0x3d, 0, 0], version: 3)
    }

    // MARK: AddOffsetsToTxn

    private let addOffsets = AddOffsetsToTxnRequest(transactionalID: "tx", producerID: 7, producerEpoch: 3, groupID: "g")

    func testAddOffsetsToTxnRequestV0() {
        XCTAssertEqual(MsgWire.encode(addOffsets, version: 0), [
            0x00, 0x02, 0x74, 0x78,  // transactional_id: STRING "tx"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x00, 0x01, 0x67,  // group_id: STRING "g"
        ])
    }

    func testAddOffsetsToTxnRequestV3() {
        XCTAssertEqual(MsgWire.encode(addOffsets, version: 3), [
            0x03, 0x74, 0x78,  // transactional_id: COMPACT_STRING "tx"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x02, 0x67,  // group_id: COMPACT_STRING "g"
            0x00,  // tagged fields
        ])
    }

    private static let errorResponseV0: [UInt8] = [
        0x00, 0x00, 0x00, 0x05,  // throttle_time_ms 5
        0x00, 0x2f,  // error_code 47 INVALID_PRODUCER_EPOCH
    ]
    private static let errorResponseV3: [UInt8] = errorResponseV0 + [0x00]  // + tagged fields

    func testAddOffsetsToTxnResponseV0AndV3() {
        for (bytes, version) in [(Self.errorResponseV0, Int16(0)), (Self.errorResponseV3, Int16(3))] {
            let r = msgDecode(AddOffsetsToTxnResponse.self, bytes, version: version)
            XCTAssertEqual(r.throttleTimeMs, 5)
            XCTAssertEqual(r.errorCode, 47)
            XCTAssertEqual(r, AddOffsetsToTxnResponse(throttleTimeMs: 5, errorCode: 47))
        }
    }

    func testAddOffsetsToTxnResponseTruncations() {
        assertEveryTruncationFails(AddOffsetsToTxnResponse.self, Self.errorResponseV0, version: 0)
        assertEveryTruncationFails(AddOffsetsToTxnResponse.self, Self.errorResponseV3, version: 3)
    }

    func testAddOffsetsToTxnResponseHostileTaggedFieldCount() {
        // No arrays here; an absurd tagged-field count is the length to reject.
        assertInvalidLength(AddOffsetsToTxnResponse.self, Self.errorResponseV0 + [0xff, 0x7f], version: 3)
    }

    // MARK: EndTxn

    func testEndTxnRequestV0Commit() {
        let request = EndTxnRequest(transactionalID: "tx", producerID: 7, producerEpoch: 3, committed: true)
        XCTAssertEqual(MsgWire.encode(request, version: 0), [
            0x00, 0x02, 0x74, 0x78,  // transactional_id: STRING "tx"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x01,  // committed: true
        ])
    }

    func testEndTxnRequestV3Abort() {
        let request = EndTxnRequest(transactionalID: "tx", producerID: 7, producerEpoch: 3, committed: false)
        XCTAssertEqual(MsgWire.encode(request, version: 3), [
            0x03, 0x74, 0x78,  // transactional_id: COMPACT_STRING "tx"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x00,  // committed: false (abort)
            0x00,  // tagged fields
        ])
    }

    func testEndTxnResponseV0AndV3() {
        for (bytes, version) in [(Self.errorResponseV0, Int16(0)), (Self.errorResponseV3, Int16(3))] {
            let r = msgDecode(EndTxnResponse.self, bytes, version: version)
            XCTAssertEqual(r.throttleTimeMs, 5)
            XCTAssertEqual(r.errorCode, 47)
            XCTAssertEqual(r, EndTxnResponse(throttleTimeMs: 5, errorCode: 47))
        }
    }

    func testEndTxnResponseTruncations() {
        assertEveryTruncationFails(EndTxnResponse.self, Self.errorResponseV0, version: 0)
        assertEveryTruncationFails(EndTxnResponse.self, Self.errorResponseV3, version: 3)
    }

    func testEndTxnResponseHostileTaggedFieldCount() {
        assertInvalidLength(EndTxnResponse.self, Self.errorResponseV0 + [0xff, 0x7f], version: 3)
    }

    // MARK: TxnOffsetCommit

    func testTxnOffsetCommitRequestV0() {
        let request = TxnOffsetCommitRequest(
            transactionalID: "tx", groupID: "g", producerID: 7, producerEpoch: 3,
            topics: [.init(name: "t", partitions: [.init(partitionIndex: 1, committedOffset: 100, committedLeaderEpoch: 4)])])
        XCTAssertEqual(MsgWire.encode(request, version: 0), [
            0x00, 0x02, 0x74, 0x78,  // transactional_id: STRING "tx"
            0x00, 0x01, 0x67,  // group_id: STRING "g"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: ARRAY 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0, 0, 0, 0, 0, 0, 0, 0x64,  // committed_offset 100 (no leader epoch before v2)
            0xff, 0xff,  // committed_metadata: null NULLABLE_STRING
        ])
    }

    func testTxnOffsetCommitRequestV2AddsLeaderEpoch() {
        let request = TxnOffsetCommitRequest(
            transactionalID: "tx", groupID: "g", producerID: 7, producerEpoch: 3, generationID: 9, memberID: "m",
            topics: [.init(name: "t", partitions: [.init(partitionIndex: 1, committedOffset: 100)])])
        XCTAssertEqual(MsgWire.encode(request, version: 2), [
            0x00, 0x02, 0x74, 0x78,  // transactional_id "tx"
            0x00, 0x01, 0x67,  // group_id "g"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3 (no group fields before v3)
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x01,  // partitions: ARRAY 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0, 0, 0, 0, 0, 0, 0, 0x64,  // committed_offset 100
            0xff, 0xff, 0xff, 0xff,  // committed_leader_epoch -1 (default)
            0xff, 0xff,  // committed_metadata null
        ])
    }

    func testTxnOffsetCommitRequestV3() {
        let request = TxnOffsetCommitRequest(
            transactionalID: "tx", groupID: "g", producerID: 7, producerEpoch: 3,
            generationID: 5, memberID: "m", groupInstanceID: "i",
            topics: [.init(name: "t", partitions: [
                .init(partitionIndex: 1, committedOffset: 100, committedLeaderEpoch: 4, committedMetadata: "md"),
            ])])
        XCTAssertEqual(MsgWire.encode(request, version: 3), [
            0x03, 0x74, 0x78,  // transactional_id: COMPACT_STRING "tx"
            0x02, 0x67,  // group_id: COMPACT_STRING "g"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x00, 0x00, 0x00, 0x05,  // generation_id 5
            0x02, 0x6d,  // member_id: COMPACT_STRING "m"
            0x02, 0x69,  // group_instance_id: COMPACT_NULLABLE_STRING "i"
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x02,  // partitions: COMPACT_ARRAY 1
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0, 0, 0, 0, 0, 0, 0, 0x64,  // committed_offset 100
            0x00, 0x00, 0x00, 0x04,  // committed_leader_epoch 4
            0x03, 0x6d, 0x64,  // committed_metadata: COMPACT_NULLABLE_STRING "md"
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ])
    }

    func testTxnOffsetCommitRequestV3Defaults() {
        let request = TxnOffsetCommitRequest(transactionalID: "tx", groupID: "g", producerID: 7, producerEpoch: 3, topics: [])
        XCTAssertEqual(MsgWire.encode(request, version: 3), [
            0x03, 0x74, 0x78,  // transactional_id "tx"
            0x02, 0x67,  // group_id "g"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0xff, 0xff, 0xff, 0xff,  // generation_id -1
            0x01,  // member_id: "" (length+1 = 1)
            0x00,  // group_instance_id: null
            0x01,  // topics: COMPACT_ARRAY 0
            0x00,  // tagged fields
        ])
    }

    /// KIP-848: a consumer-protocol member sends its member epoch as the generation, its
    /// generated (UUID) member id, and no instance id.
    func testTxnOffsetCommitRequestV3WithMemberEpoch() {
        let request = TxnOffsetCommitRequest(
            transactionalID: "tx", groupID: "g", producerID: 7, producerEpoch: 3,
            generationID: 0x0102, memberID: "ab",
            topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 1)])])
        XCTAssertEqual(MsgWire.encode(request, version: 3), [
            0x03, 0x74, 0x78,  // transactional_id "tx"
            0x02, 0x67,  // group_id "g"
        ] + Self.producerID + [
            0x00, 0x03,  // producer_epoch 3
            0x00, 0x00, 0x01, 0x02,  // generation_id: member epoch 258
            0x03, 0x61, 0x62,  // member_id: COMPACT_STRING "ab"
            0x00,  // group_instance_id: null
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x02,  // partitions: COMPACT_ARRAY 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0, 0, 0, 0, 0, 0, 0, 0x01,  // committed_offset 1
            0xff, 0xff, 0xff, 0xff,  // committed_leader_epoch -1
            0x00,  // committed_metadata: null
            0x00,  // partition tagged fields
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ])
    }

    /// The group fields need v3: a broker offering more gets v3, one offering less gets its
    /// highest (the fields are then not sent, and no generation fences).
    func testTxnOffsetCommitVersionNegotiation() throws {
        let modern = ApiVersionTable([ApiVersionRange(apiKey: 28, minVersion: 0, maxVersion: 5)])
        XCTAssertEqual(try modern.negotiate(TxnOffsetCommitRequest.self), 3)
        let old = ApiVersionTable([ApiVersionRange(apiKey: 28, minVersion: 0, maxVersion: 2)])
        XCTAssertEqual(try old.negotiate(TxnOffsetCommitRequest.self), 2)
    }

    private static let txnOffsetCommitResponseV0: [UInt8] = [
        0x00, 0x00, 0x00, 0x07,  // throttle_time_ms 7
        0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
        0x00, 0x01, 0x74,  // name "t"
        0x00, 0x00, 0x00, 0x02,  // partitions: ARRAY 2
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00,  // partition 1, error 0
        0x00, 0x00, 0x00, 0x03, 0x00, 0x19,  // partition 3, error 25 UNKNOWN_MEMBER_ID
    ]

    private static let txnOffsetCommitResponseV3: [UInt8] = [
        0x00, 0x00, 0x00, 0x07,  // throttle_time_ms 7
        0x02,  // topics: COMPACT_ARRAY 1
        0x02, 0x74,  // name "t"
        0x03,  // partitions: COMPACT_ARRAY 2
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // partition 1, error 0, tags
        0x00, 0x00, 0x00, 0x03, 0x00, 0x19, 0x00,  // partition 3, error 25, tags
        0x00,  // topic tagged fields
        0x01, 0x00, 0x02, 0xbe, 0xef,  // tagged fields: 1 unknown field (tag 0, size 2) — skipped
    ]

    func testTxnOffsetCommitResponseV0AndV3() {
        let v0 = msgDecode(TxnOffsetCommitResponse.self, Self.txnOffsetCommitResponseV0, version: 0)
        let v3 = msgDecode(TxnOffsetCommitResponse.self, Self.txnOffsetCommitResponseV3, version: 3)
        for r in [v0, v3] {
            XCTAssertEqual(r.throttleTimeMs, 7)
            XCTAssertEqual(r.topics.count, 1)
            XCTAssertEqual(r.topics.first?.name, "t")
            XCTAssertEqual(r.topics.first?.partitions.map(\.partitionIndex), [1, 3])
            XCTAssertEqual(r.topics.first?.partitions.map(\.errorCode), [0, 25])
            XCTAssertEqual(r, TxnOffsetCommitResponse(throttleTimeMs: 7, topics: [
                .init(name: "t", partitions: [.init(partitionIndex: 1), .init(partitionIndex: 3, errorCode: 25)]),
            ]))
        }
    }

    func testTxnOffsetCommitResponseTruncations() {
        assertEveryTruncationFails(TxnOffsetCommitResponse.self, Self.txnOffsetCommitResponseV0, version: 0)
        assertEveryTruncationFails(TxnOffsetCommitResponse.self, Self.txnOffsetCommitResponseV3, version: 3)
    }

    func testTxnOffsetCommitResponseHostileCounts() {
        assertInvalidLength(TxnOffsetCommitResponse.self, [0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff], version: 0)
        assertInvalidLength(TxnOffsetCommitResponse.self, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f], version: 3)
        // Sane topic, partition count 0x7fffffff.
        assertInvalidLength(TxnOffsetCommitResponse.self,
                            [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0x74, 0x7f, 0xff, 0xff, 0xff], version: 0)
    }
}
