import XCTest
import KlifeProtocol

extension MetadataResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 9
        return MsgWire.write { w in
            func nodes(_ a: [Int32]) {
                w.writeArrayCount(a.count, flexible: f)
                for n in a { w.writeInt32(n) }
            }
            if v >= 3 { w.writeInt32(throttleTimeMs) }
            w.writeArrayCount(brokers.count, flexible: f)
            for b in brokers {
                w.writeInt32(b.nodeID)
                w.writeString(b.host, flexible: f)
                w.writeInt32(b.port)
                w.writeNullableString(b.rack, flexible: f)
                w.writeEmptyTaggedFields(flexible: f)
            }
            if v >= 2 { w.writeNullableString(clusterID, flexible: f) }
            w.writeInt32(controllerID)
            w.writeArrayCount(topics.count, flexible: f)
            for t in topics {
                w.writeInt16(t.errorCode)
                w.writeString(t.name, flexible: f)
                if v >= 10 { w.writeUUID(t.topicID) }
                w.writeBool(t.isInternal)
                w.writeArrayCount(t.partitions.count, flexible: f)
                for p in t.partitions {
                    w.writeInt16(p.errorCode)
                    w.writeInt32(p.partitionIndex)
                    w.writeInt32(p.leaderID)
                    if v >= 7 { w.writeInt32(p.leaderEpoch) }
                    nodes(p.replicaNodes)
                    nodes(p.isrNodes)
                    if v >= 5 { nodes(p.offlineReplicas) }
                    w.writeEmptyTaggedFields(flexible: f)
                }
                if v >= 8 { w.writeInt32(t.topicAuthorizedOperations) }
                w.writeEmptyTaggedFields(flexible: f)
            }
            if (8...10).contains(v) { w.writeInt32(clusterAuthorizedOperations) }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = MetadataResponse(
        throttleTimeMs: 3,
        brokers: [
            Broker(nodeID: 1, host: "kafka-1", port: 9092, rack: "r1"),
            Broker(nodeID: 2, host: "kafka-2", port: 9093, rack: nil),
        ],
        clusterID: "cluster", controllerID: 2,
        topics: [
            Topic(errorCode: 0, name: "events", topicID: msgUUID, isInternal: false, partitions: [
                Partition(partitionIndex: 0, leaderID: 1, leaderEpoch: 4, replicaNodes: [1, 2], isrNodes: [1, 2]),
                Partition(errorCode: 5, partitionIndex: 1, leaderID: -1, leaderEpoch: 3, replicaNodes: [2, 1],
                          isrNodes: [1], offlineReplicas: [2]),
            ], topicAuthorizedOperations: 0x0f),
            Topic(errorCode: 3, name: "missing"),
        ],
        clusterAuthorizedOperations: 0x1f)
}

final class MetadataTests: XCTestCase {
    // MARK: Requests

    func testRequestV1() {
        XCTAssertEqual(MsgWire.encode(MetadataRequest(topics: ["t"]), version: 1), [
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY count 1
            0x00, 0x01, 0x74,  // name "t"
        ])
        XCTAssertEqual(MsgWire.encode(MetadataRequest(topics: nil), version: 1), [
            0xff, 0xff, 0xff, 0xff,  // topics: null = all topics
        ])
    }

    func testRequestV9() {
        let request = MetadataRequest(topics: ["t"], allowAutoTopicCreation: true)
        XCTAssertEqual(MsgWire.encode(request, version: 9), [
            0x02,  // topics: COMPACT_ARRAY count+1
            0x02, 0x74,  // name: COMPACT_STRING "t"
            0x00,  // topic tagged fields
            0x01,  // allow_auto_topic_creation true
            0x00,  // include_cluster_authorized_operations false (v8-10)
            0x00,  // include_topic_authorized_operations false
            0x00,  // tagged fields
        ])
    }

    func testRequestV12() {
        let request = MetadataRequest(topics: ["t"], includeTopicAuthorizedOperations: true)
        let expected: [UInt8] = [
            0x02,  // topics: COMPACT_ARRAY 1
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // topic_id: zero UUID (v10+)
            0x02, 0x74,  // name: COMPACT_NULLABLE_STRING "t"
            0x00,  // topic tagged fields
            0x00,  // allow_auto_topic_creation false
            // include_cluster_authorized_operations: gone after v10
            0x01,  // include_topic_authorized_operations true
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(request, version: 12), expected)
        XCTAssertEqual(MsgWire.encode(MetadataRequest(topics: nil), version: 12), [
            0x00,  // topics: null compact array = all topics
            0x00, 0x00, 0x00,  // allow_auto, include_topic_ops, tags
        ])
    }

    func testRequestVersionedFields() {
        let request = MetadataRequest(topics: [])
        let sizes = (1...12).map { MsgWire.encode(request, version: Int16($0)).count }
        // v1-3: count; v4-7: + allow_auto; v8: + two include flags; v9-10 compact + tags; v11+: one flag fewer.
        XCTAssertEqual(sizes, [4, 4, 4, 5, 5, 5, 5, 7, 5, 5, 4, 4])
    }

    func testFrameHeaderV1() {
        var writer = ByteWriter()
        KafkaFrame.encodeRequest(MetadataRequest(topics: ["t"]), version: 1, correlationID: 7, clientID: nil,
                                 into: &writer)
        XCTAssertEqual(writer.bytes, [
            0x00, 0x00, 0x00, 0x11,  // size 17
            0x00, 0x03,  // api key 3
            0x00, 0x01,  // version 1
            0x00, 0x00, 0x00, 0x07,  // correlation_id 7
            0xff, 0xff,  // client_id null
            // header v1: no tagged fields
            0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x74,  // body
        ])
        XCTAssertEqual(MetadataRequest.requestHeaderVersion(1), 1)
        XCTAssertEqual(MetadataRequest.requestHeaderVersion(9), 2)
        XCTAssertEqual(MetadataRequest.responseHeaderVersion(9), 1)
    }

    // MARK: Responses

    func testResponseV1() {
        let bytes: [UInt8] = [
            // throttle_time_ms: v3+
            0x00, 0x00, 0x00, 0x01,  // brokers: ARRAY 1
            0x00, 0x00, 0x00, 0x01,  // node_id 1
            0x00, 0x01, 0x68,  // host "h"
            0x00, 0x00, 0x23, 0x84,  // port 9092
            0xff, 0xff,  // rack null
            // cluster_id: v2+
            0x00, 0x00, 0x00, 0x01,  // controller_id 1
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x00,  // error_code 0
            0x00, 0x01, 0x74,  // name "t"
            0x01,  // is_internal true
            0x00, 0x00, 0x00, 0x01,  // partitions: ARRAY 1
            0x00, 0x00,  // error_code 0
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x00, 0x00, 0x00, 0x01,  // leader_id 1
            // leader_epoch: v7+
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,  // replica_nodes [1, 2]
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,  // isr_nodes [1]
            // offline_replicas: v5+
        ]
        let r = msgDecode(MetadataResponse.self, bytes, version: 1)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.brokers, [.init(nodeID: 1, host: "h", port: 9092, rack: nil)])
        XCTAssertNil(r.clusterID)
        XCTAssertEqual(r.controllerID, 1)
        XCTAssertEqual(r.topics.count, 1)
        guard let t = r.topics.first else { return XCTFail("no topic") }
        XCTAssertEqual(t.errorCode, 0)
        XCTAssertEqual(t.name, "t")
        XCTAssertEqual(t.topicID, .zero)
        XCTAssertTrue(t.isInternal)
        XCTAssertEqual(t.topicAuthorizedOperations, .min)
        XCTAssertEqual(t.partitions, [.init(errorCode: 0, partitionIndex: 0, leaderID: 1, leaderEpoch: -1,
                                            replicaNodes: [1, 2], isrNodes: [1], offlineReplicas: [])])
        XCTAssertEqual(r.clusterAuthorizedOperations, .min)
    }

    func testResponseV9() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x05,  // throttle_time_ms 5
            0x02,  // brokers: COMPACT_ARRAY 1
            0x00, 0x00, 0x00, 0x01,  // node_id 1
            0x02, 0x68,  // host "h"
            0x00, 0x00, 0x23, 0x84,  // port 9092
            0x02, 0x72,  // rack "r"
            0x00,  // broker tagged fields
            0x02, 0x63,  // cluster_id "c"
            0x00, 0x00, 0x00, 0x01,  // controller_id 1
            0x02,  // topics: COMPACT_ARRAY 1
            0x00, 0x03,  // error_code 3
            0x02, 0x74,  // name "t"
            0x00,  // is_internal false
            0x02,  // partitions: COMPACT_ARRAY 1
            0x00, 0x06,  // error_code 6
            0x00, 0x00, 0x00, 0x02,  // partition_index 2
            0xff, 0xff, 0xff, 0xff,  // leader_id -1
            0x00, 0x00, 0x00, 0x07,  // leader_epoch 7
            0x02, 0x00, 0x00, 0x00, 0x01,  // replica_nodes [1]
            0x01,  // isr_nodes []
            0x02, 0x00, 0x00, 0x00, 0x01,  // offline_replicas [1]
            0x00,  // partition tagged fields
            0x00, 0x00, 0x00, 0x08,  // topic_authorized_operations 8
            0x00,  // topic tagged fields
            0x80, 0x00, 0x00, 0x00,  // cluster_authorized_operations INT32_MIN (v8-10)
            0x00,  // tagged fields
        ]
        let r = msgDecode(MetadataResponse.self, bytes, version: 9)
        XCTAssertEqual(r.throttleTimeMs, 5)
        XCTAssertEqual(r.brokers, [.init(nodeID: 1, host: "h", port: 9092, rack: "r")])
        XCTAssertEqual(r.clusterID, "c")
        XCTAssertEqual(r.controllerID, 1)
        XCTAssertEqual(r.topics, [.init(errorCode: 3, name: "t", topicID: .zero, isInternal: false, partitions: [
            .init(errorCode: 6, partitionIndex: 2, leaderID: -1, leaderEpoch: 7, replicaNodes: [1], isrNodes: [],
                  offlineReplicas: [1]),
        ], topicAuthorizedOperations: 8)])
        XCTAssertEqual(r.clusterAuthorizedOperations, .min)
    }

    func testResponseV12() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x01,  // brokers: COMPACT_ARRAY 0
            0x00,  // cluster_id null
            0xff, 0xff, 0xff, 0xff,  // controller_id -1
            0x03,  // topics: COMPACT_ARRAY 2
            0x00, 0x64,  // error_code 100 UNKNOWN_TOPIC_ID
            0x00,  // name: null (v12 nullable)
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id ...
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // ... 0102..10
            0x00,  // is_internal false
            0x01,  // partitions: COMPACT_ARRAY 0
            0x80, 0x00, 0x00, 0x00,  // topic_authorized_operations INT32_MIN
            0x00,  // topic tagged fields
            0x00, 0x00,  // error_code 0
            0x02, 0x74,  // name "t"
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a,  // topic_id ...002a
            0x01,  // is_internal true
            0x01,  // partitions: COMPACT_ARRAY 0
            0x00, 0x00, 0x00, 0x00,  // topic_authorized_operations 0
            0x01, 0x05, 0x02, 0xbe, 0xef,  // topic tagged fields: unknown tag 5, 2 bytes (skipped)
            // cluster_authorized_operations: only v8-10
            0x00,  // tagged fields
        ]
        let r = msgDecode(MetadataResponse.self, bytes, version: 12)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.brokers, [])
        XCTAssertNil(r.clusterID)
        XCTAssertEqual(r.controllerID, -1)
        XCTAssertEqual(r.topics, [
            .init(errorCode: 100, name: "", topicID: msgUUID, isInternal: false, partitions: []),
            .init(errorCode: 0, name: "t", topicID: KafkaUUID(high: 0, low: 42), isInternal: true, partitions: [],
                  topicAuthorizedOperations: 0),
        ])
        XCTAssertEqual(r.clusterAuthorizedOperations, .min)
    }

    func testRoundTripAllVersions() {
        let sample = MetadataResponse.msgSample
        for version in MetadataRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(MetadataResponse.self, bytes, version: version)
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
            guard decoded.topics.count == 2, decoded.topics[0].partitions.count == 2 else { continue }
            XCTAssertEqual(decoded.brokers.map(\.rack), [version >= 1 ? "r1" : nil, nil])
            XCTAssertEqual(decoded.clusterID, version >= 2 ? "cluster" : nil)
            XCTAssertEqual(decoded.throttleTimeMs, version >= 3 ? 3 : 0)
            XCTAssertEqual(decoded.topics[0].partitions[1].offlineReplicas, version >= 5 ? [2] : [])
            XCTAssertEqual(decoded.topics[0].partitions[1].leaderEpoch, version >= 7 ? 3 : -1)
            XCTAssertEqual(decoded.topics[0].topicAuthorizedOperations, version >= 8 ? 0x0f : .min)
            XCTAssertEqual(decoded.clusterAuthorizedOperations, (8...10).contains(version) ? 0x1f : .min)
            XCTAssertEqual(decoded.topics[0].topicID, version >= 10 ? msgUUID : .zero)
        }
        XCTAssertEqual(msgDecode(MetadataResponse.self, sample.msgEncoded(version: 10), version: 10), sample)
    }
}
