import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import XCTest

/// Exactly-once consume-transform-produce (`KlifeConsumer.run(transactional:_:)`) against
/// Tansu: every input record's result is in the output once at read_committed, aborted
/// attempts included, and the group's committed offsets are the input's end.
///
/// Each input partition's results go to the output partition of the same number. Tansu 0.6
/// holds a committed transaction's offsets back while another transaction that wrote to one of
/// its partitions is open, and drops them when its transactional id's next transaction aborts
/// meanwhile (`TansuTransactionQuirkTests`); with one output partition per input partition no
/// two of these transactions ever write to the same partition at once. Kafka has no such gap.
final class ExactlyOnceTests: XCTestCase {
    private struct Flaky: Error {}

    private func transactionalClient(_ base: String) async throws -> KlifeClient {
        try await Shared.client { config in
            config.transactions = TransactionConfiguration(baseTransactionalID: "\(base)-\(UUID().uuidString.prefix(8))",
                                                           poolSize: 4)
        }
    }

    private func settings(group: String, topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.isolation = .readCommitted
        settings.autoCommitInterval = .milliseconds(100)  // must commit nothing in this mode
        settings.maxRecords = 16
        settings.sessionTimeout = .seconds(8)
        settings.heartbeatInterval = .seconds(1)
        settings.retryBackoff = .milliseconds(20)
        settings.retryBackoffMax = .milliseconds(100)
        return settings
    }

    func testPipelineWithAbortedAttemptsWritesEachInputOnceAndCommitsTheInputEnd() async throws {
        let client = try await transactionalClient("eos")
        let input = try await Shared.topic(client, partitions: 2, prefix: "eos-in")
        // Each input partition's results go to its own output partition (see outputPartitions).
        let output = try await Shared.topic(client, partitions: 2, prefix: "eos-out")
        let group = "g-" + input
        let perPartition = 60
        for p in Int32(0)..<2 {
            for i in 0..<perPartition { client.produce(ProducerRecord(topic: input, partition: p, value: "\(p):\(i)")) { _ in } }
        }
        await client.flush()

        let consumer = try client.consumer(settings(group: group, topic: input))
        // Every third batch start fails on its first attempt, after producing its results:
        // those results are aborted, and the batch goes again in a new transaction.
        let attempts = Locked<[String: Int]>([:])
        let aborted = Locked(0)
        let run = Task {
            try await consumer.run(transactional: .init()) { batch, txn in
                let first = batch.records.first?.offset ?? batch.nextOffset
                let key = "\(batch.topicPartition)@\(first)"
                let attempt = attempts.withLock { a -> Int in
                    a[key, default: 0] += 1
                    return a[key]!
                }
                for r in batch.records {
                    let value = r.valueString ?? ""
                    _ = try await txn.produce(ProducerRecord(topic: output, partition: batch.topicPartition.partition,
                                                             value: "out-\(value)"))
                }
                if attempt == 1 && (first / 16) % 3 == 1 {
                    aborted.withLock { $0 += 1 }
                    throw Flaky()
                }
            }
        }
        let tps = (Int32(0)..<2).map { TopicPartition(topic: input, partition: $0) }
        await eventually("every input partition committed to its end") {
            tps.allSatisfy { consumer.committed($0) == Int64(perPartition) }
        }
        XCTAssertGreaterThan(aborted.withLock { $0 }, 0, "some attempts were aborted")
        do {
            try await consumer.commit()
            XCTFail("commit() must refuse in exactly-once mode")
        } catch {
            XCTAssertEqual(error.code, .invalidArgument)
        }
        await consumer.close()
        try await run.value

        let ends = Dictionary(uniqueKeysWithValues: tps.map { ($0, Int64(perPartition)) })
        let lastSeen = Locked<[TopicPartition: Int64]?>(nil)
        await eventually("the group's committed offsets are the input's end") {
            let seen = try? await client.committedOffsets(groupID: group)
            lastSeen.withLock { $0 = seen }
            return seen == ends
        }
        XCTAssertEqual(lastSeen.withLock { $0 }, ends, "the group's committed offsets, as last read")
        let results = try await readValues(client, topic: output, partitions: 2, isolation: .readCommitted)
        let expected = (0..<2).flatMap { p in (0..<perPartition).map { "out-\(p):\($0)" } }
        XCTAssertEqual(results.count, expected.count, "one result per input record")
        XCTAssertEqual(Set(results), Set(expected), "every input record's result, once")
        let everything = try await readValues(client, topic: output, partitions: 2, isolation: .readUncommitted)
        XCTAssertGreaterThan(everything.count, expected.count, "the aborted attempts' results are in the log, hidden")
        await client.close()
    }

    /// A second member joins while the first is processing: the cooperative rebalance moves
    /// partitions between them (a revoke waits for the transaction in progress, the new owner
    /// starts at the committed offset), and still every input record's result is in the output
    /// once and the group's committed offsets are the input's end.
    func testARebalanceInTheMiddleKeepsTheOutputExactlyOnce() async throws {
        let client = try await transactionalClient("eos-rebalance")
        let input = try await Shared.topic(client, partitions: 4, prefix: "eos-rb-in")
        let output = try await Shared.topic(client, partitions: 4, prefix: "eos-rb-out")
        let group = "g-" + input
        func produce(_ range: Range<Int>) async {
            for p in Int32(0)..<4 {
                for i in range { client.produce(ProducerRecord(topic: input, partition: p, value: "\(p):\(i)")) { _ in } }
            }
            await client.flush()
        }
        await produce(0..<40)
        let processedBy = Locked<[String: Int]>([:])
        func start(_ name: String) throws -> (KlifeConsumer, Task<Void, any Error>) {
            let consumer = try client.consumer(settings(group: group, topic: input))
            let task = Task {
                try await consumer.run(transactional: .init()) { batch, txn in
                    let records = batch.records.map {
                        ProducerRecord(topic: output, partition: batch.topicPartition.partition, value: "out-\($0.valueString ?? "")")
                    }
                    for result in try await txn.produceBatch(records) { _ = try result.get() }
                    processedBy.withLock { $0[name, default: 0] += batch.records.count }
                }
            }
            return (consumer, task)
        }
        let (a, runA) = try start("a")
        await eventually("the first member processed records") { processedBy.withLock { $0["a"] ?? 0 } > 0 }
        let (b, runB) = try start("b")
        await eventually("both members hold two partitions") { a.assignment.count == 2 && b.assignment.count == 2 }
        await produce(40..<80)
        let tps = (Int32(0)..<4).map { TopicPartition(topic: input, partition: $0) }
        let ends = Dictionary(uniqueKeysWithValues: tps.map { ($0, Int64(80)) })
        await eventually("the group committed every partition to its end") {
            (try? await client.committedOffsets(groupID: group)) == ends
        }
        XCTAssertGreaterThan(processedBy.withLock { $0["b"] ?? 0 }, 0, "the second member processed records")
        await a.close()
        await b.close()
        try await runA.value
        try await runB.value

        let results = try await readValues(client, topic: output, partitions: 4, isolation: .readCommitted)
        let expected = (0..<4).flatMap { p in (0..<80).map { "out-\(p):\($0)" } }
        XCTAssertEqual(results.count, expected.count, "one result per input record")
        XCTAssertEqual(Set(results), Set(expected), "every input record's result, once")
        await client.close()
    }

    /// A classic member told that its transactional offsets were refused for its current
    /// generation treats it as a heartbeat refusal: its partitions are lost (no commit) and it
    /// joins again and gets them back; a refusal naming an older generation is ignored.
    func testAMemberWhoseTransactionalOffsetsAreRefusedLosesItsPartitionsAndRejoins() async throws {
        let client = try await transactionalClient("eos-zombie")
        let topic = try await Shared.topic(client, partitions: 2, prefix: "eos-zombie")
        let consumer = try client.consumer(settings(group: "g-" + topic, topic: topic))
        await eventually("the member holds both partitions") { consumer.assignment.count == 2 }
        let joined = try XCTUnwrap(consumer.groupMetadata)
        XCTAssertEqual(joined.groupID, "g-" + topic)
        XCTAssertGreaterThanOrEqual(joined.generationID, 0)
        XCTAssertFalse(joined.memberID.isEmpty)
        let membership = try XCTUnwrap(consumer.membership)

        membership.transactionalOffsetsRefused(as: GroupCommitIdentity(ConsumerGroupMetadata(
            groupID: joined.groupID, generationID: joined.generationID - 1, memberID: joined.memberID)), code: .illegalGeneration)
        membership.transactionalOffsetsRefused(as: GroupCommitIdentity(joined), code: .illegalGeneration)
        await eventually("the member lost its partitions once and holds them again", within: .seconds(60)) {
            consumer.groupStatistics.partitionsLostEvents == 1 && consumer.assignment.count == 2
        }
        // (Tansu keeps generation 0 when the only member joins again; Kafka would bump it.)
        XCTAssertGreaterThanOrEqual(consumer.groupStatistics.rebalances, 2, "the member joined again")
        await consumer.close()
        await client.close()
    }

    /// A handler that always fails keeps its batch in retries; closing the client under the
    /// consumer ends the retries and the run (with `clientClosed`), and nothing was committed.
    func testClosingTheClientEndsARunWhoseHandlerKeepsFailing() async throws {
        let client = try await transactionalClient("eos-close")
        let topic = try await Shared.topic(client, partitions: 1, prefix: "eos-close")
        client.produce(ProducerRecord(topic: topic, partition: 0, value: "x")) { _ in }
        await client.flush()
        let consumer = try client.consumer(settings(group: "g-" + topic, topic: topic))
        let attempts = Locked(0)
        let run = Task {
            try await consumer.run(transactional: .init()) { _, _ in
                attempts.withLock { $0 += 1 }
                throw Flaky()
            }
        }
        await eventually("the batch failed a few times") { attempts.withLock { $0 } >= 3 }
        XCTAssertNil(consumer.committed(TopicPartition(topic: topic, partition: 0)), "nothing committed")
        await client.close()
        do {
            try await run.value
            XCTFail("the run must end with the client's close")
        } catch let error as KlifeError {
            XCTAssertEqual(error.code, .clientClosed, "\(error)")
        }
    }

    func testInvalidSetupsFailWithTheFieldNamed() async throws {
        let plain = try await Shared.client()
        let topic = try await Shared.topic(plain, partitions: 1, prefix: "eos-setup")
        var settings = settings(group: "g-" + topic, topic: topic)
        settings.topics = []  // assign mode: nothing joins a group
        let noTransactions = try plain.consumer(settings)
        await assertInvalidConfiguration(noTransactions, field: "transactions")

        let client = try await transactionalClient("eos-setup")
        settings.isolation = .readUncommitted
        await assertInvalidConfiguration(try client.consumer(settings), field: "consumer.isolation")
        var noGroup = settings
        noGroup.groupID = nil
        noGroup.isolation = .readCommitted
        await assertInvalidConfiguration(try client.consumer(noGroup), field: "consumer.groupID")
        await plain.close()
        await client.close()
    }

    private func assertInvalidConfiguration(_ consumer: KlifeConsumer, field: String,
                                            file: StaticString = #filePath, line: UInt = #line) async {
        do {
            try await consumer.run(transactional: .init()) { _, _ in }
            XCTFail("run(transactional:) must refuse", file: file, line: line)
        } catch {
            XCTAssertEqual(error.code, .invalidConfiguration, "\(error)", file: file, line: line)
            XCTAssertTrue(error.description.contains("configuration \(field):"), error.description, file: file, line: line)
        }
        await consumer.close()
    }
}
