@testable import Klife
import KlifeProtocol
import KlifeIO
import XCTest

/// `PartitionBuffer` on its own: taking batches from the front moves records out (no
/// copies) and every record comes out exactly once, in order, whatever the batch limits.
final class PartitionBufferTests: XCTestCase {
    private let counter = OutstandingCounter()
    private let pool = RecordChunkPool()

    private func record(_ i: Int) -> PendingRecord {
        let value = Array("value-\(i)".utf8)
        let size = RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: nil, valueCount: value.count,
                                                headers: [])
        return PendingRecord.withPayload(topic: "t", partition: 0, key: nil, value: value, headers: [], timestamp: 1_000,
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
                    _ = buffer.append(record(next), now: 0, epoch: -1, lingerNanos: 0, maxBatchBytes: 1 << 20, pool: pool)
                    next += 1
                }
                if round % 3 != 2 {
                    let (records, bytes) = buffer.takePrefix(maxBytes: limit, spare: &spare, pool: pool)
                    XCTAssertFalse(records.isEmpty)
                    XCTAssertEqual(bytes, records.reduce(0) { $0 + PartitionBuffer.estimatedSize($1) })
                    taken += records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
                }
            }
            while buffer.hasUnsent {
                taken += buffer.takePrefix(maxBytes: limit, spare: &spare, pool: pool).records.map {
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
        for i in 0..<3_000 { _ = buffer.append(record(i), now: 0, epoch: -1, lingerNanos: 0, maxBatchBytes: 1 << 20, pool: pool) }
        var batches: [[PendingRecord]] = []
        while buffer.hasUnsent { batches.append(buffer.takePrefix(maxBytes: 4_096, spare: &spare, pool: pool).records) }
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
        func append(_ r: PendingRecord) { _ = buffer.append(r, now: 0, epoch: 3, lingerNanos: 0, maxBatchBytes: 1 << 20, pool: pool) }
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
        XCTAssertEqual(values(buffer.unsentRecords), ["value-1", "value-2", "value-3", "value-10", "value-11", "value-12"])
        XCTAssertTrue(buffer.unsentRecords.allSatisfy { $0.batchBase == -1 && $0.sequenceEpoch == -1 }, "no stale sequence survives")

        // Take two, put them back (a sequence reservation refused), then one more arrives.
        let (taken, _) = buffer.takePrefix(maxBytes: RecordBatchLayout.headerSize + 2 * PartitionBuffer.estimatedSize(record(1)),
                                           spare: &spare, pool: pool)
        XCTAssertEqual(values(taken), ["value-1", "value-2"])
        buffer.putBack(taken, pool: pool)
        append(resent(4, epoch: PendingRecord.sentUnderVoidIdentity))
        XCTAssertEqual(values(buffer.unsentRecords), ["value-1", "value-2", "value-3", "value-4", "value-10", "value-11", "value-12"])
    }
}

/// `RecordQueue` (a `ChunkedQueue` of records) across chunk boundaries: order kept through appends, moves and prepends,
/// and emptied chunks go back to the pool and are reused (a backlog that drains and fills
/// again allocates nothing new).
final class RecordQueueTests: XCTestCase {
    private let counter = OutstandingCounter()

    private func record(_ i: Int) -> PendingRecord {
        PendingRecord.withPayload(topic: "t", partition: 0, key: nil, value: Array("v\(i)".utf8), headers: [], timestamp: 0,
                      deadline: UInt64(i), completion: .none, size: 10, tracker: counter)
    }

    private func values(_ records: [PendingRecord]) -> [Int] {
        records.map { Int(String(decoding: $0.value!.dropFirst(), as: UTF8.self))! }
    }

    func testOrderSurvivesChunkBoundariesMovesAndPrepends() {
        let pool = RecordChunkPool()
        var queue = RecordQueue()
        let n = RecordChunk.capacity * 3 + 17
        for i in 0..<n { queue.append(record(i), pool: pool) }
        XCTAssertEqual(queue.count, n)
        var out: [PendingRecord] = []
        queue.moveFront(RecordChunk.capacity + 5, appendingTo: &out, pool: pool)
        XCTAssertEqual(values(out), Array(0..<(RecordChunk.capacity + 5)))
        XCTAssertEqual(pool.pooledCount, 1, "the emptied first chunk went back")
        // Put the last 10 taken back in front.
        let back = Array(out.suffix(10))
        queue.prepend(back, pool: pool)
        XCTAssertEqual(queue.withFirst({ $0.deadline }), UInt64(RecordChunk.capacity - 5))
        var rest: [PendingRecord] = []
        queue.removeAll(appendingTo: &rest, pool: pool)
        XCTAssertEqual(values(rest), Array((RecordChunk.capacity - 5)..<n))
        XCTAssertTrue(queue.isEmpty)
        XCTAssertNil(queue.withFirst({ $0.deadline }))
    }

    func testADrainedBacklogReusesItsChunks() {
        let pool = RecordChunkPool()
        var queue = RecordQueue()
        var sink: [PendingRecord] = []
        for i in 0..<(RecordChunk.capacity * 8) { queue.append(record(i), pool: pool) }
        queue.removeAll(appendingTo: &sink, pool: pool)
        let pooled = pool.pooledCount
        XCTAssertEqual(pooled, 8)
        for round in 0..<5 {
            for i in 0..<(RecordChunk.capacity * 8) { queue.append(record(i), pool: pool) }
            XCTAssertEqual(pool.pooledCount, 0, "round \(round): every chunk came from the pool")
            sink.removeAll(keepingCapacity: true)
            queue.removeAll(appendingTo: &sink, pool: pool)
            XCTAssertEqual(pool.pooledCount, pooled)
            XCTAssertEqual(values(sink), Array(0..<(RecordChunk.capacity * 8)))
        }
    }

    /// A record's completion lives in its payload chunk, not in the record: moving the record
    /// through a queue neither copies nor drops it, and it is destroyed (its closure released,
    /// never called) exactly when the record's entry is released.
    func testACompletionLivesUntilTheRecordsEntryIsReleased() {
        let pool = RecordChunkPool()
        weak var watched: AnyObject?
        let called = Locked(false)
        do {
            var queue = RecordQueue()
            final class Box: @unchecked Sendable {}
            let box = Box()
            watched = box
            let r = PendingRecord.withPayload(topic: "t", partition: 0, key: nil, value: Array("v1".utf8), timestamp: 0,
                                              deadline: 1, completion: .callback { _ in _ = box; called.withLock { $0 = true } },
                                              size: 10, tracker: counter)
            queue.append(r, pool: pool)
            queue.append(record(2), pool: pool)
            var first: [PendingRecord] = []
            queue.moveFront(1, appendingTo: &first, pool: pool)
            XCTAssertEqual(values(first), [1])
            XCTAssertNotNil(watched, "the chunk holds the completion while the record waits")
            first[0].releasePayload()
            first.removeAll()
        }
        XCTAssertNil(watched, "released with the record's entry")
        XCTAssertFalse(called.withLock { $0 }, "a released completion is not called")
    }

    /// Delivery takes the completion out of the chunk to call it: it is called once, released
    /// right after the call (its context was not copied for it), and the entry's release that
    /// follows finds nothing left to destroy — both the batch path (`deliver` then
    /// `releasePayloads`) and the single-record one (`complete`).
    func testADeliveredCompletionIsCalledOnceAndReleasedOnce() {
        final class Box: @unchecked Sendable {}
        let calls = Locked(0)
        weak var batched: AnyObject?
        weak var single: AnyObject?
        let completed = OutstandingCounter()
        do {
            let boxes = (Box(), Box())
            batched = boxes.0
            single = boxes.1
            let first = PendingRecord.withPayload(
                topic: "t", partition: 0, key: nil, value: Array("v1".utf8), timestamp: 0, deadline: 1,
                completion: .callback { [box = boxes.0] result in
                    _ = box
                    if case .success = result { calls.withLock { $0 += 1 } }
                }, size: 10, tracker: counter)
            let second = PendingRecord.withPayload(
                topic: "t", partition: 0, key: nil, value: Array("v2".utf8), timestamp: 0, deadline: 1,
                completion: .callback { [box = boxes.1] result in
                    _ = box
                    if case .failure = result { calls.withLock { $0 += 10 } }
                }, size: 10, tracker: completed)
            completed.reserve(bytes: 10)
            let records = [first]
            records.withUnsafeBufferPointer { records in
                PendingRecord.deliver(at: records.baseAddress!, .success(RecordMetadata(topic: "t", partition: 0, offset: 7,
                                                                                         timestamp: 0)))
            }
            XCTAssertNotNil(batched, "the test's own reference")
            records.withUnsafeBufferPointer { PendingRecord.releasePayloads($0) }
            second.fail(.timedOut("test"))
            XCTAssertEqual(completed.value, 0, "the failed record was counted out")
        }
        XCTAssertEqual(calls.withLock { $0 }, 11, "each completion called once with its outcome")
        XCTAssertNil(batched, "released once, after delivery and the entry's release")
        XCTAssertNil(single, "released once by complete")
    }

    func testExpiredRecordsLeaveFromTheFrontOfResentThenFresh() {
        let pool = RecordChunkPool()
        var buffer = PartitionBuffer()
        for i in 0..<(RecordChunk.capacity + 10) {
            _ = buffer.append(record(100 + i), now: 0, epoch: 1, lingerNanos: 0, maxBatchBytes: 1 << 30, pool: pool)
        }
        var retried = record(50)
        retried.batchBase = -1
        buffer.requeueFront([retried], notBefore: 0, epoch: 1)
        let expired = buffer.removeExpiredUnsent(now: UInt64(100 + RecordChunk.capacity + 2), pool: pool)
        XCTAssertEqual(values(expired), [50] + Array(100...(100 + RecordChunk.capacity + 2)))
        XCTAssertEqual(buffer.unsentCount, 7)
        XCTAssertEqual(buffer.estimatedBytes, 7 * PartitionBuffer.estimatedSize(record(0)))
    }
}
