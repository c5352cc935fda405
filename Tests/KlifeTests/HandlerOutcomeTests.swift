import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// Handler outcomes on Tansu: a retrying record holds the commit while later records go on,
/// a record that fails every attempt stops its partition (others go on) or ends in the
/// dead-letter topic with its headers, halving finds the bad records of a failed bulk write,
/// delayed retry topics hand records out once due, and per-key order follows a key into the chain.
final class HandlerOutcomeTests: XCTestCase {
    private func produce(_ client: KlifeClient, topic: String, partition: Int32, values: [String], key: ((Int) -> String?)? = nil) async {
        for (i, value) in values.enumerated() {
            client.produce(ProducerRecord(topic: topic, partition: partition, key: key?(i), value: value)) { _ in }
        }
        await client.flush()
    }

    private func groupSettings(_ topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = "g-" + topic
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.sessionTimeout = .seconds(10)
        settings.heartbeatInterval = .seconds(1)
        settings.autoCommitInterval = .milliseconds(200)
        settings.failurePolicy = FailurePolicy(backoff: .milliseconds(20), maxBackoff: .milliseconds(200))
        return settings
    }

    /// Every record of `topic` (all partitions) read from the start, once the topic exists.
    private func readAll(_ client: KlifeClient, topic: String, partitions: Int32, count: Int) async throws -> [ConsumerRecord] {
        await eventually("\(topic) exists") {
            ((try? await client.metadata(topics: [topic]))?.topics[topic]?.partitions.count ?? 0) == Int(partitions)
        }
        var settings = ConsumerConfiguration()
        settings.maxRecords = 1000
        let consumer = try client.consumer(settings)
        var starts: [TopicPartition: ConsumerStart] = [:]
        for p in 0..<partitions { starts[TopicPartition(topic: topic, partition: p)] = .earliest }
        try await consumer.assign(starts)
        var records: [ConsumerRecord] = []
        let reading = Task {
            var found: [ConsumerRecord] = []
            while found.count < count, let batch = try await consumer.next() { found += batch.records }
            return found
        }
        let timer = Task {
            try await Task.sleep(for: .seconds(60))
            reading.cancel()
        }
        records = (try? await reading.value) ?? []
        timer.cancel()
        await consumer.close()
        return records
    }

    func testARetryingRecordHoldsTheCommitWhileLaterRecordsGoOn() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "outcome-hold")
        let tp = TopicPartition(topic: topic, partition: 0)
        await produce(client, topic: topic, partition: 0, values: (0..<30).map { "r\($0)" })
        var settings = groupSettings(topic)
        settings.maxRecords = 10
        let consumer = try client.consumer(settings)
        let failing = Locked(true)
        let seen = Locked<[Int64]>([])
        let running = Task {
            try await consumer.run { batch -> BatchOutcome in
                var outcome = BatchOutcome.done
                for record in batch.records {
                    seen.withLock { $0.append(record.offset) }
                    if record.offset == 5 && failing.withLock({ $0 }) { outcome.retry(record, error: "downstream busy") }
                }
                return outcome
            }
        }
        await eventually("records after the retrying one processed") { seen.withLock { $0.contains(29) } }
        await eventually("the record retried at least twice") { seen.withLock { $0.filter { $0 == 5 }.count } >= 3 }
        XCTAssertEqual(consumer.processed(tp), 5, "the commit position stops at the unfinished record")
        try await consumer.commit()
        let held = try await client.committedOffsets(groupID: "g-" + topic)
        XCTAssertEqual(held[tp], 5, "nothing committed past the retrying record")
        XCTAssertEqual(consumer.statistics().outcomes.recordsInRetry, 1)
        failing.withLock { $0 = false }
        await eventually("the position moves past the record once it succeeds") { consumer.processed(tp) == 30 }
        XCTAssertEqual(consumer.statistics().outcomes.recordsInRetry, 0)
        XCTAssertGreaterThanOrEqual(consumer.statistics().outcomes.retries, 2)
        let others = seen.withLock { $0.filter { $0 != 5 } }
        XCTAssertEqual(others, (0..<30).filter { $0 != 5 }.map(Int64.init), "every other record once, in order")
        await consumer.close()
        try await running.value
        let committed = try await client.committedOffsets(groupID: "g-" + topic)
        XCTAssertEqual(committed[tp], 30)
        await client.close()
    }

    func testARecordOutOfAttemptsStopsOnlyItsPartitionUntilASeek() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "outcome-stop")
        await produce(client, topic: topic, partition: 0, values: (0..<10).map { $0 == 3 ? "poison" : "ok\($0)" })
        await produce(client, topic: topic, partition: 1, values: (0..<10).map { "ok\($0)" })
        var settings = groupSettings(topic)
        settings.failurePolicy.maxAttempts = 3
        let consumer = try client.consumer(settings)
        let done = Locked<[Int32: [Int64]]>([:])
        let attempts = Locked(0)
        let running = Task {
            try await consumer.runEach { record in
                if record.valueString == "poison" {
                    attempts.withLock { $0 += 1 }
                    return .retry(error: "cannot parse")
                }
                done.withLock { $0[record.partition, default: []].append(record.offset) }
                return .done
            }
        }
        let p0 = TopicPartition(topic: topic, partition: 0), p1 = TopicPartition(topic: topic, partition: 1)
        await eventually("partition 0 stopped") { consumer.stoppedPartitions[p0] != nil }
        let stop = try XCTUnwrap(consumer.stoppedPartitions[p0])
        XCTAssertEqual(stop.code, .recordFailed)
        XCTAssertTrue("\(stop)".contains("offset 3") && "\(stop)".contains("cannot parse"), "\(stop)")
        XCTAssertEqual(attempts.withLock { $0 }, 3, "exactly maxAttempts attempts")
        await eventually("partition 1 went on") { consumer.processed(p1) == 10 }
        XCTAssertEqual(consumer.processed(p0), 3, "commits stop below the failed record")
        XCTAssertEqual(consumer.statistics().outcomes.stoppedPartitions, 1)

        consumer.seek(p0, to: 4)  // skip it
        await eventually("partition 0 goes on after the seek") { consumer.processed(p0) == 10 }
        XCTAssertNil(consumer.stoppedPartitions[p0])
        // Records after the poison one were processed before it stopped the partition, but never
        // committed: a seek reads them again (at least once), in order, without the poison record.
        XCTAssertEqual(done.withLock { $0[0] }, ([0, 1, 2, 4, 5, 6, 7, 8, 9] + [4, 5, 6, 7, 8, 9]).map(Int64.init))
        XCTAssertEqual(done.withLock { $0[1] }, (0..<10).map(Int64.init))
        await consumer.close()
        try await running.value
        await client.close()
    }

    func testAPoisonRecordEndsInTheDeadLetterTopicWithItsHeadersWhileEveryOtherRecordCommits() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "outcome-dlq")
        let count = 40
        for p: Int32 in 0..<2 {
            await produce(client, topic: topic, partition: p, values: (0..<count).map { p == 1 && $0 == 17 ? "poison" : "p\(p)-\($0)" })
        }
        var settings = groupSettings(topic)
        settings.maxRecords = 8
        settings.failurePolicy.maxAttempts = 2
        settings.retryTopics = RetryTopics(delays: [.milliseconds(300)], createMissing: true)
        let consumer = try client.consumer(settings)
        let processed = Locked<[TopicPartition: [Int64]]>([:])
        let retryHandedOut = Locked<[(handedOut: Int64, due: Int64)]>([])
        let running = Task {
            try await consumer.runEach { record in
                if record.topic.hasSuffix(".retry.300ms"), let due = header(record, RetryHeaders.due).flatMap(Int64.init) {
                    retryHandedOut.withLock { $0.append((currentTimeMilliseconds(), due)) }
                }
                if record.valueString == "poison" { return .retry(error: "constraint violated") }
                processed.withLock { $0[TopicPartition(topic: record.topic, partition: record.partition), default: []].append(record.offset) }
                return .done
            }
        }
        let deadLetters = try await readAll(client, topic: topic + ".dlq", partitions: 2, count: 1)
        XCTAssertEqual(deadLetters.count, 1)
        let dead = try XCTUnwrap(deadLetters.first)
        XCTAssertEqual(dead.valueString, "poison")
        XCTAssertEqual(header(dead, RetryHeaders.originalTopic), topic)
        XCTAssertEqual(header(dead, RetryHeaders.originalPartition), "1")
        XCTAssertEqual(header(dead, RetryHeaders.originalOffset), "17")
        XCTAssertEqual(header(dead, RetryHeaders.attempt), "4", "two attempts at the source, two in the retry topic")
        XCTAssertEqual(header(dead, RetryHeaders.error), "constraint violated")
        XCTAssertNotNil(header(dead, RetryHeaders.firstFailure).flatMap(Int64.init))

        let sources = [TopicPartition(topic: topic, partition: 0), TopicPartition(topic: topic, partition: 1)]
        await eventually("both source partitions processed to their end") { sources.allSatisfy { consumer.processed($0) == Int64(count) } }
        for tp in sources {
            let expected = (0..<Int64(count)).filter { !(tp.partition == 1 && $0 == 17) }
            XCTAssertEqual(processed.withLock { $0[tp] }, expected, "\(tp): every other record once, in order")
        }
        let stats = consumer.statistics().outcomes
        XCTAssertEqual(stats.movedToRetryTopics, 1)
        XCTAssertEqual(stats.deadLettered, 1)
        let delays = retryHandedOut.withLock { $0 }
        XCTAssertEqual(delays.count, 2, "the retry topic handed the record out twice (two attempts)")
        for (handedOut, due) in delays {
            XCTAssertGreaterThanOrEqual(handedOut, due, "never handed out before it is due")
            print("retry topic: handed out \(handedOut - due) ms after due")
        }
        await consumer.close()
        try await running.value
        let committed = try await client.committedOffsets(groupID: "g-" + topic)
        for tp in sources { XCTAssertEqual(committed[tp], Int64(count), "\(tp) committed to its end") }
        await client.close()
    }

    func testHalvingFindsTheBadRecordsOfAFailedBulkWrite() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "outcome-halve")
        let tp = TopicPartition(topic: topic, partition: 0)
        let bad: Set<Int64> = [13, 50]
        await produce(client, topic: topic, partition: 0, values: (0..<64).map { bad.contains(Int64($0)) ? "bad" : "good" })
        var settings = groupSettings(topic)
        settings.maxRecords = 64
        settings.fetchMinBytes = 64 * 4  // the whole set in one batch where the broker honours it
        settings.failurePolicy = FailurePolicy(maxAttempts: 3, backoff: .milliseconds(10), maxBackoff: .milliseconds(50),
                                               isolateFailures: true, batchAttempts: 1)
        settings.retryTopics = RetryTopics(delays: [], createMissing: true)
        let consumer = try client.consumer(settings)
        let written = Locked<[Int64]>([])
        let calls = Locked<[Int]>([])
        let running = Task {
            try await consumer.run { batch in
                calls.withLock { $0.append(batch.records.count) }
                // A bulk insert: one bad row fails it all.
                if batch.records.contains(where: { $0.valueString == "bad" }) { throw KlifeError.invalidArgument("bulk insert failed") }
                written.withLock { $0 += batch.records.map(\.offset) }
            }
        }
        let deadLetters = try await readAll(client, topic: topic + ".dlq", partitions: 1, count: 2)
        XCTAssertEqual(Set(deadLetters.compactMap { header($0, RetryHeaders.originalOffset).flatMap(Int64.init) }), bad)
        await eventually("the partition's position passes every record") { consumer.processed(tp) == 64 }
        XCTAssertEqual(written.withLock { $0 }.sorted(), (0..<64).filter { !bad.contains($0) }, "every good record once")
        let sizes = calls.withLock { $0 }
        print("handler calls by batch size: \(sizes)")
        if sizes.first == 64 {
            // One failed call of 64, then halving: 2 bad records among 64 cost at most
            // 2·k·log₂(n) calls, then each bad record's single retries (maxAttempts).
            let halving = sizes.dropFirst().filter { $0 > 1 }.count
            XCTAssertLessThanOrEqual(halving, 2 * 2 * 6, "halving, not one call per record")
            XCTAssertEqual(sizes.filter { $0 == 1 }.count, 2 * 3, "each bad record alone: the halving try plus two retries")
        }
        XCTAssertEqual(consumer.statistics().outcomes.isolatedBatches, sizes.first == 64 ? 1 : consumer.statistics().outcomes.isolatedBatches)
        await consumer.close()
        try await running.value
        await client.close()
    }

    func testPerKeyOrderKeepsAKeysLaterRecordsBehindItsRetryingOne() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "outcome-keys")
        // k1's first record fails at the source until its attempts run out (it moves to the
        // retry topic); k2's first record fails once and then succeeds in the process.
        let values = ["k1-0", "k2-0", "k3-0", "k1-1", "k3-1", "k2-1", "k1-2", "k3-2", "k2-2"]
        await produce(client, topic: topic, partition: 0, values: values) { String(values[$0].prefix(2)) }
        var settings = groupSettings(topic)
        settings.maxRecords = 2
        settings.failurePolicy.maxAttempts = 2
        settings.retryTopics = RetryTopics(delays: [.milliseconds(200)], createMissing: true, perKeyOrder: true)
        let consumer = try client.consumer(settings)
        let finished = Locked<[String: [String]]>([:])
        let failures = Locked<[String: Int]>([:])
        let running = Task {
            try await consumer.runEach { record in
                let value = record.valueString ?? "?"
                let fromSource = !record.topic.contains(".retry.")
                let failed = failures.withLock { f -> Bool in
                    let shouldFail = (value == "k1-0" && fromSource) || (value == "k2-0" && f[value, default: 0] == 0)
                    if shouldFail { f[value, default: 0] += 1 }
                    return shouldFail
                }
                if failed { return .retry(error: "not yet") }
                finished.withLock { $0[String(value.prefix(2)), default: []].append(value) }
                return .done
            }
        }
        await eventually("every record finished") { finished.withLock { $0.values.reduce(0) { $0 + $1.count } } == values.count }
        let order = finished.withLock { $0 }
        XCTAssertEqual(order["k1"], ["k1-0", "k1-1", "k1-2"], "k1's later records followed it through the retry topic")
        XCTAssertEqual(order["k2"], ["k2-0", "k2-1", "k2-2"], "k2's later records waited for its in-process retry")
        XCTAssertEqual(order["k3"], ["k3-0", "k3-1", "k3-2"])
        let stats = consumer.statistics().outcomes
        XCTAssertEqual(stats.movedToRetryTopics, 3, "k1-0 moved after its attempts, k1-1 and k1-2 followed it")
        let tp = TopicPartition(topic: topic, partition: 0)
        await eventually("the source partition's position passes every record") { consumer.processed(tp) == Int64(values.count) }
        await consumer.close()
        try await running.value
        await client.close()
    }
}

/// The last header `name` of `record` as text.
func header(_ record: ConsumerRecord, _ name: String) -> String? {
    record.headers.last { $0.key == name }.flatMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }
}
