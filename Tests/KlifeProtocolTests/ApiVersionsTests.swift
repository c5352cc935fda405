import XCTest
import KlifeProtocol

extension ApiVersionsResponse {
    /// Test-only encoder (the codec only ever decodes responses).
    func msgEncoded(version: Int16) -> [UInt8] {
        let flexible = version >= 3
        return MsgWire.write { w in
            w.writeInt16(errorCode)
            w.writeArrayCount(apiKeys.count, flexible: flexible)
            for k in apiKeys {
                w.writeInt16(k.apiKey)
                w.writeInt16(k.minVersion)
                w.writeInt16(k.maxVersion)
                w.writeEmptyTaggedFields(flexible: flexible)
            }
            if version >= 1 { w.writeInt32(throttleTimeMs) }
            w.writeEmptyTaggedFields(flexible: flexible)
        }
    }

    static let msgSample = ApiVersionsResponse(
        errorCode: 0,
        apiKeys: [
            ApiVersionRange(apiKey: 0, minVersion: 3, maxVersion: 11),
            ApiVersionRange(apiKey: 1, minVersion: 4, maxVersion: 17),
            ApiVersionRange(apiKey: 18, minVersion: 0, maxVersion: 4),
        ],
        throttleTimeMs: 12)
}

final class ApiVersionsTests: XCTestCase {
    // MARK: Requests

    func testRequestBodyIsEmptyBeforeV3() {
        for version: Int16 in 0...2 {
            XCTAssertEqual(MsgWire.encode(ApiVersionsRequest(), version: version), [], "v\(version)")
        }
    }

    func testRequestV3() {
        let expected: [UInt8] = [
            0x02, 0x6b,  // client_software_name: COMPACT_STRING len+1=2, "k"
            0x02, 0x31,  // client_software_version: COMPACT_STRING "1"
            0x00,  // tagged fields: none
        ]
        let request = ApiVersionsRequest(clientSoftwareName: "k", clientSoftwareVersion: "1")
        XCTAssertEqual(MsgWire.encode(request, version: 3), expected)
    }

    func testRequestDefaults() {
        let expected: [UInt8] = [0x0c] + Array("klife-swift".utf8) + [0x06] + Array("0.1.0".utf8) + [0x00]
        XCTAssertEqual(MsgWire.encode(ApiVersionsRequest(), version: 3), expected)
    }

    func testFrameHeaderV2() {
        var writer = ByteWriter()
        let request = ApiVersionsRequest(clientSoftwareName: "k", clientSoftwareVersion: "1")
        let n = KafkaFrame.encodeRequest(request, version: 3, correlationID: 7, clientID: "c", into: &writer)
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x11,  // size: 17 bytes follow
            0x00, 0x12,  // request_api_key 18
            0x00, 0x03,  // request_api_version 3
            0x00, 0x00, 0x00, 0x07,  // correlation_id 7
            0x00, 0x01, 0x63,  // client_id: NULLABLE_STRING "c" (never compact, even in header v2)
            0x00,  // header v2 tagged fields
            0x02, 0x6b, 0x02, 0x31, 0x00,  // body as in testRequestV3
        ]
        XCTAssertEqual(writer.bytes, expected)
        XCTAssertEqual(n, expected.count)
        XCTAssertEqual(ApiVersionsRequest.responseHeaderVersion(3), 0)
    }

    // MARK: Responses

    func testResponseV0() {
        let bytes: [UInt8] = [
            0x00, 0x00,  // error_code 0
            0x00, 0x00, 0x00, 0x02,  // api_keys: ARRAY count 2
            0x00, 0x00, 0x00, 0x03, 0x00, 0x09,  // Produce v3-9
            0x00, 0x12, 0x00, 0x00, 0x00, 0x03,  // ApiVersions v0-3
        ]
        let r = msgDecode(ApiVersionsResponse.self, bytes, version: 0)
        XCTAssertEqual(r.errorCode, 0)
        XCTAssertEqual(r.apiKeys, [ApiVersionRange(apiKey: 0, minVersion: 3, maxVersion: 9),
                                   ApiVersionRange(apiKey: 18, minVersion: 0, maxVersion: 3)])
        XCTAssertEqual(r.throttleTimeMs, 0)
    }

    func testResponseV3WithUnknownTags() {
        let bytes: [UInt8] = [
            0x00, 0x00,  // error_code 0
            0x03,  // api_keys: COMPACT_ARRAY count+1 = 3
            0x00, 0x01, 0x00, 0x04, 0x00, 0x11, 0x00,  // Fetch v4-17, no tags
            0x00, 0x12, 0x00, 0x00, 0x00, 0x04,  // ApiVersions v0-4
            0x01, 0x09, 0x01, 0xaa,  // ... with an unknown tag 9 of 1 byte
            0x00, 0x00, 0x00, 0x0a,  // throttle_time_ms 10
            0x01,  // 1 tagged field:
            0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x05,  // tag 1 finalized_features_epoch, 8 bytes (skipped)
        ]
        let r = msgDecode(ApiVersionsResponse.self, bytes, version: 3)
        XCTAssertEqual(r.errorCode, 0)
        XCTAssertEqual(r.apiKeys, [ApiVersionRange(apiKey: 1, minVersion: 4, maxVersion: 17),
                                   ApiVersionRange(apiKey: 18, minVersion: 0, maxVersion: 4)])
        XCTAssertEqual(r.throttleTimeMs, 10)
    }

    func testUnsupportedVersionFallsBackToV0Body() {
        // What a broker without ApiVersions v3 sends to a v3 request: a v0 body with error 35.
        let bytes: [UInt8] = [
            0x00, 0x23,  // error_code 35 UNSUPPORTED_VERSION
            0x00, 0x00, 0x00, 0x01,  // api_keys: ARRAY count 1
            0x00, 0x12, 0x00, 0x00, 0x00, 0x02,  // ApiVersions v0-2
        ]
        let r = msgDecode(ApiVersionsResponse.self, bytes, version: 3)
        XCTAssertEqual(r.errorCode, KafkaErrorCode.unsupportedVersion.rawValue)
        XCTAssertEqual(ApiVersionTable(r.apiKeys).range(for: .apiVersions), 0...2)
        // A v0 body with any other error is not mistaken for the fallback.
        var other = bytes
        other[1] = 0x00
        XCTAssertNotNil(MsgWire.decode(ApiVersionsResponse.self, other, version: 3).error)
    }

    func testRoundTripAllVersions() {
        for version in ApiVersionsRequest.supportedVersions {
            let bytes = ApiVersionsResponse.msgSample.msgEncoded(version: version)
            var expected = ApiVersionsResponse.msgSample
            if version == 0 { expected.throttleTimeMs = 0 }
            XCTAssertEqual(msgDecode(ApiVersionsResponse.self, bytes, version: version), expected, "v\(version)")
        }
    }

    // MARK: Negotiation

    private let table = ApiVersionTable([
        ApiVersionRange(apiKey: 3, minVersion: 0, maxVersion: 13),  // Metadata: broker newer than us
        ApiVersionRange(apiKey: 1, minVersion: 0, maxVersion: 3),  // Fetch: only below our range
        ApiVersionRange(apiKey: 2, minVersion: 1, maxVersion: 5),  // ListOffsets: broker older than us
        ApiVersionRange(apiKey: 18, minVersion: 0, maxVersion: 3),
        ApiVersionRange(apiKey: 19, minVersion: 5, maxVersion: 2),  // nonsense range: ignored
    ])

    func testNegotiatePicksHighestCommonVersion() throws {
        XCTAssertEqual(try table.negotiate(MetadataRequest.self), 12)
        XCTAssertEqual(try table.negotiate(ListOffsetsRequest.self), 5)
        XCTAssertEqual(try table.negotiate(ApiVersionsRequest.self), 3)
        XCTAssertEqual(table.range(for: .metadata), 0...13)
        XCTAssertNil(table.range(for: .createTopics))
    }

    func testNegotiateDisjointRangesNamesTheApi() {
        XCTAssertThrowsError(try table.negotiate(FetchRequest.self)) { error in
            let e = error as? UnsupportedVersionError
            XCTAssertEqual(e?.api, .fetch)
            XCTAssertEqual(e?.brokerRange, 0...3)
            XCTAssertEqual(e?.clientRange, 4...17)
            XCTAssertEqual(e?.description, "Fetch (key 1): broker supports v0-3, klife supports v4-17")
        }
    }

    func testNegotiateWithinRequiredRange() throws {
        // Broker ListOffsets v1-5: fine for v1+, too old for max-timestamp lookups (v7+).
        XCTAssertEqual(try table.negotiate(ListOffsetsRequest.self, within: 1...4), 4)
        XCTAssertEqual(try table.negotiate(MetadataRequest.self, within: 0...Int16.max), 12)
        XCTAssertThrowsError(try table.negotiate(ListOffsetsRequest.self, within: 7...Int16.max)) { error in
            XCTAssertEqual(String(describing: error), "ListOffsets (key 2): broker supports v1-5, klife supports v7-9")
        }
        // A required range outside what this codec implements reports the codec's full range.
        XCTAssertThrowsError(try table.negotiate(MetadataRequest.self, within: 20...30)) { error in
            XCTAssertEqual((error as? UnsupportedVersionError)?.clientRange, 1...12)
        }
    }

    func testTableDescription() {
        XCTAssertEqual(ApiVersionTable(ApiVersionsResponse.msgSample).description,
                       "Produce v3-11, Fetch v4-17, ApiVersions v0-4")
        XCTAssertEqual(ApiVersionTable([ApiVersionRange(apiKey: 1000, minVersion: 0, maxVersion: 1)]).description,
                       "key 1000 v0-1")
    }

    func testNegotiateMissingApiNamesTheApi() {
        XCTAssertThrowsError(try table.negotiate(DeleteTopicsRequest.self)) { error in
            XCTAssertEqual(String(describing: error),
                           "DeleteTopics (key 20): not supported by broker, klife supports v1-6")
        }
        do {
            _ = try table.negotiate(CreateTopicsRequest.self)
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.api, .createTopics)  // typed throws: `error` is UnsupportedVersionError
            XCTAssertNil(error.brokerRange)
        }
    }
}
