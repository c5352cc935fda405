import XCTest
import KlifeProtocol

extension DeleteTopicsResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 4
        return MsgWire.write { w in
            w.writeInt32(throttleTimeMs)
            w.writeArrayCount(responses.count, flexible: f)
            for r in responses {
                if v >= 6 { w.writeCompactNullableString(r.name) } else { w.writeString(r.name ?? "", flexible: f) }
                if v >= 6 { w.writeUUID(r.topicID) }
                w.writeInt16(r.errorCode)
                if v >= 5 { w.writeCompactNullableString(r.errorMessage) }
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = DeleteTopicsResponse(throttleTimeMs: 9, responses: [
        Result(name: "events", topicID: msgUUID, errorCode: 0),
        Result(name: "missing", errorCode: 3, errorMessage: "This server does not host this topic-partition."),
    ])
}

final class DeleteTopicsTests: XCTestCase {
    // MARK: Requests

    func testRequestV1() {
        XCTAssertEqual(MsgWire.encode(DeleteTopicsRequest(topicNames: ["a", "b"]), version: 1), [
            0x00, 0x00, 0x00, 0x02,  // topic_names: ARRAY 2
            0x00, 0x01, 0x61,  // "a"
            0x00, 0x01, 0x62,  // "b"
            0x00, 0x00, 0x75, 0x30,  // timeout_ms 30000
        ])
    }

    func testRequestV4() {
        XCTAssertEqual(MsgWire.encode(DeleteTopicsRequest(topicNames: ["a", "b"], timeoutMs: 5), version: 4), [
            0x03,  // topic_names: COMPACT_ARRAY 2
            0x02, 0x61,  // "a"
            0x02, 0x62,  // "b"
            0x00, 0x00, 0x00, 0x05,  // timeout_ms 5
            0x00,  // tagged fields
        ])
    }

    func testRequestV6() {
        let expected: [UInt8] = [
            0x02,  // topics: COMPACT_ARRAY 1
            0x02, 0x61,  // name "a"
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // topic_id: zero (delete by name)
            0x00,  // topic tagged fields
            0x00, 0x00, 0x75, 0x30,  // timeout_ms 30000
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(DeleteTopicsRequest(topicNames: ["a"]), version: 6), expected)
    }

    // MARK: Responses

    func testResponseV1() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x0a,  // throttle_time_ms 10
            0x00, 0x00, 0x00, 0x01,  // responses: ARRAY 1
            0x00, 0x01, 0x61,  // name "a"
            0x00, 0x00,  // error_code 0
        ]
        let r = msgDecode(DeleteTopicsResponse.self, bytes, version: 1)
        XCTAssertEqual(r.throttleTimeMs, 10)
        XCTAssertEqual(r.responses, [.init(name: "a", topicID: .zero, errorCode: 0, errorMessage: nil)])
    }

    func testResponseV4() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x02,  // responses: COMPACT_ARRAY 1
            0x02, 0x61,  // name "a"
            0x00, 0x03,  // error_code 3
            // error_message: v5+
            0x00,  // result tagged fields
            0x00,  // tagged fields
        ]
        let r = msgDecode(DeleteTopicsResponse.self, bytes, version: 4)
        XCTAssertEqual(r.responses, [.init(name: "a", topicID: .zero, errorCode: 3, errorMessage: nil)])
    }

    func testResponseV6() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x01,  // throttle_time_ms 1
            0x03,  // responses: COMPACT_ARRAY 2
            0x00,  // name null (unknown topic id)
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // topic_id ...
            0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,  // ...
            0x00, 0x64,  // error_code 100 UNKNOWN_TOPIC_ID
            0x02, 0x78,  // error_message "x"
            0x00,  // result tagged fields
            0x02, 0x61,  // name "a"
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07,  // topic_id ...07
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x00,  // result tagged fields
            0x00,  // tagged fields
        ]
        let r = msgDecode(DeleteTopicsResponse.self, bytes, version: 6)
        XCTAssertEqual(r.throttleTimeMs, 1)
        XCTAssertEqual(r.responses, [
            .init(name: nil, topicID: msgUUID, errorCode: 100, errorMessage: "x"),
            .init(name: "a", topicID: KafkaUUID(high: 0, low: 7), errorCode: 0, errorMessage: nil),
        ])
    }

    func testRoundTripAllVersions() {
        let sample = DeleteTopicsResponse.msgSample
        for version in DeleteTopicsRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(DeleteTopicsResponse.self, bytes, version: version)
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
            guard decoded.responses.count == 2 else { continue }
            XCTAssertEqual(decoded.responses.map(\.name), ["events", "missing"])
            XCTAssertEqual(decoded.responses[1].errorMessage != nil, version >= 5)
            XCTAssertEqual(decoded.responses[0].topicID, version >= 6 ? msgUUID : .zero)
        }
        XCTAssertEqual(msgDecode(DeleteTopicsResponse.self, sample.msgEncoded(version: 6), version: 6), sample)
    }
}
