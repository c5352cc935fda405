import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import XCTest

/// KlifeTesting's flow-control kit (`ScriptedDownstream`, `DownstreamGate`, `FlowCheck`) on
/// Tansu: a slow and failing downstream, a bulk write that rejects some rows, a partition
/// revoked while its batch is held in the downstream, and commits failing under connection
/// kills — each checked for loss, duplicates and order.
final class FlowTestingKitTests: XCTestCase {
    private func fill(_ client: KlifeClient, topic: String, partitions: Int32, count: Int) async {
        for p in 0..<partitions {
            for i in 0..<count { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) { _ in } }
        }
        await client.flush()
    }

    private func settings(_ topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = "g-" + topic
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.maxRecords = 20
        settings.sessionTimeout = .seconds(6)
        settings.heartbeatInterval = .milliseconds(500)
        settings.autoCommitInterval = .milliseconds(200)
        settings.failurePolicy = FailurePolicy(backoff: .milliseconds(20), maxBackoff: .milliseconds(100))
        return settings
    }

    private func expected(_ topic: String, partitions: Int32, count: Int) -> [TopicPartition: Range<Int64>] {
        Dictionary(uniqueKeysWithValues: (0..<partitions).map { (TopicPartition(topic: topic, partition: $0), 0..<Int64(count)) })
    }

    func testTheCheckFindsLossDuplicatesAndDisorder() async throws {
        let downstream = ScriptedDownstream([])
        let tp = TopicPartition(topic: "t", partition: 0)
        func batch(_ offsets: [Int64]) -> ConsumerBatch {
            let records = offsets.map { ConsumerRecord(topic: "t", partition: 0, offset: $0, timestamp: 0, key: nil, value: nil, headers: []) }
            return ConsumerBatch(topicPartition: tp, records: ConsumerRecords(topic: "t", partition: 0, records),
                                 highWatermark: 10, lastStableOffset: -1, nextOffset: (offsets.last ?? 0) + 1)
        }
        try await downstream.write(batch([0, 1, 3]))
        try await downstream.write(batch([2, 3]))
        try await downstream.write(batch([11]))
        let report = downstream.check(expected: [tp: 0..<5])
        XCTAssertEqual(report.lost, [tp: [4]])
        XCTAssertEqual(report.duplicated, [tp: [3]])
        XCTAssertEqual(report.outOfOrder, [tp: [2]])
        XCTAssertEqual(report.unexpected, 1)
        XCTAssertFalse(report.isClean)
        XCTAssertFalse(downstream.check(expected: [tp: 0..<4], duplicates: .allowed).isClean, "disorder still fails")
        let clean = ScriptedDownstream([])
        try await clean.write(batch([0, 1, 2]))
        try await clean.write(batch([2]))
        XCTAssertTrue(clean.check(expected: [tp: 0..<3], duplicates: .allowed).isClean, "\(clean.check(expected: [tp: 0..<3]))")
        XCTAssertFalse(clean.check(expected: [tp: 0..<3]).isClean, "a duplicate fails exactly once")
    }

    func testASlowAndFailingDownstreamLosesNothingDuplicatesNothingAndKeepsOrder() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3, prefix: "kit-slow")
        await fill(client, topic: topic, partitions: 3, count: 100)
        let downstream = ScriptedDownstream([.succeed, .delay(.milliseconds(300)), .fail("deadlock detected"), .succeed,
                                             .fail("connection reset"), .fail("connection reset"), .delay(.milliseconds(100))])
        let consumer = try client.consumer(settings(topic))
        let running = Task { try await consumer.run { batch in try await downstream.write(batch) } }
        let expected = expected(topic, partitions: 3, count: 100)
        await eventually("every record written") { downstream.check(expected: expected).lost.isEmpty }
        let report = downstream.check(expected: expected)
        XCTAssertTrue(report.isClean, "\(report)")
        XCTAssertGreaterThan(consumer.statistics().outcomes.retries, 2, "the failing calls were retried")
        await consumer.close()
        try await running.value
        await client.close()
    }

    func testABulkWriteRejectingRowsRetriesOnlyThoseAndLosesNothing() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "kit-reject")
        await fill(client, topic: topic, partitions: 2, count: 60)
        // The third call writes its rows but those at offsets ≡ 5 (mod 7), which it rejects.
        let downstream = ScriptedDownstream([.succeed, .succeed, .rejectRecords("unique violation") { $0.offset % 7 != 5 }])
        let consumer = try client.consumer(settings(topic))
        let running = Task {
            try await consumer.run { batch -> BatchOutcome in
                do {
                    try await downstream.write(batch)
                    return .done
                } catch let failure as DownstreamFailure {
                    var outcome = BatchOutcome.done
                    for record in batch.records where failure.rejected.contains(record.offset) {
                        outcome.retry(record, error: failure.reason)
                    }
                    return outcome
                }
            }
        }
        let expected = expected(topic, partitions: 2, count: 60)
        await eventually("every record written") { downstream.check(expected: expected).lost.isEmpty }
        let report = downstream.check(expected: expected)
        XCTAssertTrue(report.lost.isEmpty && report.duplicated.isEmpty && report.unexpected == 0, "\(report)")
        let rejectedCall = Set(downstream.written.filter { $0.call == 3 }.map(\.topicPartition))
        XCTAssertEqual(rejectedCall.count, 1, "one batch was the rejecting call")
        // Only the rejected rows, retried alone, come after later rows of their partition.
        let late = report.outOfOrder.values.flatMap { $0 }
        XCTAssertFalse(late.isEmpty, "the rejected rows were written after later ones")
        XCTAssertTrue(late.allSatisfy { $0 % 7 == 5 }, "only rejected rows are late: \(late)")
        await eventually("commits pass the retried rows") {
            expected.keys.allSatisfy { consumer.processed($0) == 60 }
        }
        await consumer.close()
        try await running.value
        await client.close()
    }

    func testAPartitionRevokedWhileItsBatchIsHeldLosesAndDuplicatesNothing() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "kit-revoke")
        await fill(client, topic: topic, partitions: 2, count: 80)
        let gate = DownstreamGate()
        let downstream = ScriptedDownstream([.succeed, .hold(gate)])
        var settings = settings(topic)
        settings.revokeTimeout = .seconds(50)  // the revoke waits for the held batch (below rebalanceTimeout)
        // Eager: a rebalance revokes every partition, the held one included (cooperative-sticky
        // would move only the idle one).
        settings.assignmentStrategies = [.range]
        let first = try client.consumer(settings)
        let running = Task { try await first.run { batch in try await downstream.write(batch) } }
        await eventually("a batch is held in the downstream") { gate.arrivals == 1 }
        let second = try client.consumer(settings)
        let runningSecond = Task { try await second.run { batch in try await downstream.write(batch) } }
        await eventually("the held batch's partition is being revoked") {
            first.state.state.withLock { $0.partitions.values.contains { $0.revoking } }
        }
        gate.open()
        let expected = expected(topic, partitions: 2, count: 80)
        await eventually("every record written") { downstream.check(expected: expected).lost.isEmpty }
        let report = downstream.check(expected: expected)
        XCTAssertTrue(report.isClean, "a batch finished before its revoke committed: nothing read twice. \(report)")
        await eventually("the second member holds a partition") { !second.assignment.isEmpty }
        await first.close()
        await second.close()
        try await running.value
        try await runningSecond.value
        await client.close()
    }

    func testCommitsFailingUnderConnectionKillsStillReachTheEnd() async throws {
        let (broker, proxy) = try await TestBroker.startBehindProxy()
        defer { proxy.stop(); broker.stop() }
        var config = KlifeConfiguration(bootstrapServers: [proxy.address])
        config.requestTimeout = .seconds(2)
        let client = try await KlifeClient.connect(config)
        let topic = "kit-commits"
        try await client.createTopic(topic, partitions: 2)
        await fill(client, topic: topic, partitions: 2, count: 100)
        let kill: ScriptedDownstream.Step = .action { proxy.killAllConnections() }
        let downstream = ScriptedDownstream([.succeed, kill, .delay(.milliseconds(300)), kill, .succeed, kill])
        let consumer = try client.consumer(settings(topic))
        let running = Task { try await consumer.run { batch in try await downstream.write(batch) } }
        let expected = expected(topic, partitions: 2, count: 100)
        await eventually("every record written") { downstream.check(expected: expected).lost.isEmpty }
        XCTAssertGreaterThan(proxy.connectionsKilled, 0)
        await consumer.close()
        try await running.value
        let report = downstream.check(expected: expected)
        XCTAssertTrue(report.isClean, "\(report)")
        let committed = try await client.committedOffsets(groupID: "g-" + topic)
        XCTAssertEqual(committed, expected.mapValues { $0.upperBound }, "the commits reached the end despite the kills")
        await client.close()
    }
}
