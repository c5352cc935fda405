import CKlifeShim

// RecordBatch v2 header, 61 bytes, big-endian (offsets from the batch start):
//
//   0        8       12              16    17      21     23              27
//   ┌────────┬───────┬───────────────┬─────┬───────┬──────┬───────────────┐
//   │BaseOff │Length │PartLeaderEpoch│Magic│ CRC   │Attrs │LastOffsetDelta│
//   │ i64    │ i32 * │ i32           │i8=2 │ u32 * │ i16  │ i32 *         │
//   └────────┴───────┴───────────────┴─────┴───────┴──────┴───────────────┘
//   27             35             43           51      53         57       61
//   ┌──────────────┬──────────────┬────────────┬───────┬──────────┬────────┐
//   │BaseTimestamp │MaxTimestamp *│ ProducerId │ProdEp │ BaseSeq  │Count * │ records…
//   │ i64          │ i64          │ i64        │ i16   │ i32      │ i32    │
//   └──────────────┴──────────────┴────────────┴───────┴──────────┴────────┘
//
//   * = placeholder written by `init`, patched by `finish`.
//   Length counts the bytes after itself (batch size - 12).
//   CRC-32C covers Attributes (byte 21) through the end of the batch.
//
// Record (all varints zig-zag):
//   length varint │ attributes i8 = 0 │ timestampDelta varlong │ offsetDelta varint │
//   keyLength varint (-1 = null) │ key │ valueLength varint (-1 = null) │ value │
//   headerCount varint │ { keyLength varint │ key UTF-8 │ valueLength varint (-1 = null) │ value }*

/// Streams one RecordBatch v2 into a ``ByteWriter``: `init` writes the header
/// with placeholders, `append` adds records, `finish` patches the placeholders
/// and the CRC.
///
///     var batch = RecordBatchEncoder(writer: &w, baseTimestamp: now)
///     batch.append(into: &w, timestamp: now, key: k, value: v, headers: [])
///     batch.finish(into: &w)
///
/// The encoder holds only offsets and counters; the same `writer` must be passed
/// to every call and nothing else may be written to it until `finish`. Appending
/// a record reserves its exact size once and stores fields through a raw pointer:
/// no allocation, no existential, no per-field capacity check.
public struct RecordBatchEncoder {
    /// Offset in the writer where this batch begins.
    public let startOffset: Int
    /// The batch's BaseTimestamp; record timestamps are stored as deltas from it.
    public let baseTimestamp: Int64
    @usableFromInline internal var _recordCount: Int32
    @usableFromInline internal var maxTimestamp: Int64

    /// Number of records appended so far (also the next record's offset delta).
    @inlinable public var recordCount: Int32 { _recordCount }

    /// Writes the 61-byte batch header, with placeholders for Length, CRC,
    /// LastOffsetDelta, MaxTimestamp and RecordCount.
    ///
    /// - Parameters:
    ///   - writer: Where the batch is written.
    ///   - baseOffset: 0 for produce; the broker assigns offsets.
    ///   - partitionLeaderEpoch: -1 for produce.
    ///   - baseTimestamp: usually the first record's timestamp (ms since epoch).
    ///   - producerID: The idempotent producer's id, -1 when unused.
    ///   - producerEpoch: Its epoch, -1 when unused.
    ///   - baseSequence: The first record's sequence number, -1 when unused.
    ///   - isTransactional: sets attributes bit 4.
    ///   - compression: the codec flag in the attributes only; `append` always writes
    ///     plain records. To compress, leave it `.none` and end the batch with
    ///     ``finishCompressed(into:codec:level:)`` or ``finishCompressedIfSmaller(into:codec:level:)``,
    ///     which set the flag on the compressed copy.
    public init(
        writer: inout ByteWriter, baseOffset: Int64 = 0, partitionLeaderEpoch: Int32 = -1, baseTimestamp: Int64,
        producerID: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1,
        isTransactional: Bool = false, compression: CompressionCodec = .none
    ) {
        let attributes = compression.rawValue | (isTransactional ? RecordBatchAttributes.transactional : 0)
        writer.ensureCapacity(RecordBatchLayout.headerSize)
        let start = writer.count
        var p = writer.base + start
        p = RawWire.put(baseOffset, at: p)
        p = RawWire.put(Int32(0), at: p)            // Length *
        p = RawWire.put(partitionLeaderEpoch, at: p)
        p = RawWire.put(Int8(2), at: p)             // Magic
        p = RawWire.put(UInt32(0), at: p)           // CRC *
        p = RawWire.put(attributes, at: p)
        p = RawWire.put(Int32(0), at: p)            // LastOffsetDelta *
        p = RawWire.put(baseTimestamp, at: p)
        p = RawWire.put(Int64(0), at: p)            // MaxTimestamp *
        p = RawWire.put(producerID, at: p)
        p = RawWire.put(producerEpoch, at: p)
        p = RawWire.put(baseSequence, at: p)
        p = RawWire.put(Int32(0), at: p)            // RecordCount *
        writer._count = start &+ RecordBatchLayout.headerSize
        self.startOffset = start
        self.baseTimestamp = baseTimestamp
        self._recordCount = 0
        self.maxTimestamp = .min
    }

    /// Appends one record. `nil` key or value is written as null (length -1);
    /// an empty buffer is an empty, non-null field.
    ///
    /// The record takes exactly ``RecordBatchLayout/recordSize(offsetDelta:timestampDelta:keyCount:valueCount:headers:)-(_,_,_,_,[RecordHeader])``
    /// bytes with `offsetDelta` = ``recordCount`` before the call and
    /// `timestampDelta` = `timestamp - baseTimestamp`.
    @inlinable
    public mutating func append(
        into writer: inout ByteWriter, timestamp: Int64,
        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: [RecordHeader]
    ) {
        append(into: &writer, timestamp: timestamp, key: key, value: value, headerCount: headers.count,
               headerBytes: headers.isEmpty ? 0 : RecordBatchLayout.headerBytes(headers)) { p in
            headers.isEmpty ? p : Self.putHeaders(headers, at: p)
        }
    }

    /// Appends one record whose headers are already in wire form: the same bytes as
    /// ``append(into:timestamp:key:value:headers:)-(_,_,UnsafeRawBufferPointer?,_,[RecordHeader])`` with the headers they encode.
    @inlinable
    public mutating func append(
        into writer: inout ByteWriter, timestamp: Int64,
        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: EncodedHeaders
    ) {
        _ = append(into: &writer, timestamp: timestamp, key: key, value: value, headers: headers, limit: .max)
    }

    /// Appends one record whose headers are in wire form if the batch stays within `limit`
    /// bytes (from ``startOffset``) with it; the first record is always appended.
    /// - Returns: `false`, and nothing written, when it does not fit.
    @inlinable @inline(__always)
    public mutating func append(
        into writer: inout ByteWriter, timestamp: Int64,
        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: EncodedHeaders, limit: Int
    ) -> Bool {
        append(into: &writer, timestamp: timestamp, key: key, value: value, headerCount: headers.count,
               headerBytes: headers.bytes.count, limit: limit) { p in
            guard let source = headers.bytes.baseAddress, headers.bytes.count > 0 else { return p }
            p.copyMemory(from: source, byteCount: headers.bytes.count)
            return p + headers.bytes.count
        }
    }

    /// One record, its headers (`headerCount` of them, `headerBytes` in wire form) written by
    /// `writeHeaders` at the position it is given, returning their end; refused (`false`) when
    /// it is not the first record and the batch would pass `limit` bytes with it.
    @inlinable @inline(__always) @discardableResult
    mutating func append(
        into writer: inout ByteWriter, timestamp: Int64, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
        headerCount: Int, headerBytes: Int, limit: Int = .max,
        writeHeaders: (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer
    ) -> Bool {
        let offsetDelta = _recordCount
        precondition(offsetDelta < .max, "RecordBatch record count overflow")
        let timestampDelta = timestamp &- baseTimestamp
        let body = RecordBatchLayout.bodySize(offsetDelta: offsetDelta, timestampDelta: timestampDelta, keyCount: key?.count,
                                              valueCount: value?.count, headerCount: headerCount, headerBytes: headerBytes)
        precondition(body <= Int(Int32.max), "record too large")
        let total = ByteWriter.varintSize(Int32(truncatingIfNeeded: body)) &+ body
        if limit != .max && offsetDelta > 0 && total > limit &- (writer.count &- startOffset) { return false }
        writer.ensureCapacity(total)
        let start = writer.base + writer.count
        var p = RawWire.putVarint(Int32(truncatingIfNeeded: body), at: start)
        p.storeBytes(of: 0, as: UInt8.self)         // attributes (unused, 0)
        p = RawWire.putVarlong(timestampDelta, at: p + 1)
        p = RawWire.putVarint(offsetDelta, at: p)
        p = RawWire.putNullableBytes(key, at: p)
        p = RawWire.putNullableBytes(value, at: p)
        p = RawWire.putVarint(Int32(truncatingIfNeeded: headerCount), at: p)
        p = writeHeaders(p)
        precondition(p - start == total, "record size mismatch")
        writer._count &+= total
        _recordCount = offsetDelta &+ 1
        if timestamp > maxTimestamp { maxTimestamp = timestamp }
        return true
    }

    /// Appends one record from byte arrays (convenience; same bytes as the pointer form).
    /// Disfavored so that `key: nil, value: nil` picks the pointer form unambiguously.
    @inlinable @_disfavoredOverload
    public mutating func append(
        into writer: inout ByteWriter, timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader]
    ) {
        // No tuple of the two optionals and no `let` bindings: either would copy the arrays
        // (a retain and release of each per record); optional chaining borrows them in place.
        let wroteWithKey: Void? = key?.withUnsafeBytes { kb in
            if value?.withUnsafeBytes({ vb in append(into: &writer, timestamp: timestamp, key: kb, value: vb, headers: headers) }) == nil {
                append(into: &writer, timestamp: timestamp, key: kb, value: nil, headers: headers)
            }
        }
        guard wroteWithKey == nil else { return }
        if value?.withUnsafeBytes({ vb in append(into: &writer, timestamp: timestamp, key: nil, value: vb, headers: headers) }) == nil {
            append(into: &writer, timestamp: timestamp, key: UnsafeRawBufferPointer?.none, value: nil, headers: headers)
        }
    }

    @inlinable
    internal static func putHeaders(_ headers: [RecordHeader], at start: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        var p = start
        for header in headers {
            var key = header.key
            p = key.withUTF8 { utf8 in RawWire.putNullableBytes(UnsafeRawBufferPointer(utf8), at: p) }
            if let value = header.value {
                p = value.withUnsafeBytes { RawWire.putNullableBytes($0, at: p) }
            } else {
                p = RawWire.putVarint(-1, at: p)
            }
        }
        return p
    }

    /// Patches Length, LastOffsetDelta, MaxTimestamp, RecordCount and the CRC.
    ///
    /// For an empty batch MaxTimestamp is -1 and LastOffsetDelta 0; brokers reject
    /// empty produce batches, so producers should not send them.
    /// - Returns: the number of bytes of the batch.
    @discardableResult
    public func finish(into writer: inout ByteWriter) -> Int {
        let end = writer.count
        let size = end - startOffset
        precondition(size >= RecordBatchLayout.headerSize && size - RecordBatchLayout.logOverhead <= Int(Int32.max),
                     "batch writer was rewound or batch too large")
        writer.withUnsafeMutableBytes(startOffset..<end) { batch in
            let p = batch.baseAddress!
            patchHeader(p, size: size)
            let crc = klife_crc32c(0, p + RecordBatchLayout.attributesOffset, size - RecordBatchLayout.attributesOffset)
            _ = RawWire.put(crc, at: p + RecordBatchLayout.crcOffset)
        }
        return size
    }

    /// Writes Length, LastOffsetDelta, MaxTimestamp and RecordCount into the header at `p`
    /// of a batch of `size` bytes (everything ``finish(into:)`` patches but the CRC).
    @inline(__always)
    internal func patchHeader(_ p: UnsafeMutableRawPointer, size: Int) {
        let count = _recordCount
        _ = RawWire.put(Int32(size - RecordBatchLayout.logOverhead), at: p + 8)
        _ = RawWire.put(count == 0 ? 0 : count - 1, at: p + 23)
        _ = RawWire.put(count == 0 ? -1 : maxTimestamp, at: p + 35)
        _ = RawWire.put(count, at: p + 57)
    }

    /// Number of bytes the batch has so far (header plus appended records).
    @inlinable
    public func byteCount(in writer: borrowing ByteWriter) -> Int { writer.count - startOffset }
}

extension RecordBatchEncoder {
    /// Encodes a whole batch from model records into a new array (tests and slow paths).
    public static func encode(
        baseTimestamp: Int64, records: [(timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])],
        producerID: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1,
        isTransactional: Bool = false
    ) -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        var batch = RecordBatchEncoder(writer: &writer, baseTimestamp: baseTimestamp, producerID: producerID,
                                       producerEpoch: producerEpoch, baseSequence: baseSequence,
                                       isTransactional: isTransactional)
        for r in records {
            batch.append(into: &writer, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers)
        }
        batch.finish(into: &writer)
        return writer.bytes
    }
}
