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

    /// - Parameter onBatch: called with each batch as it arrives, before it is remembered.
    init(_ consumer: KlifeConsumer, name: String, onBatch: (@Sendable (ConsumerBatch) -> Void)? = nil) {
        self.consumer = consumer
        self.name = name
        let t = Task { [self] in
            do {
                for try await batch in consumer.batches {
                    onBatch?(batch)
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

    func testAKilledMemberLosesItsPartitionsAfterTheSessionTimeoutAndNothingCommittedIsLost() async throws {
        let client = try await Shared.client()
        let doomedClient = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 6, prefix: "group-kill")
        let group = "g-" + topic
        await produce(client, topic: topic, partitions: 6, count: 50)
        let settings = settings(group: group, topic: topic)
        let doomed = GroupReader(try doomedClient.consumer(settings), name: "doomed")
        let survivor = GroupReader(try client.consumer(settings), name: "survivor")
        await eventually("both members hold three partitions") {
            doomed.consumer.assignment.count == 3 && survivor.consumer.assignment.count == 3
        }
        await eventually("all 300 records read") { doomed.count + survivor.count >= 300 }
        // Wait for the doomed member's auto-commit to cover everything it read, then kill it:
        // its client goes away without leaving the group.
        let doomedPartitions = doomed.consumer.assignment
        await eventually("the doomed member committed what it processed") {
            doomed.consumer.statistics().partitions.values.allSatisfy { $0.committed == 50 }
        }
        await doomedClient.close()
        await eventually("the survivor holds every partition after the session timeout") { survivor.consumer.assignment.count == 6 }
        XCTAssertEqual(survivor.consumer.groupStatistics.partitionsLostEvents, 0, "the survivor itself lost nothing")
        await produce(client, topic: topic, partitions: 6, count: 5, tag: "late-")
        await eventually("the survivor read the new records") {
            let got = survivor.received.withLock { $0 }
            return doomedPartitions.allSatisfy { (got[$0] ?? []).contains(54) }
        }
        let got = survivor.received.withLock { $0 }
        for tp in doomedPartitions {
            XCTAssertEqual(got[tp], (50..<55).map { Int64($0) }, "\(tp): the survivor starts at the killed member's last commit")
        }
        await survivor.consumer.close()
        let committed = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(Set(committed.values), [55], "every partition committed to its end")
        await client.close()
    }

    func testCooperativeRebalanceKeepsDeliveringPartitionsThatStay() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 6, prefix: "group-coop")
        let group = "g-" + topic
        var settings = settings(group: group, topic: topic)
        settings.assignmentStrategies = [.cooperativeSticky]
        let revokedFromFirst = Locked<Set<TopicPartition>>([])
        var firstSettings = settings
        firstSettings.onRevoked = { tps in revokedFromFirst.withLock { $0.formUnion(tps) } }
        let first = GroupReader(try client.consumer(firstSettings), name: "first")
        await eventually("the first member holds every partition") { first.consumer.assignment.count == 6 }

        // Records keep arriving on every partition while the second member joins.
        let producing = Task {
            var i = 0
            while !Task.isCancelled {
                for p in Int32(0)..<6 { client.produce(ProducerRecord(topic: topic, partition: p, value: "live-\(i)")) { _ in } }
                i += 1
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        let joinStarted = Reactor.monotonicNanoseconds()
        let assignedAt = Locked<UInt64?>(nil)
        var secondSettings = settings
        secondSettings.onAssigned = { tps in
            if !tps.isEmpty { assignedAt.withLock { $0 = $0 ?? Reactor.monotonicNanoseconds() } }
        }
        let second = GroupReader(try client.consumer(secondSettings), name: "second")
        await eventually("both members hold three partitions") {
            first.consumer.assignment.count == 3 && second.consumer.assignment.count == 3
        }
        producing.cancel()
        let kept = first.consumer.assignment
        let joinEnded = try XCTUnwrap(assignedAt.withLock { $0 })
        // The second half of the rebalance: long after the first member heard of it (heartbeats
        // every second; Tansu holds the joins for seconds), so an eager member would have
        // given up everything by then.
        let middle = joinStarted + (joinEnded - joinStarted) / 2
        let duringRebalance = first.arrivals.withLock { $0 }.filter { $0.0 > middle && $0.0 < joinEnded && kept.contains($0.1) }
        XCTAssertFalse(duringRebalance.isEmpty, "partitions that keep their owner deliver batches while the rebalance runs")
        XCTAssertEqual(Set(duringRebalance.map(\.1)), kept, "every partition that stays delivers during the rebalance")
        XCTAssertEqual(revokedFromFirst.withLock { $0 }, second.consumer.assignment,
                       "the first member gives up only the partitions that move")
        XCTAssertTrue(kept.isDisjoint(with: second.consumer.assignment))
        await first.consumer.close()
        await second.consumer.close()
        await client.close()
    }

    func testAStaticMemberRestartedWithinTheSessionTimeoutCausesNoRebalance() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 4, prefix: "group-static")
        let group = "g-" + topic
        var settings = settings(group: group, topic: topic)
        settings.sessionTimeout = .seconds(30)  // the restart must fit in it
        var staticSettings = settings
        staticSettings.groupInstanceID = "static-a"
        let a = GroupReader(try client.consumer(staticSettings), name: "a")
        let b = GroupReader(try client.consumer(settings), name: "b")
        await eventually("both members hold two partitions") {
            a.consumer.assignment.count == 2 && b.consumer.assignment.count == 2
        }
        let aPartitions = a.consumer.assignment
        let bPartitions = b.consumer.assignment
        let bRebalances = b.consumer.groupStatistics.rebalances
        await a.consumer.close()  // a static member does not leave
        let left = await client.statistics().requestsSent[.leaveGroup] ?? 0
        XCTAssertEqual(left, 0, "a static member does not send LeaveGroup")

        let restarted = GroupReader(try client.consumer(staticSettings), name: "a again")
        await eventually("the restarted static member holds its partitions again") { restarted.consumer.assignment == aPartitions }
        await produce(client, topic: topic, partitions: 4, count: 3)
        await eventually("records flow to both") { restarted.count + b.count >= 12 }
        XCTAssertEqual(b.consumer.groupStatistics.rebalances, bRebalances, "the other member saw no rebalance")
        XCTAssertEqual(b.consumer.assignment, bPartitions)
        await restarted.consumer.close()
        await b.consumer.close()
        await client.close()
    }

    func testAHandlerSlowerThanTheSessionTimeoutKeepsItsMembership() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "group-slow")
        let group = "g-" + topic
        await produce(client, topic: topic, partitions: 1, count: 6)
        var settings = settings(group: group, topic: topic)
        settings.sessionTimeout = .seconds(3)
        settings.heartbeatInterval = .milliseconds(500)
        settings.maxRecords = 3
        let consumer = try client.consumer(settings)
        let processed = Locked<[Int64]>([])
        let running = Task {
            try await consumer.run { batch in
                // Three session timeouts per batch: only heartbeats from the reactor keep the member in.
                try await Task.sleep(for: .seconds(9))
                processed.withLock { $0 += batch.records.map(\.offset) }
            }
        }
        await eventually("both batches processed", within: .seconds(90)) { processed.withLock { $0.count } == 6 }
        let stats = consumer.groupStatistics
        XCTAssertEqual(stats.rebalances, 1, "no rebalance after the first join")
        XCTAssertEqual(stats.partitionsLostEvents, 0, "membership never lost")
        XCTAssertGreaterThan(stats.heartbeats, 20, "heartbeats went on during the handlers")
        XCTAssertEqual(processed.withLock { $0 }, [0, 1, 2, 3, 4, 5], "each record once, in order")
        await consumer.close()
        try await running.value
        let committed = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(committed[TopicPartition(topic: topic, partition: 0)], 6)
        await client.close()
    }

    func testTestingHelpersConsumeWithAGroupAndWaitForAStableGroup() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "group-helpers")
        await produce(client, topic: topic, partitions: 2, count: 3)
        let records = try await client.consumeRecords(topics: [topic], group: "g-" + topic, count: 6) {
            $0.sessionTimeout = .seconds(6)
            $0.heartbeatInterval = .seconds(1)
        }
        XCTAssertEqual(Set(records.compactMap(\.valueString)), ["0:0", "0:1", "0:2", "1:0", "1:1", "1:2"])
        let committed = try await client.committedOffsets(groupID: "g-" + topic)
        XCTAssertEqual(Set(committed.values), [3], "what the helper read is committed")

        let settings = settings(group: "g2-" + topic, topic: topic)
        let members = [try client.consumer(settings), try client.consumer(settings)]
        try await waitUntilGroupIsStable(members, partitions: [TopicPartition(topic: topic, partition: 0), TopicPartition(topic: topic, partition: 1)])
        XCTAssertEqual(members.map(\.assignment.count), [1, 1])
        for member in members { await member.close() }
        await client.close()
    }
}
