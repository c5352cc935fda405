import CKlifeShim

/// A RecordBatch v2 written record by record, in its final wire form, as the records
/// arrive: a producer's *open batch* of one partition.
///
/// Each record is encoded once, when it is appended (its deltas count from the batch's
/// first record), into a block of memory the batch owns. Sending the batch later is a header
/// patch and one CRC over bytes already in place (``frame(producerID:producerEpoch:baseSequence:isTransactional:)``),
/// and framing again with another producer identity (an epoch bump) rewrites the header and
/// the CRC only — the records' bytes never move. ``reopen(baseTimestamp:)`` starts a new batch
/// in the same block, so a pool of batches allocates nothing in the steady state.
///
///     var batch = AppendingRecordBatch(limit: 1 << 20, baseTimestamp: now)
///     if !batch.tryAppend(timestamp: now, key: nil, value: bytes, headers: .none) {
///         // full: frame and send `batch`, then append to a fresh one
///     }
///     let wire = batch.frame(producerID: id, producerEpoch: epoch, baseSequence: 0,
///                            isTransactional: false)
///
/// A batch holds at most `limit` bytes, header included, except that its first record is
/// always taken (a record larger than the limit becomes a batch of its own; the block grows
/// for it). The records are written uncompressed; a compressing producer compresses the
/// framed batch's records as a whole.
public struct AppendingRecordBatch: ~Copyable {
    @usableFromInline internal var writer: ByteWriter
    @usableFromInline internal var encoder: RecordBatchEncoder
    /// The most bytes a batch holds, header included, unless its first record alone is larger.
    public let limit: Int
    /// Where the plain records end once a compressed copy was framed after them (-1 before).
    @usableFromInline internal var plainEnd = -1

    /// An empty batch whose records' timestamps are stored as deltas from `baseTimestamp`
    /// (usually the first record's), in a block of `initialCapacity` bytes that grows up to
    /// `limit` as records come (a pooled batch keeps what it grew to).
    public init(limit: Int, baseTimestamp: Int64, initialCapacity: Int = 16_384) {
        precondition(limit > RecordBatchLayout.headerSize, "a batch limit must exceed the 61-byte header")
        self.limit = limit
        var writer = ByteWriter(capacity: min(limit, initialCapacity))
        encoder = RecordBatchEncoder(writer: &writer, baseTimestamp: baseTimestamp)
        self.writer = writer
    }

    /// Empties the batch, keeping its block, for records whose deltas count from `baseTimestamp`.
    public mutating func reopen(baseTimestamp: Int64) {
        writer.removeAll()
        plainEnd = -1
        encoder = RecordBatchEncoder(writer: &writer, baseTimestamp: baseTimestamp)
    }

    /// Number of records appended.
    @inlinable public var recordCount: Int { Int(encoder.recordCount) }

    /// Whether no record was appended.
    @inlinable public var isEmpty: Bool { encoder.recordCount == 0 }

    /// Bytes of the batch so far, header included.
    @inlinable public var byteCount: Int { writer.count }

    /// The batch's BaseTimestamp.
    @inlinable public var baseTimestamp: Int64 { encoder.baseTimestamp }

    /// Bytes the record would take appended next: its exact wire size at this batch's next
    /// offset delta and at `timestamp`'s delta from ``baseTimestamp``.
    @inlinable @inline(__always)
    public func sizeOfNext(timestamp: Int64, keyCount: Int?, valueCount: Int?, headers: EncodedHeaders) -> Int {
        RecordBatchLayout.recordSize(offsetDelta: encoder.recordCount, timestampDelta: timestamp &- encoder.baseTimestamp,
                                     keyCount: keyCount, valueCount: valueCount, headers: headers)
    }

    /// Appends a record in its wire form if it fits within ``limit`` (the first record of a
    /// batch always does). `nil` key or value is null; headers are given in wire form.
    /// - Returns: `false`, and nothing written, when the batch has no room for it.
    @inlinable
    public mutating func tryAppend(timestamp: Int64, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
                                   headers: EncodedHeaders) -> Bool {
        encoder.append(into: &writer, timestamp: timestamp, key: key, value: value, headers: headers, limit: limit)
    }

    /// The batch in its wire form, stamped with a producer identity: ProducerId, ProducerEpoch,
    /// BaseSequence and the transactional bit written into the header, then Length,
    /// LastOffsetDelta, MaxTimestamp, RecordCount and the CRC. Framing again (another epoch,
    /// another base sequence) rewrites those fields and the CRC; the records are untouched.
    ///
    /// Use `-1` for the identity fields of a producer without idempotence. The bytes stay
    /// valid until the batch is changed, reopened or destroyed.
    public mutating func frame(producerID: Int64, producerEpoch: Int16, baseSequence: Int32,
                               isTransactional: Bool) -> UnsafeRawBufferPointer {
        let start = stampForFraming(producerID: producerID, producerEpoch: producerEpoch, baseSequence: baseSequence,
                                    isTransactional: isTransactional)
        let size = encoder.finish(into: &writer)
        return writer.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[start..<(start + size)]) }
    }

    /// As ``frame(producerID:producerEpoch:baseSequence:isTransactional:)``, compressed with
    /// `codec` when that makes the batch smaller (else, or when the codec fails, the plain
    /// batch). The compressed copy is built after the plain records, which stay: framing again
    /// (a retry after an epoch bump) compresses them afresh.
    public mutating func frameCompressedIfSmaller(producerID: Int64, producerEpoch: Int16, baseSequence: Int32,
                                                  isTransactional: Bool, codec: CompressionCodec,
                                                  level: Int32?) -> UnsafeRawBufferPointer {
        guard codec != .none else {
            return frame(producerID: producerID, producerEpoch: producerEpoch, baseSequence: baseSequence,
                         isTransactional: isTransactional)
        }
        _ = stampForFraming(producerID: producerID, producerEpoch: producerEpoch, baseSequence: baseSequence,
                            isTransactional: isTransactional)
        plainEnd = writer.count
        let range = encoder.finishCompressedIfSmaller(into: &writer, codec: codec, level: level)
        return writer.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[range]) }
    }

    /// Before framing: drops a compressed copy framed earlier (the plain records end the batch
    /// again) and writes the identity into the header. - Returns: where the batch starts.
    private mutating func stampForFraming(producerID: Int64, producerEpoch: Int16, baseSequence: Int32,
                                          isTransactional: Bool) -> Int {
        precondition(!isEmpty, "an empty batch is never sent")
        if plainEnd >= 0 {
            writer._count = plainEnd
            plainEnd = -1
        }
        let start = encoder.startOffset
        writer.withUnsafeMutableBytes(start..<writer.count) { batch in
            RecordBatchLayout.writeIdentity(into: batch.baseAddress!, producerID: producerID, producerEpoch: producerEpoch,
                                            baseSequence: baseSequence, isTransactional: isTransactional)
        }
        return start
    }
}

extension RecordBatchLayout {
    /// Offset of ProducerId in the batch header (ProducerEpoch follows at 51, BaseSequence at 53).
    public static let producerIDOffset = 43

    /// Writes a producer identity into the header at `batch`: ProducerId, ProducerEpoch,
    /// BaseSequence and the transactional attribute bit (the other attribute bits are kept).
    /// The CRC is not updated: ``restamp(_:producerID:producerEpoch:baseSequence:isTransactional:)``
    /// does both.
    @inlinable
    public static func writeIdentity(into batch: UnsafeMutableRawPointer, producerID: Int64, producerEpoch: Int16,
                                     baseSequence: Int32, isTransactional: Bool) {
        let attributesAt = batch + attributesOffset
        var attributes = Int16(bigEndian: attributesAt.loadUnaligned(as: Int16.self))
        attributes = isTransactional ? attributes | RecordBatchAttributes.transactional
                                     : attributes & ~RecordBatchAttributes.transactional
        _ = RawWire.put(attributes, at: attributesAt)
        var p = batch + producerIDOffset
        p = RawWire.put(producerID, at: p)
        p = RawWire.put(producerEpoch, at: p)
        _ = RawWire.put(baseSequence, at: p)
    }

    /// Gives a whole framed batch (header and records, as sent) another producer identity and
    /// checksums it again: what resending a sealed batch after an epoch bump needs. The
    /// records' bytes are not touched.
    public static func restamp(_ batch: UnsafeMutableRawBufferPointer, producerID: Int64, producerEpoch: Int16,
                               baseSequence: Int32, isTransactional: Bool) {
        precondition(batch.count >= headerSize, "a batch is at least its 61-byte header")
        let p = batch.baseAddress!
        writeIdentity(into: p, producerID: producerID, producerEpoch: producerEpoch, baseSequence: baseSequence,
                      isTransactional: isTransactional)
        let crc = klife_crc32c(0, p + attributesOffset, batch.count - attributesOffset)
        _ = RawWire.put(crc, at: p + crcOffset)
    }
}
