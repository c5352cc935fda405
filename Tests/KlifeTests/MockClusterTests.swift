import KlifeIO
import Foundation
import Klife
import KlifeProtocol
import Synchronization
import XCTest

/// Topology and fault-injection tests against librdkafka's mock cluster: several real
/// brokers on loopback whose leaders, liveness, latency and errors the test controls
/// (see `MockCluster` and `Tests/interop/mock_cluster.py`).
///
/// Time limits below are safety nets so a broken client fails instead of hanging; no
/// assertion depends on how fast anything happened.
final class MockClusterTests: XCTestCase {
    // MARK: Topology

    /// Three brokers, six partitions spread over them: one produceBatch covering every
    /// partition costs exactly one Produce request per leader broker, and every record lands
    /// at dense offsets that read back in order.
    func testBatchOverSpreadPartitionsIsOneProduceRequestPerLeader() async throws {
        let topic = "spread"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 6)])
        defer { mock.stop() }
        let client = try await connect(mock)

        let metadata = try await client.metadata(topics: [topic])
        XCTAssertEqual(metadata.brokers.count, 3)
        XCTAssertEqual(Set(metadata.brokers.values.map(\.address.description)), Set(mock.bootstrap),
                       "metadata advertises the loopback addresses the client bootstrapped from")
        let leaders = try leaderMap(metadata, topic, partitions: 6)
        let leaderBrokers = Set(leaders.values)
        XCTAssertGreaterThan(leaderBrokers.count, 1, "leaders spread over several brokers: \(leaders)")
        XCTAssertTrue(leaderBrokers.isSubset(of: [1, 2, 3]), "\(leaders)")

        let perPartition = 5
        var records: [ProducerRecord] = []
        for p in 0..<6 { for i in 0..<perPartition { records.append(ProducerRecord(topic: topic, partition: Int32(p), value: "p\(p)-\(i)")) } }
        let before = await client.statistics().requestsSent[.produce] ?? 0
        let results = await client.produceBatch(records)
        let after = await client.statistics().requestsSent[.produce] ?? 0
        XCTAssertEqual(after - before, leaderBrokers.count, "one Produce request per leader broker \(leaderBrokers.sorted())")

        let delivered = try results.map { try $0.get() }
        for p in 0..<6 {
            let offsets = delivered.filter { $0.partition == Int32(p) }.map(\.offset)
            XCTAssertEqual(offsets, (0..<Int64(perPartition)).map { $0 }, "partition \(p): dense offsets in batch order")
            let read = try await readPartition(client, topic, Int32(p))
            XCTAssertEqual(read.map(\.offset), offsets)
            XCTAssertEqual(read.map { $0.valueString ?? "" }, (0..<perPartition).map { "p\(p)-\($0)" })
        }
        await client.close()
    }

    /// Every partition changes leader while 2,000 async records stream in: each record is
    /// reported exactly once, successfully, at a unique offset, and the new leaders serve
    /// exactly the delivered offsets (the mock keeps a partition's log across leader changes).
    func testLeaderMoveMidStreamDeliversEveryRecordExactlyOnce() async throws {
        try await leaderMoveMidStream(reactors: 1)
    }

    /// The same with two reactors: partitions 0 and 1 move to brokers owned by the other
    /// reactor, so their buffered and rejected records must be handed across reactors.
    func testLeaderMoveAcrossReactorsDeliversEveryRecordExactlyOnce() async throws {
        try await leaderMoveMidStream(reactors: 2)
    }

    private func leaderMoveMidStream(reactors: Int) async throws {
        let topic = "moving"
        let partitions: Int32 = 3
        let mock = try MockCluster(brokers: 3, topics: [(topic, partitions)])
        defer { mock.stop() }
        for p in 0..<partitions { try mock.leader(topic, p, broker: p + 1) }
        let client = try await connect(mock) { $0.reactorCount = reactors }
        let initial = try leaderMap(try await client.metadata(topics: [topic]), topic, partitions: Int(partitions))
        XCTAssertEqual(initial, [0: 1, 1: 2, 2: 3])

        let n = 2000
        let outcomes = Locked<[Int: [Result<RecordMetadata, KlifeError>]]>([:])
        func send(_ range: Range<Int>) {
            for i in range {
                client.produce(ProducerRecord(topic: topic, partition: Int32(i % Int(partitions)), value: "r\(i)")) { result in
                    outcomes.withLock { $0[i, default: []].append(result) }
                }
            }
        }
        send(0..<n / 2)
        // Once every partition has records written under its first leader, move every leader
        // (first-half records may still be buffered or in flight) and send the second half
        // while the client's metadata still names the old leaders.
        try await waitUntil("a first delivery on every partition", timeout: .seconds(20)) {
            outcomes.withLock { o in
                Set(o.values.compactMap { try? $0.first?.get().partition }).count == Int(partitions)
            }
        }
        let moved: [Int32: Int32] = [0: 2, 1: 3, 2: 1]
        for (p, broker) in moved { try mock.leader(topic, p, broker: broker) }
        send(n / 2..<n)
        try await waitUntilDrained(client, timeout: .seconds(60))
        await client.flush()

        let all = outcomes.withLock { $0 }
        XCTAssertEqual(all.count, n, "every record reported")
        XCTAssertEqual(all.values.filter { $0.count != 1 }.count, 0, "every record reported exactly once")
        let failures = all.values.flatMap { $0 }.compactMap { r -> String? in
            if case .failure(let e) = r { return e.description } else { return nil }
        }
        XCTAssertEqual(failures, [], "no delivery failed")

        let metadata = try await client.metadata(topics: [topic])
        XCTAssertEqual(try leaderMap(metadata, topic, partitions: Int(partitions)), moved, "client sees the new leaders")
        for p in 0..<partitions {
            var valueAt: [Int64: String] = [:]
            for (i, results) in all where i % Int(partitions) == Int(p) {
                if case .success(let m)? = results.first {
                    XCTAssertEqual(m.partition, p)
                    XCTAssertNil(valueAt[m.offset], "offset \(m.offset) of partition \(p) reported twice")
                    valueAt[m.offset] = "r\(i)"
                }
            }
            let expectedCount = (0..<n).filter { $0 % Int(partitions) == Int(p) }.count
            XCTAssertEqual(valueAt.count, expectedCount, "partition \(p): one unique offset per record")
            XCTAssertEqual(valueAt.keys.sorted(), (0..<Int64(expectedCount)).map { $0 }, "partition \(p): dense offsets")
            let read = try await readPartition(client, topic, p)
            XCTAssertEqual(read.count, expectedCount, "partition \(p) read from its new leader \(moved[p]!)")
            XCTAssertEqual(Set(read.map(\.offset)).count, read.count, "no duplicate offsets in the log")
            XCTAssertEqual(Set(read.map(\.offset)), Set(valueAt.keys), "the log holds exactly the delivered offsets")
            for r in read where valueAt[r.offset] != r.valueString {
                XCTFail("partition \(p) offset \(r.offset): log has \(r.valueString ?? "nil"), delivery said \(valueAt[r.offset] ?? "nothing")")
            }
            // One thread produced them: the log keeps that order, across the move (and the
            // hand-over between reactors).
            let numbers = read.compactMap { $0.valueString.flatMap { Int($0.dropFirst()) } }
            XCTAssertEqual(numbers, numbers.sorted(), "partition \(p): production order kept")
        }
        await client.close()
    }

    // MARK: Injected broker errors

    /// Two NOT_LEADER_OR_FOLLOWER answers are retried (after a metadata refresh) and the
    /// produce succeeds, written once.
    func testInjectedRetriableProduceErrorIsRetried() async throws {
        let topic = "retriable"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))
        XCTAssertTrue(KafkaErrorCode.notLeaderOrFollower.isRetriable)

        let before = await client.statistics().requestsSent[.produce] ?? 0
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.notLeaderOrFollower.rawValue,
                                                                      KafkaErrorCode.notLeaderOrFollower.rawValue])
        let metadata = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "after-errors"))
        let after = await client.statistics().requestsSent[.produce] ?? 0
        XCTAssertEqual(metadata.offset, 1, "rejected attempts wrote nothing")
        XCTAssertEqual(after - before, 3, "two rejected attempts and one accepted")
        let read = try await readPartition(client, topic, 0)
        XCTAssertEqual(read.map { $0.valueString ?? "" }, ["warm", "after-errors"])
        await client.close()
    }

    /// INVALID_RECORD (non-retriable in the library's table) fails the produce at once with
    /// that exact Kafka code; the next produce is unaffected.
    func testInjectedNonRetriableProduceErrorFailsWithItsCode() async throws {
        let topic = "fatal"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))
        XCTAssertFalse(KafkaErrorCode.invalidRecord.isRetriable)

        let before = await client.statistics().requestsSent[.produce] ?? 0
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.invalidRecord.rawValue])
        do {
            let m = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "rejected"))
            XCTFail("produce succeeded despite INVALID_RECORD: \(m)")
        } catch {
            XCTAssertEqual(error.code, .brokerError, error.description)
            XCTAssertEqual(error.kafkaErrorCode, .invalidRecord, error.description)
            XCTAssertFalse(error.isRetriable)
        }
        let after = await client.statistics().requestsSent[.produce] ?? 0
        XCTAssertEqual(after - before, 1, "a non-retriable error is not retried")

        let next = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "next"))
        XCTAssertEqual(next.offset, 1, "the rejected record was not written")
        await client.close()
    }

    /// A broker refusing a record as larger than its limit (MESSAGE_TOO_LARGE) surfaces
    /// as `recordTooLarge` carrying the broker's code, and is not retried.
    func testBrokerMessageTooLargeIsRecordTooLarge() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("limit", 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.messageTooLarge.rawValue])
        do {
            let m = try await client.produce(ProducerRecord(topic: "limit", partition: 0, value: [UInt8](repeating: 1, count: 5000)))
            XCTFail("produce succeeded despite MESSAGE_TOO_LARGE: \(m)")
        } catch {
            XCTAssertEqual(error.code, .recordTooLarge, error.description)
            XCTAssertEqual(error.kafkaErrorCode, .messageTooLarge)
        }
        await client.close()
    }

    // MARK: Broker failures

    /// The leader goes down with a record on its way; when it comes back the record is
    /// delivered by a retry, once.
    func testRecordForDownedLeaderIsDeliveredWhenItComesBack() async throws {
        let topic = "downup"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.leader(topic, 0, broker: 2)
        let client = try await connect(mock)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))

        try mock.down(2)
        let outcome = Locked<[Result<RecordMetadata, KlifeError>]>([])
        let delivered = expectation(description: "delivery report")
        client.produce(ProducerRecord(topic: topic, partition: 0, value: "survivor")) { result in
            outcome.withLock { $0.append(result) }
            delivered.fulfill()
        }
        try await Task.sleep(for: .seconds(1))
        // While the only leader refuses connections nothing can have been delivered.
        let early = outcome.withLock { $0 }
        XCTAssertTrue(early.isEmpty, "reported while the leader was down: \(early)")
        try mock.up(2)
        await fulfillment(of: [delivered], timeout: 25)

        let results = outcome.withLock { $0 }
        XCTAssertEqual(results.count, 1)
        let metadata = try XCTUnwrap(results.first).get()
        XCTAssertEqual(metadata.offset, 1)
        let read = try await readPartition(client, topic, 0)
        XCTAssertEqual(read.map { $0.valueString ?? "" }, ["warm", "survivor"])
        await client.close()
    }

    /// With the leader kept down the record fails once its delivery timeout passes, with a
    /// typed error, and the client works again once the broker is back.
    func testRecordForDeadLeaderFailsAfterDeliveryTimeout() async throws {
        let topic = "dead"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.leader(topic, 0, broker: 3)
        let client = try await connect(mock) { $0.producer.deliveryTimeout = .seconds(2) }
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))

        try mock.down(3)
        let allowed: Set<KlifeError.Code> = [.timedOut, .connectionFailed]
        do {
            let m = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "lost"))
            XCTFail("delivered to a broker that is down: \(m)")
        } catch {
            XCTAssertTrue(allowed.contains(error.code), "\(error.code): \(error)")
            XCTAssertTrue(error.isRetriable, "\(error)")
        }
        try mock.up(3)
        let back = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "back"))
        XCTAssertEqual(back.offset, 1)
        await client.close()
    }

    /// A leader slower than requestTimeout fails the produce with `timedOut` instead of
    /// hanging; once it is fast again the same client produces normally.
    func testSlowLeaderTimesOutTypedThenRecovers() async throws {
        let topic = "slow"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.leader(topic, 0, broker: 1)
        let client = try await connect(mock) {
            $0.requestTimeout = .seconds(1)
            $0.producer.deliveryTimeout = .milliseconds(1500)
        }
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "warm"))

        try mock.rtt(1, ms: 3000)
        do {
            let m = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "slow"))
            XCTFail("produce succeeded although every response takes 3 s: \(m)")
        } catch {
            XCTAssertEqual(error.code, .timedOut, error.description)
        }
        try mock.rtt(1, ms: 0)
        let fast = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "fast"))
        // The timed-out attempt may still have been appended by the broker (its outcome was
        // unknown to the client), so only the last record's content is checked.
        XCTAssertGreaterThanOrEqual(fast.offset, 1)
        let last = try await readPartition(client, topic, 0).last
        XCTAssertEqual(last?.offset, fast.offset)
        XCTAssertEqual(last?.valueString, "fast")
        await client.close()
    }

    // MARK: Reactors

    /// Two reactors share three brokers (broker connections split by node id): a batch over
    /// every partition still leaves as one request per leader and reads back intact.
    func testTwoReactorsAgainstThreeBrokers() async throws {
        let topic = "reactors"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 6)])
        defer { mock.stop() }
        let client = try await connect(mock) { $0.reactorCount = 2 }
        let leaders = try leaderMap(try await client.metadata(topics: [topic]), topic, partitions: 6)
        XCTAssertGreaterThan(Set(leaders.values).count, 1, "\(leaders)")

        let perPartition = 20
        var records: [ProducerRecord] = []
        for i in 0..<perPartition { for p in 0..<6 { records.append(ProducerRecord(topic: topic, partition: Int32(p), key: "k\(i)", value: "p\(p)-\(i)")) } }
        let before = await client.statistics().requestsSent[.produce] ?? 0
        let results = await client.produceBatch(records)
        let after = await client.statistics().requestsSent[.produce] ?? 0
        XCTAssertEqual(after - before, Set(leaders.values).count, "one Produce request per leader broker")
        let delivered = try results.map { try $0.get() }
        for p in 0..<6 {
            XCTAssertEqual(delivered.filter { $0.partition == Int32(p) }.map(\.offset), (0..<Int64(perPartition)).map { $0 })
            let read = try await readPartition(client, topic, Int32(p))
            XCTAssertEqual(read.map { $0.valueString ?? "" }, (0..<perPartition).map { "p\(p)-\($0)" })
            XCTAssertEqual(read.map { $0.keyString ?? "" }, (0..<perPartition).map { "k\($0)" })
        }
        await client.close()
    }

    // MARK: Handshake

    /// librdkafka's mock brokers speak ApiVersions only up to v2 and answer our v3 with
    /// UNSUPPORTED_VERSION in a body that is not in the v0 layout KIP-511 prescribes. The
    /// client must still step down to an older ApiVersions and connect (as librdkafka and
    /// the Java client do) instead of failing with a malformed-response error.
    func testHandshakeFallsBackWhenUnsupportedVersionAnswerIsNotV0Shaped() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("raw", 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        let metadata = try await client.produce(ProducerRecord(topic: "raw", partition: 0, value: "x"))
        XCTAssertEqual(metadata.offset, 0)
        await client.close()
    }

    // MARK: Helpers

    private func connect(_ mock: MockCluster,
                         _ configure: (inout KlifeConfiguration) -> Void = { _ in }) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.clientID = "klife-mock-tests"
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(3)
        config.producer.deliveryTimeout = .seconds(20)
        config.producer.retryBackoff = .milliseconds(50)
        configure(&config)
        return try await KlifeClient.connect(config)
    }

    /// Partition index to leader node id; fails when a partition has no leader.
    private func leaderMap(_ metadata: ClusterMetadata, _ topic: String, partitions: Int) throws -> [Int32: Int32] {
        let t = try XCTUnwrap(metadata.topics[topic], "topic \(topic) missing from metadata")
        XCTAssertEqual(t.partitions.count, partitions)
        var map: [Int32: Int32] = [:]
        for p in t.partitions {
            XCTAssertGreaterThanOrEqual(p.leaderID, 0, "partition \(p.partition) has no leader")
            map[p.partition] = p.leaderID
        }
        return map
    }

    /// Every record of one partition, read with `fetch` from the leader the client knows.
    private func readPartition(_ client: KlifeClient, _ topic: String, _ partition: Int32) async throws -> [ConsumerRecord] {
        var records: [ConsumerRecord] = []
        var offset: Int64 = 0
        for _ in 0..<10_000 {
            let result = try await client.fetch(topic: topic, partition: partition, offset: offset)
            records += result.records
            offset = result.nextOffset
            if offset >= result.highWatermark || result.records.isEmpty { break }
        }
        return records
    }

    /// Polls `condition` until it holds; fails (instead of hanging) after `timeout`.
    private func waitUntil(_ what: String, timeout: Duration, _ condition: () -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            if clock.now >= deadline {
                XCTFail("timed out waiting for \(what)")
                throw MockClusterError(description: "timed out waiting for \(what)")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Waits until no record is pending; fails (instead of hanging) after `timeout`.
    private func waitUntilDrained(_ client: KlifeClient, timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while client.pendingRecordCount > 0 {
            if clock.now >= deadline {
                XCTFail("\(client.pendingRecordCount) records still pending after \(timeout)")
                throw MockClusterError(description: "records never completed")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
