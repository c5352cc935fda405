import Foundation
import Klife
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
}
