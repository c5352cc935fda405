import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import XCTest

/// A share consumer read by a task of its own: every record it is given, in arrival order
/// (duplicates kept), with its delivery count; `decide` says how each is acknowledged (`nil`:
/// left to the acknowledgement mode).
final class ShareReader: Sendable {
    let consumer: KlifeShareConsumer
    /// (offset, delivery count) of every record given, in arrival order.
    let received = Locked<[(offset: Int64, deliveries: Int)]>([])
    let failure = Locked<KlifeError?>(nil)
    private let task = Locked<Task<Void, Never>?>(nil)

    init(_ consumer: KlifeShareConsumer,
         decide: (@Sendable (ShareRecord) -> ShareAcknowledgement?)? = nil) {
        self.consumer = consumer
        let task = Task { [received, failure] in
            do {
                for try await batch in consumer.batches {
                    for record in batch {
                        received.withLock { $0.append((record.offset, record.deliveryCount)) }
                        if let type = decide?(record) { try consumer.acknowledge(record, type) }
                    }
                }
            } catch {
                failure.withLock { $0 = error as? KlifeError ?? .cancelled }
            }
        }
        self.task.withLock { $0 = task }
    }

    var offsets: [Int64] { received.withLock { $0.map(\.offset) } }

    /// Closes the consumer and waits for the reading task.
    func close() async {
        await consumer.close()
        await task.withLock { $0 }?.value
    }
}

final class ShareGroupTests: XCTestCase {
    // MARK: On the mock cluster

    private func connect(_ mock: MockCluster) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.clientID = "klife-share-tests"
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        return try await KlifeClient.connect(config)
    }

    /// A mock whose share groups start at the earliest offset, heartbeat every 200 ms and
    /// hold records for `lockMs`.
    private func shareMock(topics: [(String, Int32)], brokers: Int = 3, lockMs: Int = 30_000) throws -> MockCluster {
        let mock = try MockCluster(brokers: brokers, topics: topics)
        try mock.shareGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 200, lockDurationMs: lockMs)
        try mock.shareOffsetReset(earliest: true)
        return mock
    }

    private func settings(group: String, topic: String, mode: ShareConsumerConfiguration.AcknowledgementMode,
                          maxRecords: Int = 20) -> ShareConsumerConfiguration {
        var settings = ShareConsumerConfiguration(groupID: group, topics: [topic])
        settings.acknowledgement = mode
        settings.maxRecords = maxRecords
        settings.fetchMaxWait = .milliseconds(100)
        return settings
    }

    private func produce(_ client: KlifeClient, topic: String, count: Int, from start: Int = 0) async {
        for i in start..<(start + count) { client.produce(ProducerRecord(topic: topic, partition: 0, value: "r\(i)")) { _ in } }
        await client.flush()
    }

    func testTwoConsumersOnOnePartitionTogetherReadEveryRecordOnce() async throws {
        let topic = "share-two"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 100)
        let a = ShareReader(try client.shareConsumer(settings(group: "g-two", topic: topic, mode: .implicit)))
        let b = ShareReader(try client.shareConsumer(settings(group: "g-two", topic: topic, mode: .implicit)))
        try await eventuallyAssignBoth(mock, group: "g-two", topic: topic, [a, b])
        await eventually("the first 100 records read", within: .seconds(60)) { Set(a.offsets + b.offsets).count == 100 }
        // Both members fetch the one partition now: records are spread over them.
        let total = await produceUntilEachReadSome(client, topic: topic, from: 100, [{ a.offsets }, { b.offsets }])
        await a.close()
        await b.close()
        XCTAssertNil(a.failure.withLock { $0 })
        XCTAssertNil(b.failure.withLock { $0 })
        let all = a.offsets + b.offsets
        XCTAssertEqual(all.count, total, "no record delivered twice (a: \(a.offsets.count), b: \(b.offsets.count))")
        XCTAssertEqual(Set(all), Set(0..<Int64(total)))
        XCTAssertTrue(a.received.withLock { $0 }.allSatisfy { $0.deliveries == 1 })
        XCTAssertTrue(b.received.withLock { $0 }.allSatisfy { $0.deliveries == 1 })
        XCTAssertEqual(a.consumer.statistics.accepted + b.consumer.statistics.accepted, total)
        XCTAssertEqual(a.consumer.acquisitionLockTimeout, .seconds(30))
        await client.close()
    }

    /// Produces ten records at a time from offset `from`, each ten read (by any reader) before
    /// the next, until every reader has read one of them. Returns how many records the topic
    /// holds then.
    private func produceUntilEachReadSome(_ client: KlifeClient, topic: String, from start: Int,
                                          _ readers: [@Sendable () -> [Int64]]) async -> Int {
        let produced = Locked(start)
        await eventually("every member read records of the shared partition", within: .seconds(60)) {
            let from = produced.withLock { n in defer { n += 10 }; return n }
            await produce(client, topic: topic, count: 10, from: from)
            await eventually("records up to \(from + 10) read", within: .seconds(30)) {
                Set(readers.flatMap { $0() }).count == from + 10
            }
            return readers.allSatisfy { $0().contains { $0 >= Int64(start) } }
        }
        return produced.withLock { $0 }
    }

    /// Waits until both readers joined, then gives the partition to both.
    private func eventuallyAssignBoth(_ mock: MockCluster, group: String, topic: String, _ readers: [ShareReader]) async throws {
        await eventually("both members joined and share partition 0", within: .seconds(30)) {
            guard (try? mock.shareAssign(group: group, minMembers: readers.count, topic: topic, partitions: [0])) != nil
            else { return false }
            return readers.allSatisfy { $0.consumer.assignment == [TopicPartition(topic: topic, partition: 0)] }
        }
    }

    func testAMixedGroupWithLibrdkafkasShareConsumerReadsEveryRecordOnce() async throws {
        let topic = "share-mixed"
        let mock = try shareMock(topics: [(topic, 1)], brokers: 1)
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 100)
        let ours = ShareReader(try client.shareConsumer(settings(group: "g-mixed", topic: topic, mode: .implicit)))
        let theirs = try RdkafkaShareConsumer(bootstrap: mock.bootstrap.joined(separator: ","), group: "g-mixed",
                                              topic: topic)
        await eventually("both members joined and share partition 0", within: .seconds(60)) {
            (try? mock.shareAssign(group: "g-mixed", minMembers: 2, topic: topic, partitions: [0])) != nil
                && ours.consumer.assignment.count == 1
        }
        await eventually("the first 100 records read", within: .seconds(60)) {
            Set(ours.offsets + theirs.offsets).count == 100
        }
        let total = await produceUntilEachReadSome(client, topic: topic, from: 100, [{ ours.offsets }, { theirs.offsets }])
        await ours.close()
        await theirs.stop()
        XCTAssertNil(ours.failure.withLock { $0 })
        let all = ours.offsets + theirs.offsets
        XCTAssertEqual(all.count, total, "no record read twice (ours \(ours.offsets.count), librdkafka's "
                       + "\(theirs.offsets.count); \(theirs.otherLines.withLock { $0 }))")
        XCTAssertEqual(Set(all), Set(0..<Int64(total)))
        await client.close()
    }

    func testOneShareSessionPerLeaderAndALeaderMoveIsFollowed() async throws {
        let topic = "share-leaders"
        let mock = try shareMock(topics: [(topic, 3)], brokers: 3)  // partition p led by broker p + 1
        defer { mock.stop() }
        let client = try await connect(mock)
        for p in Int32(0)..<3 {
            for i in 0..<20 { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p)-\(i)")) { _ in } }
        }
        await client.flush()
        let values = Locked<[String]>([])
        let consumer = try client.shareConsumer(settings(group: "g-leaders", topic: topic, mode: .implicit))
        let reader = Task {
            for try await batch in consumer.batches { values.withLock { $0 += batch.compactMap(\.valueString) } }
        }
        await eventually("all 60 records read from the three leaders", within: .seconds(60)) {
            values.withLock { Set($0).count } == 60
        }
        try mock.leader(topic, 0, broker: 3)
        for i in 20..<30 { client.produce(ProducerRecord(topic: topic, partition: 0, value: "0-\(i)")) { _ in } }
        await client.flush()
        await eventually("the records produced after the move read from the new leader", within: .seconds(60)) {
            values.withLock { Set($0).count } == 70
        }
        await consumer.close()
        _ = try await reader.value
        XCTAssertEqual(values.withLock { $0.count }, 70, "every record once")
        XCTAssertEqual(consumer.statistics.accepted, 70)
        await client.close()
    }

    func testAFencedMemberRejoinsAndAMovedCoordinatorIsFoundAgain() async throws {
        let topic = "share-fenced"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 10)
        let reader = ShareReader(try client.shareConsumer(settings(group: "g-fenced", topic: topic, mode: .implicit)))
        await eventually("the first ten read", within: .seconds(30)) { Set(reader.offsets).count == 10 }
        XCTAssertGreaterThan(reader.consumer.memberEpoch, 0)
        // FENCED_MEMBER_EPOCH, then NOT_COORDINATOR, then UNKNOWN_MEMBER_ID for the next heartbeats.
        try mock.pushErrors(apiKey: 76, codes: [110, 16, 25])
        try mock.coordinator("group", key: "g-fenced", broker: 2)
        await produce(client, topic: topic, count: 10, from: 10)
        await eventually("the next ten read after rejoining", within: .seconds(30)) { Set(reader.offsets).count == 20 }
        await eventually("rejoined twice and found the coordinator again", within: .seconds(30)) {
            let stats = reader.consumer.statistics
            return stats.rejoins == 2 && stats.coordinatorSearches == 2 && reader.consumer.memberEpoch > 0
        }
        await reader.close()
        XCTAssertNil(reader.failure.withLock { $0 })
        XCTAssertEqual(reader.offsets, Array(0..<20), "every record once, in order")
        XCTAssertEqual(reader.consumer.memberEpoch, -1, "left")
        await client.close()
    }

    func testALeaderThatGoesDownAndComesBackIsReadAgainWithANewSession() async throws {
        let topic = "share-down"
        let mock = try shareMock(topics: [(topic, 1)], brokers: 3)  // partition 0 led by broker 1
        defer { mock.stop() }
        try mock.coordinator("group", key: "g-down", broker: 2)
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 10)
        let reader = ShareReader(try client.shareConsumer(settings(group: "g-down", topic: topic, mode: .implicit)))
        await eventually("the first ten read", within: .seconds(30)) { Set(reader.offsets).count == 10 }
        try mock.down(1)
        await eventually("the session with the leader was lost", within: .seconds(30)) {
            reader.consumer.statistics.sessionsReset >= 1
        }
        try mock.up(1)
        await produce(client, topic: topic, count: 10, from: 10)
        await eventually("the next ten read from the leader back up", within: .seconds(60)) {
            Set(reader.offsets).count == 20
        }
        await reader.close()
        XCTAssertNil(reader.failure.withLock { $0 })
        XCTAssertEqual(Set(reader.offsets), Set(0..<20), "at least once: nothing lost")
        await client.close()
    }

    func testWaitingForAnAssignmentEndsWhenTheTaskIsCancelled() async throws {
        let topic = "share-cancel"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        let holder = try client.shareConsumer(settings(group: "g-cancel", topic: topic, mode: .implicit))
        await eventually("the first member holds the partition", within: .seconds(30)) { holder.assignment.count == 1 }
        // The mock's own assignor gives the one partition to one member only.
        let idle = try client.shareConsumer(settings(group: "g-cancel", topic: topic, mode: .implicit))
        await eventually("the second member joined", within: .seconds(30)) { idle.memberEpoch > 0 }
        XCTAssertEqual(idle.assignment, [])
        let waiting = Task { try await idle.next() }
        waiting.cancel()
        do {
            _ = try await waiting.value
            XCTFail("expected cancelled")
        } catch {
            XCTAssertEqual((error as? KlifeError)?.code, .cancelled)
        }
        await idle.close()
        await holder.close()
        await client.close()
    }

    func testAReleasedRecordComesBackWithDeliveryCountTwo() async throws {
        let topic = "share-release"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 5)
        let released = Locked(false)
        let reader = ShareReader(try client.shareConsumer(settings(group: "g-release", topic: topic, mode: .explicit))) { record in
            if record.offset == 2 && record.deliveryCount == 1 { released.withLock { $0 = true }; return .release }
            return .accept
        }
        await eventually("offset 2 delivered a second time", within: .seconds(30)) {
            reader.received.withLock { $0 }.contains { $0.offset == 2 && $0.deliveries == 2 }
        }
        await reader.close()
        XCTAssertNil(reader.failure.withLock { $0 })
        let received = reader.received.withLock { $0 }
        XCTAssertEqual(received.filter { $0.offset == 2 }.map(\.deliveries), [1, 2])
        XCTAssertEqual(received.filter { $0.offset != 2 }.map(\.offset), [0, 1, 3, 4], "the others once, in order")
        XCTAssertEqual(reader.consumer.statistics.released, 1)
        await client.close()
    }

    func testARejectedRecordNeverComesBack() async throws {
        let topic = "share-reject"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        try mock.shareMaxDeliveries(0)
        await produce(client, topic: topic, count: 3)
        let reader = ShareReader(try client.shareConsumer(settings(group: "g-reject", topic: topic, mode: .explicit))) { record in
            record.offset == 1 ? .reject : .accept
        }
        await eventually("the first three read", within: .seconds(30)) { Set(reader.offsets) == [0, 1, 2] }
        await produce(client, topic: topic, count: 3, from: 3)
        await eventually("the next three read", within: .seconds(30)) { Set(reader.offsets) == Set(0..<6) }
        await reader.close()
        XCTAssertEqual(reader.offsets, [0, 1, 2, 3, 4, 5], "the rejected record was delivered once")
        XCTAssertEqual(reader.consumer.statistics.rejected, 1)
        await client.close()
    }

    func testRecordsHeldByAConsumerThatStopsAreRedeliveredToAnotherAfterTheLockTimesOut() async throws {
        let topic = "share-lock"
        let mock = try shareMock(topics: [(topic, 1)], lockMs: 1000)
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 10)
        // The first member takes a batch and then stops: it never acknowledges, never asks again.
        let stuck = try client.shareConsumer(settings(group: "g-lock", topic: topic, mode: .explicit, maxRecords: 100))
        let held = try await stuck.next()
        XCTAssertEqual(held.map { $0.map(\.offset) }, Array(0..<10))
        XCTAssertEqual(held?.acquisitionLockTimeout, .seconds(1), "the lock the broker granted")
        XCTAssertEqual(stuck.acquisitionLockTimeout, .seconds(1))
        XCTAssertEqual(stuck.heldRecords, 10)
        // The other member holds what it reads (explicit mode, never acknowledging), so the
        // records stay acquired by it.
        let other = ShareReader(try client.shareConsumer(settings(group: "g-lock", topic: topic, mode: .explicit)))
        await eventually("both members joined and share partition 0", within: .seconds(30)) {
            (try? mock.shareAssign(group: "g-lock", minMembers: 2, topic: topic, partitions: [0])) != nil
                && other.consumer.assignment.count == 1
        }
        await eventually("the other member read all ten", within: .seconds(30)) { Set(other.offsets) == Set(0..<10) }
        XCTAssertTrue(other.received.withLock { $0 }.allSatisfy { $0.deliveries == 2 }, "\(other.received.withLock { $0 })")
        // The stuck member's locks ended and the other holds the records: the broker refuses
        // the stuck member's acknowledgements.
        if let held { stuck.acknowledge(held, .accept) }
        try await stuck.commit()
        XCTAssertEqual(stuck.statistics.acknowledgementErrors, 1)
        await stuck.close()
        await other.close()
        XCTAssertEqual(other.offsets.count, 10)
        await client.close()
    }

    func testImplicitModeAcceptsTheRecordsOfABatchWhenTheNextIsAskedFor() async throws {
        let topic = "share-implicit"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 10)
        let consumer = try client.shareConsumer(settings(group: "g-implicit", topic: topic, mode: .implicit, maxRecords: 5))
        var offsets: [Int64] = []
        while offsets.count < 10, let batch = try await consumer.next() {
            XCTAssertLessThanOrEqual(batch.count, 5, "bounded batches")
            XCTAssertEqual(consumer.statistics.accepted, offsets.count, "the earlier batches are accepted")
            offsets += batch.map(\.offset)
        }
        XCTAssertEqual(offsets, Array(0..<10))
        await consumer.close()
        XCTAssertEqual(consumer.statistics.accepted, 10, "close accepts the last batch")
        XCTAssertEqual(consumer.heldRecords, 0)
        await client.close()
    }

    func testExplicitModeLeavesUnacknowledgedRecordsHeld() async throws {
        let topic = "share-explicit"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 10)
        let consumer = try client.shareConsumer(settings(group: "g-explicit", topic: topic, mode: .explicit, maxRecords: 5))
        var batches: [ShareBatch] = []
        while batches.reduce(0, { $0 + $1.count }) < 10, let batch = try await consumer.next() { batches.append(batch) }
        XCTAssertEqual(consumer.statistics.accepted, 0)
        XCTAssertEqual(consumer.heldRecords, 10, "\(consumer.statistics)")
        let first = try XCTUnwrap(batches.first?.first)
        try consumer.acknowledge(first, .accept)
        XCTAssertThrowsError(try consumer.acknowledge(first, .reject)) { error in
            XCTAssertEqual((error as? KlifeError)?.code, .invalidArgument)
        }
        for batch in batches { consumer.acknowledge(batch, .accept) }
        try await consumer.commit()
        XCTAssertEqual(consumer.statistics.accepted, 10)
        XCTAssertEqual(consumer.statistics.acknowledgementErrors, 0)
        XCTAssertEqual(consumer.heldRecords, 0)
        await consumer.close()
        await client.close()
    }

    func testRecordsAcknowledgedWhileAFetchIsInFlightAreNotDeliveredAgain() async throws {
        let topic = "share-inflight"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 5)
        let consumer = try client.shareConsumer(settings(group: "g-inflight", topic: topic, mode: .explicit))
        let first = try await consumer.next()
        XCTAssertEqual(first?.map(\.offset), Array(0..<5))
        // The next fetch goes out with nothing to acknowledge; the acknowledgements are made
        // while it (or the ones after it) wait at the broker, which still lists 0-4 as held.
        let second = Task { try await consumer.next() }
        await eventually("a fetch is in flight") { consumer.statistics.recordsDelivered == 5 }
        if let first { consumer.acknowledge(first, .accept) }
        await produce(client, topic: topic, count: 5, from: 5)
        var later = try await second.value.map { [$0] } ?? []
        while later.reduce(0, { $0 + $1.count }) < 5, let batch = try await consumer.next() { later.append(batch) }
        XCTAssertEqual(later.flatMap { $0.map(\.offset) }, Array(5..<10), "0-4 were not handed out again")
        for batch in later { consumer.acknowledge(batch, .accept) }
        try await consumer.commit()
        XCTAssertEqual(consumer.statistics.accepted, 10)
        XCTAssertEqual(consumer.statistics.acknowledgementErrors, 0)
        await consumer.close()
        await client.close()
    }

    func testRecordsDeliveredTooOftenGoToTheDeadLetterTopic() async throws {
        let topic = "share-dlq-in"
        let mock = try shareMock(topics: [(topic, 1), ("share-dlq", 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        try mock.shareMaxDeliveries(0)
        await produce(client, topic: topic, count: 2)
        var settings = settings(group: "g-dlq", topic: topic, mode: .explicit)
        settings.deadLetter = .init(topic: "share-dlq", maxDeliveryCount: 2)
        // Offset 0 always fails and is released; offset 1 is accepted.
        let reader = ShareReader(try client.shareConsumer(settings)) { $0.offset == 0 ? .release : .accept }
        await eventually("offset 0 moved to the dead-letter topic", within: .seconds(30)) {
            reader.consumer.statistics.deadLettered == 1
        }
        await reader.close()
        XCTAssertEqual(reader.received.withLock { $0 }.filter { $0.offset == 0 }.map(\.deliveries), [1, 2],
                       "handed out twice, then moved instead of a third time")
        let moved = try await client.fetch(topic: "share-dlq", partition: 0, offset: 0).records
        XCTAssertEqual(moved.map(\.valueString), ["r0"])
        XCTAssertEqual(moved.first?.headers.first { $0.key == "klife-share-deliveries" }?.value, Array("3".utf8))
        await client.close()
    }

    func testARateLimitHoldsTheConsumerBackBeforeItFetches() async throws {
        let topic = "share-rate"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 10)
        var settings = settings(group: "g-rate", topic: topic, mode: .implicit, maxRecords: 5)
        // Five records at once, then one every 100 ms.
        settings.rateLimit = ConsumerRateLimit(recordsPerSecond: 10, burst: .milliseconds(500))
        let consumer = try client.shareConsumer(settings)
        var offsets: [Int64] = []
        while offsets.count < 10, let batch = try await consumer.next() { offsets += batch.map(\.offset) }
        XCTAssertEqual(offsets, Array(0..<10))
        XCTAssertGreaterThan(consumer.statistics.flowControlWaits, 0, "the second batch waited for the bucket")
        await consumer.close()
        await client.close()
    }

    func testDownstreamPermitsAreTakenBeforeFetchingAndGivenBackOnTheNextBatch() async throws {
        let topic = "share-permits"
        let mock = try shareMock(topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        await produce(client, topic: topic, count: 10)
        let permits = GatedPermits()
        var settings = settings(group: "g-permits", topic: topic, mode: .implicit, maxRecords: 5)
        settings.downstream = permits
        let consumer = try client.shareConsumer(settings)
        let first = Task { try await consumer.next() }
        await eventually("the consumer asked for a permit") { permits.acquires == 1 }
        XCTAssertEqual(consumer.heldRecords, 0, "nothing fetched (and locked) while no permit is granted")
        permits.open()
        let batch = try await first.value
        XCTAssertEqual(batch?.map(\.offset), Array(0..<5))
        XCTAssertEqual(permits.releases, 0, "the batch holds its permit")
        let second = try await consumer.next()
        XCTAssertEqual(second?.map(\.offset), Array(5..<10))
        XCTAssertEqual(permits.releases, 1, "asking for the next batch gave the first one's permit back")
        XCTAssertEqual(permits.acquires, 2)
        await consumer.close()
        XCTAssertEqual(permits.releases, 2, "close gives the last permit back")
        await client.close()
    }

    func testABrokerWithoutShareGroupsGivesAnErrorNamingTheMissingApi() async throws {
        let topic = "share-none"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.apiVersions(76, 0...0)  // only the early-access heartbeat, which klife does not speak
        let client = try await connect(mock)
        let consumer = try client.shareConsumer(settings(group: "g-none", topic: topic, mode: .implicit))
        do {
            _ = try await consumer.next()
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.code, .unsupportedVersion)
            XCTAssertTrue("\(error)".contains("ShareGroupHeartbeat"), "\(error)")
        }
        await consumer.close()
        await client.close()
    }
}


/// Downstream permits that are all refused until ``open()``, counting acquisitions and releases.
final class GatedPermits: DownstreamPermits {
    private struct State {
        var opened = false
        var acquires = 0
        var releases = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Locked(State())

    var acquires: Int { state.withLock { $0.acquires } }
    var releases: Int { state.withLock { $0.releases } }

    func acquire() async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { s -> Bool in
                s.acquires += 1
                if !s.opened { s.waiting.append(continuation) }
                return s.opened
            }
            if granted { continuation.resume() }
        }
    }

    func release() { state.withLock { $0.releases += 1 } }

    func open() {
        let waiting = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.opened = true
            defer { s.waiting = [] }
            return s.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}
