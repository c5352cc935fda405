@testable import Klife
import KlifeProtocol
import XCTest

/// `PartitionBuffer` on its own: taking batches from the front moves records out (no
/// copies) and every record comes out exactly once, in order, whatever the batch limits.
final class PartitionBufferTests: XCTestCase {
    private let counter = OutstandingCounter()

    private func record(_ i: Int) -> PendingRecord {
        let value = Array("value-\(i)".utf8)
        let size = RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: nil, valueCount: value.count,
                                                headers: [])
        return PendingRecord(topic: "t", partition: 0, key: nil, value: value, headers: [], timestamp: 1_000,
                             deadline: .max, completion: .none, size: Int32(size), tracker: counter)
    }

    func testPrefixesComeOutOnceAndInOrderUnderEveryLimit() {
        for limit in [RecordBatchLayout.headerSize + 1, 200, 1_000, 5_000, 1 << 20] {
            var buffer = PartitionBuffer()
            var taken: [String] = []
            var next = 0
            var spare: [PendingRecord] = []
            // Interleave appends and takes so `head` sits mid-array when prefixes are moved out.
            for round in 0..<40 {
                for _ in 0..<(round % 7 + 1) {
                    _ = buffer.append(record(next), now: 0, epoch: -1, lingerNanos: 0, maxBatchBytes: 1 << 20)
                    next += 1
                }
                if round % 3 != 2 {
                    let (records, bytes) = buffer.takePrefix(maxBytes: limit, spare: &spare)
                    XCTAssertFalse(records.isEmpty)
                    XCTAssertEqual(bytes, records.reduce(0) { $0 + PartitionBuffer.estimatedSize($1) })
                    taken += records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
                }
            }
            while buffer.hasUnsent {
                taken += buffer.takePrefix(maxBytes: limit, spare: &spare).records.map {
                    String(decoding: $0.value ?? [], as: UTF8.self)
                }
            }
            XCTAssertEqual(taken, (0..<next).map { "value-\($0)" }, "limit \(limit)")
            XCTAssertEqual(buffer.recordCount, 0)
            XCTAssertEqual(buffer.estimatedBytes, 0, "limit \(limit)")
        }
    }

    func testMovedOutRecordsKeepTheirValuesAfterTheBufferCompacts() {
        var buffer = PartitionBuffer()
        var spare: [PendingRecord] = []
        for i in 0..<3_000 { _ = buffer.append(record(i), now: 0, epoch: -1, lingerNanos: 0, maxBatchBytes: 1 << 20) }
        var batches: [[PendingRecord]] = []
        while buffer.hasUnsent { batches.append(buffer.takePrefix(maxBytes: 4_096, spare: &spare).records) }
        // Compaction destroyed the vacated slots; the moved records are intact and unique.
        let values = batches.joined().map { String(decoding: $0.value ?? [], as: UTF8.self) }
        XCTAssertEqual(values, (0..<3_000).map { "value-\($0)" })
        XCTAssertGreaterThan(batches.count, 10)
    }

    /// Records sent before under an identity that is gone (an epoch bump came while they were
    /// parked or on their way from another reactor) go in front of every record never sent,
    /// in the order they arrive; a prefix taken and put back keeps that.
    func testRecordsSentUnderAVoidIdentityGoBeforeRecordsNeverSent() {
        var buffer = PartitionBuffer()
        var spare: [PendingRecord] = []
        func append(_ r: PendingRecord) { _ = buffer.append(r, now: 0, epoch: 3, lingerNanos: 0, maxBatchBytes: 1 << 20) }
        func resent(_ i: Int, epoch: Int16) -> PendingRecord {
            var r = record(i)
            if epoch == PendingRecord.sentUnderVoidIdentity {
                r.sequenceEpoch = epoch
            } else {
                r.batchBase = 40
                r.sequenceEpoch = epoch
            }
            return r
        }
        func values(_ records: [PendingRecord]) -> [String] { records.map { String(decoding: $0.value ?? [], as: UTF8.self) } }
        append(record(10))
        append(record(11))
        append(resent(1, epoch: PendingRecord.sentUnderVoidIdentity))
        append(resent(2, epoch: 2))       // sequenced under an older epoch: void now
        append(record(12))
        append(resent(3, epoch: PendingRecord.sentUnderVoidIdentity))
        XCTAssertEqual(values(Array(buffer.records)), ["value-1", "value-2", "value-3", "value-10", "value-11", "value-12"])
        XCTAssertTrue(buffer.records.allSatisfy { $0.batchBase == -1 && $0.sequenceEpoch == -1 }, "no stale sequence survives")

        // Take two, put them back (a sequence reservation refused), then one more arrives.
        let (taken, _) = buffer.takePrefix(maxBytes: RecordBatchLayout.headerSize + 2 * PartitionBuffer.estimatedSize(record(1)),
                                           spare: &spare)
        XCTAssertEqual(values(taken), ["value-1", "value-2"])
        buffer.putBack(taken)
        append(resent(4, epoch: PendingRecord.sentUnderVoidIdentity))
        XCTAssertEqual(values(Array(buffer.records)), ["value-1", "value-2", "value-3", "value-4", "value-10", "value-11", "value-12"])
    }
}
