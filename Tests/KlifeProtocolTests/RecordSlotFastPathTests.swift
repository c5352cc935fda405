import XCTest
@testable import KlifeProtocol

/// The record index reads most records with raw loads (`plainSlot`) and falls back to the
/// checked reader (`readSlot`) for every other shape. Whenever the fast path answers, its slot
/// must be exactly the checked reader's, and the checked reader must accept the record whole.
final class RecordSlotFastPathTests: XCTestCase {
    private let header = RecordBatchHeader(
        baseOffset: 1_000, length: 0, partitionLeaderEpoch: -1, magic: 2, crc: 0, attributes: 0, lastOffsetDelta: 0,
        baseTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_500, producerID: -1, producerEpoch: -1,
        baseSequence: -1, recordCount: 1)

    /// A record body (without its length varint) as a producer writes it.
    private func body(timestampDelta: Int64, offsetDelta: Int32, key: [UInt8]?, value: [UInt8]?,
                      headers: [RecordHeader] = []) -> [UInt8] {
        let batch = RecordBatchEncoder.encode(baseTimestamp: 0, records: [(timestampDelta, key, value, headers)])
        let records = Array(batch[RecordBatchLayout.headerSize...])
        return records.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let length = Int(reader.readVarint())
            var bytes = Array(records[reader.offset..<(reader.offset + length)])
            // Offset delta as asked (the encoder numbers records from 0).
            if offsetDelta != 0 {
                var w = ByteWriter(capacity: 16)
                w.writeVarint(offsetDelta)
                let tsSize = ByteWriter.varlongSize(timestampDelta)
                bytes.replaceSubrange((1 + tsSize)..<(2 + tsSize), with: w.bytes)
            }
            return bytes
        }
    }

    private func slots(_ bytes: [UInt8], logAppend: Bool = false) -> (fast: RecordSlot?, checked: RecordSlot, error: DecodeError?, atEnd: Bool) {
        bytes.withUnsafeBytes { raw in
            let fast = raw.baseAddress.flatMap {
                RecordBatchDecoder.plainSlot($0, length: raw.count, header: header, logAppend: logAppend, position: 100, inflated: false)
            }
            var r = ByteReader(raw)
            let checked = RecordBatchDecoder.readSlot(&r, header: header, logAppend: logAppend, position: 100, inflated: false)
            return (fast, checked, r.error, r.isAtEnd)
        }
    }

    func testCommonShapesTakeTheFastPathWithTheCheckedReadersSlot() {
        let shapes: [[UInt8]] = [
            body(timestampDelta: 0, offsetDelta: 0, key: nil, value: Array(repeating: 7, count: 100)),
            body(timestampDelta: 5, offsetDelta: 63, key: Array("user-42".utf8), value: []),
            body(timestampDelta: 8_000, offsetDelta: 8_000, key: [], value: nil),
            body(timestampDelta: -3, offsetDelta: 1, key: Array(repeating: 1, count: 200), value: Array(repeating: 2, count: 3_000)),
            body(timestampDelta: 9_000, offsetDelta: 100_000, key: nil, value: Array(repeating: 3, count: 20_000)),
        ]
        for (i, bytes) in shapes.enumerated() {
            for logAppend in [false, true] {
                let s = slots(bytes, logAppend: logAppend)
                XCTAssertNil(s.error, "shape \(i)")
                XCTAssertTrue(s.atEnd, "shape \(i)")
                XCTAssertEqual(s.fast, s.checked, "shape \(i) logAppend \(logAppend)")
            }
        }
    }

    func testOtherShapesGoToTheCheckedReader() {
        let withHeaders = body(timestampDelta: 0, offsetDelta: 0, key: nil, value: [1], headers: [RecordHeader(key: "h", value: nil)])
        XCTAssertNil(slots(withHeaders).fast, "headers: checked reader")
        let longDelta = body(timestampDelta: 1 << 20, offsetDelta: 0, key: nil, value: [1])
        XCTAssertNil(slots(longDelta).fast, "a four-byte varint: checked reader")
        XCTAssertNotNil(slots(longDelta).checked)
        let plain = body(timestampDelta: 0, offsetDelta: 0, key: nil, value: [1, 2, 3])
        XCTAssertNil(slots(plain + [0]).fast, "a byte past the fields")
        XCTAssertNil(slots(Array(plain.dropLast())).fast, "a byte short")
    }

    /// Random bytes and mutated records: the fast path either declines or agrees with the
    /// checked reader on a record it accepts whole.
    func testRandomBodiesNeverDisagree() {
        var rng = XorShift(seed: 0xFA57)
        var taken = 0
        let base = body(timestampDelta: 3, offsetDelta: 2, key: Array("k".utf8), value: Array(repeating: 9, count: 40))
        for iteration in 0..<20_000 {
            var bytes: [UInt8]
            if iteration % 2 == 0 {
                bytes = (0..<Int.random(in: 0...24, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = base
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1: if bytes.count > 1 { bytes.removeLast(Int.random(in: 1..<bytes.count, using: &rng)) }
                    default: bytes.append(UInt8.random(in: 0...255, using: &rng))
                    }
                }
            }
            let s = slots(bytes)
            guard let fast = s.fast else { continue }
            taken += 1
            XCTAssertNil(s.error, "bytes \(bytes)")
            XCTAssertTrue(s.atEnd, "bytes \(bytes)")
            XCTAssertEqual(fast, s.checked, "bytes \(bytes)")
        }
        XCTAssertGreaterThan(taken, 100, "the fast path was exercised")
    }
}
