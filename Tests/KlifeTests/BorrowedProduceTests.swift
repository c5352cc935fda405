@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

/// Producing from borrowed bytes (no `[UInt8]` per record), and the payload arena every produce
/// form copies keys and values into, against the Tansu broker.
final class BorrowedProduceTests: XCTestCase {
    /// The form without a callback: every record delivered as given (value, key, headers),
    /// outcomes counted in the statistics, `flush()` waits for them; a refused record throws.
    func testRecordsWithoutACallbackAreDeliveredAndCounted() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3)
        let before = await client.statistics()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        for i in 0..<300 {
            let value = Array("fire and forget \(i)".utf8)
            buffer.copyBytes(from: value)
            let headers = i % 3 == 0 ? [RecordHeader(key: "n", value: Array("\(i)".utf8))] : []
            try await client.enqueue(topic: topic, value: UnsafeRawBufferPointer(rebasing: buffer[..<value.count]),
                                     headers: headers)
        }
        await client.flush()
        XCTAssertEqual(client.pendingRecordCount, 0)
        let after = await client.statistics()
        XCTAssertEqual(after.recordsDelivered - before.recordsDelivered, 300)
        XCTAssertEqual(after.recordsFailed - before.recordsFailed, 0)
        let stored = try await client.allRecords(topic: topic)
        XCTAssertEqual(stored.count, 300)
        var seen = Set<Int>()
        for record in stored {
            let text = String(decoding: try XCTUnwrap(record.value), as: UTF8.self)
            let i = try XCTUnwrap(Int(text.dropFirst("fire and forget ".count)))
            seen.insert(i)
            XCTAssertEqual(record.headers, i % 3 == 0 ? [RecordHeader(key: "n", value: Array("\(i)".utf8))] : [], text)
        }
        XCTAssertEqual(seen, Set(0..<300))

        let closed = try await Shared.client()
        await closed.close()
        do {
            try await closed.enqueue(topic: topic, value: UnsafeRawBufferPointer(rebasing: buffer[..<4]))
            XCTFail("a closed client refuses the record")
        } catch {
            XCTAssertEqual(error.code, .clientClosed)
        }
    }

    /// Both borrowed forms deliver exactly the bytes given, keyed records go where their array
    /// twins go (murmur2 read in place), and a record too large for the arena goes through a
    /// chunk of its own.
    func testBorrowedRecordsAreDeliveredAsGivenAndPartitionedLikeArrays() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 6)
        let results = Locked<[Result<RecordMetadata, KlifeError>]>([])
        let big = [UInt8](repeating: 0x5a, count: PayloadArena.maxCopiedBytes + 100)
        var expected: [(key: String, value: [UInt8])] = []
        for i in 0..<40 {
            let key = Array("user-\(i)".utf8)
            let value = i == 39 ? big : Array("borrowed \(i)".utf8)
            expected.append(("user-\(i)", value))
            if i % 2 == 0 {
                key.withUnsafeBytes { k in
                    value.withUnsafeBytes { v in
                        client.produce(topic: topic, key: k, value: v) { r in results.withLock { $0.append(r) } }
                    }
                }
            } else {
                let k = UnsafeMutableRawBufferPointer.allocate(byteCount: key.count, alignment: 1)
                let v = UnsafeMutableRawBufferPointer.allocate(byteCount: value.count, alignment: 1)
                key.withUnsafeBytes { k.copyMemory(from: $0) }
                value.withUnsafeBytes { v.copyMemory(from: $0) }
                try await client.enqueue(topic: topic, key: UnsafeRawBufferPointer(k), value: UnsafeRawBufferPointer(v)) { r in
                    results.withLock { $0.append(r) }
                }
                k.deallocate()
                v.deallocate()
            }
        }
        await client.flush()
        let outcomes = results.withLock { $0 }
        XCTAssertEqual(outcomes.count, 40)
        for outcome in outcomes {
            let meta = try outcome.get()
            XCTAssertEqual(meta.topic, topic)
        }
        let stored = try await client.allRecords(topic: topic)
        XCTAssertEqual(stored.count, 40)
        for record in stored {
            let key = try XCTUnwrap(record.keyString)
            let twin = try XCTUnwrap(expected.first { $0.key == key })
            XCTAssertTrue(record.value == twin.value, "\(key)")
            XCTAssertEqual(record.partition, DefaultPartitioner.partition(forKey: Array(key.utf8), partitionCount: 6),
                           "\(key) on its murmur2 partition, as the array form puts it")
        }
        // A tombstone and a null key through the borrowed form.
        let none: UnsafeRawBufferPointer? = nil
        let tombstone = try await withCheckedThrowingContinuation { (c: CheckedContinuation<RecordMetadata, any Error>) in
            Array("gone".utf8).withUnsafeBytes { k in
                client.produce(topic: topic, key: k, value: none, partition: 0) { c.resume(with: $0.mapError { $0 as any Error }) }
            }
        }
        let read = try await client.record(topic: topic, partition: 0, offset: tombstone.offset)
        XCTAssertEqual(read?.keyString, "gone")
        XCTAssertNil(read?.value)
        await client.close()
    }

    /// Every record's bytes go back to the arena once it completes — delivered, refused for a
    /// full buffer, or failed — so after a flush only the writers' open chunks are in use.
    /// (The arena holds records handed to the reactor by the ring: the path taken with
    /// `appendOnProducingThread` off, with several reactors, or while a topic is unknown.)
    func testEveryCompletedOrRefusedRecordGivesItsBytesBack() async throws {
        let client = try await Shared.client {
            $0.producer.appendOnProducingThread = false
            $0.producer.maxBufferedRecords = 50
            $0.producer.linger = .milliseconds(50)
        }
        let topic = try await Shared.topic(client, partitions: 2)
        let outcomes = Locked<(ok: Int, full: Int, other: Int)>((0, 0, 0))
        let value = [UInt8](repeating: 1, count: 2000)
        for round in 0..<20 {
            for i in 0..<100 {
                value.withUnsafeBytes { v in
                    client.produce(topic: topic, value: v, partition: Int32(i % 2)) { result in
                        outcomes.withLock { o in
                            switch result {
                            case .success: o.ok += 1
                            case .failure(let e) where e.code == .bufferFull: o.full += 1
                            case .failure: o.other += 1
                            }
                        }
                    }
                }
                // The array form copies into the same arena.
                client.produce(ProducerRecord(topic: topic, partition: Int32(i % 2), value: value)) { result in
                    outcomes.withLock { o in
                        switch result {
                        case .success: o.ok += 1
                        case .failure(let e) where e.code == .bufferFull: o.full += 1
                        case .failure: o.other += 1
                        }
                    }
                }
            }
            _ = round
        }
        // A record the broker refuses (no such partition, after the bounded wait) fails and
        // gives its bytes back too.
        let failed = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            value.withUnsafeBytes { v in
                client.produce(topic: topic, value: v, partition: 7) { c.resume(returning: (try? $0.get()) == nil) }
            }
        }
        XCTAssertTrue(failed)
        await client.flush()
        let o = outcomes.withLock { $0 }
        XCTAssertEqual(o.ok + o.full, 4000, "every record reported once (\(o.other) other failures)")
        XCTAssertGreaterThan(o.full, 0, "the buffer bound was reached")
        let counts = client.payloadArena.chunkCounts
        XCTAssertGreaterThan(counts.created, 1, "2 kB records filled several chunks")
        XCTAssertGreaterThanOrEqual(counts.free, counts.created - 8, "only the writers' open chunks are still in use")
        await client.close()
    }
}
