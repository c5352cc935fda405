/// A block of slots for ``ChunkedQueue``: one fixed-size allocation, recycled through a
/// ``ChunkPool``. Slots `start..<end` hold elements; the rest are uninitialized.
///
/// The only type here that touches raw memory; its invariants are local: `start <= end <=
/// capacity`, exactly the slots `start..<end` are initialized, and `deinit` destroys them.
public final class QueueChunk<Element> {
    @usableFromInline let slots: UnsafeMutablePointer<Element>
    @usableFromInline let capacity: Int
    /// First slot holding an element.
    // `@exclusivity(unchecked)`: a chunk is used by one thread, and the runtime's access checks
    // on every append cost more than the append (docs/DESIGN.md, performance rules).
    @exclusivity(unchecked) @usableFromInline var start = 0
    /// One past the last slot holding an element.
    @exclusivity(unchecked) @usableFromInline var end = 0

    @usableFromInline
    init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
    }

    deinit {
        (slots + start).deinitialize(count: end - start)
        slots.deallocate()
    }
}

/// Empty chunks kept for reuse by one owner (not thread-safe: one thread uses it). A queue
/// that drains and fills again takes its chunks from here instead of allocating: memory is
/// reused instead of being returned to the allocator (or the kernel) and faulted in again.
public final class ChunkPool<Element> {
    @exclusivity(unchecked) @usableFromInline var free: [QueueChunk<Element>] = []
    /// Elements per chunk.
    public let chunkCapacity: Int
    /// At most this many empty chunks are kept (the rest are freed).
    public let limit: Int

    /// - Parameters:
    ///   - chunkCapacity: elements per chunk (choose chunks of a few tens of KiB: below
    ///     malloc's mmap threshold, so even freed chunks are reused by the allocator).
    ///   - limit: empty chunks kept at most.
    public init(chunkCapacity: Int, limit: Int) {
        precondition(chunkCapacity > 0 && limit >= 0, "a chunk holds at least one element")
        self.chunkCapacity = chunkCapacity
        self.limit = limit
    }

    @inlinable
    func take() -> QueueChunk<Element> {
        free.popLast() ?? QueueChunk(capacity: chunkCapacity)
    }

    /// Takes back a chunk whose elements were all moved out.
    @inlinable
    func give(_ chunk: QueueChunk<Element>) {
        precondition(chunk.start == chunk.end, "a chunk given back still holds elements")
        chunk.start = 0
        chunk.end = 0
        if free.count < limit { free.append(chunk) }
    }

    /// Empty chunks kept right now.
    public var pooledCount: Int { free.count }
}

/// A FIFO in chunks: appending never moves earlier elements, and taking from the front moves
/// elements out (no copy, so no reference counting of what they hold). Chunks come from and
/// go back to a ``ChunkPool``.
///
/// Mutate it in place only: a copy would share its chunks, and both would move the same
/// elements out.
public struct ChunkedQueue<Element> {
    @usableFromInline var chunks: [QueueChunk<Element>] = []
    /// Index in `chunks` of the chunk holding the first element (earlier ones were given back
    /// and are dropped from the array in batches).
    @usableFromInline var first = 0
    @usableFromInline var storedCount = 0

    /// Elements in the queue.
    @inlinable public var count: Int { storedCount }

    /// An empty queue.
    public init() {}

    /// Whether the queue is empty.
    @inlinable public var isEmpty: Bool { count == 0 }

    /// Adds an element at the back.
    @inlinable
    public mutating func append(_ element: consuming Element, pool: ChunkPool<Element>) {
        if chunks.count == first || chunks[chunks.count - 1].end == chunks[chunks.count - 1].capacity {
            chunks.append(pool.take())
        }
        let tail = chunks[chunks.count - 1]
        (tail.slots + tail.end).initialize(to: element)
        tail.end += 1
        storedCount += 1
    }

    /// Puts `elements` in front of every element here, in their order (a slow path: it moves
    /// every element once).
    public mutating func prepend(_ elements: consuming [Element], pool: ChunkPool<Element>) {
        guard !elements.isEmpty else { return }
        var rest: [Element] = []
        rest.reserveCapacity(count)
        moveFront(count, appendingTo: &rest, pool: pool)
        for e in elements { append(e, pool: pool) }
        for e in rest { append(e, pool: pool) }
    }

    /// Calls `body` with each element from the front, borrowed where it lies, until it
    /// returns false.
    @inlinable
    public func forEachFromFront(_ body: (borrowing Element) -> Bool) {
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

    /// Reads the first element in place, or returns `nil` when the queue is empty.
    @inlinable
    public func withFirst<R>(_ body: (borrowing Element) -> R) -> R? {
        guard count > 0 else { return nil }
        let chunk = chunks[first]
        return body(chunk.slots[chunk.start])
    }

    /// Moves the first `n` elements (at most `count`) to the end of `target`, oldest first,
    /// giving emptied chunks back to `pool`.
    @inlinable
    public mutating func moveFront(_ n: Int, appendingTo target: inout [Element], pool: ChunkPool<Element>) {
        var left = min(n, count)
        storedCount -= left
        target.reserveCapacity(target.count + left)
        while left > 0 {
            let chunk = chunks[first]
            let taken = min(left, chunk.end - chunk.start)
            let from = chunk.slots + chunk.start
            for i in 0..<taken { target.append((from + i).move()) }
            chunk.start += taken
            left -= taken
            if chunk.start == chunk.end { releaseFirstChunk(pool: pool) }
        }
    }

    /// Moves every element to the end of `target`.
    @inlinable
    public mutating func removeAll(appendingTo target: inout [Element], pool: ChunkPool<Element>) {
        moveFront(count, appendingTo: &target, pool: pool)
    }

    @usableFromInline
    mutating func releaseFirstChunk(pool: ChunkPool<Element>) {
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
