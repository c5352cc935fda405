import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import XCTest

/// Records appended on the producing thread (`producer.appendOnProducingThread`): each
/// producer's records keep their order when some of them take the reactor's ring instead —
/// while the topic is unknown, for a `produceBatch` — and under concurrent producers.
final class AppendOnProducingThreadTests: XCTestCase {
    /// Values of `topic`'s partition `partition` as strings, in offset order.
    private func values(_ client: KlifeClient, _ topic: String, partition: Int32) async throws -> [String] {
        try await client.allRecords(topic: topic, partition: partition).map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    /// A client that has never seen the topic takes the ring for its first records (they wait
    /// for metadata at the reactor), and appends on its own thread once metadata is known and
    /// the records before have reached their buffer: the partition holds them in produce order.
    func testRecordsProducedWhileTheTopicIsUnknownStayAheadOfRecordsAppendedLater() async throws {
        let client = try await Shared.client { $0.producer.linger = .milliseconds(20) }
        let admin = try await Shared.client()
        let topic = try await Shared.topic(admin, partitions: 1)
        let failures = Locked(0)
        for i in 0..<3_000 {
            try await client.enqueue(ProducerRecord(topic: topic, partition: 0, value: "r\(i)")) { result in
                if case .failure = result { failures.withLock { $0 += 1 } }
            }
            // Paced, so that metadata arrives while records are still being produced.
            if i % 100 == 99 { try await Task.sleep(for: .milliseconds(2)) }
        }
        await client.flush()
        XCTAssertEqual(failures.withLock { $0 }, 0)
        XCTAssertGreaterThan(client.payloadArena.chunkCounts.created, 0, "the first records took the ring")
        XCTAssertGreaterThan(client.defaultSession.blocks.pooledCount, 0, "later records were appended in blocks")
        let read = try await values(admin, topic, partition: 0)
        XCTAssertEqual(read, (0..<3_000).map { "r\($0)" })
        await client.close()
        await admin.close()
    }

    /// A record handed to the reactor (`produceBatch` takes that way) after records of its
    /// partition were appended to an open block goes behind them: the reactor seals the block
    /// first, long before its linger ends.
    func testARecordTakingTheRingGoesBehindTheOpenBlockOfItsPartition() async throws {
        let client = try await Shared.client { $0.producer.linger = .milliseconds(400) }
        let topic = try await Shared.topic(client, partitions: 1)
        // Metadata known before the first record, so the first records are appended in a block.
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "first"))
        var expected = ["first"]
        for round in 0..<3 {
            for i in 0..<5 {
                client.produce(ProducerRecord(topic: topic, partition: 0, value: "a\(round)-\(i)")) { _ in }
                expected.append("a\(round)-\(i)")
            }
            let results = await client.produceBatch([ProducerRecord(topic: topic, partition: 0, value: "ring\(round)")])
            XCTAssertNotNil(try? results[0].get())
            expected.append("ring\(round)")
        }
        await client.flush()
        let read = try await values(client, topic, partition: 0)
        XCTAssertEqual(read, expected)
        await client.close()
    }

    /// Several producers at once, each to its own key (4 keys on 3 partitions: some share
    /// one), with small blocks (filled and sealed by producing threads every few dozen
    /// records) and every 250th record through `produceBatch` (the ring): every record is
    /// written once, and each producer's records keep their order — also when another
    /// producer seals the block holding a producer's records after that producer handed a
    /// record to the ring (the record then waits for the block's descriptor).
    func testConcurrentProducersKeepTheirOrderAcrossBothPaths() async throws {
        let client = try await Shared.client {
            $0.producer.linger = .milliseconds(2)
            $0.producer.maxBatchBytes = 1024
            $0.producer.maxRecordBytes = 1024
        }
        let topic = try await Shared.topic(client, partitions: 3)
        let producers = 4
        let perProducer = 5_000
        let failures = Locked(0)
        await withTaskGroup(of: Void.self) { group in
            for p in 0..<producers {
                group.addTask {
                    for i in 0..<perProducer {
                        let record = ProducerRecord(topic: topic, key: "producer-\(p)", value: "\(p)-\(i)")
                        if i % 250 == 249 {
                            let results = await client.produceBatch([record])
                            if (try? results[0].get()) == nil { failures.withLock { $0 += 1 } }
                        } else {
                            do {
                                try await client.enqueue(record) { result in
                                    if case .failure = result { failures.withLock { $0 += 1 } }
                                }
                            } catch {
                                failures.withLock { $0 += 1 }
                            }
                        }
                    }
                }
            }
        }
        await client.flush()
        XCTAssertEqual(failures.withLock { $0 }, 0)
        var seen: [Int: [Int]] = [:]
        for partition in 0..<Int32(3) {
            for value in try await values(client, topic, partition: partition) {
                let parts = value.split(separator: "-").compactMap { Int($0) }
                seen[parts[0], default: []].append(parts[1])
            }
        }
        for p in 0..<producers {
            XCTAssertEqual(seen[p], Array(0..<perProducer), "producer \(p): every record once, in order")
        }
        await client.close()
    }

    /// The narrow interleaving the reactor must get right: a producing thread appends to a
    /// block (its notice in the ring), then hands a record of the same partition to the ring,
    /// and only then does another producing thread fill that block, seal it and hand its
    /// descriptor over — behind the record. The reactor, stalled meanwhile, finds the known
    /// block sealed when it takes the record: the record waits for the block's descriptor.
    func testARecordHandedOverBeforeItsBlockWasSealedElsewhereWaitsForTheBlock() async throws {
        let client = try await Shared.client {
            $0.producer.linger = .milliseconds(200)
            $0.producer.maxBatchBytes = 1024
            $0.producer.maxRecordBytes = 1024
        }
        let topic = try await Shared.topic(client, partitions: 1)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "first"))
        let session = client.defaultSession
        let gate = DispatchSemaphore(value: 0)
        let stalled = DispatchSemaphore(value: 0)
        client.producers[0].reactor.submit {
            stalled.signal()
            gate.wait()
        }
        stalled.wait()

        let value = [UInt8](repeating: 7, count: 100)
        /// Appends one record on this thread as a producing thread does (bypassing the in-transit
        /// check, as a thread that read it just before the hand-over below would).
        func appendDirectly(_ text: String) -> Bool {
            let size = RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: nil, valueCount: 100 + text.utf8.count,
                                                    headers: [])
            session.outstanding.reserve(bytes: size)
            var completion = DeliveryCompletion.none
            let bytes = Array(text.utf8) + value
            return bytes.withUnsafeBytes {
                client.appendOnProducingThread(topic: topic, partition: 0, timestamp: nil, key: nil, value: $0, headers: [],
                                               size: size, completion: &completion, session: session)
            }
        }
        XCTAssertTrue(appendDirectly("b0-"), "opens the block: its notice goes into the ring")
        // A record handed to the reactor by the ring, behind the notice.
        var (ring, target) = try client.prepare(topic: topic, partition: 0, timestamp: PendingRecord.unsetTimestamp, headers: [],
                                                key: nil, value: nil, completion: .none, session: session)
        ring.size = Int32(RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: nil, valueCount: nil, headers: []))
        session.outstanding.reserve(bytes: Int(ring.size))
        XCTAssertNil(client.push(ring, into: target))
        XCTAssertEqual(session.outstanding.inTransit.load(ordering: .relaxed), 1)
        // Another producing thread fills the block: sealed, its descriptor behind the record.
        var filled = 1
        let blocksBefore = session.blocks.pooledCount
        while filled < 30 {
            XCTAssertTrue(appendDirectly("b\(filled)-"))
            filled += 1
        }
        XCTAssertLessThanOrEqual(session.blocks.pooledCount, blocksBefore, "a second block was opened")
        gate.signal()
        await client.flush()

        let read = try await client.allRecords(topic: topic, partition: 0).map { $0.value.map { String(decoding: $0.prefix(4), as: UTF8.self) } }
        let nullAt = try XCTUnwrap(read.firstIndex { $0 == nil }, "the ring record (null value) was written")
        // Every record appended before the hand-over (the whole first block) is in front of it.
        let firstBlock = read[1..<nullAt].compactMap { $0 }
        XCTAssertTrue(firstBlock.first?.hasPrefix("b0-") == true, "\(read)")
        XCTAssertGreaterThan(firstBlock.count, 1, "the sealed block precedes the ring record: \(read)")
        XCTAssertEqual(read.count, 2 + filled)
        await client.close()
    }
}
