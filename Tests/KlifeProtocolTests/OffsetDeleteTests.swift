import XCTest
import KlifeProtocol

extension OffsetDeleteResponse {
    /// Test-only encoder (v0, the only version).
    func msgEncoded(version v: Int16) -> [UInt8] {
        MsgWire.write { w in
            w.writeInt16(errorCode)
            w.writeInt32(throttleTimeMs)
            w.writeArrayCount(topics.count, flexible: false)
            for t in topics {
                w.writeString(t.name)
                w.writeArrayCount(t.partitions.count, flexible: false)
                for p in t.partitions {
                    w.writeInt32(p.partitionIndex)
                    w.writeInt16(p.errorCode)
                }
            }
        }
    }

    static let msgSample = OffsetDeleteResponse(errorCode: 0, throttleTimeMs: 4, topics: [
        .init(name: "orders", partitions: [.init(partitionIndex: 0), .init(partitionIndex: 5, errorCode: 86)]),
        .init(name: "audit", partitions: []),
    ])
}

final class OffsetDeleteTests: XCTestCase {
    func testApiKeyAndHeaders() {
        XCTAssertEqual(OffsetDeleteRequest.apiKey.rawValue, 47)
        XCTAssertEqual(OffsetDeleteRequest.apiKey.description, "OffsetDelete")
        XCTAssertEqual(OffsetDeleteRequest.supportedVersions, 0...0)
        XCTAssertFalse(OffsetDeleteRequest.isFlexible(0))
        XCTAssertEqual(OffsetDeleteRequest.requestHeaderVersion(0), 1)
        XCTAssertEqual(OffsetDeleteRequest.responseHeaderVersion(0), 0)
    }

    // MARK: Request

    func testRequestV0() {
        let request = OffsetDeleteRequest(groupID: "g", topics: [
            .init(name: "t", partitionIndexes: [0, 2]),
            .init(name: "u", partitionIndexes: []),
        ])
        XCTAssertEqual(MsgWire.encode(request, version: 0), [
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00, 0x00, 0x02,  // topics: ARRAY 2
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x02,  // partitions: ARRAY 2
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x00, 0x00, 0x00, 0x02,  // partition_index 2
            0x00, 0x01, 0x75,  // name "u"
            0x00, 0x00, 0x00, 0x00,  // partitions: ARRAY 0
        ])
    }

    // MARK: Response

    func testResponseV0() {
        let r = msgDecode(OffsetDeleteResponse.self, [
            0x00, 0x00,  // error_code 0
            0x00, 0x00, 0x00, 0x0a,  // throttle_time_ms 10
            0x00, 0x00, 0x00, 0x01,  // topics: ARRAY 1
            0x00, 0x01, 0x74,  // name "t"
            0x00, 0x00, 0x00, 0x02,  // partitions: ARRAY 2
            0x00, 0x00, 0x00, 0x00,  // partition_index 0
            0x00, 0x00,  // error_code 0
            0x00, 0x00, 0x00, 0x01,  // partition_index 1
            0x00, 0x56,  // error_code 86 GROUP_SUBSCRIBED_TO_TOPIC
        ], version: 0)
        XCTAssertEqual(r, OffsetDeleteResponse(throttleTimeMs: 10, topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0), .init(partitionIndex: 1, errorCode: 86)]),
        ]))
    }

    func testResponseV0GroupError() {
        let r = msgDecode(OffsetDeleteResponse.self, [
            0x00, 0x45,  // error_code 69 GROUP_ID_NOT_FOUND
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x00, 0x00, 0x00, 0x00,  // topics: ARRAY 0
        ], version: 0)
        XCTAssertEqual(r, OffsetDeleteResponse(errorCode: 69))
    }

    func testRoundTrip() {
        let bytes = OffsetDeleteResponse.msgSample.msgEncoded(version: 0)
        let decoded = msgDecode(OffsetDeleteResponse.self, bytes, version: 0)
        XCTAssertEqual(decoded, OffsetDeleteResponse.msgSample)
        XCTAssertEqual(decoded.msgEncoded(version: 0), bytes)
    }

    func testEveryTruncationFails() {
        let bytes = OffsetDeleteResponse.msgSample.msgEncoded(version: 0)
        for n in 0..<bytes.count {
            XCTAssertNotNil(MsgWire.decode(OffsetDeleteResponse.self, Array(bytes[0..<n]), version: 0).error,
                            "prefix \(n) of \(bytes.count)")
        }
    }

    func testHostileNestedCountIsRejected() {
        // One topic whose partitions claim 0x7fffffff entries.
        let bytes: [UInt8] = [0, 0, 0, 0, 0, 0, /* topics */ 0, 0, 0, 1, 0, 1, 0x74, /* partitions */ 0x7f, 0xff, 0xff, 0xff]
            + [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(MsgWire.decode(OffsetDeleteResponse.self, bytes, version: 0).error?.kind, .invalidLength)
        // A topic name longer than what is left.
        let name: [UInt8] = [0, 0, 0, 0, 0, 0, /* topics */ 0, 0, 0, 1, /* name length */ 0x00, 0x40]
            + [UInt8](repeating: 0x74, count: 8)
        XCTAssertEqual(MsgWire.decode(OffsetDeleteResponse.self, name, version: 0).error?.kind, .invalidLength)
    }
}
