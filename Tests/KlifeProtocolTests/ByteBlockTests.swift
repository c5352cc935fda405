import XCTest
@testable import KlifeProtocol

/// Byte blocks and their pool: the memory Fetch answers' records are read in, reused instead of
/// allocated (and faulted in) again for every answer.
final class ByteBlockTests: XCTestCase {

    private func address(_ block: ByteBlock) -> UnsafeRawPointer? { block.withUnsafeBytes { $0.baseAddress } }

    func testBlockHoldsACopyAndComparesByContent() {
        var source = pattern(1000, seed: 1)
        let block = ByteBlock(source)
        source[0] = 0xff
        XCTAssertEqual(block.count, 1000)
        XCTAssertEqual(block.bytes, pattern(1000, seed: 1), "later changes to the array do not reach the block")
        XCTAssertEqual(block[999], pattern(1000, seed: 1)[999])
        XCTAssertEqual(block, ByteBlock(pattern(1000, seed: 1)))
        XCTAssertNotEqual(block, ByteBlock(pattern(1000, seed: 2)))
        XCTAssertEqual(Set([block, ByteBlock(pattern(1000, seed: 1))]).count, 1)
        XCTAssertTrue(ByteBlock.empty.isEmpty)
        XCTAssertEqual(ByteBlock([]), ByteBlock.empty)
    }

    func testSizeClassesRoundUpByAtMostAQuarter() {
        XCTAssertNil(ByteBlockPool.sizeClass(ByteBlockPool.minimumPooledBytes - 1))
        XCTAssertNil(ByteBlockPool.sizeClass(ByteBlockPool.maximumPooledBytes + 1))
        XCTAssertEqual(ByteBlockPool.sizeClass(64 << 10), 64 << 10)
        XCTAssertEqual(ByteBlockPool.sizeClass((64 << 10) + 1), 80 << 10)
        XCTAssertEqual(ByteBlockPool.sizeClass(8 << 20), 8 << 20)
        XCTAssertEqual(ByteBlockPool.sizeClass((8 << 20) + 1), 10 << 20)
        for n in stride(from: 64 << 10, through: 16 << 20, by: 77_777) {
            let size = ByteBlockPool.sizeClass(n)!
            XCTAssertGreaterThanOrEqual(size, n)
            XCTAssertLessThanOrEqual(size - n, n / 4, "\(n) → \(size)")
        }
    }

    func testMemoryOfAReleasedBlockServesTheNextOne() {
        let pool = ByteBlockPool(maxRetainedBytes: 1 << 20)
        var first: ByteBlock? = ByteBlock(pattern(100_000, seed: 1), pool: pool)
        let memory = address(first!)
        XCTAssertEqual(pool.statistics, .init(retainedBytes: 0, reused: 0, allocated: 1))
        first = nil
        XCTAssertEqual(pool.statistics.retainedBytes, ByteBlockPool.sizeClass(100_000))
        let second = ByteBlock(pattern(90_000, seed: 7), pool: pool)
        XCTAssertEqual(address(second), memory, "the kept memory is reused")
        XCTAssertEqual(second.bytes, pattern(90_000, seed: 7), "with the new block's bytes only")
        XCTAssertEqual(pool.statistics, .init(retainedBytes: 0, reused: 1, allocated: 1))
        _ = first
    }

    func testAKeptBlockTwiceTheSizeNeededIsNotTaken() {
        let pool = ByteBlockPool(maxRetainedBytes: 8 << 20)
        _ = ByteBlock(pattern(1 << 20, seed: 1), pool: pool)
        XCTAssertEqual(pool.statistics.retainedBytes, 1 << 20)
        let small = ByteBlock(pattern(100_000, seed: 2), pool: pool)
        XCTAssertEqual(pool.statistics, .init(retainedBytes: 1 << 20, reused: 0, allocated: 2),
                       "a 1 MiB block does not hold 100 kB: new memory of its own class")
        XCTAssertEqual(small.bytes, pattern(100_000, seed: 2))
    }

    func testRetainedMemoryStaysWithinItsBound() {
        let pool = ByteBlockPool(maxRetainedBytes: 300 << 10)
        var blocks: [ByteBlock] = (0..<5).map { ByteBlock(pattern(100 << 10, seed: UInt8($0)), pool: pool) }
        blocks.removeAll()
        let kept = ByteBlockPool.sizeClass(100 << 10)!
        XCTAssertEqual(kept, 112 << 10)
        XCTAssertEqual(pool.statistics.retainedBytes, 2 * kept, "two 100 KiB blocks (112 KiB each) fit 300 KiB; the others are freed")
        pool.trim()
        XCTAssertEqual(pool.statistics.retainedBytes, 0)
    }

    func testSmallAndHugeBlocksAreNotPooled() {
        let pool = ByteBlockPool(maxRetainedBytes: 64 << 20)
        _ = ByteBlock(pattern(1000, seed: 1), pool: pool)
        _ = ByteBlock(count: ByteBlockPool.maximumPooledBytes + 1, pool: pool) { $0.initializeMemory(as: UInt8.self, repeating: 1) }
        XCTAssertEqual(pool.statistics, .init(retainedBytes: 0, reused: 0, allocated: 0))
    }

    /// Blocks made on one thread and released on others (as fetched records are: made on a
    /// reactor, dropped by the application), while the first thread makes more from the same
    /// pool: every block reads its own bytes, and the pool's books balance.
    func testBlocksReleasedOnOtherThreadsAreReusedSafely() {
        let pool = ByteBlockPool(maxRetainedBytes: 4 << 20)
        let rounds = 200
        let group = DispatchGroup()
        let queue = DispatchQueue(label: "readers", attributes: .concurrent)
        let mismatches = Counter()
        for round in 0..<rounds {
            let seed = UInt8(truncatingIfNeeded: round)
            let size = (64 << 10) + (round % 7) * 10_000
            let block = ByteBlock(pattern(size, seed: seed), pool: pool)
            queue.async(group: group) {
                if block.bytes != pattern(size, seed: seed) { mismatches.increment() }
            }
        }
        group.wait()
        XCTAssertEqual(mismatches.value, 0)
        let stats = pool.statistics
        XCTAssertEqual(stats.reused + stats.allocated, rounds)
        XCTAssertLessThanOrEqual(stats.retainedBytes, 4 << 20)
    }

    func testFetchAnswersAreReadIntoTheSharedPool() {
        let records = pattern(200_000, seed: 3)
        let answer = FetchResponse(responses: [.init(name: "t", partitions: [.init(partitionIndex: 0, records: records)])])
        for version: Int16 in [4, 12, 16] {
            let decoded = msgDecode(FetchResponse.self, answer.msgEncoded(version: version), version: version)
            let block = decoded.responses[0].partitions[0].recordBlock
            XCTAssertEqual(block.bytes, records, "v\(version)")
            XCTAssertTrue(block.pool === ByteBlockPool.shared, "a 200 kB answer is read into pooled memory (v\(version))")
        }
        let small = FetchResponse(responses: [.init(name: "t", partitions: [.init(partitionIndex: 0, records: [1, 2, 3])])])
        let decoded = msgDecode(FetchResponse.self, small.msgEncoded(version: 12), version: 12)
        XCTAssertNil(decoded.responses[0].partitions[0].recordBlock.pool, "a small one is allocated as usual")
        XCTAssertEqual(decoded.responses[0].partitions[0].records, [1, 2, 3])
    }

    func testASliceSharesItsParentsMemoryAndKeepsItAlive() {
        let pool = ByteBlockPool(maxRetainedBytes: 1 << 20)
        let bytes = pattern(100_000, seed: 9)
        var parent: ByteBlock? = ByteBlock(bytes, pool: pool)
        let slice = ByteBlock(slicing: parent!, offset: 1_000, count: 5_000)
        let inner = ByteBlock(slicing: slice, offset: 10, count: 20)
        XCTAssertEqual(slice.base, parent!.base + 1_000, "no copy")
        XCTAssertTrue(inner.parent === parent, "a slice of a slice refers to the owning block")
        XCTAssertEqual(inner.bytes, Array(bytes[1_010..<1_030]))
        weak let watched = parent
        parent = nil
        XCTAssertNotNil(watched, "the slices keep the parent")
        XCTAssertEqual(pool.statistics.retainedBytes, 0, "its memory is still in use")
        XCTAssertEqual(slice.bytes, Array(bytes[1_000..<6_000]))
        _ = consume inner
        _ = consume slice
        XCTAssertNil(watched)
        XCTAssertGreaterThan(pool.statistics.retainedBytes, 0, "the last slice gave the memory back to the pool")
    }

    func testSliceBoundsAreChecked() {
        let block = ByteBlock(pattern(100, seed: 1), pool: nil)
        XCTAssertTrue(block.contains(UnsafeRawPointer(block.base), count: 100))
        XCTAssertTrue(block.contains(UnsafeRawPointer(block.base) + 100, count: 0))
        XCTAssertFalse(block.contains(UnsafeRawPointer(block.base) + 1, count: 100))
        XCTAssertFalse(block.contains(UnsafeRawPointer(block.base) - 1, count: 1))
        XCTAssertEqual(ByteBlock(slicing: block, offset: 100, count: 0).count, 0)
    }

    /// A Fetch answer decoded from a reader backed by the answer's own block: the partitions'
    /// records are slices of it, at the right bytes, and the memory goes back once all are gone.
    func testFetchAnswersInABackingBlockAreSlicedNotCopied() {
        let pool = ByteBlockPool(maxRetainedBytes: 8 << 20)
        let first = pattern(150_000, seed: 4), second = pattern(90_000, seed: 7)
        let answer = FetchResponse(responses: [.init(name: "t", partitions: [
            .init(partitionIndex: 0, records: first), .init(partitionIndex: 1, records: second),
        ])])
        for version: Int16 in [4, 12, 16] {
            let wire = answer.msgEncoded(version: version)
            var frame: ByteBlock? = ByteBlock(wire, pool: pool)
            let decoded = frame!.withUnsafeBytes { bytes -> FetchResponse in
                var reader = ByteReader(bytes)
                reader.backingBlock = Unmanaged.passUnretained(frame!)
                var sub = reader.subReader(count: reader.count)
                XCTAssertTrue(sub.backingBlock?.takeUnretainedValue() === frame, "a sub-reader keeps the backing block")
                return FetchResponse(from: &sub, version: version)
            }
            let blocks = decoded.responses[0].partitions.map(\.recordBlock)
            XCTAssertEqual(blocks.map(\.bytes), [first, second], "v\(version)")
            XCTAssertTrue(blocks.allSatisfy { $0.parent === frame }, "slices of the answer's block (v\(version))")
            XCTAssertTrue(blocks.allSatisfy { frame!.contains(UnsafeRawPointer($0.base), count: $0.count) })
            let before = pool.statistics.retainedBytes
            frame = nil
            XCTAssertEqual(pool.statistics.retainedBytes, before, "the records still hold the answer (v\(version))")
            _ = consume blocks
            _ = consume decoded
            XCTAssertGreaterThan(pool.statistics.retainedBytes, before, "then its memory returns (v\(version))")
        }
    }
}

private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) &+ seed }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
