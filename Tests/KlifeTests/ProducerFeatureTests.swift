import KlifeIO
import Klife
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

/// Bounded buffering, graceful shutdown, statistics, logging and topic auto-creation.
final class ProducerFeatureTests: XCTestCase {
    /// With the buffer full, the non-blocking produce fails at once with `bufferFull`
    /// (nothing is lost silently) and the suspending forms wait and then deliver.
    func testFullBufferGivesTypedBackpressureAndSuspendingFormsWait() async throws {
        let client = try await Shared.client {
            $0.producer.maxBufferedRecords = 50
            $0.producer.linger = .milliseconds(200)   // keeps records buffered long enough to fill
        }
        let topic = try await Shared.topic(client, partitions: 1)
        let outcomes = Locked<(ok: Int, full: Int, other: [String])>((0, 0, []))
        for i in 0..<200 {
            client.produce(ProducerRecord(topic: topic, partition: 0, value: "r\(i)")) { result in
                outcomes.withLock { o in
                    switch result {
                    case .success: o.ok += 1
                    case .failure(let e) where e.code == .bufferFull: o.full += 1
                    case .failure(let e): o.other.append(e.description)
                    }
                }
            }
        }
        await client.flush()
        let o = outcomes.withLock { $0 }
        XCTAssertEqual(o.other, [])
        XCTAssertEqual(o.ok + o.full, 200, "every record reported exactly once")
        XCTAssertGreaterThan(o.full, 0, "the 50-record bound was enforced")
        XCTAssertLessThanOrEqual(o.ok, 200 - o.full)
        let written = try await client.allRecords(topic: topic).count
        XCTAssertEqual(written, o.ok, "exactly the accepted records were written")

        // The suspending form never reports bufferFull: it waits for room.
        let delivered = Atomic<Int>(0)
        for i in 0..<200 {
            try await client.enqueue(ProducerRecord(topic: topic, partition: 0, value: "s\(i)")) { result in
                if case .success = result { delivered.add(1, ordering: .relaxed) }
            }
        }
        await client.flush()
        XCTAssertEqual(delivered.load(ordering: .relaxed), 200)
        await client.close()
    }

    /// With `acks = .none` the broker answers nothing: every record completes at once after its
    /// request is written, with offset -1 and its own partition and timestamp, the buffer is
    /// emptied (flush returns), and the records are on the broker.
    ///
    /// Kafka never answers such a request, but Tansu 0.6 does: the answer must be dropped, not
    /// taken for the answer of the next request on the connection (which failed the
    /// connection as "malformed"). Metadata requests are sent on the same connection while
    /// the stray answers arrive, and no connection may be lost.
    func testAcksNoneCompletesEveryRecordWithoutOffsets() async throws {
        let events = Locked<[LogEvent]>([])
        let client = try await Shared.client {
            $0.producer.acks = .none
            $0.producer.idempotent = false
            $0.logHandler = { event in events.withLock { $0.append(event) } }
        }
        let topic = try await Shared.topic(client, partitions: 2)
        let results = Locked<[Int: RecordMetadata]>([:])
        let failures = Locked<[String]>([])
        for i in 0..<500 {
            // Requests that expect an answer, on the connection the produce requests use.
            if i % 25 == 0 { _ = try await client.metadata() }
            client.produce(ProducerRecord(topic: topic, partition: Int32(i % 2), value: "n\(i)", timestamp: 1_700_000_000_000 + Int64(i))) { r in
                switch r {
                case .success(let metadata): results.withLock { $0[i] = metadata }
                case .failure(let error): failures.withLock { $0.append(error.description) }
                }
            }
        }
        await client.flush()
        XCTAssertEqual(client.pendingRecordCount, 0, "the buffer's room was given back")
        XCTAssertEqual(failures.withLock { $0 }, [])
        let delivered = results.withLock { $0 }
        XCTAssertEqual(delivered.count, 500, "every record completed exactly once")
        for (i, metadata) in delivered {
            XCTAssertEqual(metadata.offset, -1)
            XCTAssertEqual(metadata.partition, Int32(i % 2))
            XCTAssertEqual(metadata.timestamp, 1_700_000_000_000 + Int64(i))
            XCTAssertEqual(metadata.topic, topic)
        }
        try await eventually("all 500 records on the broker") {
            try await client.allRecords(topic: topic).count == 500
        }
        for _ in 0..<20 { _ = try await client.metadata() }
        await client.close()
        let lost = events.withLock { $0 }.filter { $0.level >= .warning }
        XCTAssertEqual(lost.map(\.message), [], "no connection failed on an answer nobody asked for")
    }

    /// close() delivers what is buffered within its timeout; close(timeout: .zero) fails it.
    func testGracefulCloseDeliversBufferedRecords() async throws {
        let client = try await Shared.client { $0.producer.linger = .milliseconds(300) }
        let topic = try await Shared.topic(client, partitions: 2)
        let results = Locked<[Bool]>([])
        for i in 0..<100 {
            client.produce(ProducerRecord(topic: topic, value: "g\(i)")) { r in
                results.withLock { $0.append((try? r.get()) != nil) }
            }
        }
        await client.close()
        XCTAssertEqual(results.withLock { $0.count }, 100)
        XCTAssertTrue(results.withLock { $0.allSatisfy { $0 } }, "all delivered before the client closed")

        let reader = try await Shared.client()
        let count = try await reader.allRecords(topic: topic).count
        XCTAssertEqual(count, 100)

        let hasty = try await Shared.client { $0.producer.linger = .seconds(5) }
        let failed = Locked<[KlifeError.Code]>([])
        for i in 0..<10 {
            hasty.produce(ProducerRecord(topic: topic, value: "h\(i)")) { r in
                if case .failure(let e) = r { failed.withLock { $0.append(e.code) } }
            }
        }
        await hasty.close(timeout: .zero)
        XCTAssertEqual(failed.withLock { $0 }, Array(repeating: .clientClosed, count: 10))
        await reader.close()
    }

    func testStatisticsCountRecordsBatchesBytesAndLatency() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3)
        let results = await client.produceBatch((0..<30).map { ProducerRecord(topic: topic, partition: Int32($0 % 3), value: "x\($0)") })
        XCTAssertEqual(try results.map { try $0.get() }.count, 30)
        let stats = await client.statistics()
        XCTAssertGreaterThanOrEqual(stats.recordsDelivered, 30)
        XCTAssertEqual(stats.recordsFailed, 0)
        XCTAssertGreaterThanOrEqual(stats.produceRequests, 1)
        XCTAssertGreaterThanOrEqual(stats.batchesSent, 3)
        XCTAssertGreaterThan(stats.bytesSent, 30 * 2)
        XCTAssertEqual(stats.pendingRecords, 0)
        XCTAssertEqual(stats.pendingBytes, 0)
        XCTAssertEqual(stats.produceLatency.count, stats.produceRequests)
        XCTAssertGreaterThan(stats.produceLatency.p50, 0)
        XCTAssertLessThanOrEqual(stats.produceLatency.p50, stats.produceLatency.p99)
        XCTAssertLessThanOrEqual(stats.produceLatency.p99, stats.produceLatency.max)
        await client.close()
    }

    func testLogHandlerHearsAboutLostConnections() async throws {
        let events = Locked<[LogEvent]>([])
        let broker = try await TestBroker.start()
        var config = KlifeConfiguration(bootstrapServers: [broker.bootstrapServers])
        config.logHandler = { event in events.withLock { $0.append(event) } }
        config.producer.deliveryTimeout = .seconds(1)
        let client = try await KlifeClient.connect(config)
        try await client.createTopic("logged", partitions: 1)
        _ = try await client.produce(ProducerRecord(topic: "logged", partition: 0, value: "before"))
        broker.stop()
        _ = try? await client.produce(ProducerRecord(topic: "logged", partition: 0, value: "after"))
        await client.close(timeout: .zero)
        let warnings = events.withLock { $0 }.filter { $0.level >= .warning }
        XCTAssertTrue(warnings.contains { $0.message.contains("connection lost") }, "\(warnings)")
    }

    func testUnknownTopicFailsAfterBoundedWaitUnlessAutoCreated() async throws {
        let strict = try await Shared.client { $0.producer.unknownTopicTimeout = .milliseconds(300) }
        do {
            _ = try await strict.produce(ProducerRecord(topic: TestCluster.uniqueTopicName("nope"), value: "x"))
            XCTFail("produced to a missing topic")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition)
        }
        await strict.close()

        let creating = try await Shared.client { $0.allowAutoTopicCreation = true }
        let name = TestCluster.uniqueTopicName("auto")
        let meta = try await creating.produce(ProducerRecord(topic: name, value: "created on demand"))
        XCTAssertEqual(meta.offset, 0)
        await creating.close()
    }
}

final class RecordBytesTests: XCTestCase {
    func testRecordFromBorrowedBytesAndSlices() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1)
        let storage: [UInt8] = Array("xxkeyvaluexx".utf8)
        // The record copies the borrowed bytes once, so it outlives the buffer it came from.
        let record = storage.withUnsafeBytes { raw in
            ProducerRecord(topic: topic, partition: 0,
                           keyBytes: UnsafeRawBufferPointer(rebasing: raw[2..<5]), valueBytes: storage[5..<10])
        }
        let meta = try await client.produce(record)
        XCTAssertEqual(meta.offset, 0)
        let stored = try await client.record(topic: topic, partition: 0, offset: 0)
        XCTAssertEqual(stored?.keyString, "key")
        XCTAssertEqual(stored?.valueString, "value")
        await client.close()
    }
}

final class PartitionGrowthTests: XCTestCase {
    /// A record for a partition beyond the known count waits for metadata instead of failing
    /// at once, and is delivered when the topic grows. (The brokers here cannot add
    /// partitions, so the topic is re-created with more: to the client it is the same change.)
    func testRecordForNewPartitionWaitsForMetadataAndIsDelivered() async throws {
        let admin = try await Shared.client()
        let topic = TestCluster.uniqueTopicName("grow")
        try await admin.createTopic(topic, partitions: 2)
        let producer = try await Shared.client { $0.producer.unknownTopicTimeout = .seconds(10) }
        _ = try await producer.produce(ProducerRecord(topic: topic, partition: 1, value: "known"))
        async let late = producer.produce(ProducerRecord(topic: topic, partition: 3, value: "new partition"))
        try await Task.sleep(for: .milliseconds(200))
        try await admin.deleteTopic(topic)
        try await admin.createTopic(topic, partitions: 4)
        let meta = try await late
        XCTAssertEqual(meta.partition, 3)
        let stored = try await admin.record(topic: topic, partition: 3, offset: meta.offset)
        XCTAssertEqual(stored?.valueString, "new partition")
        await producer.close()
        await admin.close()
    }
}
