import XCTest
@testable import KlifeProtocol

/// The record index: slots that locate keys, values and headers in the fetched bytes (or in the
/// one buffer compressed batches are decompressed into) instead of copying them.
final class RecordIndexTests: XCTestCase {
    private let records: [(timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])] = [
        (1_700_000_000_000, nil, Array("value zero".utf8), []),
        (1_700_000_000_005, Array("k1".utf8), Array("value one".utf8),
         [RecordHeader(key: "h", value: Array("x".utf8)), RecordHeader(key: "n", value: nil)]),
        (1_700_000_000_002, Array("k2".utf8), nil, []),
        (1_700_000_000_009, [], [], [RecordHeader(key: "é", value: [])]),
    ]

    private func batch(_ codec: CompressionCodec) throws -> [UInt8] {
        try RecordBatchEncoder.encode(baseTimestamp: 1_700_000_000_000, records: records, compression: codec)
    }

    private func assertSlots(_ index: RecordIndex, batch: Int, baseOffset: Int64 = 0, inflated: Bool,
                             file: StaticString = #filePath, line: UInt = #line) {
        let slots = index.slots[index.batches[batch].records]
        XCTAssertEqual(slots.count, records.count, file: file, line: line)
        for (slot, record) in zip(slots, records) {
            XCTAssertEqual(slot.isInflated, inflated, file: file, line: line)
            XCTAssertEqual(slot.timestamp, record.timestamp, file: file, line: line)
            XCTAssertEqual(index.key(of: slot), record.key, file: file, line: line)
            XCTAssertEqual(index.value(of: slot), record.value, file: file, line: line)
            XCTAssertEqual(RecordHeaderReader.headers(in: index.buffer(of: slot), start: slot.headersStart, count: slot.headerCount),
                           record.headers, file: file, line: line)
            XCTAssertEqual(slot.payloadBytes, (record.key?.count ?? 0) + (record.value?.count ?? 0), file: file, line: line)
        }
        XCTAssertEqual(slots.map(\.offset), (0..<Int64(records.count)).map { baseOffset + $0 }, file: file, line: line)
    }

    func testUncompressedRecordsAreLocatedInTheFetchedBytesWithoutACopy() throws {
        let bytes = try batch(.none)
        let index = try RecordBatchDecoder.index(bytes + bytes)
        XCTAssertEqual(index.batches.count, 2)
        XCTAssertTrue(index.inflated.isEmpty, "nothing decompressed, nothing copied")
        assertSlots(index, batch: 0, inflated: false)
        assertSlots(index, batch: 1, inflated: false)
        // The second batch's slots point into the second copy of the bytes.
        let second = index.slots[index.batches[1].records.lowerBound + 1]
        XCTAssertGreaterThanOrEqual(Int(second.keyStart), bytes.count)
        let key = Array(index.fetched.bytes[Int(second.keyStart)..<Int(second.keyStart) + Int(second.keyLength)])
        XCTAssertEqual(index.key(of: second), key)
        // An index of a block shares it: records are read where they lie in it.
        let block = ByteBlock(bytes + bytes)
        let shared = try RecordBatchDecoder.index(block)
        XCTAssertTrue(shared.fetched === block, "the index holds the block it was given, not a copy")
        XCTAssertEqual(shared.slots, index.slots)
    }

    func testCompressedBatchesAreDecompressedOnceIntoOneBuffer() throws {
        for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
            let plain = try batch(.none)
            let index = try RecordBatchDecoder.index(try batch(codec) + plain + (try batch(codec)))
            XCTAssertEqual(index.batches.count, 3, "\(codec)")
            assertSlots(index, batch: 0, inflated: true)
            assertSlots(index, batch: 1, inflated: false)
            assertSlots(index, batch: 2, inflated: true)
            // Both compressed batches' records sit one after the other in `inflated`.
            let recordsSection = plain.count - RecordBatchLayout.headerSize
            XCTAssertEqual(index.inflated.count, 2 * recordsSection, "\(codec)")
        }
    }

    func testDecodeCopiesWhatTheIndexLocates() throws {
        let bytes = try batch(.none) + (try batch(.lz4))
        let index = try RecordBatchDecoder.index(bytes)
        let decoded = try RecordBatchDecoder.decode(bytes)
        XCTAssertEqual(decoded.batches.count, index.batches.count)
        for (b, entry) in zip(decoded.batches, index.batches) {
            XCTAssertEqual(b.header, entry.header)
            XCTAssertEqual(b.records.map(\.offset), index.slots[entry.records].map(\.offset))
            XCTAssertEqual(b.records.map(\.value), index.slots[entry.records].map { index.value(of: $0) })
        }
    }

    func testAppendingAnIndexShiftsItsSlotsIntoTheJoinedBuffers() throws {
        var first = try RecordBatchDecoder.index(try batch(.zstd) + (try batch(.none)))
        let second = try RecordBatchDecoder.index(try batch(.none) + (try batch(.gzip)))
        first.append(second)
        XCTAssertEqual(first.batches.count, 4)
        for (i, inflated) in [true, false, false, true].enumerated() { assertSlots(first, batch: i, inflated: inflated) }
    }

    func testATruncatedTailIsReportedAndItsRecordsLeftOut() throws {
        let bytes = try batch(.none)
        let index = try RecordBatchDecoder.index(bytes + bytes.prefix(bytes.count - 3))
        XCTAssertEqual(index.batches.count, 1)
        XCTAssertTrue(index.truncatedTail)
        XCTAssertEqual(index.slots.count, records.count)
    }

    func testHeaderReaderNeverReadsPastItsBuffer() {
        // A slot pointing past the end, or at bytes that are not headers, reads as no headers.
        XCTAssertEqual(RecordHeaderReader.headers(in: [1, 2], start: 5, count: 3), [])
        XCTAssertEqual(RecordHeaderReader.headers(in: [0x7f], start: 0, count: 1), [])
        XCTAssertEqual(RecordHeaderReader.headers(in: [0x02, 0x61, 0x01], start: 0, count: 1),
                       [RecordHeader(key: "a", value: nil)])
    }
}
