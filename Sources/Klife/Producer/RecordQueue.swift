import KlifeIO

/// A partition's never-sent records: a ``ChunkedQueue`` of pending records, whose chunks come
/// from the engine's ``RecordChunkPool``.
typealias RecordQueue = ChunkedQueue<PendingRecord>

/// The engine's recycled chunks of pending records.
typealias RecordChunkPool = ChunkPool<PendingRecord>

/// The chunk size of record queues.
enum RecordChunk {
    /// Records per chunk: 512 records of about 120 bytes is about 60 KiB, below malloc's mmap
    /// threshold, so even chunks the pool frees are reused by the allocator rather than
    /// returned to the kernel and faulted in again.
    static let capacity = 512
    /// Empty chunks an engine keeps (about 60 MiB at most).
    static let pooled = 1024
}

extension ChunkPool where Element == PendingRecord {
    /// A pool of ``RecordChunk/capacity``-record chunks keeping up to ``RecordChunk/pooled``.
    convenience init() {
        self.init(chunkCapacity: RecordChunk.capacity, limit: RecordChunk.pooled)
    }
}
