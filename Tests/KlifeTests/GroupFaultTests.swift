import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// The classic group consumer under faults, on librdkafka's mock cluster: the coordinator
/// moves or refuses calls, heartbeats report rebalances and lost memberships, commits are
/// refused, leaders move, a broker goes down, the coordinator answers with bytes that do not
/// decode. Producers write while members read; every scenario ends with the same checks (see
/// ``GroupFaultScenario``): nothing skipped, re-deliveries only from the last commit, the
/// committed offset never past a processed record, and everything committed at the end.
///
/// The mock keeps one group state for the whole cluster (a coordinator move keeps the
/// group), elects a leader when its join timer ends (the session timeout less one second
/// after a member joins, or the initial delay for an empty group), and accepts commits of the
/// current generation while the group is stable.
final class GroupFaultTests: XCTestCase {
    // MARK: Configuration

    func testInvalidGroupSettingsFailAtConsumerNamingTheField() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("t", 1)])
        defer { mock.stop() }
        let client = try await GroupFaultScenario.connect(mock, name: "config")
        var valid = ConsumerConfiguration()
        valid.groupID = "g"
        valid.topics = ["t"]
        let cases: [(String, (inout ConsumerConfiguration) -> Void)] = [
            ("consumer.maxRecords", { $0.maxRecords = 0 }),
            ("consumer.groupID", { $0.groupID = "" }),
            ("consumer.groupID", { $0.groupID = nil }),
            ("consumer.assignmentStrategies", { $0.assignmentStrategies = [.range, .cooperativeSticky, .range] }),
            ("consumer.serverAssignor", { $0.serverAssignor = "uniform" }),
            ("consumer.heartbeatInterval", { $0.heartbeatInterval = $0.sessionTimeout }),
            ("consumer.heartbeatInterval", { $0.heartbeatInterval = $0.sessionTimeout + .seconds(1) }),
            ("consumer.revokeTimeout", { $0.revokeTimeout = $0.rebalanceTimeout }),
            ("consumer.revokeTimeout", { $0.revokeTimeout = $0.rebalanceTimeout + .seconds(1) }),
        ]
        for (index, (field, breakIt)) in cases.enumerated() {
            var settings = valid
            breakIt(&settings)
            do {
                _ = try client.consumer(settings)
                XCTFail("case \(index): a consumer was made although \(field) is invalid")
            } catch {
                XCTAssertEqual(error.code, .invalidConfiguration, "case \(index): \(error)")
                XCTAssertTrue(error.description.hasPrefix("invalid configuration \(field):"),
                              "case \(index): the error names \(field): \(error)")
            }
        }
        XCTAssertNoThrow(try valid.validate(), "the base settings are valid")
        let sent = await client.statistics().requestsSent
        XCTAssertNil(sent[.joinGroup], "no refused consumer joined a group")
        XCTAssertNil(sent[.findCoordinator], "no refused consumer looked for a coordinator")
        await client.close()
    }

    func testASubscribedTopicThatDoesNotExistFailsTheBatchesAfterMaxBlock() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("present", 2)])
        defer { mock.stop() }
        let maxBlock = Duration.milliseconds(800)
        let client = try await GroupFaultScenario.connect(mock, name: "absent") { $0.producer.maxBlock = maxBlock }
        var settings = GroupFaultScenario.memberSettings(group: "absent-group", topic: "present")
        settings.topics = ["present", "absent"]
        let consumer = try client.consumer(settings)
        let started = ContinuousClock.now
        do {
            let batch = try await consumer.next()
            XCTFail("a batch arrived from a subscription with a missing topic: \(String(describing: batch))")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition, "\(error)")
            XCTAssertTrue(error.description.contains("absent"), "the error names the missing topic: \(error)")
        }
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, maxBlock, "the consumer waited producer.maxBlock for the topic")
        let sent = await client.statistics().requestsSent
        XCTAssertGreaterThanOrEqual(sent[.metadata] ?? 0, 2, "the topic was looked up again while waiting")
        XCTAssertNil(sent[.joinGroup], "the member never joined with a topic it cannot read")
        do {
            _ = try await consumer.next()
            XCTFail("the batches go on after the failure")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition, "the failure stays: \(error)")
        }
        await consumer.close()
        await client.close()
    }

    // MARK: The coordinator

    func testCoordinatorMovesWhileMembersConsume() async throws {
        let s = try await GroupFaultScenario { mock, group in try mock.coordinator("group", key: group, broker: 1) }
        defer { s.stop() }
        let (a, b) = try await s.startTwoMembers()
        let assignments = [a.consumer.assignment, b.consumer.assignment]
        let generations = [a, b].map(\.consumer.groupStatistics.generation)
        for broker: Int32 in [2, 3, 1] {
            let found = await [a, b].asyncMap { await $0.requests(.findCoordinator) }
            let read = s.deliveredCount
            try s.mock.coordinator("group", key: s.group, broker: broker)
            for (i, member) in [a, b].enumerated() {
                await eventually("\(member.name) looked for the coordinator after it moved to \(broker)") {
                    await member.requests(.findCoordinator) > found[i]
                }
                let heartbeats = member.consumer.groupStatistics.heartbeats
                await eventually("\(member.name) heartbeats at broker \(broker)") {
                    member.consumer.groupStatistics.heartbeats >= heartbeats + 2
                }
            }
            await eventually("records keep flowing after the move to \(broker)") { s.deliveredCount > read + 50 }
        }
        XCTAssertEqual([a.consumer.assignment, b.consumer.assignment], assignments, "a coordinator move keeps the assignment")
        XCTAssertEqual([a, b].map(\.consumer.groupStatistics.generation), generations, "a coordinator move needs no rebalance")
        try await s.finish()
        XCTAssertEqual(s.redeliveries, 0, "nothing moved, so nothing is read twice")
    }

    /// NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS on JoinGroup and SyncGroup, as the mock
    /// writes them (not repaired): with nulls in fields that are not nullable (the member id,
    /// the assignment), so the client reads them as answers that do not decode: each one fails
    /// the member's connection, the coordinator is looked up again, and the join is retried.
    /// Before that, such an answer was retried on the same connection at the same broker, and a
    /// member refused by a coordinator that had moved kept asking it.
    func testRefusedJoinsAndSyncsFindTheCoordinatorAgainAndRetry() async throws {
        let s = try await GroupFaultScenario(repairRefusals: false)
        defer { s.stop() }
        let joinRefusals = [KafkaErrorCode.notCoordinator, .coordinatorLoadInProgress, .notCoordinator]
        let syncRefusals = [KafkaErrorCode.coordinatorLoadInProgress, .notCoordinator]
        try s.mock.pushErrors(apiKey: ApiKey.joinGroup.rawValue, codes: joinRefusals.map(\.rawValue))
        try s.mock.pushErrors(apiKey: ApiKey.syncGroup.rawValue, codes: syncRefusals.map(\.rawValue))
        let (a, b) = try await s.startTwoMembers()
        let joins = await a.requests(.joinGroup) + b.requests(.joinGroup)
        let syncs = await a.requests(.syncGroup) + b.requests(.syncGroup)
        XCTAssertGreaterThanOrEqual(joins, 2 + joinRefusals.count, "the refused JoinGroups were sent again")
        XCTAssertGreaterThanOrEqual(syncs, 2 + syncRefusals.count, "the refused SyncGroups were followed by new joins and syncs")
        let lookups = await a.requests(.findCoordinator) + b.requests(.findCoordinator)
        XCTAssertGreaterThanOrEqual(lookups, 2 + joinRefusals.count + syncRefusals.count,
                                    "each refusal looked the coordinator up again")
        XCTAssertGreaterThanOrEqual(s.logCount("connection lost: malformed response"), joinRefusals.count + syncRefusals.count,
                                    "each refusal failed its connection")
        XCTAssertEqual(s.lostEvents, 0)
        try await s.finish()
    }

    /// The same refusals, repaired on their way (see ``FrameProxy/repairGroupRefusals(_:)``),
    /// so the client reads their codes: NOT_COORDINATOR finds the coordinator again,
    /// COORDINATOR_LOAD_IN_PROGRESS waits and asks the same one, and both retry.
    func testNotCoordinatorAndLoadInProgressOnJoinAndSyncAreRetried() async throws {
        let s = try await GroupFaultScenario()
        defer { s.stop() }
        let front = s.proxies
        try s.mock.pushErrors(apiKey: ApiKey.joinGroup.rawValue,
                              codes: [KafkaErrorCode.notCoordinator, .coordinatorLoadInProgress, .notCoordinator].map(\.rawValue))
        try s.mock.pushErrors(apiKey: ApiKey.syncGroup.rawValue,
                              codes: [KafkaErrorCode.coordinatorLoadInProgress, .notCoordinator].map(\.rawValue))
        let (a, b) = try await s.startTwoMembers()
        XCTAssertGreaterThanOrEqual(front.map(\.repaired).reduce(0, +), 5, "the five refusals reached the members repaired")
        for (call, code, count) in [("JoinGroup", KafkaErrorCode.notCoordinator, 2), ("JoinGroup", .coordinatorLoadInProgress, 1),
                                    ("SyncGroup", .notCoordinator, 1), ("SyncGroup", .coordinatorLoadInProgress, 1)] {
            XCTAssertEqual(s.logCount("failed: \(call) for group '\(s.group)': broker error \(code)"), count,
                           "\(call) refused with \(code) \(count) time(s), each retried")
        }
        let lookups = await a.requests(.findCoordinator) + b.requests(.findCoordinator)
        XCTAssertGreaterThanOrEqual(lookups, 2 + 3, "each NOT_COORDINATOR looked the coordinator up again")
        XCTAssertEqual(s.lostEvents, 0)
        try await s.finish()
    }

    /// An answer whose header decodes but whose body does not fails its connection (with every
    /// request on it), not just its request: the next request goes out on a new connection.
    func testAnAnswerWhoseBodyDoesNotDecodeFailsItsConnection() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("t", 1)])
        defer { mock.stop() }
        let front = try FrameProxy(upstreamPort: Int(mock.bootstrap[0].split(separator: ":")[1])!)
        defer { front.stop() }
        try mock.advertise(1, host: "127.0.0.1", port: front.port)
        let logs = Locked<[String]>([])
        let client = try await GroupFaultScenario.connect(mock, name: "body") { config in
            config.logHandler = { event in logs.withLock { $0.append("\(event)") } }
        }
        let tp = TopicPartition(topic: "t", partition: 0)
        _ = try await client.committedOffsets(groupID: "g", partitions: [tp])
        let accepted = front.connectionsAccepted
        XCTAssertGreaterThan(accepted, 0, "the client reaches the broker through the proxy")
        front.damage(apiKey: ApiKey.offsetFetch.rawValue, [.body])
        let committed = try await client.committedOffsets(groupID: "g", partitions: [tp])
        XCTAssertEqual(committed, [:], "the call was retried and answered")
        XCTAssertEqual(front.damaged(apiKey: ApiKey.offsetFetch.rawValue), 1)
        XCTAssertEqual(front.connectionsAccepted, accepted + 1, "the connection that carried the damaged answer was replaced")
        XCTAssertEqual(logs.withLock { $0.filter { $0.contains("connection lost: malformed response") }.count }, 1,
                       "the connection failed with a typed error: \(logs.withLock { $0 })")
        await client.close()
    }

    func testNotCoordinatorAndLoadInProgressOnHeartbeatKeepTheAssignment() async throws {
        let s = try await GroupFaultScenario()
        defer { s.stop() }
        let (a, b) = try await s.startTwoMembers()
        let generations = [a, b].map(\.consumer.groupStatistics.generation)
        let heartbeats = [a, b].map(\.consumer.groupStatistics.heartbeats)
        let lookups = await a.requests(.findCoordinator) + b.requests(.findCoordinator)
        try s.mock.pushErrors(apiKey: ApiKey.heartbeat.rawValue,
                              codes: [KafkaErrorCode.notCoordinator, .coordinatorLoadInProgress,
                                      .notCoordinator, .coordinatorLoadInProgress].map(\.rawValue))
        await eventually("both members heartbeat again after four refused heartbeats") {
            a.consumer.groupStatistics.heartbeats >= heartbeats[0] + 4 && b.consumer.groupStatistics.heartbeats >= heartbeats[1] + 4
        }
        let lookupsAfter = await a.requests(.findCoordinator) + b.requests(.findCoordinator)
        XCTAssertGreaterThanOrEqual(lookupsAfter, lookups + 2, "each NOT_COORDINATOR looked the coordinator up again")
        XCTAssertEqual([a, b].map(\.consumer.groupStatistics.generation), generations, "no rebalance")
        try await s.finish()
        XCTAssertEqual(s.lostEvents, 0)
        XCTAssertEqual(s.redeliveries, 0, "nothing moved, so nothing is read twice")
    }

    func testRetriableCoordinatorErrorsOnOffsetCommitAndOffsetFetchAreRetried() async throws {
        let s = try await GroupFaultScenario()
        defer { s.stop() }
        s.startProducing()
        let a = try await s.addMember("a")
        try await s.waitUntilStable()
        await eventually("a committed") { a.consumer.statistics().partitions.values.contains { $0.committed > 0 } }
        let refusals = [KafkaErrorCode.notCoordinator, .coordinatorLoadInProgress, .notCoordinator, .coordinatorLoadInProgress]
        try s.mock.pushErrors(apiKey: ApiKey.offsetCommit.rawValue, codes: refusals.map(\.rawValue))
        try s.mock.pushErrors(apiKey: ApiKey.offsetFetch.rawValue, codes: refusals.map(\.rawValue))
        let commits = await a.requests(.offsetCommit)
        // A second member: partitions move, so the first commits them on revoke and the
        // second reads their committed offsets.
        let b = try await s.addMember("b")
        try await s.waitUntilStable()
        let fetches = await b.requests(.offsetFetch)
        XCTAssertGreaterThanOrEqual(fetches, 1 + refusals.count, "the refused OffsetFetches were sent again")
        await eventually("a commits again after the refusals") { await a.requests(.offsetCommit) > commits + refusals.count }
        try await s.finish()
    }

    // MARK: Membership answers

    func testRebalanceInProgressOnHeartbeatRejoinsAndKeepsThePartitions() async throws {
        let s = try await GroupFaultScenario()
        defer { s.stop() }
        let (a, b) = try await s.startTwoMembers()
        let generation = a.consumer.groupStatistics.generation
        let assignments = [a.consumer.assignment, b.consumer.assignment]
        try s.mock.pushErrors(apiKey: ApiKey.heartbeat.rawValue, codes: [KafkaErrorCode.rebalanceInProgress.rawValue])
        await eventually("both members joined a new generation") {
            [a, b].allSatisfy { $0.consumer.groupStatistics.generation > generation }
        }
        try await s.waitUntilStable()
        XCTAssertEqual([a.consumer.assignment, b.consumer.assignment], assignments,
                       "a cooperative rebalance with the same members keeps every partition where it was")
        try await s.finish()
        XCTAssertEqual(s.lostEvents, 0, "a rebalance loses nothing")
        XCTAssertEqual(s.redeliveries, 0, "no partition moved, so nothing is read twice")
    }

    func testUnknownMemberIDOnHeartbeatLosesThePartitionsAndReadsThemAgainFromTheLastCommit() async throws {
        try await lostAndRegained(.unknownMemberID)
    }

    func testIllegalGenerationOnHeartbeatLosesThePartitionsAndReadsThemAgainFromTheLastCommit() async throws {
        try await lostAndRegained(.illegalGeneration)
    }

    private func lostAndRegained(_ code: KafkaErrorCode, file: StaticString = #filePath, line: UInt = #line) async throws {
        let s = try await GroupFaultScenario()
        defer { s.stop() }
        _ = try await s.startTwoMembers()
        for round in 1...2 {
            try s.mock.pushErrors(apiKey: ApiKey.heartbeat.rawValue, codes: [code.rawValue])
            await eventually("round \(round): a member lost its partitions after \(code)", file: file, line: line) {
                s.lostEvents >= round
            }
            try await s.waitUntilStable()
            let read = s.deliveredCount
            await eventually("round \(round): records flow again", file: file, line: line) { s.deliveredCount > read + 50 }
        }
        try await s.finish()
        XCTAssertEqual(s.lostEvents, 2, "each refused heartbeat lost one member's partitions", file: file, line: line)
        print("\(code): \(s.redeliveries) records read again after the losses")
    }

    func testRefusedCommitsKeepTheirPositionsForTheNextCommit() async throws {
        let s = try await GroupFaultScenario()
        defer { s.stop() }
        let (a, b) = try await s.startTwoMembers(producing: false)
        for (round, code) in [KafkaErrorCode.rebalanceInProgress, .unknownMemberID, .illegalGeneration].enumerated() {
            // Everything read is committed; then records arrive once, and the first commits that
            // carry them are refused: only a later commit carrying the same positions can finish.
            let ends = await s.produceOnce(perPartition: 30)
            try await s.waitUntilCommitted(ends)
            try s.mock.pushErrors(apiKey: ApiKey.offsetCommit.rawValue, codes: [code.rawValue, code.rawValue])
            let commits = await a.requests(.offsetCommit) + b.requests(.offsetCommit)
            let more = await s.produceOnce(perPartition: 30)
            try await s.waitUntilCommitted(more)
            let after = await a.requests(.offsetCommit) + b.requests(.offsetCommit)
            XCTAssertGreaterThanOrEqual(after, commits + 3, "round \(round): two refused commits (\(code)), then one accepted")
        }
        try await s.finish()
        XCTAssertEqual(s.lostEvents, 0, "a refused commit costs no partition")
        XCTAssertEqual(s.redeliveries, 0, "nothing moved, so nothing is read twice")
    }

    // MARK: Brokers

    func testLeadersMoveWhileMembersConsume() async throws {
        let s = try await GroupFaultScenario()
        defer { s.stop() }
        _ = try await s.startTwoMembers()
        for round in Int32(1)...3 {
            let read = s.deliveredCount
            for p in 0..<s.partitions { try s.mock.leader(s.topic, p, broker: (p + round) % 3 + 1) }
            await eventually("round \(round): records flow from the new leaders") { s.deliveredCount > read + 100 }
        }
        try await s.finish()
        XCTAssertEqual(s.lostEvents, 0)
        XCTAssertEqual(s.redeliveries, 0, "a leader move re-delivers nothing")
    }

    func testABrokerGoesDownAndComesBackWhileMembersConsume() async throws {
        // Broker 2 leads two partitions and coordinates the group.
        let s = try await GroupFaultScenario { mock, group in try mock.coordinator("group", key: group, broker: 2) }
        defer { s.stop() }
        _ = try await s.startTwoMembers()
        for round in 1...2 {
            // Down until both members noticed, and a little longer; then back.
            try await s.takeDown(2)
            try await Task.sleep(for: .milliseconds(500))
            try s.mock.up(2)
            try await s.waitUntilStable()
            let read = s.deliveredCount
            await eventually("round \(round): records flow again") { s.deliveredCount > read + 100 }
        }
        try await s.finish()
        print("broker down: \(s.redeliveries) records read again, \(s.lostEvents) losses")
    }

    /// The interleaving behind a record the mock holds twice, forced: a Produce answer lost after
    /// the mock appended its batches (its body does not decode, so the producer's connection
    /// fails). The producer retries with the same producer id, epoch and sequence; the mock
    /// (which does not deduplicate) appends them again; the members read both copies, and
    /// nothing is lost or skipped.
    func testAProduceAnswerLostAfterTheAppendIsRetriedWithTheSameSequence() async throws {
        let s = try await GroupFaultScenario { mock, group in try mock.coordinator("group", key: group, broker: 1) }
        defer { s.stop() }
        _ = try await s.startTwoMembers()
        let front = s.proxies[1]
        let read = s.deliveredCount
        front.damage(apiKey: ApiKey.produce.rawValue, [.body])
        await eventually("the damaged produce answer delivered") { front.armed(apiKey: ApiKey.produce.rawValue) == 0 }
        await eventually("records flow again") { s.deliveredCount > read + 100 }
        let writtenTwice = try await s.finish()
        XCTAssertGreaterThan(writtenTwice, 0, "the lost answer's records are in the mock's log twice, as retries")
    }

    func testACoordinatorDownLongerThanTheSessionTimeoutLosesThePartitionsAndTheGroupReforms() async throws {
        // Broker 2 leads two partitions and coordinates the group; while it is down the mock's
        // session timer removes both members, so their heartbeats come back UNKNOWN_MEMBER_ID.
        let s = try await GroupFaultScenario { mock, group in try mock.coordinator("group", key: group, broker: 2) }
        defer { s.stop() }
        let (a, b) = try await s.startTwoMembers()
        try await s.takeDown(2)
        // The session timeout, plus the mock's one-second session check, plus a margin.
        try await Task.sleep(for: GroupFaultScenario.memberSettings(group: s.group, topic: s.topic).sessionTimeout + .milliseconds(1500))
        try s.mock.up(2)
        await eventually("both members lost their partitions") {
            a.consumer.groupStatistics.partitionsLostEvents >= 1 && b.consumer.groupStatistics.partitionsLostEvents >= 1
        }
        try await s.waitUntilStable()
        let read = s.deliveredCount
        await eventually("records flow again") { s.deliveredCount > read + 100 }
        try await s.finish()
        print("coordinator down past the session timeout: \(s.redeliveries) records read again, \(s.lostEvents) losses")
    }

    // MARK: A hostile coordinator

    func testCoordinatorAnswersThatDoNotDecodeFailTheConnectionAndTheMemberReadsOn() async throws {
        // Broker 3 coordinates the group; its proxy damages chosen answers.
        let s = try await GroupFaultScenario { mock, group in try mock.coordinator("group", key: group, broker: 3) }
        defer { s.stop() }
        let front = s.proxies[2]
        let (a, b) = try await s.startTwoMembers()

        // Heartbeats: the members find the coordinator again and go on, no rebalance.
        let generation = a.consumer.groupStatistics.generation
        var accepted = front.connectionsAccepted
        front.damage(apiKey: ApiKey.heartbeat.rawValue, [.header, .body])
        await eventually("both damaged heartbeat answers delivered") { front.armed(apiKey: ApiKey.heartbeat.rawValue) == 0 }
        let heartbeats = [a, b].map(\.consumer.groupStatistics.heartbeats)
        await eventually("both members heartbeat again") {
            a.consumer.groupStatistics.heartbeats > heartbeats[0] + 2 && b.consumer.groupStatistics.heartbeats > heartbeats[1] + 2
        }
        XCTAssertGreaterThanOrEqual(front.connectionsAccepted, accepted + 2, "each damaged answer cost its connection")
        XCTAssertEqual([a, b].map(\.consumer.groupStatistics.generation), [generation, generation])

        // Commits: refused by the damage, carried by the next commit.
        accepted = front.connectionsAccepted
        front.damage(apiKey: ApiKey.offsetCommit.rawValue, [.header, .body])
        await eventually("both damaged commit answers delivered") { front.armed(apiKey: ApiKey.offsetCommit.rawValue) == 0 }
        let commitsAfterDamage = await a.requests(.offsetCommit) + b.requests(.offsetCommit)
        await eventually("the members commit again") {
            await a.requests(.offsetCommit) + b.requests(.offsetCommit) >= commitsAfterDamage + 4
        }
        XCTAssertGreaterThanOrEqual(front.connectionsAccepted, accepted + 2, "each damaged answer cost its connection")

        // A third member joins: JoinGroup, SyncGroup and the new owner's OffsetFetch answers
        // are damaged on the way.
        accepted = front.connectionsAccepted
        front.damage(apiKey: ApiKey.joinGroup.rawValue, [.header, .body])
        front.damage(apiKey: ApiKey.syncGroup.rawValue, [.header, .body])
        front.damage(apiKey: ApiKey.offsetFetch.rawValue, [.header, .body])
        let c = try await s.addMember("c")
        try await s.waitUntilStable()
        for key in [ApiKey.joinGroup, .syncGroup, .offsetFetch] {
            XCTAssertEqual(front.damaged(apiKey: key.rawValue), 2, "\(key): both damaged answers delivered")
        }
        XCTAssertGreaterThanOrEqual(front.connectionsAccepted, accepted + 6, "each damaged answer cost its connection")
        XCTAssertGreaterThanOrEqual(s.logCount("malformed response"), 1, "the damage was reported as a malformed response")
        XCTAssertEqual(c.consumer.assignment.count, 2, "the third member reads its share")
        try await s.finish()
        print("hostile coordinator: \(s.redeliveries) records read again, \(s.lostEvents) losses")
    }
}

// MARK: - Scenario

/// A mock cluster, a producer writing to every partition, group members reading, and a ledger
/// that checks every batch and samples every member's positions:
///
/// - a batch starts at or after the highest offset any member has committed for its partition
///   (a partition that moved or was lost is read again only from its last commit);
/// - a member's batches of a partition follow each other without a gap, and a member that
///   starts a partition starts at its committed offset (nothing is skipped);
/// - sampled every few milliseconds, each member's committed ≤ processed ≤ position;
/// - at the end every record was read and the group's committed offsets are the ends.
final class GroupFaultScenario: Sendable {
    struct Member: Sendable {
        let name: String
        let client: KlifeClient
        let consumer: KlifeConsumer
        let reader: GroupReader

        func requests(_ key: ApiKey) async -> Int { await client.statistics().requestsSent[key] ?? 0 }
    }

    private struct Ledger {
        var delivered: [TopicPartition: Set<Int64>] = [:]
        var deliveredCount = 0
        var redeliveries = 0
        /// The highest committed offset any member reported, per partition.
        var committedHigh: [TopicPartition: Int64] = [:]
        /// Where each member's last batch of a partition ended ("member/partition").
        var next: [String: Int64] = [:]
        var violations: [String] = []
        var acked: [TopicPartition: [Int64]] = [:]
        var produceFailures: [String] = []
    }

    let mock: MockCluster
    let topic = "orders"
    let partitions: Int32 = 6
    let group = "readers"
    let producer: KlifeClient
    /// One proxy per broker, in broker order.
    let proxies: [FrameProxy]
    private let ledger = Locked(Ledger())
    private let members = Locked<[Member]>([])
    private let logs = Locked<[String]>([])
    /// The producer's log: printed when a produced record is missing or written twice.
    private let producerLogs = Locked<[String]>([])
    private let producing = Locked<Task<Void, Never>?>(nil)
    private let sampling = Locked<Task<Void, Never>?>(nil)

    /// The codes of the mock's JoinGroup and SyncGroup refusals the proxies repair by default:
    /// every one a broker sends in these answers, except the mock's own INVALID_REQUEST to a
    /// SyncGroup arriving after the leader's (a broker keeps the assignment for it).
    static let repairedRefusals: Set<Int16> = Set([
        KafkaErrorCode.notCoordinator, .coordinatorNotAvailable, .coordinatorLoadInProgress, .rebalanceInProgress,
        .unknownMemberID, .illegalGeneration,
    ].map(\.rawValue))

    /// Three brokers, partition `p` led by broker `p % 3 + 1`, each reached through a proxy
    /// (``proxies``; broker `n` behind `proxies[n - 1]`) that repairs the mock's group refusals
    /// unless `repairRefusals` is false; `prepare` runs before anything connects.
    init(repairRefusals: Bool = true, prepare: (MockCluster, String) throws -> Void = { _, _ in }) async throws {
        mock = try MockCluster(brokers: 3, topics: [(topic, partitions)])
        var proxies: [FrameProxy] = []
        for (index, address) in mock.bootstrap.enumerated() {
            let proxy = try FrameProxy(upstreamPort: Int(address.split(separator: ":")[1])!)
            if repairRefusals { proxy.repairGroupRefusals(Self.repairedRefusals) }
            try mock.advertise(Int32(index + 1), host: "127.0.0.1", port: proxy.port)
            proxies.append(proxy)
        }
        self.proxies = proxies
        try mock.useGroupVersionsTheMockParses()
        try mock.groupInitialRebalanceDelay(ms: 200)
        try prepare(mock, group)
        let producerLogs = producerLogs
        producer = try await Self.connect(mock, name: "producer") { config in
            config.producer.deliveryTimeout = .seconds(60)
            config.logLevel = .debug
            config.logHandler = { event in producerLogs.withLock { $0.append("\(ContinuousClock.now) \(event)") } }
        }
        let task = Task { [weak self] in
            while !Task.isCancelled {
                self?.sample()
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        sampling.withLock { $0 = task }
    }

    static func connect(_ mock: MockCluster, name: String,
                        _ configure: (inout KlifeConfiguration) -> Void = { _ in }) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.clientID = "klife-group-faults-\(name)"
        config.connectTimeout = .seconds(2)
        config.requestTimeout = .seconds(3)
        config.producer.retryBackoff = .milliseconds(50)
        configure(&config)
        return try await KlifeClient.connect(config)
    }

    /// Short session (the mock's joins wait the session timeout less one second), frequent
    /// heartbeats and commits, small batches.
    static func memberSettings(group: String, topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.autoCommitInterval = .milliseconds(100)
        settings.maxRecords = 20
        settings.sessionTimeout = .seconds(3)
        settings.heartbeatInterval = .milliseconds(200)
        settings.rebalanceTimeout = .seconds(10)
        settings.revokeTimeout = .seconds(2)
        settings.fetchMaxWait = .milliseconds(100)
        settings.retryBackoff = .milliseconds(50)
        settings.retryBackoffMax = .milliseconds(500)
        return settings
    }

    /// A member on a client of its own (set `KLIFE_GROUP_FAULTS_LOG` to print its log as it goes).
    func addMember(_ name: String) async throws -> Member {
        let logs = logs
        let echo = ProcessInfo.processInfo.environment["KLIFE_GROUP_FAULTS_LOG"] != nil
        let client = try await Self.connect(mock, name: name) { config in
            // Two reactors: the brokers' connections (and the partitions' fetches) are split
            // between them, so a leader move can hand a partition from one to the other.
            config.reactorCount = 2
            if echo { config.logLevel = .debug }
            config.logHandler = { event in
                let line = "\(name) \(event)"
                if echo { print("\(ContinuousClock.now) \(line)") }
                logs.withLock { $0.append(line) }
            }
        }
        let consumer = try client.consumer(Self.memberSettings(group: group, topic: topic))
        let reader = GroupReader(consumer, name: name) { [weak self] batch in self?.check(batch, member: name, consumer: consumer) }
        let member = Member(name: name, client: client, consumer: consumer, reader: reader)
        members.withLock { $0.append(member) }
        return member
    }

    var allMembers: [Member] { members.withLock { $0 } }
    var deliveredCount: Int { ledger.withLock { $0.deliveredCount } }
    var redeliveries: Int { ledger.withLock { $0.redeliveries } }
    var lostEvents: Int { allMembers.reduce(0) { $0 + $1.consumer.groupStatistics.partitionsLostEvents } }
    var allPartitions: Set<TopicPartition> { Set((0..<partitions).map { TopicPartition(topic: topic, partition: $0) }) }

    /// Log lines of the members that contain `text`.
    func logCount(_ text: String) -> Int { logs.withLock { $0.filter { $0.contains(text) }.count } }

    /// Starts producing (unless `producing` is false), adds members "a" and "b" and waits until
    /// the group is stable.
    func startTwoMembers(producing: Bool = true, file: StaticString = #filePath, line: UInt = #line) async throws -> (Member, Member) {
        if producing { startProducing() }
        let a = try await addMember("a")
        let b = try await addMember("b")
        try await waitUntilStable(file: file, line: line)
        return (a, b)
    }

    /// Takes `broker` (the coordinator) down and waits until every member's heartbeat failed.
    func takeDown(_ broker: Int32, file: StaticString = #filePath, line: UInt = #line) async throws {
        let failures = logCount("heartbeat failed")
        try mock.down(broker)
        let count = allMembers.count
        await eventually("every member's heartbeat failed while broker \(broker) is down", file: file, line: line) {
            logCount("heartbeat failed") >= failures + count
        }
    }

    /// Waits until the members hold every partition, each once, balanced, all in one generation
    /// (a cooperative rebalance that moves partitions takes two), every partition started (its
    /// position looked up), and every member heartbeats in that generation (its sync went through).
    func waitUntilStable(file: StaticString = #filePath, line: UInt = #line) async throws {
        let consumers = allMembers.map(\.consumer)
        func settled() -> Int32? {
            let held = consumers.map(\.assignment)
            let counts = held.map(\.count)
            let generations = Set(consumers.map(\.groupStatistics.generation))
            let started = consumers.allSatisfy { $0.statistics().partitions.values.allSatisfy { $0.position >= 0 } }
            guard counts.reduce(0, +) == allPartitions.count, Set(held.flatMap { $0 }) == allPartitions,
                  counts.max()! - counts.min()! <= 1, generations.count == 1, let generation = generations.first,
                  generation >= 0, started else { return nil }
            return generation
        }
        for _ in 0..<10 {
            var generation: Int32 = -1
            await eventually("the members hold every partition once, balanced, in one generation, started", file: file, line: line) {
                generation = settled() ?? -1
                return generation >= 0
            }
            guard generation >= 0 else { break }
            let heartbeats = consumers.map(\.groupStatistics.heartbeats)
            await eventually("every member heartbeats in generation \(generation)", file: file, line: line) {
                settled() != generation || zip(consumers, heartbeats).allSatisfy { $0.groupStatistics.heartbeats >= $1 + 2 }
            }
            if settled() == generation { return }
        }
        throw MockClusterError(description: "the group never settled")
    }

    // MARK: Producing

    /// Writes one record per partition every 20 ms until ``finish()``.
    func startProducing() {
        let task = Task { [self] in
            var i = 0
            while !Task.isCancelled {
                produceRound(i)
                i += 1
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        producing.withLock { $0 = task }
    }

    private func produceRound(_ i: Int) {
        for p in 0..<partitions {
            producer.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) { [ledger] result in
                switch result {
                case .success(let metadata):
                    ledger.withLock { $0.acked[TopicPartition(topic: metadata.topic, partition: metadata.partition), default: []].append(metadata.offset) }
                case .failure(let error):
                    ledger.withLock { $0.produceFailures.append("\(p): \(error)") }
                }
            }
        }
    }

    /// Writes `perPartition` records to every partition and waits for them.
    /// - Returns: every partition's end offset.
    func produceOnce(perPartition: Int) async -> [TopicPartition: Int64] {
        for i in 0..<perPartition { produceRound(i) }
        await producer.flush()
        return ends()
    }

    /// Every record of `tp` in the mock's log: its producer id, epoch and sequence, by offset.
    private func producedSequences(_ tp: TopicPartition) async throws -> [Int64: [Int64]] {
        var ids: [Int64: [Int64]] = [:]
        var offset: Int64 = 0
        let topicID = producer.metadataStore.snapshot.metadata.topics[tp.topic]?.topicID ?? .zero
        while true {
            let request = FetchRequest(
                maxWaitMs: 100, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0,
                topics: [.init(name: tp.topic, topicID: topicID,
                               partitions: [.init(partition: tp.partition, fetchOffset: offset, partitionMaxBytes: 1 << 20)])])
            let response = try await producer.roundTripToLeader(request, topic: tp.topic, partition: tp.partition)
            guard let p = response.responses.first?.partitions.first else { break }
            let batches = try RecordBatchDecoder.decode(p.records).batches
            guard let last = batches.last else { break }
            for b in batches {
                for r in b.records {
                    ids[r.offset] = [b.header.producerID, Int64(b.header.producerEpoch),
                                     Int64(b.header.baseSequence) + (r.offset - b.header.baseOffset)]
                }
            }
            offset = last.header.lastOffset + 1
            if offset >= p.highWatermark { break }
        }
        return ids
    }

    /// Each partition's end: the number of acknowledged records (their offsets are dense from 0).
    private func ends() -> [TopicPartition: Int64] {
        ledger.withLock { l in
            var ends: [TopicPartition: Int64] = [:]
            for tp in allPartitions { ends[tp] = Int64(l.acked[tp]?.count ?? 0) }
            return ends
        }
    }

    /// Waits until the group's committed offsets are `ends` (read at the coordinator).
    func waitUntilCommitted(_ ends: [TopicPartition: Int64], file: StaticString = #filePath, line: UInt = #line) async throws {
        let wanted = ends.filter { $0.value > 0 }
        await eventually("the group committed \(wanted.values.reduce(0, +)) records", file: file, line: line) {
            let committed = (try? await producer.committedOffsets(groupID: group, partitions: Array(allPartitions))) ?? [:]
            return wanted.allSatisfy { committed[$0.key] == $0.value }
        }
    }

    // MARK: Checks

    /// Every batch: starts at or after the last commit, follows the member's previous batch of
    /// its partition or starts where the member's committed offset is, and holds dense offsets.
    private func check(_ batch: ConsumerBatch, member: String, consumer: KlifeConsumer) {
        let tp = batch.topicPartition
        guard let first = batch.records.first?.offset else { return }
        let committedByAll = allMembers.compactMap { $0.consumer.statistics().partitions[tp]?.committed }.max() ?? -1
        let own = consumer.statistics().partitions[tp]?.committed ?? -1
        ledger.withLock { l in
            let floor = max(l.committedHigh[tp] ?? -1, committedByAll)
            l.committedHigh[tp] = floor
            if first < floor {
                l.violations.append("\(member) read \(tp) from \(first), below its last commit \(floor)")
            }
            let key = "\(member)/\(tp.partition)"
            if l.next[key] != first && !(first == own || (own < 0 && first == 0)) {
                l.violations.append("\(member) read \(tp) from \(first): its previous batch ended at \(l.next[key].map(String.init) ?? "none") and its committed offset is \(own)")
            }
            for (i, record) in batch.records.enumerated() where record.offset != first + Int64(i) {
                l.violations.append("\(member) \(tp): batch from \(first) holds offset \(record.offset) at index \(i)")
                break
            }
            for record in batch.records {
                if !l.delivered[tp, default: []].insert(record.offset).inserted { l.redeliveries += 1 }
            }
            l.deliveredCount += batch.records.count
            l.next[key] = batch.nextOffset
        }
    }

    /// committed ≤ processed ≤ position for every member's partitions, now.
    private func sample() {
        for member in allMembers {
            let stats = member.consumer.statistics()
            var found: [String] = []
            for (tp, p) in stats.partitions {
                if p.committed >= 0 && p.committed > p.processed {
                    found.append("\(member.name) \(tp): committed \(p.committed) > processed \(p.processed)")
                }
                if p.processed > p.position {
                    found.append("\(member.name) \(tp): processed \(p.processed) > position \(p.position)")
                }
            }
            ledger.withLock { l in
                for (tp, p) in stats.partitions where p.committed > (l.committedHigh[tp] ?? -1) { l.committedHigh[tp] = p.committed }
                l.violations += found
            }
        }
    }

    /// Stops producing, waits until every record was read and committed, checks the ledger,
    /// closes the members and checks the commits again.
    /// - Returns: how many records the mock wrote twice (retries of batches whose answer was lost).
    @discardableResult
    func finish(file: StaticString = #filePath, line: UInt = #line) async throws -> Int64 {
        if let task = producing.withLock({ $0 }) {
            task.cancel()
            await task.value
        }
        await producer.flush()
        let l = ledger.withLock { $0 }
        XCTAssertEqual(l.produceFailures, [], "every record was written", file: file, line: line)
        // Each partition's end: its acknowledged offsets are dense from 0, except where the mock
        // wrote a retried batch twice (it does not deduplicate: MockIdempotenceTests). An offset
        // nobody acknowledged must hold the same producer id, epoch and sequence as an
        // acknowledged one: the producer retried correctly and only the mock's log repeats it.
        var ends: [TopicPartition: Int64] = [:]
        var writtenTwice: Int64 = 0
        for tp in allPartitions {
            let acked = l.acked[tp] ?? []
            XCTAssertEqual(Set(acked).count, acked.count, "\(tp): no offset acknowledged twice", file: file, line: line)
            var end = Int64(acked.count)
            if acked.sorted() != (0..<end).map({ $0 }) {
                let log = try await producedSequences(tp)
                end = Int64(log.count)
                XCTAssertEqual(Set(log.keys), Set(0..<end), "\(tp): the log read whole", file: file, line: line)
                var explained = acked.allSatisfy { $0 < end }
                XCTAssertTrue(explained, "\(tp): acknowledged offsets inside the log", file: file, line: line)
                for offset in Set(0..<end).subtracting(acked).sorted() {
                    let id = log[offset]
                    let retry = acked.contains { log[$0] == id }
                    XCTAssertTrue(retry, "\(tp)@\(offset): written but never acknowledged, and not a retry of an acknowledged batch (producer id, epoch, sequence \(id ?? []))",
                                  file: file, line: line)
                    explained = explained && retry
                }
                writtenTwice += end - Int64(acked.count)
                print("\(tp): the mock wrote \(end - Int64(acked.count)) retried record(s) twice")
                if !explained { print("producer log:\n" + producerLogs.withLock { $0.suffix(400).joined(separator: "\n") }) }
            }
            ends[tp] = end
        }
        await eventually("every record was read", file: file, line: line) {
            ledger.withLock { l in ends.allSatisfy { tp, end in (l.delivered[tp]?.count ?? 0) >= Int(end) } }
        }
        try await waitUntilCommitted(ends, file: file, line: line)
        let delivered = ledger.withLock { $0.delivered }
        for (tp, end) in ends {
            XCTAssertEqual(delivered[tp] ?? [], Set(0..<end), "\(tp): every record read, nothing else", file: file, line: line)
        }
        sampling.withLock { $0?.cancel() }
        let members = allMembers
        for member in members {
            XCTAssertNil(member.reader.failure.withLock { $0 }, "\(member.name) read without failing", file: file, line: line)
            await member.consumer.close()
            await member.reader.wait()
        }
        // (The mock answers an OffsetFetch for all topics with none: name the partitions.)
        let committed = try await producer.committedOffsets(groupID: group, partitions: Array(allPartitions))
        XCTAssertEqual(committed.filter { $0.value > 0 }, ends.filter { $0.value > 0 },
                       "the group committed every partition's end", file: file, line: line)
        let violations = ledger.withLock { $0.violations }
        XCTAssertEqual(violations, [], "the ledger's checks", file: file, line: line)
        if !violations.isEmpty {
            print(logs.withLock { $0.suffix(200).joined(separator: "\n") })
        }
        for member in members { await member.client.close() }
        await producer.close()
        return writtenTwice
    }

    /// Ends the background tasks and the mock (also after a failed test).
    func stop() {
        producing.withLock { $0?.cancel() }
        sampling.withLock { $0?.cancel() }
        mock.stop()
        for proxy in proxies { proxy.stop() }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async -> T) async -> [T] {
        var result: [T] = []
        for element in self { result.append(await transform(element)) }
        return result
    }
}
