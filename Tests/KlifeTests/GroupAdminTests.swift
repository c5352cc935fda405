import Foundation
@testable import Klife
import KlifeTesting
import XCTest

/// Consumer-group administration against Tansu (with librdkafka members where a group needs
/// members) and librdkafka's mock cluster (a KIP-848 member): listing, describing, offsets and
/// lag, resets, deletion, and the `klife group` commands.
///
/// Tansu holds a group's first JoinGroup for about 20 s (its rebalance delay), so only one test
/// starts members, both at once. Time limits are safety nets; no assertion depends on how fast
/// anything happened.
final class GroupAdminTests: XCTestCase {
    /// Record timestamps: record `i` of every partition is stamped `baseTime + i * 1000`.
    private static let baseTime: Int64 = 1_700_000_000_000

    /// Produces `counts[p]` records into each partition `p`, awaiting each: one record per batch,
    /// because Tansu 0.6 answers ListOffsets LATEST with the last batch's base offset + 1, which is
    /// the end only when the last batch holds one record.
    private func fill(_ client: KlifeClient, _ topic: String, _ counts: [Int32: Int]) async throws {
        for (p, count) in counts.sorted(by: { $0.key < $1.key }) {
            for i in 0..<count {
                _ = try await client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)",
                                                            timestamp: Self.baseTime + Int64(i) * 1000))
            }
        }
    }

    private func tps(_ topic: String, _ offsets: [Int32: Int64]) -> [TopicPartition: Int64] {
        Dictionary(uniqueKeysWithValues: offsets.map { (TopicPartition(topic: topic, partition: $0.key), $0.value) })
    }

    /// Whether the broker looks record times up (Kafka) rather than answering every time lookup
    /// with the log start (Tansu 0.6): partition 0 of a `fill`ed topic has record 3 at base+3 s.
    private func brokerFindsTimes(_ client: KlifeClient, _ topic: String) async throws -> Bool {
        try await client.listOffset(topic: topic, partition: 0, .timestamp(Self.baseTime + 3000)) == 3
    }

    /// Calls `body` until it returns a value, sleeping briefly in between, at most until `limit`.
    private func awaitValue<T>(_ what: String, limit: Duration = .seconds(90),
                               _ body: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + limit
        while true {
            if let value = try await body() { return value }
            guard ContinuousClock.now < deadline else { throw InteropError(description: "gave up waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: A group without members

    /// A group that only committed offsets: listed, described `Empty`, its lag exact, reset to
    /// each kind of target with exactly the expected offsets, then deleted.
    func testGroupWithOnlyCommittedOffsets() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3, prefix: "gadmin")
        let group = "offsets-only-\(topic)"
        try await fill(client, topic, [0: 10, 1: 5])
        try await client.commitOffsets(tps(topic, [0: 4, 1: 5]), groupID: group)

        let listed = try await client.listGroups().first { $0.groupID == group }
        let listing = try XCTUnwrap(listed, "the group is listed once it has committed offsets")
        // Kafka lists a group that only commits with no protocol type; Tansu 0.6 says "consumer".
        XCTAssertTrue(["", "consumer"].contains(listing.protocolType), listing.protocolType)

        let described = try await client.describeGroup(group)
        XCTAssertEqual(described.groupID, group)
        XCTAssertEqual(described.state, .empty)
        XCTAssertEqual(described.type, .classic)
        XCTAssertEqual(described.members, [])
        XCTAssertEqual(described.coordinator, listing.coordinator, "ListGroups came from the coordinator")

        let offsets = try await client.groupOffsets(group)
        XCTAssertEqual(offsets, [
            TopicPartition(topic: topic, partition: 0): GroupPartitionOffsets(committed: 4, endOffset: 10),
            TopicPartition(topic: topic, partition: 1): GroupPartitionOffsets(committed: 5, endOffset: 5),
        ])
        XCTAssertEqual(offsets[TopicPartition(topic: topic, partition: 0)]?.lag, 6)
        XCTAssertEqual(offsets[TopicPartition(topic: topic, partition: 1)]?.lag, 0)

        let ends: [Int32: Int64] = [0: 10, 1: 5, 2: 0]
        var targets: [(OffsetResetTarget, [Int32: Int64])] = [
            (.earliest, [0: 0, 1: 0, 2: 0]),
            (.latest, ends),
            (.offset(7), [0: 7, 1: 5, 2: 0]),   // past the end of partitions 1 and 2: their end
        ]
        // By time: the first offset ListOffsets gives for the time, the end where it finds none.
        // Kafka finds record 3 for base+2500 and nothing for base+100 s; Tansu 0.6 answers every
        // time lookup with the log start, so what the broker says is the expectation.
        let kafkaByTime: [Int64: [Int32: Int64]] = [Self.baseTime + 2500: [0: 3, 1: 3, 2: 0],
                                                    Self.baseTime + 100_000: ends]
        for (time, kafka) in kafkaByTime.sorted(by: { $0.key < $1.key }) {
            var expected: [Int32: Int64] = [:]
            for p in Int32(0)..<3 {
                let found = try await client.listOffset(topic: topic, partition: p, .timestamp(time))
                expected[p] = found >= 0 ? found : ends[p]
            }
            if try await brokerFindsTimes(client, topic) { XCTAssertEqual(expected, kafka, "time \(time)") }
            targets.append((.timestamp(time), expected))
        }
        for (target, expected) in targets {
            let reset = try await client.resetGroupOffsets(group, topic: topic, to: target)
            XCTAssertEqual(reset, tps(topic, expected), "reset to \(target)")
            let committed = try await client.committedOffsets(groupID: group)
            XCTAssertEqual(committed, tps(topic, expected), "committed after the reset to \(target)")
        }

        do {
            try await client.resetGroupOffsets(group, topic: "no-such-\(topic)", to: .earliest)
            XCTFail("a reset of an unknown topic succeeded")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition, "\(error)")
        }
        do {
            try await client.resetGroupOffsets(group, topic: topic, to: .timestamp(-5))
            XCTFail("a reset to a negative timestamp succeeded")
        } catch {
            XCTAssertEqual(error.code, .invalidArgument, "\(error)")
        }

        try await client.deleteGroup(group)
        let after = try await client.listGroups()
        XCTAssertFalse(after.contains { $0.groupID == group }, "deleted group still listed: \(after)")
        let left = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(left, [:], "a deleted group's offsets go with it")
        await client.close()
    }

    /// OffsetDelete drops one partition's offset where the broker has it; a broker without it
    /// (Tansu 0.6) is reported as `unsupportedVersion` naming the API.
    func testDeleteGroupOffsets() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "gadmin-del")
        let group = "offset-delete-\(topic)"
        try await client.commitOffsets(tps(topic, [0: 0, 1: 0]), groupID: group)
        do {
            try await client.deleteGroupOffsets(group, partitions: [TopicPartition(topic: topic, partition: 0)])
            let left = try await client.committedOffsets(groupID: group)
            XCTAssertEqual(left, tps(topic, [1: 0]), "only partition 0's offset is gone")
        } catch {
            // A `catch where` here crashes the 6.3.1 compiler (MandatoryAllocBoxToStack).
            guard error.code == .unsupportedVersion else { throw error }
            XCTAssertTrue(error.description.contains("OffsetDelete"), "\(error)")
            let left = try await client.committedOffsets(groupID: group)
            XCTAssertEqual(left, tps(topic, [0: 0, 1: 0]), "nothing deleted")
        }
        try await client.deleteGroup(group)
        await client.close()
    }

    // MARK: The klife command

    /// Every `klife group` subcommand on a group without members, with the values it prints.
    func testGroupCommands() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "gadmin-cli")
        let group = "cli-\(topic)"
        try await fill(client, topic, [0: 6, 1: 2])
        try await client.commitOffsets(tps(topic, [0: 1, 1: 2]), groupID: group)
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]

        let list = try runKlife(["group", "list", "-b", bootstrap])
        XCTAssertEqual(list.status, 0, list.errors)
        let listed = list.output.split(separator: "\n").first { $0.hasPrefix(group + " ") }
        XCTAssertNotNil(listed, list.output)
        XCTAssertTrue(list.output.hasPrefix("GROUP  "), list.output)

        let describe = try runKlife(["group", "describe", "-b", bootstrap, group])
        XCTAssertEqual(describe.status, 0, describe.errors)
        XCTAssertTrue(describe.output.contains("group: \(group)\n"), describe.output)
        XCTAssertTrue(describe.output.contains("state: Empty\n"), describe.output)
        XCTAssertTrue(describe.output.contains("members: 0\n"), describe.output)

        let offsets = try runKlife(["group", "offsets", "-b", bootstrap, group])
        XCTAssertEqual(offsets.status, 0, offsets.errors)
        XCTAssertEqual(rows(offsets.output), [["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
                                              [topic, "0", "1", "6", "5"], [topic, "1", "2", "2", "0"]])

        let one = try runKlife(["group", "offsets", "-b", bootstrap, group, "-t", topic])
        XCTAssertEqual(one.output, offsets.output, "-t names the group's one topic")
        let missing = try runKlife(["group", "offsets", "-b", bootstrap, group, "-t", "no-such-\(topic)"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.errors.contains("unknown topic no-such-\(topic)"), missing.errors)

        let reset = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", topic, "--to", "3"])
        XCTAssertEqual(reset.status, 0, reset.errors)
        XCTAssertEqual(rows(reset.output), [["TOPIC", "PARTITION", "NEW-OFFSET"], [topic, "0", "3"], [topic, "1", "2"]])
        let time = Self.baseTime + 1000
        var timeExpected = [["TOPIC", "PARTITION", "NEW-OFFSET"]]
        for p in Int32(0)..<2 {
            timeExpected.append([topic, "\(p)", "\(try await client.listOffset(topic: topic, partition: p, .timestamp(time)))"])
        }
        if try await brokerFindsTimes(client, topic) {
            XCTAssertEqual(timeExpected, [["TOPIC", "PARTITION", "NEW-OFFSET"], [topic, "0", "1"], [topic, "1", "1"]])
        }
        let byTime = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", topic, "--to", "@\(time)"])
        XCTAssertEqual(byTime.status, 0, byTime.errors)
        XCTAssertEqual(rows(byTime.output), timeExpected)
        let earliest = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", topic, "--to", "earliest"])
        XCTAssertEqual(rows(earliest.output), [["TOPIC", "PARTITION", "NEW-OFFSET"], [topic, "0", "0"], [topic, "1", "0"]])
        let committed = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(committed, tps(topic, [0: 0, 1: 0]))

        let bad = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", topic, "--to", "yesterday"])
        XCTAssertEqual(bad.status, 64, "a bad --to is a usage error")
        XCTAssertTrue(bad.errors.contains("invalid value 'yesterday' for --to"), bad.errors)
        let noTopic = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "--to", "earliest"])
        XCTAssertEqual(noTopic.status, 64)
        XCTAssertTrue(noTopic.errors.contains("missing required option --topic"), noTopic.errors)
        let unknown = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", "no-such-\(topic)", "--to", "latest"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.errors.contains("klife: error: unknown topic no-such-\(topic)"), unknown.errors)

        let delete = try runKlife(["group", "delete", "-b", bootstrap, group])
        XCTAssertEqual(delete.status, 0, delete.errors)
        XCTAssertEqual(delete.output, "deleted group \"\(group)\"\n")
        let afterList = try runKlife(["group", "list", "-b", bootstrap])
        XCTAssertFalse(afterList.output.contains(group + " "), afterList.output)
        let empty = try runKlife(["group", "offsets", "-b", bootstrap, group])
        XCTAssertEqual(rows(empty.output), [["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]])
        XCTAssertTrue(empty.errors.contains("group '\(group)' has no committed offsets"), empty.errors)

        let help = try runKlife(["group", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.output.contains("reset-offsets"), help.output)
        await client.close()
    }

    /// The cells of an aligned table, row by row.
    private func rows(_ text: String) -> [[String]] {
        text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
    }

    // MARK: A group with librdkafka members

    /// Two librdkafka members (classic protocol, range assignor) share four partitions: the
    /// description shows both by the member ids librdkafka reports (and, where the broker sends
    /// them, their disjoint assignments covering every partition, as each member holds them);
    /// their commits show as committed offsets with no lag; resetting or deleting is refused while
    /// they are there and allowed once they left.
    func testGroupWithLibrdkafkaMembers() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 4, prefix: "gadmin-members")
        let group = "members-\(topic)"
        try await fill(client, topic, [0: 3, 1: 3, 2: 3, 3: 3])
        let all = Set((0..<4).map { TopicPartition(topic: topic, partition: Int32($0)) })
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let a = try RdkafkaGroupMember(bootstrap: bootstrap, group: group, topics: [topic], assignor: "range",
                                       commit: true, clientID: "member-a")
        let b = try RdkafkaGroupMember(bootstrap: bootstrap, group: group, topics: [topic], assignor: "range",
                                       commit: true, clientID: "member-b")
        addTeardownBlock { await a.kill(); await b.kill() }

        // Both joined and hold disjoint shares covering the topic, as librdkafka reports them.
        let heldA = Set(try await a.waitForAssignment())
        let heldB = Set(try await b.waitForAssignment())
        let (idA, idB) = (try XCTUnwrap(a.memberID), try XCTUnwrap(b.memberID))
        let described = try await awaitValue("a Stable group of both members") { () -> GroupDescription? in
            let d = try await client.describeGroup(group)
            return d.state == .stable && Set(d.members.map(\.memberID)) == [idA, idB] ? d : nil
        }
        // The members may have rebalanced once more before the coordinator settled: read their final shares.
        let finalA = Set(a.assignment), finalB = Set(b.assignment)
        XCTAssertFalse(heldA.isEmpty || heldB.isEmpty)
        XCTAssertTrue(finalA.isDisjoint(with: finalB), "\(finalA) \(finalB)")
        XCTAssertEqual(finalA.union(finalB), all)
        XCTAssertEqual(described.type, .classic)
        XCTAssertEqual(described.protocolType, "consumer")
        for m in described.members {
            XCTAssertNil(m.instanceID)
            XCTAssertNil(m.memberEpoch)
            XCTAssertNil(m.targetAssignment)
        }
        if described.protocolName.isEmpty {
            // Tansu 0.6 describes members by id only: no assignor, client id, host, subscription
            // or assignment (ScriptedGroupCoordinatorTests decode those from a full answer).
            XCTAssertTrue(described.members.allSatisfy { $0.assignment.isEmpty && $0.clientID.isEmpty }, "\(described)")
        } else {
            XCTAssertEqual(described.protocolName, "range")
            let byID = Dictionary(uniqueKeysWithValues: described.members.map { ($0.memberID, $0) })
            XCTAssertEqual(byID[idA]?.clientID, "member-a")
            XCTAssertEqual(byID[idB]?.clientID, "member-b")
            XCTAssertEqual(Set(byID[idA]?.assignment ?? []), finalA, "the coordinator describes what member-a holds")
            XCTAssertEqual(Set(byID[idB]?.assignment ?? []), finalB, "the coordinator describes what member-b holds")
            for m in described.members {
                XCTAssertFalse(m.host.isEmpty)
                XCTAssertEqual(m.subscribedTopics, [topic])
            }
        }

        // Every record read and committed: committed = end = 3, no lag.
        let offsets = try await awaitValue("every record committed") { () -> [TopicPartition: GroupPartitionOffsets]? in
            let o = try await client.groupOffsets(group)
            return o.count == 4 && o.values.allSatisfy({ $0.committed == 3 }) ? o : nil
        }
        XCTAssertEqual(offsets, Dictionary(uniqueKeysWithValues: all.map { ($0, GroupPartitionOffsets(committed: 3, endOffset: 3)) }))
        XCTAssertTrue(offsets.values.allSatisfy { $0.lag == 0 })
        let fromA = try await a.committed()
        let fromB = try await b.committed()
        XCTAssertEqual(fromA.merging(fromB) { x, _ in x }, Dictionary(uniqueKeysWithValues: all.map { ($0, Int64(3)) }),
                       "librdkafka reads the same committed offsets")

        // Active members: a reset and a deletion are refused, and nothing changes.
        do {
            try await client.resetGroupOffsets(group, topic: topic, to: .earliest)
            XCTFail("a reset of an active group succeeded")
        } catch {
            XCTAssertEqual(error.code, .groupNotEmpty, "\(error)")
            XCTAssertEqual(error.kafkaErrorCode, .nonEmptyGroup)
            XCTAssertTrue(error.description.contains("it is Stable with 2 members"), error.description)
        }
        do {
            try await client.deleteGroup(group)
            XCTFail("deleting an active group succeeded")
        } catch {
            XCTAssertEqual(error.code, .groupNotEmpty, "\(error)")
            XCTAssertTrue(error.description.hasPrefix("cannot delete group '\(group)': it is Stable with 2 members"),
                          error.description)
        }
        let unchanged = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(unchanged, Dictionary(uniqueKeysWithValues: all.map { ($0, Int64(3)) }))

        // The same through the command line.
        let describe = try runKlife(["group", "describe", "-b", bootstrap, group])
        XCTAssertEqual(describe.status, 0, describe.errors)
        XCTAssertTrue(describe.output.contains("state: Stable\n"), describe.output)
        XCTAssertTrue(describe.output.contains("protocol: \(described.protocolName.isEmpty ? "-" : described.protocolName)\n"),
                      describe.output)
        XCTAssertTrue(describe.output.contains("members: 2\n"), describe.output)
        for m in described.members {
            let line = describe.output.split(separator: "\n").first { $0.hasPrefix(m.memberID + " ") }
            XCTAssertNotNil(line, describe.output)
            XCTAssertTrue(line?.hasSuffix(GroupPartitionsText.render(m.assignment)) ?? false, describe.output)
        }
        let refused = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", topic, "--to", "earliest"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.errors.contains("cannot reset offsets of group '\(group)': it is Stable with 2 members"), refused.errors)

        // Once both left, the group is Empty and the reset goes through.
        try await a.stop()
        try await b.stop()
        let idle = try await awaitValue("the group to empty") { () -> GroupDescription? in
            let d = try await client.describeGroup(group)
            return d.state.isInactive ? d : nil
        }
        XCTAssertEqual(idle.members, [])
        let reset = try await client.resetGroupOffsets(group, topic: topic, to: .earliest)
        XCTAssertEqual(reset, Dictionary(uniqueKeysWithValues: all.map { ($0, Int64(0)) }))
        let lagged = try await client.groupOffsets(group)
        XCTAssertEqual(lagged.values.map(\.lag), [3, 3, 3, 3])
        try await client.deleteGroup(group)
        await client.close()
    }

    private func memberSettings(_ group: String, _ topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.sessionTimeout = .seconds(6)
        settings.heartbeatInterval = .seconds(1)
        settings.autoCommitInterval = .milliseconds(100)
        return settings
    }

    // MARK: A group of Klife consumers

    /// Two of our own group consumers share four partitions: described by their member ids,
    /// listed, their commits read with no lag, a reset refused until they left, then resets to
    /// each target and deletion, through the API and the command line.
    func testDescribeListOffsetsResetAndDeleteAGroup() async throws {
        let client = try await Shared.client()
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let topic = try await Shared.topic(client, partitions: 4, prefix: "admin-group")
        let group = "g-" + topic
        // One record per produce batch: Tansu 0.6 answers ListOffsets(latest) with the last
        // batch's base offset + 1, which is the end only when that batch holds one record.
        for p in Int32(0)..<4 {
            for i in 0..<10 { _ = try await client.produce(ProducerRecord(topic: topic, partition: p, value: "\(i)")) }
        }
        let all = Set((0..<4).map { TopicPartition(topic: topic, partition: Int32($0)) })
        let members = [try client.consumer(memberSettings(group, topic)), try client.consumer(memberSettings(group, topic))]
        let readers = members.map { GroupReader($0, name: "m") }
        try await waitUntilGroupIsStable(members, partitions: all)
        await eventually("both members read everything and committed it") {
            readers.reduce(0) { $0 + $1.count } >= 40
                && members.allSatisfy { $0.statistics().partitions.values.allSatisfy { $0.committed == 10 } }
        }

        let described = try await client.describeGroup(group)
        XCTAssertEqual(described.state, .stable)
        XCTAssertEqual(described.protocolType, "consumer")
        XCTAssertEqual(described.members.count, 2)
        XCTAssertEqual(Set(described.members.map(\.memberID)), Set(members.map(\.groupStatistics.memberID)))
        // Tansu 0.6 leaves the protocol name, client ids, hosts and assignments out of its
        // DescribeGroups answer; the mock cluster's test checks them.

        let listed = try await client.listGroups()
        XCTAssertEqual(listed.first { $0.groupID == group }?.protocolType, "consumer")

        let offsets = try await client.groupOffsets(group)
        XCTAssertEqual(offsets.count, 4)
        for entry in offsets.values {
            XCTAssertEqual(entry.committed, 10)
            XCTAssertEqual(entry.endOffset, 10)
            XCTAssertEqual(entry.lag, 0)
        }

        do {
            try await client.resetGroupOffsets(group, topic: topic, to: .earliest)
            XCTFail("a reset of an active group must be refused")
        } catch {
            XCTAssertEqual(error.code, .groupNotEmpty)
        }
        let refused = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", topic, "--to", "earliest"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.errors.contains("stop its consumers first"), refused.errors)

        let describe = try runKlife(["group", "describe", "-b", bootstrap, group])
        XCTAssertEqual(describe.status, 0, describe.errors)
        XCTAssertTrue(describe.output.contains("state: Stable\n"), describe.output)
        XCTAssertTrue(describe.output.contains("members: 2\n"), describe.output)
        let list = try runKlife(["group", "list", "-b", bootstrap])
        XCTAssertTrue(list.output.contains(group), list.output)

        for member in members { await member.close() }
        await eventually("the group is empty once its members left") { (try? await client.describeGroup(group).state) == .empty }

        let earliest = try await client.resetGroupOffsets(group, topic: topic, to: .earliest)
        XCTAssertEqual(Set(earliest.values), [0])
        let fromCLI = try runKlife(["group", "reset-offsets", "-b", bootstrap, group, "-t", topic, "--to", "7"])
        XCTAssertEqual(fromCLI.status, 0, fromCLI.errors)
        let seven = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(Set(seven.values), [7])
        let beyond = try await client.resetGroupOffsets(group, topic: topic, to: .offset(1_000))
        XCTAssertEqual(Set(beyond.values), [10], "an offset past the end is kept at the end")
        // (A timestamp after every record should reset to the end: Tansu 0.6 answers such a
        // ListOffsets with offset 0 instead of -1, so that case is not checked here.)
        let past = try await client.resetGroupOffsets(group, topic: topic, to: .timestamp(0))
        XCTAssertEqual(Set(past.values), [0])
        let latest = try await client.resetGroupOffsets(group, topic: topic, to: .latest)
        XCTAssertEqual(Set(latest.values), [10])

        let table = try runKlife(["group", "offsets", "-b", bootstrap, group])
        XCTAssertEqual(table.status, 0, table.errors)
        XCTAssertTrue(rows(table.output).contains([topic, "0", "10", "10", "0"]), table.output)

        let deleted = try runKlife(["group", "delete", "-b", bootstrap, group])
        XCTAssertEqual(deleted.status, 0, deleted.errors)
        let after = try await client.committedOffsets(groupID: group)
        XCTAssertTrue(after.isEmpty, "a deleted group has no committed offsets: \(after)")
        let remaining = try await client.listGroups()
        XCTAssertFalse(remaining.contains { $0.groupID == group }, "a deleted group is not listed")
        await client.close()
    }

    // MARK: KIP-848 on librdkafka's mock cluster

    /// A librdkafka member speaking the KIP-848 consumer protocol on the mock cluster: its commits
    /// read back through ``KlifeClient/groupOffsets(_:)``. The mock speaks neither DescribeGroups,
    /// ListGroups nor ConsumerGroupDescribe, so describing and listing fail with
    /// `unsupportedVersion` naming what is missing.
    func testKIP848MemberOnMockCluster() async throws {
        let topic = "kip848"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 2)])
        defer { mock.stop() }
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.requestTimeout = .seconds(5)
        let client = try await KlifeClient.connect(config)
        for p in Int32(0)..<2 {
            for i in 0..<3 { _ = try await client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)")) }
        }
        let group = "kip848-group"
        let member = try RdkafkaGroupMember(bootstrap: mock.bootstrap.joined(separator: ","), group: group, topics: [topic],
                                            protocol: "consumer", commit: true, clientID: "kip848-member")
        addTeardownBlock { await member.kill() }
        let held = try await member.waitForAssignment { $0.count == 2 }
        XCTAssertEqual(Set(held), [TopicPartition(topic: topic, partition: 0), TopicPartition(topic: topic, partition: 1)])
        let records = try await member.waitForRecords(6)
        XCTAssertEqual(Set(records.map { "\($0.partition)@\($0.offset)" }), ["0@0", "0@1", "0@2", "1@0", "1@1", "1@2"])
        let fromMember = try await member.committed()
        XCTAssertEqual(fromMember, tps(topic, [0: 3, 1: 3]))

        // The mock answers OffsetFetch only for partitions asked by name.
        let offsets = try await client.groupOffsets(group, topics: [topic])
        XCTAssertEqual(offsets, [
            TopicPartition(topic: topic, partition: 0): GroupPartitionOffsets(committed: 3, endOffset: 3),
            TopicPartition(topic: topic, partition: 1): GroupPartitionOffsets(committed: 3, endOffset: 3),
        ])
        do {
            let d = try await client.describeGroup(group)
            XCTFail("the mock described the group: \(d)")
        } catch {
            XCTAssertEqual(error.code, .unsupportedVersion, "\(error)")
            XCTAssertTrue(error.description.contains("neither DescribeGroups"), error.description)
            XCTAssertTrue(error.description.contains("ConsumerGroupDescribe"), error.description)
        }
        do {
            let groups = try await client.listGroups()
            XCTFail("the mock listed groups: \(groups)")
        } catch {
            XCTAssertEqual(error.code, .unsupportedVersion, "\(error)")
        }
        try await member.stop()
        await client.close()
    }
}

/// The text `klife group describe` prints for an assignment (`topic:0,1`), rebuilt for assertions.
private enum GroupPartitionsText {
    static func render(_ list: [TopicPartition]) -> String {
        guard !list.isEmpty else { return "-" }
        var byTopic: [String: [Int32]] = [:]
        for tp in list { byTopic[tp.topic, default: []].append(tp.partition) }
        return byTopic.keys.sorted().map { $0 + ":" + byTopic[$0]!.sorted().map(String.init).joined(separator: ",") }
            .joined(separator: " ")
    }
}
