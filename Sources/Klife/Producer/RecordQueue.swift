/// A block of slots for ``PendingRecord``s: the unit ``RecordQueue`` grows and shrinks by.
///
/// One fixed-size allocation (about 64 KiB, below malloc's mmap threshold, so freed blocks
/// are reused by the allocator instead of being returned to the kernel and faulted in again),
/// recycled through ``RecordChunkPool``. Slots `start..<end` hold records; the rest are
/// uninitialized. The only type here that touches raw memory.
final class RecordChunk {
    /// Slots per chunk.
    static let capacity = 512

    let slots: UnsafeMutablePointer<PendingRecord>
    /// First slot holding a record.
    var start = 0
    /// One past the last slot holding a record.
    var end = 0

    init() {
        slots = .allocate(capacity: Self.capacity)
    }

    deinit {
        (slots + start).deinitialize(count: end - start)
        slots.deallocate()
    }

    var count: Int { end - start }
}

/// Empty chunks kept for reuse by one ``ProducerEngine`` (reactor thread only): a deep
/// backlog that drains and fills again reuses the same memory instead of growing arrays
/// (which faults in and zeroes fresh pages every time).
final class RecordChunkPool {
    private var free: [RecordChunk] = []
    /// At most this many empty chunks are kept (the rest are freed).
    let limit: Int

    init(limit: Int = 1024) {
        self.limit = limit
    }

    func take() -> RecordChunk {
        free.popLast() ?? RecordChunk()
    }

    /// Takes back a chunk whose records were all moved out.
    func give(_ chunk: RecordChunk) {
        precondition(chunk.start == chunk.end, "a chunk given back still holds records")
        chunk.start = 0
        chunk.end = 0
        if free.count < limit { free.append(chunk) }
    }

    var pooledCount: Int { free.count }
}

/// A FIFO of pending records in chunks: appending never moves earlier records, and taking
/// from the front moves records out (no retain or release of what they hold).
struct RecordQueue {
    private var chunks: [RecordChunk] = []
    /// Index in `chunks` of the chunk holding the first record (earlier ones were given back
    /// and are dropped from the array in batches).
    private var first = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Adds a record at the back.
    @inline(__always)
    mutating func append(_ record: consuming PendingRecord, pool: RecordChunkPool) {
        if chunks.count == first || chunks[chunks.count - 1].end == RecordChunk.capacity {
            chunks.append(pool.take())
        }
        let tail = chunks[chunks.count - 1]
        (tail.slots + tail.end).initialize(to: record)
        tail.end += 1
        count += 1
    }

    /// Puts `records` in front of every record here, in their order (retries, records put back).
    mutating func prepend(_ records: consuming [PendingRecord], pool: RecordChunkPool) {
        guard !records.isEmpty else { return }
        var rest: [PendingRecord] = []
        rest.reserveCapacity(count)
        moveFront(count, appendingTo: &rest, pool: pool)
        for r in records { append(r, pool: pool) }
        for r in rest { append(r, pool: pool) }
    }

    /// Calls `body` with each record from the front, borrowed where it lies, until it returns false.
    @inline(__always)
    func forEachFromFront(_ body: (borrowing PendingRecord) -> Bool) {
        var c = first
        while c < chunks.count {
            let chunk = chunks[c]
            var i = chunk.start
            while i < chunk.end {
                if !body(chunk.slots[i]) { return }
                i += 1
            }
            c += 1
        }
    }

    /// The first record's delivery deadline.
    var firstDeadline: UInt64? {
        guard count > 0 else { return nil }
        let chunk = chunks[first]
        return chunk.slots[chunk.start].deadline
    }

    /// Moves the first `n` records (at most `count`) to the end of `target`, oldest first,
    /// giving emptied chunks back to `pool`.
    mutating func moveFront(_ n: Int, appendingTo target: inout [PendingRecord], pool: RecordChunkPool) {
        var left = min(n, count)
        count -= left
        target.reserveCapacity(target.count + left)
        while left > 0 {
            let chunk = chunks[first]
            let take = min(left, chunk.count)
            let from = chunk.slots + chunk.start
            for i in 0..<take { target.append((from + i).move()) }
            chunk.start += take
            left -= take
            if chunk.start == chunk.end { releaseFirstChunk(pool: pool) }
        }
    }

    /// Moves every record to the end of `target`.
    mutating func removeAll(appendingTo target: inout [PendingRecord], pool: RecordChunkPool) {
        moveFront(count, appendingTo: &target, pool: pool)
    }

    private mutating func releaseFirstChunk(pool: RecordChunkPool) {
        pool.give(chunks[first])
        first += 1
        // Drop released chunks from the array in batches (amortized O(1) per chunk).
        if first == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            first = 0
        } else if first >= 32 && first * 2 >= chunks.count {
            chunks.removeFirst(first)
            first = 0
        }
    }
}
