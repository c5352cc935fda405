import Dispatch
import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// With several reactors, a partition whose leader moves to a broker owned by another reactor
/// keeps its order: records chosen with the old metadata (still in the old owner's ring) are
/// written before records produced after the move, which reach the new owner directly.
final class ReactorHandoffTests: XCTestCase {
    private func connect(_ mock: MockCluster) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.reactorCount = 2
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(3)
        config.producer.deliveryTimeout = .seconds(30)
        config.producer.retryBackoff = .milliseconds(20)
        return try await KlifeClient.connect(config)
    }

    /// The interleaving, forced: the old owner's reactor is stopped (a task blocks it) while
    /// 100 records are produced to the partition, the leader moves to the other reactor's
    /// broker and the new metadata is installed, and 100 more records are produced. Only then
    /// may the old owner run: the new owner must hold the later records until the earlier ones,
    /// forwarded by the old owner, are in front of them.
    func testRecordsChosenBeforeALeaderMoveAcrossReactorsAreWrittenFirst() async throws {
        let topic = "handoff"
        let mock = try MockCluster(brokers: 2, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.leader(topic, 0, broker: 1)
        let client = try await connect(mock)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))
        let oldOwner = client.hubs[ReactorHub.index(forNode: 1, reactorCount: 2)]
        XCTAssertNotIdentical(oldOwner, client.hubs[ReactorHub.index(forNode: 2, reactorCount: 2)])

        let gate = DispatchSemaphore(value: 0)
        let blocked = DispatchSemaphore(value: 0)
        oldOwner.reactor.submit {
            blocked.signal()
            gate.wait()
        }
        blocked.wait()
        let failures = KlifeIO.Locked<[String]>([])
        func send(_ label: String, _ range: Range<Int>) {
            for i in range {
                client.produce(ProducerRecord(topic: topic, partition: 0, value: "\(label)\(i)")) { result in
                    if case .failure(let e) = result { failures.withLock { $0.append("\(label)\(i): \(e)") } }
                }
            }
        }
        send("before-", 0..<100)
        try mock.leader(topic, 0, broker: 2)
        var moved = client.metadataStore.snapshot.metadata
        moved.topics[topic]!.partitions[0].leaderID = 2
        client.install(moved)
        send("after-", 0..<100)
        // Give the new owner every chance to send the later records first.
        try await Task.sleep(for: .milliseconds(300))
        gate.signal()
        await client.flush()
        XCTAssertEqual(failures.withLock { $0 }, [])

        let values = try await client.allRecords(topic: topic, partition: 0).compactMap(\.valueString)
        let expected = ["warm"] + (0..<100).map { "before-\($0)" } + (0..<100).map { "after-\($0)" }
        XCTAssertEqual(values.count, expected.count, "every record once")
        XCTAssertEqual(values, expected, "records chosen before the move come first, each side in order")
        await client.close()
    }

    /// A partition that loses its leader goes to reactor 0 (where producing threads send its
    /// records while no leader is known). Forced: records wait (linger) in the old owner's sink
    /// when metadata without a leader arrives; more are produced then (they reach reactor 0
    /// directly); the old owner is stopped while the new leader, on reactor 0's broker, is
    /// installed, and more records follow. Records parked on the old owner instead of
    /// reactor 0 would be routed after all of those.
    func testRecordsOfAPartitionWithoutLeaderWaitOnOneReactorInOrder() async throws {
        let topic = "leaderless"
        let mock = try MockCluster(brokers: 2, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.leader(topic, 0, broker: 1)
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.reactorCount = 2
        config.producer.linger = .milliseconds(800)
        config.producer.deliveryTimeout = .seconds(30)
        config.producer.retryBackoff = .milliseconds(20)
        let client = try await KlifeClient.connect(config)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))
        let oldOwner = client.hubs[ReactorHub.index(forNode: 1, reactorCount: 2)]
        XCTAssertNotIdentical(oldOwner, client.hubs[TopicRoute.leaderlessOwner])
        XCTAssertIdentical(client.hubs[ReactorHub.index(forNode: 2, reactorCount: 2)],
                           client.hubs[TopicRoute.leaderlessOwner])
        client.pauseMetadataRefreshes(true)

        let failures = KlifeIO.Locked<[String]>([])
        func send(_ label: String) {
            for i in 0..<50 {
                client.produce(ProducerRecord(topic: topic, partition: 0, value: "\(label)\(i)")) { result in
                    if case .failure(let e) = result { failures.withLock { $0.append("\(label)\(i): \(e)") } }
                }
            }
        }
        func install(leader: Int32) {
            var metadata = client.metadataStore.snapshot.metadata
            metadata.topics[topic]!.partitions[0].leaderID = leader
            client.install(metadata)
        }
        send("before-")
        try await Task.sleep(for: .milliseconds(150))  // routed into broker 1's sink, lingering
        try mock.leader(topic, 0, broker: 2)
        install(leader: -1)
        send("mid-")
        try await Task.sleep(for: .milliseconds(150))
        let gate = DispatchSemaphore(value: 0)
        let blocked = DispatchSemaphore(value: 0)
        oldOwner.reactor.submit {
            blocked.signal()
            gate.wait()
        }
        blocked.wait()
        install(leader: 2)
        send("after-")
        try await Task.sleep(for: .milliseconds(300))
        gate.signal()
        client.pauseMetadataRefreshes(false)
        await client.flush()
        XCTAssertEqual(failures.withLock { $0 }, [])

        let values = try await client.allRecords(topic: topic, partition: 0).compactMap(\.valueString)
        let expected = ["warm"] + ["before-", "mid-", "after-"].flatMap { label in (0..<50).map { "\(label)\($0)" } }
        XCTAssertEqual(values.count, expected.count, "every record once")
        XCTAssertEqual(values, expected, "production order across the leaderless spell")
        await client.close()
    }
}
