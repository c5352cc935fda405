import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// What happens to a group member that is not closed: dropped by the application, or left
/// behind when its client closes. Neither may keep partitions from the rest of the group or
/// keep its client alive.
final class GroupConsumerLifetimeTests: XCTestCase {
    private func settings(_ topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = "g-" + topic
        settings.topics = [topic]
        settings.offsetReset = .earliest
        // Tansu holds a JoinGroup for about half the session timeout: keep it short.
        settings.sessionTimeout = .seconds(6)
        settings.heartbeatInterval = .seconds(1)
        return settings
    }

    func testADroppedMemberStopsHeartbeatingAndItsPartitionsMove() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "group-dropped")
        let survivor = try client.consumer(settings(topic))
        weak var dropped: KlifeConsumer?
        do {
            let member = try client.consumer(settings(topic))
            dropped = member
            await eventually("both members hold one partition") {
                member.assignment.count == 1 && survivor.assignment.count == 1
            }
        }
        XCTAssertNil(dropped, "nothing outside the consumer keeps it")
        // The dropped member's heartbeats must stop (or it must leave): otherwise the group
        // keeps a partition for a member nobody reads from, forever.
        await eventually("the survivor holds both partitions") { survivor.assignment.count == 2 }
        await survivor.close()
        await client.close()
    }

    func testAClientClosedUnderItsMemberIsFreed() async throws {
        let admin = try await Shared.client()
        let topic = try await Shared.topic(admin, partitions: 1, prefix: "group-client-closed")
        weak var closedClient: KlifeClient?
        do {
            let client = try await Shared.client()
            closedClient = client
            let consumer = try client.consumer(settings(topic))
            await eventually("the member holds the partition") { consumer.assignment.count == 1 }
            await client.close()
        }
        // Nothing can be sent any more: the membership must not wait forever for events of a
        // closed client (its driver task would keep the client and all it holds alive).
        await eventually("the closed client is freed") { closedClient == nil }
        await admin.close()
    }

    /// Requests of `api` the client sent so far.
    private func sent(_ client: KlifeClient, _ api: ApiKey) async -> Int {
        await client.statistics().requestsSent[api] ?? 0
    }

    func testADroppedDynamicMemberLeavesAndADroppedStaticMemberStopsWithoutLeaving() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "group-dropped-kinds")
        for staticMember in [false, true] {
            // A group of its own each time, the member to drop joining first (Tansu answers a
            // static member joining a stable group with REBALANCE_IN_PROGRESS at every SyncGroup),
            // on a client of its own: its requests are counted apart.
            var groupSettings = settings(topic)
            groupSettings.groupID = (groupSettings.groupID ?? "") + (staticMember ? "-static" : "-dynamic")
            var memberSettings = groupSettings
            if staticMember { memberSettings.groupInstanceID = "static-" + topic }
            let own = try await Shared.client()
            weak var membership: AnyObject?
            let survivor: KlifeConsumer
            do {
                let member = try own.consumer(memberSettings)
                membership = member.membership
                survivor = try client.consumer(groupSettings)
                await eventually("both members hold one partition") {
                    member.assignment.count == 1 && survivor.assignment.count == 1
                }
            }
            // The membership ends (it is freed once it left) and the heartbeats stop.
            await eventually("the dropped member's membership is freed", within: .seconds(30)) { membership == nil }
            let beats = await sent(own, .heartbeat)
            try await Task.sleep(for: .seconds(2))  // two heartbeat intervals
            let beatsLater = await sent(own, .heartbeat)
            XCTAssertEqual(beatsLater, beats, "static \(staticMember): no heartbeat after the member was dropped")
            let left = await sent(own, .leaveGroup)
            XCTAssertEqual(left, staticMember ? 0 : 1, staticMember ? "a static member does not leave" : "a dynamic member leaves")
            // Static: the group notices after the session timeout.
            await eventually("the survivor holds both partitions") { survivor.assignment.count == 2 }
            await survivor.close()
            await own.close()
        }
        await client.close()
    }

    func testAClientClosedUnderAMemberStillHeldEndsItsBatches() async throws {
        let admin = try await Shared.client()
        let topic = try await Shared.topic(admin, partitions: 1, prefix: "group-client-closed-held")
        weak var closedClient: KlifeClient?
        do {
            let client = try await Shared.client()
            closedClient = client
            let consumer = try client.consumer(settings(topic))
            await eventually("the member holds the partition") { consumer.assignment.count == 1 }
            await client.close()
            do {
                let batch = try await consumer.next()
                XCTFail("a batch after the client closed: \(String(describing: batch))")
            } catch {
                XCTAssertEqual(error.code, .clientClosed)
            }
            // Its membership ended with the client: closing the consumer has nothing to wait for,
            // so it returns although its timeout is an hour.
            let closed = Locked(false)
            let closing = Task {
                await consumer.close(timeout: .seconds(3600))
                closed.withLock { $0 = true }
            }
            await eventually("close() returns without waiting for its timeout") { closed.withLock { $0 } }
            closing.cancel()
        }
        await eventually("the closed client is freed") { closedClient == nil }
        await admin.close()
    }

    // MARK: The consumer group protocol (KIP-848), on librdkafka's mock cluster

    private func kip848(_ mock: MockCluster, topic: String) async throws -> (KlifeClient, ConsumerConfiguration) {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        var settings = ConsumerConfiguration()
        settings.groupID = "g-" + topic
        settings.topics = [topic]
        settings.groupProtocol = .consumer
        settings.offsetReset = .earliest
        return (try await KlifeClient.connect(config), settings)
    }

    func testADroppedKIP848MemberLeavesAndItsPartitionsMove() async throws {
        let topic = "kip848-dropped"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 2)])
        defer { mock.stop() }
        // A session far longer than the test waits: only a leave moves the partitions in time.
        try mock.consumerGroup(sessionTimeoutMs: 120_000, heartbeatIntervalMs: 300)
        let (client, settings) = try await kip848(mock, topic: topic)
        let survivor = try client.consumer(settings)
        weak var dropped: KlifeConsumer?
        weak var membership: AnyObject?
        do {
            let member = try client.consumer(settings)
            dropped = member
            membership = member.membership
            await eventually("both members hold one partition", within: .seconds(60)) {
                member.assignment.count == 1 && survivor.assignment.count == 1
            }
        }
        XCTAssertNil(dropped, "nothing outside the consumer keeps it")
        await eventually("the survivor holds both partitions", within: .seconds(30)) { survivor.assignment.count == 2 }
        await eventually("the dropped member's membership is freed", within: .seconds(30)) { membership == nil }
        await survivor.close()
        await client.close()
    }

    func testAClientClosedUnderAKIP848MemberEndsItAndIsFreed() async throws {
        let topic = "kip848-client-closed"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.consumerGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 300)
        weak var closedClient: KlifeClient?
        do {
            let (client, settings) = try await kip848(mock, topic: topic)
            closedClient = client
            let consumer = try client.consumer(settings)
            await eventually("the member holds the partition", within: .seconds(60)) { consumer.assignment.count == 1 }
            await client.close()
            do {
                let batch = try await consumer.next()
                XCTFail("a batch after the client closed: \(String(describing: batch))")
            } catch {
                XCTAssertEqual(error.code, .clientClosed)
            }
        }
        await eventually("the closed client is freed", within: .seconds(30)) { closedClient == nil }
    }
}
