import CKlifeShim
import Glibc
import KlifeIO
import KlifeProtocol
import Synchronization

/// Memory the producing threads copy records' keys, values and headers into, so a record travels
/// to its reactor and waits for its acknowledgement holding no reference to the caller's data.
///
/// Why: a caller's `[UInt8]` kept in the record was freed by the reactor thread when the record
/// completed, far from the thread that allocated it. The allocator then takes the allocating
/// thread's arena lock for every such free and every new allocation there (≈ 20 % of a produce
/// run went to `malloc`, `free` and waking threads blocked on that lock). Copied here, the
/// caller's arrays die on the thread that made them, and each record's bytes are written once
/// more, on the producing thread, into memory shared by hundreds of records.
///
///     producing thread: prepare ─ lock a writer slot ─ take room in its open chunk ─ unlock ─ copy key, value, headers
///     reactor:          route → buffer → encode (reads the chunk) → acknowledgement → release
///     last release of a sealed chunk ─► free list ─► the next writer that needs a chunk
///
/// A chunk's `outstanding` count starts at ``PayloadChunk/openBias`` while a writer fills it;
/// records completing subtract one each; sealing subtracts the bias less the records written.
/// Whoever brings it to zero gives the chunk back. Records keep a chunk by `Unmanaged` reference
/// (no reference counting per record): the arena owns every chunk and outlives every record, as
/// the client does (records are completed before it goes).
///
/// Per record a chunk holds its ``DeliveryCompletion`` (initialized memory: the closure's
/// context is retained there, and released when the record's entry is released), four
/// `Int32`s — key length, value length (-1 for null), header count, header bytes — then the
/// key, the value and the headers in their wire form (encoded once, on the producing thread),
/// padded to 8 bytes. The record itself then holds no reference at all but its topic name.
///
/// Bounded: at most `maxChunks` chunks exist. When none is free (records pinned by a topic
/// without a leader, say), or every writer slot is busy, or the record is larger than a quarter
/// of a chunk, the record's bytes go into a standalone chunk of their own instead (one
/// allocation, freed when the record completes): never a wait, and no record keeps a reference
/// to anything but its completion.
final class PayloadArena: @unchecked Sendable {
    /// Bytes of one chunk.
    static let chunkBytes = 64 << 10
    /// The largest key, value and headers copied into shared chunks (larger records get a
    /// standalone chunk).
    static let maxCopiedBytes = chunkBytes / 4
    /// Per record: its completion, then key length, value length (-1 for null), header count
    /// and header bytes.
    static let completionBytes = 32
    static let lengthsBytes = 16
    static let recordHeaderBytes = completionBytes + lengthsBytes

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
        precondition(MemoryLayout<DeliveryCompletion>.stride <= Self.completionBytes
                     && MemoryLayout<DeliveryCompletion>.alignment <= 8, "a completion must fit its slot")
        self.maxChunks = max(maxChunks, 1)
        writers = (0..<max(writerCount, 1)).map { _ in PayloadWriter() }
        unretainedWriters = writers.map { Unmanaged.passUnretained($0) }
    }

    /// Copies `key`, `value` and `headers` (`headerBytes` of them in wire form:
    /// `RecordBatchLayout.headerBytes`) into a shared chunk, or into a standalone one when no
    /// shared chunk takes them (too large, no chunk free, every writer slot busy).
    /// - Returns: the chunk and the record's offset in it; give it back with
    ///   ``PayloadChunk/release(_:_:)`` once.
    @inline(__always)
    func copy(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: [RecordHeader],
              headerBytes: Int, completion: consuming DeliveryCompletion) -> (Unmanaged<PayloadChunk>, Int32) {
        let payload = (key?.count ?? 0) &+ (value?.count ?? 0) &+ headerBytes
        if payload <= Self.maxCopiedBytes {
            let need = Self.entryBytes(payload: payload)
            let start = Int(bitPattern: UInt(pthread_self()) &>> 8) & Int.max
            let count = unretainedWriters.count
            for attempt in 0..<count {
                // Only the room is taken under the slot's lock; the bytes are written after it (the
                // room is this record's alone). A closure capturing the headers array would retain it.
                let reserved = unretainedWriters[(start &+ attempt) % count]._withUnsafeGuaranteedRef {
                    writer -> (Unmanaged<PayloadChunk>, Int32)?? in
                    guard writer.tryLock() else { return .none }
                    defer { writer.unlock() }
                    return .some(writer.reserve(need, arena: self))
                }
                if let reserved, let (chunk, offset) = reserved {
                    Self.write(key: key, value: value, headers: headers, headerBytes: headerBytes, completion: completion,
                               at: chunk._withUnsafeGuaranteedRef { $0.base } + Int(offset))
                    return (chunk, offset)
                }
            }
        }
        return Self.standalone(key: key, value: value, headers: headers, headerBytes: headerBytes, completion: completion)
    }

    /// Bytes of one record's entry: its completion and lengths, then `payload` bytes of key,
    /// value and headers, padded to 8.
    @inline(__always)
    static func entryBytes(payload: Int) -> Int { (recordHeaderBytes &+ payload &+ 7) & ~7 }

    /// A chunk of the record's own (not part of any arena), holding one record.
    @inline(never)
    static func standalone(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: [RecordHeader],
                           headerBytes: Int, completion: consuming DeliveryCompletion) -> (Unmanaged<PayloadChunk>, Int32) {
        let chunk = PayloadChunk(standaloneBytes: entryBytes(payload: (key?.count ?? 0) &+ (value?.count ?? 0) &+ headerBytes))
        write(key: key, value: value, headers: headers, headerBytes: headerBytes, completion: completion, at: chunk.base)
        return (Unmanaged.passRetained(chunk), 0)
    }

    /// Writes one record's completion, lengths and bytes at `entry`.
    @inline(__always)
    fileprivate static func write(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: [RecordHeader],
                                  headerBytes: Int, completion: consuming DeliveryCompletion,
                                  at entry: UnsafeMutableRawPointer) {
        entry.initializeMemory(as: DeliveryCompletion.self, to: completion)
        let record = entry + completionBytes
        record.storeBytes(of: Int32(truncatingIfNeeded: key?.count ?? -1), as: Int32.self)
        record.storeBytes(of: Int32(truncatingIfNeeded: value?.count ?? -1), toByteOffset: 4, as: Int32.self)
        record.storeBytes(of: Int32(truncatingIfNeeded: headers.count), toByteOffset: 8, as: Int32.self)
        record.storeBytes(of: Int32(truncatingIfNeeded: headerBytes), toByteOffset: 12, as: Int32.self)
        var at = record + lengthsBytes
        if let key, let source = key.baseAddress, key.count > 0 {
            at.copyMemory(from: source, byteCount: key.count)
            at += key.count
        }
        if let value, let source = value.baseAddress, value.count > 0 {
            at.copyMemory(from: source, byteCount: value.count)
            at += value.count
        }
        if !headers.isEmpty {
            let end = RecordBatchLayout.writeHeaders(headers, at: at)
            precondition(at.distance(to: end) == headerBytes, "header size mismatch")
        }
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

    /// The completion of the record at `offset` in `chunk` (initialized until the record's
    /// entry is released: ``PendingRecord/releasePayload()``).
    @inline(__always)
    static func completion(in chunk: Unmanaged<PayloadChunk>, at offset: Int32) -> UnsafeMutablePointer<DeliveryCompletion> {
        (chunk._withUnsafeGuaranteedRef { $0.base } + Int(offset)).assumingMemoryBound(to: DeliveryCompletion.self)
    }

    /// Starts loading the entry at `offset` in `chunk` (its lengths and its first
    /// `payloadBytes` bytes) into the cache: a producing thread wrote it on another core, and
    /// the reactor reads it when it encodes the record.
    @inline(__always)
    static func prefetch(in chunk: Unmanaged<PayloadChunk>, at offset: Int32, payloadBytes: Int) {
        let entry = chunk._withUnsafeGuaranteedRef { UnsafeRawPointer($0.base) } + Int(offset)
        var line = 0
        let end = recordHeaderBytes &+ payloadBytes
        while line < end {
            klife_prefetch(entry + line)
            line &+= 64
        }
    }

    /// The key, value and encoded headers of the record at `offset` in `chunk`.
    @inline(__always)
    static func bytes(in chunk: Unmanaged<PayloadChunk>, at offset: Int32)
        -> (key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: EncodedHeaders) {
        let lengths = chunk._withUnsafeGuaranteedRef { UnsafeRawPointer($0.base) } + Int(offset) + completionBytes
        let headerCount = Int(lengths.loadUnaligned(fromByteOffset: 8, as: Int32.self))
        let headerBytes = Int(lengths.loadUnaligned(fromByteOffset: 12, as: Int32.self))
        let (key, value, end) = keyAndValue(in: chunk, at: offset,
                                            keyCount: Int(lengths.loadUnaligned(as: Int32.self)),
                                            valueCount: Int(lengths.loadUnaligned(fromByteOffset: 4, as: Int32.self)))
        return (key, value, EncodedHeaders(count: headerCount, bytes: UnsafeRawBufferPointer(start: end, count: headerBytes)))
    }

    /// Where the key and the value of the entry at `offset` in `chunk` lie, given their
    /// lengths (-1: null), and where the headers after them start. Reads nothing of the entry.
    @inline(__always)
    static func keyAndValue(in chunk: Unmanaged<PayloadChunk>, at offset: Int32, keyCount: Int, valueCount: Int)
        -> (key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, end: UnsafeRawPointer) {
        let keyStart = chunk._withUnsafeGuaranteedRef { UnsafeRawPointer($0.base) } + Int(offset) + recordHeaderBytes
        let valueStart = keyStart + max(keyCount, 0)
        return (keyCount < 0 ? nil : UnsafeRawBufferPointer(start: keyStart, count: keyCount),
                valueCount < 0 ? nil : UnsafeRawBufferPointer(start: valueStart, count: valueCount),
                valueStart + max(valueCount, 0))
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

    /// Takes `need` bytes of the open chunk (opening another when it has no room).
    /// - Returns: the chunk and the offset of the room, or `nil` when no chunk is free.
    func reserve(_ need: Int, arena: PayloadArena) -> (Unmanaged<PayloadChunk>, Int32)? {
        if chunk == nil || chunk.unsafelyUnwrapped.used &+ need > PayloadArena.chunkBytes {
            chunk?.seal()
            chunk = arena.takeChunk()
            guard chunk != nil else { return nil }
        }
        let open = chunk.unsafelyUnwrapped
        let offset = open.used
        open.used = offset &+ need
        open.written &+= 1
        return (Unmanaged.passUnretained(open), Int32(truncatingIfNeeded: offset))
    }
}

/// One chunk of a ``PayloadArena``, or a standalone chunk holding one record's bytes.
final class PayloadChunk: @unchecked Sendable {
    /// Added to `outstanding` while a writer fills the chunk, so completions never reach zero first.
    static let openBias = 1 << 40

    /// Read by the reactors for every record; kept off the line the writer updates per record.
    let base: UnsafeMutableRawPointer
    /// The arena the chunk goes back to; `nil` for a standalone chunk, freed instead.
    private unowned(unsafe) let arena: PayloadArena?
    /// Records not completed, plus ``openBias`` while open.
    private let outstanding = Atomic<Int>(0)
    private let apart = CacheLinePadding()
    /// Bytes and records written (by the writer holding the chunk only).
    fileprivate var used = 0
    fileprivate var written = 0

    fileprivate init(arena: PayloadArena) {
        self.arena = arena
        base = .allocate(byteCount: PayloadArena.chunkBytes, alignment: 16)
    }

    /// A standalone chunk of `count` bytes for one record; its one record is outstanding.
    fileprivate init(standaloneBytes count: Int) {
        arena = nil
        base = .allocate(byteCount: max(count, 8), alignment: 16)
        outstanding.store(1, ordering: .relaxed)
    }

    deinit { base.deallocate() }

    /// Whether this chunk holds one record of its own (no arena).
    var isStandalone: Bool { arena == nil }

    /// Ready for a writer (taken from the free list or new).
    fileprivate func open() {
        used = 0
        written = 0
        outstanding.store(Self.openBias, ordering: .relaxed)
    }

    /// The writer is done with the chunk: its count becomes the records still to complete.
    fileprivate func seal() {
        if outstanding.subtract(Self.openBias &- written, ordering: .acquiringAndReleasing).newValue == 0 {
            arena?.recycle(self)
        }
    }

    /// `count` records whose bytes lie in `chunk` completed: a shared chunk whose records all
    /// completed goes back to its arena, a standalone one is freed (the reference its record
    /// held is given up).
    @inline(__always)
    static func release(_ chunk: Unmanaged<PayloadChunk>, _ count: Int) {
        if chunk._withUnsafeGuaranteedRef({ $0.release(count) }) { chunk.release() }
    }

    /// - Returns: whether this was a standalone chunk's last record (the caller releases it).
    private func release(_ count: Int) -> Bool {
        guard outstanding.subtract(count, ordering: .acquiringAndReleasing).newValue == 0 else { return false }
        guard let arena else { return true }
        arena.recycle(self)
        return false
    }
}
