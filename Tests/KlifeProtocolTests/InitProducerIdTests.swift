import KlifeProtocol
import XCTest

final class InitProducerIdTests: XCTestCase {
    private func encode(_ request: InitProducerIdRequest, version: Int16) -> [UInt8] {
        var writer = ByteWriter()
        request.encode(into: &writer, version: version)
        return writer.bytes
    }

    func testRequestV0() {
        XCTAssertEqual(encode(InitProducerIdRequest(transactionTimeoutMs: 1000), version: 0), [
            0xff, 0xff,                 // transactional_id: null STRING
            0x00, 0x00, 0x03, 0xe8,     // transaction_timeout_ms 1000
        ])
    }

    func testRequestV2FlexibleWithTransactionalID() {
        XCTAssertEqual(encode(InitProducerIdRequest(transactionalID: "tx", transactionTimeoutMs: 1000), version: 2), [
            0x03, 0x74, 0x78,           // transactional_id: COMPACT_STRING "tx" (length+1 = 3)
            0x00, 0x00, 0x03, 0xe8,     // transaction_timeout_ms
            0x00,                       // tagged fields
        ])
    }

    func testRequestV5BumpsEpoch() {
        XCTAssertEqual(encode(InitProducerIdRequest(transactionTimeoutMs: 0, producerID: 7, producerEpoch: 3), version: 5), [
            0x00,                                           // transactional_id: COMPACT_NULLABLE null
            0x00, 0x00, 0x00, 0x00,                         // timeout
            0, 0, 0, 0, 0, 0, 0, 7,                         // producer_id
            0x00, 0x03,                                     // producer_epoch
            0x00,                                           // tagged fields
        ])
    }

    func testResponseV0AndV4() {
        let v0: [UInt8] = [0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42, 0, 1]
        let v4 = v0 + [0]
        for (bytes, version) in [(v0, Int16(0)), (v4, Int16(4))] {
            bytes.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                let r = InitProducerIdResponse(from: &reader, version: version)
                XCTAssertNil(reader.error)
                XCTAssertTrue(reader.isAtEnd)
                XCTAssertEqual(r, InitProducerIdResponse(throttleTimeMs: 5, errorCode: 0, producerID: 42, producerEpoch: 1))
            }
        }
    }

    func testEveryTruncationFails() {
        let v4: [UInt8] = [0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42, 0, 1, 0]
        for n in 0..<v4.count {
            Array(v4[0..<n]).withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                _ = InitProducerIdResponse(from: &reader, version: 4)
                XCTAssertNotNil(reader.error, "prefix \(n)")
            }
        }
    }
}
