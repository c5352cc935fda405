import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

final class BatchingTests: XCTestCase {
    /// One produceBatch spanning many partitions of several topics leaves as ONE Produce
    /// request to the (single) broker.
    func testBatchForManyPartitionsIsOneProduceRequestPerBroker() async throws {
        let client = try await Shared.client()
        let a = try await Shared.topic(client, partitions: 6)
        let b = try await Shared.topic(client, partitions: 2)
        // Warm the connection so the count below measures only the batch.
        _ = try await client.produce(ProducerRecord(topic: a, partition: 0, value: "warm"))
        let before = await client.statistics().requestsSent[.produce] ?? 0
        var records: [ProducerRecord] = []
        for p in 0..<6 { for i in 0..<10 { records.append(ProducerRecord(topic: a, partition: Int32(p), value: "a\(p)-\(i)")) } }
        for p in 0..<2 { records.append(ProducerRecord(topic: b, partition: Int32(p), value: "b\(p)")) }
        let results = await client.produceBatch(records)
        let after = await client.statistics().requestsSent[.produce] ?? 0
        let metadata = client.cachedMetadata
        XCTAssertEqual(metadata.brokers.count, 1)
        XCTAssertEqual(after - before, 1, "all 8 partitions in one Produce request")
        let offsets = try results.map { try $0.get() }
        XCTAssertEqual(offsets.count, 62)
        // Within each partition the batch's records got consecutive offsets in order.
        for p in 0..<6 {
            let inPartition = offsets.filter { $0.topic == a && $0.partition == Int32(p) }.map(\.offset)
            let base: Int64 = p == 0 ? 1 : 0
            XCTAssertEqual(inPartition, Array(base..<base + 10))
        }
        await client.close()
    }

    /// Records that arrive while a request is in flight accumulate and leave together.
    func testDynamicBatchingUnderInFlightLimit() async throws {
        let client = try await Shared.client { $0.producer.maxInFlightPerBroker = 1 }
        let topic = try await Shared.topic(client, partitions: 3)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))
        let before = await client.statistics().requestsSent[.produce] ?? 0
        let n = 2000
        for i in 0..<n {
            client.produce(ProducerRecord(topic: topic, partition: Int32(i % 3), value: "r\(i)")) { _ in }
        }
        await client.flush()
        let after = await client.statistics().requestsSent[.produce] ?? 0
        XCTAssertLessThan(after - before, n / 10, "records were batched, not sent one per request")
        let total = try await client.allRecords(topic: topic).count
        XCTAssertEqual(total, n + 1)
        await client.close()
    }

    /// Records handed to the reactor by its ring while it sleeps until a timer due within their
    /// linger do not wake it (`wakeupsSaved`); they leave with their batch, and their CreateTime
    /// is when they were produced, not when the reactor took them from its ring (up to a
    /// linger later). (The ring path: records appended on the producing thread are the next test.)
    func testLingeringRecordsLeaveASleepingReactorAsleepAndKeepTheirCreateTime() async throws {
        try await lingeringRecordsLeaveASleepingReactorAsleep(reactorCount: 1, appendOnProducingThread: false)
    }

    /// Records appended on the producing thread to an open block wake the reactor at most for
    /// the block's notice — not once per record — and keep the CreateTime of their produce call.
    func testRecordsAppendedToAnOpenBlockWakeNoReactorAndKeepTheirCreateTime() async throws {
        try await lingeringRecordsLeaveASleepingReactorAsleep(reactorCount: 1, appendOnProducingThread: true)
    }

    /// The same through the push of several reactors (which checks the metadata version the
    /// record's reactor was chosen with).
    func testLingeringRecordsLeaveASleepingReactorAsleepWithSeveralReactors() async throws {
        try await lingeringRecordsLeaveASleepingReactorAsleep(reactorCount: 2)
    }

    private func lingeringRecordsLeaveASleepingReactorAsleep(reactorCount: Int,
                                                              appendOnProducingThread: Bool = false) async throws {
        let client = try await Shared.client {
            $0.producer.linger = .seconds(1)
            $0.reactorCount = reactorCount
            $0.producer.appendOnProducingThread = appendOnProducingThread
        }
        let topic = try await Shared.topic(client, partitions: 1)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))
        let before = await client.statistics()
        let n = 50
        let outcomes = Locked<[Int: Result<RecordMetadata, KlifeError>]>([:])
        var windows: [ClosedRange<Int64>] = []
        let millis = { Int64(Date().timeIntervalSince1970 * 1000) }
        for i in 0..<n {
            let from = millis()
            client.produce(ProducerRecord(topic: topic, partition: 0, value: "r\(i)")) { result in
                outcomes.withLock { $0[i] = result }
            }
            windows.append(from...millis())
            // The first record starts the batch's linger timer; let the reactor go back to sleep.
            if i == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        await client.flush()
        let after = await client.statistics()
        if appendOnProducingThread {
            // The block's notice, the statistics task: a few, where one per record would be 50.
            XCTAssertLessThan(after.reactorWakeups - before.reactorWakeups, n / 5, "records appended to a block wake no reactor")
        } else {
            XCTAssertGreaterThan(after.wakeupsSaved - before.wakeupsSaved, 0, "records left the sleeping reactor asleep")
        }
        let results = outcomes.withLock { $0 }
        XCTAssertEqual(results.count, n)
        var offsets: [Int64] = []
        for i in 0..<n {
            let metadata = try XCTUnwrap(results[i]).get()
            offsets.append(metadata.offset)
            // Milliseconds: the reactor derives the wall time from its monotonic clock.
            XCTAssertTrue((windows[i].lowerBound - 2)...(windows[i].upperBound + 2) ~= metadata.timestamp,
                          "record \(i): CreateTime \(metadata.timestamp) outside its produce call \(windows[i])")
        }
        XCTAssertEqual(offsets, Array(1...Int64(n)), "in order, after the warm-up record")
        await client.close()
    }

    func testLingerGroupsRecordsAndStillDelivers() async throws {
        let client = try await Shared.client { $0.producer.linger = .milliseconds(20) }
        let topic = try await Shared.topic(client, partitions: 1)
        async let first = client.produce(ProducerRecord(topic: topic, partition: 0, value: "1"))
        async let second = client.produce(ProducerRecord(topic: topic, partition: 0, value: "2"))
        let offsets = try await [first.offset, second.offset].sorted()
        XCTAssertEqual(offsets, [0, 1])
        await client.close()
    }
}
