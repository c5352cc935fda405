import Foundation
import Synchronization
import Klife
import KlifeProtocol
import XCTest

/// Group administration against scripted brokers (``ScriptedGroupCluster``): what the real
/// brokers at hand cannot show — ListGroups merged over several coordinators, members' assignments
/// and subscriptions decoded from DescribeGroups, a KIP-848 group described through
/// ConsumerGroupDescribe, a coordinator refusing to delete a group with members.
final class ScriptedGroupCoordinatorTests: XCTestCase {
    private func connect(_ cluster: ScriptedGroupCluster) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: [cluster.bootstrap[0]])
        config.producer.idempotent = false
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(3)
        return try await KlifeClient.connect(config)
    }

    private func tp(_ topic: String, _ partition: Int32) -> TopicPartition { TopicPartition(topic: topic, partition: partition) }

    /// Each broker lists only the groups it coordinates: the client asks both, retries the one
    /// still loading (COORDINATOR_LOAD_IN_PROGRESS), and merges the answers sorted by id.
    func testListGroupsAsksEveryBrokerAndMergesTheirAnswers() async throws {
        let loads = Counter()
        let cluster = try ScriptedGroupCluster(brokers: 2) { request in
            guard request.apiKey == 16 else { return nil }
            if request.node == 1 { return ScriptedAnswers.listGroups([("orders", "consumer", "Stable"), ("audit", "", "Empty")]) }
            if loads.next() == 0 { return ScriptedAnswers.listGroups(error: 14, []) }
            return ScriptedAnswers.listGroups([("billing", "consumer", "PreparingRebalance")])
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        let groups = try await client.listGroups()
        XCTAssertEqual(groups, [
            GroupListing(groupID: "audit", protocolType: "", state: .empty, type: nil, coordinator: 1),
            GroupListing(groupID: "billing", protocolType: "consumer", state: .preparingRebalance, type: nil, coordinator: 2),
            GroupListing(groupID: "orders", protocolType: "consumer", state: .stable, type: nil, coordinator: 1),
        ])
        XCTAssertEqual(cluster.requests(16).map(\.node).sorted(), [1, 2, 2], "one ListGroups each, broker 2 asked again")
        XCTAssertEqual(cluster.requests(16).map(\.version), [4, 4, 4])
        await client.close()
    }

    /// A broker refusing ListGroups for good fails the whole listing: a partial one could hide a group.
    func testListGroupsFailsWhenABrokerRefuses() async throws {
        let cluster = try ScriptedGroupCluster(brokers: 2) { request in
            guard request.apiKey == 16 else { return nil }
            return request.node == 2 ? ScriptedAnswers.listGroups(error: 30, []) : ScriptedAnswers.listGroups([("a", "", "Empty")])
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        do {
            let groups = try await client.listGroups()
            XCTFail("listed \(groups)")
        } catch {
            XCTAssertEqual(error.kafkaErrorCode, .groupAuthorizationFailed, "\(error)")
            XCTAssertTrue(error.description.contains("ListGroups at node 2"), error.description)
        }
        await client.close()
    }

    /// A Stable classic consumer group: each member's subscription and assignment are decoded
    /// from the consumer protocol, members sorted by id, partitions sorted; ConsumerGroupDescribe is
    /// never asked. Resetting or deleting it is refused, naming the members.
    func testClassicGroupMembersAreDecoded() async throws {
        let memberB = ScriptedAnswers.ClassicMember(
            memberID: "m-b", clientID: "client-b", host: "/10.0.0.2",
            metadata: ConsumerProtocolSubscription(topics: ["payments", "orders"]).encoded(version: 1),
            assignment: ConsumerProtocolAssignment(assignedPartitions: [.init(topic: "payments", partitions: [1, 0]),
                                                                         .init(topic: "orders", partitions: [2])]).encoded(version: 0))
        let memberA = ScriptedAnswers.ClassicMember(
            memberID: "m-a", clientID: "client-a", host: "/10.0.0.1",
            metadata: ConsumerProtocolSubscription(topics: ["orders"]).encoded(version: 3),
            assignment: ConsumerProtocolAssignment(assignedPartitions: [.init(topic: "orders", partitions: [1, 0])]).encoded(version: 3))
        let cluster = try ScriptedGroupCluster(brokers: 2, coordinator: 2) { request in
            switch request.apiKey {
            case 15: ScriptedAnswers.describeGroups(groupID: "g", state: "Stable", protocolType: "consumer",
                                                    protocolData: "cooperative-sticky", members: [memberB, memberA])
            default: nil
            }
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        let d = try await client.describeGroup("g")
        XCTAssertEqual(d, GroupDescription(
            groupID: "g", state: .stable, type: .classic, protocolType: "consumer", protocolName: "cooperative-sticky",
            coordinator: 2, members: [
                GroupMemberDescription(memberID: "m-a", clientID: "client-a", host: "/10.0.0.1",
                                       assignment: [tp("orders", 0), tp("orders", 1)], subscribedTopics: ["orders"]),
                GroupMemberDescription(memberID: "m-b", clientID: "client-b", host: "/10.0.0.2",
                                       assignment: [tp("orders", 2), tp("payments", 0), tp("payments", 1)],
                                       subscribedTopics: ["orders", "payments"]),
            ]))
        XCTAssertEqual(cluster.requests(15).map(\.node), [2], "asked at the coordinator")
        XCTAssertEqual(cluster.requests(15).first?.groupIDs, ["g"])
        XCTAssertTrue(cluster.requests(69).isEmpty, "a live classic group needs no ConsumerGroupDescribe")

        do {
            try await client.resetGroupOffsets("g", topic: "orders", to: .latest)
            XCTFail("reset an active group")
        } catch {
            XCTAssertEqual(error.code, .groupNotEmpty)
            XCTAssertEqual(error.description, "cannot reset offsets of group 'g': it is Stable with 2 members (m-a, m-b); stop its consumers first")
        }
        do {
            try await client.deleteGroup("g")
            XCTFail("deleted an active group")
        } catch {
            XCTAssertEqual(error.code, .groupNotEmpty)
        }
        XCTAssertTrue(cluster.requests(42).isEmpty, "refused before asking the coordinator")
        await client.close()
    }

    /// Assignment bytes that do not decode fail the description with `malformedResponse` naming the member.
    func testUndecodableAssignmentIsMalformed() async throws {
        let cluster = try ScriptedGroupCluster(brokers: 1) { request in
            guard request.apiKey == 15 else { return nil }
            return ScriptedAnswers.describeGroups(groupID: "g", state: "Stable", protocolType: "consumer", protocolData: "range",
                                                  members: [.init(memberID: "m-1", assignment: [0, 0, 0, 0, 0, 9])])
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        do {
            let d = try await client.describeGroup("g")
            XCTFail("described \(d)")
        } catch {
            XCTAssertEqual(error.code, .malformedResponse, "\(error)")
            XCTAssertTrue(error.description.contains("assignment of member m-1"), error.description)
        }
        await client.close()
    }

    /// A KIP-848 group looks Dead to DescribeGroups (v0–5; newer coordinators answer
    /// GROUP_ID_NOT_FOUND): ConsumerGroupDescribe describes it, with epochs and target assignments.
    func testKIP848GroupIsDescribedWithConsumerGroupDescribe() async throws {
        let cluster = try ScriptedGroupCluster(brokers: 1) { request in
            switch (request.apiKey, request.groupIDs.first ?? "") {
            case (15, "new"): ScriptedAnswers.describeGroups(groupID: "new", state: "Dead")
            case (15, let id): ScriptedAnswers.describeGroups(error: 69, groupID: id, state: "Dead")
            case (69, "new"):
                ScriptedAnswers.consumerGroupDescribe(
                    groupID: "new", state: "Reconciling", groupEpoch: 7, assignmentEpoch: 6, assignor: "uniform", members: [
                        .init(memberID: "z-2", instanceID: "static-1", epoch: 6, clientID: "c2", host: "/127.0.0.1",
                              topics: ["t"], assignment: [("t", [2, 0])], target: [("t", [0])]),
                        .init(memberID: "a-1", epoch: 7, clientID: "c1", host: "/127.0.0.1",
                              topics: ["t"], assignment: [("t", [1])], target: [("t", [1, 2])]),
                    ])
            case (69, let id): ScriptedAnswers.consumerGroupDescribe(error: 69, groupID: id)
            default: nil
            }
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        let d = try await client.describeGroup("new")
        XCTAssertEqual(d, GroupDescription(
            groupID: "new", state: .reconciling, type: .consumer, protocolType: "consumer", protocolName: "uniform",
            groupEpoch: 7, assignmentEpoch: 6, coordinator: 1, members: [
                GroupMemberDescription(memberID: "a-1", clientID: "c1", host: "/127.0.0.1", assignment: [tp("t", 1)],
                                       targetAssignment: [tp("t", 1), tp("t", 2)], subscribedTopics: ["t"], memberEpoch: 7),
                GroupMemberDescription(memberID: "z-2", instanceID: "static-1", clientID: "c2", host: "/127.0.0.1",
                                       assignment: [tp("t", 0), tp("t", 2)], targetAssignment: [tp("t", 0)],
                                       subscribedTopics: ["t"], memberEpoch: 6),
            ]))
        XCTAssertFalse(d.state.isInactive)

        // Unknown to both APIs: Dead, no members.
        let gone = try await client.describeGroup("gone")
        XCTAssertEqual(gone.state, .dead)
        XCTAssertEqual(gone.members, [])
        XCTAssertEqual(cluster.requests(69).map { $0.groupIDs }, [["new"], ["gone"]])
        await client.close()
    }

    /// The coordinator has the last word: a group that described Empty but gained a member before
    /// DeleteGroups is refused with `groupNotEmpty` (NON_EMPTY_GROUP); an unknown group is
    /// GROUP_ID_NOT_FOUND.
    func testCoordinatorRefusalsOfDeleteGroups() async throws {
        let cluster = try ScriptedGroupCluster(brokers: 1) { request in
            let id = request.groupIDs.first ?? ""
            switch request.apiKey {
            case 15: return ScriptedAnswers.describeGroups(groupID: id, state: "Empty", protocolType: "consumer")
            case 42: return ScriptedAnswers.deleteGroups(id, error: id == "busy" ? 68 : 69)
            default: return nil
            }
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        do {
            try await client.deleteGroup("busy")
            XCTFail("deleted a group the coordinator refused")
        } catch {
            XCTAssertEqual(error.code, .groupNotEmpty)
            XCTAssertEqual(error.kafkaErrorCode, .nonEmptyGroup)
            XCTAssertTrue(error.description.contains("the coordinator says it has members"), error.description)
        }
        do {
            try await client.deleteGroup("unknown")
            XCTFail("deleted an unknown group")
        } catch {
            XCTAssertEqual(error.code, .brokerError)
            XCTAssertEqual(error.kafkaErrorCode, .groupIDNotFound)
        }
        XCTAssertEqual(cluster.requests(42).map { $0.groupIDs }, [["busy"], ["unknown"]])
        await client.close()
    }
}

/// A thread-safe call counter for scripted answers.
private final class Counter: Sendable {
    private let value = Mutex(0)

    /// The number of earlier calls.
    func next() -> Int { value.withLock { v in defer { v += 1 }; return v } }
}
