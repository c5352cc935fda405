import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import XCTest

/// One classic group mixing our members with librdkafka's, on Tansu: assignments disjoint and
/// complete, every record read once, and committed offsets read across the two clients.
final class GroupInteropTests: XCTestCase {
    func testMixedGroupWithRange() async throws {
        try await mixedGroup(ours: .range, theirs: "range")
    }

    func testMixedGroupWithCooperativeSticky() async throws {
        try await mixedGroup(ours: .cooperativeSticky, theirs: "cooperative-sticky")
    }

    private func mixedGroup(ours strategy: AssignmentStrategy, theirs: String) async throws {
        _ = try interopPython()
        let client = try await Shared.client()
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let topic = try await Shared.topic(client, partitions: 6, prefix: "interop-group")
        let group = "g-" + topic
        for p in Int32(0)..<6 {
            for i in 0..<10 { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p)-\(i)")) { _ in } }
        }
        await client.flush()
        let all = Set((0..<6).map { TopicPartition(topic: topic, partition: Int32($0)) })

        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.assignmentStrategies = [strategy]
        settings.sessionTimeout = .seconds(6)
        settings.heartbeatInterval = .seconds(1)
        settings.autoCommitInterval = .milliseconds(100)
        let ours = GroupReader(try client.consumer(settings), name: "ours")
        let theirs = try RdkafkaGroupMember(bootstrap: bootstrap, group: group, topics: [topic],
                                            extra: ["--assignor", theirs, "--session-timeout-ms", "6000", "--commit"])
        await eventually("our member and librdkafka's split the six partitions") {
            let mine = ours.consumer.assignment, other = theirs.assignment
            return !mine.isEmpty && !other.isEmpty && mine.isDisjoint(with: other) && mine.union(other) == all
        }
        await eventually("all 60 records read") { ours.count + theirs.records.count >= 60 }
        let mineHeld = ours.consumer.assignment
        let theirsHeld = theirs.assignment
        var seen: [TopicPartition: [Int64]] = ours.received.withLock { $0 }
        for r in theirs.records { seen[TopicPartition(topic: r.topic, partition: r.partition), default: []].append(r.offset) }
        for tp in all { XCTAssertEqual(seen[tp]?.sorted(), (0..<10).map { Int64($0) }, "\(tp): every record once") }
        XCTAssertEqual(Set(ours.received.withLock { $0.keys }), mineHeld, "we read only our partitions")

        // Our commits, read back by librdkafka once it takes our partitions over; its
        // commits, read back by us.
        await eventually("our member committed everything it read") {
            ours.consumer.statistics().partitions.values.allSatisfy { $0.committed == 10 }
        }
        let theirCount = theirs.records.count
        await ours.consumer.close()
        await eventually("librdkafka holds every partition after our member left") { theirs.assignment == all }
        let readByThem = try await theirs.committed()
        for tp in mineHeld { XCTAssertEqual(readByThem[tp], 10, "\(tp): our commit, as librdkafka's committed() reads it") }
        let readByUs = try await client.committedOffsets(groupID: group, partitions: Array(theirsHeld))
        for tp in theirsHeld { XCTAssertEqual(readByUs[tp], 10, "\(tp): librdkafka's commit, as we read it") }
        try await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(theirs.records.count, theirCount, "librdkafka re-read nothing after taking our partitions over")
        XCTAssertTrue(theirs.errors.isEmpty, "librdkafka reported \(theirs.errors)")
        theirs.quit()
        await client.close()
    }
}
