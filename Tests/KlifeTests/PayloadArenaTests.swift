@testable import Klife
import KlifeIO
import KlifeProtocol
import Synchronization
import XCTest

/// The payload arena: keys and values copied on the producing thread into shared chunks, read by
/// the reactor, given back when their records complete, bounded by a chunk count.
final class PayloadArenaTests: XCTestCase {
    private func copy(_ arena: PayloadArena, key: [UInt8]?, value: [UInt8]?) -> (Unmanaged<PayloadChunk>, Int32)? {
        key.withUnsafeBytesIfPresent { k in value.withUnsafeBytesIfPresent { v in arena.copy(key: k, value: v) } }
    }

    private func read(_ copied: (Unmanaged<PayloadChunk>, Int32)) -> (key: [UInt8]?, value: [UInt8]?) {
        let (key, value) = PayloadArena.bytes(in: copied.0, at: copied.1)
        return (key.map { [UInt8]($0) }, value.map { [UInt8]($0) })
    }

    func testKeysAndValuesReadBackAsWritten() throws {
        let arena = PayloadArena(maxChunks: 4)
        let cases: [([UInt8]?, [UInt8]?)] = [(nil, nil), ([], []), (nil, Array("value".utf8)), (Array("k".utf8), nil),
                                             (Array("key".utf8), Array(repeating: 7, count: 1000)), ([1, 2, 3], [])]
        let copies = try cases.map { try XCTUnwrap(copy(arena, key: $0.0, value: $0.1)) }
        for (copied, expected) in zip(copies, cases) {
            let (key, value) = read(copied)
            XCTAssertEqual(key, expected.0)
            XCTAssertEqual(value, expected.1)
        }
        XCTAssertEqual(arena.chunkCounts.created, 1, "small records share one chunk")
    }

    func testLargeRecordsKeepTheirArrays() {
        let arena = PayloadArena(maxChunks: 4)
        XCTAssertNil(copy(arena, key: [1], value: Array(repeating: 0, count: PayloadArena.maxCopiedBytes)))
        XCTAssertNotNil(copy(arena, key: nil, value: Array(repeating: 0, count: PayloadArena.maxCopiedBytes)))
    }

    /// A chunk goes back to the free list when it was sealed (its writer moved on) and every
    /// record written in it was released, in either order; the next writer takes it.
    func testAChunkIsReusedOnceSealedAndAllItsRecordsReleased() throws {
        let arena = PayloadArena(maxChunks: 2)
        let value = Array(repeating: UInt8(1), count: 1000)
        var first: [(Unmanaged<PayloadChunk>, Int32)] = []
        while first.isEmpty || first.last!.0.toOpaque() == first[0].0.toOpaque() {
            first.append(try XCTUnwrap(copy(arena, key: nil, value: value)))
        }
        // The last copy opened the second chunk (and sealed the first).
        let second = first.removeLast()
        XCTAssertEqual(arena.chunkCounts.created, 2)
        for record in first.dropLast() { record.0._withUnsafeGuaranteedRef { $0.release(1) } }
        XCTAssertEqual(arena.chunkCounts.free, 0, "one record of the first chunk is still waiting")
        first.last!.0._withUnsafeGuaranteedRef { $0.release(1) }
        XCTAssertEqual(arena.chunkCounts.free, 1, "sealed and all released: free")

        // Filling the second chunk takes the first one again instead of a third.
        var reused: (Unmanaged<PayloadChunk>, Int32)?
        while reused == nil {
            let next = try XCTUnwrap(copy(arena, key: nil, value: Array(repeating: 2, count: 1000)))
            if next.0.toOpaque() != second.0.toOpaque() { reused = next }
        }
        XCTAssertEqual(reused!.0.toOpaque(), first[0].0.toOpaque())
        XCTAssertEqual(arena.chunkCounts.created, 2)
        XCTAssertEqual(read(reused!).value, Array(repeating: 2, count: 1000))
    }

    /// With every chunk held by records still waiting, a copy is refused (the record keeps its
    /// arrays): the arena never grows past its bound and never waits.
    func testNoFreeChunkRefusesTheCopy() throws {
        let arena = PayloadArena(maxChunks: 1)
        var accepted = 0
        while copy(arena, key: nil, value: Array(repeating: 0, count: 1000)) != nil { accepted += 1 }
        XCTAssertGreaterThan(accepted, 50)
        XCTAssertEqual(arena.chunkCounts.created, 1)
    }

    /// Producing threads copying at once while a consumer thread reads and releases the records
    /// (as reactors do): every record reads back its own bytes, and once all are released only
    /// the chunks still open for writers are not free. Run under ThreadSanitizer by
    /// `scripts/sanitize.sh thread`.
    func testConcurrentWritersAndReleasesKeepEveryRecordIntact() throws {
        let arena = PayloadArena(maxChunks: 64, writerCount: 4)
        let ring = MPSCRing<RecordSlotCopy>(capacity: 1 << 12)
        let producers = 4, perProducer = 20_000
        let bad = Atomic<Int>(0), fallbacks = Atomic<Int>(0)
        let consumer = Thread {
            var received = 0
            while received + fallbacks.load(ordering: .acquiring) < producers * perProducer {
                guard let item = ring.pop() else { continue }
                received += 1
                let (key, value) = PayloadArena.bytes(in: item.chunk, at: item.offset)
                let expected = Self.valueBytes(producer: item.producer, index: item.index)
                if key?.count != 4 || value.map({ [UInt8]($0) }) != expected { bad.add(1, ordering: .relaxed) }
                item.chunk._withUnsafeGuaranteedRef { $0.release(1) }
            }
        }
        consumer.start()
        DispatchQueue.concurrentPerform(iterations: producers) { p in
            for i in 0..<perProducer {
                let key: [UInt8] = [UInt8(p), 0, 0, 0]
                let value = Self.valueBytes(producer: p, index: i)
                let copied = key.withUnsafeBytes { k in value.withUnsafeBytes { v in arena.copy(key: k, value: v) } }
                guard let (chunk, offset) = copied else {
                    fallbacks.add(1, ordering: .releasing)
                    continue
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
