import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import XCTest

/// Group fencing of transactional offsets (KIP-447) on librdkafka's mock cluster, whose
/// TxnOffsetCommit answers the test controls: the refusals of a zombie member surface as
/// `groupMemberFenced`, abort the transaction, leave the transactional producer usable, and
/// in `run(transactional:_:)` make the batch go again in a new transaction.
final class ExactlyOnceFaultTests: XCTestCase {
    private func connect(_ mock: MockCluster, base: String) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.clientID = "klife-eos-fault-tests"
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        config.producer.retryBackoff = .milliseconds(20)
        config.transactions = TransactionConfiguration(baseTransactionalID: base)
        return try await KlifeClient.connect(config)
    }

    /// A member of `group` reading `topic` at read_committed from the earliest offset, in
    /// batches of 10, retrying a failed batch after 20-100 ms.
    private func memberSettings(group: String, topic: String, protocol groupProtocol: GroupProtocol) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.groupProtocol = groupProtocol
        settings.offsetReset = .earliest
        settings.isolation = .readCommitted
        settings.maxRecords = 10
        settings.retryBackoff = .milliseconds(20)
        settings.retryBackoffMax = .milliseconds(100)
        if groupProtocol == .classic {
            // The mock's joins wait the session timeout less one second: keep it short.
            settings.sessionTimeout = .seconds(3)
            settings.heartbeatInterval = .milliseconds(200)
            settings.rebalanceTimeout = .seconds(10)
            settings.revokeTimeout = .seconds(2)
        }
        return settings
    }

    /// Produces `count` records to each partition of `topic` (values `"p:i"`).
    private func produce(_ client: KlifeClient, topic: String, partitions: Int32, count: Int) async {
        for p in Int32(0)..<partitions {
            for i in 0..<count { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) { _ in } }
        }
        await client.flush()
    }

    /// Each fencing code answering TxnOffsetCommit fails `sendOffsets(_:group:)` with
    /// `groupMemberFenced` at once (never retried), the transaction aborts (the block's
    /// error), and the next transaction of the same producer commits.
    func testGroupFencingCodesAbortTheTransactionAndKeepTheProducer() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("eos-out", 1), ("eos-in", 1)])
        defer { mock.stop() }
        let client = try await connect(mock, base: "eos-fence")
        let tp = TopicPartition(topic: "eos-in", partition: 0)
        let zombie = ConsumerGroupMetadata(groupID: "g-eos", generationID: 4, memberID: "m-1", groupInstanceID: "pod-1")
        for code in [KafkaErrorCode.illegalGeneration, .unknownMemberID, .fencedInstanceID, .fencedMemberEpoch] {
            try mock.pushErrors(apiKey: ApiKey.txnOffsetCommit.rawValue, codes: [code.rawValue])
            let before = await client.statistics().requestsSent
            do {
                try await client.transaction { txn in
                    _ = try await txn.produce(ProducerRecord(topic: "eos-out", partition: 0, value: "zombie"))
                    try await txn.sendOffsets([tp: 5], group: zombie)
                }
                XCTFail("\(code): the offsets of a fenced member must not commit")
            } catch let error as KlifeError {
                XCTAssertEqual(error.code, .groupMemberFenced, "\(code): \(error)")
                XCTAssertEqual(error.kafkaErrorCode, code)
                XCTAssertTrue(error.description.contains("generation 4"), error.description)
            }
            let after = await client.statistics().requestsSent
            XCTAssertEqual((after[.txnOffsetCommit] ?? 0) - (before[.txnOffsetCommit] ?? 0), 1, "\(code): not retried")
            XCTAssertEqual((after[.endTxn] ?? 0) - (before[.endTxn] ?? 0), 1, "\(code): one EndTxn, the abort")
            // The producer is not fenced: its next transaction, offsets included, commits.
            try await client.transaction { txn in
                _ = try await txn.produce(ProducerRecord(topic: "eos-out", partition: 0, value: "live"))
                try await txn.sendOffsets([tp: 5], group: ConsumerGroupMetadata(groupID: "g-eos", generationID: 5, memberID: "m-1"))
            }
        }
        // Offsets sent as no member keep the plain broker error (nothing to fence).
        try mock.pushErrors(apiKey: ApiKey.txnOffsetCommit.rawValue, codes: [KafkaErrorCode.illegalGeneration.rawValue])
        do {
            try await client.transaction { txn in try await txn.sendOffsets([tp: 6], groupID: "g-eos") }
            XCTFail("the refusal must surface")
        } catch let error as KlifeError {
            XCTAssertEqual(error.code, .brokerError, "\(error)")
            XCTAssertEqual(error.kafkaErrorCode, .illegalGeneration)
        }
        await client.close()
    }

    /// In `run(transactional:_:)`, a batch whose offsets the coordinator refuses as a stale
    /// member's is aborted, the member heartbeats to learn where it stands (the consumer
    /// protocol: an epoch may move while a transaction runs), and the batch commits in a new
    /// transaction; every batch is committed once, in order, and the committed positions
    /// reach the end.
    func testRefusedOffsetsInTheHandlerFormAbortAndTheBatchCommitsAgain() async throws {
        let topic = "eos-run-in"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 2), ("eos-run-out", 1)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 6_000, heartbeatIntervalMs: 250)
        let client = try await connect(mock, base: "eos-run")
        await produce(client, topic: topic, partitions: 2, count: 30)
        let consumer = try client.consumer(memberSettings(group: "g-eos-run", topic: topic, protocol: .consumer))
        await eventually("the member holds both partitions", within: .seconds(30)) { consumer.assignment.count == 2 }
        try mock.pushErrors(apiKey: ApiKey.txnOffsetCommit.rawValue,
                            codes: [KafkaErrorCode.illegalGeneration.rawValue, KafkaErrorCode.unknownMemberID.rawValue])
        let attempts = Locked<[TopicPartition: [Int64]]>([:])
        let run = Task {
            try await consumer.run(transactional: .init()) { batch, txn in
                attempts.withLock { $0[batch.topicPartition, default: []].append(batch.records.first?.offset ?? -1) }
                let values = batch.records.map { ProducerRecord(topic: "eos-run-out", partition: 0, value: $0.valueString ?? "") }
                for result in try await txn.produceBatch(values) { _ = try result.get() }
            }
        }
        let tps = (Int32(0)..<2).map { TopicPartition(topic: topic, partition: $0) }
        await eventually("both partitions committed to their end", within: .seconds(60)) {
            tps.allSatisfy { consumer.committed($0) == 30 }
        }
        await consumer.close()
        try await run.value
        let seen = attempts.withLock { $0 }
        let total = seen.values.reduce(0) { $0 + $1.count }
        XCTAssertEqual(total, 6 + 2, "three batches per partition, and two refused attempts")
        for tp in tps {
            XCTAssertEqual(Array(Set(seen[tp] ?? [])).sorted(), [0, 10, 20], "\(tp): batches in order, a refused one again")
            XCTAssertEqual(seen[tp], (seen[tp] ?? []).sorted(), "\(tp): a retried batch before the next one")
        }
        let stats = await client.statistics().requestsSent
        XCTAssertEqual(stats[.txnOffsetCommit], 8, "each attempt sent its offsets once")
        XCTAssertEqual(consumer.groupStatistics.partitionsLostEvents, 0, "the member was never out of the group")
        await client.close()
    }
    /// A classic member whose transactional offsets are refused with ILLEGAL_GENERATION for its
    /// current generation is the zombie case: the transaction aborts, the member drops its
    /// partitions as lost (no commit, `onLost`) and joins again, and once it owns the
    /// partition again it processes from the group's committed offset.
    func testAClassicMemberRefusedAsAZombieLosesItsPartitionAndStartsAgainAtTheGroupsCommittedOffset() async throws {
        let topic = "eos-zombie-in"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1), ("eos-zombie-out", 1)])
        defer { mock.stop() }
        try mock.useGroupVersionsTheMockParses()
        try mock.groupInitialRebalanceDelay(ms: 200)
        let client = try await connect(mock, base: "eos-zombie")
        await produce(client, topic: topic, partitions: 1, count: 30)
        var settings = memberSettings(group: "g-eos-zombie", topic: topic, protocol: .classic)
        let lost = Locked(0)
        settings.onLost = { _ in lost.withLock { $0 += 1 } }
        let consumer = try client.consumer(settings)
        await eventually("the member holds the partition", within: .seconds(30)) { consumer.assignment.count == 1 }
        let starts = Locked<[Int64]>([])
        let refuse = Locked(true)
        let run = Task {
            try await consumer.run(transactional: .init()) { batch, txn in
                let first = batch.records.first?.offset ?? -1
                starts.withLock { $0.append(first) }
                // The second batch's offsets are refused as a zombie's, once.
                if first == 10, refuse.withLock({ r in defer { r = false }; return r }) {
                    try mock.pushErrors(apiKey: ApiKey.txnOffsetCommit.rawValue, codes: [KafkaErrorCode.illegalGeneration.rawValue])
                }
                _ = try await txn.produceBatch(batch.records.map { ProducerRecord(topic: "eos-zombie-out", partition: 0, value: $0.valueString ?? "") })
            }
        }
        let tp = TopicPartition(topic: topic, partition: 0)
        await eventually("the partition committed to its end", within: .seconds(60)) { consumer.committed(tp) == 30 }
        XCTAssertEqual(lost.withLock { $0 }, 1, "onLost ran once")
        XCTAssertEqual(consumer.groupStatistics.partitionsLostEvents, 1)
        XCTAssertGreaterThanOrEqual(consumer.groupStatistics.rebalances, 2, "the member joined again")
        // Where the group says the partition starts: the mock never applies transactional
        // offsets to the group (its OffsetFetch answers none), so there the rejoined member
        // starts at the earliest offset again; a broker would answer 10.
        let restart = try await client.committedOffsets(groupID: "g-eos-zombie", partitions: [tp])[tp] ?? 0
        XCTAssertEqual(starts.withLock { $0 }, [0, 10] + Array(stride(from: restart, to: 30, by: 10)),
                       "after the loss, processing starts again at the group's committed offset; the refused batch is never committed")
        await consumer.close()
        try await run.value
        await client.close()
    }

    /// A fenced transactional producer (another instance took the transactional id) ends the
    /// run with `producerFenced`; the batch's offset is not committed.
    func testAFencedProducerEndsTheRun() async throws {
        let topic = "eos-fenced-in"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1), ("eos-fenced-out", 1)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 6_000, heartbeatIntervalMs: 250)
        let client = try await connect(mock, base: "eos-fenced")
        await produce(client, topic: topic, partitions: 1, count: 1)
        let consumer = try client.consumer(memberSettings(group: "g-eos-fenced", topic: topic, protocol: .consumer))
        await eventually("the member holds the partition", within: .seconds(30)) { consumer.assignment.count == 1 }
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.producerFenced.rawValue])
        do {
            try await consumer.run(transactional: .init()) { _, txn in
                _ = try await txn.produce(ProducerRecord(topic: "eos-fenced-out", partition: 0, value: "y"))
            }
            XCTFail("a fenced producer must end the run")
        } catch {
            XCTAssertEqual(error.code, .producerFenced, "\(error)")
        }
        XCTAssertNil(consumer.committed(TopicPartition(topic: topic, partition: 0)))
        await consumer.close()
        await client.close()
    }
}
