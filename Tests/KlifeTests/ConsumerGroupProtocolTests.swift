import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import XCTest

/// A group member on the mock cluster that records every batch, commits after each one, and
/// checks that every partition it is given starts exactly at the group's committed offset
/// (read when the partition is assigned): re-delivery only ever starts at the last commit.
///
/// It reads `batches` (a batch counts as processed once the loop commits or asks for the
/// next one, so a revoke that comes between hands the batch to the next owner again, from the
/// last commit), or, with `handlers`, hands each batch to a `run` handler (a revoke waits for
/// the handler, and commits the batch: nothing is read twice across a handover).
final class CommittingMember: Sendable {
    let name: String
    let consumer: KlifeConsumer
    let probe: Probe
    /// Offsets received per partition, in arrival order (duplicates kept).
    let received = Locked<[TopicPartition: [Int64]]>([:])
    /// When the first and the last batch of each partition arrived (monotonic nanoseconds).
    let arrivals = Locked<[TopicPartition: (first: UInt64, last: UInt64)]>([:])
    let failure = Locked<(any Error)?>(nil)
    private let task = Locked<Task<Void, Never>?>(nil)

    /// What the membership hooks saw; created before the consumer so its settings can call it.
    final class Probe: Sendable {
        /// Where each newly assigned partition must start: the committed offset, or 0 without one.
        let expectedStart = Locked<[TopicPartition: Int64]>([:])
        /// Starts that did not match.
        let wrongStarts = Locked<[String]>([])
        /// Starts checked.
        let checkedStarts = Locked<Int>(0)
        let lost = Locked<[Set<TopicPartition>]>([])
        let assignedEvents = Locked<Int>(0)

        func install(into settings: inout ConsumerConfiguration, client: KlifeClient,
                     beforeStarting: (@Sendable (Set<TopicPartition>) async -> Void)?) {
            let group = settings.groupID ?? ""
            settings.onAssigned = { [self] partitions in
                await beforeStarting?(partitions)
                let committed = (try? await client.committedOffsets(groupID: group, partitions: Array(partitions))) ?? [:]
                expectedStart.withLock { starts in
                    for tp in partitions { starts[tp] = committed[tp] ?? 0 }
                }
                assignedEvents.withLock { $0 += 1 }
            }
            settings.onLost = { [self] partitions in lost.withLock { $0.append(partitions) } }
        }
    }

    /// - Parameters:
    ///   - handlers: read with `run` handlers rather than `batches`.
    ///   - beforeStarting: awaited at the start of every `onAssigned` (a test holds an
    ///     assignment there).
    init(_ name: String, client: KlifeClient, settings: ConsumerConfiguration, handlers: Bool = false,
         beforeStarting: (@Sendable (Set<TopicPartition>) async -> Void)? = nil) throws {
        self.name = name
        let probe = Probe()
        var settings = settings
        probe.install(into: &settings, client: client, beforeStarting: beforeStarting)
        self.probe = probe
        self.consumer = try client.consumer(settings)
        let t = Task { [self] in
            do {
                if handlers {
                    try await consumer.run { [self] batch in await handle(batch) }
                } else {
                    for try await batch in consumer.batches { await handle(batch) }
                }
            } catch {
                failure.withLock { $0 = error }
            }
        }
        task.withLock { $0 = t }
    }

    /// Checks where a newly assigned partition starts, records the batch, commits.
    private func handle(_ batch: ConsumerBatch) async {
        let tp = batch.topicPartition
        let offsets = batch.records.map(\.offset)
        if let first = offsets.first, let expected = probe.expectedStart.withLock({ $0.removeValue(forKey: tp) }) {
            probe.checkedStarts.withLock { $0 += 1 }
            if first != expected {
                probe.wrongStarts.withLock { $0.append("\(name): \(tp) started at \(first), the committed offset was \(expected)") }
            }
        }
        received.withLock { $0[tp, default: []] += offsets }
        let now = Reactor.monotonicNanoseconds()
        arrivals.withLock { $0[tp] = ($0[tp]?.first ?? now, now) }
        // A commit between two assignments throws REBALANCE_IN_PROGRESS; the revoke commits then.
        try? await consumer.commit()
    }

    var count: Int { received.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    func wait() async { await task.withLock { $0 }?.value }
}

/// The consumer group protocol (KIP-848): the reconciler on its own, then members on
/// librdkafka's mock cluster, which speaks ConsumerGroupHeartbeat v1 and assigns with a
/// range assignor of its own.
final class ConsumerGroupProtocolTests: XCTestCase {
    // MARK: Reconciler

    func testReconcilerRevokesThenAssignsOneChangeAtATimeAndKeepsUnknownTopicsPending() {
        let orders = KafkaUUID(high: 1, low: 1), audit = KafkaUUID(high: 2, low: 2)
        func tp(_ topic: String, _ p: Int32) -> TopicPartition { TopicPartition(topic: topic, partition: p) }
        var r = ConsumerGroupReconciler()
        XCTAssertTrue(r.nextChange(names: [orders: "orders"]).isEmpty, "no target yet: nothing to do")
        XCTAssertEqual(r.reported { _ in nil }, [], "a joining member owns nothing")

        // First assignment: orders 0-2 (known) and audit 0 (not in metadata yet).
        r.setTarget([.init(topicID: orders, partitions: [2, 0, 1]), .init(topicID: audit, partitions: [0])])
        var names = [orders: "orders"]
        XCTAssertEqual(r.unresolved(names: names), [audit])
        var change = r.nextChange(names: names)
        XCTAssertEqual(change, .init(revoked: [], added: [tp("orders", 0), tp("orders", 1), tp("orders", 2)]))
        r.didRevoke(change.revoked)
        r.willAssign(change.added)
        XCTAssertTrue(r.nextChange(names: names).isEmpty, "the unknown topic stays pending")
        XCTAssertEqual(r.owned, [tp("orders", 0), tp("orders", 1), tp("orders", 2)], "a pending topic is not taken")
        XCTAssertEqual(r.reported { _ in nil }, [.init(topicID: orders, partitions: [0, 1, 2]), .init(topicID: audit, partitions: [0])],
                       "reported by the ids the assignment used, the pending topic included (it is this member's)")

        // Metadata learns the topic: the pending partition is the next change.
        names[audit] = "audit"
        XCTAssertEqual(r.unresolved(names: names), [])
        change = r.nextChange(names: names)
        XCTAssertEqual(change, .init(revoked: [], added: [tp("audit", 0)]))
        r.willAssign(change.added)

        // The coordinator moves orders 1 and 2 away and gives orders 3: both come from one
        // target, revoked first (the driver calls revoke before assign).
        r.setTarget([.init(topicID: orders, partitions: [0, 3]), .init(topicID: audit, partitions: [0])])
        change = r.nextChange(names: [:])  // resolution remembered: metadata may forget the topics
        XCTAssertEqual(change.revoked, [tp("orders", 1), tp("orders", 2)])
        XCTAssertEqual(change.added, [tp("orders", 3)])
        r.didRevoke(change.revoked)
        XCTAssertEqual(r.owned, [tp("orders", 0), tp("audit", 0)])
        r.willAssign(change.added)
        XCTAssertEqual(r.reported { _ in nil },
                       [.init(topicID: orders, partitions: [0, 3]), .init(topicID: audit, partitions: [0])],
                       "topics and partitions sorted")

        // Removed from the group: everything is lost at once and the target is dropped.
        let lost = r.loseAll()
        XCTAssertEqual(lost, [tp("orders", 0), tp("orders", 3), tp("audit", 0)])
        XCTAssertEqual(r.owned, [])
        XCTAssertNil(r.target)
        XCTAssertTrue(r.nextChange(names: names).isEmpty)
        XCTAssertEqual(r.reported { _ in nil }, [])
        XCTAssertTrue(r.reportPending, "the coordinator knows no report of the rejoining member")
        var unnamed = ConsumerGroupReconciler()
        unnamed.willAssign([tp("orders", 0)])
        XCTAssertEqual(unnamed.reported { _ in nil }, [], "a topic without a known id is left out")
        XCTAssertEqual(unnamed.reported { _ in orders }, [.init(topicID: orders, partitions: [0])], "or named by metadata")
    }

    /// What each heartbeat reports while the listener is still starting an assignment, a newer
    /// assignment arrives and the member revokes: never less than what the member holds or was
    /// given, and the end of the revocation is the only thing that shrinks it.
    func testHeartbeatsReportAnAssignmentFromItsArrivalAndShrinkOnlyWhenARevocationFinished() {
        let orders = KafkaUUID(high: 1, low: 1)
        let names = [orders: "orders"]
        func tps(_ ps: [Int32]) -> Set<TopicPartition> { Set(ps.map { TopicPartition(topic: "orders", partition: $0) }) }
        var r = ConsumerGroupReconciler()
        /// One heartbeat: what it reports (nil: the field is left null, the coordinator keeps
        /// the last report), then its answer.
        func heartbeat() -> [Int32]? {
            guard r.reportPending else { return nil }
            let version = r.reportedVersion
            let wire = r.reported { _ in nil }
            r.acknowledge(version)
            XCTAssertLessThanOrEqual(wire.count, 1)
            return wire.first?.partitions ?? []
        }
        XCTAssertEqual(heartbeat(), [], "joining: an empty report")
        XCTAssertNil(heartbeat(), "nothing changed")

        // The join is answered with six partitions: the very next heartbeat claims them, before
        // the driver even planned the change.
        r.setTarget([.init(topicID: orders, partitions: [0, 1, 2, 3, 4, 5])])
        XCTAssertEqual(heartbeat(), [0, 1, 2, 3, 4, 5])
        let first = r.nextChange(names: names)
        XCTAssertEqual(first.added, tps([0, 1, 2, 3, 4, 5]))
        r.willAssign(first.added)
        // onAssigned runs for a while: heartbeats go on and keep the same claim.
        XCTAssertNil(heartbeat(), "the report already holds the partitions being started")

        // A second member joined: the coordinator asks for 3-5 back while 0-5 are still starting.
        r.setTarget([.init(topicID: orders, partitions: [0, 1, 2])])
        XCTAssertEqual(r.reported { _ in nil }, [.init(topicID: orders, partitions: [0, 1, 2, 3, 4, 5])],
                       "a smaller target does not shrink the report: 3-5 are still held")
        XCTAssertNil(heartbeat(), "so the coordinator's copy stands")
        let second = r.nextChange(names: names)
        XCTAssertEqual(second, .init(revoked: tps([3, 4, 5]), added: []))
        XCTAssertNil(heartbeat(), "revoking (commits under way): still held")
        r.didRevoke(second.revoked)
        XCTAssertEqual(heartbeat(), [0, 1, 2], "the finished revocation is reported: the coordinator may move 3-5 now")
        XCTAssertNil(heartbeat())

        // A target that gives and takes in one change: the new partition is claimed at once,
        // the revoked ones are reported until their revocation finished.
        r.setTarget([.init(topicID: orders, partitions: [0, 1, 4])])
        XCTAssertEqual(heartbeat(), [0, 1, 2, 4])
        let third = r.nextChange(names: names)
        XCTAssertEqual(third, .init(revoked: tps([2]), added: tps([4])))
        // While 2 is being revoked, the coordinator takes 4 back again (never started).
        r.setTarget([.init(topicID: orders, partitions: [0, 1])])
        XCTAssertEqual(heartbeat(), [0, 1, 2], "4 was neither held nor assigned any more")
        r.didRevoke(third.revoked)
        XCTAssertEqual(heartbeat(), [0, 1])
        XCTAssertEqual(r.nextChange(names: names), .init(revoked: [], added: []),
                       "planned again from the newer target: 4 is not started")
    }

    func testMemberIDsAreRandomVersion4UUIDs() {
        let id = ConsumerGroupMembership.newMemberID()
        XCTAssertEqual(id.count, 36)
        XCTAssertEqual(id.split(separator: "-").map(\.count), [8, 4, 4, 4, 12])
        XCTAssertEqual(Array(id)[14], "4", "version 4")
        XCTAssertTrue("89ab".contains(Array(id)[19]), "RFC 4122 variant")
        XCTAssertNotEqual(id, ConsumerGroupMembership.newMemberID())
    }

    // MARK: On the mock cluster

    /// A client of the mock cluster; `logs` collects its log lines (info and up).
    private func connect(_ mock: MockCluster, logs: Locked<[String]>? = nil) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.clientID = "klife-kip848-tests"
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        if let logs { config.logHandler = { event in logs.withLock { $0.append(event.message) } } }
        return try await KlifeClient.connect(config)
    }

    private func settings(group: String, topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.groupProtocol = .consumer
        settings.offsetReset = .earliest
        settings.autoCommitInterval = nil
        settings.maxRecords = 20
        return settings
    }

    private func produce(_ client: KlifeClient, topic: String, partitions: Int32, count: Int, from start: Int = 0) async {
        for p in 0..<partitions {
            for i in start..<(start + count) { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) { _ in } }
        }
        await client.flush()
    }

    private func merged(_ members: [CommittingMember]) -> [TopicPartition: [Int64]] {
        var all: [TopicPartition: [Int64]] = [:]
        for member in members { for (tp, offsets) in member.received.withLock({ $0 }) { all[tp, default: []] += offsets } }
        return all
    }

    /// The ledger of partitions that moved between members while they read: every record of
    /// each partition read (offsets `0..<end`), each member's reads of a partition in order
    /// without a gap, and no two members reading a partition at the same time (one's last batch
    /// arrived before the next one's first). With the members' own check that each assigned
    /// partition started at the group's committed offset, re-delivery happens only from the last
    /// commit: a batch handed out but not yet processed when its partition is revoked (a reader
    /// of `batches` finishes a batch by asking for the next one or committing) is read again by
    /// the next owner. Returns what does not hold.
    private func handoverLedger(_ members: [CommittingMember], topic: String, partitions: Int32, end: Int64) -> [String] {
        var problems: [String] = []
        for p in Int32(0)..<partitions {
            let tp = TopicPartition(topic: topic, partition: p)
            var readers: [(name: String, offsets: [Int64], first: UInt64, last: UInt64)] = []
            for member in members {
                guard let offsets = member.received.withLock({ $0[tp] }), !offsets.isEmpty,
                      let times = member.arrivals.withLock({ $0[tp] }) else { continue }
                readers.append((member.name, offsets, times.first, times.last))
                if offsets != Array(offsets[0]...offsets[offsets.count - 1]) {
                    problems.append("\(tp): \(member.name) read \(offsets) (out of order or with a gap)")
                }
            }
            if Set(readers.flatMap(\.offsets)) != Set(0..<end) { problems.append("\(tp): records skipped") }
            readers.sort { $0.first < $1.first }
            for (earlier, later) in zip(readers, readers.dropFirst()) where earlier.last >= later.first {
                problems.append("\(tp): \(earlier.name) still read it after \(later.name) started")
            }
        }
        return problems
    }

    func testTwoMembersSplitSixPartitionsAndAClosingMemberHandsOverFromItsLastCommit() async throws {
        let topic = "kip848-split"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 6)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 300)
        let client = try await connect(mock)
        await produce(client, topic: topic, partitions: 6, count: 100)
        let settings = settings(group: "g-split", topic: topic)
        let a = try CommittingMember("a", client: client, settings: settings)
        let b = try CommittingMember("b", client: client, settings: settings)
        await eventually("both members hold three partitions", within: .seconds(60)) {
            a.consumer.assignment.count == 3 && b.consumer.assignment.count == 3
        }
        XCTAssertTrue(a.consumer.assignment.isDisjoint(with: b.consumer.assignment), "assignments are disjoint")
        XCTAssertEqual(a.consumer.assignment.union(b.consumer.assignment).count, 6, "every partition assigned")
        await eventually("all 600 records read", within: .seconds(60)) {
            self.merged([a, b]).values.reduce(0) { $0 + Set($1).count } == 600
        }
        for member in [a, b] {
            let stats = member.consumer.groupStatistics
            XCTAssertGreaterThan(stats.generation, 0, "\(member.name) holds a member epoch")
            XCTAssertEqual(stats.memberID.count, 36, "\(member.name): a member id of its own (v1)")
            XCTAssertGreaterThan(stats.heartbeats, 0)
        }

        await a.consumer.close()
        await eventually("the remaining member holds every partition after the other left", within: .seconds(30)) {
            b.consumer.assignment.count == 6
        }
        await produce(client, topic: topic, partitions: 6, count: 10, from: 100)
        await eventually("all 660 records read", within: .seconds(30)) { a.count + b.count >= 660 }
        await b.consumer.close()
        await a.wait()
        await b.wait()
        XCTAssertNil(a.failure.withLock { $0 })
        XCTAssertNil(b.failure.withLock { $0 })

        let all = merged([a, b])
        for p in Int32(0)..<6 {
            let tp = TopicPartition(topic: topic, partition: p)
            XCTAssertEqual(Set(all[tp] ?? []), Set((0..<110).map { Int64($0) }), "\(tp): every record read")
            XCTAssertEqual(all[tp]?.count, 110, "\(tp): the handovers re-delivered nothing (each commit covered what was read)")
        }
        XCTAssertEqual(a.probe.wrongStarts.withLock { $0 } + b.probe.wrongStarts.withLock { $0 }, [],
                       "every assigned partition started at the committed offset")
        XCTAssertGreaterThanOrEqual(b.probe.checkedStarts.withLock { $0 }, 6, "b's starts were checked, the handed-over ones too")
        // The mock answers an OffsetFetch for named partitions only.
        let committed = try await client.committedOffsets(groupID: "g-split",
                                                          partitions: (0..<6).map { TopicPartition(topic: topic, partition: $0) })
        XCTAssertEqual(Set(committed.values), [110], "every partition committed to its end")
        XCTAssertEqual(committed.count, 6)
        XCTAssertEqual(b.consumer.groupStatistics.partitionsLostEvents, 0)
        XCTAssertGreaterThanOrEqual(b.consumer.groupStatistics.rebalances, 2, "b reconciled on joining and when a left")
        await client.close()
    }

    /// The first member is still starting the six partitions it was given (its `onAssigned`
    /// is held) when a second member joins. The coordinator moves three of them to the
    /// newcomer, but only once the first member revoked them: while it starts them, every
    /// heartbeat of the first member reports them as its own. (librdkafka's mock takes the last
    /// reported set as the member's: a heartbeat that reported nothing yet let it hand three of
    /// the partitions being started to the newcomer, and both read them.)
    func testPartitionsBeingStartedAreReportedSoTheCoordinatorGivesThemToNobodyElse() async throws {
        let topic = "kip848-starting"
        let group = "g-starting"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 6)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 100)
        let client = try await connect(mock)
        await produce(client, topic: topic, partitions: 6, count: 50)
        let (held, release) = AsyncStream.makeStream(of: Void.self)
        let holding = Locked(0)
        let settings = settings(group: group, topic: topic)
        let a = try CommittingMember("a", client: client, settings: settings, handlers: true) { _ in
            // Only the first assignment waits.
            let first = holding.withLock { n -> Bool in
                n += 1
                return n == 1
            }
            if first { for await _ in held { break } }
        }
        await eventually("the first member is starting its partitions", within: .seconds(30)) {
            holding.withLock { $0 } == 1
        }
        let aHeartbeats = a.consumer.groupStatistics.heartbeats
        let b = try CommittingMember("b", client: client, settings: settings, handlers: true)
        // Two seconds of heartbeats from both (every 100 ms): the coordinator has long computed the
        // new split, and the newcomer asked for its share many times.
        await eventually("both members heartbeat while the first one is still starting", within: .seconds(30)) {
            b.consumer.groupStatistics.heartbeats >= 20 && a.consumer.groupStatistics.heartbeats >= aHeartbeats + 20
        }
        XCTAssertEqual(b.consumer.assignment, [], "nothing went to the newcomer while the first member was still starting all six")
        XCTAssertEqual(b.probe.assignedEvents.withLock { $0 }, 0)
        XCTAssertEqual(a.consumer.assignment.count, 6)
        release.finish()

        await eventually("the members split the partitions", within: .seconds(60)) {
            a.consumer.assignment.count == 3 && b.consumer.assignment.count == 3
        }
        XCTAssertTrue(a.consumer.assignment.isDisjoint(with: b.consumer.assignment))
        await eventually("all 300 records read", within: .seconds(60)) {
            self.merged([a, b]).values.reduce(0) { $0 + Set($1).count } == 300
        }
        await a.consumer.close()
        await b.consumer.close()
        await a.wait()
        await b.wait()
        XCTAssertNil(a.failure.withLock { $0 })
        XCTAssertNil(b.failure.withLock { $0 })
        XCTAssertEqual(handoverLedger([a, b], topic: topic, partitions: 6, end: 50), [])
        let all = merged([a, b])
        for p in Int32(0)..<6 {
            let tp = TopicPartition(topic: topic, partition: p)
            XCTAssertEqual(all[tp]?.sorted(), (0..<50).map { Int64($0) }, "\(tp): every record read exactly once (a revoke waits for the handler)")
        }
        XCTAssertEqual(a.probe.wrongStarts.withLock { $0 } + b.probe.wrongStarts.withLock { $0 }, [],
                       "every assigned partition started at the committed offset")
        XCTAssertEqual(a.consumer.groupStatistics.partitionsLostEvents + b.consumer.groupStatistics.partitionsLostEvents, 0)
        let committed = try await client.committedOffsets(groupID: group,
                                                          partitions: (0..<6).map { TopicPartition(topic: topic, partition: $0) })
        XCTAssertEqual(committed.count, 6)
        XCTAssertEqual(Set(committed.values), [50], "every partition committed to its end")
        await client.close()
    }

    func testFencedAndUnknownMembersLoseTheirPartitionsRejoinAndReadFromTheLastCommit() async throws {
        let topic = "kip848-fence"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 6)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 300)
        let client = try await connect(mock)
        // Records keep arriving on every partition through both removals and rejoins (at least
        // 400 rounds, and on until both members read again after the second rejoin), so each
        // new assignment brings a batch whose start is checked however slow the run is.
        let keepProducing = Locked(true)
        let producing = Task { () -> Int in
            var i = 0
            while i < 400 || keepProducing.withLock({ $0 }) {
                for p in Int32(0)..<6 { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) { _ in } }
                if i % 10 == 9 { try? await Task.sleep(for: .milliseconds(50)) }
                i += 1
            }
            await client.flush()
            return i
        }
        let settings = settings(group: "g-fence", topic: topic)
        let a = try CommittingMember("a", client: client, settings: settings)
        let b = try CommittingMember("b", client: client, settings: settings)
        let members = [a, b]
        func lostCount() -> Int { members.reduce(0) { $0 + $1.probe.lost.withLock { $0.count } } }
        func split() -> Bool { a.consumer.assignment.count == 3 && b.consumer.assignment.count == 3 }
        await eventually("both members hold three partitions", within: .seconds(60)) { split() }
        await eventually("records flow to both", within: .seconds(30)) { a.count > 0 && b.count > 0 }

        try mock.pushErrors(apiKey: 68, codes: [110])  // FENCED_MEMBER_EPOCH
        await eventually("a member lost its partitions", within: .seconds(30)) { lostCount() == 1 }
        await eventually("the fenced member rejoined and both hold three partitions again", within: .seconds(60)) {
            split() && members.allSatisfy { $0.consumer.groupStatistics.generation > 0 }
        }
        let fenced = try XCTUnwrap(members.first { $0.probe.lost.withLock { $0.count } == 1 })
        XCTAssertEqual(fenced.probe.lost.withLock { $0 }.first?.count, 3, "the fenced member lost all three partitions")

        let idsBefore = members.map(\.consumer.groupStatistics.memberID)
        try mock.pushErrors(apiKey: 68, codes: [25])  // UNKNOWN_MEMBER_ID
        await eventually("a member lost its partitions again", within: .seconds(30)) { lostCount() == 2 }
        await eventually("the removed member rejoined and both hold three partitions again", within: .seconds(60)) {
            split() && members.allSatisfy { $0.consumer.groupStatistics.generation > 0 }
        }
        let idsAfter = members.map(\.consumer.groupStatistics.memberID)
        XCTAssertEqual(zip(idsBefore, idsAfter).filter { $0 != $1 }.count, 1,
                       "the member the coordinator no longer knew joined with a new member id")
        let readSoFar = members.map(\.count)
        await eventually("both members read again after the rejoins", within: .seconds(60)) {
            zip(members, readSoFar).allSatisfy { $0.count > $1 }
        }
        keepProducing.withLock { $0 = false }

        let rounds = await producing.value
        await eventually("every record read", within: .seconds(60)) {
            self.merged(members).values.reduce(0) { $0 + Set($1).count } == 6 * rounds
        }
        for member in members { await member.consumer.close() }
        for member in members { await member.wait() }
        for member in members { XCTAssertNil(member.failure.withLock { $0 }, member.name) }

        let all = merged(members)
        for p in Int32(0)..<6 {
            let tp = TopicPartition(topic: topic, partition: p)
            XCTAssertEqual(Set(all[tp] ?? []), Set((0..<rounds).map { Int64($0) }), "\(tp): no record skipped")
        }
        XCTAssertEqual(members.flatMap { $0.probe.wrongStarts.withLock { $0 } }, [],
                       "after each loss the partitions started again at the last commit")
        XCTAssertGreaterThanOrEqual(fenced.probe.checkedStarts.withLock { $0 }, 6,
                                    "the fenced member's starts were checked: first assignment and after the loss")
        XCTAssertEqual(members.reduce(0) { $0 + $1.consumer.groupStatistics.partitionsLostEvents }, 2)
        await client.close()
    }

    func testAHandlerLongerThanTheSessionTimeoutKeepsTheMembership() async throws {
        let topic = "kip848-slow"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 2_000, heartbeatIntervalMs: 250)
        let client = try await connect(mock)
        await produce(client, topic: topic, partitions: 1, count: 6)
        var settings = settings(group: "g-slow", topic: topic)
        settings.maxRecords = 3
        settings.autoCommitInterval = .milliseconds(200)
        let consumer = try client.consumer(settings)
        let processed = Locked<[Int64]>([])
        let running = Task {
            try await consumer.run { batch in
                // Two and a half session timeouts per batch: only the reactor's heartbeats keep the member in.
                try await Task.sleep(for: .seconds(5))
                processed.withLock { $0 += batch.records.map(\.offset) }
            }
        }
        await eventually("the member holds the partition", within: .seconds(30)) { consumer.assignment.count == 1 }
        let joined = consumer.groupStatistics
        await eventually("both batches processed", within: .seconds(60)) { processed.withLock { $0.count } == 6 }
        let stats = consumer.groupStatistics
        XCTAssertEqual(stats.partitionsLostEvents, 0, "membership never lost")
        XCTAssertEqual(stats.memberID, joined.memberID, "the same member throughout")
        XCTAssertEqual(stats.generation, joined.generation, "no new member epoch: the coordinator never removed the member")
        XCTAssertGreaterThan(stats.heartbeats, joined.heartbeats + 20, "heartbeats went on during the handlers")
        XCTAssertEqual(processed.withLock { $0 }, [0, 1, 2, 3, 4, 5], "each record once, in order")
        await consumer.close()
        try await running.value
        let tp = TopicPartition(topic: topic, partition: 0)
        let committed = try await client.committedOffsets(groupID: "g-slow", partitions: [tp])
        XCTAssertEqual(committed[tp], 6)
        await client.close()
    }

    /// Lines of `logs` that tell of a commit sent once more after STALE_MEMBER_EPOCH.
    private func staleRetries(_ logs: Locked<[String]>) -> [String] {
        logs.withLock { $0 }.filter { $0.contains("STALE_MEMBER_EPOCH") && $0.contains("once more") }
    }

    func testACommitRefusedWithStaleMemberEpochIsSentOnceMoreWithTheCurrentEpoch() async throws {
        let topic = "kip848-stale"
        let group = "g-stale"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 2)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 200)
        let logs = Locked<[String]>([])
        let client = try await connect(mock, logs: logs)
        await produce(client, topic: topic, partitions: 2, count: 30)
        let consumer = try client.consumer(settings(group: group, topic: topic))
        var received: [TopicPartition: [Int64]] = [:]
        func read(upTo count: Int) async throws {
            while received.values.reduce(0, { $0 + $1.count }) < count {
                guard let batch = try await consumer.next() else { return XCTFail("the batches ended") }
                received[batch.topicPartition, default: []] += batch.records.map(\.offset)
            }
        }
        try await read(upTo: 60)
        let partitions = (Int32(0)..<2).map { TopicPartition(topic: topic, partition: $0) }
        let epoch = consumer.groupStatistics.generation
        XCTAssertGreaterThan(epoch, 0)

        // One refusal: the commit goes once more (at the epoch the member holds, which the
        // coordinator did not really move) and succeeds.
        try mock.pushErrors(apiKey: ApiKey.offsetCommit.rawValue, codes: [KafkaErrorCode.staleMemberEpoch.rawValue])
        try await consumer.commit()
        let committed30 = try await client.committedOffsets(groupID: group, partitions: partitions)
        XCTAssertEqual(committed30, [partitions[0]: 30, partitions[1]: 30])
        XCTAssertEqual(staleRetries(logs).count, 1, "\(logs.withLock { $0 })")
        XCTAssertTrue(staleRetries(logs).first?.hasSuffix("at member epoch \(epoch); sending it once more at epoch \(epoch)") ?? false,
                      "\(staleRetries(logs))")

        // Two refusals: sent once more only, the commit fails naming the error, nothing is
        // recorded as committed, and the next commit carries the same positions.
        await produce(client, topic: topic, partitions: 2, count: 10, from: 30)
        try await read(upTo: 80)
        try mock.pushErrors(apiKey: ApiKey.offsetCommit.rawValue,
                            codes: [KafkaErrorCode.staleMemberEpoch.rawValue, KafkaErrorCode.staleMemberEpoch.rawValue])
        do {
            try await consumer.commit()
            XCTFail("a commit refused twice fails")
        } catch {
            XCTAssertEqual(error.kafkaErrorCode, .staleMemberEpoch, "\(error)")
        }
        XCTAssertEqual(staleRetries(logs).count, 2)
        let stillCommitted = try await client.committedOffsets(groupID: group, partitions: partitions)
        XCTAssertEqual(stillCommitted, [partitions[0]: 30, partitions[1]: 30])
        try await consumer.commit()
        let committed40 = try await client.committedOffsets(groupID: group, partitions: partitions)
        XCTAssertEqual(committed40, [partitions[0]: 40, partitions[1]: 40])
        XCTAssertEqual(staleRetries(logs).count, 2)
        XCTAssertEqual(consumer.groupStatistics.generation, epoch, "the member was never fenced")
        XCTAssertEqual(consumer.groupStatistics.partitionsLostEvents, 0)
        await consumer.close()
        for tp in partitions { XCTAssertEqual(received[tp], (0..<40).map { Int64($0) }, "\(tp): every record once, in order") }
        await client.close()
    }

    /// A real STALE_MEMBER_EPOCH: the coordinator moves the member epoch (a second member joins,
    /// for another topic: the first keeps its partitions, its epoch goes up) in a heartbeat whose
    /// answer is held back for a second, and commits sent meanwhile carry the old epoch. Each
    /// is sent once more with the epoch that answer brings, and none fails.
    func testACommitRacingAnEpochBumpIsSentAgainWithTheEpochTheHeartbeatAnswerBrings() async throws {
        let topic = "kip848-bump"
        let other = "kip848-bump-other"
        let group = "g-bump"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 2), (other, 1)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 100)
        let logs = Locked<[String]>([])
        let client = try await connect(mock, logs: logs)
        let consumer = try client.consumer(settings(group: group, topic: topic))
        let received = Locked<[TopicPartition: [Int64]]>([:])
        let commitErrors = Locked<[String]>([])
        let reading = Task {
            do {
                for try await batch in consumer.batches {
                    received.withLock { $0[batch.topicPartition, default: []] += batch.records.map(\.offset) }
                    do { try await consumer.commit() } catch { commitErrors.withLock { $0.append("\(error)") } }
                }
            } catch {
                commitErrors.withLock { $0.append("batches: \(error)") }
            }
        }
        await eventually("the member holds both partitions", within: .seconds(30)) { consumer.assignment.count == 2 }
        let before = consumer.groupStatistics
        XCTAssertGreaterThan(before.generation, 0)

        // Records keep coming until the epoch moved, so the member commits every few
        // milliseconds throughout.
        let enough = Locked(false)
        let producing = Task {
            var i = 0
            while i < 100 || !enough.withLock({ $0 }) {
                for p in Int32(0)..<2 { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) { _ in } }
                i += 1
                try? await Task.sleep(for: .milliseconds(10))
            }
            await client.flush()
            return i
        }
        await eventually("records flow", within: .seconds(30)) { received.withLock { $0.count } == 2 }
        // The next heartbeats are answered a second late (each is handled when it arrives).
        try mock.brokerErrors(1, apiKey: ApiKey.consumerGroupHeartbeat.rawValue, Array(repeating: (code: 0, delayMs: 1_000), count: 6))
        // A client of its own: its consumer's empty fetches, which the mock holds for their
        // maximum wait, would hold up the first member's fetch answers on a shared connection.
        let secondClient = try await connect(mock)
        let second = try secondClient.consumer(settings(group: group, topic: other))
        await eventually("the second member holds its partition", within: .seconds(30)) { second.assignment.count == 1 }
        await eventually("the first member learnt its new epoch", within: .seconds(30)) {
            consumer.groupStatistics.generation > before.generation
        }
        try await Task.sleep(for: .milliseconds(200))
        enough.withLock { $0 = true }
        let rounds = await producing.value
        await eventually("every record read", within: .seconds(60)) {
            received.withLock { $0.values.reduce(0) { $0 + $1.count } } >= 2 * rounds
        }
        let after = consumer.groupStatistics
        await consumer.close()
        await second.close()
        await secondClient.close()
        await reading.value

        XCTAssertEqual(commitErrors.withLock { $0 }, [], "no commit failed")
        let retries = staleRetries(logs)
        XCTAssertFalse(retries.isEmpty, "commits raced the epoch bump (the coordinator refused some as stale)")
        for line in retries {
            XCTAssertTrue(line.hasSuffix("at member epoch \(before.generation); sending it once more at epoch \(after.generation)"), line)
        }
        let partitions = (Int32(0)..<2).map { TopicPartition(topic: topic, partition: $0) }
        for tp in partitions {
            XCTAssertEqual(received.withLock { $0[tp] }, (0..<rounds).map { Int64($0) }, "\(tp): every record once, in order")
        }
        let committed = try await client.committedOffsets(groupID: group, partitions: partitions)
        XCTAssertEqual(committed, [partitions[0]: Int64(rounds), partitions[1]: Int64(rounds)])
        XCTAssertEqual(after.partitionsLostEvents, 0)
        XCTAssertEqual(after.memberID, before.memberID)
        await client.close()
    }

    /// A member whose process stops (its client closes: no leave, no more heartbeats) after it
    /// read further than it committed. The coordinator fences it once the session timeout
    /// passed; its partitions go to the other member, which starts them at the silent member's
    /// last commit: only what it read after that commit is read again.
    func testASilentMemberIsFencedAfterTheSessionTimeoutAndItsPartitionsResumeFromItsLastCommit() async throws {
        let topic = "kip848-silent"
        let group = "g-silent"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 4)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 3_000, heartbeatIntervalMs: 100)
        let client = try await connect(mock)
        let silentClient = try await connect(mock)
        var silentSettings = settings(group: group, topic: topic)
        silentSettings.maxRecords = 5
        let silent = GroupReader(try silentClient.consumer(silentSettings), name: "silent")
        await eventually("the first member holds every partition", within: .seconds(30)) { silent.consumer.assignment.count == 4 }
        let survivor = try CommittingMember("survivor", client: client, settings: settings(group: group, topic: topic))
        await eventually("the members split the partitions", within: .seconds(30)) {
            silent.consumer.assignment.count == 2 && survivor.consumer.assignment.count == 2
                && silent.consumer.groupStatistics.rebalances >= 2 && survivor.consumer.groupStatistics.rebalances >= 1
        }
        let silentPartitions = silent.consumer.assignment
        let survivorPartitions = survivor.consumer.assignment
        XCTAssertTrue(silentPartitions.isDisjoint(with: survivorPartitions))

        await produce(client, topic: topic, partitions: 4, count: 20)
        await eventually("each member read its partitions", within: .seconds(30)) {
            let got = silent.received.withLock { $0 }
            return silentPartitions.allSatisfy { got[$0]?.count == 20 } && survivor.count == 40
        }
        // The silent member commits only half of what it read.
        try await silent.consumer.commit(Dictionary(uniqueKeysWithValues: silentPartitions.map { ($0, Int64(10)) }))
        let silentMemberID = silent.consumer.groupStatistics.memberID
        let survivorEpoch = survivor.consumer.groupStatistics.generation
        await silentClient.close()   // no leave: only the session timeout removes the member

        await eventually("the survivor holds every partition", within: .seconds(30)) { survivor.consumer.assignment.count == 4 }
        XCTAssertGreaterThan(survivor.consumer.groupStatistics.generation, survivorEpoch, "taking partitions over bumps the epoch")
        await produce(client, topic: topic, partitions: 4, count: 5, from: 20)
        await eventually("the survivor read to the end of every partition", within: .seconds(30)) {
            let got = survivor.received.withLock { $0 }
            return (Int32(0)..<4).allSatisfy { got[TopicPartition(topic: topic, partition: $0)]?.last == 24 }
        }
        await survivor.consumer.close()
        await survivor.wait()
        XCTAssertNil(survivor.failure.withLock { $0 })

        let got = survivor.received.withLock { $0 }
        let silentGot = silent.received.withLock { $0 }
        for tp in silentPartitions {
            XCTAssertEqual(silentGot[tp], (0..<20).map { Int64($0) }, "\(tp): the silent member read 20 and committed 10")
            XCTAssertEqual(got[tp], (10..<25).map { Int64($0) },
                           "\(tp): the survivor starts at the silent member's last commit (10-19 read again), nothing skipped")
        }
        for tp in survivorPartitions {
            XCTAssertEqual(got[tp], (0..<25).map { Int64($0) }, "\(tp): the survivor's own partitions, each record once")
        }
        XCTAssertEqual(survivor.probe.wrongStarts.withLock { $0 }, [])
        XCTAssertEqual(survivor.probe.lost.withLock { $0 }, [], "the survivor lost nothing")
        let partitions = (Int32(0)..<4).map { TopicPartition(topic: topic, partition: $0) }
        let committed = try await client.committedOffsets(groupID: group, partitions: partitions)
        XCTAssertEqual(committed, Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(25)) }))
        XCTAssertNotEqual(survivor.consumer.groupStatistics.memberID, silentMemberID)
        await client.close()
    }

    /// A static member closes (epoch -2: the coordinator keeps its partitions for it) and a new
    /// process with the same instance id joins within the session timeout: it gets the same
    /// partitions back and reads them from the last commit, while the other member keeps its
    /// own and reconciles nothing.
    func testAStaticMemberRestartedWithinItsSessionGetsItsPartitionsBackAndNobodyElseMoves() async throws {
        let topic = "kip848-static"
        let group = "g-static"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 4)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 30_000, heartbeatIntervalMs: 100)
        let client = try await connect(mock)
        let dynamicSettings = settings(group: group, topic: topic)
        var staticSettings = dynamicSettings
        staticSettings.groupInstanceID = "pod-0"
        let a = try CommittingMember("a", client: client, settings: staticSettings)
        await eventually("the static member holds every partition", within: .seconds(30)) { a.consumer.assignment.count == 4 }
        let b = try CommittingMember("b", client: client, settings: dynamicSettings)
        await eventually("the members split the partitions", within: .seconds(30)) {
            a.consumer.assignment.count == 2 && b.consumer.assignment.count == 2 && b.consumer.groupStatistics.rebalances >= 1
        }
        let aPartitions = a.consumer.assignment
        let bPartitions = b.consumer.assignment
        await produce(client, topic: topic, partitions: 4, count: 20)
        await eventually("both read their partitions", within: .seconds(30)) { a.count + b.count == 80 }
        let bBefore = b.consumer.groupStatistics
        await a.consumer.close()   // commits, then leaves with epoch -2
        await a.wait()

        // While it is away its partitions wait for it: nobody reads them.
        await produce(client, topic: topic, partitions: 4, count: 10, from: 20)
        await eventually("the other member read its new records, and heartbeated on", within: .seconds(30)) {
            b.count == 60 && b.consumer.groupStatistics.heartbeats >= bBefore.heartbeats + 10
        }
        XCTAssertEqual(b.consumer.assignment, bPartitions, "the absent static member's partitions went to nobody")

        let restarted = try CommittingMember("a again", client: client, settings: staticSettings)
        await eventually("the restarted static member holds its partitions again", within: .seconds(30)) {
            restarted.consumer.assignment == aPartitions
        }
        await eventually("it read what was written while it was away", within: .seconds(30)) { restarted.count == 20 }
        let bAfter = b.consumer.groupStatistics
        XCTAssertEqual(b.consumer.assignment, bPartitions, "the other member kept its partitions")
        XCTAssertEqual(bAfter.rebalances, bBefore.rebalances, "and reconciled nothing")
        XCTAssertEqual(bAfter.generation, bBefore.generation, "its epoch never moved")
        XCTAssertEqual(bAfter.partitionsLostEvents, 0)
        await restarted.consumer.close()
        await b.consumer.close()
        await restarted.wait()
        await b.wait()
        for member in [a, b, restarted] { XCTAssertNil(member.failure.withLock { $0 }, member.name) }

        let all = merged([a, b, restarted])
        for p in Int32(0)..<4 {
            let tp = TopicPartition(topic: topic, partition: p)
            XCTAssertEqual(all[tp]?.sorted(), (0..<30).map { Int64($0) }, "\(tp): every record read exactly once")
        }
        for tp in aPartitions {
            XCTAssertEqual(restarted.received.withLock { $0[tp] }, (20..<30).map { Int64($0) }, "\(tp): the restart resumed at the last commit")
        }
        XCTAssertEqual(a.probe.wrongStarts.withLock { $0 } + restarted.probe.wrongStarts.withLock { $0 }, [])
        await client.close()
    }

    /// Our member shares a group with two librdkafka members speaking the same protocol
    /// (`group.protocol=consumer`): the coordinator splits the partitions among them and moves
    /// them as members join and leave, both ways between the two clients, while records keep
    /// coming. Every record is read exactly once across the three (each side commits what it
    /// read before giving a partition up, and starts from the other's commit).
    func testAMixedGroupWithLibrdkafkaConsumerProtocolMembersReadsEveryRecordOnce() async throws {
        let topic = "kip848-mixed"
        let group = "g-mixed"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 6)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 100)
        let client = try await connect(mock)
        let bootstrap = mock.bootstrap.joined(separator: ",")
        /// Records per partition in the log.
        let written = Locked(0)
        @Sendable func write(_ count: Int) async {
            for p in Int32(0)..<6 {
                for _ in 0..<count { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p)")) { _ in } }
            }
            await client.flush()
            written.withLock { $0 += count }
        }
        // A trickle throughout, so partitions move while records arrive; bursts between the moves.
        let trickling = Locked(true)
        let trickle = Task {
            while trickling.withLock({ $0 }) {
                await write(1)
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        var ours: CommittingMember?
        var theirs: [RdkafkaGroupMember] = []
        /// Every offset read by any member, per partition.
        func ledger() -> [TopicPartition: [Int64]] {
            var all = merged(ours.map { [$0] } ?? [])
            for member in theirs {
                for r in member.records where r.topic == topic { all[TopicPartition(topic: topic, partition: r.partition), default: []].append(r.offset) }
            }
            return all
        }
        func readEverything(_ what: String) async {
            let target = written.withLock { $0 }
            await eventually(what, within: .seconds(60)) { ledger().values.reduce(0) { $0 + Set($1).count } >= 6 * target }
        }
        /// Whether ours and then each librdkafka member hold `counts` partitions, no partition twice.
        func split(_ counts: [Int]) -> Bool {
            let sets = (ours.map { [$0.consumer.assignment] } ?? []) + theirs.map(\.assignment)
            guard sets.map(\.count) == counts else { return false }
            return sets.reduce(0) { $0 + $1.count } == Set(sets.flatMap { $0 }).count
        }
        func librdkafkaMember(_ n: Int) throws -> RdkafkaGroupMember {
            try RdkafkaGroupMember(bootstrap: bootstrap, group: group, topics: [topic], protocol: "consumer",
                                   commit: true, timeoutSeconds: 180, clientID: "rdkafka-kip848-\(n)")
        }

        theirs.append(try librdkafkaMember(1))
        try await theirs[0].waitForAssignment { $0.count == 6 }
        await write(30)
        await readEverything("the librdkafka member read the first records")
        // librdkafka hands a commit refused as stale to the application; its script sends it again.
        try mock.pushErrors(apiKey: ApiKey.offsetCommit.rawValue, codes: [KafkaErrorCode.staleMemberEpoch.rawValue])
        await eventually("the librdkafka member sent a stale commit again", within: .seconds(30)) { theirs[0].commitRetries.count == 1 }

        // Handlers: a revoke waits for the batch being handled and commits it (librdkafka commits
        // each record before the next poll), so nothing is read twice across a handover.
        let member = try CommittingMember("klife", client: client, settings: settings(group: group, topic: topic), handlers: true)
        ours = member
        await eventually("ours and the librdkafka member hold three partitions each, disjoint", within: .seconds(60)) { split([3, 3]) }
        await write(30)
        await readEverything("both read their partitions")

        theirs.append(try librdkafkaMember(2))
        try await theirs[1].waitForAssignment()
        await eventually("three members hold two partitions each, disjoint", within: .seconds(60)) { split([2, 2, 2]) }
        await write(30)
        await readEverything("all three read their partitions")

        // The first librdkafka member leaves (it committed every record it read), then the second.
        try await theirs[0].stop()
        await eventually("the two left hold three partitions each, disjoint", within: .seconds(60)) {
            let sets = [member.consumer.assignment, theirs[1].assignment]
            return sets.map(\.count) == [3, 3] && sets[0].isDisjoint(with: sets[1])
        }
        await write(30)
        await readEverything("the two left read their partitions")
        try await theirs[1].stop()
        await eventually("our member holds every partition", within: .seconds(60)) { member.consumer.assignment.count == 6 }
        await write(30)
        trickling.withLock { $0 = false }
        await trickle.value
        await readEverything("our member read everything")
        await member.consumer.close()
        await member.wait()
        XCTAssertNil(member.failure.withLock { $0 })

        let all = ledger()
        let total = written.withLock { $0 }
        for p in Int32(0)..<6 {
            let tp = TopicPartition(topic: topic, partition: p)
            XCTAssertEqual(all[tp]?.sorted(), (0..<total).map { Int64($0) }, "\(tp): every record read exactly once across the three members")
        }
        for librdkafka in theirs {
            XCTAssertEqual(librdkafka.errors, [], librdkafka.log)
            XCTAssertFalse(librdkafka.records.isEmpty, "the librdkafka member read its share")
        }
        XCTAssertFalse(member.received.withLock { $0 }.isEmpty)
        XCTAssertEqual(member.probe.wrongStarts.withLock { $0 }, [], "our member started every partition at the committed offset")
        XCTAssertGreaterThanOrEqual(member.probe.checkedStarts.withLock { $0 }, 6, "its starts were checked: taken from librdkafka at each move")
        XCTAssertEqual(member.consumer.groupStatistics.partitionsLostEvents, 0)
        let committed = try await client.committedOffsets(groupID: group, partitions: (0..<6).map { TopicPartition(topic: topic, partition: $0) })
        XCTAssertEqual(Set(committed.values), [Int64(total)], "every partition committed to its end")
        XCTAssertEqual(committed.count, 6)
        await client.close()
    }

    func testACoordinatorThatMovesOrRefusesKeepsTheMembership() async throws {
        let topic = "kip848-coordinator"
        let group = "g-coordinator"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 3)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 200)
        try mock.coordinator("group", key: group, broker: 1)
        let client = try await connect(mock)
        await produce(client, topic: topic, partitions: 3, count: 20)
        let member = try CommittingMember("m", client: client, settings: settings(group: group, topic: topic))
        await eventually("the member read everything", within: .seconds(30)) { member.count == 60 }
        let joined = member.consumer.groupStatistics

        // NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS.
        try mock.pushErrors(apiKey: 68, codes: [16, 15, 14])
        await eventually("heartbeats answered again after the errors", within: .seconds(30)) {
            member.consumer.groupStatistics.heartbeats > joined.heartbeats + 5
        }
        // The coordinator moves: the old one answers NOT_COORDINATOR, the member finds the new one.
        let beforeMove = member.consumer.groupStatistics.heartbeats
        try mock.coordinator("group", key: group, broker: 2)
        await eventually("heartbeats answered again after the move", within: .seconds(30)) {
            member.consumer.groupStatistics.heartbeats > beforeMove + 5
        }
        await produce(client, topic: topic, partitions: 3, count: 5, from: 20)
        await eventually("the member read the new records", within: .seconds(30)) { member.count == 75 }
        let stats = member.consumer.groupStatistics
        XCTAssertEqual(stats.memberID, joined.memberID, "the same member")
        XCTAssertEqual(stats.generation, joined.generation, "the same member epoch")
        XCTAssertEqual(stats.partitionsLostEvents, 0)
        XCTAssertEqual(member.consumer.assignment.count, 3)
        await member.consumer.close()
        await member.wait()
        XCTAssertNil(member.failure.withLock { $0 })
        for (tp, offsets) in member.received.withLock({ $0 }) {
            XCTAssertEqual(offsets, (0..<25).map { Int64($0) }, "\(tp): each record once, in order")
        }
        await client.close()
    }

    func testAFatalHeartbeatErrorEndsTheBatchesNamingIt() async throws {
        let topic = "kip848-fatal"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        try mock.pushErrors(apiKey: 68, codes: [112])  // UNSUPPORTED_ASSIGNOR
        var settings = settings(group: "g-fatal", topic: topic)
        settings.serverAssignor = "no-such-assignor"
        let consumer = try client.consumer(settings)
        do {
            for try await _ in consumer.batches { XCTFail("no batch expected") }
            XCTFail("the batches should end with the coordinator's error")
        } catch {
            XCTAssertEqual(error.kafkaErrorCode, .unsupportedAssignor, "\(error)")
        }
        XCTAssertEqual(consumer.groupStatistics.generation, -1, "out of the group")
        await consumer.close()
        await client.close()
    }
}
