@testable import Klife
import KlifeIO
import KlifeProtocol
import Synchronization
import XCTest

/// The payload arena: keys, values and headers copied on the producing thread into shared
/// chunks (or a standalone chunk when the arena does not take them), read by the reactor, given
/// back when their records complete, bounded by a chunk count.
final class PayloadArenaTests: XCTestCase {
    private func copy(_ arena: PayloadArena, key: [UInt8]?, value: [UInt8]?,
                      headers: [RecordHeader] = []) -> (Unmanaged<PayloadChunk>, Int32) {
        key.withUnsafeBytesIfPresent { k in
            value.withUnsafeBytesIfPresent { v in
                arena.copy(key: k, value: v, headers: headers, headerBytes: RecordBatchLayout.headerBytes(headers),
                           completion: .none)
            }
        }
    }

    private func read(_ copied: (Unmanaged<PayloadChunk>, Int32)) -> (key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader]) {
        let (key, value, headers) = PayloadArena.bytes(in: copied.0, at: copied.1)
        var reader = ByteReader(headers.bytes)
        let decoded = (0..<headers.count).map { _ in
            let name = reader.readBytes(count: Int(reader.readVarint()))
            let count = Int(reader.readVarint())
            return RecordHeader(key: String(decoding: name, as: UTF8.self), value: count < 0 ? nil : reader.readBytes(count: count))
        }
        XCTAssertTrue(reader.isAtEnd, "header bytes end with the last header")
        return (key.map { [UInt8]($0) }, value.map { [UInt8]($0) }, decoded)
    }

    private func isStandalone(_ copied: (Unmanaged<PayloadChunk>, Int32)) -> Bool {
        copied.0._withUnsafeGuaranteedRef { $0.isStandalone }
    }

    func testKeysValuesAndHeadersReadBackAsWritten() throws {
        let arena = PayloadArena(maxChunks: 4)
        let headers = [RecordHeader(key: "trace", value: Array("abc".utf8)), RecordHeader(key: "", value: nil),
                       RecordHeader(key: "empty", value: [])]
        let cases: [([UInt8]?, [UInt8]?, [RecordHeader])] = [
            (nil, nil, []), ([], [], []), (nil, Array("value".utf8), headers), (Array("k".utf8), nil, [headers[1]]),
            (Array("key".utf8), Array(repeating: 7, count: 1000), []), ([1, 2, 3], [], headers),
        ]
        let copies = cases.map { copy(arena, key: $0.0, value: $0.1, headers: $0.2) }
        for (copied, expected) in zip(copies, cases) {
            let (key, value, headers) = read(copied)
            XCTAssertEqual(key, expected.0)
            XCTAssertEqual(value, expected.1)
            XCTAssertEqual(headers, expected.2)
            XCTAssertFalse(isStandalone(copied))
        }
        XCTAssertEqual(arena.chunkCounts.created, 1, "small records share one chunk")
    }

    /// A record locates its key and value from the lengths it carries, without reading its
    /// entry (what the partitioner gets): the same bytes the entry's own lengths give.
    func testARecordLocatesItsKeyAndValueFromItsLengths() {
        let counter = OutstandingCounter()
        let headers = [RecordHeader(key: "h", value: [1])]
        let cases: [([UInt8]?, [UInt8]?, [RecordHeader])] = [
            (nil, nil, []), ([], [], headers), (nil, Array("value".utf8), []), (Array("key".utf8), nil, headers),
            (Array("key".utf8), Array(repeating: 5, count: 300), headers),
        ]
        for (key, value, headers) in cases {
            let record = PendingRecord.withPayload(topic: "t", partition: 0, key: key, value: value, headers: headers,
                                                   timestamp: 0, deadline: .max, completion: .none, tracker: counter)
            let located = record.keyAndValue
            let stored = record.payload
            XCTAssertEqual(located.key.map { [UInt8]($0) }, key)
            XCTAssertEqual(located.value.map { [UInt8]($0) }, value)
            XCTAssertEqual(located.key?.baseAddress, stored.key?.baseAddress)
            XCTAssertEqual(located.value?.baseAddress, stored.value?.baseAddress)
            record.releasePayload()
        }
    }

    /// A record larger than a quarter of a chunk gets a standalone chunk holding exactly its
    /// bytes, freed when the record is released; the arena's chunks are not touched.
    func testLargeRecordsGetAStandaloneChunkFreedOnRelease() {
        let arena = PayloadArena(maxChunks: 4)
        let large = copy(arena, key: [1], value: Array(repeating: 9, count: PayloadArena.maxCopiedBytes),
                         headers: [RecordHeader(key: "h", value: [2])])
        XCTAssertTrue(isStandalone(large))
        XCTAssertEqual(read(large).key, [1])
        XCTAssertEqual(read(large).value, Array(repeating: 9, count: PayloadArena.maxCopiedBytes))
        XCTAssertEqual(read(large).headers, [RecordHeader(key: "h", value: [2])])
        XCTAssertEqual(arena.chunkCounts.created, 0)
        weak let freed = large.0.takeUnretainedValue()
        XCTAssertNotNil(freed)
        PayloadChunk.release(large.0, 1)
        XCTAssertNil(freed, "the record's release frees its standalone chunk")
        XCTAssertFalse(isStandalone(copy(arena, key: nil, value: Array(repeating: 0, count: PayloadArena.maxCopiedBytes - 16))))
    }

    /// A chunk goes back to the free list when it was sealed (its writer moved on) and every
    /// record written in it was released, in either order; the next writer takes it.
    func testAChunkIsReusedOnceSealedAndAllItsRecordsReleased() throws {
        let arena = PayloadArena(maxChunks: 2)
        let value = Array(repeating: UInt8(1), count: 1000)
        var first: [(Unmanaged<PayloadChunk>, Int32)] = []
        while first.isEmpty || first.last!.0.toOpaque() == first[0].0.toOpaque() {
            first.append(copy(arena, key: nil, value: value))
        }
        // The last copy opened the second chunk (and sealed the first).
        let second = first.removeLast()
        XCTAssertEqual(arena.chunkCounts.created, 2)
        for record in first.dropLast() { PayloadChunk.release(record.0, 1) }
        XCTAssertEqual(arena.chunkCounts.free, 0, "one record of the first chunk is still waiting")
        PayloadChunk.release(first.last!.0, 1)
        XCTAssertEqual(arena.chunkCounts.free, 1, "sealed and all released: free")

        // Filling the second chunk takes the first one again instead of a third.
        var reused: (Unmanaged<PayloadChunk>, Int32)?
        while reused == nil {
            let next = copy(arena, key: nil, value: Array(repeating: 2, count: 1000))
            if next.0.toOpaque() != second.0.toOpaque() { reused = next }
        }
        XCTAssertEqual(reused!.0.toOpaque(), first[0].0.toOpaque())
        XCTAssertEqual(arena.chunkCounts.created, 2)
        XCTAssertEqual(read(reused!).value, Array(repeating: 2, count: 1000))
    }

    /// With every chunk held by records still waiting, a record's bytes go into a standalone
    /// chunk: the arena never grows past its bound and never waits.
    func testNoFreeChunkFallsBackToStandaloneChunks() throws {
        let arena = PayloadArena(maxChunks: 1)
        var shared = 0
        var last = copy(arena, key: nil, value: Array(repeating: 0, count: 1000))
        while !isStandalone(last) {
            shared += 1
            last = copy(arena, key: nil, value: Array(repeating: 0, count: 1000))
        }
        XCTAssertGreaterThan(shared, 50)
        XCTAssertEqual(read(last).value, Array(repeating: 0, count: 1000))
        XCTAssertEqual(arena.chunkCounts.created, 1)
        PayloadChunk.release(last.0, 1)
    }

    /// Producing threads copying at once while a consumer thread reads and releases the records
    /// (as reactors do): every record reads back its own bytes, and once all are released only
    /// the chunks still open for writers are not free. Run under ThreadSanitizer by
    /// `scripts/sanitize.sh thread`.
    func testConcurrentWritersAndReleasesKeepEveryRecordIntact() throws {
        let arena = PayloadArena(maxChunks: 64, writerCount: 4)
        let ring = MPSCRing<RecordSlotCopy>(capacity: 1 << 12)
        let producers = 4, perProducer = 20_000
        let bad = Atomic<Int>(0)
        let consumer = Thread {
            var received = 0
            while received < producers * perProducer {
                guard let item = ring.pop() else { continue }
                received += 1
                let (key, value, _) = PayloadArena.bytes(in: item.chunk, at: item.offset)
                let expected = Self.valueBytes(producer: item.producer, index: item.index)
                if key?.count != 4 || value.map({ [UInt8]($0) }) != expected { bad.add(1, ordering: .relaxed) }
                PayloadChunk.release(item.chunk, 1)
            }
        }
        consumer.start()
        DispatchQueue.concurrentPerform(iterations: producers) { p in
            for i in 0..<perProducer {
                let key: [UInt8] = [UInt8(p), 0, 0, 0]
                let value = Self.valueBytes(producer: p, index: i)
                let (chunk, offset) = key.withUnsafeBytes { k in
                    value.withUnsafeBytes { v in arena.copy(key: k, value: v, headers: [], headerBytes: 0, completion: .none) }
                }
                var item = RecordSlotCopy(chunk: chunk, offset: offset, producer: p, index: i)
                while let back = ring.offer(item) { item = back }
            }
        }
        while !consumer.isFinished { usleep(1000) }
        XCTAssertEqual(bad.load(ordering: .relaxed), 0)
        let counts = arena.chunkCounts
        XCTAssertLessThanOrEqual(counts.created, 64)
        XCTAssertGreaterThanOrEqual(counts.free, counts.created - 4, "all but the writers' open chunks are free")
    }

    private static func valueBytes(producer: Int, index: Int) -> [UInt8] {
        (0..<(20 + index % 50)).map { UInt8(truncatingIfNeeded: $0 &+ index &* 7 &+ producer) }
    }
}

private struct RecordSlotCopy: Sendable {
    let chunk: Unmanaged<PayloadChunk>
    let offset: Int32
    let producer: Int
    let index: Int
}
