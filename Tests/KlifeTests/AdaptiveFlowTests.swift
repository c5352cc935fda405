import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import XCTest

/// The adaptive limit, downstream capacity and flow statistics on Tansu. Latency that decides
/// anything comes from a clock the handlers move (deterministic); real time only paces
/// liveness waits. Assertions compare limits and counts, never durations.
final class AdaptiveFlowTests: XCTestCase {
    typealias ManualClock = ConsumerRateLimitTests.ManualClock

    /// Records processed, per partition, in the order handlers saw them.
    final class Processed: Sendable {
        let offsets = Locked<[Int32: [Int64]]>([:])
        func add(_ batch: ConsumerBatch) {
            offsets.withLock { $0[batch.topicPartition.partition, default: []] += batch.records.map(\.offset) }
        }
        var total: Int { offsets.withLock { $0.values.reduce(0) { $0 + $1.count } } }
        func of(_ p: Int32) -> [Int64] { offsets.withLock { $0[p] ?? [] } }
    }

    /// Handlers running now and the most seen at once, in batches and in records; and the
    /// in-flight bound: records running never above the largest limit any running batch was
    /// handed out under (the limit held at the latest of those hand-outs).
    final class Concurrency: Sendable {
        private let running = Locked<(batches: Int, records: Int, limits: [Int], maxBatches: Int, overLimit: Int)>((0, 0, [], 0, 0))
        func enter(_ batch: ConsumerBatch) {
            running.withLock { r in
                r.batches += 1
                r.records += batch.records.count
                r.limits.append(batch.limitAtHandOut)
                r.maxBatches = max(r.maxBatches, r.batches)
                if batch.limitAtHandOut > 0 && r.records > r.limits.max()! { r.overLimit += 1 }
            }
        }
        func leave(_ batch: ConsumerBatch) {
            running.withLock { r in
                r.batches -= 1
                r.records -= batch.records.count
                r.limits.remove(at: r.limits.firstIndex(of: batch.limitAtHandOut)!)
            }
        }
        var maxBatches: Int { running.withLock { $0.maxBatches } }
        var overLimit: Int { running.withLock { $0.overLimit } }
        var batches: Int { running.withLock { $0.batches } }
    }

    /// A pool of permits, as an application's connection pool would hand them out.
    final class PermitPool: DownstreamPermits {
        private let state = Locked<(free: Int, waiters: [UInt64: CheckedContinuation<Void, any Error>], next: UInt64)>((0, [:], 0))
        let acquired = Locked(0)
        init(_ size: Int) { state.withLock { $0.free = size } }

        func acquire() async throws {
            let id = state.withLock { s -> UInt64 in
                s.next += 1
                return s.next
            }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    let granted = state.withLock { s -> Bool? in
                        if Task.isCancelled { return nil }
                        if s.free > 0 {
                            s.free -= 1
                            return true
                        }
                        s.waiters[id] = c
                        return false
                    }
                    switch granted {
                    case nil: c.resume(throwing: CancellationError())
                    case true?: c.resume()
                    case false?: break
                    }
                }
            } onCancel: {
                state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
            }
            acquired.withLock { $0 += 1 }
        }

        func release() {
            let waiter = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let id = s.waiters.keys.min() else {
                    s.free += 1
                    return nil
                }
                return s.waiters.removeValue(forKey: id)
            }
            waiter?.resume()
        }

        var free: Int { state.withLock { $0.free } }
    }

    /// A client and a new topic with `count` records in each partition.
    private func filledTopic(partitions: Int32, count: Int, prefix: String) async throws -> (KlifeClient, String) {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: partitions, prefix: prefix)
        for p in 0..<partitions {
            for i in 0..<count { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) { _ in } }
        }
        await client.flush()
        return (client, topic)
    }

    private func consumer(_ client: KlifeClient, _ settings: ConsumerConfiguration, clock: ManualClock? = nil) throws -> KlifeConsumer {
        try settings.validate()
        return KlifeConsumer(client: client, configuration: settings, limiterClock: clock?.limiterClock ?? .monotonic)
    }

    /// `run` with handlers that count concurrency and what they processed around `body`.
    private func runCounting(_ consumer: KlifeConsumer, _ processed: Processed, _ concurrency: Concurrency,
                             _ body: @escaping @Sendable (ConsumerBatch) async throws -> Void = { _ in }) -> Task<Void, any Error> {
        Task { try await consumer.run { batch in
            concurrency.enter(batch)
            defer { concurrency.leave(batch) }
            try await body(batch)
            processed.add(batch)
        } }
    }

    private func assignAll(_ consumer: KlifeConsumer, topic: String, partitions: Int32) async throws {
        var starts: [TopicPartition: ConsumerStart] = [:]
        for p in 0..<partitions { starts[TopicPartition(topic: topic, partition: p)] = .earliest }
        try await consumer.assign(starts)
    }

    // MARK: Adaptive limit

    func testTheLimitDropsWhileTheHandlerIsSlowAndRecoversAfterwards() async throws {
        let total = 900
        let slow: Range<Int64> = 300..<500
        let (client, topic) = try await filledTopic(partitions: 1, count: total, prefix: "adaptive-phases")
        let clock = ManualClock()
        var settings = ConsumerConfiguration()
        settings.groupID = TestCluster.uniqueTopicName("adaptive-group")
        settings.autoCommitInterval = .milliseconds(20)
        settings.maxRecords = 50
        settings.adaptiveLimit = AdaptiveLimit(minimum: 1, maximum: 100, initial: 50, increasePerRoundTrip: 10)
        let consumer = try consumer(client, settings, clock: clock)
        let tp = TopicPartition(topic: topic, partition: 0)
        try await consumer.assign([tp: .earliest])
        let processed = Processed()
        // (first offset of the batch, limit at hand-out, batch size) per batch, in order.
        let seen = Locked<[(first: Int64, limit: Int, size: Int)]>([])
        let committedTooFar = Locked(0)
        let runner = Task { try await consumer.run { batch in
            let first = batch.records.first!.offset
            if let committed = consumer.committed(tp), committed > first { committedTooFar.withLock { $0 += 1 } }
            seen.withLock { $0.append((first, batch.limitAtHandOut, batch.records.count)) }
            let isSlow = batch.records.contains { slow.contains($0.offset) }
            // 1 ms per record on the consumer's clock, 5 ms in the slow phase.
            clock.advance(UInt64(batch.records.count) * 1_000_000 * (isSlow ? 5 : 1))
            processed.add(batch)
        } }
        await eventually("every record is processed", within: .seconds(60)) { processed.total >= total }
        await eventually("the last batch is committed", within: .seconds(30)) { consumer.committed(tp) == Int64(total) }
        await consumer.close()
        try await runner.value

        XCTAssertEqual(processed.of(0), (0..<Int64(total)).map { $0 }, "every record once, in order")
        XCTAssertEqual(committedTooFar.withLock { $0 }, 0, "a commit passed a record not yet processed")
        let batches = seen.withLock { $0 }
        XCTAssertTrue(batches.allSatisfy { $0.size <= $0.limit }, "a batch larger than the limit it was handed out under")
        let before = batches.filter { $0.first < slow.lowerBound }.map(\.limit)
        let during = batches.filter { slow.contains($0.first) }.map(\.limit)
        let after = batches.filter { $0.first >= slow.upperBound + 100 }.map(\.limit)
        let stats = consumer.statistics()
        XCTAssertFalse(before.isEmpty || during.isEmpty || after.isEmpty, "batches in every phase: \(batches)")
        XCTAssertLessThan(during.min()!, before.last!, "the limit dropped in the slow phase: \(batches)")
        XCTAssertLessThanOrEqual(during.min()!, before.last! / 8, "fast: multiplicative, not one step: \(batches)")
        XCTAssertGreaterThan(after.last!, during.min()!, "and recovered after it: \(batches)")
        XCTAssertGreaterThan(stats.adaptiveLimit?.decreases ?? 0, 2)
        XCTAssertEqual(stats.adaptiveLimit?.lastCongestion, .latency)
        XCTAssertEqual(stats.adaptiveLimit?.inFlightRecords, 0)
        await client.close()
    }

    func testInFlightRecordsNeverExceedTheLimitAcrossPartitionsAndErrorsCountAsCongestion() async throws {
        let partitions: Int32 = 6
        let perPartition = 200
        let (client, topic) = try await filledTopic(partitions: partitions, count: perPartition, prefix: "adaptive-inflight")
        var settings = ConsumerConfiguration()
        settings.groupID = TestCluster.uniqueTopicName("adaptive-inflight-group")
        settings.autoCommitInterval = .milliseconds(20)
        settings.maxRecords = 30
        settings.retryBackoff = .milliseconds(1)
        settings.retryBackoffMax = .milliseconds(2)
        settings.adaptiveLimit = AdaptiveLimit(minimum: 3, maximum: 60, initial: 45, increasePerRoundTrip: 5)
        let consumer = try client.consumer(settings)
        try await assignAll(consumer, topic: topic, partitions: partitions)
        let processed = Processed()
        let concurrency = Concurrency()
        let failedOnce = Locked<Set<Int32>>([])
        let committedTooFar = Locked(0)
        let runner = runCounting(consumer, processed, concurrency) { batch in
            let tp = batch.topicPartition
            if let committed = consumer.committed(tp), committed > batch.records.first!.offset {
                committedTooFar.withLock { $0 += 1 }
            }
            try await Task.sleep(for: .microseconds(200 * batch.records.count))
            // Every partition's first batch fails once: congestion, then the retry succeeds.
            if failedOnce.withLock({ $0.insert(tp.partition).inserted }) { throw KlifeError.timedOut("downstream") }
        }
        await eventually("every record is processed", within: .seconds(90)) { processed.total >= Int(partitions) * perPartition }
        let stats = consumer.statistics()
        await consumer.close()
        try await runner.value

        for p in 0..<partitions {
            XCTAssertEqual(processed.of(p), (0..<Int64(perPartition)).map { $0 }, "partition \(p): every record once, in order")
        }
        XCTAssertEqual(concurrency.overLimit, 0, "records in flight above the limit they were handed out under")
        XCTAssertGreaterThan(concurrency.maxBatches, 1, "partitions were processed concurrently")
        XCTAssertEqual(committedTooFar.withLock { $0 }, 0, "a commit passed a record not yet processed")
        XCTAssertGreaterThan(stats.adaptiveLimit?.decreases ?? 0, 0, "handler errors are congestion")
        XCTAssertGreaterThan(stats.recentLatency.count, 0)
        XCTAssertLessThanOrEqual(stats.recentLatency.p50, stats.recentLatency.p99)
        XCTAssertEqual(consumer.statistics().inFlightRecords, 0, "nothing in flight after close")
        await client.close()
    }

    func testAReaderGetsBatchesSplitToTheLimitAndAChangeAppliesAtOnce() async throws {
        let total = 300
        let (client, topic) = try await filledTopic(partitions: 1, count: total, prefix: "adaptive-reader")
        var settings = ConsumerConfiguration()
        settings.maxRecords = 50
        // A fixed limit of 7 (minimum = maximum): every batch split to it.
        settings.adaptiveLimit = AdaptiveLimit(minimum: 7, maximum: 7, initial: 7)
        let consumer = try client.consumer(settings)
        let tp = TopicPartition(topic: topic, partition: 0)
        try await consumer.assign([tp: .earliest])
        var offsets: [Int64] = []
        var expectedNext: Int64 = 0
        while offsets.count < 140 {
            let batch = try await withTimeout(.seconds(30)) { try await consumer.next() }
            guard let batch else { break }
            XCTAssertLessThanOrEqual(batch.records.count, 7, "a batch within the limit")
            XCTAssertEqual(batch.records.first?.offset, expectedNext, "the rest of a split batch comes next")
            XCTAssertEqual(batch.nextOffset, batch.records.last!.offset + 1)
            XCTAssertEqual(consumer.statistics().inFlightRecords, batch.records.count, "a reader's batch is in flight until it asks again")
            expectedNext = batch.nextOffset
            offsets += batch.records.map(\.offset)
        }
        XCTAssertEqual(consumer.statistics().adaptiveLimit?.limit, 7)
        try consumer.setAdaptiveLimit(AdaptiveLimit(minimum: 1, maximum: 100, initial: 20))
        XCTAssertEqual(consumer.statistics().adaptiveLimit?.limit, 7, "the limit reached is kept within the new bounds")
        try consumer.setAdaptiveLimit(AdaptiveLimit(minimum: 25, maximum: 25, initial: 25))
        XCTAssertEqual(consumer.statistics().adaptiveLimit?.limit, 25)
        XCTAssertEqual(consumer.adaptiveLimit?.minimum, 25)
        XCTAssertEqual(consumer.configuration.adaptiveLimit?.minimum, 25)
        XCTAssertThrowsError(try consumer.setAdaptiveLimit(AdaptiveLimit(minimum: 0))) {
            XCTAssertTrue("\($0)".contains("consumer.adaptiveLimit.minimum"))
        }
        var larger = false
        while offsets.count < total {
            let batch = try await withTimeout(.seconds(30)) { try await consumer.next() }
            guard let batch else { break }
            XCTAssertLessThanOrEqual(batch.records.count, 25)
            if batch.records.count > 7 { larger = true }
            XCTAssertEqual(batch.records.first?.offset, expectedNext)
            expectedNext = batch.nextOffset
            offsets += batch.records.map(\.offset)
        }
        XCTAssertTrue(larger, "batches up to the new limit of 25")
        try consumer.setAdaptiveLimit(nil)
        XCTAssertNil(consumer.statistics().adaptiveLimit)
        XCTAssertEqual(offsets, (0..<Int64(total)).map { $0 }, "every record once, in order")
        let stats = consumer.statistics()
        XCTAssertEqual(stats.bufferedBytes, stats.partitions.values.reduce(0) { $0 + $1.bufferedBytes },
                       "split batches keep the prefetch accounting right")
        await consumer.close()
        await client.close()
    }

    func testAPartitionTakenAwayFromARunningHandlerGivesBackItsRecordsAndPermitOnce() async throws {
        let (client, topic) = try await filledTopic(partitions: 2, count: 40, prefix: "adaptive-unassign")
        let pool = PermitPool(2)
        var settings = ConsumerConfiguration()
        settings.maxRecords = 10
        settings.retryBackoff = .milliseconds(1)
        settings.retryBackoffMax = .milliseconds(2)
        // Room for one batch: while partition 0's handler holds it, nothing else goes out.
        settings.adaptiveLimit = AdaptiveLimit(minimum: 10, maximum: 10, initial: 10)
        settings.downstream = .permits(pool)
        let consumer = try client.consumer(settings)
        let p0 = TopicPartition(topic: topic, partition: 0)
        let p1 = TopicPartition(topic: topic, partition: 1)
        try await consumer.assign([p0: .earliest])
        let processed = Processed()
        let concurrency = Concurrency()
        let runner = runCounting(consumer, processed, concurrency) { batch in
            // Partition 0 fails until it is taken away (its retries then stop: abandoned).
            if batch.topicPartition == p0 {
                try await Task.sleep(for: .milliseconds(1))
                throw KlifeError.timedOut("downstream")
            }
        }
        await eventually("partition 0's batch is in flight") { consumer.statistics().inFlightRecords == 10 }
        try await consumer.assign([p1: .earliest])
        await eventually("partition 1's records are buffered") { (consumer.statistics().partitions[p1]?.bufferedBytes ?? 0) > 0 }
        XCTAssertEqual(processed.of(1), [], "no room while partition 0's batch is in flight")
        consumer.unassign([p0])
        await eventually("partition 1 is processed once partition 0's records are released") { processed.of(1).count == 40 }
        // Nothing left to take: the dispatcher holds no permit while it waits for a batch.
        await eventually("the abandoned batch's permit is back") { pool.free == 2 && concurrency.batches == 0 }
        await consumer.close()
        try await runner.value
        XCTAssertEqual(processed.of(1), (0..<40).map { Int64($0) })
        XCTAssertEqual(processed.of(0), [], "partition 0 never succeeded")
        XCTAssertEqual(consumer.statistics().inFlightRecords, 0)
        XCTAssertEqual(pool.free, 2, "every permit back exactly once (the dispatcher's too)")
        // (No in-flight bound checked here: records of a partition taken away are released at
        // once, while its handler may still be finishing an attempt.)
        await client.close()
    }

    func testAGroupMemberHeldByTheLimitAndPermitsHandsPartitionsOverWithoutLossOrDuplicates() async throws {
        let partitions: Int32 = 4
        let perPartition = 100
        let (client, topic) = try await filledTopic(partitions: partitions, count: perPartition, prefix: "adaptive-group")
        var settings = ConsumerConfiguration()
        settings.groupID = "g-" + topic
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.autoCommitInterval = .milliseconds(100)
        settings.maxRecords = 10
        // Tansu holds a JoinGroup for about half the session timeout: keep it short.
        settings.sessionTimeout = .seconds(4)
        settings.heartbeatInterval = .milliseconds(500)
        var limited = settings
        limited.adaptiveLimit = AdaptiveLimit(minimum: 5, maximum: 20, initial: 10)
        let pool = PermitPool(1)
        limited.downstream = .permits(pool)
        let a = try client.consumer(limited)
        let processed = Locked<[TopicPartition: [Int64]]>([:])
        // Counted per member: the limit and the permits are the first member's.
        let concurrency = Concurrency()
        @Sendable func handle(_ batch: ConsumerBatch, _ concurrency: Concurrency) async throws {
            concurrency.enter(batch)
            defer { concurrency.leave(batch) }
            try await Task.sleep(for: .milliseconds(20))
            processed.withLock { $0[batch.topicPartition, default: []] += batch.records.map(\.offset) }
        }
        let runA = Task { try await a.run { try await handle($0, concurrency) } }
        await eventually("the first member processes its four partitions") {
            a.assignment.count == 4 && processed.withLock { $0.values.reduce(0) { $0 + $1.count } } > 20
        }
        let b = try client.consumer(settings)
        let runB = Task { try await b.run { try await handle($0, Concurrency()) } }
        await eventually("the partitions are split") { a.assignment.count == 2 && b.assignment.count == 2 }
        let total = Int(partitions) * perPartition
        await eventually("every record is processed", within: .seconds(120)) {
            processed.withLock { $0.values.reduce(0) { $0 + $1.count } } >= total
        }
        await a.close()
        await b.close()
        try await runA.value
        try await runB.value

        for p in 0..<partitions {
            let tp = TopicPartition(topic: topic, partition: p)
            XCTAssertEqual(processed.withLock { $0[tp] }?.sorted(), (0..<Int64(perPartition)).map { $0 },
                           "\(tp): every record once (a revoke waits for the handler and commits what it finished)")
        }
        let committed = try await client.committedOffsets(groupID: "g-" + topic)
        XCTAssertEqual(Set(committed.values), [Int64(perPartition)], "everything processed is committed")
        XCTAssertEqual(a.groupStatistics.partitionsLostEvents, 0, "held back by the limits, the member stayed in the group")
        XCTAssertEqual(concurrency.overLimit, 0)
        XCTAssertEqual(concurrency.maxBatches, 1, "one permit: one handler of the first member at a time")
        XCTAssertEqual(a.statistics().inFlightRecords, 0)
        XCTAssertEqual(pool.free, 1, "every permit back")
        await client.close()
    }

    func testAnInvalidAdaptiveLimitFailsTheConsumer() async throws {
        let client = try await Shared.client()
        var settings = ConsumerConfiguration()
        settings.adaptiveLimit = AdaptiveLimit(minimum: 0)
        XCTAssertThrowsError(try client.consumer(settings)) { error in
            XCTAssertEqual((error as? KlifeError)?.code, .invalidConfiguration)
            XCTAssertTrue("\(error)".contains("consumer.adaptiveLimit.minimum"), "\(error)")
        }
        settings.adaptiveLimit = AdaptiveLimit(minimum: 5, maximum: 10, initial: 20)
        XCTAssertThrowsError(try client.consumer(settings)) { XCTAssertTrue("\($0)".contains("consumer.adaptiveLimit.initial")) }
        settings.adaptiveLimit = nil
        settings.downstream = .query(poll: .seconds(-1)) { 1 }
        XCTAssertThrowsError(try client.consumer(settings)) { XCTAssertTrue("\($0)".contains("consumer.downstream.poll")) }
        await client.close()
    }

    // MARK: Downstream capacity

    func testAPoolOfOnePermitRunsOneHandlerAtATime() async throws {
        let partitions: Int32 = 6
        let perPartition = 60
        let (client, topic) = try await filledTopic(partitions: partitions, count: perPartition, prefix: "downstream-pool")
        let pool = PermitPool(1)
        var settings = ConsumerConfiguration()
        settings.maxRecords = 10
        settings.downstream = .permits(pool)
        let consumer = try client.consumer(settings)
        try await assignAll(consumer, topic: topic, partitions: partitions)
        let processed = Processed()
        let concurrency = Concurrency()
        let runner = runCounting(consumer, processed, concurrency) { _ in try await Task.sleep(for: .milliseconds(1)) }
        await eventually("every record is processed", within: .seconds(60)) { processed.total >= Int(partitions) * perPartition }
        await eventually("an idle consumer holds no permit") { pool.free == 1 }
        await consumer.close()
        try await runner.value
        XCTAssertEqual(concurrency.maxBatches, 1, "one permit: one handler at a time")
        for p in 0..<partitions {
            XCTAssertEqual(processed.of(p), (0..<Int64(perPartition)).map { $0 }, "partition \(p): every record once, in order")
        }
        XCTAssertEqual(pool.free, 1, "every permit given back")
        XCTAssertGreaterThanOrEqual(pool.acquired.withLock { $0 }, Int(partitions) * perPartition / 10)
        await client.close()
    }

    func testAQueryAnsweringNothingHoldsHandlersUntilItAllowsThem() async throws {
        let partitions: Int32 = 3
        let perPartition = 50
        let (client, topic) = try await filledTopic(partitions: partitions, count: perPartition, prefix: "downstream-query")
        let capacity = Locked(0)
        var settings = ConsumerConfiguration()
        settings.maxRecords = 10
        settings.downstream = .query(poll: .milliseconds(5)) { capacity.withLock { $0 } }
        let consumer = try client.consumer(settings)
        try await assignAll(consumer, topic: topic, partitions: partitions)
        let processed = Processed()
        let concurrency = Concurrency()
        let runner = runCounting(consumer, processed, concurrency)
        // Everything fetched and buffered, and the dispatcher has asked many times: no handler ran.
        await eventually("every partition's records are buffered") {
            let stats = consumer.statistics()
            return stats.recordsFetched == Int(partitions) * perPartition && stats.partitions.values.allSatisfy { $0.lag >= 0 }
        }
        let statsHeld = consumer.statistics()
        XCTAssertEqual(statsHeld.totalLag, Int64(partitions) * Int64(perPartition), "nothing handed out: every record is lag")
        XCTAssertEqual(statsHeld.batchesDelivered, 0)
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(processed.total, 0, "no handler while the downstream takes nothing")
        XCTAssertEqual(consumer.statistics().batchesDelivered, 0)
        capacity.withLock { $0 = 2 }
        await eventually("every record is processed", within: .seconds(60)) { processed.total >= Int(partitions) * perPartition }
        await consumer.close()
        try await runner.value
        XCTAssertLessThanOrEqual(concurrency.maxBatches, 2, "at most the capacity the query gives")
        for p in 0..<partitions {
            XCTAssertEqual(processed.of(p), (0..<Int64(perPartition)).map { $0 }, "partition \(p): every record once, in order")
        }
        await client.close()
    }

    func testCloseWakesADispatcherWaitingForAPermit() async throws {
        let (client, topic) = try await filledTopic(partitions: 1, count: 20, prefix: "downstream-close")
        let pool = PermitPool(0)
        var settings = ConsumerConfiguration()
        settings.downstream = .permits(pool)
        let consumer = try client.consumer(settings)
        try await assignAll(consumer, topic: topic, partitions: 1)
        let handled = Locked(0)
        let runner = Task { try await consumer.run { _ in handled.withLock { $0 += 1 } } }
        await eventually("records are buffered") { consumer.statistics().bufferedBytes > 0 }
        await consumer.close()
        try await withTimeout(.seconds(30)) { try await runner.value }
        XCTAssertEqual(handled.withLock { $0 }, 0, "no permit, no handler")
        XCTAssertEqual(pool.free, 0, "no permit appeared or was given back twice")
        await client.close()
    }

    // MARK: Statistics

    func testStatisticsUpdatesComeEveryIntervalAndEndWhenTheConsumerCloses() async throws {
        let partitions: Int32 = 2
        let (client, topic) = try await filledTopic(partitions: partitions, count: 30, prefix: "stats-stream")
        var settings = ConsumerConfiguration()
        settings.maxRecords = 10
        let consumer = try client.consumer(settings)
        try await assignAll(consumer, topic: topic, partitions: partitions)
        let updates = consumer.statisticsUpdates(every: .milliseconds(10))
        let collector = Task { () -> [ConsumerStatistics] in
            var seen: [ConsumerStatistics] = []
            for await stats in updates { seen.append(stats) }
            return seen
        }
        // One batch read: the rest is lag (known once fetched).
        let first = try await withTimeout(.seconds(30)) { try await consumer.next() }
        XCTAssertNotNil(first)
        await eventually("both partitions' lag is known") {
            let lag = consumer.statistics().partitions.values
            return lag.count == 2 && lag.allSatisfy { $0.lag >= 0 }
        }
        let stats = consumer.statistics()
        XCTAssertEqual(stats.totalLag, stats.partitions.values.reduce(0) { $0 + $1.lag })
        XCTAssertEqual(stats.totalLag, 60 - Int64(first!.records.count))
        XCTAssertEqual(stats.inFlightRecords, first!.records.count)
        XCTAssertNil(stats.adaptiveLimit)
        await eventually("a few snapshots arrived") { consumer.statistics().batchesDelivered > 0 }
        try await Task.sleep(for: .milliseconds(50))
        await consumer.close()
        let seen = try await withTimeout(.seconds(30)) { await collector.value }
        XCTAssertFalse(seen.isEmpty, "snapshots while the consumer ran")
        // A stream asked for after close ends at once.
        var late = consumer.statisticsUpdates(every: .milliseconds(10)).makeAsyncIterator()
        let none = await late.next()
        XCTAssertNil(none)
        await client.close()
    }

    func testAStatisticsStreamWhoseReaderGoesAwayStopsItsTimer() async throws {
        let client = try await Shared.client()
        let consumer = try client.consumer(ConsumerConfiguration())
        do {
            let updates = consumer.statisticsUpdates(every: .milliseconds(5))
            var iterator = updates.makeAsyncIterator()
            _ = await iterator.next()
            XCTAssertEqual(consumer.state.state.withLock { $0.statisticsStreams.count }, 1)
        }
        await eventually("the dropped stream is forgotten", within: .seconds(30)) {
            consumer.state.state.withLock { $0.statisticsStreams.isEmpty }
        }
        await consumer.close()
        await client.close()
    }
}
