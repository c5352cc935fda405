import XCTest
import KlifeProtocol
@testable import Klife

/// Consumer records are views over the fetched bytes: keys and values are slices of the buffer
/// the answer arrived in, made on access, copied only when asked.
final class ConsumerRecordsTests: XCTestCase {
    private func index(_ batches: [[UInt8]]) throws -> RecordIndex {
        try RecordBatchDecoder.index(batches.flatMap { $0 })
    }

    private func batch(_ values: [String], pid: Int64 = -1, transactional: Bool = false) -> [UInt8] {
        RecordBatchEncoder.encode(baseTimestamp: 1_000, records: values.map { (1_000, Array("k".utf8), Array($0.utf8), []) },
                                  producerID: pid, producerEpoch: pid >= 0 ? 0 : -1, baseSequence: pid >= 0 ? 0 : -1,
                                  isTransactional: transactional)
    }

    /// An ABORT marker: a transactional batch of one control record, control bit set, CRC redone.
    private func abortMarker(pid: Int64) -> [UInt8] {
        var b = RecordBatchEncoder.encode(baseTimestamp: 1_000, records: [(1_000, [0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [])],
                                          producerID: pid, producerEpoch: 0, baseSequence: -1, isTransactional: true)
        b[RecordBatchLayout.attributesOffset + 1] |= UInt8(RecordBatchAttributes.control)
        let crc = b.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchLayout.attributesOffset...])) }
        withUnsafeBytes(of: crc.bigEndian) { b.replaceSubrange(RecordBatchLayout.crcOffset..<RecordBatchLayout.crcOffset + 4, with: $0) }
        return b
    }

    /// Batches as the log holds them: base offsets one after the other.
    private func log(_ batches: [[UInt8]]) -> [[UInt8]] {
        var next: Int64 = 0
        return batches.map { bytes in
            var b = bytes
            let count = bytes.withUnsafeBytes { RecordBatchDecoder.readHeader($0) }.recordCount
            withUnsafeBytes(of: next.bigEndian) { b.replaceSubrange(0..<8, with: $0) }
            next += Int64(count)
            return b
        }
    }

    func testVisibleRecordsOfOneRunShareTheIndexAndItsBytes() throws {
        let index = try index(log([batch(["a", "b"]), batch(["c"])]))
        let filter = TransactionFilter(isolation: .readUncommitted, lastStableOffset: -1, abortedTransactions: [])
        let records = FetchDecoding.visibleRecords(index, filter.apply(index, from: 1), topic: "t", partition: 3)
        XCTAssertEqual(records.map(\.offset), [1, 2])
        XCTAssertEqual(records.map(\.valueString), ["b", "c"])
        XCTAssertEqual(records[0].topic, "t")
        XCTAssertEqual(records[0].partition, 3)
        let fetchedBase = index.fetched.withUnsafeBytes { $0.baseAddress! }
        records[1].value!.withUnsafeBytes { value in
            XCTAssertTrue(value.baseAddress! >= fetchedBase && value.baseAddress! < fetchedBase + index.fetched.count,
                          "the value is read in place, in the fetched bytes")
        }
        XCTAssertEqual(records.payloadBytes, 4)
    }

    func testRecordsAroundAnAbortedTransactionAreGatheredInOrder() throws {
        let marker = abortMarker(pid: 7)
        let index = try index(log([batch(["a"]), batch(["x", "y"], pid: 7, transactional: true), marker, batch(["b"])]))
        let filter = TransactionFilter(isolation: .readCommitted, lastStableOffset: 100, abortedTransactions: [])
        let records = FetchDecoding.visibleRecords(index, filter.apply(index, from: 0), topic: "t", partition: 0)
        XCTAssertEqual(records.map(\.valueString), ["a", "b"])
        XCTAssertEqual(records.map(\.offset), [0, 4])
        XCTAssertEqual(records.prefix(1).map(\.valueString), ["a"])
        XCTAssertEqual(records.prefix(5).count, 2)
    }

    func testRecordsMadeByHandKeepTheirFields() {
        let headers = [RecordHeader(key: "h", value: Array("x".utf8)), RecordHeader(key: "n", value: nil)]
        let record = ConsumerRecord(topic: "t", partition: 1, offset: 42, timestamp: 7, timestampType: .logAppendTime,
                                    key: nil, value: Array("v".utf8), headers: headers)
        XCTAssertNil(record.key)
        XCTAssertTrue(record.value == Array("v".utf8))
        XCTAssertEqual(record.headers, headers)
        XCTAssertEqual(record.timestampType, .logAppendTime)
        XCTAssertEqual(record.offset, 42)
        let empty = ConsumerRecord(topic: "t", partition: 1, offset: 43, timestamp: 7, key: [], value: nil, headers: [])
        XCTAssertEqual(empty.key, [])
        XCTAssertNil(empty.value)
        let records = ConsumerRecords(topic: "t", partition: 1, [record, empty])
        XCTAssertEqual(Array(records), [record, empty])
        XCTAssertNotEqual(record, empty)
    }

    func testBytesCompareHashAndCopyByContent() {
        let a = ConsumerRecord(topic: "t", partition: 0, offset: 0, timestamp: 0, key: Array("same".utf8), value: [1, 2], headers: [])
        let b = ConsumerRecord(topic: "t", partition: 0, offset: 1, timestamp: 0, key: Array("xsame".utf8), value: nil, headers: [])
        let tail = RecordBytes(Array(b.key!.dropFirst()))
        XCTAssertEqual(a.key, tail)
        XCTAssertEqual(a.key!.hashValue, tail.hashValue)
        XCTAssertEqual(a.keyString, "same")
        XCTAssertEqual(Array(a.value!), [1, 2])
        XCTAssertEqual(a.value![1], 2)
        XCTAssertEqual(a.value!.description, "[1, 2]")
    }

    /// Views read the same fields as records, from plain and decompressed batches alike, and a
    /// throwing body stops the walk.
    func testViewsReadWhatRecordsReadAndStopAtAThrow() throws {
        let headers = [RecordHeader(key: "h", value: Array("x".utf8)), RecordHeader(key: "n", value: nil)]
        let plain = RecordBatchEncoder.encode(baseTimestamp: 1_000, records: [
            (1_000, nil, Array("a".utf8), headers), (1_001, Array("k".utf8), nil, []), (1_002, [], [], []),
        ])
        var writer = ByteWriter(capacity: 256)
        var compressed = RecordBatchEncoder(writer: &writer, baseTimestamp: 2_000)
        for i in 0..<20 { compressed.append(into: &writer, timestamp: 2_000 + Int64(i), key: Array("key".utf8), value: Array("value \(i)".utf8), headers: []) }
        let range = try compressed.finishCompressed(into: &writer, codec: .lz4, level: nil)
        let index = try index(log([plain, Array(writer.bytes[range])]))
        XCTAssertFalse(index.inflated.isEmpty, "the second batch was decompressed")
        let filter = TransactionFilter(isolation: .readUncommitted, lastStableOffset: -1, abortedTransactions: [])
        let records = FetchDecoding.visibleRecords(index, filter.apply(index, from: 0), topic: "t", partition: 0)
        XCTAssertEqual(records.count, 23)

        var seen: [(Int64, Int64, [UInt8]?, [UInt8]?, [RecordHeader], Int)] = []
        records.forEachView { view in
            seen.append((view.offset, view.timestamp, view.key.map(Array.init), view.value.map(Array.init), view.headers, view.headerCount))
        }
        XCTAssertEqual(seen.count, records.count)
        for (record, view) in zip(records, seen) {
            XCTAssertEqual(record.offset, view.0)
            XCTAssertEqual(record.timestamp, view.1)
            XCTAssertTrue(record.key == view.2, "key at \(record.offset)")
            XCTAssertTrue(record.value == view.3, "value at \(record.offset)")
            XCTAssertEqual(record.headers, view.4)
            XCTAssertEqual(record.headers.count, view.5)
        }
        XCTAssertNil(seen[0].2, "a null key is nil")
        XCTAssertEqual(seen[2].2, [], "an empty key is empty, not null")
        XCTAssertNil(seen[1].3, "a null value is nil")
        XCTAssertEqual(seen[3].3, Array("value 0".utf8))

        var tail: [String] = []
        records.records(20..<23).forEachView { tail.append($0.valueString ?? "-") }
        XCTAssertEqual(tail, ["value 17", "value 18", "value 19"], "a slice's views")

        struct Stop: Error {}
        var visited = 0
        XCTAssertThrowsError(try records.forEachView { (view: ConsumerRecordView) throws(Stop) in
            visited += 1
            if view.offset == 4 { throw Stop() }
        })
        XCTAssertEqual(visited, 5, "no view after the throw")
    }
}
