import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import XCTest

/// A fact about Tansu 0.6 that the crash tests of exactly-once processing must keep in mind:
/// a transaction whose producer died is **committed** by the next producer with the same
/// transactional id. Kafka aborts it when the successor initialises (the epoch bump fences the
/// dead producer). So when a consuming process is killed with a transaction open and a new one
/// takes its transactional id, Tansu makes the dead transaction's results and offsets visible
/// together with the successor's first transaction, after the successor already read the older
/// offset: that batch is processed twice. (With another transactional id, Tansu never aborts
/// the open transaction at all, and read_committed readers stop at it for good.) This test pins
/// the behaviour, with librdkafka as both producers, so a Tansu that starts aborting is noticed.
final class TansuTransactionQuirkTests: XCTestCase {
    func testAnOpenTransactionOfADeadProducerIsCommittedByItsSuccessor() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "tansu-abandoned")
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let out = try runInterop("tansu_abandoned_transaction.py", ["--bootstrap", bootstrap, "--topic", topic, "--id", "dead-\(topic)"])
        let seen = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String]
        // Kafka: ["from-successor"].
        XCTAssertEqual(seen, ["from-dead-producer", "from-successor"], "Tansu commits the abandoned transaction")
        await client.close()
    }

    /// Tansu 0.6 finishes a committed transaction only when no other transaction that wrote to
    /// one of its partitions is still open ("overlapping"); until then it stays prepared, its
    /// offsets held in its transactional id's state. A new transaction on the same id and epoch
    /// takes that state over, held offsets included. Kafka answers the new transaction's
    /// AddPartitionsToTxn with `CONCURRENT_TRANSACTIONS` until the previous one is complete.
    /// These tests force the interleavings with two pool members, every transaction writing to
    /// the same partition; without the reused id, the same steps leave the offset committed.
    ///
    /// Here the new transaction aborts: the committed transaction's offset is dropped.
    func testACommittedTransactionsOffsetIsDroppedWhenItsIdAbortsTheNextTransactionWhileAnOverlappingOneIsOpen() async throws {
        let dropped = try await committedOffsetAfterOverlappingTransactions(.abortOnTheSameID)
        XCTAssertNil(dropped, "Tansu dropped the committed transaction's offset with the aborted one (Kafka: 10)")
        let kept = try await committedOffsetAfterOverlappingTransactions(.none)
        XCTAssertEqual(kept, 10, "without the reused id the offset is committed")
    }

    /// Here the new transaction commits after the open one committed a newer offset of the same
    /// partition: the held, older offset is committed last and sets the partition back.
    func testAHeldOffsetCommittedByTheIdsNextTransactionSetsTheGroupBack() async throws {
        let setBack = try await committedOffsetAfterOverlappingTransactions(.commitOnTheSameIDAfterANewerOffset)
        XCTAssertEqual(setBack, 10, "Tansu committed the held offset after the newer one (Kafka: 20)")
    }

    enum OverlapScenario {
        /// A commits offset 10 while B is open; B commits.
        case none
        /// As `none`, and A's id then runs a transaction that writes and aborts before B commits.
        case abortOnTheSameID
        /// A commits offset 10 while B is open; A's id opens a transaction that writes; B
        /// commits offset 20 (held, the new one open); the new one commits.
        case commitOnTheSameIDAfterANewerOffset
    }

    /// Runs a scenario and returns the group's committed offset of the input partition.
    private func committedOffsetAfterOverlappingTransactions(_ scenario: OverlapScenario) async throws -> Int64? {
        let client = try await Shared.client { config in
            config.transactions = TransactionConfiguration(baseTransactionalID: "overlap-\(UUID().uuidString.prefix(8))", poolSize: 2)
        }
        let output = try await Shared.topic(client, partitions: 1, prefix: "tansu-overlap-out")
        let input = TopicPartition(topic: try await Shared.topic(client, partitions: 1, prefix: "tansu-overlap-in"), partition: 0)
        let group = "g-" + output
        /// A transaction on its own task that writes one record, then waits for `finish`.
        func openTransaction(_ value: String, offset: Int64?, finish: Locked<Bool>) async -> Task<String, any Error> {
            let produced = Locked(false)
            let task = Task {
                try await client.transaction { txn in
                    _ = try await txn.produce(ProducerRecord(topic: output, partition: 0, value: value))
                    produced.withLock { $0 = true }
                    while !finish.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
                    if let offset { try await txn.sendOffsets([input: offset], groupID: group) }
                    return txn.transactionalID
                }
            }
            await eventually("the open transaction wrote its record") { produced.withLock { $0 } }
            return task
        }
        let finishB = Locked(false)
        let b = await openTransaction("b", offset: scenario == .commitOnTheSameIDAfterANewerOffset ? 20 : nil, finish: finishB)
        let a = try await client.transaction { txn in
            _ = try await txn.produce(ProducerRecord(topic: output, partition: 0, value: "a"))
            try await txn.sendOffsets([input: 10], groupID: group)
            return txn.transactionalID
        }
        var expected: Set<String> = ["a", "b"]
        switch scenario {
        case .none:
            finishB.withLock { $0 = true }
            _ = try await b.value
        case .abortOnTheSameID:
            struct Abort: Error {}
            do {
                try await client.transaction { txn in
                    XCTAssertEqual(txn.transactionalID, a, "the pool's only free member")
                    _ = try await txn.produce(ProducerRecord(topic: output, partition: 0, value: "aborted"))
                    throw Abort()
                }
                XCTFail("the transaction must abort")
            } catch is Abort {}
            finishB.withLock { $0 = true }
            _ = try await b.value
        case .commitOnTheSameIDAfterANewerOffset:
            let finishA2 = Locked(false)
            let a2 = await openTransaction("a2", offset: nil, finish: finishA2)
            finishB.withLock { $0 = true }
            _ = try await b.value
            finishA2.withLock { $0 = true }
            let reused = try await a2.value
            XCTAssertEqual(reused, a, "the pool's only free member")
            expected.insert("a2")
        }
        let values = try await readValues(client, topic: output, isolation: .readCommitted)
        XCTAssertEqual(Set(values), expected, "every committed transaction's record is visible")
        let offsets = try await client.committedOffsets(groupID: group)
        await client.close()
        return offsets[input]
    }
}
