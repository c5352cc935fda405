import XCTest
@testable import KlifeProtocol

final class AppendingRecordBatchTests: XCTestCase {
    typealias Model = (timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])

    let base: Int64 = 1_700_000_000_000

    /// Records of every shape: null and empty keys and values, headers, timestamps before
    /// and after the first, values whose length varint takes one, two and three bytes.
    func sampleRecords(_ n: Int) -> [Model] {
        (0..<n).map { i in
            let key: [UInt8]? = i % 3 == 0 ? nil : (i % 3 == 1 ? [] : Array("key-\(i)".utf8))
            let valueLength = [0, 5, 100, 300, 20_000][i % 5]
            let value: [UInt8]? = i % 7 == 6 ? nil : (0..<valueLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
            let headers = i % 4 == 3 ? [RecordHeader(key: "h\(i)", value: [1, 2, 3]), RecordHeader(key: "n", value: nil)] : []
            return (base + Int64(i % 11) - 3, key, value, headers)
        }
    }

    /// Appends `records` (headers in wire form, as a producer's payload holds them); `false`
    /// where a record did not fit.
    func append(_ records: ArraySlice<Model>, to batch: inout AppendingRecordBatch) -> [Bool] {
        records.map { r in
            let headerBytes = RecordBatchLayout.headerBytes(r.headers)
            let wire = UnsafeMutableRawBufferPointer.allocate(byteCount: max(headerBytes, 1), alignment: 1)
            defer { wire.deallocate() }
            _ = RecordBatchLayout.writeHeaders(r.headers, at: wire.baseAddress!)
            let headers = EncodedHeaders(count: r.headers.count, bytes: UnsafeRawBufferPointer(rebasing: wire[..<headerBytes]))
            return r.key.withUnsafeBytesOrNil { key in
                r.value.withUnsafeBytesOrNil { value in
                    batch.tryAppend(timestamp: r.timestamp, key: key, value: value, headers: headers)
                }
            }
        }
    }

    func testAFramedBatchIsTheSameBytesAsTheEncoderWrites() {
        let records = sampleRecords(40)
        var batch = AppendingRecordBatch(limit: 1 << 20, baseTimestamp: records[0].timestamp)
        XCTAssertEqual(append(records[...], to: &batch), Array(repeating: true, count: 40))
        let framed = [UInt8](batch.frame(producerID: 4_242, producerEpoch: 7, baseSequence: 1_000, isTransactional: true))
        let expected = RecordBatchEncoder.encode(baseTimestamp: records[0].timestamp, records: records, producerID: 4_242,
                                                 producerEpoch: 7, baseSequence: 1_000, isTransactional: true)
        XCTAssertEqual(framed, expected)
        XCTAssertEqual(batch.recordCount, 40)
        XCTAssertEqual(batch.byteCount, expected.count)
    }

    func testFramingAgainWithAnotherIdentityRewritesOnlyTheHeaderAndTheChecksum() {
        let records = sampleRecords(12)
        var batch = AppendingRecordBatch(limit: 1 << 20, baseTimestamp: base)
        _ = append(records[...], to: &batch)
        _ = batch.frame(producerID: 1, producerEpoch: 0, baseSequence: 0, isTransactional: true)
        let again = [UInt8](batch.frame(producerID: 9, producerEpoch: 3, baseSequence: 77, isTransactional: false))
        let expected = RecordBatchEncoder.encode(baseTimestamp: base, records: records, producerID: 9, producerEpoch: 3,
                                                 baseSequence: 77, isTransactional: false)
        XCTAssertEqual(again, expected)

        // The same for bytes framed and kept elsewhere (a sealed batch waiting to be resent).
        var copy = [UInt8](RecordBatchEncoder.encode(baseTimestamp: base, records: records, producerID: 1, producerEpoch: 0,
                                                     baseSequence: 0, isTransactional: true))
        copy.withUnsafeMutableBytes {
            RecordBatchLayout.restamp($0, producerID: 9, producerEpoch: 3, baseSequence: 77, isTransactional: false)
        }
        XCTAssertEqual(copy, expected)
    }

    func testARestampedBatchKeepsItsOtherAttributesAndPassesItsChecksum() throws {
        let records = sampleRecords(5)
        var bytes = RecordBatchEncoder.encode(baseTimestamp: base, records: records)
        bytes[RecordBatchLayout.attributesOffset + 1] |= UInt8(RecordBatchAttributes.logAppendTime)
        bytes.withUnsafeMutableBytes {
            RecordBatchLayout.restamp($0, producerID: 5, producerEpoch: 1, baseSequence: 10, isTransactional: true)
        }
        let attributes = Int16(bytes[21]) << 8 | Int16(bytes[22])
        XCTAssertEqual(attributes & RecordBatchAttributes.logAppendTime, RecordBatchAttributes.logAppendTime)
        XCTAssertEqual(attributes & RecordBatchAttributes.transactional, RecordBatchAttributes.transactional)
        let stored = bytes[17..<21].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        XCTAssertEqual(stored, CRC32C.checksum(Array(bytes[RecordBatchLayout.attributesOffset...])))
    }

    func testAFullBatchRefusesTheRecordThatDoesNotFitAndKeepsItsBytes() {
        let records = sampleRecords(60)
        let limit = 4_096
        var batch = AppendingRecordBatch(limit: limit, baseTimestamp: records[0].timestamp)
        var batches: [[UInt8]] = []
        var current: [Model] = []
        for r in records {
            if append([r][...], to: &batch) == [true] {
                current.append(r)
                continue
            }
            // Refused: the batch is within its limit (or is one oversized record) and holds
            // exactly the records taken so far.
            XCTAssertTrue(batch.byteCount <= limit || batch.recordCount == 1)
            XCTAssertFalse(current.isEmpty)
            let framed = [UInt8](batch.frame(producerID: -1, producerEpoch: -1, baseSequence: -1, isTransactional: false))
            XCTAssertEqual(framed, RecordBatchEncoder.encode(baseTimestamp: current[0].timestamp, records: current))
            batches.append(framed)
            batch.reopen(baseTimestamp: r.timestamp)
            current = [r]
            XCTAssertEqual(append([r][...], to: &batch), [true], "the first record of a batch is always taken")
        }
        XCTAssertGreaterThan(batches.count, 5)
        // The 20,000-byte values exceed the limit: each was taken as the first record of a batch of its own.
        XCTAssertTrue(batches.contains { $0.count > limit })
        XCTAssertTrue(batches.allSatisfy { $0.count <= limit || Int32(bigEndian: $0.withUnsafeBytes {
            $0.loadUnaligned(fromByteOffset: 57, as: Int32.self)
        }) == 1 })
    }

    func testAReopenedBatchIsAsANewOne() {
        let records = sampleRecords(9)
        var batch = AppendingRecordBatch(limit: 1 << 16, baseTimestamp: base - 50)
        _ = append(records[...], to: &batch)
        _ = batch.frame(producerID: 3, producerEpoch: 3, baseSequence: 3, isTransactional: false)
        batch.reopen(baseTimestamp: base)
        XCTAssertTrue(batch.isEmpty)
        XCTAssertEqual(batch.byteCount, RecordBatchLayout.headerSize)
        _ = append(records[2...], to: &batch)
        let framed = [UInt8](batch.frame(producerID: 8, producerEpoch: 0, baseSequence: 12, isTransactional: false))
        XCTAssertEqual(framed, RecordBatchEncoder.encode(baseTimestamp: base, records: Array(records[2...]), producerID: 8,
                                                         producerEpoch: 0, baseSequence: 12))
    }

    func testSizeOfNextIsTheBytesTheAppendTakes() {
        var batch = AppendingRecordBatch(limit: 1 << 20, baseTimestamp: base)
        for r in sampleRecords(200) {
            let headerBytes = RecordBatchLayout.headerBytes(r.headers)
            let predicted = batch.sizeOfNext(timestamp: r.timestamp, keyCount: r.key?.count, valueCount: r.value?.count,
                                             headers: EncodedHeaders(count: r.headers.count, bytes: UnsafeRawBufferPointer(
                                                 start: UnsafeRawPointer(bitPattern: 16), count: headerBytes)))
            let before = batch.byteCount
            XCTAssertEqual(append([r][...], to: &batch), [true])
            XCTAssertEqual(batch.byteCount - before, predicted)
        }
    }
}

private extension Optional where Wrapped == [UInt8] {
    func withUnsafeBytesOrNil<R>(_ body: (UnsafeRawBufferPointer?) -> R) -> R {
        switch self {
        case .some(let bytes): bytes.withUnsafeBytes { body($0) }
        case .none: body(nil)
        }
    }
}
