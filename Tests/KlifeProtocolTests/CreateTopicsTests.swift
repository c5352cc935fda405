import XCTest
import KlifeProtocol

extension CreateTopicsResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 5
        return MsgWire.write { w in
            w.writeInt32(throttleTimeMs)
            w.writeArrayCount(topics.count, flexible: f)
            for t in topics {
                w.writeString(t.name, flexible: f)
                if v >= 7 { w.writeUUID(t.topicID) }
                w.writeInt16(t.errorCode)
                w.writeNullableString(t.errorMessage, flexible: f)
                if f {
                    w.writeInt32(t.numPartitions)
                    w.writeInt16(t.replicationFactor)
                    w.writeNullableArrayCount(t.configs.isEmpty ? nil : t.configs.count, flexible: true)
                    for c in t.configs {
                        w.writeCompactString(c.name)
                        w.writeCompactNullableString(c.value)
                        w.writeBool(c.readOnly)
                        w.writeInt8(c.configSource)
                        w.writeBool(c.isSensitive)
                        w.writeEmptyTaggedFields()
                    }
                }
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = CreateTopicsResponse(throttleTimeMs: 7, topics: [
        Topic(name: "events", topicID: msgUUID, errorCode: 0, errorMessage: nil, numPartitions: 6,
              replicationFactor: 3, configs: [
                  Config(name: "cleanup.policy", value: "compact", readOnly: false, configSource: 1),
                  Config(name: "secret", value: nil, readOnly: true, configSource: 5, isSensitive: true),
              ]),
        Topic(name: "taken", errorCode: 36, errorMessage: "Topic 'taken' already exists."),
    ])
}

final class CreateTopicsTests: XCTestCase {
    // MARK: Requests

    func testRequestV2() {
        let request = CreateTopicsRequest(topics: [
            .init(name: "t", numPartitions: 3, replicationFactor: 1, configs: [.init(name: "c", value: "v")]),
        ])
        XCTAssertEqual(MsgWire.encode(request, version: 2), [
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x03,  // num_partitions 3
            0x00, 0x01,  // replication_factor 1
            0x00, 0x00, 0x00, 0x00,  // assignments: ARRAY 0
            0x00, 0x00, 0x00, 0x01,  // configs: ARRAY 1
            0x00, 0x01, 0x63,  // name "c"
            0x00, 0x01, 0x76,  // value "v"
            0x00, 0x00, 0x75, 0x30,  // timeout_ms 30000
            0x00,  // validate_only false
        ])
    }

    func testRequestV5AndV7() {
        let request = CreateTopicsRequest(topics: [
            .init(name: "t", assignments: [.init(partitionIndex: 0, brokerIDs: [1, 2])],
                  configs: [.init(name: "c", value: nil)]),
        ], timeoutMs: 1000, validateOnly: true)
        let expected: [UInt8] = [
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0xff, 0xff, 0xff, 0xff,  // num_partitions -1 (given by the assignment)
            0xff, 0xff,  // replication_factor -1
            0x02,  // assignments: COMPACT_ARRAY 1
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,  // broker_ids [1, 2]
            0x00,  // assignment tagged fields
            0x02,  // configs: COMPACT_ARRAY 1
            0x02, 0x63,  // name "c"
            0x00,  // value null
            0x00,  // config tagged fields
            0x00,  // topic tagged fields
            0x00, 0x00, 0x03, 0xe8,  // timeout_ms 1000
            0x01,  // validate_only true
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(request, version: 5), expected)
        XCTAssertEqual(MsgWire.encode(request, version: 7), expected)  // v6-7 change only the response
    }

    // MARK: Responses

    func testResponseV2() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x24,  // error_code 36 TOPIC_ALREADY_EXISTS
            0x00, 0x01, 0x78,  // error_message "x"
        ]
        let r = msgDecode(CreateTopicsResponse.self, bytes, version: 2)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.topics, [.init(name: "t", topicID: .zero, errorCode: 36, errorMessage: "x", numPartitions: -1,
                                        replicationFactor: -1, configs: [])])
    }

    func testResponseV5() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x02,  // throttle_time_ms 2
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x00, 0x00, 0x00, 0x03,  // num_partitions 3
            0x00, 0x02,  // replication_factor 2
            0x02,  // configs: COMPACT_NULLABLE_ARRAY 1
            0x02, 0x63,  // name "c"
            0x02, 0x76,  // value "v"
            0x01,  // read_only true
            0x05,  // config_source 5 (DEFAULT_CONFIG)
            0x00,  // is_sensitive false
            0x00,  // config tagged fields
            0x01, 0x00, 0x02, 0x00, 0x28,  // topic tags: tag 0 topic_config_error_code, 2 bytes = 40 (skipped)
            0x00,  // tagged fields
        ]
        let r = msgDecode(CreateTopicsResponse.self, bytes, version: 5)
        XCTAssertEqual(r.throttleTimeMs, 2)
        XCTAssertEqual(r.topics, [.init(name: "t", topicID: .zero, errorCode: 0, errorMessage: nil, numPartitions: 3,
                                        replicationFactor: 2, configs: [
                                            .init(name: "c", value: "v", readOnly: true, configSource: 5,
                                                  isSensitive: false),
                                        ])])
    }

    func testResponseV7() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x74,  // name "t"
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id ...
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // ... (v7+)
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x00, 0x00, 0x00, 0x01,  // num_partitions 1
            0x00, 0x01,  // replication_factor 1
            0x00,  // configs null
            0x00,  // topic tagged fields
            0x00,  // tagged fields
        ]
        let r = msgDecode(CreateTopicsResponse.self, bytes, version: 7)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.topics, [.init(name: "t", topicID: msgUUID, errorCode: 0, errorMessage: nil, numPartitions: 1,
                                        replicationFactor: 1, configs: [])])
    }

    func testRoundTripAllVersions() {
        let sample = CreateTopicsResponse.msgSample
        for version in CreateTopicsRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(CreateTopicsResponse.self, bytes, version: version)
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
            guard decoded.topics.count == 2 else { continue }
            XCTAssertEqual(decoded.topics[1].errorMessage, "Topic 'taken' already exists.")
            XCTAssertEqual(decoded.topics[0].configs.count, version >= 5 ? 2 : 0)
            XCTAssertEqual(decoded.topics[0].numPartitions, version >= 5 ? 6 : -1)
            XCTAssertEqual(decoded.topics[0].topicID, version >= 7 ? msgUUID : .zero)
        }
        XCTAssertEqual(msgDecode(CreateTopicsResponse.self, sample.msgEncoded(version: 7), version: 7), sample)
    }
}
