import XCTest
import KlifeProtocol

extension FindCoordinatorResponse {
    /// Test-only encoder. For v0-3 it writes the first coordinator (its key is not on the wire).
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 3
        return MsgWire.write { w in
            if v >= 1 { w.writeInt32(throttleTimeMs) }
            if v >= 4 {
                w.writeArrayCount(coordinators.count, flexible: true)
                for c in coordinators {
                    w.writeCompactString(c.key)
                    w.writeInt32(c.nodeID)
                    w.writeCompactString(c.host)
                    w.writeInt32(c.port)
                    w.writeInt16(c.errorCode)
                    w.writeCompactNullableString(c.errorMessage)
                    w.writeEmptyTaggedFields()
                }
            } else {
                let c = coordinators[0]
                w.writeInt16(c.errorCode)
                if v >= 1 { w.writeNullableString(c.errorMessage, flexible: f) }
                w.writeInt32(c.nodeID)
                w.writeString(c.host, flexible: f)
                w.writeInt32(c.port)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = FindCoordinatorResponse(throttleTimeMs: 2, coordinators: [
        Coordinator(key: "", nodeID: 3, host: "kafka-3.internal", port: 9094, errorCode: 0, errorMessage: "ok"),
    ])
}

final class FindCoordinatorTests: XCTestCase {
    // MARK: Requests

    func testRequestV0() {
        XCTAssertEqual(MsgWire.encode(FindCoordinatorRequest(key: "g"), version: 0), [
            0x00, 0x01, 0x67,  // key "g"
            // key_type: v1+
        ])
    }

    func testRequestV1() {
        let request = FindCoordinatorRequest(key: "g", keyType: FindCoordinatorRequest.transactionKeyType)
        XCTAssertEqual(MsgWire.encode(request, version: 1), [
            0x00, 0x01, 0x67,  // key "g"
            0x01,  // key_type 1 (transaction)
        ])
    }

    func testRequestV3() {
        XCTAssertEqual(MsgWire.encode(FindCoordinatorRequest(key: "g"), version: 3), [
            0x02, 0x67,  // key: COMPACT_STRING "g"
            0x00,  // key_type 0 (group)
            0x00,  // tagged fields
        ])
    }

    func testRequestV4AndV6() {
        let expected: [UInt8] = [
            // key: v0-3 only
            0x00,  // key_type 0
            0x02,  // coordinator_keys: COMPACT_ARRAY 1
            0x02, 0x67,  // "g"
            0x00,  // tagged fields
        ]
        XCTAssertEqual(MsgWire.encode(FindCoordinatorRequest(key: "g"), version: 4), expected)
        var v6 = expected
        v6[0] = 0x02  // key_type 2 (share group, v6+)
        let share = FindCoordinatorRequest(key: "g", keyType: FindCoordinatorRequest.shareKeyType)
        XCTAssertEqual(MsgWire.encode(share, version: 6), v6)
    }

    // MARK: Responses

    func testResponseV0() {
        let bytes: [UInt8] = [
            0x00, 0x0f,  // error_code 15 COORDINATOR_NOT_AVAILABLE
            0xff, 0xff, 0xff, 0xff,  // node_id -1
            0x00, 0x00,  // host ""
            0xff, 0xff, 0xff, 0xff,  // port -1
        ]
        let r = msgDecode(FindCoordinatorResponse.self, bytes, version: 0)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.coordinators, [
            .init(key: "", nodeID: -1, host: "", port: -1, errorCode: 15, errorMessage: nil),
        ])
    }

    func testResponseV3() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x03,  // throttle_time_ms 3
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x00, 0x00, 0x00, 0x01,  // node_id 1
            0x02, 0x68,  // host "h"
            0x00, 0x00, 0x23, 0x84,  // port 9092
            0x00,  // tagged fields
        ]
        let r = msgDecode(FindCoordinatorResponse.self, bytes, version: 3)
        XCTAssertEqual(r.throttleTimeMs, 3)
        XCTAssertEqual(r.coordinators, [
            .init(key: "", nodeID: 1, host: "h", port: 9092, errorCode: 0, errorMessage: nil),
        ])
    }

    func testResponseV6() {
        let bytes: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x03,  // coordinators: COMPACT_ARRAY 2
            0x02, 0x67,  // key "g"
            0x00, 0x00, 0x00, 0x01,  // node_id 1
            0x02, 0x68,  // host "h"
            0x00, 0x00, 0x23, 0x84,  // port 9092
            0x00, 0x00,  // error_code 0
            0x00,  // error_message null
            0x00,  // coordinator tagged fields
            0x02, 0x78,  // key "x"
            0xff, 0xff, 0xff, 0xff,  // node_id -1
            0x01,  // host ""
            0xff, 0xff, 0xff, 0xff,  // port -1
            0x00, 0x0f,  // error_code 15
            0x02, 0x6d,  // error_message "m"
            0x00,  // coordinator tagged fields
            0x00,  // tagged fields
        ]
        let r = msgDecode(FindCoordinatorResponse.self, bytes, version: 6)
        XCTAssertEqual(r.throttleTimeMs, 0)
        XCTAssertEqual(r.coordinators, [
            .init(key: "g", nodeID: 1, host: "h", port: 9092, errorCode: 0, errorMessage: nil),
            .init(key: "x", nodeID: -1, host: "", port: -1, errorCode: 15, errorMessage: "m"),
        ])
    }

    func testRoundTripAllVersions() {
        let sample = FindCoordinatorResponse.msgSample
        for version in FindCoordinatorRequest.supportedVersions {
            let bytes = sample.msgEncoded(version: version)
            let decoded = msgDecode(FindCoordinatorResponse.self, bytes, version: version)
            XCTAssertEqual(decoded.msgEncoded(version: version), bytes, "v\(version)")
            XCTAssertEqual(decoded.coordinators.count, 1)
            XCTAssertEqual(decoded.throttleTimeMs, version >= 1 ? 2 : 0)
            XCTAssertEqual(decoded.coordinators.first?.errorMessage, version >= 1 ? "ok" : nil)
            XCTAssertEqual(decoded.coordinators.first?.host, "kafka-3.internal")
        }
    }
}
