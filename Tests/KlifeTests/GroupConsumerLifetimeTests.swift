import Foundation
@testable import Klife
import KlifeIO
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
}
