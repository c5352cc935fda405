import Foundation
@testable import Klife
import KlifeProtocol
import XCTest

/// The transaction protocol's retry and fencing rules on librdkafka's mock cluster, whose
/// coordinator placement and per-API errors the test controls.
final class TransactionFaultTests: XCTestCase {
    private let transactionalID = "fault-0"

    /// CONCURRENT_TRANSACTIONS and COORDINATOR_LOAD_IN_PROGRESS are waited out; NOT_COORDINATOR
    /// and COORDINATOR_NOT_AVAILABLE make the client find the coordinator again, which has
    /// meanwhile moved to another broker; the transaction still commits.
    func testRetriableCoordinatorErrorsAndACoordinatorMoveStillCommit() async throws {
        let topic = "txfault"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 2)])
        defer { mock.stop() }
        try mock.coordinator("transaction", key: transactionalID, broker: 1)
        try mock.pushErrors(apiKey: ApiKey.initProducerId.rawValue,
                            codes: [KafkaErrorCode.concurrentTransactions.rawValue, KafkaErrorCode.coordinatorLoadInProgress.rawValue])
        let client = try await connect(mock)
        let start = await client.statistics().requestsSent
        XCTAssertEqual(start[.initProducerId], 3, "two refused InitProducerId attempts, then one accepted")

        try mock.coordinator("transaction", key: transactionalID, broker: 2)
        try mock.pushErrors(apiKey: ApiKey.addPartitionsToTxn.rawValue,
                            codes: [KafkaErrorCode.concurrentTransactions.rawValue, KafkaErrorCode.notCoordinator.rawValue])
        try mock.pushErrors(apiKey: ApiKey.endTxn.rawValue,
                            codes: [KafkaErrorCode.coordinatorNotAvailable.rawValue, KafkaErrorCode.concurrentTransactions.rawValue])
        let offsets = try await client.transaction { txn in
            [try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "p0")).offset,
             try await txn.produce(ProducerRecord(topic: topic, partition: 1, value: "p1")).offset]
        }
        XCTAssertEqual(offsets, [0, 0])

        let end = await client.statistics().requestsSent
        XCTAssertEqual((end[.addPartitionsToTxn] ?? 0) - (start[.addPartitionsToTxn] ?? 0), 4,
                       "partition 0: two refused attempts and one accepted; partition 1: one")
        XCTAssertEqual((end[.endTxn] ?? 0) - (start[.endTxn] ?? 0), 3, "two refused EndTxn attempts, then the commit")
        XCTAssertGreaterThanOrEqual((end[.findCoordinator] ?? 0) - (start[.findCoordinator] ?? 0), 2,
                                    "NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE each look the coordinator up again")
        let second = try await client.transaction { txn in
            try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "again")).offset
        }
        XCTAssertGreaterThan(second, 0)
        await client.close()
    }

    /// PRODUCER_FENCED on a transactional Produce fails the record with `producerFenced`,
    /// aborts the transaction, and every later transaction of that member fails the same way.
    func testFencedProduceIsFatalForThePoolMember() async throws {
        let topic = "txfenced"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        try await client.transaction { txn in
            _ = try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "ok"))
        }
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.producerFenced.rawValue])
        do {
            try await client.transaction { txn in
                _ = try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "fenced"))
            }
            XCTFail("a fenced producer's record must fail")
        } catch let error as KlifeError {
            XCTAssertEqual(error.code, .producerFenced, "\(error)")
            XCTAssertEqual(error.kafkaErrorCode, .producerFenced)
        }
        let requestsBefore = await client.statistics().requestsSent
        do {
            try await client.transaction { _ in }
            XCTFail("a fenced member must stay fenced")
        } catch let error as KlifeError {
            XCTAssertEqual(error.code, .producerFenced, "\(error)")
        }
        let requestsAfter = await client.statistics().requestsSent
        XCTAssertEqual(requestsAfter[.initProducerId], requestsBefore[.initProducerId],
                       "a fenced member never takes a new epoch (that would fence its successor)")
        await client.close()
    }

    /// INVALID_PRODUCER_EPOCH answering the commit is fencing too: the commit fails with
    /// `producerFenced`, never as a success.
    func testFencedCommitIsReportedAsFencing() async throws {
        let topic = "txendfenced"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        try mock.pushErrors(apiKey: ApiKey.endTxn.rawValue, codes: [KafkaErrorCode.invalidProducerEpoch.rawValue])
        do {
            try await client.transaction { txn in
                _ = try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "x"))
            }
            XCTFail("a fenced commit must throw")
        } catch let error as KlifeError {
            XCTAssertEqual(error.code, .producerFenced, "\(error)")
            XCTAssertEqual(error.kafkaErrorCode, .invalidProducerEpoch)
        }
        await client.close()
    }

    /// A non-retriable coordinator answer (INVALID_TXN_STATE on AddPartitionsToTxn) fails
    /// the produce with that code, the transaction aborts, and the next one works.
    func testRefusedPartitionAbortsAndTheNextTransactionWorks() async throws {
        let topic = "txrefused"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        try mock.pushErrors(apiKey: ApiKey.addPartitionsToTxn.rawValue, codes: [KafkaErrorCode.invalidTxnState.rawValue])
        do {
            try await client.transaction { txn in
                _ = try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "refused"))
            }
            XCTFail("a refused partition must fail the produce")
        } catch let error as KlifeError {
            XCTAssertEqual(error.kafkaErrorCode, .invalidTxnState, "\(error)")
        }
        let offset = try await client.transaction { txn in
            try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "accepted")).offset
        }
        XCTAssertEqual(offset, 0, "the refused record never reached the partition")
        await client.close()
    }

    /// Three leaders owned by two reactors: a transaction's records cross reactors with
    /// their session, and each lands once, in order, under one commit.
    func testTransactionAcrossBrokersAndReactors() async throws {
        let topic = "txspread"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 6)])
        defer { mock.stop() }
        let client = try await connect(mock) { $0.reactorCount = 2 }
        var records: [ProducerRecord] = []
        for i in 0..<60 { records.append(ProducerRecord(topic: topic, partition: Int32(i % 6), value: "r-\(i)")) }
        let metadata = try await client.produceBatchInTransaction(records)
        XCTAssertEqual(metadata.map(\.partition), records.map { $0.partition! })
        for p in Int32(0)..<6 {
            XCTAssertEqual(metadata.filter { $0.partition == p }.map(\.offset), Array(0..<10), "partition \(p)")
        }
        let stats = await client.statistics()
        XCTAssertEqual(stats.requestsSent[.addPartitionsToTxn], 1, "all six partitions joined in one call")
        XCTAssertEqual(stats.requestsSent[.endTxn], 1)
        XCTAssertEqual(stats.recordsFailed, 0)
        await client.close()
    }

    /// A commit whose outcome is unknown (EndTxn answered with an error that says nothing of
    /// the transaction) may leave it open: before the member takes a new epoch it aborts that
    /// transaction itself under the old epoch, so it never stays undecided at a broker that
    /// does not abort it on an epoch bump. Then the next transaction commits.
    func testCommitWithUnknownOutcomeIsAbortedBeforeTheNextEpoch() async throws {
        let topic = "txunknown"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        let start = await client.statistics().requestsSent
        try mock.pushErrors(apiKey: ApiKey.endTxn.rawValue, codes: [KafkaErrorCode.unknownServerError.rawValue])
        do {
            try await client.transaction { txn in
                _ = try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "first"))
            }
            XCTFail("the commit was refused")
        } catch let error as KlifeError {
            XCTAssertEqual(error.kafkaErrorCode, .unknownServerError, "\(error)")
        }
        let afterFailure = await client.statistics().requestsSent
        XCTAssertEqual((afterFailure[.endTxn] ?? 0) - (start[.endTxn] ?? 0), 1, "one refused commit")

        try await client.transaction { txn in
            _ = try await txn.produce(ProducerRecord(topic: topic, partition: 0, value: "second"))
        }
        let end = await client.statistics().requestsSent
        XCTAssertEqual((end[.endTxn] ?? 0) - (afterFailure[.endTxn] ?? 0), 2, "the abort of the open transaction, then the commit")
        XCTAssertEqual((end[.initProducerId] ?? 0) - (afterFailure[.initProducerId] ?? 0), 1, "then a new epoch")
        // (The mock writes its transaction markers without a CRC, so the log is not read back here.)
        await client.close()
    }

    private func connect(_ mock: MockCluster,
                         _ configure: (inout KlifeConfiguration) -> Void = { _ in }) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.clientID = "klife-txn-fault-tests"
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        config.producer.deliveryTimeout = .seconds(10)
        config.producer.retryBackoff = .milliseconds(20)
        // Only the transactional producers ask for producer ids, so injected InitProducerId
        // errors reach them.
        config.producer.idempotent = false
        config.transactions = TransactionConfiguration(baseTransactionalID: "fault")
        configure(&config)
        return try await KlifeClient.connect(config)
    }
}
