import KlifeIO
import Foundation
import Klife
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

/// Transactions under connection faults: Tansu behind a ``FaultProxy`` that kills
/// connections at random byte positions (produce, AddPartitionsToTxn and EndTxn alike).
///
/// Each transaction writes a numbered set of records; afterwards a read_committed reader
/// must find every transaction **whole or absent** (never partly), every transaction whose
/// `transaction` call returned whole, no record twice, and each transaction's records in
/// order within their partition. Scale follows ``ChaosSettings`` (`KLIFE_SOAK=1` for long runs).
final class TransactionChaosTests: XCTestCase {
    func testTransactionsUnderRandomKillsAreAtomicAndExactlyOnce() async throws {
        let settings = ChaosSettings.current(test: "transactions")
        let (broker, proxy) = try await TestBroker.startBehindProxy()
        defer { proxy.stop(); broker.stop() }
        var config = KlifeConfiguration(bootstrapServers: [proxy.address])
        config.requestTimeout = .seconds(2)
        config.connectTimeout = .seconds(2)
        config.producer.retryBackoff = .milliseconds(20)
        config.producer.deliveryTimeout = .seconds(30)
        config.transactions = TransactionConfiguration(baseTransactionalID: "chaos-\(settings.seed)", poolSize: 2,
                                                       timeout: .seconds(60))
        let client = try await KlifeClient.connect(config)
        let topic = "txchaos"
        try await client.createTopic(topic, partitions: settings.partitions)

        let perTransaction = 20
        // Transactions run back to back for the settings' duration (CI: 5 s), two at a time.
        let deadline = ContinuousClock.now + settings.duration
        let started = Counter()
        proxy.setRandomKills(every: .milliseconds(30) ... .milliseconds(250), seed: settings.seed)
        let outcomes = Outcomes()
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<2 {
                group.addTask {
                    _ = worker
                    while ContinuousClock.now < deadline {
                        let t = started.next()
                        let records = (0..<perTransaction).map { i in
                            ProducerRecord(topic: topic, key: "t\(t)", value: "t\(t)-\(i)")
                        }
                        let outcome: String
                        do {
                            _ = try await client.produceBatchInTransaction(records)
                            outcome = "committed"
                        } catch {
                            outcome = "\(error)"
                        }
                        outcomes.set(t, outcome)
                    }
                }
            }
        }
        proxy.setRandomKills(every: nil, seed: 0)
        let killed = proxy.connectionsKilled

        var seen: [Int: [Int]] = [:]         // transaction -> record numbers in log order
        for p in Int32(0)..<settings.partitions {
            for value in try await readCommitted(client, topic: topic, partition: p) {
                let parts = value.dropFirst().split(separator: "-")
                guard parts.count == 2, let t = Int(parts[0]), let i = Int(parts[1]) else {
                    XCTFail("foreign value \(value) \(settings.replay)")
                    continue
                }
                seen[t, default: []].append(i)
            }
        }
        let results = outcomes.all
        let transactions = started.value
        let committed = results.filter { $0.value == "committed" }.map(\.key)
        Swift.print("[chaos] transactions: \(committed.count)/\(transactions) committed, \(killed) connections killed")
        XCTAssertEqual(results.count, transactions)
        XCTAssertGreaterThan(killed, 0, "no connection was killed \(settings.replay)")
        XCTAssertGreaterThan(committed.count, 0, "no transaction committed \(settings.replay)")
        for t in 0..<transactions {
            let numbers = seen[t] ?? []
            if results[t] == "committed" {
                XCTAssertEqual(numbers, Array(0..<perTransaction), "transaction \(t) committed: whole, once, in order \(settings.replay)")
            } else {
                // Failed (or unknown outcome): all or nothing, never a part, never twice.
                XCTAssertTrue(numbers.isEmpty || numbers == Array(0..<perTransaction),
                              "transaction \(t) (\(results[t] ?? "?")) is partly visible: \(numbers) \(settings.replay)")
            }
        }
        await client.close()
    }

    /// Transaction number → "committed" or the error it ended with, from concurrent workers.
    private final class Outcomes: Sendable {
        private let state = Locked<[Int: String]>([:])
        func set(_ transaction: Int, _ outcome: String) { state.withLock { $0[transaction] = outcome } }
        var all: [Int: String] { state.withLock { $0 } }
    }

    /// Hands out transaction numbers to the workers.
    private final class Counter: Sendable {
        private let count = Atomic<Int>(0)
        func next() -> Int { count.add(1, ordering: .relaxed).oldValue }
        var value: Int { count.load(ordering: .relaxed) }
    }

    /// Every value of a partition visible at read_committed, in offset order.
    private func readCommitted(_ client: KlifeClient, topic: String, partition: Int32) async throws -> [String] {
        var values: [String] = []
        var offset: Int64 = 0
        for _ in 0..<10_000 {
            let page = try await client.fetch(topic: topic, partition: partition, offset: offset, maxBytes: 8 << 20,
                                              maxWait: .milliseconds(10), isolation: .readCommitted)
            values += page.records.map { $0.valueString ?? "" }
            if page.nextOffset == offset && offset < page.lastStableOffset {
                XCTFail("read_committed reader of \(topic)/\(partition) made no progress at offset \(offset) (last stable offset \(page.lastStableOffset))")
            }
            if page.nextOffset >= page.lastStableOffset || page.nextOffset == offset { break }
            offset = page.nextOffset
        }
        return values
    }
}
