import Glibc
import KlifeIO
import Synchronization

/// Memory the producing threads copy records' keys and values into, so a record travels to its
/// reactor and waits for its acknowledgement holding no reference to the caller's arrays.
///
/// Why: a caller's `[UInt8]` kept in the record was freed by the reactor thread when the record
/// completed, far from the thread that allocated it. The allocator then takes the allocating
/// thread's arena lock for every such free and every new allocation there (≈ 20 % of a produce
/// run went to `malloc`, `free` and waking threads blocked on that lock). Copied here, the
/// caller's arrays die on the thread that made them, and each record's bytes are written once
/// more, on the producing thread, into memory shared by hundreds of records.
///
///     producing thread: prepare ─ lock a writer slot ─ copy key/value into its open chunk ─ unlock
///     reactor:          route → buffer → encode (reads the chunk) → acknowledgement → release
///     last release of a sealed chunk ─► free list ─► the next writer that needs a chunk
///
/// A chunk's `outstanding` count starts at ``PayloadChunk/openBias`` while a writer fills it;
/// records completing subtract one each; sealing subtracts the bias less the records written.
/// Whoever brings it to zero gives the chunk back. Records keep a chunk by `Unmanaged` reference
/// (no reference counting per record): the arena owns every chunk and outlives every record, as
/// the client does (records are completed before it goes).
///
/// Bounded: at most `maxChunks` chunks exist. When none is free (records pinned by a topic
/// without a leader, say), a record keeps the caller's arrays instead — never a wait, never more
/// memory. Records too large for a quarter of a chunk keep their arrays too.
final class PayloadArena: @unchecked Sendable {
    /// Bytes of one chunk.
    static let chunkBytes = 64 << 10
    /// The largest key plus value copied (larger records keep the caller's arrays).
    static let maxCopiedBytes = chunkBytes / 4
    /// Per record: key length and value length (Int32 each, -1 for null) before the bytes.
    static let recordHeaderBytes = 8

    private let writers: [PayloadWriter]
    /// `writers` lent without reference counting (`writers` keeps them): a slot read from the
    /// array is retained and released on every record otherwise.
    private let unretainedWriters: [Unmanaged<PayloadWriter>]
    private let free = Locked<[PayloadChunk]>([])
    let maxChunks: Int
    /// Every chunk ever made (the arena owns them; records hold them unretained).
    private let all = Locked<[PayloadChunk]>([])

    /// An arena of at most `maxChunks` chunks, written through `writerCount` slots (producing
    /// threads that pick a busy slot try the next ones).
    init(maxChunks: Int, writerCount: Int = 8) {
        self.maxChunks = max(maxChunks, 1)
        writers = (0..<max(writerCount, 1)).map { _ in PayloadWriter() }
        unretainedWriters = writers.map { Unmanaged.passUnretained($0) }
    }

    /// Copies `key` and `value` into a chunk.
    /// - Returns: the chunk and the record's offset in it, or `nil` when the record keeps its
    ///   arrays (too large, no chunk free, every writer slot busy).
    @inline(__always)
    func copy(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?) -> (Unmanaged<PayloadChunk>, Int32)? {
        let keyCount = key?.count ?? 0
        let valueCount = value?.count ?? 0
        let payload = keyCount &+ valueCount
        guard payload <= Self.maxCopiedBytes else { return nil }
        let need = (Self.recordHeaderBytes &+ payload &+ 7) & ~7
        let start = Int(bitPattern: UInt(pthread_self()) &>> 8) & Int.max
        let count = unretainedWriters.count
        for attempt in 0..<count {
            let copied = unretainedWriters[(start &+ attempt) % count]._withUnsafeGuaranteedRef {
                writer -> (Unmanaged<PayloadChunk>, Int32)?? in
                guard writer.tryLock() else { return .none }
                defer { writer.unlock() }
                return .some(writer.write(key: key, value: value, need: need, arena: self))
            }
            if let copied { return copied }
        }
        return nil
    }

    /// A chunk for a writer: a free one, or a new one while fewer than `maxChunks` exist.
    fileprivate func takeChunk() -> PayloadChunk? {
        let limit = maxChunks
        let chunk = free.withLock({ $0.popLast() }) ?? all.withLock { all -> PayloadChunk? in
            guard all.count < limit else { return nil }
            let made = PayloadChunk(arena: self)
            all.append(made)
            return made
        }
        chunk?.open()
        return chunk
    }

    /// A sealed chunk whose records all completed.
    fileprivate func recycle(_ chunk: PayloadChunk) {
        free.withLock { $0.append(chunk) }
    }

    /// Chunks made so far, and how many are free (tests and statistics).
    var chunkCounts: (created: Int, free: Int) {
        (all.withLock { $0.count }, free.withLock { $0.count })
    }

    /// The key and value of the record at `offset` in `chunk`.
    @inline(__always)
    static func bytes(in chunk: Unmanaged<PayloadChunk>, at offset: Int32)
        -> (key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?) {
        let record = chunk._withUnsafeGuaranteedRef { UnsafeRawPointer($0.base) } + Int(offset)
        let keyCount = Int(record.loadUnaligned(as: Int32.self))
        let valueCount = Int(record.loadUnaligned(fromByteOffset: 4, as: Int32.self))
        let keyStart = record + recordHeaderBytes
        let key = keyCount < 0 ? nil : UnsafeRawBufferPointer(start: keyStart, count: keyCount)
        let value = valueCount < 0 ? nil : UnsafeRawBufferPointer(start: keyStart + max(keyCount, 0), count: valueCount)
        return (key, value)
    }

    deinit {
        for chunk in all.withLock({ $0 }) { chunk.base.deallocate() }
    }
}

/// One writer slot: a try-lock and the chunk it fills. A producing thread holds the lock for
/// one copy.
private final class PayloadWriter: @unchecked Sendable {
    private let busy = Atomic<Bool>(false)
    /// The open chunk (only touched with `busy` held).
    private var chunk: PayloadChunk?

    @inline(__always)
    func tryLock() -> Bool {
        !busy.load(ordering: .relaxed) && !busy.exchange(true, ordering: .acquiring)
    }

    @inline(__always)
    func unlock() { busy.store(false, ordering: .releasing) }

    func write(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, need: Int,
               arena: PayloadArena) -> (Unmanaged<PayloadChunk>, Int32)? {
        if chunk == nil || chunk.unsafelyUnwrapped.used &+ need > PayloadArena.chunkBytes {
            chunk?.seal()
            chunk = arena.takeChunk()
            guard chunk != nil else { return nil }
        }
        let open = chunk.unsafelyUnwrapped
        let offset = open.used
        let record = open.base + offset
        record.storeBytes(of: Int32(truncatingIfNeeded: key?.count ?? -1), as: Int32.self)
        record.storeBytes(of: Int32(truncatingIfNeeded: value?.count ?? -1), toByteOffset: 4, as: Int32.self)
        var at = record + PayloadArena.recordHeaderBytes
        if let key, let source = key.baseAddress, key.count > 0 {
            at.copyMemory(from: source, byteCount: key.count)
            at += key.count
        }
        if let value, let source = value.baseAddress, value.count > 0 {
            at.copyMemory(from: source, byteCount: value.count)
        }
        open.used = offset &+ need
        open.written &+= 1
        return (Unmanaged.passUnretained(open), Int32(truncatingIfNeeded: offset))
    }
}

/// One chunk of a ``PayloadArena``.
final class PayloadChunk: @unchecked Sendable {
    /// Added to `outstanding` while a writer fills the chunk, so completions never reach zero first.
    static let openBias = 1 << 40

    let base: UnsafeMutableRawPointer
    /// Bytes and records written (by the writer holding the chunk only).
    fileprivate var used = 0
    fileprivate var written = 0
    /// Records not completed, plus ``openBias`` while open.
    private let outstanding = Atomic<Int>(0)
    private unowned(unsafe) let arena: PayloadArena

    fileprivate init(arena: PayloadArena) {
        self.arena = arena
        base = .allocate(byteCount: PayloadArena.chunkBytes, alignment: 16)
    }

    /// Ready for a writer (taken from the free list or new).
    fileprivate func open() {
        used = 0
        written = 0
        outstanding.store(Self.openBias, ordering: .relaxed)
    }

    /// The writer is done with the chunk: its count becomes the records still to complete.
    fileprivate func seal() {
        if outstanding.subtract(Self.openBias &- written, ordering: .acquiringAndReleasing).newValue == 0 {
            arena.recycle(self)
        }
    }

    /// `count` records whose bytes lie here completed.
    func release(_ count: Int) {
        if outstanding.subtract(count, ordering: .acquiringAndReleasing).newValue == 0 {
            arena.recycle(self)
        }
    }
}
