import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import XCTest

/// Fetch sessions (KIP-227) end to end. Neither test broker has sessions of its own, measured
/// here: Tansu answers session id 0 to a request for one, librdkafka's mock cluster echoes
/// whatever id it is sent. So the session path runs against the mock cluster behind
/// ``FetchSessionProxy`` (the broker side of sessions over the mock's data), and the
/// sessionless path against Tansu and the bare mock.
final class FetchSessionConsumerTests: XCTestCase {
    // MARK: What the brokers do with sessions

    func testTansuAndTheMockClusterOpenNoSession() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "fsprobe")
        let node = try await client.leader(topic: topic, partition: 0)
        let tansu = try await probe(client, topic: topic, node: node, sessionID: 0)
        XCTAssertEqual(tansu.errorCode, 0)
        XCTAssertEqual(tansu.sessionID, 0, "Tansu creates no fetch session")
        await client.close()

        let mock = try MockCluster(brokers: 1, topics: [("probe", 1)])
        defer { mock.stop() }
        let mockClient = try await KlifeClient.connect(KlifeConfiguration(bootstrapServers: mock.bootstrap))
        _ = try await mockClient.leader(topic: "probe", partition: 0)
        let opened = try await probe(mockClient, topic: "probe", node: 1, sessionID: 0)
        XCTAssertEqual(opened.sessionID, 0, "the mock creates no fetch session")
        let echoed = try await probe(mockClient, topic: "probe", node: 1, sessionID: 77)
        XCTAssertEqual(echoed.sessionID, 77, "the mock echoes the id it is sent")
        await mockClient.close()
    }

    /// A full Fetch asking for a new session (epoch 0), naming `sessionID`.
    private func probe(_ client: KlifeClient, topic: String, node: Int32, sessionID: Int32) async throws -> FetchResponse {
        let topicID = client.metadataStore.snapshot.metadata.topics[topic]?.topicID ?? .zero
        let request = FetchRequest(maxWaitMs: 0, sessionID: sessionID, sessionEpoch: 0, topics: [
            .init(name: topic, topicID: topicID, partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 1024)]),
        ])
        return try await client.roundTrip(request, node: node, purpose: .fetch)
    }

    // MARK: Sessionless brokers

    /// Tansu: several partitions read exactly once in order, with pause/resume and a seek; the
    /// engine's session with the broker never opens (every fetch is full).
    func testTansuReadsEveryRecordOnceWithoutASession() async throws {
        let client = try await Shared.client { $0.producer.maxBatchBytes = 1024; $0.producer.maxRecordBytes = 1024 }
        let topic = try await Shared.topic(client, partitions: 4, prefix: "fsless")
        try await fill(client, topic: topic, partitions: 4, count: 200)
        let consumer = try client.consumer(Self.smallPrefetch())
        try await readWithPauseAndSeek(consumer, topic: topic, partitions: 4, count: 200)
        let node = try await client.leader(topic: topic, partition: 0)
        let session = await Self.session(client, consumer, node: node)
        XCTAssertNotNil(session, "the engine fetched from the broker")
        XCTAssertEqual(session?.isOpen, false, "Tansu answers session id 0: fetches stay full")
        XCTAssertEqual(session?.id, 0)
        await consumer.close()
        await client.close()
    }

    /// The bare mock cluster: sessionless too, and FETCH_SESSION_ID_NOT_FOUND on full fetches
    /// (injected) backs off and loses nothing.
    func testMockClusterWithoutSessionsRecoversFromInjectedSessionErrors() async throws {
        let topic = "plain"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 3)])
        defer { mock.stop() }
        let client = try await Self.mockClient(mock.bootstrap)
        try await fill(client, topic: topic, partitions: 3, count: 200)
        let consumer = try client.consumer(Self.smallPrefetch())
        try await readWithPauseAndSeek(consumer, topic: topic, partitions: 3, count: 200, midway: {
            try mock.pushErrors(apiKey: ApiKey.fetch.rawValue, codes: [70, 70, 71])
        })
        for node in Int32(1)...3 {
            let session = await Self.session(client, consumer, node: node)
            XCTAssertEqual(session?.isOpen, false, "broker \(node) echoes session id 0")
        }
        await consumer.close()
        await client.close()
    }

    // MARK: Sessions (the mock cluster behind FetchSessionProxy)

    /// Three brokers with sessions: after one full fetch each, fetches are incremental; a
    /// paused partition is forgotten; a session the broker lost (evicted, or an injected
    /// FETCH_SESSION_ID_NOT_FOUND) is replaced by a full fetch; every record arrives once, in
    /// order, seek included; closing the consumer closes its sessions.
    func testSessionsReadEveryRecordOnceAcrossBrokersAndRecover() async throws {
        let topic = "sessions"
        let mock = try MockCluster(brokers: 3, topics: [(topic, 6)])
        defer { mock.stop() }
        let producer = try await Self.mockClient(mock.bootstrap)
        try await fill(producer, topic: topic, partitions: 6, count: 300)
        await producer.close()

        let proxy = try Self.sessionProxy(in: mock)
        defer { proxy.stop() }
        let client = try await Self.mockClient(proxy.addresses)
        let consumer = try client.consumer(Self.smallPrefetch())
        try await readWithPauseAndSeek(consumer, topic: topic, partitions: 6, count: 300, whilePaused: {
            // The paused partition was held by its broker's session: the next fetch there forgets it.
            proxy.seen.forgotten > 0
        }, midway: {
            XCTAssertGreaterThan(proxy.seen.incremental, 0, "sessions are open before the faults")
            try mock.pushErrors(apiKey: ApiKey.fetch.rawValue, codes: [70])
        }, late: {
            proxy.evictAll()
        })
        let seen = proxy.seen
        XCTAssertGreaterThanOrEqual(seen.full, 3 + 1 + 1, "a full fetch per broker, then one after each lost session")
        XCTAssertGreaterThan(seen.incremental, seen.full, "incremental fetches are the rule")
        XCTAssertGreaterThan(seen.forgotten, 0)
        XCTAssertEqual(seen.invalidEpoch, 0, "epochs always in order")
        XCTAssertEqual(seen.sentAndForgotten, 0, "a partition is never sent and forgotten at once")
        XCTAssertEqual(seen.sessionless, 0, "no fetch without a session request")
        // Reading is done; the engine keeps polling every broker. Every session is evicted once
        // more, now: until its next fetch to a broker finds the session gone, the engine still
        // takes it for open (reading may also end before that after the eviction above). Each
        // broker's session counts once the broker holds it again; incremental answers leave out
        // every partition without news.
        proxy.evictAll()
        let settled = ContinuousClock.now + .seconds(20)
        var allOpen = false
        while ContinuousClock.now < settled {
            allOpen = true
            let held = proxy.sessionIDs
            for node in Int32(1)...3 {
                guard let session = await Self.session(client, consumer, node: node), session.isOpen,
                      held.contains(session.id) else {
                    allOpen = false
                    break
                }
            }
            if allOpen && proxy.seen.partitionsLeftOut > 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertTrue(allOpen, "every broker holds the session the engine has with it again")
        XCTAssertGreaterThan(proxy.seen.partitionsLeftOut, 0, "incremental answers leave out partitions without news")
        XCTAssertGreaterThan(proxy.seen.sessionNotFound, 0, "evicted sessions were asked for")
        let open = proxy.openSessions
        XCTAssertGreaterThanOrEqual(open, 3)
        await consumer.close()
        // Closing sends epoch -1 for every open session (answers are not awaited): wait for them.
        let deadline = ContinuousClock.now + .seconds(10)
        while proxy.seen.closes < 3 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(proxy.seen.closes, 3, "each broker's session closed")
        await client.close()
    }

    /// Faults inside open sessions, each on one incremental fetch: INVALID_FETCH_SESSION_EPOCH
    /// (the next fetch is full and names the session, closing it on the broker), a partition
    /// error in an incremental answer (handled as in a full one: the partition backs off, is
    /// forgotten, then sent again), and an answer naming a partition the session does not hold
    /// (not used; a full fetch naming the session follows). Every record arrives once, in order.
    func testFaultsInsideSessionsLoseNothing() async throws {
        let topic = "faults"
        let mock = try MockCluster(brokers: 2, topics: [(topic, 4)])
        defer { mock.stop() }
        let producer = try await Self.mockClient(mock.bootstrap)
        try await fill(producer, topic: topic, partitions: 4, count: 300)
        await producer.close()

        let proxy = try Self.sessionProxy(in: mock)
        defer { proxy.stop() }
        let client = try await Self.mockClient(proxy.addresses)
        let consumer = try client.consumer(Self.smallPrefetch())
        try await readWithPauseAndSeek(consumer, topic: topic, partitions: 4, count: 300, midway: {
            XCTAssertGreaterThan(proxy.seen.incremental, 0, "sessions are open before the faults")
            // In this order, one fetch each (the proxy applies them so).
            proxy.inject(.topLevel(.invalidFetchSessionEpoch))
            proxy.inject(.partition(2, .notLeaderOrFollower))
            proxy.inject(.stray(99))
        })
        // The engine keeps fetching after the read: a fault left for then is applied then, and
        // the full fetch that follows it comes then.
        let deadline = ContinuousClock.now + .seconds(10)
        while (proxy.faultsPending > 0 || proxy.seen.fullClosingHeld < 2) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let seen = proxy.seen
        XCTAssertEqual(seen.faults, 3, "every fault was applied")
        XCTAssertGreaterThanOrEqual(seen.fullClosingHeld, 2, "a full fetch closing the session after the error and after the stray partition")
        XCTAssertGreaterThan(seen.forgottenByPartition[2] ?? 0, 0, "the partition that failed was forgotten while it backed off")
        XCTAssertEqual(seen.invalidEpoch, 0, "epochs always in order")
        XCTAssertEqual(seen.sentAndForgotten, 0)
        XCTAssertEqual(seen.sessionless, 0)
        await consumer.close()
        await client.close()
    }

    /// A consumer closed while its first fetch waits for the broker's connection to get ready:
    /// once ready, that fetch is not sent (it would open a session nobody closes). A second
    /// consumer's fetch waits on the same connection; once its session is open, every fetch
    /// that waited has gone out.
    func testAFetchWaitingForItsConnectionIsDroppedWhenTheConsumerCloses() async throws {
        let topic = "closing"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        let proxy = try Self.sessionProxy(in: mock)
        defer { proxy.stop() }
        let client = try await Self.mockClient(proxy.addresses)
        try await fill(client, topic: topic, partitions: 1, count: 10)
        // Every answer of the broker is late from now: the fetch connection's handshake too.
        try mock.rtt(1, ms: 1000)
        let tp = TopicPartition(topic: topic, partition: 0)
        let closed = try client.consumer(Self.smallPrefetch())
        try await closed.assign([tp: .offset(0)])
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(proxy.seen.full, 0, "the fetch is still waiting for its connection")
        await closed.close()
        let open = try client.consumer(Self.smallPrefetch())
        try await open.assign([tp: .offset(0)])
        let deadline = ContinuousClock.now + .seconds(20)
        while await Self.session(client, open, node: 1)?.isOpen != true && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let session = await Self.session(client, open, node: 1)
        XCTAssertEqual(session?.isOpen, true, "the second consumer fetches")
        XCTAssertEqual(proxy.seen.full, 1, "only the open consumer's fetch went out")
        XCTAssertEqual(proxy.openSessions, 1)
        try mock.rtt(1, ms: 0)
        await open.close()
        await client.close()
    }

    /// A consumer closed while its first (full) fetch is in flight: the session that fetch
    /// opens is unknown at the close, so it is closed when the answer names it.
    func testASessionOpenedByAFetchInFlightAtTheCloseIsClosed() async throws {
        let topic = "closing"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        let proxy = try Self.sessionProxy(in: mock)
        defer { proxy.stop() }
        let client = try await Self.mockClient(proxy.addresses)
        try await fill(client, topic: topic, partitions: 1, count: 10)
        try mock.rtt(1, ms: 500)
        let consumer = try client.consumer(Self.smallPrefetch())
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .offset(0)])
        var deadline = ContinuousClock.now + .seconds(20)
        while proxy.seen.full == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertEqual(proxy.seen.full, 1, "the full fetch reached the broker; its answer is held back")
        XCTAssertEqual(proxy.openSessions, 1)
        await consumer.close()
        deadline = ContinuousClock.now + .seconds(10)
        while proxy.seen.closes == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(proxy.seen.closes, 1, "the session the answer named was closed")
        XCTAssertEqual(proxy.openSessions, 0)
        XCTAssertEqual(proxy.seen.full, 1, "nothing fetched after the close")
        try mock.rtt(1, ms: 0)
        await client.close()
    }

    // MARK: Scenario

    private static func smallPrefetch() -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.maxRecords = 25
        // A small prefetch bound: many fetch rounds per partition.
        settings.maxBufferedBytes = 4096
        settings.partitionMaxBytes = 1024
        settings.fetchMaxWait = .milliseconds(100)
        settings.retryBackoff = .milliseconds(20)
        return settings
    }

    /// A ``FetchSessionProxy`` in front of every broker of `mock`, which the mock's Metadata
    /// names instead of the brokers themselves.
    private static func sessionProxy(in mock: MockCluster) throws -> FetchSessionProxy {
        let proxy = try FetchSessionProxy(upstreams: mock.bootstrap)
        do {
            for (i, port) in proxy.ports.enumerated() { try mock.advertise(Int32(i + 1), host: "127.0.0.1", port: port) }
        } catch {
            proxy.stop()
            throw error
        }
        return proxy
    }

    private static func mockClient(_ bootstrap: [String]) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: bootstrap)
        config.reactorCount = 2
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        // Small producer batches: many fetch rounds.
        config.producer.maxBatchBytes = 1024
        config.producer.maxRecordBytes = 1024
        return try await KlifeClient.connect(config)
    }

    /// `count` records per partition, valued `p:i` plus padding.
    private func fill(_ client: KlifeClient, topic: String, partitions: Int32, count: Int) async throws {
        let padding = String(repeating: ".", count: 60)
        for i in 0..<count {
            for p in 0..<partitions { client.produce(ProducerRecord(topic: topic, partition: p, value: "\(p):\(i)" + padding)) { _ in } }
        }
        await client.flush()
    }

    /// The engine's fetch session of `consumer` with `node`, read on the reactor that owns it.
    private static func session(_ client: KlifeClient, _ consumer: KlifeConsumer, node: Int32) async -> FetchSession? {
        let service = client.fetchers[ReactorHub.index(forNode: node, reactorCount: client.fetchers.count)]
        let state = consumer.state
        return await withCheckedContinuation { continuation in
            service.hub.reactor.submit { continuation.resume(returning: service.session(of: state, node: node)) }
        }
    }

    /// Reads every record of `partitions` partitions (`count` each) and checks each partition's
    /// records are its offsets in order, exactly once. Along the way: partition 0 is paused
    /// after a third (no batch of it is handed out while paused; reading goes on until
    /// `whilePaused` holds) and resumed; partition 1 is sought back to offset 10 (its records
    /// from there come again, once); `midway` runs at half, `late` at three quarters.
    /// Only the whole read has a time limit: a limit around each `next()` could drop a batch
    /// handed over just as it ran out.
    private func readWithPauseAndSeek(_ consumer: KlifeConsumer, topic: String, partitions: Int32, count: Int,
                                      whilePaused: @escaping @Sendable () -> Bool = { true },
                                      midway: @escaping @Sendable () throws -> Void = {},
                                      late: @escaping @Sendable () throws -> Void = {}) async throws {
        try await consumer.assign(Dictionary(uniqueKeysWithValues: (0..<partitions).map { (TopicPartition(topic: topic, partition: $0), ConsumerStart.earliest) }))
        let read = try await withTimeout(.seconds(120)) {
            try await Self.read(consumer, topic: topic, partitions: partitions, count: count, whilePaused: whilePaused,
                                midway: midway, late: late)
        }
        XCTAssertTrue(read.everyStepRan, "pause, resume, midway and late all ran")
        XCTAssertEqual(read.pausedBatches, 0, "a paused partition hands out nothing")
        XCTAssertGreaterThan(read.seekFrom, 10, "partition 1 was sought back")
        for p in Int32(0)..<partitions {
            var expected = (0..<Int64(count)).map { $0 }
            if p == 1 { expected = Array(0..<read.seekFrom) + Array(10..<Int64(count)) }
            XCTAssertEqual(read.offsets[p], expected, "partition \(p): every offset once, in order (a seek back reads again from there)")
            XCTAssertEqual(read.values[p], expected.map { "\(p):\($0)" }, "partition \(p): the records of those offsets")
        }
    }

    private struct ReadResult: Sendable {
        var offsets: [Int32: [Int64]] = [:]
        var values: [Int32: [String]] = [:]
        var everyStepRan = false
        var pausedBatches = 0
        var seekFrom: Int64 = -1
    }

    private static func read(_ consumer: KlifeConsumer, topic: String, partitions: Int32, count: Int,
                             whilePaused: () -> Bool, midway: () throws -> Void, late: () throws -> Void) async throws -> ReadResult {
        let p0 = TopicPartition(topic: topic, partition: 0)
        let p1 = TopicPartition(topic: topic, partition: 1)
        var result = ReadResult()
        var total = 0
        var paused = false, resumed = false, didMidway = false, didLate = false
        let expectedTotal = { (seekFrom: Int64) in (seekFrom >= 0 ? Int(seekFrom) - 10 : 0) + Int(partitions) * count }
        while total < expectedTotal(result.seekFrom) {
            guard let batch = try await consumer.next() else { break }
            let p = batch.topicPartition.partition
            if paused && !resumed && p == 0 { result.pausedBatches += 1 }
            result.offsets[p, default: []] += batch.records.map(\.offset)
            result.values[p, default: []] += batch.records.compactMap { $0.valueString.map { String($0.prefix { $0 != "." }) } }
            total += batch.records.count
            let goal = expectedTotal(result.seekFrom)
            if !paused && total >= goal / 3 {
                consumer.pause([p0])
                paused = true
            } else if paused && !resumed && whilePaused() {
                consumer.resume([p0])
                resumed = true
            }
            if result.seekFrom < 0 && total >= goal * 2 / 5, let position = consumer.position(p1), position > 10 {
                result.seekFrom = position
                consumer.seek(p1, to: 10)
            }
            if !didMidway && total >= goal / 2 {
                try midway()
                didMidway = true
            }
            if !didLate && total >= goal * 3 / 4 {
                try late()
                didLate = true
            }
        }
        result.everyStepRan = paused && resumed && didMidway && didLate
        return result
    }
}
