import XCTest
import KlifeProtocol

final class ProduceTests: XCTestCase {
    private func body(_ request: ProduceRequest, version: Int16) -> [UInt8] {
        RBBytes.written { request.encode(into: &$0, version: version) }
    }

    private func decodeResponse(_ bytes: [UInt8], version: Int16) throws -> ProduceResponse {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let response = try KafkaFrame.decodeResponse(ProduceRequest.self, from: &r, version: version)
            XCTAssertTrue(r.isAtEnd, "v\(version): \(r.remaining) bytes left")
            return response
        }
    }

    // MARK: Requests

    func testRequestV3GoldenBytes() {
        let request = ProduceRequest(transactionalID: nil, acks: -1, timeoutMs: 30_000, topics: [
            .init(name: "t", partitions: [.init(index: 0, records: [0xAA, 0xBB, 0xCC])]),
        ])
        let expected: [UInt8] = [
            0xFF, 0xFF,             // transactional_id: null STRING
            0xFF, 0xFF,             // acks -1
            0x00, 0x00, 0x75, 0x30, // timeout_ms 30000
            0x00, 0x00, 0x00, 0x01, // topics: 1
            0x00, 0x01, 0x74,       //   name "t"
            0x00, 0x00, 0x00, 0x01, //   partitions: 1
            0x00, 0x00, 0x00, 0x00, //     index 0
            0x00, 0x00, 0x00, 0x03, //     records: 3 bytes
            0xAA, 0xBB, 0xCC,
        ]
        XCTAssertEqual(body(request, version: 3), expected)
        XCTAssertEqual(body(request, version: 8), expected, "v3-v8 share a layout")
    }

    func testRequestV9GoldenBytes() {
        let blob = (0..<200).map { UInt8(truncatingIfNeeded: $0) }
        let request = ProduceRequest(transactionalID: "tx", acks: 1, timeoutMs: 1000, topics: [
            .init(name: "t", partitions: [.init(index: 1, records: blob), .init(index: 2, records: [])]),
        ])
        var expected: [UInt8] = [
            0x03, 0x74, 0x78,       // transactional_id: COMPACT_NULLABLE_STRING "tx" (len+1)
            0x00, 0x01,             // acks 1
            0x00, 0x00, 0x03, 0xE8, // timeout_ms 1000
            0x02,                   // topics: COMPACT_ARRAY 1
            0x02, 0x74,             //   name: COMPACT_STRING "t"
            0x03,                   //   partitions: 2
            0x00, 0x00, 0x00, 0x01, //     index 1
            0xC9, 0x01,             //     records: COMPACT_NULLABLE_BYTES 200 (varint 201)
        ]
        expected += blob
        expected += [
            0x00,                   //     partition tagged fields
            0x00, 0x00, 0x00, 0x02, //     index 2
            0x01,                   //     records: 0 bytes
            0x00,                   //     partition tagged fields
            0x00,                   //   topic tagged fields
            0x00,                   // body tagged fields
        ]
        XCTAssertEqual(body(request, version: 9), expected)
        XCTAssertEqual(body(request, version: 12), expected, "v9-v12 share a layout")
    }

    /// A two-topic request, built both ways.
    private struct Spec {
        var topic: String
        var partitions: [(index: Int32, batches: [[(timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])]])]
    }

    private let specs: [Spec] = [
        Spec(topic: "orders", partitions: [
            (0, [[(1000, Array("k".utf8), Array("v".utf8), [])]]),
            (3, [[(1000, nil, [UInt8](repeating: 9, count: 150), [RecordHeader(key: "trace", value: [1, 2])]),
                  (1003, [1], nil, [])],
                 [(2000, nil, [0], [])]]),
        ]),
        Spec(topic: "événements", partitions: [
            (7, [[(5, nil, nil, [RecordHeader(key: "n", value: nil)])]]),
        ]),
    ]

    func testStreamingWriterMatchesModelFrameAtEveryVersion() throws {
        for version in ProduceRequest.supportedVersions {
            // Streaming: sizes computed up front from RecordBatchLayout.
            var w = ByteWriter(capacity: 32)
            let start = KafkaFrame.beginRequest(.produce, version: version, correlationID: 77, clientID: "klife",
                                                flexible: ProduceRequest.isFlexible(version), into: &w)
            var writer = ProduceRequestWriter(writer: &w, version: version, transactionalID: nil, acks: -1,
                                              timeoutMs: 1500, topicCount: specs.count)
            for spec in specs {
                writer.beginTopic(into: &w, name: spec.topic, partitionCount: spec.partitions.count)
                for partition in spec.partitions {
                    var size = 0
                    for batch in partition.batches {
                        size += RecordBatchLayout.headerSize
                        for (i, r) in batch.enumerated() {
                            size += RecordBatchLayout.recordSize(
                                offsetDelta: Int32(i), timestampDelta: r.timestamp - batch[0].timestamp,
                                keyCount: r.key?.count, valueCount: r.value?.count, headers: r.headers)
                        }
                    }
                    writer.beginPartition(into: &w, index: partition.index, recordsByteCount: size)
                    for batch in partition.batches {
                        var enc = RecordBatchEncoder(writer: &w, baseTimestamp: batch[0].timestamp)
                        for r in batch {
                            enc.append(into: &w, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers)
                        }
                        enc.finish(into: &w)
                    }
                    writer.endPartition(into: &w)
                }
                writer.endTopic(into: &w)
            }
            writer.finish(into: &w)
            let total = KafkaFrame.endRequest(start: start, into: &w)
            XCTAssertEqual(total, w.count)

            // Model: batches pre-encoded separately.
            let model = ProduceRequest(transactionalID: nil, acks: -1, timeoutMs: 1500, topics: specs.map { spec in
                .init(name: spec.topic, partitions: spec.partitions.map { p in
                    .init(index: p.index, records: p.batches.flatMap {
                        RecordBatchEncoder.encode(baseTimestamp: $0[0].timestamp, records: $0)
                    })
                })
            })
            var m = ByteWriter(capacity: 32)
            KafkaFrame.encodeRequest(model, version: version, correlationID: 77, clientID: "klife", into: &m)
            XCTAssertEqual(w.bytes, m.bytes, "v\(version)")

            // The overhead helpers add up to the body size.
            let headerSize = 4 + 2 + 2 + 4 + 2 + 5 + (ProduceRequest.isFlexible(version) ? 1 : 0)
            var predicted = ProduceRequestWriter.bodyPrefixSize(version: version, transactionalID: nil,
                                                                topicCount: model.topics.count)
            for topic in model.topics {
                predicted += ProduceRequestWriter.topicOverhead(version: version, name: topic.name,
                                                                partitionCount: topic.partitions.count)
                for p in topic.partitions {
                    predicted += ProduceRequestWriter.partitionOverhead(version: version,
                                                                        recordsByteCount: p.records.count)
                        + p.records.count
                }
            }
            predicted += ProduceRequestWriter.bodySuffixSize(version: version)
            XCTAssertEqual(headerSize + predicted, m.count, "v\(version)")

            // The embedded broker's side decodes what was sent, batches included.
            let decoded = try m.withUnsafeBytes { raw -> ProduceRequest in
                var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[headerSize...]))
                let request = ProduceRequest(from: &r, version: version)
                if let error = r.error { throw error }
                XCTAssertTrue(r.isAtEnd)
                return request
            }
            XCTAssertEqual(decoded, model)
            let batches = try RecordBatchDecoder.decode(decoded.topics[0].partitions[1].records).batches
            XCTAssertEqual(batches.map { $0.records.count }, [2, 1])
        }
    }

    // MARK: Responses

    static let responseV3: [UInt8] = [
        0x00, 0x00, 0x00, 0x01,                         // topics: 1
        0x00, 0x01, 0x74,                               //   name "t"
        0x00, 0x00, 0x00, 0x01,                         //   partitions: 1
        0x00, 0x00, 0x00, 0x00,                         //     index 0
        0x00, 0x00,                                     //     error_code 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A, //     base_offset 42
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, //     log_append_time_ms -1
        0x00, 0x00, 0x00, 0x05,                         // throttle_time_ms 5
    ]

    static let responseV8: [UInt8] = [0, 0, 0, 1, 0, 1, 0x74, 0, 0, 0, 2]  // topics 1, "t", partitions 2
        + RBBytes.i32(0) + RBBytes.i16(0) + RBBytes.i64(100)            // p0: index, error, base_offset
        + RBBytes.i64(1_700_000_000_000) + RBBytes.i64(7)               //     log_append_time, log_start_offset
        + RBBytes.i32(0) + RBBytes.i16(-1)                              //     record_errors [], error_message null
        + RBBytes.i32(1) + RBBytes.i16(87) + RBBytes.i64(-1)            // p1: index 1, INVALID_RECORD, -1
        + RBBytes.i64(-1) + RBBytes.i64(-1)                             //     log_append_time, log_start_offset
        + RBBytes.i32(2)                                                //     record_errors: 2
        + RBBytes.i32(3) + RBBytes.i16(3) + RBBytes.utf8("bad")         //       batch_index 3, "bad"
        + RBBytes.i32(7) + RBBytes.i16(-1)                              //       batch_index 7, null
        + RBBytes.i16(3) + RBBytes.utf8("msg")                          //     error_message "msg"
        + RBBytes.i32(0)                                                // throttle_time_ms 0

    static let responseV9: [UInt8] = [0x02, 0x02, 0x74, 0x02]           // topics 1, "t", partitions 1
        + RBBytes.i32(0) + RBBytes.i16(6) + RBBytes.i64(-1)             // index 0, NOT_LEADER_OR_FOLLOWER, -1
        + RBBytes.i64(-1) + RBBytes.i64(-1)                             // log_append_time, log_start_offset
        + [0x02] + RBBytes.i32(1) + [0x02, 0x78, 0x00]                  // record_errors: [(1, "x")] + tags
        + [0x02, 0x6D]                                                  // error_message "m"
        + [0x00, 0x00]                                                  // partition tags, topic tags
        + RBBytes.i32(10) + [0x00]                                      // throttle 10, body tags

    static let responseV10: [UInt8] = [0x02, 0x02, 0x74, 0x02]          // topics 1, "t", partitions 1
        + RBBytes.i32(0) + RBBytes.i16(6) + RBBytes.i64(-1) + RBBytes.i64(-1) + RBBytes.i64(-1)
        + [0x01, 0x00]                                                  // record_errors [], error_message null
        + [0x02]                                                        // partition tags: 2 fields
        + [0x00, 0x09] + RBBytes.i32(3) + RBBytes.i32(11) + [0x00]      //   tag 0 CurrentLeader(3, 11)
        + [0x07, 0x02, 0xAB, 0xCD]                                      //   tag 7 unknown, skipped
        + [0x00]                                                        // topic tags
        + RBBytes.i32(0)                                                // throttle 0
        + [0x01, 0x00, 0x0E]                                            // body tags: tag 0 NodeEndpoints, 14 bytes
        + [0x02] + RBBytes.i32(3) + [0x03, 0x62, 0x33]                  //   [(3, "b3",
        + RBBytes.i32(9092) + [0x00, 0x00]                              //     9092, rack null) + tags]

    func testResponseV3() throws {
        let r = try decodeResponse(Self.responseV3, version: 3)
        XCTAssertEqual(r.throttleTimeMs, 5)
        XCTAssertEqual(r.topics.count, 1)
        XCTAssertEqual(r.topics[0].name, "t")
        let p = r.topics[0].partitions
        XCTAssertEqual(p, [.init(index: 0, errorCode: 0, baseOffset: 42, logAppendTimeMs: -1, logStartOffset: -1,
                                 recordErrors: [], errorMessage: nil, currentLeader: nil)])
        XCTAssertEqual(r.nodeEndpoints, [])
    }

    func testResponseV8() throws {
        let r = try decodeResponse(Self.responseV8, version: 8)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.topics.map(\.name), ["t"])
        let p = r.topics[0].partitions
        XCTAssertEqual(p.count, 2)
        XCTAssertEqual(p[0].index, 0)
        XCTAssertEqual(p[0].errorCode, 0)
        XCTAssertEqual(p[0].baseOffset, 100)
        XCTAssertEqual(p[0].logAppendTimeMs, 1_700_000_000_000)
        XCTAssertEqual(p[0].logStartOffset, 7)
        XCTAssertEqual(p[0].recordErrors, [])
        XCTAssertNil(p[0].errorMessage)
        XCTAssertEqual(p[1].index, 1)
        XCTAssertEqual(p[1].errorCode, 87)
        XCTAssertEqual(p[1].baseOffset, -1)
        XCTAssertEqual(p[1].logAppendTimeMs, -1)
        XCTAssertEqual(p[1].logStartOffset, -1)
        XCTAssertEqual(p[1].recordErrors, [.init(batchIndex: 3, message: "bad"), .init(batchIndex: 7, message: nil)])
        XCTAssertEqual(p[1].errorMessage, "msg")
        XCTAssertNil(p[1].currentLeader)
    }

    func testResponseV9() throws {
        let r = try decodeResponse(Self.responseV9, version: 9)
        XCTAssertEqual(r, ProduceResponse(topics: [.init(name: "t", partitions: [
            .init(index: 0, errorCode: 6, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1,
                  recordErrors: [.init(batchIndex: 1, message: "x")], errorMessage: "m", currentLeader: nil),
        ])], throttleTimeMs: 10, nodeEndpoints: []))
    }

    func testResponseV10TaggedFields() throws {
        for version: Int16 in [10, 11, 12] {
            let r = try decodeResponse(Self.responseV10, version: version)
            XCTAssertEqual(r, ProduceResponse(topics: [.init(name: "t", partitions: [
                .init(index: 0, errorCode: 6, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1,
                      recordErrors: [], errorMessage: nil, currentLeader: .init(leaderID: 3, leaderEpoch: 11)),
            ])], throttleTimeMs: 0, nodeEndpoints: [.init(nodeID: 3, host: "b3", port: 9092, rack: nil)]))
        }
    }

    func testResponseTruncationSweep() {
        let cases: [([UInt8], Int16)] = [(Self.responseV3, 3), (Self.responseV8, 8), (Self.responseV9, 9),
                                         (Self.responseV10, 10)]
        for (bytes, version) in cases {
            for cut in 0..<bytes.count {
                let prefix = Array(bytes[0..<cut])
                XCTAssertThrowsError(try decodeResponse(prefix, version: version), "v\(version) cut \(cut)") { error in
                    let kind = (error as? DecodeError)?.kind
                    XCTAssertTrue(kind == .truncated || kind == .invalidLength, "v\(version) cut \(cut): \(error)")
                }
            }
        }
    }

    func testResponseEncodeRoundTripAtEveryVersion() throws {
        let full = ProduceResponse(topics: [
            .init(name: "a", partitions: [
                .init(index: 0, errorCode: 0, baseOffset: 10, logAppendTimeMs: 99, logStartOffset: 4,
                      recordErrors: [.init(batchIndex: 2, message: "why")], errorMessage: "because",
                      currentLeader: .init(leaderID: 1, leaderEpoch: 2)),
                .init(index: 1, errorCode: 6, baseOffset: -1),
            ]),
            .init(name: "b", partitions: []),
        ], throttleTimeMs: 3, nodeEndpoints: [.init(nodeID: 1, host: "h", port: 1, rack: "r")])
        for version in ProduceRequest.supportedVersions {
            var expected = full
            for t in expected.topics.indices {
                for p in expected.topics[t].partitions.indices {
                    if version < 5 { expected.topics[t].partitions[p].logStartOffset = -1 }
                    if version < 8 {
                        expected.topics[t].partitions[p].recordErrors = []
                        expected.topics[t].partitions[p].errorMessage = nil
                    }
                    if version < 10 { expected.topics[t].partitions[p].currentLeader = nil }
                }
            }
            if version < 10 { expected.nodeEndpoints = [] }
            let bytes = RBBytes.written { full.encode(into: &$0, version: version) }
            XCTAssertEqual(try decodeResponse(bytes, version: version), expected, "v\(version)")
        }
    }

    func testRequestMetadata() {
        XCTAssertEqual(ProduceRequest.apiKey, .produce)
        XCTAssertEqual(ProduceRequest.supportedVersions, 3...12)
        XCTAssertFalse(ProduceRequest.isFlexible(8))
        XCTAssertTrue(ProduceRequest.isFlexible(9))
        XCTAssertEqual(ProduceRequest.requestHeaderVersion(9), 2)
        XCTAssertEqual(ProduceRequest.responseHeaderVersion(8), 0)
    }
}
