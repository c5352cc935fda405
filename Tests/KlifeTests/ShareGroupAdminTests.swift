import Foundation
import Klife
import KlifeProtocol
import XCTest

/// `describeShareGroup` against scripted coordinators (librdkafka's mock does not speak
/// ShareGroupDescribe).
final class ShareGroupAdminTests: XCTestCase {
    private func connect(_ cluster: ScriptedGroupCluster) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: [cluster.bootstrap[0]])
        config.producer.idempotent = false
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(3)
        return try await KlifeClient.connect(config)
    }

    /// A ShareGroupDescribe v1 body with one group.
    private static func describe(error: Int16 = 0, groupID: String, state: String = "",
                                 members: [(id: String, topic: String, partitions: [Int32])] = []) -> [UInt8] {
        var w = ByteWriter()
        w.writeInt32(0)  // throttle
        w.writeArrayCount(1, flexible: true)
        w.writeInt16(error)
        w.writeCompactNullableString(error == 0 ? nil : "refused")
        w.writeCompactString(groupID)
        w.writeCompactString(state)
        w.writeInt32(4)  // group epoch
        w.writeInt32(4)  // assignment epoch
        w.writeCompactString("simple")
        w.writeArrayCount(members.count, flexible: true)
        for m in members {
            w.writeCompactString(m.id)
            w.writeCompactNullableString(nil)  // rack
            w.writeInt32(4)
            w.writeCompactString("client-\(m.id)")
            w.writeCompactString("/127.0.0.1")
            w.writeArrayCount(1, flexible: true)
            w.writeCompactString(m.topic)
            w.writeArrayCount(1, flexible: true)  // assignment: one topic
            w.writeUUID(KafkaUUID(high: 1, low: 2))
            w.writeCompactString(m.topic)
            w.writeArrayCount(m.partitions.count, flexible: true)
            for p in m.partitions { w.writeInt32(p) }
            w.writeEmptyTaggedFields()
            w.writeEmptyTaggedFields()  // assignment
            w.writeEmptyTaggedFields()  // member
        }
        w.writeInt32(Int32.min)
        w.writeEmptyTaggedFields()  // group
        w.writeEmptyTaggedFields()
        return w.bytes
    }

    func testDescribeShareGroupListsMembersSharingAPartition() async throws {
        let cluster = try ScriptedGroupCluster(brokers: 2, coordinator: 2) { request in
            guard request.apiKey == 77 else { return nil }
            return Self.describe(groupID: "jobs", state: "Stable",
                                 members: [("m-b", "jobs", [0, 1]), ("m-a", "jobs", [0])])
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        let group = try await client.describeShareGroup("jobs")
        XCTAssertEqual(group.type, .share)
        XCTAssertEqual(group.state, .stable)
        XCTAssertEqual(group.protocolName, "simple")
        XCTAssertEqual(group.groupEpoch, 4)
        XCTAssertEqual(group.coordinator, 2)
        XCTAssertEqual(group.members.map(\.memberID), ["m-a", "m-b"])
        XCTAssertEqual(group.members.map(\.assignment), [
            [TopicPartition(topic: "jobs", partition: 0)],
            [TopicPartition(topic: "jobs", partition: 0), TopicPartition(topic: "jobs", partition: 1)],
        ], "two members hold partition 0")
        XCTAssertEqual(group.members.first?.subscribedTopics, ["jobs"])
        XCTAssertEqual(cluster.requests(77).map(\.node), [2], "asked at the coordinator")
        XCTAssertEqual(cluster.requests(77).first?.groupIDs, ["jobs"])
        await client.close()
    }

    func testAnUnknownShareGroupIsDeadAndARefusalIsATypedError() async throws {
        let cluster = try ScriptedGroupCluster(brokers: 1) { request in
            guard request.apiKey == 77 else { return nil }
            let id = request.groupIDs.first ?? ""
            return id == "gone" ? Self.describe(error: 69, groupID: id) : Self.describe(error: 30, groupID: id)
        }
        defer { cluster.stop() }
        let client = try await connect(cluster)
        let gone = try await client.describeShareGroup("gone")
        XCTAssertEqual(gone.state, .dead)
        XCTAssertEqual(gone.members, [])
        do {
            _ = try await client.describeShareGroup("secret")
            XCTFail("expected GROUP_AUTHORIZATION_FAILED")
        } catch {
            XCTAssertEqual(error.kafkaErrorCode, .groupAuthorizationFailed)
        }
        do {
            _ = try await client.describeShareGroup("")
            XCTFail("expected invalidArgument")
        } catch {
            XCTAssertEqual(error.code, .invalidArgument)
        }
        await client.close()
    }
}
