import KlifeIO
import Foundation
import Klife
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

/// The idempotent producer (the default) on librdkafka's mock cluster: retries never
/// duplicate or reorder, and a lost producer state is healed by an epoch bump.
final class IdempotenceTests: XCTestCase {
    private func connect(_ mock: MockCluster, _ configure: (inout KlifeConfiguration) -> Void = { _ in }) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(3)
        config.producer.deliveryTimeout = .seconds(30)
        config.producer.retryBackoff = .milliseconds(20)
        configure(&config)
        XCTAssertTrue(config.producer.idempotent, "idempotence is on by default")
        return try await KlifeClient.connect(config)
    }

    private func initProducerIdCount(_ client: KlifeClient) async -> Int {
        await client.statistics().requestsSent[.initProducerId] ?? 0
    }

    /// UNKNOWN_PRODUCER_ID: the broker forgot us. The client bumps the epoch (one more
    /// InitProducerId) and the record is delivered once.
    func testUnknownProducerIdIsHealedByEpochBump() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("upid", 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        _ = try await client.produce(ProducerRecord(topic: "upid", partition: 0, value: "first"))
        let before = await initProducerIdCount(client)
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.unknownProducerID.rawValue])
        let meta = try await client.produce(ProducerRecord(topic: "upid", partition: 0, value: "second"))
        XCTAssertEqual(meta.offset, 1)
        let after = await initProducerIdCount(client)
        XCTAssertGreaterThan(after, before, "an epoch bump asked for a new epoch")
        let values = try await client.allRecords(topic: "upid", partition: 0).compactMap(\.valueString)
        XCTAssertEqual(values, ["first", "second"])
        await client.close()
    }

    /// OUT_OF_ORDER_SEQUENCE_NUMBER for the very batch the broker should expect next means
    /// the broker lost our sequence state: bump, resend, deliver once.
    func testUnexplainedOutOfOrderSequenceBumpsEpoch() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("ooo", 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        _ = try await client.produce(ProducerRecord(topic: "ooo", partition: 0, value: "a"))
        let before = await initProducerIdCount(client)
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.outOfOrderSequenceNumber.rawValue])
        let meta = try await client.produce(ProducerRecord(topic: "ooo", partition: 0, value: "b"))
        XCTAssertEqual(meta.offset, 1)
        let after = await initProducerIdCount(client)
        XCTAssertGreaterThan(after, before)
        await client.close()
    }

    /// The interleaving behind a reorder seen under ThreadSanitizer: a batch fails with
    /// NOT_LEADER_OR_FOLLOWER and waits (parked) for fresh metadata, whose answer is held back
    /// for 1.5 s; a record produced meanwhile must not be sent ahead of the waiting batch.
    /// librdkafka's mock checks no sequences for idempotent producers (only for transactional
    /// ones), like a broker that lost the producer's state after a leader move: whatever the
    /// client sends first is written first.
    func testRecordProducedWhileARetryWaitsForMetadataIsWrittenAfterIt() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("held", 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        _ = try await client.produce(ProducerRecord(topic: "held", partition: 0, value: "first"))
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [KafkaErrorCode.notLeaderOrFollower.rawValue])
        try mock.brokerErrors(1, apiKey: ApiKey.metadata.rawValue, [(code: 0, delayMs: 1500)])
        let failures = Locked<[String]>([])
        client.produce(ProducerRecord(topic: "held", partition: 0, value: "retried")) { result in
            if case .failure(let e) = result { failures.withLock { $0.append("retried: \(e)") } }
        }
        // Wait until the first attempt failed: the batch now waits for metadata.
        let deadline = ContinuousClock.now + .seconds(10)
        while await client.statistics().retries == 0 {
            guard ContinuousClock.now < deadline else { return XCTFail("the first attempt was never answered") }
            try await Task.sleep(for: .milliseconds(1))
        }
        client.produce(ProducerRecord(topic: "held", partition: 0, value: "later")) { result in
            if case .failure(let e) = result { failures.withLock { $0.append("later: \(e)") } }
        }
        await client.flush()
        XCTAssertEqual(failures.withLock { $0 }, [])
        let values = try await client.allRecords(topic: "held", partition: 0).compactMap(\.valueString)
        XCTAssertEqual(values, ["first", "retried", "later"], "the later record waited for the retried one")
        await client.close()
    }

    /// A numbered stream over 3 partitions with 5 requests in flight while retriable errors
    /// are injected, every leader moves twice and a broker goes down and up: afterwards each
    /// partition holds every record of its share exactly once and in the order it was produced.
    func testNumberedStreamUnderFaultsIsExactlyOnceAndInOrder() async throws {
        let topic = "numbered"
        let partitions: Int32 = 3
        let mock = try MockCluster(brokers: 3, topics: [(topic, partitions)])
        defer { mock.stop() }
        for p in 0..<partitions { try mock.leader(topic, p, broker: p + 1) }
        let client = try await connect(mock) { $0.producer.maxInFlightPerBroker = 5 }
        let n = 3000
        let failures = Locked<[String]>([])
        let delivered = Atomic<Int>(0)
        func send(_ range: Range<Int>) {
            for i in range {
                let record = ProducerRecord(topic: topic, partition: Int32(i % Int(partitions)), value: "\(i)")
                client.produce(record) { result in
                    switch result {
                    case .success: delivered.add(1, ordering: .relaxed)
                    case .failure(let e): failures.withLock { $0.append("\(i): \(e)") }
                    }
                }
            }
        }
        send(0..<1000)
        // librdkafka's mock checks no sequence numbers for idempotent producers (only for
        // transactional ones) and its injected errors reject a request without writing it, so
        // a later request of the same partition already in flight would be written first — a
        // broker that checks sequences refuses it (OUT_OF_ORDER_SEQUENCE_NUMBER) until the
        // retry lands, and no client can take back what was written. So the errors are
        // injected while nothing is in flight: one record per partition meets them, and the
        // rest of the stream is produced while those records wait to be resent, which is the
        // client's rule under test (nothing newer goes before a batch waiting to be resent).
        await client.flush()
        let retriesBefore = await client.statistics().retries
        try mock.pushErrors(apiKey: ApiKey.produce.rawValue, codes: [
            KafkaErrorCode.notLeaderOrFollower.rawValue, KafkaErrorCode.requestTimedOut.rawValue,
            KafkaErrorCode.notEnoughReplicas.rawValue,
        ])
        send(1000..<1003)
        let deadline = ContinuousClock.now + .seconds(20)
        while await client.statistics().retries < retriesBefore + 3 {
            guard ContinuousClock.now < deadline else { return XCTFail("the injected errors were never answered") }
            try await Task.sleep(for: .milliseconds(1))
        }
        send(1003..<2000)
        for p in 0..<partitions { try mock.leader(topic, p, broker: (p + 1) % partitions + 1) }
        send(2000..<2500)
        for p in 0..<partitions { try mock.leader(topic, p, broker: (p + 2) % partitions + 1) }
        send(2500..<2800)
        // A broker goes down with records on their way to it, and comes back.
        try mock.down(2)
        send(2800..<n)
        try await Task.sleep(for: .milliseconds(500))
        try mock.up(2)
        await client.flush()
        XCTAssertEqual(failures.withLock { $0 }, [])
        XCTAssertEqual(delivered.load(ordering: .relaxed), n)

        for p in 0..<partitions {
            var values: [Int] = []
            var offset: Int64 = 0
            while true {
                let page = try await client.fetch(topic: topic, partition: p, offset: offset)
                values += page.records.compactMap { $0.valueString.flatMap { Int($0) } }
                if page.records.isEmpty || page.nextOffset >= page.highWatermark { break }
                offset = page.nextOffset
            }
            let expected = Array(stride(from: Int(p), to: n, by: Int(partitions)))
            XCTAssertEqual(values.count, expected.count, "partition \(p): no loss, no duplicate")
            XCTAssertEqual(values, expected, "partition \(p): production order kept")
        }
        await client.close()
    }
}
