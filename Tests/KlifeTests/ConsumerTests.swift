import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// The consumer's fetch engine on Tansu and on librdkafka's mock cluster: bounded batches in
/// offset order, every record once, bounded prefetch, pause/resume, seek, offset reset,
/// read_committed, its own fetch connection, and leader moves while reading.
final class ConsumerTests: XCTestCase {
    /// Produces `count` records per partition, valued `p:i`, and returns them per partition.
    private func fill(_ client: KlifeClient, topic: String, partitions: Int32, count: Int,
                      valueBytes: Int = 0) async throws -> [Int32: [String]] {
        var expected: [Int32: [String]] = [:]
        let padding = String(repeating: "x", count: valueBytes)
        for p in 0..<partitions {
            for i in 0..<count {
                let value = "\(p):\(i)" + padding
                client.produce(ProducerRecord(topic: topic, partition: p, value: value)) { _ in }
                expected[p, default: []].append(value)
            }
        }
        await client.flush()
        return expected
    }

    /// Reads until `total` records arrived (or `timeout`), checking every batch's shape.
    private func read(_ consumer: KlifeConsumer, total: Int, maxRecords: Int,
                      timeout: Duration = .seconds(60)) async throws -> [Int32: [ConsumerRecord]] {
        var got: [Int32: [ConsumerRecord]] = [:]
        var count = 0
        let deadline = ContinuousClock.now + timeout
        while count < total && ContinuousClock.now < deadline {
            guard let batch = try await withTimeout(deadline - ContinuousClock.now, { try await consumer.next() }) else { break }
            XCTAssertFalse(batch.records.isEmpty, "an empty batch")
            XCTAssertLessThanOrEqual(batch.records.count, maxRecords, "a batch over maxRecords")
            XCTAssertTrue(batch.records.allSatisfy { $0.topic == batch.topicPartition.topic && $0.partition == batch.topicPartition.partition },
                          "a batch from one partition")
            XCTAssertEqual(batch.records.map(\.offset), batch.records.map(\.offset).sorted(), "offset order")
            XCTAssertGreaterThan(batch.nextOffset, batch.records.last!.offset, "reading goes on after the batch")
            got[batch.topicPartition.partition, default: []] += batch.records
            count += batch.records.count
        }
        return got
    }

    func testEveryRecordOnceInOrderInBoundedBatches() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3, prefix: "consume")
        let expected = try await fill(client, topic: topic, partitions: 3, count: 700)
        var settings = ConsumerConfiguration()
        settings.maxRecords = 100
        let consumer = try client.consumer(settings)
        try await consumer.assign(Dictionary(uniqueKeysWithValues: (0..<3).map { (TopicPartition(topic: topic, partition: $0), ConsumerStart.earliest) }))
        let got = try await read(consumer, total: 2100, maxRecords: 100)
        for p in Int32(0)..<3 {
            XCTAssertEqual(got[p]?.compactMap(\.valueString), expected[p], "partition \(p): every record once, in order")
            XCTAssertEqual(got[p]?.map(\.offset), (0..<700).map { Int64($0) })
            XCTAssertEqual(consumer.position(TopicPartition(topic: topic, partition: p)), 700)
        }
        XCTAssertEqual(consumer.lag.values.reduce(0, +), 0)
        await consumer.close()
        let end = try await consumer.next()
        XCTAssertNil(end, "a closed consumer ends its batches")
        await client.close()
    }

    func testFetchingStopsAtThePrefetchBoundAndLosesNothing() async throws {
        // Small producer batches: a broker returns the first batch of an answer whole, whatever
        // the size limit (KIP-74), so one batch is how far the bound may be crossed.
        let client = try await Shared.client { $0.producer.maxBatchBytes = 4096; $0.producer.maxRecordBytes = 4096 }
        let topic = try await Shared.topic(client, partitions: 1, prefix: "prefetch")
        let expected = try await fill(client, topic: topic, partitions: 1, count: 300, valueBytes: 1000)
        var settings = ConsumerConfiguration()
        settings.maxBufferedBytes = 16 << 10
        settings.partitionMaxBytes = 4 << 10
        settings.maxRecords = 10
        let consumer = try client.consumer(settings)
        let tp = TopicPartition(topic: topic, partition: 0)
        try await consumer.assign([tp: .earliest])
        // Nobody reads: the engine fills the buffer to the bound and stops there.
        var buffered = 0
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(20))
            buffered = consumer.state.state.withLock { $0.bufferedBytes }
            if buffered >= settings.maxBufferedBytes { break }
        }
        XCTAssertGreaterThanOrEqual(buffered, settings.maxBufferedBytes, "fetched up to the bound")
        try await Task.sleep(for: .milliseconds(300))
        let after = consumer.state.state.withLock { (bytes: $0.bufferedBytes, inFlight: $0.partitions[tp]!.inFlight) }
        XCTAssertEqual(after.bytes, buffered, "nothing more fetched while the buffer is full")
        // The last answer may cross the bound by at most one record batch (never split).
        XCTAssertLessThanOrEqual(after.bytes, settings.maxBufferedBytes + 4096)
        XCTAssertFalse(after.inFlight, "no fetch waiting for room")
        let got = try await read(consumer, total: 300, maxRecords: 10)
        XCTAssertEqual(got[0]?.compactMap(\.valueString), expected[0], "every record once, in order, after the wait")
        await consumer.close()
        await client.close()
    }

    func testPauseKeepsFetchedBatchesAndSeekRereads() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "pause")
        _ = try await fill(client, topic: topic, partitions: 2, count: 50)
        var settings = ConsumerConfiguration()
        settings.maxRecords = 10
        let consumer = try client.consumer(settings)
        let p0 = TopicPartition(topic: topic, partition: 0)
        let p1 = TopicPartition(topic: topic, partition: 1)
        try await consumer.assign([p0: .earliest, p1: .earliest])
        consumer.pause([p0])
        let first = try await read(consumer, total: 50, maxRecords: 10)
        XCTAssertNil(first[0], "nothing of a paused partition")
        XCTAssertEqual(first[1]?.count, 50)
        consumer.resume([p0])
        let second = try await read(consumer, total: 50, maxRecords: 10)
        XCTAssertEqual(second[0]?.map(\.offset), (0..<50).map { Int64($0) }, "the paused partition resumes where it was")

        consumer.seek(p1, to: 42)
        let again = try await read(consumer, total: 8, maxRecords: 10)
        XCTAssertEqual(again[1]?.map(\.offset), (42..<50).map { Int64($0) }, "after a seek, from the new offset")
        await consumer.close()
        await client.close()
    }

    func testOutOfRangePositionFollowsTheResetPolicy() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "reset")
        _ = try await fill(client, topic: topic, partitions: 1, count: 20)
        let tp = TopicPartition(topic: topic, partition: 0)

        var earliest = ConsumerConfiguration()
        earliest.offsetReset = .earliest
        let resetting = try client.consumer(earliest)
        try await resetting.assign([tp: .offset(1_000_000)])
        let got = try await read(resetting, total: 20, maxRecords: 500)
        XCTAssertEqual(got[0]?.map(\.offset), (0..<20).map { Int64($0) }, "reset to the earliest offset")
        await resetting.close()

        var strict = ConsumerConfiguration()
        strict.offsetReset = .none
        let failing = try client.consumer(strict)
        try await failing.assign([tp: .offset(1_000_000)])
        do {
            _ = try await withTimeout(.seconds(30)) { try await failing.next() }
            XCTFail("an out-of-range position with offsetReset none must end the batches with an error")
        } catch let error as KlifeError {
            XCTAssertEqual(error.kafkaErrorCode, .offsetOutOfRange, "\(error)")
        }
        await failing.close()
        await client.close()
    }

    func testFetchesUseTheirOwnConnection() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "fetchconn")
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "one"))
        var settings = ConsumerConfiguration()
        settings.fetchMaxWait = .seconds(2)
        let consumer = try client.consumer(settings)
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .earliest])
        let batch = try await consumer.next()
        XCTAssertEqual(batch?.records.map(\.valueString), ["one"])
        // The broker now holds the next fetch up to 2 s; a produce meanwhile goes on the produce connection.
        let meta = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "two"))
        XCTAssertEqual(meta.offset, 1)
        let counts = await withCheckedContinuation { (done: CheckedContinuation<[ConnectionPurpose: Int], Never>) in
            let hub = client.hubs[0]
            hub.reactor.submit { done.resume(returning: hub.connectionCounts()) }
        }
        XCTAssertEqual(counts[.produce], 1, "one produce connection to the broker")
        XCTAssertEqual(counts[.fetch], 1, "one fetch connection to the broker")
        await consumer.close()
        await client.close()
    }

    /// Transactions written by librdkafka (commit, abort, commit): read_committed hands out only
    /// committed records and reaches the end; read_uncommitted hands out all data records.
    func testReadCommittedSkipsAbortedTransactions() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "crc")
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        _ = try produceTransactionsSync(bootstrap: bootstrap, topic: topic, id: "crc-\(topic)", label: "A",
                                        plan: "commit:3,abort:2,commit:1")
        let tp = TopicPartition(topic: topic, partition: 0)
        var committed = ConsumerConfiguration()
        committed.isolation = .readCommitted
        let reader = try client.consumer(committed)
        try await reader.assign([tp: .earliest])
        let got = try await read(reader, total: 4, maxRecords: 500)
        XCTAssertEqual(got[0]?.compactMap(\.valueString), ["A-0-0", "A-0-1", "A-0-2", "A-2-0"])
        await reader.close()

        let all = try client.consumer()
        try await all.assign([tp: .earliest])
        let everything = try await read(all, total: 6, maxRecords: 500)
        XCTAssertEqual(everything[0]?.compactMap(\.valueString), ["A-0-0", "A-0-1", "A-0-2", "A-1-0", "A-1-1", "A-2-0"])
        await all.close()
        await client.close()
    }

    /// Commits write the position handed out (never past a record not returned by `next()`),
    /// and a new consumer of the group starts there; a partition without a commit follows the
    /// reset policy.
    func testCommittedPositionIsWhereTheNextConsumerStarts() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "commit")
        _ = try await fill(client, topic: topic, partitions: 2, count: 100)
        let group = "g-\(topic)"
        let p0 = TopicPartition(topic: topic, partition: 0)
        let p1 = TopicPartition(topic: topic, partition: 1)
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.maxRecords = 10
        settings.offsetReset = .earliest

        let first = try client.consumer(settings)
        try await first.assign([p0: .committed])
        var handedOut = 0
        while handedOut < 30 {
            guard let batch = try await first.next() else { break }
            handedOut += batch.records.count
        }
        XCTAssertNil(first.committed(p0), "nothing committed yet")
        XCTAssertEqual(first.position(p0), 30)
        try await first.commit()
        XCTAssertEqual(first.processed(p0), 30, "a batch is processed when the next is asked for")
        XCTAssertEqual(first.committed(p0), 30, "what this consumer committed")
        XCTAssertNil(first.committed(p1), "not assigned")
        await first.close()
        let committed = try await client.committedOffsets(groupID: group, partitions: [p0, p1])
        XCTAssertEqual(committed, [p0: 30], "the position after the last batch handed out; nothing for p1")

        let second = try client.consumer(settings)
        try await second.assign([p0: .committed, p1: .committed])
        XCTAssertEqual(second.committed(p0), 30, "the group's commit, known from the assignment")
        XCTAssertNil(second.committed(p1))
        let rest = try await read(second, total: 70 + 100, maxRecords: 10)
        XCTAssertEqual(rest[0]?.first?.offset, 30, "resumes at the committed offset")
        XCTAssertEqual(rest[0]?.count, 70)
        XCTAssertEqual(rest[1]?.first?.offset, 0, "no commit: offsetReset earliest")
        try await second.commit([p1: 100])
        await second.close()
        let after = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(after[p1], 100)
        XCTAssertEqual(after[p0], 100, "closing commits every batch handed out (each was processed by the loop)")

        var none = settings
        none.offsetReset = .none
        let strict = try client.consumer(none)
        do {
            try await strict.assign([TopicPartition(topic: topic, partition: 1): .committed,
                                     TopicPartition(topic: "\(topic)", partition: 0): .committed])
        } catch {
            XCTFail("both partitions have commits: \(error)")
        }
        await strict.close()
        await client.close()
    }

    func testInvalidSettingsNameTheField() async throws {
        let client = try await Shared.client()
        var settings = ConsumerConfiguration()
        settings.maxRecords = 0
        XCTAssertThrowsError(try client.consumer(settings)) { error in
            XCTAssertEqual((error as? KlifeError)?.code, .invalidConfiguration)
            XCTAssertTrue("\(error)".contains("consumer.maxRecords"), "\(error)")
        }
        settings = ConsumerConfiguration()
        settings.groupID = ""
        XCTAssertThrowsError(try client.consumer(settings)) { error in
            XCTAssertTrue("\(error)".contains("consumer.groupID"), "\(error)")
        }
        settings = ConsumerConfiguration()
        settings.fetchMinBytes = 0
        XCTAssertThrowsError(try client.consumer(settings)) { error in
            XCTAssertTrue("\(error)".contains("consumer.fetchMinBytes"), "\(error)")
        }
        await client.close()
    }

    /// On the mock cluster the partition's leader moves twice while records are read: the
    /// engine refreshes metadata on NOT_LEADER_OR_FOLLOWER, fetches from the new leader (on
    /// another reactor), and every record arrives once, in order.
    func testLeaderMovesWhileReading() async throws {
        let topic = "moving"
        let mock = try MockCluster(brokers: 2, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.leader(topic, 0, broker: 1)
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.reactorCount = 2
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        // Small producer batches, so fetches (each returns at least one whole batch) stay small.
        config.producer.maxBatchBytes = 1024
        config.producer.maxRecordBytes = 1024
        let client = try await KlifeClient.connect(config)
        let padding = String(repeating: "-", count: 100)
        for i in 0..<300 { client.produce(ProducerRecord(topic: topic, partition: 0, value: "m\(i)" + padding)) { _ in } }
        await client.flush()
        var settings = ConsumerConfiguration()
        settings.maxRecords = 20
        // A small prefetch bound: fetching follows reading, so fetches go on across the moves.
        settings.maxBufferedBytes = 1024
        settings.partitionMaxBytes = 1024
        settings.retryBackoff = .milliseconds(20)
        let metadataBefore = await client.statistics().requestsSent[.metadata] ?? 0
        let consumer = try client.consumer(settings)
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .earliest])
        var values: [String] = []
        var moves = 0
        while values.count < 300 {
            guard let batch = try await withTimeout(.seconds(30), { try await consumer.next() }) else { break }
            values += batch.records.compactMap { $0.valueString.map { String($0.dropLast(100)) } }
            if values.count >= 100 && moves == 0 || values.count >= 200 && moves == 1 {
                moves += 1
                try mock.leader(topic, 0, broker: moves == 1 ? 2 : 1)
            }
        }
        XCTAssertEqual(values, (0..<300).map { "m\($0)" }, "every record once, in order, across two leader moves")
        let metadataAfter = await client.statistics().requestsSent[.metadata] ?? 0
        XCTAssertGreaterThanOrEqual(metadataAfter - metadataBefore, 2, "each move was learned from NOT_LEADER_OR_FOLLOWER")
        await consumer.close()
        await client.close()
    }

    /// With two reactors, a partition whose leader moves to a broker of the other reactor while
    /// its fetch is in flight: the new owner's engine looks first (the partition is still in
    /// flight, so it sends nothing and schedules nothing), then the old leader's answer releases
    /// the partition. That answer must wake every reactor's engine, not only its own (whose
    /// metadata no longer gives it the partition), or nobody fetches the partition again.
    func testAnAnswerFromTheOldLeaderWakesTheReactorOfTheNewOne() async throws {
        let topic = "handover"
        let mock = try MockCluster(brokers: 2, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.leader(topic, 0, broker: 1)  // broker 1 belongs to reactor 1, broker 2 to reactor 0
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.reactorCount = 2
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        let client = try await KlifeClient.connect(config)
        for i in 0..<10 { client.produce(ProducerRecord(topic: topic, partition: 0, value: "r\(i)")) { _ in } }
        await client.flush()
        // The consumer's first fetch, to broker 1, is answered NOT_LEADER_OR_FOLLOWER only after
        // the new leader is known everywhere.
        try mock.brokerErrors(1, apiKey: ApiKey.fetch.rawValue, [(code: KafkaErrorCode.notLeaderOrFollower.rawValue, delayMs: 1500)])
        var settings = ConsumerConfiguration()
        settings.retryBackoff = .milliseconds(20)
        let consumer = try client.consumer(settings)
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .earliest])
        try mock.leader(topic, 0, broker: 2)
        _ = try await client.refreshMetadata(topics: [topic])
        // No refresh after the answer (it would wake every reactor and hide the missing wake).
        client.pauseMetadataRefreshes(true)
        let batch = try await withTimeout(.seconds(20), { try await consumer.next() })
        XCTAssertEqual(batch?.records.first?.offset, 0, "the partition is read from its new leader")
        client.pauseMetadataRefreshes(false)
        await consumer.close()
        await client.close()
    }
}

/// Runs `body`, failing with `timedOut` after `limit`.
func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: max(limit, .zero))
            throw KlifeError.timedOut("test step")
        }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
}
