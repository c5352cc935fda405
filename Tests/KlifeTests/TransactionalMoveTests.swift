import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// Moving records along their retry chain inside the batch's transaction
/// (`run(transactional:)` with a `BatchOutcome`): every input record ends exactly once in the
/// output (its results) or in the dead-letter topic, with each retry-topic copy written once,
/// under random connection kills and across a `kill -9` of the consuming process and a restart.
final class TransactionalMoveTests: XCTestCase {
    static let workerVariable = "KLIFE_TXN_MOVE_WORKER"

    /// The pipeline both tests run: poison records (`…-poison`) fail every attempt, in the
    /// source and in the retry topic, and end in the dead-letter topic; the others produce
    /// `out-<value>`.
    static func settings(group: String, input: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [input]
        settings.offsetReset = .earliest
        settings.isolation = .readCommitted
        settings.maxRecords = 20
        settings.sessionTimeout = .seconds(10)
        settings.heartbeatInterval = .seconds(1)
        settings.retryBackoff = .milliseconds(20)
        settings.retryBackoffMax = .milliseconds(200)
        settings.failurePolicy = FailurePolicy(maxAttempts: 2, backoff: .milliseconds(10), maxBackoff: .milliseconds(50))
        settings.retryTopics = RetryTopics(delays: [.milliseconds(300)])
        return settings
    }

    static func run(_ consumer: KlifeConsumer, output: String) async throws {
        try await consumer.run(transactional: .init()) { batch, txn -> BatchOutcome in
            var outcome = BatchOutcome.done
            for record in batch.records {
                let value = record.valueString ?? ""
                if value.hasSuffix("poison") {
                    outcome.retry(record, error: "poison")
                    continue
                }
                _ = try await txn.produce(ProducerRecord(topic: output, partition: 0, value: "out-" + value))
            }
            return outcome
        }
    }

    static func createTopics(_ client: KlifeClient, input: String, partitions: Int32) async throws -> String {
        let output = input + ".out"
        try await client.createTopic(input, partitions: partitions)
        try await client.createTopic(output, partitions: 1)
        try await client.createTopic(input + ".retry.300ms", partitions: partitions)
        try await client.createTopic(input + ".dlq", partitions: partitions)
        return output
    }

    static func inputValues(partitions: Int32, perPartition: Int) -> [Int32: [String]] {
        var values: [Int32: [String]] = [:]
        for p in 0..<partitions {
            values[p] = (0..<perPartition).map { i in i % 10 == 7 ? "\(p)-\(i)-poison" : "\(p)-\(i)" }
        }
        return values
    }

    /// Reads `topic` at read_committed over its partitions.
    private func committedValues(_ client: KlifeClient, topic: String, partitions: Int32) async throws -> [String] {
        var values: [String] = []
        for p in 0..<partitions { values += try await readValues(client, topic: topic, partition: p, isolation: .readCommitted) }
        return values
    }

    /// Every input record exactly once: its result in the output or, for a poison record, one
    /// copy in the retry topic and one in the dead-letter topic.
    private func assertExactlyOnce(_ client: KlifeClient, input: String, output: String, partitions: Int32,
                                   values: [Int32: [String]], context: String) async throws {
        let all = values.values.flatMap { $0 }
        let good = all.filter { !$0.hasSuffix("poison") }
        let poison = all.filter { $0.hasSuffix("poison") }
        let out = try await readValues(client, topic: output, isolation: .readCommitted)
        XCTAssertEqual(out.count, good.count, "output: each result once \(context)")
        XCTAssertEqual(Set(out), Set(good.map { "out-" + $0 }), "output: every result \(context)")
        let retried = try await committedValues(client, topic: input + ".retry.300ms", partitions: partitions)
        XCTAssertEqual(retried.sorted(), poison.sorted(), "retry topic: each poison record moved once \(context)")
        let dead = try await committedValues(client, topic: input + ".dlq", partitions: partitions)
        XCTAssertEqual(dead.sorted(), poison.sorted(), "dead-letter topic: each poison record once \(context)")
    }

    func testTransactionalMovesStayExactlyOnceUnderRandomConnectionKills() async throws {
        let chaos = ChaosSettings.current(test: "transactional-moves")
        let (broker, proxy) = try await TestBroker.startBehindProxy()
        defer { proxy.stop(); broker.stop() }
        var config = KlifeConfiguration(bootstrapServers: [proxy.address])
        config.requestTimeout = .seconds(2)
        config.connectTimeout = .seconds(2)
        config.producer.retryBackoff = .milliseconds(20)
        config.transactions = TransactionConfiguration(baseTransactionalID: "moves-\(chaos.seed)", poolSize: 4,
                                                       timeout: .seconds(30))
        let client = try await KlifeClient.connect(config)
        let partitions: Int32 = 2
        let input = "moves-\(chaos.seed)"
        let output = try await Self.createTopics(client, input: input, partitions: partitions)
        let values = Self.inputValues(partitions: partitions, perPartition: 300)
        for (p, list) in values { for v in list { client.produce(ProducerRecord(topic: input, partition: p, value: v)) { _ in } } }
        await client.flush()

        let consumer = try client.consumer(Self.settings(group: "g-" + input, input: input))
        let running = Task { try await TransactionalMoveTests.run(consumer, output: output) }
        // Kills start once the member holds its partitions (a join is held by the coordinator
        // for seconds, longer than the kills leave a connection alive), and leave each
        // connection long enough for a transaction to finish now and then.
        await eventually("the member holds the source and retry partitions", within: .seconds(60)) {
            consumer.assignment.count == Int(partitions) * 2
        }
        proxy.setRandomKills(every: .milliseconds(300) ... .milliseconds(1500), seed: chaos.seed)
        let sources = (0..<partitions).map { TopicPartition(topic: input, partition: $0) }
        let poison = values.values.flatMap { $0 }.filter { $0.hasSuffix("poison") }
        await eventually("every source record committed and every poison record dead-lettered", within: .seconds(180)) {
            guard sources.allSatisfy({ consumer.committed($0) == 300 }) else { return false }
            let dead = (try? await self.committedValues(client, topic: input + ".dlq", partitions: partitions)) ?? []
            return dead.count >= poison.count
        }
        proxy.setRandomKills(every: nil, seed: 0)
        print("[chaos] transactional moves: \(proxy.connectionsKilled) connections killed \(chaos.replay)")
        XCTAssertGreaterThan(proxy.connectionsKilled, 0, "no connection was killed \(chaos.replay)")
        await consumer.close()
        try await running.value
        try await assertExactlyOnce(client, input: input, output: output, partitions: partitions, values: values,
                                    context: chaos.replay)
        await client.close()
    }

    /// The consuming process of the kill -9 test (skipped unless the test starts it).
    func testWorkerProcess() async throws {
        guard let spec = ProcessInfo.processInfo.environment[Self.workerVariable] else {
            throw XCTSkip("runs only as the process testAKilledConsumerProcessRestartedMovesEachRecordOnce starts")
        }
        let parts = spec.split(separator: " ").map(String.init)  // bootstrap input output transactionalID
        var config = KlifeConfiguration(bootstrapServers: [parts[0]])
        config.transactions = TransactionConfiguration(baseTransactionalID: parts[3], poolSize: 2, timeout: .seconds(20))
        let client = try await KlifeClient.connect(config)
        let consumer = try client.consumer(Self.settings(group: "g-" + parts[1], input: parts[1]))
        try await Self.run(consumer, output: parts[2])  // until killed
    }

    func testAKilledConsumerProcessRestartedMovesEachRecordOnce() async throws {
        let cluster = try await Shared.cluster.value
        let client = try await Shared.client()
        let partitions: Int32 = 2
        let perPartition = 400
        let input = TestCluster.uniqueTopicName("moves-kill")
        let output = try await Self.createTopics(client, input: input, partitions: partitions)
        let values = Self.inputValues(partitions: partitions, perPartition: perPartition)
        for (p, list) in values { for v in list { client.produce(ProducerRecord(topic: input, partition: p, value: v)) { _ in } } }
        await client.flush()

        let spec = "\(cluster.bootstrapServers[0]) \(input) \(output) kill-\(input)"
        func startWorker() throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            process.arguments = ["KlifeTests.TransactionalMoveTests/testWorkerProcess"]
            var environment = ProcessInfo.processInfo.environment
            environment[Self.workerVariable] = spec
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        let sources = (0..<partitions).map { TopicPartition(topic: input, partition: $0) }
        func committed() async -> Int64 {
            let offsets = (try? await client.committedOffsets(groupID: "g-" + input)) ?? [:]
            return sources.reduce(0) { $0 + (offsets[$1] ?? 0) }
        }
        let first = try startWorker()
        // Killed mid-run: once some batches committed (a transaction is very likely open then).
        await eventually("the first process commits some batches", within: .seconds(120)) { await committed() >= 60 }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let atKill = await committed()
        print("[kill -9] killed after \(atKill) of \(Int(partitions) * perPartition) source records committed")
        XCTAssertLessThan(atKill, Int64(Int(partitions) * perPartition), "killed mid-run")

        let second = try startWorker()
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL); second.waitUntilExit() } }
        let poison = values.values.flatMap { $0 }.filter { $0.hasSuffix("poison") }
        await eventually("the restarted process finishes every source record and dead-letters every poison record",
                         within: .seconds(240)) {
            guard await committed() == Int64(Int(partitions) * perPartition) else { return false }
            let dead = (try? await self.committedValues(client, topic: input + ".dlq", partitions: partitions)) ?? []
            return dead.count >= poison.count
        }
        kill(second.processIdentifier, SIGKILL)
        second.waitUntilExit()
        try await assertExactlyOnce(client, input: input, output: output, partitions: partitions, values: values,
                                    context: "(killed at \(atKill))")
        await client.close()
    }
}
