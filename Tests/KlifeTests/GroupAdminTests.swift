import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import XCTest

/// Group administration on Tansu: list, describe (members and their partitions), committed
/// offsets with lag, offset resets (refused while members are active), deletion; and the
/// `klife group` commands.
final class GroupAdminTests: XCTestCase {
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
        XCTAssertTrue(describe.output.contains("state Stable"), describe.output)
        XCTAssertTrue(describe.output.contains("2 members"), describe.output)
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
        XCTAssertTrue(table.output.contains("\(topic)\t0\t10\t10\t0"), table.output)

        let deleted = try runKlife(["group", "delete", "-b", bootstrap, group])
        XCTAssertEqual(deleted.status, 0, deleted.errors)
        let after = try await client.committedOffsets(groupID: group)
        XCTAssertTrue(after.isEmpty, "a deleted group has no committed offsets: \(after)")
        let remaining = try await client.listGroups()
        XCTAssertFalse(remaining.contains { $0.groupID == group }, "a deleted group is not listed")
        await client.close()
    }
}
