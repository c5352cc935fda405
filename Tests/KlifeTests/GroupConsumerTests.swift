import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// Reads a consumer's batches in the background and remembers every record by partition.
final class GroupReader: Sendable {
    let consumer: KlifeConsumer
    let name: String
    /// Offsets received per partition, in arrival order (duplicates kept).
    let received = Locked<[TopicPartition: [Int64]]>([:])
    /// (monotonic ns, partition) of every batch.
    let arrivals = Locked<[(UInt64, TopicPartition)]>([])
    let failure = Locked<(any Error)?>(nil)
    private let task = Locked<Task<Void, Never>?>(nil)

    init(_ consumer: KlifeConsumer, name: String) {
        self.consumer = consumer
        self.name = name
        let t = Task { [self] in
            do {
                for try await batch in consumer.batches {
                    let now = Reactor.monotonicNanoseconds()
                    received.withLock { $0[batch.topicPartition, default: []] += batch.records.map(\.offset) }
                    arrivals.withLock { $0.append((now, batch.topicPartition)) }
                }
            } catch {
                failure.withLock { $0 = error }
            }
        }
        task.withLock { $0 = t }
    }

    var count: Int { received.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    func wait() async { await task.withLock { $0 }?.value }
}

/// Polls `condition` every 50 ms until it holds or `limit` passes; fails the test naming `what`.
func eventually(_ what: String, within limit: Duration = .seconds(120), file: StaticString = #filePath, line: UInt = #line,
                _ condition: () async throws -> Bool) async rethrows {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try? await Task.sleep(for: .milliseconds(50))
    }
    XCTFail("timed out waiting until \(what)", file: file, line: line)
}

/// Group members on Tansu (classic protocol): partitions split among members, graceful and
/// abrupt departures, cooperative rebalances that keep partitions flowing, static membership.
final class GroupConsumerTests: XCTestCase {
    private func produce(_ client: KlifeClient, topic: String, partitions: Int32, count: Int, tag: String = "") async {
        for p in 0..<partitions {
            for i in 0..<count { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(tag)\(p):\(i)")) { _ in } }
        }
        await client.flush()
    }

    private func settings(group: String, topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.autoCommitInterval = .milliseconds(200)
        settings.maxRecords = 50
        // Tansu holds a JoinGroup for about half the session timeout: keep it short.
        settings.sessionTimeout = .seconds(8)
        settings.heartbeatInterval = .seconds(1)
        return settings
    }

    func testTwoMembersSplitSixPartitionsAndAGracefulCloseRebalancesAtOnce() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 6, prefix: "group")
        let group = "g-" + topic
        await produce(client, topic: topic, partitions: 6, count: 100)
        let settings = settings(group: group, topic: topic)
        let a = GroupReader(try client.consumer(settings), name: "a")
        let b = GroupReader(try client.consumer(settings), name: "b")
        await eventually("both members hold three partitions") {
            a.consumer.assignment.count == 3 && b.consumer.assignment.count == 3
        }
        XCTAssertTrue(a.consumer.assignment.isDisjoint(with: b.consumer.assignment), "assignments are disjoint")
        XCTAssertEqual(a.consumer.assignment.union(b.consumer.assignment).count, 6, "every partition assigned")
        await eventually("all 600 records read") { a.count + b.count >= 600 }

        await a.consumer.close()
        let left = await client.statistics().requestsSent[.leaveGroup] ?? 0
        XCTAssertEqual(left, 1, "a graceful close leaves the group (the rebalance starts without waiting for the session timeout)")
        await eventually("the remaining member holds every partition after the other left") { b.consumer.assignment.count == 6 }
        await produce(client, topic: topic, partitions: 6, count: 10, tag: "late-")
        await eventually("all 660 records read") { a.count + b.count >= 660 }
        await b.consumer.close()
        await a.wait()
        await b.wait()
        XCTAssertNil(a.failure.withLock { $0 })
        XCTAssertNil(b.failure.withLock { $0 })

        var all: [TopicPartition: [Int64]] = [:]
        for reader in [a, b] { for (tp, offsets) in reader.received.withLock({ $0 }) { all[tp, default: []] += offsets } }
        for p in Int32(0)..<6 {
            let tp = TopicPartition(topic: topic, partition: p)
            XCTAssertEqual(Set(all[tp] ?? []), Set((0..<110).map { Int64($0) }), "\(tp): every record read")
            XCTAssertEqual(all[tp]?.count, 110, "\(tp): a graceful handover re-delivers nothing")
        }
        let committed = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(committed, Dictionary(uniqueKeysWithValues: (0..<6).map { (TopicPartition(topic: topic, partition: $0), Int64(110)) }),
                       "closing commits what was processed")
        XCTAssertGreaterThanOrEqual(b.consumer.groupStatistics.rebalances, 2)
        XCTAssertEqual(b.consumer.groupStatistics.partitionsLostEvents, 0)
        await client.close()
    }
}
