import CKlifeShim
import Synchronization

/// Immutable bytes in memory of their own, shared by reference: the records of a Fetch answer's
/// partition, or the decompressed records of its batches. Every record read from them is a view
/// (a position and a length) over one block.
///
/// Large blocks come from a ``ByteBlockPool`` and go back to it when the last reference goes,
/// so the next answer reuses memory that is already mapped: a fresh allocation of that size is
/// served by `mmap` or by a heap the allocator trims, and faulting its pages in again (the kernel
/// zeroing each one) cost more than reading the records.
///
/// A block can also be a slice of another (``init(slicing:offset:count:)``): a whole Fetch answer
/// read straight from the socket into one block, its partitions' records slices of it. A slice
/// keeps its parent, and so all of the parent's memory, alive.
///
/// The bytes are written once, before the block is shared, and never again.
public final class ByteBlock: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Number of bytes.
    public let count: Int
    /// Bytes allocated (a pool's size class; at least `count`); 0 for a slice.
    let capacity: Int
    /// Where the memory goes back to; `nil` when it is freed (or belongs to `parent`).
    let pool: ByteBlockPool?
    /// The block a slice's bytes belong to; `nil` for a block that owns its memory.
    let parent: ByteBlock?

    /// A copy of `bytes`, in memory from `pool` when they are large enough to be pooled.
    public init(copying bytes: UnsafeRawBufferPointer, pool: ByteBlockPool? = .shared) {
        let (memory, capacity, owner) = ByteBlock.allocate(bytes.count, pool: pool)
        if let source = bytes.baseAddress, bytes.count > 0 { memory.copyMemory(from: source, byteCount: bytes.count) }
        self.base = memory
        self.count = bytes.count
        self.capacity = capacity
        self.pool = owner
        self.parent = nil
    }

    /// A copy of `bytes`, in memory from `pool` when they are large enough to be pooled.
    public convenience init(_ bytes: [UInt8], pool: ByteBlockPool? = .shared) {
        self.init(count: bytes.count, pool: pool) { target in
            bytes.withUnsafeBytes { if $0.count > 0 { target.copyMemory(from: $0) } }
        }
    }

    /// `count` bytes written by `fill`, which gets exactly that many uninitialised bytes and must
    /// write all of them.
    public init(count: Int, pool: ByteBlockPool? = .shared, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let (memory, capacity, owner) = ByteBlock.allocate(count, pool: pool)
        fill(UnsafeMutableRawBufferPointer(start: memory, count: count))
        self.base = memory
        self.count = count
        self.capacity = capacity
        self.pool = owner
        self.parent = nil
    }

    /// `count` bytes of `parent` from `offset`, sharing its memory (no copy); `parent` stays
    /// alive as long as the slice does. A slice of a slice refers to the owning block.
    public init(slicing parent: ByteBlock, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset <= parent.count - count,
                     "ByteBlock slice \(offset)..<\(offset + count) outside 0..<\(parent.count)")
        self.base = parent.base + offset
        self.count = count
        self.capacity = 0
        self.pool = nil
        self.parent = parent.parent ?? parent
    }

    /// A block of `count` bytes that its maker fills after creating it, in as many steps as it
    /// needs, through ``unsafeWritableBytes``, and shares only once every byte is written (a
    /// channel reading a frame straight into it).
    package init(unfilledCount count: Int, pool: ByteBlockPool? = .shared) {
        let (memory, capacity, owner) = ByteBlock.allocate(count, pool: pool)
        self.base = memory
        self.count = count
        self.capacity = capacity
        self.pool = owner
        self.parent = nil
    }

    /// The bytes, for the maker of an ``init(unfilledCount:pool:)`` block only, before it
    /// shares the block.
    package var unsafeWritableBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: count)
    }

    /// Whether `pointer ..< pointer + count` lies inside these bytes (then it can be sliced).
    @inlinable
    public func contains(_ pointer: UnsafeRawPointer, count: Int) -> Bool {
        let start = UnsafeRawPointer(base)
        return pointer >= start && count >= 0 && pointer - start <= self.count - count
    }

    /// The bytes of `first` followed by those of `second`.
    public convenience init(concatenating first: ByteBlock, _ second: ByteBlock, pool: ByteBlockPool? = .shared) {
        self.init(count: first.count + second.count, pool: pool) { target in
            first.withUnsafeBytes { target.copyMemory(from: $0) }
            second.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: target[first.count...]).copyMemory(from: $0) }
        }
    }

    deinit {
        if parent != nil { return }
        if let pool {
            pool.giveBack(base, capacity: capacity)
        } else {
            base.deallocate()
        }
    }

    /// No bytes.
    public static let empty = ByteBlock(copying: UnsafeRawBufferPointer(start: nil, count: 0), pool: nil)

    /// The byte at `position` (0 ..< ``count``).
    @inlinable public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < count, "ByteBlock index out of range")
        return base.load(fromByteOffset: position, as: UInt8.self)
    }

    /// Calls `body` with the bytes in place (valid only during the call).
    @inlinable public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withExtendedLifetime(self) { () throws(E) -> R in
            try body(UnsafeRawBufferPointer(start: base, count: count))
        }
    }

    /// The bytes in a new array.
    public var bytes: [UInt8] { withUnsafeBytes { [UInt8]($0) } }

    /// Whether there are no bytes.
    public var isEmpty: Bool { count == 0 }

    /// Memory for `count` bytes: from `pool` when it pools that size, else allocated exactly.
    private static func allocate(_ count: Int, pool: ByteBlockPool?)
        -> (memory: UnsafeMutableRawPointer, capacity: Int, pool: ByteBlockPool?) {
        if let pool, let (memory, capacity) = pool.take(count) { return (memory, capacity, pool) }
        let capacity = max(count, 1)
        return (UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16), capacity, nil)
    }
}

extension ByteBlock: Hashable {
    /// Byte-wise equality.
    public static func == (a: ByteBlock, b: ByteBlock) -> Bool {
        a === b || (a.count == b.count && a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } })
    }

    /// Hashes the bytes.
    public func hash(into hasher: inout Hasher) { withUnsafeBytes { hasher.combine(bytes: $0) } }
}

/// Memory for large ``ByteBlock``s, kept after use so the next blocks do not fault pages in.
///
/// Sizes from ``minimumPooledBytes`` up to ``maximumPooledBytes`` are allocated rounded up to a
/// size class (four per power of two) and kept, at most ``maxRetainedBytes`` in all; a request
/// takes the smallest kept block that holds it and wastes at most half of it (Fetch answers of
/// one size limit vary by a batch or so, so blocks of neighbouring classes serve each other).
/// Smaller and larger blocks are allocated and freed as usual.
/// Thread-safe: blocks are made on a reactor and released wherever their last reader drops them.
public final class ByteBlockPool: @unchecked Sendable {
    /// The smallest block kept (smaller ones are cheap for the allocator to serve).
    public static let minimumPooledBytes = 64 << 10
    /// The largest block kept.
    public static let maximumPooledBytes = 16 << 20

    /// The pool Fetch answers are decoded into: up to 64 MiB kept.
    public static let shared = ByteBlockPool(maxRetainedBytes: 64 << 20)

    /// The most memory kept unused.
    public let maxRetainedBytes: Int

    /// Sendable as plain values: memory is held by address while unused.
    private struct State: Sendable {
        /// Unused memory: address and capacity, by increasing capacity.
        var free: [(address: UInt, capacity: Int)] = []
        var retainedBytes = 0
        var reused = 0
        var allocated = 0
    }

    /// What the pool did so far.
    public struct Statistics: Sendable, Equatable {
        /// Bytes kept unused right now.
        public var retainedBytes: Int
        /// Blocks served from kept memory.
        public var reused: Int
        /// Blocks of a pooled size served with new memory (the pool had none that fit).
        public var allocated: Int
    }

    /// What the pool did so far.
    public var statistics: Statistics {
        locked { Statistics(retainedBytes: $0.retainedBytes, reused: $0.reused, allocated: $0.allocated) }
    }

    private let state = Mutex(State())

    /// A pool keeping at most `maxRetainedBytes` unused.
    public init(maxRetainedBytes: Int) {
        self.maxRetainedBytes = max(maxRetainedBytes, 0)
    }

    deinit {
        state.withLock { s in
            for block in s.free { Self.memory(at: block.address).deallocate() }
            s.free.removeAll()
        }
    }

    /// The size class `count` bytes are rounded up to, or `nil` when blocks of that size are not pooled.
    static func sizeClass(_ count: Int) -> Int? {
        guard count >= minimumPooledBytes, count <= maximumPooledBytes else { return nil }
        // Four classes per power of two: round up to a multiple of a quarter of the power below.
        let power = Int.bitWidth - 1 - count.leadingZeroBitCount
        let step = 1 << (power - 2)
        return (count + step - 1) / step * step
    }

    /// Memory of at least `count` bytes, kept or new; `nil` when that size is not pooled.
    func take(_ count: Int) -> (UnsafeMutableRawPointer, Int)? {
        guard let size = Self.sizeClass(count) else { return nil }
        let kept: (address: UInt, capacity: Int)? = locked { s in
            guard let i = s.free.firstIndex(where: { $0.capacity >= count }), s.free[i].capacity <= count * 2 else {
                s.allocated += 1
                return nil
            }
            s.reused += 1
            s.retainedBytes -= s.free[i].capacity
            return s.free.remove(at: i)
        }
        if let kept { return (Self.memory(at: kept.address), kept.capacity) }
        return (UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16), size)
    }

    /// Takes back memory of a block that is gone: kept while the pool has room, freed otherwise.
    func giveBack(_ memory: UnsafeMutableRawPointer, capacity: Int) {
        let address = UInt(bitPattern: memory)
        let limit = maxRetainedBytes
        let kept = locked { s in
            guard s.retainedBytes + capacity <= limit else { return false }
            let at = s.free.firstIndex { $0.capacity >= capacity } ?? s.free.count
            s.free.insert((address, capacity), at: at)
            s.retainedBytes += capacity
            return true
        }
        if !kept { memory.deallocate() }
    }

    /// Frees every kept block.
    public func trim() {
        let blocks: [UInt] = locked { s in
            let all = s.free.map(\.address)
            s.free.removeAll()
            s.retainedBytes = 0
            return all
        }
        for address in blocks { Self.memory(at: address).deallocate() }
    }

    private static func memory(at address: UInt) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped
    }

    /// The lock, with its acquire and release told to ThreadSanitizer (the standard library's
    /// futex code underneath is not instrumented).
    private func locked<R: Sendable>(_ body: (inout State) -> R) -> R {
        let name = Unmanaged.passUnretained(self).toOpaque()
        return state.withLock { s in
            klife_tsan_acquire(name)
            defer { klife_tsan_release(name) }
            return body(&s)
        }
    }
}
