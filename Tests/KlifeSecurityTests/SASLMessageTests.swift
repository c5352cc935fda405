import KlifeProtocol
import XCTest

/// Golden bytes for SaslHandshake (key 17) and SaslAuthenticate (key 36).
final class SASLMessageTests: XCTestCase {
    private func encode<R: KafkaRequest>(_ request: R, version: Int16) -> [UInt8] {
        var writer = ByteWriter()
        request.encode(into: &writer, version: version)
        return writer.bytes
    }

    private func decode<R: KafkaResponse>(_: R.Type, _ bytes: [UInt8], version: Int16) -> (R, DecodeError?, Bool) {
        bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let r = R(from: &reader, version: version)
            return (r, reader.error, reader.isAtEnd)
        }
    }

    func testHandshakeRequestV0AndV1() {
        for version: Int16 in 0...1 {
            XCTAssertEqual(encode(SaslHandshakeRequest(mechanism: "PLAIN"), version: version),
                           [0x00, 0x05, 0x50, 0x4c, 0x41, 0x49, 0x4e])
        }
        XCTAssertFalse(SaslHandshakeRequest.isFlexible(1))
        XCTAssertEqual(SaslHandshakeRequest.requestHeaderVersion(1), 1)
        XCTAssertEqual(SaslHandshakeRequest.responseHeaderVersion(1), 0)
    }

    func testFullHandshakeFrame() {
        var writer = ByteWriter()
        KafkaFrame.encodeRequest(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1, correlationID: 7, clientID: "k",
                                 into: &writer)
        XCTAssertEqual(writer.bytes, [
            0, 0, 0, 18,                 // size
            0, 17, 0, 1, 0, 0, 0, 7,     // api key 17, version 1, correlation 7
            0, 1, 0x6b,                  // client id "k"
            0, 5, 0x50, 0x4c, 0x41, 0x49, 0x4e,
        ])
    }

    static let handshakeResponse: [UInt8] = [
        0x00, 0x21,                                  // error 33 UNSUPPORTED_SASL_MECHANISM
        0x00, 0x00, 0x00, 0x02,                      // 2 mechanisms
        0x00, 0x05, 0x50, 0x4c, 0x41, 0x49, 0x4e,    // "PLAIN"
        0x00, 0x0d] + Array("SCRAM-SHA-256".utf8)

    func testHandshakeResponse() {
        for version: Int16 in 0...1 {
            let (r, error, atEnd) = decode(SaslHandshakeResponse.self, Self.handshakeResponse, version: version)
            XCTAssertNil(error)
            XCTAssertTrue(atEnd)
            XCTAssertEqual(r, SaslHandshakeResponse(errorCode: 33, mechanisms: ["PLAIN", "SCRAM-SHA-256"]))
        }
    }

    func testAuthenticateRequestV0AndV2() {
        let request = SaslAuthenticateRequest(authBytes: [0x01, 0x02, 0x03])
        XCTAssertEqual(encode(request, version: 0), [0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03])
        XCTAssertEqual(encode(request, version: 1), [0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03])
        XCTAssertEqual(encode(request, version: 2), [
            0x04, 0x01, 0x02, 0x03,      // COMPACT_BYTES (length+1)
            0x00,                        // tagged fields
        ])
        XCTAssertTrue(SaslAuthenticateRequest.isFlexible(2))
        XCTAssertEqual(SaslAuthenticateRequest.responseHeaderVersion(2), 1)
    }

    static let authenticateResponseV0: [UInt8] = [
        0x00, 0x00,                  // error 0
        0xff, 0xff,                  // error_message null
        0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb,
    ]
    static let authenticateResponseV1: [UInt8] = authenticateResponseV0 + [0, 0, 0, 0, 0, 0x36, 0xee, 0x80]   // 3_600_000
    static let authenticateResponseV2: [UInt8] = [
        0x00, 0x3a,                  // error 58 SASL_AUTHENTICATION_FAILED
        0x04, 0x62, 0x61, 0x64,      // COMPACT_NULLABLE_STRING "bad"
        0x03, 0xaa, 0xbb,            // COMPACT_BYTES
        0, 0, 0, 0, 0, 0x36, 0xee, 0x80,
        0x00,                        // tagged fields
    ]

    func testAuthenticateResponses() {
        let (v0, e0, end0) = decode(SaslAuthenticateResponse.self, Self.authenticateResponseV0, version: 0)
        XCTAssertNil(e0)
        XCTAssertTrue(end0)
        XCTAssertEqual(v0, SaslAuthenticateResponse(authBytes: [0xaa, 0xbb]))
        let (v1, e1, end1) = decode(SaslAuthenticateResponse.self, Self.authenticateResponseV1, version: 1)
        XCTAssertNil(e1)
        XCTAssertTrue(end1)
        XCTAssertEqual(v1, SaslAuthenticateResponse(authBytes: [0xaa, 0xbb], sessionLifetimeMs: 3_600_000))
        let (v2, e2, end2) = decode(SaslAuthenticateResponse.self, Self.authenticateResponseV2, version: 2)
        XCTAssertNil(e2)
        XCTAssertTrue(end2)
        XCTAssertEqual(v2, SaslAuthenticateResponse(errorCode: 58, errorMessage: "bad", authBytes: [0xaa, 0xbb],
                                                    sessionLifetimeMs: 3_600_000))
    }

    func testEveryTruncationFails() {
        let cases: [([UInt8], Int16, (inout ByteReader, Int16) -> Void)] = [
            (Self.handshakeResponse, 0, { _ = SaslHandshakeResponse(from: &$0, version: $1) }),
            (Self.authenticateResponseV0, 0, { _ = SaslAuthenticateResponse(from: &$0, version: $1) }),
            (Self.authenticateResponseV1, 1, { _ = SaslAuthenticateResponse(from: &$0, version: $1) }),
            (Self.authenticateResponseV2, 2, { _ = SaslAuthenticateResponse(from: &$0, version: $1) }),
        ]
        for (bytes, version, decodeBody) in cases {
            for n in 0..<bytes.count {
                Array(bytes[0..<n]).withUnsafeBytes { raw in
                    var reader = ByteReader(raw)
                    decodeBody(&reader, version)
                    XCTAssertNotNil(reader.error, "v\(version) prefix \(n)")
                }
            }
        }
    }

    func testHostileMechanismCountIsRejected() {
        let hostile: [UInt8] = [0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x01, 0x41]
        let (_, error, _) = decode(SaslHandshakeResponse.self, hostile, version: 1)
        XCTAssertEqual(error?.kind, .invalidLength)
    }
}
