import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import XCTest

/// The consumer's rate limits on Tansu, with the limiter's time injected: what goes out never
/// exceeds burst + rate × elapsed, a partition over its own limit holds only itself, a change
/// wakes the reader, run(_:) is paced on the real clock; and a seeded property test of the
/// batch bounds across producer batch sizes, batch byte limits and fetch sizes.
final class ConsumerRateLimitTests: XCTestCase {
    /// A clock only the test moves; the limiter's timer sleeps until cancelled, so every
    /// decision happens at a time the test chose.
    final class ManualClock: Sendable {
        let nanoseconds = Locked<UInt64>(1_000_000_000)
        var now: UInt64 { nanoseconds.withLock { $0 } }
        func advance(_ by: UInt64) { nanoseconds.withLock { $0 += by } }
        var limiterClock: LimiterClock {
            LimiterClock(now: { [self] in now }, sleep: { _ in try? await Task.sleep(for: .seconds(3600)) })
        }
    }

    /// Records handed out so far, per partition, counted by the reading task.
    final class Tally: Sendable {
        let counts = Locked<[Int32: Int]>([:])
        let offsets = Locked<[Int32: [Int64]]>([:])
        func add(_ batch: ConsumerBatch) {
            counts.withLock { $0[batch.topicPartition.partition, default: 0] += batch.records.count }
            offsets.withLock { $0[batch.topicPartition.partition, default: []] += batch.records.map(\.offset) }
        }
        var total: Int { counts.withLock { $0.values.reduce(0, +) } }
        func count(_ p: Int32) -> Int { counts.withLock { $0[p] ?? 0 } }
    }

    private func fill(_ client: KlifeClient, topic: String, partition: Int32, count: Int, valueBytes: Int = 10) async {
        let padding = String(repeating: "v", count: valueBytes)
        for i in 0..<count {
            client.produce(ProducerRecord(topic: topic, partition: partition, value: "\(i):" + padding)) { _ in }
        }
        await client.flush()
    }

    private func limitedConsumer(_ client: KlifeClient, _ settings: ConsumerConfiguration,
                                 clock: ManualClock) throws -> KlifeConsumer {
        try settings.validate()
        return KlifeConsumer(client: client, configuration: settings, limiterClock: clock.limiterClock)
    }

    /// Whether the reader is suspended on the limits (a batch ready, held back).
    private func waitingOnLimits(_ consumer: KlifeConsumer) -> Bool {
        consumer.state.state.withLock { $0.waiter != nil && $0.limiter.waitingSince != nil }
    }

    func testDeliveredNeverExceedsBurstPlusRateTimesElapsed() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "ratelimit")
        let total = 600
        await fill(client, topic: topic, partition: 0, count: total)
        let clock = ManualClock()
        let start = clock.now
        let rate = 100.0, burst = 50.0
        var settings = ConsumerConfiguration()
        settings.maxRecords = 10
        settings.rateLimit = ConsumerRateLimit(recordsPerSecond: rate, burst: .milliseconds(500))
        let consumer = try limitedConsumer(client, settings, clock: clock)
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .earliest])
        let tally = Tally()
        let reader = Task {
            while tally.total < total, let batch = try await consumer.next() { tally.add(batch) }
        }
        let step: UInt64 = 50_000_000
        var advanced: UInt64 = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while tally.total < total && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
            let elapsed = Double(clock.now - start) / 1e9
            // (1e-6: floating-point rounding of the bucket's arithmetic, not time.)
            XCTAssertLessThanOrEqual(Double(tally.total), burst + rate * elapsed + 1e-6, "over burst + rate × elapsed")
            if waitingOnLimits(consumer) {
                clock.advance(step)
                advanced += step
                consumer.state.recheckLimits()
            }
        }
        try await reader.value
        XCTAssertEqual(tally.total, total)
        XCTAssertEqual(tally.offsets.withLock { $0[0] }, (0..<Int64(total)).map { $0 }, "every record once, in order")
        // Time moved only while a batch was held: the limits used it all (no token lost to a full
        // bucket), so the time taken is what the rate asks for, within one step and one batch.
        let elapsed = Double(clock.now - start) / 1e9
        XCTAssertGreaterThanOrEqual(burst + rate * elapsed + 1e-6, Double(total))
        XCTAssertLessThanOrEqual(burst + rate * elapsed, Double(total) + 10 + rate * Double(step) / 1e9)
        let stats = consumer.statistics()
        XCTAssertEqual(stats.rateLimit, settings.rateLimit)
        XCTAssertEqual(stats.rateLimitWait, .nanoseconds(Int64(advanced)), "the wait is all the time the limits held a batch")
        XCTAssertGreaterThan(stats.rateLimitWaits, 0)
        XCTAssertEqual(consumer.processed(TopicPartition(topic: topic, partition: 0)).map { $0 >= Int64(total) - 10 }, true)
        await consumer.close()
        await client.close()
    }

    func testAPartitionOverItsOwnLimitHoldsOnlyItselfAndAChangeWakesTheReader() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "ratelimit-part")
        await fill(client, topic: topic, partition: 0, count: 200)
        let clock = ManualClock()
        var settings = ConsumerConfiguration()
        settings.maxRecords = 10
        settings.rateLimit = ConsumerRateLimit(perPartitionRecordsPerSecond: 10, burst: .seconds(1))
        let consumer = try limitedConsumer(client, settings, clock: clock)
        let p0 = TopicPartition(topic: topic, partition: 0)
        let p1 = TopicPartition(topic: topic, partition: 1)
        try await consumer.assign([p0: .earliest, p1: .earliest])
        let tally = Tally()
        let reader = Task {
            while tally.total < 400, let batch = try await consumer.next() { tally.add(batch) }
        }
        // Partition 0 spends its burst (10 records) and is held; its ready batches stay.
        var deadline = ContinuousClock.now + .seconds(30)
        while !(tally.count(0) == 10 && waitingOnLimits(consumer)) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
            XCTAssertLessThanOrEqual(tally.count(0), 10, "partition 0 over its own burst")
        }
        XCTAssertEqual(tally.count(0), 10)
        // Partition 1's records go out although partition 0's batches arrived first.
        await fill(client, topic: topic, partition: 1, count: 200)
        deadline = ContinuousClock.now + .seconds(30)
        while tally.count(1) < 10 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        XCTAssertEqual(tally.count(1), 10, "the other partition is not held by partition 0's limit")
        XCTAssertEqual(tally.count(0), 10, "and partition 0 is still held (its time has not moved)")
        XCTAssertGreaterThan(consumer.statistics().partitions[p0]?.bufferedBytes ?? 0, 0, "held batches stay buffered")
        XCTAssertEqual(consumer.processed(p0).map { $0 <= 10 }, true, "nothing held counts as processed")
        // Half a second: 5 more records of each partition, never more.
        clock.advance(500_000_000)
        consumer.state.recheckLimits()
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertLessThanOrEqual(tally.count(0), 15)
        XCTAssertLessThanOrEqual(tally.count(1), 15)
        // Removing the limit wakes the waiting reader: the rest goes out with the clock standing still.
        try consumer.setRateLimit(nil)
        XCTAssertNil(consumer.rateLimit)
        XCTAssertThrowsError(try consumer.setRateLimit(ConsumerRateLimit(recordsPerSecond: -1))) {
            XCTAssertTrue("\($0)".contains("consumer.rateLimit.recordsPerSecond"))
        }
        try await withTimeout(.seconds(30)) { try await reader.value }
        XCTAssertEqual(tally.offsets.withLock { $0[0] }, (0..<200).map { Int64($0) })
        XCTAssertEqual(tally.offsets.withLock { $0[1] }, (0..<200).map { Int64($0) })
        await consumer.close()
        await client.close()
    }

    func testAReaderWaitingOnTheLimitsCanBeCancelled() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "ratelimit-cancel")
        await fill(client, topic: topic, partition: 0, count: 50)
        let clock = ManualClock()
        var settings = ConsumerConfiguration()
        settings.maxRecords = 5
        settings.rateLimit = ConsumerRateLimit(recordsPerSecond: 5, burst: .seconds(1))
        let consumer = try limitedConsumer(client, settings, clock: clock)
        let tp = TopicPartition(topic: topic, partition: 0)
        try await consumer.assign([tp: .earliest])
        let first = try await withTimeout(.seconds(30)) { try await consumer.next() }
        XCTAssertEqual(first?.records.count, 5, "the burst")
        let reader = Task { try await consumer.next() }
        let deadline = ContinuousClock.now + .seconds(30)
        while !waitingOnLimits(consumer) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        XCTAssertTrue(waitingOnLimits(consumer), "held by the limit")
        clock.advance(300_000_000)
        reader.cancel()
        do {
            _ = try await reader.value
            XCTFail("a cancelled reader gets no batch")
        } catch {
            XCTAssertEqual((error as? KlifeError)?.code, .cancelled)
        }
        let after = consumer.state.state.withLock { (timer: $0.rateTimer == nil, waiting: $0.limiter.waitingSince == nil) }
        XCTAssertTrue(after.timer && after.waiting, "no timer and no wait left behind")
        XCTAssertEqual(consumer.statistics().rateLimitWait, .milliseconds(300))
        XCTAssertEqual(consumer.processed(tp), 5, "only the batch handed out counts as processed")
        // The held batch is still there for the next reader once the limit allows it.
        clock.advance(700_000_000)
        let next = try await withTimeout(.seconds(30)) { try await consumer.next() }
        XCTAssertEqual(next?.records.first?.offset, 5)
        await consumer.close()
        await client.close()
    }

    func testRunIsPacedOnTheMonotonicClock() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "ratelimit-run")
        await fill(client, topic: topic, partition: 0, count: 150)
        await fill(client, topic: topic, partition: 1, count: 150)
        let rate = 300.0, burst = 30.0
        var settings = ConsumerConfiguration()
        settings.maxRecords = 25
        settings.rateLimit = ConsumerRateLimit(recordsPerSecond: rate, burst: .milliseconds(100))
        // The limiter's buckets start at construction: every record counted after that instant.
        let start = Reactor.monotonicNanoseconds()
        let consumer = try client.consumer(settings)
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .earliest,
                                   TopicPartition(topic: topic, partition: 1): .earliest])
        let tally = Tally()
        let over = Locked(0)
        let runner = Task { try await consumer.run { batch in
            tally.add(batch)
            // Seen after the decision, so at a time no earlier than the limiter's.
            let elapsed = Double(Reactor.monotonicNanoseconds() - start) / 1e9
            if Double(tally.total) > burst + 25 + rate * elapsed { over.withLock { $0 += 1 } }
        } }
        let deadline = ContinuousClock.now + .seconds(30)
        while tally.total < 300 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(tally.total, 300)
        XCTAssertEqual(over.withLock { $0 }, 0, "over burst + rate × elapsed (+ one batch in flight)")
        XCTAssertGreaterThan(consumer.statistics().rateLimitWait, .zero, "the limits held delivery")
        await consumer.close()
        try await runner.value
        await client.close()
    }

    /// Every batch within maxRecords (and maxBatchBytes unless a single record), every record once
    /// in order, over seeded random producer batch sizes, record sizes, batch limits and fetch
    /// sizes. `KLIFE_PROPERTY_SEED` replays a run.
    func testBatchBoundsHoldAcrossRandomSizes() async throws {
        let seed = ProcessInfo.processInfo.environment["KLIFE_PROPERTY_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("testBatchBoundsHoldAcrossRandomSizes seed: \(seed) (KLIFE_PROPERTY_SEED=\(seed) replays it)")
        var random = SplitMix(seed: seed)
        for round in 0..<4 {
            let producerBatch = Int.random(in: 1024...(64 << 10), using: &random)
            let valueMax = Int.random(in: 0...2000, using: &random)
            let count = Int.random(in: 200...600, using: &random)
            var settings = ConsumerConfiguration()
            settings.maxRecords = [1, 7, 50, 200, 500][Int.random(in: 0..<5, using: &random)]
            settings.maxBatchBytes = Int.random(in: 64...(64 << 10), using: &random)
            settings.partitionMaxBytes = Int32.random(in: 1024...(256 << 10), using: &random)
            settings.fetchMaxBytes = Int32.random(in: 1024...(512 << 10), using: &random)
            settings.maxBufferedBytes = Int.random(in: (16 << 10)...(1 << 20), using: &random)
            let context = "seed \(seed) round \(round): producer batch \(producerBatch), values ≤ \(valueMax) B, "
                + "maxRecords \(settings.maxRecords), maxBatchBytes \(settings.maxBatchBytes), "
                + "partitionMaxBytes \(settings.partitionMaxBytes), fetchMaxBytes \(settings.fetchMaxBytes), "
                + "maxBufferedBytes \(settings.maxBufferedBytes)"
            let client = try await Shared.client { $0.producer.maxBatchBytes = producerBatch; $0.producer.maxRecordBytes = producerBatch }
            let topic = try await Shared.topic(client, partitions: 1, prefix: "bounds")
            var sizes: [Int] = []
            for i in 0..<count {
                let size = min(Int.random(in: 0...valueMax, using: &random), producerBatch - 200)
                sizes.append(size)
                client.produce(ProducerRecord(topic: topic, partition: 0, value: [UInt8](repeating: UInt8(i & 0xFF), count: size))) { _ in }
            }
            await client.flush()
            let consumer = try client.consumer(settings)
            try await consumer.assign([TopicPartition(topic: topic, partition: 0): .earliest])
            var offsets: [Int64] = []
            let deadline = ContinuousClock.now + .seconds(60)
            while offsets.count < count && ContinuousClock.now < deadline {
                guard let batch = try await withTimeout(deadline - ContinuousClock.now, { try await consumer.next() }) else { break }
                XCTAssertLessThanOrEqual(batch.records.count, settings.maxRecords, "over maxRecords: \(context)")
                XCTAssertFalse(batch.records.isEmpty, "an empty batch: \(context)")
                if batch.records.count > 1 {
                    XCTAssertLessThanOrEqual(batch.bytes, settings.maxBatchBytes, "over maxBatchBytes: \(context)")
                }
                for record in batch.records {
                    XCTAssertEqual(record.value?.count ?? 0, sizes[Int(record.offset)], "record \(record.offset): \(context)")
                }
                offsets += batch.records.map(\.offset)
            }
            XCTAssertEqual(offsets, (0..<Int64(count)).map { $0 }, "every record once, in order: \(context)")
            await consumer.close()
            await client.close()
        }
    }
}
